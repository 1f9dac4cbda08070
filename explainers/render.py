"""Turning signed, unnormalised explanation maps into pictures.

This is the only place that normalises: every method stores its raw map, and a comparison
uses one shared symmetric scale (``shared_limit``) so that colours mean the same in every
column. All functions are pure numpy and return RGB uint8 images.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from explainers.base import ExplainerError, Explanation, upsample

# Diverging and sequential colormaps as (position, RGB) anchors, interpolated linearly.
COLORMAPS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "blue-white-red": [(0.0, (33, 102, 172)), (0.5, (247, 247, 247)), (1.0, (178, 24, 43))],
    "purple-white-green": [(0.0, (118, 42, 131)), (0.5, (247, 247, 247)), (1.0, (27, 120, 55))],
    "cool-warm": [(0.0, (59, 76, 192)), (0.5, (221, 221, 221)), (1.0, (180, 4, 38))],
    "jet": [
        (0.0, (0, 0, 131)), (0.125, (0, 60, 170)), (0.375, (5, 255, 255)),
        (0.625, (255, 255, 0)), (0.875, (250, 0, 0)), (1.0, (128, 0, 0)),
    ],
    "viridis": [
        (0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)), (1.0, (253, 231, 37)),
    ],
}
DIVERGING = ("blue-white-red", "purple-white-green", "cool-warm")


DEFAULT_VIEW: dict = {
    "style": "heatmap", "opacity": 0.55, "cmap": "blue-white-red", "boundaries": False,
    "positive_only": False, "top_n": None, "hide_rest": False, "upsampling": "bilinear",
}
"""The default view settings, defined once: the screen's controls start here, and the Compare
page, stakeholder mode and every export draw with them."""


def colormap(values: np.ndarray, name: str = "blue-white-red") -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the named colormap."""
    anchors = COLORMAPS.get(name)
    if anchors is None:
        raise ExplainerError(f"unknown colormap {name!r}; choose from {', '.join(COLORMAPS)}")
    pos = np.array([a[0] for a in anchors])
    rgb = np.array([a[1] for a in anchors], dtype=np.float32)
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    out = np.stack([np.interp(v, pos, rgb[:, c]) for c in range(3)], axis=-1)
    return np.round(out).astype(np.uint8)


def shared_limit(maps: Iterable[np.ndarray], percentile: float = 99.5) -> float:
    """One symmetric colour limit for several maps (robust to a few extreme pixels)."""
    values = [np.abs(np.asarray(m, dtype=np.float32)).ravel() for m in maps]
    values = [v for v in values if v.size]
    if not values:
        return 1.0
    limit = float(np.percentile(np.concatenate(values), percentile))
    return limit if limit > 0 and np.isfinite(limit) else 1.0


def method_limits(explanations: Sequence[Explanation], percentile: float = 99.5) -> dict[str, float]:
    """A symmetric limit per method, shared across the labels of that method — the one colour
    rule of the screen and of every export.

    Methods have different units (probability change, gradient × activation, …), so one limit
    across methods would blank some of them; within a method the labels share a scale, and
    methods registered with the same ``scale_group`` (LIME and KernelSHAP: probability per
    superpixel) share one.
    """
    from explainers.base import methods

    specs = methods()

    def group(method: str) -> str:
        return specs[method].scale_key if method in specs else method

    by_group: dict[str, list[np.ndarray]] = {}
    for exp in explanations:
        by_group.setdefault(group(exp.method), []).append(exp.heatmap)
    limits = {g: shared_limit(maps, percentile) for g, maps in by_group.items()}
    return {exp.method: limits[group(exp.method)] for exp in explanations}


