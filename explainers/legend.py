"""Colour legends: what the colours of an overlay mean, for the colour map actually drawn.

One legend = a colour bar, the value at each end in the method's units, and the meaning of
each end in words ("pushes towards tiger cat" / "pushes away"). The same facts are drawn as a
PNG (PNG grid, anywhere a picture is needed) and as HTML (dashboard, HTML report); both come
from :func:`legend_for`, so they cannot disagree.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from explainers.render import (
    COLORMAPS,
    DIVERGING,
    WEAK,
    colormap,
    effective_cmap,
    strength_alpha,
)

# What one unit of each family's map is. Keyed by the registry's ``family``.
FAMILY_UNITS: dict[str, tuple[str, float]] = {
    "perturbation": ("points of probability", 100.0),
    "occlusion": ("points of probability", 100.0),
    "cam": ("relative strength (no unit)", 1.0),
    "gradient": ("gradient strength (no unit)", 1.0),
}


@dataclass(frozen=True)
class Legend:
    """Everything a colour legend says; ``limit`` is in the map's own units."""

    cmap: str  # the colour map actually drawn (see ``render.effective_cmap``)
    label_name: str
    limit: float
    units: str
    scale: float = 1.0  # display multiplier (probability → points)
    positive_only: bool = False  # the view's "positive only" (drawn on a sequential map)
    title: str = ""
    signed: bool = True  # False: the map is never negative, only the towards half is shown

    @property
    def one_sided(self) -> bool:
        """The bar runs from 0 (no push) to the limit: nothing below 0 is drawn or possible."""
        return self.positive_only or not self.signed

    @property
    def high_text(self) -> str:
        return f"pushes towards {self.label_name}"

    @property
    def low_text(self) -> str:
        return "no push" if self.one_sided else f"pushes away from {self.label_name}"

    def _value(self, v: float) -> str:
        shown = v * self.scale
        text = f"{shown:.2g}" if abs(shown) < 10 else f"{shown:.0f}"
        return text if v <= 0 else f"+{text}"

    @property
    def low_value(self) -> str:
        return "0" if self.one_sided else self._value(-self.limit)

    @property
    def high_value(self) -> str:
        return self._value(self.limit)

    @property
    def sentence(self) -> str:
        """The legend in one line of plain text (alt text, hover, captions)."""
        return (f"Colour scale{f' for {self.title}' if self.title else ''}: {self.low_value} = "
                f"{self.low_text}, {self.high_value} = {self.high_text} ({self.units}); "
                f"values under {WEAK:.0%} of the scale leave the photo as it is.")


def relative_legend(label_name: str, signed: bool = False, title: str = "") -> Legend:
    """The legend of a map scaled to its own strongest point, as ``render.overlay`` draws it:
    positive-only (viridis; the audit's mean maps, Grad-CAM thumbnails) or ``signed``
    (blue-white-red; KernelSHAP or LIME thumbnails)."""
    return Legend(cmap=effective_cmap("blue-white-red", not signed), label_name=label_name, limit=1.0,
                  units="relative: each picture scaled to its own strongest point",
                  positive_only=not signed, title=title)


def thumbnail_legends(signed: Iterable[bool | None], label_name: str = "its top label") -> list[Legend]:
    """The legends a set of audit thumbnails needs, from each one's ``map_signed``: one when all
    were drawn alike, both (titled) when they differ or are not known (results of older runs)."""
    kinds = {None if s is None or s != s else bool(s) for s in signed}
    if kinds == {False}:
        return [relative_legend(label_name)]
    if kinds == {True}:
        return [relative_legend(label_name, signed=True)]
    return [relative_legend(label_name, title="maps that are never negative"),
            relative_legend(label_name, signed=True, title="maps with both signs")]


def legend_for(label_name: str, family: str, limit: float, cmap: str = "blue-white-red",
               positive_only: bool = False, title: str = "", signed: bool = True) -> Legend:
    """The legend of one method's overlay for one label (``signed``: ``Explanation.signed``)."""
    units, scale = FAMILY_UNITS.get(family, ("no unit", 1.0))
    return Legend(cmap=effective_cmap(cmap, positive_only), label_name=label_name,
                  limit=float(limit), units=units, scale=scale, positive_only=positive_only, title=title,
                  signed=signed)


def bar(legend: Legend, width: int = 256, height: int = 14) -> np.ndarray:
    """The colour bar as the overlay draws it over a white page (RGB uint8, low end on the left)."""
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)
    if legend.one_sided:
        strength = x
    else:
        strength = np.abs(x - 0.5) * 2.0
    if legend.cmap in DIVERGING and not legend.positive_only:  # the sign's end colour, faded by strength
        colours = colormap(np.where(x >= 0.5, 1.0, 0.0) if legend.signed else np.ones_like(x),
                           legend.cmap).astype(np.float32)
        alpha = strength_alpha(strength, 1.0)[:, None]
        row = 255.0 * (1 - alpha) + colours * alpha
    else:  # a never-negative map on a two-sided scale uses its upper half (render.normalise)
        row = colormap(x if legend.positive_only or legend.signed else 0.5 + 0.5 * x,
                       legend.cmap).astype(np.float32)
    row = np.clip(np.round(row), 0, 255).astype(np.uint8)
    return np.repeat(row[None], height, axis=0)


