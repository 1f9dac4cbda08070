"""Known answers for explainers.render (colours, scales, segment pictures, tiling) and
explainers.summary (positions in words, agreement, captions)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from explainers.base import ExplainerError, Explanation
from explainers.render import (
    COLORMAPS,
    OUTLINE,
    colormap,
    grid,
    method_limits,
    normalise,
    numbered_regions,
    outline,
    overlay,
    pros_and_cons,
    render_explanation,
    selected_segments,
    shared_limit,
    top_mask,
    top_pixels,
)
from explainers.metrics import pool_to_segments as pool
from explainers.summary import caption, mean_rank_correlation as agreement, where


def exp(method: str, heatmap, segments=None, weights=None, label=3, name="tabby", score=0.8) -> Explanation:
    return Explanation(method=method, label=label, label_name=name, score=score,
                       heatmap=np.asarray(heatmap, np.float32), segments=segments,
                       segment_weights=weights)


def halves(h: int = 4, w: int = 6) -> np.ndarray:
    """Two segments: 0 on the left half, 1 on the right half."""
    seg = np.zeros((h, w), np.int32)
    seg[:, w // 2 :] = 1
    return seg


# ---------------------------------------------------------------------- colours and scales
@pytest.mark.parametrize("name", sorted(COLORMAPS))
def test_colormap_hits_its_anchors(name):
    anchors = COLORMAPS[name]
    out = colormap(np.array([p for p, _ in anchors]), name)
    np.testing.assert_array_equal(out, np.array([rgb for _, rgb in anchors], np.uint8))


def test_colormap_interpolates_and_clips():
    out = colormap(np.array([0.25, -1.0, 2.0]), "blue-white-red")
    np.testing.assert_array_equal(out[0], np.round((np.array([33, 102, 172]) + [247, 247, 247]) / 2))
    np.testing.assert_array_equal(out[1], [33, 102, 172])  # below 0 → the first anchor
    np.testing.assert_array_equal(out[2], [178, 24, 43])  # above 1 → the last anchor
    assert out.dtype == np.uint8
    with pytest.raises(ExplainerError, match="unknown colormap"):
        colormap(np.zeros(3), "rainbow")


def test_normalise_is_symmetric_with_zero_in_the_middle():
    values = np.array([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(normalise(values, limit=2.0), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(normalise(values, limit=2.0, positive_only=True), [0, 0, 0, 0, 0.5, 1, 1])
    # without a limit: the map's own robust limit (its 99.5th percentile of |value|)
    assert normalise(np.array([0.0, 3.0, -3.0]))[0] == 0.5


def test_shared_limit():
    assert shared_limit([np.array([1.0, -3.0]), np.array([[2.0]])], percentile=100) == 3.0
    assert shared_limit([np.zeros(5)]) == 1.0  # nothing to scale: a neutral limit, not 0
    assert shared_limit([]) == 1.0
    robust = shared_limit([np.r_[np.ones(999), 1000.0]], percentile=99.0)
    assert robust == pytest.approx(1.0)  # one extreme pixel does not set the scale


def test_method_limits_share_a_scale_per_method_only():
    results = [exp("a", [[1.0, -2.0]]), exp("a", [[4.0, 0.0]], label=5), exp("b", [[0.01, 0.0]])]
    limits = method_limits(results, percentile=100)
    assert limits == {"a": 4.0, "b": pytest.approx(0.01)}


def test_overlay_known_pixel():
    image = np.full((2, 2, 3), 100, np.uint8)
    # zero attribution: the photo is left untouched
    out = overlay(image, np.zeros((2, 2)), limit=1.0, opacity=0.5)
    np.testing.assert_array_equal(out, image)
    # weak attribution (under WEAK of the limit): still the photo, no wash-out
    out = overlay(image, np.full((2, 2), 0.09), limit=1.0, opacity=0.5)
    np.testing.assert_array_equal(out, image)
    # 55 % of the limit: the red end (not a pale mid-tone) at 0.5 × ((0.55 − 0.1) / 0.9) ** 1.5
    alpha = 0.5 * 0.5 ** 1.5
    out = overlay(image, np.full((2, 2), 0.55), limit=1.0, opacity=0.5)
    np.testing.assert_allclose(out[0, 0], np.round(100 * (1 - alpha) + np.array([178, 24, 43]) * alpha), atol=1)
    # negative: the blue end
    out = overlay(image, np.full((2, 2), -0.55), limit=1.0, opacity=0.5)
    np.testing.assert_allclose(out[0, 0], np.round(100 * (1 - alpha) + np.array([33, 102, 172]) * alpha), atol=1)
    # full positive attribution: the red end at full opacity 0.5
    out = overlay(image, np.ones((2, 2)), limit=1.0, opacity=0.5)
    np.testing.assert_array_equal(out[0, 0], np.round(100 * 0.5 + np.array([178, 24, 43]) * 0.5))
    with pytest.raises(ExplainerError):
        overlay(image, np.zeros((2, 2)), opacity=1.5)


def test_overlay_on_a_sequential_map_uses_the_value_colour():
    image = np.full((1, 1, 3), 0, np.uint8)
    out = overlay(image, np.ones((1, 1)), limit=1.0, opacity=1.0, cmap="viridis")
    np.testing.assert_array_equal(out[0, 0], [253, 231, 37])  # the top of viridis


def test_red_means_towards_in_every_style():
    """One meaning of colour: the map's high end marks "towards" in heatmaps and pros & cons."""
    image = np.full((4, 6, 3), 128, np.uint8)
    seg = halves()
    weights = np.array([1.0, -1.0], np.float32)
    e = exp("lime", weights[seg], seg, weights)
    for cmap in ("blue-white-red", "blue-orange", "cool-warm"):
        heat = render_explanation(image, e, limit=1.0, cmap=cmap)
        cons = render_explanation(image, e, style="segments", cmap=cmap)
        towards = np.array(COLORMAPS[cmap][-1][1])
        for pic in (heat, cons):
            left, right = pic[0, 0].astype(int), pic[0, 5].astype(int)
            # the "towards" half moved towards the high-end colour, the other half away from it
            assert np.abs(left - towards).sum() < np.abs(right - towards).sum(), (cmap, pic[0])


