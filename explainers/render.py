"""Turning signed, unnormalised explanation maps into pictures.

This is the only place that normalises: every method stores its raw map, and a comparison
uses one shared symmetric scale (``shared_limit``) so that colours mean the same in every
column. All functions are pure numpy (+ Pillow for numbers) and return RGB uint8 images.

One meaning of colour everywhere: the high end of every colour map (red, orange, yellow)
means "pushes the model towards the label", the low end "pushes away"; the pros & cons
style uses the same two end colours.
"""
from __future__ import annotations

import base64
import io
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from explainers.base import ExplainerError, Explanation, upsample

# Diverging and sequential colormaps as (position, RGB) anchors, interpolated linearly.
# Position 1.0 always means "towards the label".
COLORMAPS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "blue-white-red": [(0.0, (33, 102, 172)), (0.5, (247, 247, 247)), (1.0, (178, 24, 43))],
    # Colour-blind safe (ColorBrewer PuOr ends): no red/green contrast needed.
    "blue-orange": [(0.0, (33, 102, 172)), (0.5, (247, 247, 247)), (1.0, (230, 97, 1))],
    "purple-white-green": [(0.0, (118, 42, 131)), (0.5, (247, 247, 247)), (1.0, (27, 120, 55))],
    "cool-warm": [(0.0, (59, 76, 192)), (0.5, (221, 221, 221)), (1.0, (180, 4, 38))],
    "jet": [
        (0.0, (0, 0, 131)), (0.125, (0, 60, 170)), (0.375, (5, 255, 255)),
        (0.625, (255, 255, 0)), (0.875, (250, 0, 0)), (1.0, (128, 0, 0)),
    ],
    # Colour-blind safe and ordered by lightness: a magnitude scale.
    "viridis": [
        (0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)), (1.0, (253, 231, 37)),
    ],
}
DIVERGING = ("blue-white-red", "blue-orange", "purple-white-green", "cool-warm")
COLOURBLIND_SAFE = ("blue-orange", "viridis")
COLORMAP_TITLES = {
    "blue-white-red": "blue – red",
    "blue-orange": "blue – orange (colour-blind safe)",
    "purple-white-green": "purple – green",
    "cool-warm": "cool – warm",
    "jet": "jet (rainbow)",
    "viridis": "viridis (colour-blind safe, strength)",
}
WEAK = 0.1
"""Below this fraction of the colour limit a pixel keeps the photo untouched."""
OUTLINE = ((255, 255, 255), (20, 20, 20))
"""Top-region outlines: a white line with a dark line outside it, visible on any photo."""
OUTLINE_SEGMENTS = 3
OUTLINE_PERCENT = 10
"""What "outline the top regions" outlines: 3 superpixels, or the strongest 10 % of a pixel map."""


