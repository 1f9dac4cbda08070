"""Sanity checks (Adebayo et al. 2018) on a tiny CNN trained in the test.

Known answers: Grad-CAM's map depends on the learned weights (passes); an edge detector
registered as a method (Sobel of the image, ignoring the model) does not (fails). The cached
model is never touched: the randomisation works on a copy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np
import pytest

from explainers import base
from explainers.base import Explanation, ExplainerError, MethodSpec, register
from explainers.context import ExplainContext, SamplingParams
from explainers.sanity import (
    SANITY_FAIL, cascade_points, cascading_randomization, map_similarity, sanity_badges,
)
from model_zoo.classifier import Classifier

SIZE = 32


def squares(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey images with one square anywhere: bright (class 1) or dark (class 0)."""
    x = rng.integers(90, 150, (n, SIZE, SIZE, 3)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(1, SIZE - 9, 2)
        x[i, r : r + 8, c : c + 8] = 240 if y[i] else 10
    return x, y


@pytest.fixture(scope="module")
def trained() -> Classifier:
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x, y = squares(600, rng)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(2, activation="softmax", name="head")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x.astype(np.float32), y, epochs=8, batch_size=32, verbose=0)
    xt, yt = squares(100, np.random.default_rng(6))
    acc = float(np.mean(np.argmax(model.predict(xt.astype(np.float32), verbose=0), 1) == yt))
    assert acc > 0.9, acc  # it learned the task
    return Classifier(model, id="squares", name="squares", labels=["dark", "bright"], preprocessing="raw")


@dataclass(frozen=True)
class EdgeParams:
    pass


def run_edges(ctx, params, labels):
    from skimage.filters import sobel

    edges = sobel(ctx.image.mean(axis=-1) / 255.0).astype(np.float32)  # never asks the model
    return [Explanation(method="edges", label=label, label_name=ctx.label_name(label),
                        score=float(ctx.probabilities()[label]), heatmap=edges) for label in labels]


@pytest.fixture
def edges_method():
    register(MethodSpec(name="edges", title="Edges", family="gradient", params_type=EdgeParams,
                        run=run_edges, description="Sobel edges of the image (a fake explainer)."))
    yield "edges"
    base._REGISTRY.pop("edges", None)


def test_gradcam_passes_edges_fail_and_the_model_is_untouched(trained, edges_method):
    imgs, ys = squares(8, np.random.default_rng(7))
    img = imgs[int(np.argmax(ys))]  # a bright square
    ctx = ExplainContext(trained, img, segmentation="grid", segmentation_params={"rows": 4, "cols": 4},
                         sampling=SamplingParams(samples=64))
    before = [w.copy() for w in trained.model.get_weights()]
    probs_before = trained.predict(img[None])
    report = cascading_randomization(ctx, ["gradcam", "edges"], int(np.argmax(probs_before)), steps=4)

    for w0, w1 in zip(before, trained.model.get_weights()):  # the cached model is unchanged
        np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(probs_before, trained.predict(img[None]))

    assert report.randomized == (1, 2, 3) and report.total_layers == 3  # c1, c2, head
    assert report.layers == ("head", "c2", "c1")
    grad, edges = report.methods["gradcam"], report.methods["edges"]
    assert grad.passes and not edges.passes
    assert edges.spearman == (1.0, 1.0, 1.0) and edges.ssim == (1.0, 1.0, 1.0)
    assert grad.spearman[-1] < 0.5 and grad.ssim[-1] < 0.5
    badges = sanity_badges(report)
    assert SANITY_FAIL in badges["edges"] and SANITY_FAIL not in badges["gradcam"]
    data = json.loads(json.dumps(report.to_json()))
    assert data["methods"]["edges"]["passes"] is False and data["methods"]["gradcam"]["passes"] is True
    assert len(data["methods"]["gradcam"]["spearman"]) == len(data["layers"]) == 3
    assert report.model_calls > 0


def test_deterministic_and_cheap_parts():
    assert cascade_points(100, 5) == [1, 26, 50, 75, 100]
    assert cascade_points(3, 10) == [1, 2, 3]
    with pytest.raises(ExplainerError):
        cascade_points(0, 3)
    a = np.random.default_rng(0).random((16, 16))
    assert map_similarity(a, a) == pytest.approx((1.0, 1.0))
    assert map_similarity(a, -a) == pytest.approx((1.0, 1.0))  # absolute maps: a sign flip is the same map
    rho, ssim = map_similarity(a, np.random.default_rng(1).random((16, 16)))
    assert abs(rho) < 0.3 and ssim < 0.3
    assert map_similarity(a, np.zeros_like(a)) == (0.0, 0.0)