def test_overlay_upsamples_low_resolution_maps():
    out = overlay(np.zeros((8, 8, 3), np.uint8), np.array([[1.0, -1.0], [-1.0, 1.0]]), limit=1.0)
    assert out.shape == (8, 8, 3)
    assert out[0, 0, 0] > out[0, 0, 2] and out[0, 7, 2] > out[0, 7, 0]  # red top left, blue top right


# ---------------------------------------------------------------------- segments
def test_selected_segments():
    w = np.array([0.1, -0.5, 0.3, -0.05])
    np.testing.assert_array_equal(selected_segments(w, 2), [False, True, True, False])  # by |w|
    np.testing.assert_array_equal(selected_segments(w, 2, positive_only=True), [True, False, True, False])
    np.testing.assert_array_equal(selected_segments(w, 1, positive_only=True), [False, False, True, False])
    np.testing.assert_array_equal(selected_segments(w), [True] * 4)
    np.testing.assert_array_equal(selected_segments(w, None, positive_only=True), [True, False, True, False])


def test_pros_and_cons_colours():
    image = np.full((4, 6, 3), 100, np.uint8)
    seg = halves()
    out = pros_and_cons(image, seg, np.array([1.0, -1.0]), top_n=None, opacity=0.5, boundaries=False)
    np.testing.assert_array_equal(out[0, 0], [139, 62, 72])  # towards: the red end (178, 24, 43) at 50 %
    np.testing.assert_array_equal(out[0, 5], [66, 101, 136])  # away: the blue end (33, 102, 172) at 50 %


def test_pros_and_cons_hides_the_rest():
    image = np.full((4, 6, 3), 100, np.uint8)
    seg = halves()
    out = pros_and_cons(image, seg, np.array([1.0, -0.5]), top_n=1, hide_rest=True, opacity=0.5,
                        boundaries=False)
    np.testing.assert_array_equal(out[0, 0], [139, 62, 72])
    np.testing.assert_array_equal(out[0, 5], [145, 145, 145])  # 100 × 0.15 + 255 × 0.85 × 0.6


@pytest.mark.parametrize("selected", [0, 1])
def test_pros_and_cons_outlines_only_inside_the_selection(selected):
    image = np.full((4, 6, 3), 100, np.uint8)
    weights = np.array([1.0, 0.5]) if selected == 0 else np.array([0.5, 1.0])
    marked = pros_and_cons(image, halves(), weights, top_n=1, opacity=0.5)
    yellow = np.all(marked == [255, 255, 0], axis=-1)
    inside, outside = (2, 3) if selected == 0 else (3, 2)  # the columns along the border
    assert yellow[:, inside].all() and not yellow[:, outside].any()


def test_render_explanation_styles():
    image = np.full((4, 6, 3), 100, np.uint8)
    seg = halves()
    weights = np.array([1.0, -1.0], np.float32)
    e = exp("lime", weights[seg], seg, weights)
    np.testing.assert_array_equal(
        render_explanation(image, e, style="segments"),
        pros_and_cons(image, seg, weights, top_n=None, boundaries=False),
    )
    only_top = render_explanation(image, e, limit=1.0, top_n=1, opacity=0.5)
    neutral = overlay(image, np.zeros((4, 6)), limit=1.0, opacity=0.5)
    np.testing.assert_array_equal(only_top[:, 3:], neutral[:, 3:])  # unselected segment: zero
    assert not np.array_equal(only_top[:, :3], neutral[:, :3])