DEFAULT_VIEW: dict = {
    "style": "heatmap", "opacity": 0.7, "cmap": "blue-white-red", "boundaries": False,
    "positive_only": False, "top_n": None, "hide_rest": False, "upsampling": "bilinear",
    "outline_top": True,
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


def effective_cmap(cmap: str, positive_only: bool) -> str:
    """The map actually drawn: "positive only" on a diverging map shows strength on viridis."""
    if cmap not in COLORMAPS:
        raise ExplainerError(f"unknown colormap {cmap!r}; choose from {', '.join(COLORMAPS)}")
    return "viridis" if positive_only and cmap in DIVERGING else cmap


def end_colours(cmap: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(towards, away): the colours of the map's high and low ends."""
    anchors = COLORMAPS[effective_cmap(cmap, False)]
    return tuple(anchors[-1][1]), tuple(anchors[0][1])  # type: ignore[return-value]


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


def strength_alpha(strength: np.ndarray, opacity: float) -> np.ndarray:
    """Opacity from |value| / limit: 0 below ``WEAK``, rising to ``opacity`` at the limit.

    The ramp is convex (power 1.5) so that broad moderate maps (Grad-CAM) tint lightly and
    the strongest regions stand out.
    """
    ramp = np.clip((np.asarray(strength, np.float32) - WEAK) / (1.0 - WEAK), 0.0, 1.0)
    return opacity * ramp ** 1.5


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
    """Blend a heatmap over the image: weak values leave the photo as it is, strong ones stand out.

    The tint's opacity follows |value| (zero below ``WEAK`` of the limit, ``opacity`` at the
    limit). On a diverging map the colour is the end colour of the sign (a pale mid-tone would
    wash the photo out); on a sequential map the colour itself carries the value.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ExplainerError("opacity must be between 0 and 1")
    image = np.asarray(image, dtype=np.uint8)
    heat = upsample(heatmap, image.shape[:2], upsampling)
    values = normalise(heat, limit, positive_only)
    drawn = effective_cmap(cmap, positive_only)
    if positive_only:
        strength = values
    else:
        strength = np.abs(values - 0.5) * 2.0
    if drawn in DIVERGING:
        colours = colormap(np.where(values >= 0.5, 1.0, 0.0), drawn)
    else:
        colours = colormap(values, drawn)
    alpha = strength_alpha(strength, opacity)[..., None]
    blended = image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def draw_boundaries(image: np.ndarray, segments: np.ndarray, colour=(255, 255, 0)) -> np.ndarray:
    """Mark superpixel boundaries (scikit-image) on an RGB uint8 image."""
    from skimage.segmentation import find_boundaries

    out = np.array(image, dtype=np.uint8, copy=True)
    # background=-1: pros_and_cons marks unselected pixels with -1, and segment 0 is a real segment.
    out[find_boundaries(segments, mode="inner", background=-1)] = colour
    return out


def outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Outline a region: a white line just inside its border and a dark one just outside."""
    from scipy.ndimage import binary_dilation, binary_erosion

    out = np.array(image, dtype=np.uint8, copy=True)
    mask = np.asarray(mask, bool)
    if mask.shape != out.shape[:2]:
        mask = upsample(mask.astype(np.float32), out.shape[:2], "nearest") > 0.5
    if not mask.any():
        return out
    inner = mask & ~binary_erosion(mask, iterations=2, border_value=0)
    outer = binary_dilation(mask, iterations=1) & ~mask
    out[outer] = OUTLINE[1]
    out[inner] = OUTLINE[0]
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


def top_pixels(heatmap: np.ndarray, percent: float | None = None, positive_only: bool = False) -> np.ndarray:
    """Pixel maps' equivalent of top-N segments: the strongest ``percent`` % of pixels.

    By |value| (or by value with ``positive_only``, which also drops values ≤ 0); zeros are
    never selected. ``percent`` None or ≤ 0 keeps every non-zero (positive) pixel.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    key = heat if positive_only else np.abs(heat)
    candidates = key > 0
    if percent is None or percent <= 0 or not candidates.any():
        return candidates
    count = max(1, int(round(key.size * min(float(percent), 100.0) / 100.0)))
    flat = key.ravel()
    order = np.argsort(-flat, kind="stable")[:count]
    mask = np.zeros(flat.size, bool)
    mask[order] = True
    return mask.reshape(key.shape) & candidates


def top_mask(exp: Explanation, top_n: int | None, positive_only: bool = False) -> np.ndarray:
    """Pixel mask of the selection: top-N segments for superpixel methods, top-N % of pixels otherwise."""
    if exp.segments is not None and exp.segment_weights is not None:
        return selected_segments(exp.segment_weights, top_n or None, positive_only)[exp.segments]
    return top_pixels(exp.heatmap, top_n or None, positive_only)


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
    cmap: str = "blue-white-red",
) -> np.ndarray:
    """lime-style picture: selected segments tinted with the map's "towards" or "away" colour."""
    image = np.asarray(image, dtype=np.uint8)
    mask = selected_segments(weights, top_n, positive_only)
    out = image.astype(np.float32)
    if hide_rest:
        out[~mask[segments]] = out[~mask[segments]] * 0.15 + 255 * 0.85 * 0.6
    towards, away = end_colours(cmap)
    positive = mask & (np.asarray(weights) > 0)
    negative = mask & (np.asarray(weights) < 0)
    for sel, colour in ((positive, towards), (negative, away)):
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
    outline_top: bool = False,
    uncertainty: bool = True,
) -> np.ndarray:
    """One picture for one explanation; never recomputes the explanation.

    ``top_n`` / ``hide_rest`` / ``positive_only`` act on segments for superpixel methods and on
    the top ``top_n`` % of pixels for pixel maps (Grad-CAM, gradients, occlusion).
    ``outline_top`` outlines the strongest regions pushing towards the label
    (``OUTLINE_SEGMENTS`` superpixels, or the top ``OUTLINE_PERCENT`` % of a pixel map).
    ``uncertainty``: dotted outlines (``mark_unsettled``) around the shown regions whose sign
    the samples do not settle (the top-N shown, or the ``UNSETTLED_TOP`` strongest).
    """
    image = np.asarray(image, dtype=np.uint8)
    segmented = exp.segments is not None and exp.segment_weights is not None
    if style == "segments" and segmented:
        out = pros_and_cons(
            image, exp.segments, exp.segment_weights, top_n=top_n or None,
            positive_only=positive_only, hide_rest=hide_rest, boundaries=boundaries, cmap=cmap,
        )
    else:
        heat = exp.heatmap
        keep = None
        if top_n or hide_rest:
            keep = top_mask(exp, top_n, positive_only)
            if keep.shape != heat.shape:
                heat = upsample(heat, keep.shape, upsampling)
            heat = np.where(keep, heat, 0.0)
        out = overlay(image, heat, limit=limit, cmap=cmap, opacity=opacity,
                      positive_only=positive_only, upsampling=upsampling)
        if hide_rest and keep is not None:
            if keep.shape != out.shape[:2]:
                keep = upsample(keep.astype(np.float32), out.shape[:2], "nearest") > 0.5
            dim = ~keep
            out[dim] = (out[dim].astype(np.float32) * 0.25 + 191).astype(np.uint8)
        if boundaries and exp.segments is not None:
            out = draw_boundaries(out, exp.segments)
    if uncertainty:
        out = _mark(out, exp, top_n, positive_only)
    if outline_top:
        n = OUTLINE_SEGMENTS if segmented else OUTLINE_PERCENT
        out = outline(out, top_mask(exp, n, positive_only=True))
    return out


def _mark(picture: np.ndarray, exp: Explanation, top_n: int | None, positive_only: bool) -> np.ndarray:
    if exp.segments is None or exp.segment_weights is None or exp.segment_std is None:
        return picture
    shown = selected_segments(exp.segment_weights, top_n or UNSETTLED_TOP, positive_only)
    return mark_unsettled(picture, exp.segments, exp.unsettled() & shown)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def numbered_regions(image: np.ndarray, regions: Sequence[np.ndarray], size: int = 0) -> np.ndarray:
    """Outline each region mask and put its number (1, 2, …) in a white disc at its centre."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import distance_transform_edt

    out = np.array(image, dtype=np.uint8, copy=True)
    for mask in regions:
        out = outline(out, mask)
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    h, w = out.shape[:2]
    size = size or max(12, min(h, w) // 14)
    font = _font(size)
    for number, mask in enumerate(regions, start=1):
        mask = np.asarray(mask, bool)
        if mask.shape != (h, w):
            mask = upsample(mask.astype(np.float32), (h, w), "nearest") > 0.5
        if not mask.any():
            continue
        # The point deepest inside the region (a centroid may fall outside a ring-shaped one).
        depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
        rad = int(size * 0.75)
        r = int(np.clip(r, rad, h - rad - 1))
        c = int(np.clip(c, rad, w - rad - 1))
        draw.ellipse((c - rad, r - rad, c + rad, r + rad), fill=(255, 255, 255), outline=(20, 20, 20), width=2)
        draw.text((c, r), str(number), fill=(20, 20, 20), font=font, anchor="mm")
    return np.asarray(pil)


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


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 RGB (or grey) array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(image: np.ndarray | bytes) -> str:
    """The one PNG data-URI helper (HTML reports, the audit summary, plotly figures): images travel
    inside the file. Takes an array or PNG bytes already encoded."""
    data = image if isinstance(image, bytes) else png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
