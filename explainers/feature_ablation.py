"""Feature ablation: remove each region alone, then all of them, and report the score drops.

The regions are the context's segments — the user's own region map when one was uploaded
(``ExplainContext(regions=...)``), otherwise the superpixels. "Removing" a region shows the
shared fill there (the same fill LIME and KernelSHAP use), rendered by the perturbation engine.
The M + 1 coalitions are "all but region i" (i = 1..M) and "none"; the full image is the
context's prediction. So the cost is M + 1 model calls (one more when the context had not
predicted the image yet), and a coalition the shared perturbation run already holds is read
from it instead of sent again.

Per label: ``segment_weights[i] = p(image) − p(image without region i)`` (the drop; positive:
the region supports the label), painted on the regions as the heatmap. ``extras`` holds the
drop when everything is removed, the sum of the single drops and their difference (≠ 0 when
the regions interact: the model is not additive in them), and the score with each region
removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.base import Explanation, ExplainerError, MethodSpec, Timer, params_dict, register


@dataclass(frozen=True)
class FeatureAblationParams:
    """The fill and batch size are the shared sampling settings; nothing else to choose."""

    max_regions: int = 512  # refuse maps with more regions than this (M + 1 calls)

    def validate(self) -> None:
        if not 2 <= int(self.max_regions) <= 4096:
            raise ExplainerError("max_regions must be between 2 and 4096")


def ablation_coalitions(m: int) -> np.ndarray:
    """(M + 1, M) bool: row i keeps every region but i; the last row keeps none."""
    z = ~np.eye(m, dtype=bool)
    return np.vstack([z, np.zeros((1, m), dtype=bool)])


def evaluate_coalitions(ctx: Any, Z: np.ndarray, stage: str) -> tuple[np.ndarray, int]:
    """Model outputs (k, C) for coalitions ``Z`` of the context's segments; (outputs, new calls).

    Rows the shared perturbation run already holds are reused; the rest are rendered by the
    engine (same fill, batch size and progress reporting) and predicted.
    """
    from explainers.perturbation import fill_image, render, render_index

    Z = np.asarray(Z, dtype=bool)
    segments = ctx.segments()
    shared = ctx.cache.get("perturbations")
    out: np.ndarray | None = None
    todo = np.arange(len(Z))
    if shared is not None and shared.n:
        known = {row.tobytes(): i for i, row in enumerate(np.packbits(shared.Z, axis=1))}
        hits = [known.get(row.tobytes(), -1) for row in np.packbits(Z, axis=1)]
        hits = np.asarray(hits)
        out = np.empty((len(Z), shared.Y.shape[1]), dtype=np.float32)
        out[hits >= 0] = shared.Y[hits[hits >= 0]]
        todo = np.flatnonzero(hits < 0)
    key = ("fill", ctx.sampling.fill)
    fill = ctx.cache.get(key)
    if fill is None:
        fill = ctx.cache[key] = fill_image(ctx.image, segments, ctx.sampling.fill)
    bs = int(ctx.sampling.batch_size)
    index = render_index(segments)
    for start in range(0, len(todo), bs):
        rows = todo[start : start + bs]
        images = render(ctx.image, fill, segments, Z[rows], index=index)
        y = np.asarray(ctx.classifier.predict(images, batch_size=bs), dtype=np.float32)
        if out is None:
            out = np.empty((len(Z), y.shape[1]), dtype=np.float32)
        out[rows] = y
        ctx.report(min(start + bs, len(todo)), len(todo), stage)
    return out, int(len(todo))


def run_feature_ablation(ctx: Any, params: FeatureAblationParams, labels: list[int]) -> list[Explanation]:
    """Drops in each label's probability when each region, then every region, is removed."""
    with Timer() as timer:
        segments = ctx.segments()
        m = int(segments.max()) + 1
        if m < 2:
            raise ExplainerError("feature ablation needs at least two regions")
        if m > int(params.max_regions):
            raise ExplainerError(
                f"the image has {m} regions; feature ablation is limited to {params.max_regions} "
                "(one model call per region)"
            )
        key = ("feature_ablation", ctx.sampling.fill)
        cached = ctx.cache.get(key)
        calls = 0
        if cached is None:
            had_probs = "probs" in ctx.cache
            full = ctx.probabilities()
            calls += 0 if had_probs else 1
            Y, new = evaluate_coalitions(ctx, ablation_coalitions(m), "feature ablation")
            calls += new
            cached = ctx.cache[key] = (np.asarray(full, dtype=np.float32), Y, new)
        full, Y, shared_calls = cached
    results = []
    for i, label in enumerate(labels):
        p = float(full[label])
        without = Y[:m, label].astype(np.float64)
        drops = p - without
        none = float(Y[m, label])
        drop_all = p - none
        results.append(
            Explanation(
                method="feature_ablation",
                label=int(label),
                label_name=ctx.label_name(int(label)),
                score=p,
                heatmap=drops.astype(np.float32)[segments],
                segments=segments,
                segment_weights=drops,
                base_value=none,
                model_calls=calls if i == 0 else 0,
                seconds=timer.seconds,
                params={**params_dict(params), "fill": ctx.sampling.fill,
                        "segmentation": ctx.segmentation},
                extras={
                    "score_without": without.astype(np.float32),
                    "drop_all": drop_all,
                    "sum_of_drops": float(drops.sum()),
                    "interaction": float(drop_all - drops.sum()),
                    "regions": m,
                    "shared_calls": int(shared_calls),
                },
            )
        )
    return results


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="feature_ablation", title="Feature ablation", family="perturbation", order=27,
    params_type=FeatureAblationParams, run=run_feature_ablation,
    description="Removes each region (your own regions or the superpixels) alone and all "
    "together, M + 1 model calls, and reports how much the score drops.",
))

__all__ = [
    "FeatureAblationParams", "ablation_coalitions", "evaluate_coalitions", "run_feature_ablation",
]