def test_top_n_applies_to_pixel_maps_as_a_percentage_of_pixels():
    heat = np.arange(100, dtype=np.float32).reshape(10, 10) - 49.5  # -49.5 … 49.5, no ties
    image = np.full((10, 10, 3), 128, np.uint8)
    e = exp("gradcam", heat)
    keep = top_pixels(heat, 10)
    assert keep.sum() == 10 and keep[0, :5].all() and keep[9, 5:].all()  # the five most negative and the five most positive
    keep_pos = top_pixels(heat, 10, positive_only=True)
    assert keep_pos.sum() == 10 and keep_pos[9].all() and not keep_pos[:9].any()
    np.testing.assert_array_equal(top_pixels(heat, None, positive_only=True), heat > 0)
    np.testing.assert_array_equal(top_mask(e, 10), keep)
    top = render_explanation(image, e, limit=50.0, top_n=10)
    full = render_explanation(image, e, limit=50.0)
    np.testing.assert_array_equal(top[keep], full[keep])  # the top 10 % keep their colour
    np.testing.assert_array_equal(top[5, 0], image[5, 0])  # a strong pixel outside the top 10 %: photo
    assert not np.array_equal(full[1, 0], image[1, 0])
    hidden = render_explanation(image, e, limit=50.0, top_n=10, hide_rest=True)
    assert (hidden[~keep] == int(128 * 0.25 + 191)).all()  # the rest is dimmed, as for segments


def test_outline_marks_the_top_regions_in_white_inside_and_dark_outside():
    image = np.full((12, 12, 3), 128, np.uint8)
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    out = outline(image, mask)
    np.testing.assert_array_equal(out[3, 5], OUTLINE[0])
    np.testing.assert_array_equal(out[2, 5], OUTLINE[1])
    np.testing.assert_array_equal(out[6, 6], image[6, 6])  # the inside keeps the picture
    np.testing.assert_array_equal(out[0, 0], image[0, 0])
    seg = halves(12, 12)
    weights = np.array([0.5, -1.0], np.float32)
    drawn = render_explanation(image, exp("lime", weights[seg], seg, weights), limit=1.0, outline_top=True)
    white = np.all(drawn == OUTLINE[0], axis=-1)
    assert white[:, :6].any() and not white[:, 7:].any()  # only the positive segment is outlined


def test_numbered_regions_draws_a_disc_with_the_number():
    image = np.full((120, 120, 3), 100, np.uint8)
    a = np.zeros((120, 120), bool)
    a[10:60, 10:60] = True
    b = np.zeros((120, 120), bool)
    b[70:115, 70:115] = True
    out = numbered_regions(image, [a, b], size=16)
    # a white disc with dark digit pixels at the centre of each region
    for r, c in ((35, 35), (92, 92)):
        patch = out[r - 10 : r + 11, c - 10 : c + 11]
        assert (np.all(patch == 255, axis=-1)).sum() > 100 and (patch.max(axis=-1) < 80).sum() > 5


def test_grid_tiles_with_padding():
    a = np.full((2, 3, 3), 10, np.uint8)
    b = np.full((2, 3, 3), 20, np.uint8)
    c = np.full((2, 3, 3), 30, np.uint8)
    out = grid([[a, b], [c]], pad=1, background=255)
    assert out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out[1:3, 1:4], a)
    np.testing.assert_array_equal(out[1:3, 5:8], b)
    np.testing.assert_array_equal(out[4:6, 1:4], c)
    assert (out[4:6, 5:8] == 255).all() and (out[0] == 255).all() and (out[:, 4] == 255).all()
    with pytest.raises(ExplainerError):
        grid([])


# ---------------------------------------------------------------------- summary
@pytest.mark.parametrize(
    "box, words",
    [
        ((0, 3, 0, 3), "the upper left"),
        ((0, 3, 7, 10), "the upper right"),
        ((7, 10, 0, 3), "the lower left"),
        ((4, 6, 4, 6), "the centre"),
        ((0, 10, 7, 10), "the right side"),
        ((7, 10, 0, 10), "the lower part"),
    ],
)
def test_where(box, words):
    mask = np.zeros((10, 10), bool)
    mask[box[0] : box[1], box[2] : box[3]] = True
    assert where(mask) == words


def test_where_empty():
    assert where(np.zeros((4, 4), bool)) == "no particular area"


