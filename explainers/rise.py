"""RISE (Petsiuk, Das & Saenko 2018): randomised input sampling for explanation.

Black-box: ``N`` random smooth masks, each a coarse grid of cells kept with probability ``p``,
bilinearly upsampled (cells of ``cell`` pixels) and shifted by a random offset below one cell,
as in the paper. A masked image is ``image × m + fill × (1 − m)`` (the paper's fill is black).
The saliency of a pixel is the mean score weighted by how visible the pixel was::

    S_c(x) = 1 / (N p) · Σ_i f_c(image ⊙ m_i) m_i(x)

signed and unnormalised, in the units of the score. One set of N predictions (all C outputs,
cached in ``ctx.cache``) serves every label and any contrast "A rather than B" (the map is
linear in the scores); the masks are regenerated from the seed rather than kept (N full-size
float masks would be hundreds of MB), so a later label costs no model call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from explainers.base import ExplainerError, Explanation, MethodSpec, Timer, param, params_dict, register
from explainers.perturbation import fill_image, parse_hex

RISE_FILLS = ("black", "gray", "blur", "mean")
_MASK_KEY = 0x21_5E


@dataclass(frozen=True)
class RiseParams:
    """Number of masks, their cell size in pixels, the probability a cell is kept, the fill."""

    masks: int = param(1000, low=2, high=100_000, help="random masks, one model call each")
    cell: int = param(0, low=0, high=4096,
                      help="pixels per grid cell; 0 = automatic: a seventh of the shorter side "
                      "(the paper's 7×7 cells, 32 px on 224²)")
    keep: float = param(0.5, above=0.0, high=0.99, help="probability that a cell is kept visible")
    fill: str = param("black", help=f"what hidden parts show: {', '.join(RISE_FILLS)} (black: the paper) or #rrggbb")
    batch_size: int = param(32, low=1, high=1024, help="masked images per model call")

    def validate(self) -> None:
        if self.fill not in RISE_FILLS:
            try:
                parse_hex(self.fill)
            except ExplainerError:
                raise ExplainerError(
                    f"fill must be one of {', '.join(RISE_FILLS)} or a colour like #808080, not {self.fill!r}"
                ) from None


def _interpolation(points: int, cell: int) -> np.ndarray:
    """(points × cell, points) bilinear weights from grid points to pixel centres."""
    size = points * cell
    pos = np.clip((np.arange(size) + 0.5) / cell - 0.5, 0.0, points - 1.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, points - 1)
    frac = pos - lo
    out = np.zeros((size, points))
    out[np.arange(size), lo] += 1.0 - frac
    out[np.arange(size), hi] += frac
    return out


def cell_size(shape: tuple[int, int], params: RiseParams) -> int:
    """The cell in pixels: the chosen one, or (0) a seventh of the shorter side, so the default
    grid is the paper's 7×7 on any image size (a fixed 32 px would be one cell on a 32² image)."""
    return int(params.cell) or max(1, min(shape) // 7)


def mask_batches(shape: tuple[int, int], params: RiseParams, seed: int) -> Iterator[np.ndarray]:
    """The N masks (k, H, W) float32 in [0, 1], in batches of ``batch_size``, the same for a seed.

    Batch b draws from ``default_rng([seed, key, b])``: its grids (k, gh, gw) (a cell is kept with
    probability ``keep``; at least two cells a side) and shifts in [0, cell).
    """
    h, w = shape
    cell, n, bs = cell_size(shape, params), int(params.masks), int(params.batch_size)
    gh, gw = max(2, -(-h // cell)), max(2, -(-w // cell))
    ch = cw = cell  # gh × cell ≥ h: the shifted crop always lies inside the upsampled grid
    up_h, up_w = _interpolation(gh + 1, ch), _interpolation(gw + 1, cw)
    for b, start in enumerate(range(0, n, bs)):
        k = min(bs, n - start)
        rng = np.random.default_rng([int(seed), _MASK_KEY, b])
        grids = (rng.random((k, gh + 1, gw + 1)) < float(params.keep)).astype(np.float64)
        dy = rng.integers(0, ch, k)
        dx = rng.integers(0, cw, k)
        big = np.einsum("hg,kgj,wj->khw", up_h, grids, up_w, optimize=True)
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        yield big[np.arange(k)[:, None, None], rows[:, :, None], cols[:, None, :]].astype(np.float32)


def _fill(image: np.ndarray, fill: str) -> np.ndarray:
    return fill_image(image, np.zeros(image.shape[:2], dtype=np.int32), fill).astype(np.float32)


@dataclass
class RiseRun:
    scores: np.ndarray  # (N, C) outputs of the masked images
    calls: int


def rise_run(ctx: Any, params: RiseParams) -> tuple[RiseRun, int]:
    """The cached predictions of the N masked images; returns (run, new model calls)."""
    key = ("rise", int(params.masks), int(params.cell), float(params.keep), params.fill,
           int(params.batch_size), ctx.seed)
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached, 0
    image = ctx.image.astype(np.float32)
    filler = _fill(ctx.image, params.fill)
    n = int(params.masks)
    scores = np.empty((n, ctx.classifier.num_classes), dtype=np.float32)
    ctx.report(0, n, "RISE: masked images")
    at = 0
    for masks in mask_batches(ctx.image.shape[:2], params, ctx.seed):
        m = masks[..., None]
        batch = np.rint(image[None] * m + filler[None] * (1.0 - m)).astype(np.uint8)
        scores[at : at + len(batch)] = ctx.classifier.predict(batch, batch_size=int(params.batch_size))
        at += len(batch)
        ctx.report(at, n, "RISE: masked images")
    run = RiseRun(scores, n)
    ctx.cache[key] = run
    return run, n


def rise_maps(ctx: Any, params: RiseParams, weights: np.ndarray) -> np.ndarray:
    """Σ_i weights[i, l] m_i / (N p) for each column l: (L, H, W) float64."""
    h, w = ctx.image.shape[:2]
    out = np.zeros((weights.shape[1], h * w))
    at = 0
    for masks in mask_batches((h, w), params, ctx.seed):
        k = len(masks)
        out += weights[at : at + k].T.astype(np.float64) @ masks.reshape(k, -1)
        at += k
    return (out / (int(params.masks) * float(params.keep))).reshape(-1, h, w)


def run_rise(ctx: Any, params: RiseParams, labels: list[int], contrast: int | None = None) -> list[Explanation]:
    """RISE maps for ``labels`` (or label − contrast) from one set of masked predictions."""
    with Timer() as timer:
        had_probs = "probs" in ctx.cache
        base = ctx.probabilities()
        calls = 0 if had_probs else 1
        run, more = rise_run(ctx, params)
        calls += more
        labels = [int(c) for c in labels]
        weights = run.scores[:, labels].astype(np.float64)
        if contrast is not None:
            weights = weights - run.scores[:, [int(contrast)]]
        maps = rise_maps(ctx, params, weights)
    extras: dict[str, Any] = {"shared_calls": int(run.calls)}
    if contrast is not None:
        extras.update(contrast_name=ctx.label_name(int(contrast)), contrast_score=float(base[int(contrast)]))
    return [
        Explanation(
            method="rise",
            label=c,
            label_name=ctx.label_name(c),
            score=float(base[c]),
            heatmap=maps[i],
            model_calls=calls if i == 0 else 0,
            seconds=timer.seconds,
            params={**params_dict(params), "seed": ctx.seed},
            extras=extras,
            contrast=contrast,
        )
        for i, c in enumerate(labels)
    ]


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="rise", title="RISE", family="occlusion", order=55, signed=False,
    params_type=RiseParams, run=run_rise, contrast=True,
    test_params={"masks": 64},
    description="Averages the score over many randomly, smoothly masked copies of the image, "
    "weighting each pixel by how visible it was.",
))

__all__ = ["RiseParams", "cell_size", "mask_batches", "rise_run", "rise_maps", "run_rise", "RISE_FILLS"]