def normalise(heatmap: np.ndarray, limit: float | None = None, positive_only: bool = False) -> np.ndarray:
    """Signed map → [0, 1] with 0.5 = zero (or [0, 1] = [0, limit] when positive_only)."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    limit = float(limit) if limit else shared_limit([heatmap])
    if positive_only:
        return np.clip(heatmap / limit, 0.0, 1.0)
    return np.clip(0.5 + 0.5 * heatmap / limit, 0.0, 1.0)


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    limit: float | None = None,
    cmap: str = DEFAULT_VIEW["cmap"],
    opacity: float = DEFAULT_VIEW["opacity"],
    positive_only: bool = False,
    upsampling: str = "bilinear",
) -> np.ndarray:
    """Blend a heatmap over the image. Zero maps to the colormap's centre (transparent-ish)."""
    if not 0.0 <= opacity <= 1.0:
        raise ExplainerError("opacity must be between 0 and 1")
    image = np.asarray(image, dtype=np.uint8)
    heat = upsample(heatmap, image.shape[:2], upsampling)
    values = normalise(heat, limit, positive_only)
    colours = colormap(values, cmap if not positive_only or cmap not in DIVERGING else "viridis")
    # Pixels with no attribution keep the photo; the tint grows with |value| (sqrt so that
    # moderate values stay visible next to the strongest ones).
    strength = np.abs(values - (0.0 if positive_only else 0.5)) * (1.0 if positive_only else 2.0)
    alpha = opacity * np.sqrt(strength)[..., None]
    blended = image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def draw_boundaries(image: np.ndarray, segments: np.ndarray, colour=(255, 255, 0)) -> np.ndarray:
    """Mark superpixel boundaries (scikit-image) on an RGB uint8 image."""
    from skimage.segmentation import find_boundaries

    out = np.array(image, dtype=np.uint8, copy=True)
    # background=-1: pros_and_cons marks unselected pixels with -1, and segment 0 is a real segment.
    out[find_boundaries(segments, mode="inner", background=-1)] = colour
    return out


def selected_segments(
    weights: np.ndarray, top_n: int | None = None, positive_only: bool = False
) -> np.ndarray:
    """Boolean mask over segments: the top-N by |weight| (or by weight if positive_only)."""
    weights = np.asarray(weights, dtype=np.float32)
    keep = weights > 0 if positive_only else np.ones_like(weights, dtype=bool)
    key = weights if positive_only else np.abs(weights)
    order = [i for i in np.argsort(-key, kind="stable") if keep[i]]
    if top_n is not None and top_n > 0:
        order = order[:top_n]
    mask = np.zeros(len(weights), dtype=bool)
    mask[order] = True
    return mask


def pros_and_cons(
    image: np.ndarray,
    segments: np.ndarray,
    weights: np.ndarray,
    *,
    top_n: int | None = 5,
    positive_only: bool = False,
    hide_rest: bool = False,
    opacity: float = 0.45,
    boundaries: bool = True,
) -> np.ndarray:
    """lime-style picture: selected segments tinted green (for) or red (against)."""
    image = np.asarray(image, dtype=np.uint8)
    mask = selected_segments(weights, top_n, positive_only)
    out = image.astype(np.float32)
    if hide_rest:
        out[~mask[segments]] = out[~mask[segments]] * 0.15 + 255 * 0.85 * 0.6
    positive = mask & (np.asarray(weights) > 0)
    negative = mask & (np.asarray(weights) < 0)
    for sel, colour in ((positive, (0, 170, 0)), (negative, (220, 0, 0))):
        pix = sel[segments]
        out[pix] = out[pix] * (1 - opacity) + np.array(colour, np.float32) * opacity
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if boundaries:
        out = draw_boundaries(out, np.where(mask[segments], segments, -1))
    return out


UNSETTLED_TOP = 10
"""Without a top-N, the unsettled regions among the 10 strongest by |weight| are marked."""


