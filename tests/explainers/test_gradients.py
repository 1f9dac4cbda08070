"""Input-gradient methods: known answers on a linear model, IG completeness, seeding, calls."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers import gradients
from explainers.base import ExplainerError, get_method, make_params
from explainers.context import ExplainContext
from model_zoo.classifier import Classifier


def run(ctx: ExplainContext, name: str, labels, **params):
    spec = get_method(name)
    return spec.run(ctx, make_params(spec.params_type, params), list(labels))


def image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def linear():
    """logits = (x / 255) · W + b on the flattened image: ∂S_c/∂x = W[:, c] / 255."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6 * 6 * 3, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    inp = keras.Input((6, 6, 3))
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    model.get_layer("head").set_weights([w, b])
    clf = Classifier(model, id="linear", name="linear", preprocessing="unit")
    return clf, w.reshape(6, 6, 3, 3).astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def smooth():
    """A small smooth (tanh) CNN: IG's integral is not trivial."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="tanh")(inp)
    x = keras.layers.Conv2D(4, 3, activation="tanh")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    return Classifier(keras.Model(inp, out), id="smooth", name="smooth", preprocessing="symmetric", batch_size=32)


def test_saliency_of_a_linear_model_is_its_weights(linear):
    clf, w = linear
    ctx = ExplainContext(clf, image(6, 1))
    before = clf.images_seen
    results = run(ctx, "saliency", [0, 2])
    assert clf.images_seen - before == 1  # one forward, a backward per label
    for res in results:
        want = np.abs(w[..., res.label]).max(axis=-1)
        np.testing.assert_allclose(res.heatmap, want, rtol=1e-5)
    assert results[0].score == pytest.approx(clf.predict(ctx.image[None])[0][0], abs=1e-6)


def test_integrated_gradients_and_gradient_shap_of_a_linear_model(linear):
    clf, w = linear
    img = image(6, 2)
    ctx = ExplainContext(clf, img)
    for name, params in (("integrated_gradients", {"steps": 3}), ("gradient_shap", {"baseline": "black", "samples": 5})):
        for res in run(ctx, name, [0, 1], **params):
            want = (img[..., None].astype(np.float64) * w)[..., res.label].sum(axis=-1)
            np.testing.assert_allclose(res.heatmap, want, rtol=1e-4, atol=1e-6, err_msg=name)
    ig = run(ctx, "integrated_gradients", [1], steps=2)[0]
    assert ig.extras["completeness_gap"] < 1e-5


def test_integrated_gradients_completeness_on_a_smooth_model(smooth):
    img = image(12, 4)
    ctx = ExplainContext(smooth, img)
    before = smooth.images_seen
    fine = run(ctx, "integrated_gradients", [0, 1, 2], steps=64)
    assert smooth.images_seen - before == 65
    assert sum(r.model_calls for r in fine) == 65
    coarse = run(ctx, "integrated_gradients", [0, 1, 2], steps=1)
    logits = smooth.logits(img[None])[0]
    black = smooth.logits(np.zeros_like(img)[None])[0]
    for f, c in zip(fine, coarse):
        assert f.extras["completeness_gap"] < 1e-2
        assert c.extras["completeness_gap"] > f.extras["completeness_gap"]
        assert f.extras["input_score"] == pytest.approx(logits[f.label], abs=1e-5)
        assert f.extras["baseline_score"] == pytest.approx(black[f.label], abs=1e-5)
        delta = logits[f.label] - black[f.label]
        assert float(f.heatmap.sum()) == pytest.approx(delta, rel=1e-2, abs=1e-4)
    blurred = run(ctx, "integrated_gradients", [0], steps=64, baseline="blur", blur_sigma=3.0)[0]
    assert blurred.extras["completeness_gap"] < 1e-2
    base = gradients.blurred(img, 3.0)
    assert blurred.extras["baseline_score"] == pytest.approx(smooth.logits(base[None])[0][0], abs=1e-4)


def test_chunked_accumulation_equals_one_batch(smooth):
    img = image(12, 5)
    small = Classifier(smooth.model, id="small", name="small", preprocessing="symmetric", batch_size=3)
    one = run(ExplainContext(smooth, img), "integrated_gradients", [1], steps=10)[0]
    chunked = run(ExplainContext(small, img), "integrated_gradients", [1], steps=10)[0]
    np.testing.assert_allclose(chunked.heatmap, one.heatmap, rtol=1e-4, atol=1e-7)


def test_smoothgrad_is_seeded_and_reduces_to_saliency_without_noise(smooth):
    img = image(12, 6)
    ctx = ExplainContext(smooth, img, seed=1)
    sal = run(ctx, "saliency", [2])[0]
    no_noise = run(ctx, "smoothgrad", [2], noise=0.0, samples=4)[0]
    np.testing.assert_allclose(no_noise.heatmap, sal.heatmap, rtol=1e-4, atol=1e-9)

    a = run(ExplainContext(smooth, img, seed=1), "smoothgrad", [0, 2], samples=6)
    b = run(ExplainContext(smooth, img, seed=1), "smoothgrad", [0, 2], samples=6)
    c = run(ExplainContext(smooth, img, seed=2), "smoothgrad", [0, 2], samples=6)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x.heatmap, y.heatmap)
        assert not np.allclose(x.heatmap, z.heatmap)
        assert np.isfinite(x.heatmap).all() and x.heatmap.min() >= 0
    assert not np.allclose(a[0].heatmap, a[1].heatmap)
    # noise is a fraction of the image's value range (0.15 × ~255 here), so it smooths a lot
    assert a[1].extras["sigma"] == pytest.approx(0.15 * float(img.max() - img.min()))
    assert np.abs(a[1].heatmap - sal.heatmap).max() > 0.1 * sal.heatmap.max()
    # 6 noisy images + the clean image for the score (the context had no prediction yet)
    assert sum(r.model_calls for r in a) == 7


def test_gradient_shap_is_seeded_and_mixes_baselines(smooth):
    img = image(12, 7)
    before = smooth.images_seen
    a = run(ExplainContext(smooth, img, seed=3), "gradient_shap", [0, 1], samples=12)
    assert smooth.images_seen - before == 12 + 1
    b = run(ExplainContext(smooth, img, seed=3), "gradient_shap", [0, 1], samples=12)
    c = run(ExplainContext(smooth, img, seed=4), "gradient_shap", [0, 1], samples=12)
    counts = a[0].extras["baselines"]
    assert sum(counts.values()) == 12 and len(counts) >= 2
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x.heatmap, y.heatmap)
        assert not np.allclose(x.heatmap, z.heatmap)
        assert x.heatmap.min() < 0 < x.heatmap.max()  # signed
    assert not np.allclose(a[0].heatmap, a[1].heatmap)


def test_scores_and_calls_with_a_cached_prediction(smooth):
    img = image(12, 8)
    ctx = ExplainContext(smooth, img)
    probs = ctx.probabilities()
    before = smooth.images_seen
    res = run(ctx, "gradient_shap", [1], samples=3)[0]
    assert smooth.images_seen - before == 3 == res.model_calls
    assert res.score == pytest.approx(float(probs[1]))


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("integrated_gradients", {"baseline": "white"}, "baseline must be one of"),
        ("integrated_gradients", {"steps": 0}, "steps must be"),
        ("smoothgrad", {"noise": 2.0}, "noise must be"),
        ("smoothgrad", {"samples": 0}, "samples must be"),
        ("gradient_shap", {"blur_sigma": -1.0}, "blur sigma"),
        ("saliency", {"steps": 3}, "unknown parameter"),
    ],
)
def test_bad_parameters(name, params, message):
    with pytest.raises(ExplainerError, match=message):
        make_params(get_method(name).params_type, params)
