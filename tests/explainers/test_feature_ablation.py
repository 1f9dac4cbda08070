"""Feature ablation on your own regions: exact score drops of a model computed by hand."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers.base import ExplainerError
from explainers.context import ExplainContext, SamplingParams
from explainers.feature_ablation import ablation_coalitions
from explainers.runner import run_method
from model_zoo.classifier import Classifier

SIZE = 8
W = np.array([[4.0, -2.0], [-1.0, 3.0], [0.5, 0.5]], np.float32)  # mean RGB (0..1) → 2 logits
B = np.array([0.2, -0.1], np.float32)


@pytest.fixture(scope="module")
def mean_colour_model() -> Classifier:
    """GAP of the [0, 1] image → dense: the probabilities are a closed form of the mean colour."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("head").set_weights([W, B])
    return Classifier(model, id="mean", name="mean", labels=["warm", "cool"], preprocessing="unit")


def by_hand(img: np.ndarray) -> np.ndarray:
    z = (img.reshape(-1, 3).astype(np.float64) / 255.0).mean(axis=0) @ W + B
    e = np.exp(z - z.max())
    return e / e.sum()


def quadrants() -> np.ndarray:
    r = np.arange(SIZE) // (SIZE // 2)
    return (r[:, None] * 2 + r[None, :]).astype(np.int32)


def test_known_drops_with_your_regions(mean_colour_model):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    regions = quadrants() * 5  # ids 0, 5, 10, 15: not consecutive, renumbered by the context
    ctx = ExplainContext(mean_colour_model, img, sampling=SamplingParams(fill="black"), regions=regions)
    assert ctx.segmentation == "regions"
    ctx.probabilities()
    before = mean_colour_model.images_seen
    results = run_method(ctx, "feature_ablation", {}, [0, 1])
    assert mean_colour_model.images_seen - before == 4 + 1  # M + 1 calls
    assert sum(r.model_calls for r in results) == 5

    segs = quadrants()
    full = by_hand(img)
    for r in results:
        np.testing.assert_array_equal(r.segments, segs)
        for q in range(4):
            without = img.copy()
            without[segs == q] = 0
            assert r.segment_weights[q] == pytest.approx(full[r.label] - by_hand(without)[r.label], abs=2e-6)
        none = by_hand(np.zeros_like(img))[r.label]
        assert r.base_value == pytest.approx(none, abs=2e-6)
        assert r.extras["drop_all"] == pytest.approx(full[r.label] - none, abs=2e-6)
        assert r.extras["interaction"] == pytest.approx(
            r.extras["drop_all"] - r.segment_weights.sum(), abs=1e-6)
    # two classes: what one label loses the other gains
    np.testing.assert_allclose(results[0].segment_weights, -results[1].segment_weights, atol=2e-6)


def test_a_red_region_is_the_one_that_matters_for_warm(mean_colour_model):
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[:4, 4:] = (255, 0, 0)  # quadrant 1 is red, the rest black (= the fill)
    ctx = ExplainContext(mean_colour_model, img, sampling=SamplingParams(fill="black"), regions=quadrants())
    (warm,) = run_method(ctx, "feature_ablation", {}, [0])
    assert warm.ranked_segments()[0][0] == 1 and warm.segment_weights[1] > 0.1
    np.testing.assert_allclose(warm.segment_weights[[0, 2, 3]], 0.0, atol=1e-6)
    assert warm.extras["interaction"] == pytest.approx(0.0, abs=1e-6)  # only one region acts


def test_reuses_the_shared_perturbation_rows(mean_colour_model):
    """With every coalition of 4 regions already evaluated (16 rows), ablation costs nothing."""
    img = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    ctx = ExplainContext(mean_colour_model, img, sampling=SamplingParams(samples=16), regions=quadrants())
    run_method(ctx, "lime", {}, [0])
    before = mean_colour_model.images_seen
    (r,) = run_method(ctx, "feature_ablation", {}, [0])
    assert mean_colour_model.images_seen == before and r.model_calls == 0
    fresh = ExplainContext(mean_colour_model, img, sampling=SamplingParams(samples=16), regions=quadrants())
    (again,) = run_method(fresh, "feature_ablation", {}, [0])
    np.testing.assert_allclose(r.segment_weights, again.segment_weights, atol=1e-6)


def test_lime_uses_your_regions(mean_colour_model):
    img = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    ctx = ExplainContext(mean_colour_model, img, sampling=SamplingParams(samples=16), regions=quadrants())
    (lime,) = run_method(ctx, "lime", {}, [0])
    np.testing.assert_array_equal(lime.segments, quadrants())
    assert len(lime.segment_weights) == 4


def test_coalitions_and_bad_region_maps(mean_colour_model):
    z = ablation_coalitions(3)
    assert z.tolist() == [[False, True, True], [True, False, True], [True, True, False], [False] * 3]
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ExplainerError, match="only one region"):
        ExplainContext(mean_colour_model, img, regions=np.zeros((SIZE, SIZE), int))
    with pytest.raises(ExplainerError, match="image size"):
        ExplainContext(mean_colour_model, img, regions=np.zeros((4, 4), int))
    ctx = ExplainContext(mean_colour_model, img, regions=quadrants())
    with pytest.raises(ExplainerError, match="limited to 3"):
        run_method(ctx, "feature_ablation", {"max_regions": 3}, [0])