def mark_unsettled(image: np.ndarray, segments: np.ndarray, unsettled: np.ndarray,
                   colour=(255, 255, 255), dash: int = 3) -> np.ndarray:
    """Dotted outline around the segments whose sign the samples do not settle.

    ``unsettled`` is a bool per segment (``Explanation.unsettled()``). The outline is dashed
    (``dash`` pixels on, ``dash`` off along the diagonals) so that it reads as "uncertain" next
    to the solid boundaries of ``draw_boundaries``.
    """
    from skimage.segmentation import find_boundaries

    out = np.array(image, dtype=np.uint8, copy=True)
    unsettled = np.asarray(unsettled, dtype=bool)
    if not unsettled.any():
        return out
    edge = find_boundaries(np.where(unsettled[segments], segments, -1), mode="inner", background=-1)
    rows, cols = np.indices(edge.shape)
    out[edge & (((rows + cols) // max(1, int(dash))) % 2 == 0)] = colour
    return out


def render_explanation(
    image: np.ndarray,
    exp: Explanation,
    *,
    limit: float | None = None,
    cmap: str = DEFAULT_VIEW["cmap"],
    opacity: float = DEFAULT_VIEW["opacity"],
    style: str = "heatmap",
    positive_only: bool = False,
    top_n: int | None = None,
    hide_rest: bool = False,
    boundaries: bool = False,
    upsampling: str = "bilinear",
    uncertainty: bool = True,
) -> np.ndarray:
    """One picture for one explanation; never recomputes the explanation.

    ``uncertainty``: dotted outlines (``mark_unsettled``) around the shown regions whose sign
    the samples do not settle (the top-N shown, or the ``UNSETTLED_TOP`` strongest).
    """
    if style == "segments" and exp.segments is not None and exp.segment_weights is not None:
        out = pros_and_cons(
            image, exp.segments, exp.segment_weights, top_n=top_n or None,
            positive_only=positive_only, hide_rest=hide_rest, boundaries=boundaries,
        )
        return _mark(out, exp, top_n, positive_only) if uncertainty else out
    heat = exp.heatmap
    if exp.segments is not None and exp.segment_weights is not None and (top_n or hide_rest):
        mask = selected_segments(exp.segment_weights, top_n or None, positive_only)
        heat = np.where(mask[exp.segments], heat, 0.0)
    out = overlay(image, heat, limit=limit, cmap=cmap, opacity=opacity,
                  positive_only=positive_only, upsampling=upsampling)
    if hide_rest and exp.segments is not None and exp.segment_weights is not None:
        mask = selected_segments(exp.segment_weights, top_n or None, positive_only)
        dim = ~mask[exp.segments]
        out[dim] = (out[dim].astype(np.float32) * 0.25 + 191).astype(np.uint8)
    if boundaries and exp.segments is not None:
        out = draw_boundaries(out, exp.segments)
    return _mark(out, exp, top_n, positive_only) if uncertainty else out


def _mark(picture: np.ndarray, exp: Explanation, top_n: int | None, positive_only: bool) -> np.ndarray:
    if exp.segments is None or exp.segment_weights is None or exp.segment_std is None:
        return picture
    shown = selected_segments(exp.segment_weights, top_n or UNSETTLED_TOP, positive_only)
    return mark_unsettled(picture, exp.segments, exp.unsettled() & shown)


CONCEPT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (145, 30, 180), (70, 240, 240),
    (245, 130, 48), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (0, 0, 128), (128, 128, 128),
)
"""One distinct colour per concept (Sasha Trubetskoy's 16 colours), concept k → colour k."""


def render_concepts(image: np.ndarray, maps: np.ndarray, opacity: float = 0.6) -> np.ndarray:
    """Concepts as coloured regions: each pixel takes the colour of its strongest concept,
    blended in proportion to that concept's strength there (maps (K, H, W) ≥ 0, each peaking
    at 1 as ``explainers.dff`` scales them); pixels without any concept keep the photo."""
    image = np.asarray(image)
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[1:] != image.shape[:2]:
        raise ExplainerError(f"concept maps {maps.shape} do not match the image {image.shape[:2]}")
    if len(maps) > len(CONCEPT_COLOURS):
        raise ExplainerError(f"at most {len(CONCEPT_COLOURS)} concepts can be coloured")
    strongest = np.argmax(maps, axis=0)
    strength = np.clip(np.take_along_axis(maps, strongest[None], axis=0)[0], 0.0, 1.0)
    colours = np.asarray(CONCEPT_COLOURS, dtype=np.float32)[strongest]
    alpha = (float(opacity) * strength)[..., None]
    out = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def concept_legend(top: Sequence[Sequence[tuple[int, str, float]]]) -> list[tuple[tuple[int, int, int], str]]:
    """(colour, "name 87% · name 5%") per concept, from ``extras["concept_top"]``."""
    return [
        (CONCEPT_COLOURS[k], " · ".join(f"{name} {p:.0%}" for _, name, p in cats))
        for k, cats in enumerate(top)
    ]


def grid(images: Sequence[Sequence[np.ndarray]], pad: int = 6, background: int = 255) -> np.ndarray:
    """Tile rows of equally sized RGB images into one picture (for PNG export)."""
    rows = [list(r) for r in images if len(r)]
    if not rows:
        raise ExplainerError("nothing to tile")
    h = max(im.shape[0] for r in rows for im in r)
    w = max(im.shape[1] for r in rows for im in r)
    ncols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), background, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + im.shape[0], x : x + im.shape[1]] = im
    return out
