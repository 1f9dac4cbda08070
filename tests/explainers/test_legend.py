"""Known answers for colour legends (explainers.legend) and stakeholder stories (explainers.summary)."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest

from explainers.base import Explanation
from explainers.legend import bar, legend_for, legend_html, legend_png, relative_legend, thumbnail_legends
from explainers.render import COLORMAPS, colormap
from explainers.summary import regions, story, story_picture, trust_line


def test_legend_texts_follow_the_label_units_and_scale():
    leg = legend_for("tiger cat", "perturbation", 0.041, title="KernelSHAP")
    assert (leg.low_value, leg.high_value) == ("-4.1", "+4.1")  # probability shown in points
    assert leg.high_text == "pushes towards tiger cat" and leg.low_text == "pushes away from tiger cat"
    assert leg.units == "points of probability"
    cam = legend_for("tiger cat", "cam", 3.2, positive_only=True)
    assert (cam.low_value, cam.high_value, cam.low_text) == ("0", "+3.2", "no push")
    assert cam.cmap == "viridis"  # positive only on a diverging map is drawn on viridis


def test_thumbnail_legends_follow_how_the_thumbnails_were_drawn():
    """One legend when every thumbnail was drawn alike, both (titled) when they differ or are
    unknown (an older run's results have no map_signed)."""
    (cam,) = thumbnail_legends([False, False])
    assert cam == relative_legend("its top label") and cam.cmap == "viridis" and cam.low_text == "no push"
    (shap,) = thumbnail_legends([True, True], "tiger cat")
    assert shap.cmap == "blue-white-red" and shap.low_text == "pushes away from tiger cat"
    assert (shap.low_value, shap.high_value) == ("-1", "+1") and "own strongest point" in shap.units
    for mixed in ([True, False], [None], [float("nan"), True]):
        both = thumbnail_legends(mixed)
        assert [lg.positive_only for lg in both] == [True, False] and all(lg.title for lg in both)


@pytest.mark.parametrize("cmap", ["blue-white-red", "blue-orange"])
def test_bar_runs_from_the_away_colour_through_white_to_the_towards_colour(cmap):
    strip = bar(legend_for("x", "perturbation", 1.0, cmap=cmap), width=101, height=3)
    assert strip.shape == (3, 101, 3)
    np.testing.assert_array_equal(strip[0, 0], COLORMAPS[cmap][0][1])
    np.testing.assert_array_equal(strip[0, -1], COLORMAPS[cmap][-1][1])
    np.testing.assert_array_equal(strip[0, 50], [255, 255, 255])  # zero leaves the page (photo) as it is


@pytest.mark.parametrize("cmap", ["blue-white-red", "jet"])
def test_a_never_negative_map_gets_the_half_of_the_scale_it_is_drawn_with(cmap):
    """Grad-CAM (registry: signed=False) drawn on a two-sided scale: the legend runs from 0 "no
    push" to the limit, and its bar is exactly what the overlay paints for 0 → limit over a white
    page (full opacity), so no colour is promised that the picture cannot show."""
    from explainers.render import overlay

    gradcam = Explanation(method="gradcam", label=0, label_name="tiger cat", score=0.4,
                          heatmap=np.linspace(0, 2.0, 64, dtype=np.float32)[None].repeat(2, 0))
    assert not gradcam.signed
    leg = legend_for("tiger cat", "cam", 2.0, cmap=cmap, signed=gradcam.signed)
    assert (leg.low_value, leg.high_value, leg.low_text) == ("0", "+2", "no push") and leg.cmap == cmap
    strip = bar(leg, width=64, height=2)
    painted = overlay(np.full((2, 64, 3), 255, np.uint8), gradcam.heatmap, limit=2.0, cmap=cmap, opacity=1.0)
    if cmap == "jet":  # sequential colours carry the value: the bar shows them unfaded
        painted = colormap(0.5 + 0.5 * np.linspace(0, 1, 64, dtype=np.float32), cmap)[None].repeat(2, 0)
    np.testing.assert_allclose(strip.astype(int), painted.astype(int), atol=1)
    assert "<span>0</span>" not in legend_html(leg)  # 0 is the low end, not the middle
    # a method that can push away keeps both sides even when this map happens to be all positive
    shap = Explanation(method="kernel_shap", label=0, label_name="tiger cat", score=0.4, heatmap=gradcam.heatmap)
    assert shap.signed and legend_for("tiger cat", "perturbation", 2.0, signed=shap.signed).low_text != "no push"
    # a RISE contrast map ("A rather than B") has negative values although RISE maps are never negative
    rise = Explanation(method="rise", label=0, label_name="a", score=0.4, heatmap=np.array([[-1.0, 1.0]]), contrast=1)
    assert rise.signed


def test_legend_png_has_the_bar_and_dark_text():
    pic = legend_png(legend_for("tiger cat", "perturbation", 0.05, title="LIME"), width=320)
    assert pic.shape[1] == 320 and pic.dtype == np.uint8
    rows = [y for y in range(pic.shape[0])
            if np.abs(pic[y, 6].astype(int) - COLORMAPS["blue-white-red"][0][1]).sum() < 10]
    assert rows, "the blue end of the bar is missing"
    below = pic[rows[-1] + 3 :]
    assert (below.max(axis=-1) < 100).sum() > 200  # end values, meanings and units are written


class _Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.imgs: list[dict] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))


