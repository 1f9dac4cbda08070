"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a patch over the image and watch the score.

Black-box: needs only ``classifier.predict``. The occluded images are built in vectorised numpy
batches and predicted once; every label is read from the same (windows, C) probabilities, which
are kept in ``ctx.cache`` so that other labels later cost no model call.

Heatmap: for each pixel, the mean over the windows covering it of
``p(label | image) − p(label | image with the window filled)``. Signed and unnormalised:
positive where hiding the pixel lowers the label's probability, negative where it raises it.
Window positions run from the top-left corner with the given stride, plus one flush with the
bottom/right edge, so every pixel is covered.

``model_calls`` follows the convention in ``explainers.cam``: the images actually sent through
the model by this call (the occluded images, plus the unoccluded image when the context did not
have its prediction yet), on the first result; ``extras["shared_calls"]`` gives the size of the
shared pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.base import Explanation, ExplainerError, MethodSpec, Timer, param, params_dict, register

OCCLUSION_FILLS = ("gray", "black", "mean", "blur")


@dataclass(frozen=True)
class OcclusionParams:
    """Patch size and stride in pixels of the explained image, and what fills the patch."""

    window: int = param(32, low=1, high=4096, help="patch side in pixels")
    stride: int = param(16, low=1, high=4096, help="step between patches in pixels (at most the window)")
    fill: str = param("gray", choices=OCCLUSION_FILLS, help="what replaces the hidden patch")
    batch_size: int = param(32, low=1, high=1024, help="patches per model call")

    def validate(self) -> None:
        if not 1 <= int(self.stride) <= int(self.window):
            raise ExplainerError(
                "stride must be between 1 and the window size, so that every pixel is covered"
            )


def fill_image(image: np.ndarray, fill: str, window: int) -> np.ndarray:
    """The image that replaces an occluded patch (H, W, 3) uint8.

    ``blur`` is a Gaussian blur with sigma = window / 4: enough to remove the detail a patch
    could show while keeping its colours.
    """
    if fill == "gray":
        return np.full_like(image, 128)
    if fill == "black":
        return np.zeros_like(image)
    if fill == "mean":
        mean = image.reshape(-1, image.shape[-1]).mean(axis=0)
        return np.broadcast_to(np.rint(mean).astype(np.uint8), image.shape).copy()
    if fill == "blur":
        from skimage.filters import gaussian

        blurred = gaussian(
            image.astype(np.float32), sigma=max(1.0, window / 4.0), channel_axis=-1,
            preserve_range=True, mode="nearest",
        )
        return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    raise ExplainerError(f"fill must be one of {', '.join(OCCLUSION_FILLS)}, not {fill!r}")


def window_starts(size: int, window: int, stride: int) -> np.ndarray:
    """Start offsets along one axis: 0, stride, ... and one flush with the far edge."""
    window = min(window, size)
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return np.asarray(starts, dtype=np.int64)


@dataclass
class OcclusionRun:
    rows: np.ndarray  # (n,) top row of each window
    cols: np.ndarray  # (n,) left column of each window
    wh: int  # window height (clamped to the image)
    ww: int  # window width
    probs: np.ndarray  # (n, C) probabilities of the occluded images
    calls: int


def occlusion_run(ctx: Any, params: OcclusionParams) -> tuple[OcclusionRun, int]:
    """The cached predictions for every window position; returns (run, new model calls)."""
    key = ("occlusion", int(params.window), int(params.stride), params.fill)
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached, 0
    image = ctx.image
    h, w = image.shape[:2]
    wh, ww = min(int(params.window), h), min(int(params.window), w)
    rs = window_starts(h, wh, int(params.stride))
    cs = window_starts(w, ww, int(params.stride))
    rows, cols = (a.ravel() for a in np.meshgrid(rs, cs, indexing="ij"))
    filler = fill_image(image, params.fill, int(params.window))
    n = len(rows)
    bs = int(params.batch_size)
    probs = np.empty((n, ctx.classifier.num_classes), dtype=np.float32)
    r_idx = np.arange(h)[None, :, None]
    c_idx = np.arange(w)[None, None, :]
    ctx.report(0, n, "Occlusion: occluded images")
    for start in range(0, n, bs):
        r0 = rows[start : start + bs, None, None]
        c0 = cols[start : start + bs, None, None]
        inside = (r_idx >= r0) & (r_idx < r0 + wh) & (c_idx >= c0) & (c_idx < c0 + ww)
        batch = np.where(inside[..., None], filler[None], image[None])
        probs[start : start + len(batch)] = ctx.classifier.predict(batch, batch_size=bs)
        ctx.report(start + len(batch), n, "Occlusion: occluded images")
    run = OcclusionRun(rows, cols, wh, ww, probs, n)
    ctx.cache[key] = run
    return run, n


def run_occlusion(ctx: Any, params: OcclusionParams, labels: list[int], contrast: int | None = None) -> list[Explanation]:
    """Occlusion sensitivity maps for ``labels`` from one set of occluded predictions."""
    with Timer() as timer:
        had_probs = "probs" in ctx.cache
        base = ctx.probabilities()
        calls = 0 if had_probs else 1
        run, more = occlusion_run(ctx, params)
        calls += more
        labels = [int(c) for c in labels]
        h, w = ctx.image.shape[:2]
        drops = (base[labels][None, :] - run.probs[:, labels]).astype(np.float64)  # (n, L)
        if contrast is not None:  # the drop of p(A) − p(B): the same occluded predictions
            drops = drops - (base[int(contrast)] - run.probs[:, [int(contrast)]]).astype(np.float64)
        total = np.zeros((len(labels), h, w), dtype=np.float64)
        count = np.zeros((h, w), dtype=np.float64)
        for i, (r, c) in enumerate(zip(run.rows, run.cols)):
            total[:, r : r + run.wh, c : c + run.ww] += drops[i][:, None, None]
            count[r : r + run.wh, c : c + run.ww] += 1.0
        heat = total / np.maximum(count, 1.0)
    extras = {
        "windows": int(len(run.rows)),
        "window": (run.wh, run.ww),
        "shared_calls": int(run.calls),
    }
    if contrast is not None:
        extras.update(contrast_name=ctx.label_name(int(contrast)), contrast_score=float(base[int(contrast)]))
    return [
        Explanation(
            method="occlusion",
            label=c,
            label_name=ctx.label_name(c),
            score=float(base[c]),
            heatmap=heat[i],
            model_calls=calls if i == 0 else 0,
            seconds=timer.seconds,
            params=params_dict(params),
            extras=extras,
            contrast=contrast,
        )
        for i, c in enumerate(labels)
    ]


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="occlusion", title="Occlusion", family="occlusion", order=50,
    params_type=OcclusionParams, run=run_occlusion, contrast=True,
    test_params={"window": 8, "stride": 4},
    description="Slides a patch over the image; a pixel's value is the mean drop in the "
    "class probability when patches covering it are hidden.",
))

__all__ = ["OcclusionParams", "fill_image", "window_starts", "occlusion_run", "run_occlusion"]
