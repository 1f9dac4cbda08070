"""One contract over every registered method (new methods are picked up automatically).

Each method runs on a tiny real Keras CNN (32×32×3 → 3 classes, fixed weights) through the
runner, twice with the same seed, for two labels. Expensive parameters are shrunk by the
``test_params`` each method declares in its registration. ``check_contract`` is reusable: a
test that registers a method of its own runs the same checks on it.
"""
from __future__ import annotations


import numpy as np
import pytest

from explainers.base import Explanation, methods, params_dict
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import run_method
from model_zoo.classifier import Classifier
from tests.models import tiny_classifier, tiny_image  # noqa: F401  (re-exported for other tests)

SIZE = 32
LABELS = [2, 1]  # the two most probable classes (Score-CAM gives 0 to labels below the black image)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return tiny_classifier()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return tiny_image()


def small_params(name: str) -> dict:
    """The small parameters the method declares for this test."""
    return dict(methods()[name].test_params)


def explain(clf: Classifier, img: np.ndarray, name: str, seed: int = 0) -> tuple[list[Explanation], int, dict]:
    ctx = ExplainContext(
        clf, img, seed=seed, segmentation="grid", segmentation_params={"rows": 4, "cols": 4},
        sampling=SamplingParams(samples=64),
    )
    params = small_params(name)
    before = clf.images_seen
    results = run_method(ctx, name, params, LABELS)
    return results, clf.images_seen - before, params


@pytest.mark.parametrize("name", sorted(methods()))
def test_method_contract(classifier, image, name):
    check_contract(classifier, image, name)


def check_contract(classifier: Classifier, image: np.ndarray, name: str) -> None:
    """Every registered method obeys these (any test may call this on a method of its own)."""
    spec = methods()[name]
    results, calls, params = explain(classifier, image, name)
    probs = classifier.predict(image[None])[0]

    assert [r.label for r in results] == LABELS
    for r in results:
        assert isinstance(r, Explanation) and r.method == name
        assert r.heatmap.shape == image.shape[:2]
        assert r.heatmap.dtype == np.float32
        assert np.all(np.isfinite(r.heatmap))
        assert np.any(r.heatmap != 0), "an all-zero map explains nothing"
        assert r.label_name == classifier.labels[r.label]
        assert r.score == pytest.approx(float(probs[r.label]), abs=1e-4)
        assert r.seconds >= 0 and r.model_calls >= 0
        if not spec.signed:  # the registry's word decides the colour scale (audit thumbnails)
            assert r.heatmap.min() >= 0, f"{name} says its maps are never negative"
        # every resolved parameter is recorded, with the value used
        resolved = params_dict(spec.params_type(**params))
        assert {k: r.params.get(k) for k in resolved} == resolved
        if r.segments is not None:  # superpixel methods: the map is the weights painted back
            assert r.segments.shape == image.shape[:2]
            assert r.segment_weights.shape == (int(r.segments.max()) + 1,)
            np.testing.assert_array_equal(r.heatmap, r.segment_weights.astype(np.float32)[r.segments])

    # model-call accounting (explainers/cam.py): summing over the results gives the real cost
    assert sum(r.model_calls for r in results) == calls

    # different labels → different maps (except methods that declare themselves class-agnostic)
    if not results[0].extras.get("class_agnostic"):
        assert not np.allclose(results[0].heatmap, results[1].heatmap)

    # same seed → the same result, bit for bit
    again, _, _ = explain(classifier, image, name)
    for a, b in zip(results, again):
        np.testing.assert_array_equal(a.heatmap, b.heatmap)
        if a.segment_weights is not None:
            np.testing.assert_array_equal(a.segment_weights, b.segment_weights)


def test_every_builtin_method_is_registered():
    expected = {
        "lime", "kernel_shap", "gradcam", "gradcam_pp", "xgradcam", "layercam", "hirescam",
        "scorecam", "eigencam", "occlusion", "saliency", "smoothgrad", "integrated_gradients",
        "gradient_shap",
    }
    assert expected <= set(methods())


def test_one_context_shares_model_calls(classifier, image):
    """All methods from one context: summed model_calls is the real cost, and LIME and
    KernelSHAP together cost one perturbation pass."""
    from explainers.runner import explain as run_all

    ctx = ExplainContext(
        classifier, image, seed=0, segmentation="grid", segmentation_params={"rows": 4, "cols": 4},
        sampling=SamplingParams(samples=64),
    )
    before = classifier.images_seen
    results = run_all(ctx, {n: small_params(n) for n in methods()}, LABELS)
    calls = classifier.images_seen - before
    assert sum(r.model_calls for r in results) == calls
    shared = [r for r in results if methods()[r.method].refit is not None]
    assert sum(r.model_calls for r in shared) == ctx.perturbations().model_calls <= 64
