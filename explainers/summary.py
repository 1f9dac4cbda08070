"""Plain-language captions for stakeholder mode, computed from results already at hand.

No model calls: the region comes from the maps, the score drop from KernelSHAP's additive
values (or LIME's coefficients), agreement from rank correlation of the maps pooled on the
same superpixels.
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from explainers.base import Explanation


def pool(heatmap: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Mean of a pixel map over each superpixel (M,)."""
    from explainers.base import upsample

    heat = upsample(heatmap, segments.shape, "bilinear").ravel()
    ids = segments.ravel()
    count = np.bincount(ids)
    return np.bincount(ids, weights=heat, minlength=len(count)) / np.maximum(count, 1)


def where(mask: np.ndarray) -> str:
    """Rough position of a boolean mask in words ("the centre", "the upper left", …)."""
    if not mask.any():
        return "no particular area"
    rows, cols = np.nonzero(mask)
    r, c = rows.mean() / mask.shape[0], cols.mean() / mask.shape[1]
    vert = "upper" if r < 0.38 else "lower" if r > 0.62 else ""
    horiz = "left" if c < 0.38 else "right" if c > 0.62 else ""
    if not vert and not horiz:
        return "the centre"
    if not horiz:
        return f"the {vert} part"
    if not vert:
        return f"the {horiz} side"
    return f"the {vert} {horiz}"


def agreement(results: Sequence[Explanation]) -> float | None:
    """Mean pairwise Spearman correlation of the methods' maps pooled on shared superpixels."""
    segs = next((r.segments for r in results if r.segments is not None), None)
    if segs is None or len(results) < 2:
        return None
    pooled = [pool(r.heatmap, segs) for r in results]
    values = []
    for a, b in combinations(pooled, 2):
        if np.std(a) == 0 or np.std(b) == 0:
            continue
        values.append(float(spearmanr(a, b).statistic))
    return float(np.mean(values)) if values else None


def caption(results: Sequence[Explanation], top: int = 3) -> str:
    """One or two sentences for a non-technical audience about one label."""
    if not results:
        return ""
    label = results[0].label_name
    score = results[0].score
    ref = next((r for r in results if r.method == "kernel_shap"), None) or next(
        (r for r in results if r.segment_weights is not None), None
    )
    text = [f"The model says **{label}** with {score:.0%} confidence."]
    if ref is not None:
        # Only regions whose sign the samples settle are claimed (Explanation.unsettled).
        unsettled = ref.unsettled()
        order = np.argsort(-ref.segment_weights)[:top]
        positive = [i for i in order if ref.segment_weights[i] > 0 and not unsettled[i]]
        doubtful = [i for i in order if ref.segment_weights[i] > 0 and unsettled[i]]
        if positive:
            mask = np.isin(ref.segments, positive)
            drop = float(ref.segment_weights[positive].sum())
            regions = "that region" if len(positive) == 1 else f"those {len(positive)} regions"
            text.append(
                f"It looks mostly at {where(mask)} of the picture; hiding {regions} "
                f"would lower the score by about {drop * 100:.0f} points ({ref.method} estimate)."
            )
        if doubtful:
            few = "one more region" if len(doubtful) == 1 else f"{len(doubtful)} more regions"
            text.append(
                f"{few.capitalize()} may matter too, but the samples do not settle whether "
                f"{'it helps' if len(doubtful) == 1 else 'they help'} or hurt{'s' if len(doubtful) == 1 else ''} "
                "the score."
            )
        if not positive and not doubtful:
            text.append("No region clearly raises the score.")
    else:
        heat = results[0].heatmap
        text.append(f"It looks mostly at {where(heat >= np.quantile(heat, 0.9))} of the picture.")
    agree = agreement(results)
    if agree is not None:
        if agree >= 0.5:
            text.append("The methods agree on this.")
        elif agree >= 0.2:
            text.append("The methods partly agree — treat the details with care.")
        else:
            text.append("The methods disagree — this explanation is not reliable.")
    return " ".join(text)
