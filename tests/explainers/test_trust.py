"""trust_report on tiny Keras models: exact JSON schema, honest extra model calls, determinism,
reuse across labels, ground-truth masks and badges."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from explainers.base import Cancelled, ExplainerError
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import explain
from explainers.trust import JSON_METHOD_KEYS, badge_list, badges, to_json, trust_report
from model_zoo.classifier import Classifier
from tests.models import box_model, small_cnn

SIZE = 32
GRID = {"rows": 4, "cols": 4}
BOX = (4, 20, 4, 20)
METHODS = ["lime", "kernel_shap", "gradcam"]


@pytest.fixture(scope="module")
def tiny_cnn() -> Classifier:
    return small_cnn(11, SIZE, labels=["a", "b", "c"])


@pytest.fixture(scope="module")
def region_model() -> Classifier:
    """Class 1's probability is the mean grey level (0..1) inside BOX."""
    return box_model(BOX, SIZE)


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def context(clf: Classifier, img: np.ndarray, samples: int = 64, fill: str = "mean", seed: int = 0):
    return ExplainContext(clf, img, seed=seed, segmentation="grid", segmentation_params=GRID,
                          sampling=SamplingParams(samples=samples, fill=fill))


def report_for(clf, img, label=0, **kwargs):
    ctx = context(clf, img)
    results = explain(ctx, METHODS, [label])
    before = clf.images_seen
    rep = trust_report(ctx, results, label, **kwargs)
    return ctx, rep, clf.images_seen - before


def test_json_schema_calls_and_determinism(tiny_cnn):
    img = image(1)
    ctx, rep, measured = report_for(tiny_cnn, img, seeds=3, top_n=4, steps=9)
    assert rep.model_calls == measured > 0 and rep.explain_calls == 0
    data = to_json(rep)
    assert list(data) == ["label", "model_calls", "methods", "agreement"]
    assert data["label"] == 0 and data["model_calls"] == measured
    order = [r.method for r in rep.methods]
    assert sorted(order) == sorted(METHODS)
    assert [m["method"] for m in data["methods"]] == order
    for m in data["methods"]:
        assert tuple(m) == JSON_METHOD_KEYS
        for key in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc",
                    "stability_iou", "noise_iou"):
            assert isinstance(m[key], float), key
        assert m["pointing_hit"] is None and m["mask_iou"] is None  # no mask given
    by = {m["method"]: m for m in data["methods"]}
    assert by["gradcam"]["stability_iou"] == 1.0 and by["gradcam"]["stability_rank_corr"] == 1.0
    assert by["gradcam"]["r2"] is None and by["gradcam"]["convergence"] is None
    for name in ("lime", "kernel_shap"):
        conv = by[name]["convergence"]
        assert conv["samples"] == [25, 50, 64] and conv["rel_error"][-1] == 0.0
        assert len(by[name]["uncertainty"]) == 16 and isinstance(by[name]["r2"], float)
    ag = data["agreement"]
    assert list(ag) == ["methods", "rank_corr", "top_iou"] and ag["methods"] == order
    assert np.array(ag["top_iou"]).shape == (3, 3) and np.diag(ag["top_iou"]).tolist() == [1.0] * 3
    json.dumps(data, allow_nan=False)  # plain JSON, NaN already turned into null
    # the same seed on a fresh context gives the same report, a different seed does not
    _, again, measured2 = report_for(tiny_cnn, img, seeds=3, top_n=4, steps=9)
    assert to_json(again) == data and measured2 == measured
    # curves for plotting: one deletion and one insertion per method, from 1 to 0 / 0 to 1 regions
    c = rep.curves.deletion["lime"]
    assert c.fractions[0] == 0.0 and c.fractions[-1] == 1.0 and len(c.scores) == 9
    assert c.scores[0] == pytest.approx(float(tiny_cnn.predict(img[None])[0, 0]), abs=1e-6)


def test_another_label_reuses_the_stability_runs(tiny_cnn):
    ctx = context(tiny_cnn, image(2))
    first = trust_report(ctx, explain(ctx, METHODS, [0]), 0, seeds=3)
    results = explain(ctx, METHODS, [2])
    before = tiny_cnn.images_seen
    second = trust_report(ctx, results, 2, seeds=3)
    assert second.model_calls == tiny_cnn.images_seen - before
    # LIME / KernelSHAP reruns reuse the cached perturbation runs; Grad-CAM needs one backward
    # pass per cached context, and only the methods' own curve steps are new
    assert second.model_calls < first.model_calls / 3
    assert second.label == 2 and second.label_name == "c"