def test_legend_html_parses_with_both_meanings_and_an_image_bar():
    parser = _Texts()
    parser.feed(legend_html(legend_for("tiger <cat>", "perturbation", 0.05, title="LIME")))
    texts = parser.texts
    assert texts[:2] == ["LIME", "−5"] and texts[texts.index("−5") + 1 : texts.index("−5") + 3] == ["0", "+5"]
    assert "pushes away from tiger <cat>" in texts  # escaped in HTML, read back as text
    assert "pushes towards tiger <cat>" in texts and "points of probability" in texts
    assert parser.imgs and parser.imgs[0]["src"].startswith("data:image/png;base64,")


def _exp(method, heat, seg=None, w=None, score=0.385, r2=None):
    return Explanation(method=method, label=282, label_name="tiger cat", score=score,
                       heatmap=np.asarray(heat, np.float32), segments=seg, segment_weights=w, r2=r2)


def test_story_numbers_the_regions_it_talks_about_and_estimates_the_drop():
    seg = np.arange(16).reshape(4, 4).repeat(4, 0).repeat(4, 1)  # 16 segments of 4×4 on 16×16
    w = np.zeros(16, np.float32)
    w[[0, 1, 4]] = [0.08, 0.05, 0.02]  # upper left
    w[15] = -0.1
    shap = _exp("kernel_shap", w[seg], seg, w)
    told = story([shap])
    assert len(told.regions) == 3 and told.regions[0].sum() == 16 and told.regions[0][0, 0]
    assert "regions 1–3 (the upper left of the picture)" in told.text
    assert "from 38% to about 24%" in told.text  # 0.385 − (0.08 + 0.05 + 0.02)
    for word in ("kernel_shap", "#282", "R²", "model calls", "**"):
        assert word not in told.text + told.trust
    pic = story_picture(np.full((16, 16, 3), 128, np.uint8), [shap], told, limit=0.1, scale=8)
    assert pic.shape == (128, 128, 3)
    assert (np.all(pic == 255, axis=-1)).sum() > 50  # outlines and number discs


def test_story_names_each_regions_place_when_they_are_far_apart():
    """A big region at the upper left and a small one at the bottom: their common middle is
    the upper left, where the second is not, so each number gets its own place."""
    seg = np.arange(16).reshape(4, 4).repeat(4, 0).repeat(4, 1)
    w = np.zeros(16, np.float32)
    w[[0, 1, 4, 5]] = 0.05  # four segments at the upper left…
    w[14] = 0.06  # …and one at the bottom (row 3, column 2)
    seg[seg == 1] = 0  # the upper-left segments merged into one region (region 2)
    seg[seg == 4] = 0
    seg[seg == 5] = 0
    shap = _exp("kernel_shap", w[seg], seg, w)
    told = story([shap], top=2)
    assert "regions 1 and 2 (1 at the lower part, 2 at the upper left)" in told.text, told.text


def test_story_from_a_pixel_map_uses_its_strongest_connected_parts():
    heat = np.zeros((20, 20), np.float32)
    heat[2:6, 2:6] = 1.0  # 16 px
    heat[14:18, 14:18] = 0.5  # 16 px, weaker
    found = regions(_exp("gradcam", heat))
    assert len(found) == 2 and found[0][3, 3] and found[1][15, 15]
    told = story([_exp("gradcam", heat)])
    assert "regions 1 and 2" in told.text and "covering" not in told.text  # no additive estimate


def test_trust_line_uses_measured_verdicts_first_then_the_fit():
    shap = _exp("kernel_shap", np.ones((2, 2)), r2=0.9)
    good = {"kernel_shap": ["faithful: deletion drops the score fast", "stable across seeds"]}
    assert trust_line(shap, good).startswith("How far to trust it: well")
    bad = {"kernel_shap": ["unstable: top regions change with the seed", "low fit R² 0.21"]}
    line = trust_line(shap, bad)
    assert line.startswith("How far to trust it: with care") and "another random start" in line
    assert "R²" not in line
    assert "imitates the real one well" in trust_line(shap)
    assert "poorly" in trust_line(_exp("lime", np.ones((2, 2)), r2=0.2))