def test_caption_for_a_horizontal_band_is_english():
    seg = np.zeros((10, 10), np.int32)
    seg[7:] = 1
    weights = np.array([-0.1, 0.3])
    text = caption([exp("kernel_shap", weights[seg], seg, weights)])
    assert not re.search(r"\bthe (upper|lower) of\b", text), text


def test_pool_is_the_mean_per_segment():
    seg = halves()
    heat = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_allclose(pool(heat, seg), [heat[:, :3].mean(), heat[:, 3:].mean()])


def test_agreement():
    seg = np.arange(16).reshape(4, 4) // 2  # 8 segments
    rng = np.random.default_rng(0)
    heat = rng.normal(size=(4, 4)).astype(np.float32)
    w = pool(heat, seg)
    a = exp("lime", heat, seg, w)
    assert agreement([a, exp("gradcam", heat)]) == pytest.approx(1.0)  # identical maps
    assert agreement([a, exp("gradcam", -heat)]) == pytest.approx(-1.0)  # reversed ranking
    assert agreement([a]) is None  # nothing to compare
    assert agreement([exp("gradcam", heat), exp("saliency", heat)]) is None  # no superpixels


def test_caption_mentions_label_score_region_and_agreement():
    seg = np.zeros((10, 10), np.int32)
    seg[:4, :4] = 1  # upper-left block is segment 1
    weights = np.array([-0.02, 0.25])
    shap = exp("kernel_shap", weights[seg], seg, weights, name="tiger cat", score=0.385)
    text = caption([shap, exp("gradcam", (seg == 1).astype(np.float32))])
    assert "“tiger cat”" in text and "38%" in text and "*" not in text  # plain text, no markdown
    assert "the upper left" in text and "from 38% to about 14%" in text  # 0.385 − 0.25
    assert "agree on this" in text
    disagree = caption([shap, exp("gradcam", (seg == 0).astype(np.float32))])
    assert "disagree" in disagree
    assert caption([]) == ""


# ---------------------------------------------------------------------- uncertainty
def test_caption_never_claims_a_region_whose_sign_is_unsettled():
    seg = np.zeros((10, 10), np.int32)
    seg[:4, :4] = 1  # upper left
    seg[6:, 6:] = 2  # lower right
    weights = np.array([0.0, 0.25, 0.30])
    settled = Explanation(method="kernel_shap", label=3, label_name="cat", score=0.8,
                          heatmap=weights[seg], segments=seg, segment_weights=weights,
                          segment_std=np.array([0.01, 0.01, 0.01]))
    assert "from 80% to about 25%" in caption([settled])  # both regions claimed: 0.8 − (0.25 + 0.30)
    doubtful = Explanation(method="kernel_shap", label=3, label_name="cat", score=0.8,
                           heatmap=weights[seg], segments=seg, segment_weights=weights,
                           segment_std=np.array([0.01, 0.01, 0.2]))  # 0.30 < 1.96 × 0.2
    text = caption([doubtful])
    assert "region 1 (the upper left" in text and "from 80% to about 55%" in text  # only 0.25 claimed
    assert "do not settle whether it helps or hurts" in text
    nothing = Explanation(method="kernel_shap", label=3, label_name="cat", score=0.8,
                          heatmap=weights[seg], segments=seg, segment_weights=weights,
                          segment_std=np.array([1.0, 1.0, 1.0]))
    text = caption([nothing])
    assert "covering" not in text and "looks mostly at" not in text and "do not settle" in text


def test_unsettled_regions_get_a_dotted_outline():
    from explainers.render import mark_unsettled

    seg = np.zeros((12, 12), np.int32)
    seg[:, 6:] = 1
    img = np.zeros((12, 12, 3), np.uint8)
    out = mark_unsettled(img, seg, np.array([False, True]))
    marked = (out == 255).all(axis=-1)
    assert not marked[:, :6].any()  # the settled segment is untouched
    edge = np.zeros((12, 12), bool)
    edge[0, 6:] = edge[-1, 6:] = edge[:, 6] = edge[:, -1] = True
    assert marked[edge].any() and not marked[edge].all()  # dotted, on the outline only
    assert not marked[~edge].any()
    np.testing.assert_array_equal(mark_unsettled(img, seg, np.array([False, False])), img)

    weights = np.array([0.5, 0.01])
    e = Explanation(method="lime", label=0, label_name="x", score=0.5, heatmap=weights[seg],
                    segments=seg, segment_weights=weights, segment_std=np.array([0.01, 0.05]))
    with_marks = render_explanation(img, e, style="segments", top_n=2)
    without = render_explanation(img, e, style="segments", top_n=2, uncertainty=False)
    diff = (with_marks != without).any(axis=-1)
    assert diff.any() and not diff[:, :6].any()
