"""Plain-language captions for stakeholder mode, computed from results already at hand.

No model calls: the region comes from the maps, the score drop from KernelSHAP's additive
values (or LIME's coefficients), agreement from rank correlation of the maps pooled on the
same superpixels (``explainers.metrics``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from explainers import metrics as M
from explainers.base import Explanation


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


def mean_rank_correlation(results: Sequence[Explanation]) -> float | None:
    """Mean pairwise Spearman correlation of the methods' maps on shared superpixels
    (``metrics.agreement`` on ``metrics.segment_scores``); pairs with a constant map are left out."""
    segs = next((r.segments for r in results if r.segments is not None), None)
    if segs is None or len(results) < 2:
        return None
    scores = {f"{i}:{r.method}": M.segment_scores(r, segs) for i, r in enumerate(results)}
    corr = M.agreement(scores).rank_corr
    values = corr[np.triu_indices(len(scores), k=1)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def _reference(results: Sequence[Explanation]) -> Explanation | None:
    """The superpixel result whose weights best read as "score drop": an additive method first."""
    from explainers.base import methods

    specs = methods()
    with_weights = [r for r in results if r.segment_weights is not None]
    additive = [r for r in with_weights if r.method in specs and specs[r.method].additive]
    return (additive or with_weights or [None])[0]


def caption(results: Sequence[Explanation], top: int = 3) -> str:
    """One or two sentences of markdown for a non-technical audience about one label.

    The label name is user-controlled (a labels file): it is escaped, so the caption can go into
    Streamlit markdown as is; ``explainers.text.markdown_to_text`` gives the plain text.
    """
    from explainers.text import escape_markdown

    if not results:
        return ""
    label = escape_markdown(results[0].label_name)
    score = results[0].score
    ref = _reference(results)
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
    agree = mean_rank_correlation(results)
    if agree is not None:
        if agree >= 0.5:
            text.append("The methods agree on this.")
        elif agree >= 0.2:
            text.append("The methods partly agree — treat the details with care.")
        else:
            text.append("The methods disagree — this explanation is not reliable.")
    return " ".join(text)


def contrast_caption(results: Sequence[Explanation], top: int = 3) -> str:
    """In words, what separates label A from label B, from contrast results ("A rather than B").

    Prefers an additive superpixel method (KernelSHAP, Partition SHAP, then any with segment
    weights): the regions with the largest positive weights favour A over B, the most negative
    ones favour B (only regions with at least a quarter of the largest weight); their weights
    say how many points of the gap p(A) − p(B) they account for.
    Without one, where the first contrast map reaches half its maximum (and half its minimum).
    """
    results = [r for r in results if r.contrast is not None]
    if not results:
        return ""
    first = results[0]
    from explainers.text import escape_markdown  # label names are user-controlled: markdown out

    a = escape_markdown(first.label_name)
    b = escape_markdown(first.extras.get("contrast_name", f"class {first.contrast}"))
    pa, pb = float(first.score), first.extras.get("contrast_score")
    gap = f" ({pa:.0%} vs {pb:.0%})" if pb is not None else ""
    head = f"What makes it **{a}** rather than **{b}**{gap}:"
    ref = next((r for r in results if r.method in ("kernel_shap", "partition_shap") and r.segment_weights is not None),
               None) or next((r for r in results if r.segment_weights is not None), None)
    if ref is None:  # a pixel map: where it reaches half its extreme on either side
        heat = np.asarray(first.heatmap, dtype=np.float64)
        hi, lo = float(heat.max()), float(heat.min())
        text = (f"{head} {where(heat >= 0.5 * hi)} of the picture favours {a}" if hi > 0
                else f"{head} nothing in the picture favours {a}")
        if lo < 0:
            text += f"; {where(heat <= 0.5 * lo)} favours {b}"
        return text + f" ({first.method})."
    w = ref.segment_weights
    order = np.argsort(-w, kind="stable")
    floor = 0.25 * float(np.abs(w).max())  # regions that matter, not the noise around zero
    pro = [i for i in order[:top] if w[i] > 0 and w[i] >= floor]
    con = [i for i in order[::-1][:top] if w[i] < 0 and -w[i] >= floor]
    if pro:
        body = (f"mostly {where(np.isin(ref.segments, pro))} of the picture, which raises {a} over {b} "
                f"by about {w[pro].sum() * 100:.0f} points")
    else:
        body = f"no region raises {a} over {b}"
    if con:
        body += f"; {where(np.isin(ref.segments, con))} leans towards {b} (about {-w[con].sum() * 100:.0f} points)"
    return f"{head} {body} ({ref.method} estimate)."