def font(size: int, bold: bool = False):
    """DejaVu Sans where the system has it (full Unicode: −, —, accents), else Pillow's own font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def legend_png(legend: Legend, width: int = 320) -> np.ndarray:
    """The legend as a picture: title, bar with a dark frame, end values, end meanings, units."""
    from PIL import Image, ImageDraw

    small = font(10)
    title_font = font(12, bold=True)
    pad = 6
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    two_lines = (probe.textlength(legend.low_text, font=small) + probe.textlength(legend.high_text, font=small)
                 + 12 > width - 2 * pad)
    height = (86 if legend.title else 70) + (14 if two_lines else 0)
    pil = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(pil)
    y = 2
    if legend.title:
        draw.text((pad, y), legend.title, fill=(20, 20, 20), font=title_font)
        y += 16
    strip = bar(legend, width - 2 * pad, 14)
    pil.paste(Image.fromarray(strip), (pad, y))
    draw.rectangle((pad - 1, y - 1, width - pad, y + 14), outline=(60, 60, 60))
    y += 17
    draw.text((pad, y), legend.low_value, fill=(20, 20, 20), font=small)
    draw.text((width - pad, y), legend.high_value, fill=(20, 20, 20), font=small, anchor="ra")
    if not legend.one_sided:
        draw.text((width // 2, y), "0", fill=(20, 20, 20), font=small, anchor="ma")
    y += 14
    room = width - 2 * pad
    side_by_side = (draw.textlength(legend.low_text, font=small) + draw.textlength(legend.high_text, font=small)
                    + 12 <= room)
    if side_by_side:
        draw.text((pad, y), legend.low_text, fill=(20, 20, 20), font=small)
        draw.text((width - pad, y), legend.high_text, fill=(20, 20, 20), font=small, anchor="ra")
    else:  # narrow: one meaning per line, the low end's on the left, the high end's on the right
        draw.text((pad, y), _fit(draw, legend.low_text, small, room), fill=(20, 20, 20), font=small)
        y += 14
        draw.text((width - pad, y), _fit(draw, legend.high_text, small, room), fill=(20, 20, 20), font=small,
                  anchor="ra")
    y += 14
    draw.text((width // 2, y), legend.units, fill=(90, 90, 90), font=small, anchor="ma")
    return np.asarray(pil)


def _fit(draw, text: str, font, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _png_uri(image: np.ndarray) -> str:
    from explainers.render import png_data_uri  # the one PNG data-URI helper

    return png_data_uri(image)


def legend_html(legend: Legend) -> str:
    """The legend as a small self-contained HTML block (the bar is an <img>, so it prints).

    Bar, then the end values (and 0) under the bar's ends, then what each end means, then the
    units; the title only when given (the report's figures already have one).
    """
    esc = html.escape
    row = "display:flex;justify-content:space-between;gap:6px"
    middle = "" if legend.one_sided else "<span>0</span>"
    return (
        f"<div class='xai-legend' role='figure' aria-label='{esc(legend.sentence)}' "
        "style='font-size:0.78em;line-height:1.25;margin:2px 0 8px 0;break-inside:avoid'>"
        + (f"<div class='xai-legend-title'><b>{esc(legend.title)}</b></div>" if legend.title else "")
        + f"<img class='xai-legend-bar' alt='colour bar' src='{_png_uri(bar(legend, 256, 12))}' "
        "style='width:100%;height:12px;border:1px solid #555;display:block;object-fit:fill;max-width:none'>"
        f"<div style='{row}'><span class='xai-legend-low-value'>{esc(legend.low_value.replace('-', '−'))}</span>"
        f"{middle}<span class='xai-legend-high-value'>{esc(legend.high_value)}</span></div>"
        f"<div style='{row}'><span class='xai-legend-low'>{esc(legend.low_text)}</span>"
        f"<span class='xai-legend-high' style='text-align:right'>{esc(legend.high_text)}</span></div>"
        f"<div class='xai-legend-units' style='color:#666;text-align:center'>{esc(legend.units)}</div>"
        "</div>"
    )


def plotly_colorscale(cmap: str, upper_half: bool = False) -> list[list]:
    """A Plotly colour scale with the same anchors as ``render.COLORMAPS[cmap]`` (``upper_half``:
    only 0.5..1 of it, stretched to 0..1, for a never-negative map on a diverging scale)."""
    anchors = COLORMAPS[cmap]
    if upper_half:  # from the colour at 0.5 (an anchor of the diverging maps, not of jet)
        middle = tuple(int(v) for v in colormap(np.array([0.5]), cmap)[0])
        anchors = [(0.0, middle)] + [(2 * p - 1, c) for p, c in anchors if p > 0.5]
    return [[p, f"rgb{tuple(c)}"] for p, c in anchors]
