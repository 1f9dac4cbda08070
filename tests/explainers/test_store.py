"""explainers.store: the run store the dashboard shares between sessions (no Streamlit needed)."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from explainers.store import ExplanationStore, PreparedImage, RunRequest, freeze
from tests.models import tiny_classifier, tiny_image


@pytest.fixture(scope="module")
def clf():
    return tiny_classifier()


@pytest.fixture(scope="module")
def image():
    pixels = tiny_image()
    return PreparedImage(pixels, None, "tiny-image:crop")


def request(samples: int = 32, methods=("lime", "kernel_shap"), seed: int = 0) -> RunRequest:
    return RunRequest(methods=tuple((m, freeze({})) for m in methods), labels=(2, 1), seed=seed, samples=samples,
                      segmentation="grid", segmentation_params=freeze({"rows": 4, "cols": 4}))


def test_a_second_compute_is_a_cache_hit_without_model_calls(clf, image):
    store = ExplanationStore()
    req = request()
    assert store.lookup(clf, image, req, "lime") is None
    first = store.compute(clf, image, req, "lime")
    seen = clf.images_seen
    assert store.lookup(clf, image, req, "lime") is first
    assert store.compute(clf, image, req, "lime") is first and clf.images_seen == seen
    # KernelSHAP of the same request reuses LIME's perturbation rows: no new model call either
    shap = store.compute(clf, image, req, "kernel_shap")
    assert clf.images_seen == seen and sum(r.model_calls for r in shap) == 0


def test_results_and_contexts_are_bounded(clf, image):
    store = ExplanationStore(max_contexts=2, max_results=3)
    for seed in range(5):
        store.compute(clf, image, request(seed=seed, methods=("lime",)), "lime")
    assert len(store._results) == 3 and len(store._contexts) == 2
    assert store.lookup(clf, image, request(seed=0, methods=("lime",)), "lime") is None  # evicted first
    assert store.lookup(clf, image, request(seed=4, methods=("lime",)), "lime") is not None


def test_concurrent_sessions_share_one_run(clf, image):
    store = ExplanationStore()
    req = request(samples=48, seed=7)
    seen = clf.images_seen
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(store.compute(clf, image, req, "lime"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 4
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a.heatmap, b.heatmap)
    solo = ExplanationStore().compute(clf, image, req, "lime")
    for a, b in zip(out[0], solo):
        np.testing.assert_array_equal(a.heatmap, b.heatmap)  # same as a run alone
    # the four sessions paid for one run (plus the solo run's own), not four
    assert clf.images_seen - seen <= 2 * (48 + 2)


def test_more_samples_extends_the_same_run(clf, image):
    store = ExplanationStore()
    small = request(samples=32, methods=("lime",), seed=3)
    store.compute(clf, image, small, "lime")
    seen = clf.images_seen
    more = dataclasses.replace(small, samples=64)
    bigger = store.compute(clf, image, more, "lime")
    new = clf.images_seen - seen
    assert 0 < new <= 64 - 32 + 1  # only the added rows go to the model
    assert dict(bigger[0].params)["samples"] == 64
