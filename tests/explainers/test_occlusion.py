"""Occlusion sensitivity: a hand-computed answer on a model with known weights, shared calls."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers import occlusion
from explainers.base import ExplainerError, get_method, make_params
from explainers.context import ExplainContext
from model_zoo.classifier import Classifier


def run(ctx: ExplainContext, labels, **params):
    spec = get_method("occlusion")
    return spec.run(ctx, make_params(spec.params_type, params), list(labels))


def _region_weights() -> np.ndarray:
    """Dense weights (16·16·3, 2): class 0 scores the mean of the top-left 8×8 quadrant,
    class 1 the mean of the bottom-right one (×10, on pixels scaled to 0..1)."""
    w = np.zeros((16, 16, 3, 2), dtype=np.float32)
    w[:8, :8, :, 0] = 10.0 / (8 * 8 * 3)
    w[8:, 8:, :, 1] = 10.0 / (8 * 8 * 3)
    return w.reshape(-1, 2)


@pytest.fixture(scope="module")
def region_model() -> Classifier:
    inp = keras.Input((16, 16, 3))
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(inp))  # logits
    model = keras.Model(inp, out)
    model.get_layer("head").set_weights([_region_weights(), np.zeros(2, np.float32)])
    return Classifier(model, id="region", name="region", preprocessing="unit", batch_size=8)


def _probs(img: np.ndarray) -> np.ndarray:
    logits = (img.reshape(-1).astype(np.float64) / 255.0) @ _region_weights().astype(np.float64)
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _expected(img: np.ndarray, window: int, stride: int, fill_value: int) -> np.ndarray:
    """The definition, pixel by pixel, with the model's math done in numpy."""
    starts = list(range(0, 16 - window + 1, stride))
    if starts[-1] != 16 - window:
        starts.append(16 - window)
    base = _probs(img)
    total = np.zeros((2, 16, 16))
    count = np.zeros((16, 16))
    for r in starts:
        for c in starts:
            occluded = img.copy()
            occluded[r : r + window, c : c + window] = fill_value
            total[:, r : r + window, c : c + window] += (base - _probs(occluded))[:, None, None]
            count[r : r + window, c : c + window] += 1
    return total / count


def test_occlusion_matches_hand_computed_map_and_finds_the_region(region_model):
    img = np.random.default_rng(0).integers(150, 256, (16, 16, 3), dtype=np.uint8)
    ctx = ExplainContext(region_model, img)
    before = region_model.images_seen
    res0, res1 = run(ctx, [0, 1], window=6, stride=4, fill="gray")
    windows = 4 * 4  # starts 0, 4, 8 and 10 (flush with the edge) on each axis
    assert res0.extras["windows"] == windows
    assert region_model.images_seen - before == windows + 1  # + the unoccluded image
    assert res0.model_calls + res1.model_calls == windows + 1

    want = _expected(img, 6, 4, 128)
    np.testing.assert_allclose(res0.heatmap, want[0], atol=1e-5)
    np.testing.assert_allclose(res1.heatmap, want[1], atol=1e-5)
    # the label's region is where hiding hurts; the other label's region helps (signed)
    r, c = res0.peak()
    assert r < 8 and c < 8 and res0.heatmap[:8, :8].min() > 0
    assert res0.heatmap[10:, 10:].max() < 0
    r, c = res1.peak()
    assert r >= 8 and c >= 8
    np.testing.assert_allclose(res0.heatmap, -res1.heatmap, atol=1e-6)  # two classes: p0 + p1 = 1
    assert res0.score == pytest.approx(_probs(img)[0], abs=1e-6)

    # another label later reuses the same occluded predictions
    run(ctx, [1], window=6, stride=4, fill="gray")
    assert region_model.images_seen - before == windows + 1


def test_fills_and_large_window(region_model):
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mean = occlusion.fill_image(img, "mean", 8)
    np.testing.assert_array_equal(mean[3, 4], np.rint(img.reshape(-1, 3).mean(axis=0)))
    assert (occlusion.fill_image(img, "gray", 8) == 128).all()
    assert not occlusion.fill_image(img, "black", 8).any()
    blur = occlusion.fill_image(img, "blur", 8)
    assert blur.dtype == np.uint8 and blur.std() < img.std()

    ctx = ExplainContext(region_model, img)
    black = run(ctx, [0], window=6, stride=3, fill="black")[0]
    np.testing.assert_allclose(black.heatmap, _expected(img, 6, 3, 0)[0], atol=1e-5)
    # a window larger than the image is clamped: one window, a uniform map equal to its drop
    whole = run(ctx, [0], window=64, stride=64, fill="black")[0]
    drop = _probs(img)[0] - _probs(np.zeros_like(img))[0]
    assert whole.extras["windows"] == 1
    np.testing.assert_allclose(whole.heatmap, np.full((16, 16), drop), atol=1e-5)


def test_window_starts_cover_the_edge():
    np.testing.assert_array_equal(occlusion.window_starts(16, 6, 4), [0, 4, 8, 10])
    np.testing.assert_array_equal(occlusion.window_starts(16, 8, 8), [0, 8])
    np.testing.assert_array_equal(occlusion.window_starts(5, 8, 2), [0])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"stride": 40, "window": 32}, "stride must be between 1 and the window"),
        ({"window": 0}, "window must be"),
        ({"fill": "pink"}, "fill must be one of"),
        ({"batch_size": 0}, "batch size"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ExplainerError, match=message):
        make_params(occlusion.OcclusionParams, params)