def test_method_names_are_run_first_and_counted_apart(tiny_cnn):
    ctx = context(tiny_cnn, image(3))
    before = tiny_cnn.images_seen
    rep = trust_report(ctx, {"lime": {"kernel_width": 0.5}, "gradcam": None}, 1, seeds=2, noise_sigma=0)
    assert rep.explain_calls >= 64 and rep.model_calls == tiny_cnn.images_seen - before - rep.explain_calls
    assert [r.method for r in rep.methods] == ["lime", "gradcam"]
    assert rep.row("lime").noise_iou is None  # noise_sigma=0 skips the noisy copies
    assert rep.settings["seeds"] == 2


def test_mask_pointing_game_and_badges_on_the_box_model(region_model):
    img = np.random.default_rng(4).integers(100, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    ctx = context(region_model, img, samples=128, fill="black")
    results = explain(ctx, ["lime", "kernel_shap"], [1])
    mask = np.zeros((SIZE, SIZE), bool)
    mask[BOX[0] : BOX[1], BOX[2] : BOX[3]] = True
    rep = trust_report(ctx, results, 1, seeds=2, mask=mask, top_n=3)
    ks = rep.row("kernel_shap")
    # the box model is additive in the cells: KernelSHAP is exact, its top cell lies in the box
    assert ks.pointing_hit is True and ks.r2 == pytest.approx(1.0, abs=1e-6)
    # its top 256 pixels (the box's area): the cell inside the box (64 px, 64 on the box) and
    # the 3 brightest of the 4 cells half in it (3 × 64 px, 3 × 32 on the box): 160 / 352
    assert ks.mask_iou == pytest.approx(160 / 352)
    assert ks.deletion_auc < 0.5 * ks.random_deletion_auc
    text = badges(rep)["kernel_shap"]
    assert "faithful: deletion drops the score fast" in text and "points at the object" in text
    data = to_json(rep)
    assert all(m["pointing_hit"] is True for m in data["methods"])
    # a mask elsewhere: a miss
    away = np.zeros((SIZE, SIZE), bool)
    away[24:, 24:] = True
    rep2 = trust_report(ctx, results, 1, seeds=1, noise_sigma=0, mask=away)
    assert rep2.row("kernel_shap").pointing_hit is False and rep2.row("kernel_shap").mask_iou == 0.0
    assert "misses the object" in badges(rep2)["kernel_shap"]
    assert rep2.row("kernel_shap").stability_iou is None  # seeds=1: nothing to compare


def test_badges_follow_the_numbers(tiny_cnn):
    ctx = context(tiny_cnn, image(5))
    rep = trust_report(ctx, explain(ctx, METHODS, [0]), 0, seeds=2)
    rows = tuple(
        dataclasses.replace(r, stability_iou=0.3, stability_rank_corr=0.2, noise_iou=0.9, r2=0.31)
        if r.method == "lime" else dataclasses.replace(r, stability_iou=1.0, stability_rank_corr=1.0)
        for r in rep.methods
    )
    b = badge_list(dataclasses.replace(rep, methods=rows))
    assert "unstable: top regions change with the seed" in b["lime"]
    assert "low fit R² 0.31" in b["lime"] and "robust to image noise" in b["lime"]
    assert "stable across seeds" in b["gradcam"]
    assert not any("R²" in x for x in b["gradcam"])


def test_bad_inputs_and_cancellation(tiny_cnn):
    ctx = context(tiny_cnn, image(6))
    results = explain(ctx, ["gradcam"], [0])
    with pytest.raises(ExplainerError, match="out of range"):
        trust_report(ctx, results, 7)
    with pytest.raises(ExplainerError, match="no explanation of label 1"):
        trust_report(ctx, results, 1)
    with pytest.raises(ExplainerError, match="once"):
        trust_report(ctx, results + results, 0)
    with pytest.raises(ValueError, match="mask"):
        trust_report(ctx, results, 0, mask=np.ones((5, 5), bool))
    with pytest.raises(ExplainerError, match="unknown method"):
        trust_report(ctx, ["nonsense"], 0)

    def stop(done, total, stage):
        if stage.startswith("Checking stability"):
            raise Cancelled()

    with pytest.raises(Cancelled):
        trust_report(ctx, results, 0, progress=stop)
