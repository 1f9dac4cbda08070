"""Exports (explainers/export.py) on real explanations of the bundled model: known contents, not shapes."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from explainers import export
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import explain
from model_zoo.bundled import center_crop_resize, load_efficientnet_lite0
from model_zoo.samples import sample_image


@pytest.fixture(scope="module")
def run():
    clf = load_efficientnet_lite0()
    image = center_crop_resize(sample_image("coffee"))
    ctx = ExplainContext(clf, image, seed=3, segmentation="grid", sampling=SamplingParams(samples=48))
    results = explain(ctx, ["lime", "gradcam", "kernel_shap"], top_k=2)
    meta = {"model": clf.id, "image_sha256": "ab" * 32, "seed": 3, "samples": 48}
    preds = [(int(i), clf.labels[int(i)], float(ctx.probabilities()[i])) for i in ctx.top_labels(2)]
    return image, results, meta, preds


def test_png_grid_has_one_row_per_label_and_a_column_per_method(run):
    image, results, _, _ = run
    png = Image.open(io.BytesIO(export.comparison_png(image, results)))
    pad = 6
    assert png.size == (pad + 4 * (224 + pad), pad + 2 * (224 + pad))  # photo + 3 methods, 2 labels
    first = np.asarray(png)[pad : pad + 224, pad : pad + 224]
    np.testing.assert_array_equal(first, image)  # the first column is the photo itself


def test_html_report_is_self_contained_and_lists_everything(run):
    image, results, meta, preds = run
    html = export.html_report(image, results, meta, preds)
    assert html.startswith("<!doctype html>") and "src='http" not in html and 'src="http' not in html
    assert html.count("data:image/png;base64,") == 2 * (1 + 3)
    assert "espresso" in html and meta["image_sha256"] in html and "<th>seed</th><td>3</td>" in html
    for r in results:
        assert f"{r.seconds:.2f} s" in html


def test_json_and_npz_round_trip(run):
    image, results, meta, _ = run
    data = json.loads(export.results_json(meta, results))
    assert data["model"] == "efficientnet-lite0" and len(data["results"]) == len(results)
    lime = next(r for r in data["results"] if r["method"] == "lime")
    assert lime["segments"][0][1] >= lime["segments"][-1][1]  # ranked by weight
    arrays = np.load(io.BytesIO(export.results_npz(image, results, meta)))
    np.testing.assert_array_equal(arrays["image"], image)
    for r in results:
        np.testing.assert_array_equal(arrays[f"{r.method}__{r.label}__heatmap"], r.heatmap)
    assert json.loads(str(arrays["meta_json"]))["seed"] == 3
