"""Exports (explainers/export.py) on real explanations of the bundled model: one strict JSON
schema, one NPZ layout, the PNG grid and the HTML report — and the app's download and the CLI's
``--json``/``--out`` give the same document for the same run."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json

import numpy as np
import pytest

from explainers import export
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import explain
from model_zoo.bundled import load_efficientnet_lite0
from model_zoo.registry import prepare_image
from model_zoo.samples import sample_image


def reject(name: str):
    raise ValueError(f"not strict JSON: {name}")


def strict(text: str) -> dict:
    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def run():
    clf = load_efficientnet_lite0()
    fitted = prepare_image(clf, sample_image("coffee"), policy="crop")
    ctx = ExplainContext(clf, fitted.image, seed=3, segmentation="grid", sampling=SamplingParams(samples=48))
    results = explain(ctx, ["lime", "gradcam", "kernel_shap"], top_k=2)
    preds = [(int(i), clf.labels[int(i)], float(ctx.probabilities()[i])) for i in ctx.top_labels(2)]
    doc = export.run_document(
        results, fitted=fitted, model=clf, image_name="coffee.png", image_sha256="ab" * 32, seed=3,
        samples=48, fill="mean", segmentation="grid", predictions=preds,
    )
    return fitted, results, doc


# The PNG grid and the HTML report are read back in tests/app/test_report.py (parsed HTML,
# PNG pixels, the PDF through pdfium).


def test_json_is_strict_versioned_and_nests_extras(run):
    _, results, doc = run
    data = strict(export.to_json(doc))
    assert data["schema"] == export.SCHEMA and data["model"] == "efficientnet-lite0"
    assert len(data["results"]) == len(results) and data["samples"] == 48
    lime = next(r for r in data["results"] if r["method"] == "lime")
    assert lime["segments"][0][1] >= lime["segments"][-1][1]  # ranked by weight
    assert isinstance(lime["extras"], dict) and lime["extras"]["surrogate"] == "ridge"
    cam = next(r for r in data["results"] if r["method"] == "gradcam")
    assert isinstance(cam["extras"]["low_res_shape"], list)  # nested, not a repr string
    # the peak names its frame: the input's (224×224) and the file's (the coffee photo is larger)
    assert cam["peak_input_rc"] == list(results[[r.method for r in results].index("gradcam")].peak())
    assert cam["peak_file_rc"] != cam["peak_input_rc"]


def test_nan_and_infinity_become_null_and_arrays_stay_arrays(run):
    fitted, results, _ = run
    odd = dataclasses.replace(results[0], r2=float("nan"), extras={
        "gap": float("inf"), "small": np.arange(3), "big": np.zeros(1000), "nested": {"x": np.float32("nan")},
    })
    doc = export.run_document([odd], fitted=fitted, model=load_efficientnet_lite0(), image_name="x",
                              image_sha256="0", seed=0, samples=48, fill="mean", segmentation="grid")
    row = strict(export.to_json(doc))["results"][0]
    assert row["r2"] is None and row["extras"]["gap"] is None and row["extras"]["nested"] == {"x": None}
    assert row["extras"]["small"] == [0, 1, 2] and "big" not in row["extras"]  # big arrays: NPZ only


def test_npz_layout_round_trip(run):
    fitted, results, doc = run
    arrays = np.load(io.BytesIO(export.results_npz(fitted, results, doc)))
    assert str(arrays["schema"]) == export.SCHEMA
    np.testing.assert_array_equal(arrays["image"], fitted.image)
    assert arrays["heatmaps"].shape == (len(results), 224, 224)
    for i, r in enumerate(results):
        np.testing.assert_array_equal(arrays["heatmaps"][i], r.heatmap)
        assert arrays["methods"][i] == r.method and arrays["labels"][i] == r.label
    assert strict(str(arrays["meta"]))["seed"] == 3


def test_captions_count_the_rows_a_result_used_not_the_whole_shared_run(run):
    _, results, _ = run
    lime = next(r for r in results if r.method == "lime")
    reused = dataclasses.replace(lime, model_calls=0, params={**lime.params, "samples": 50},
                                 extras={**lime.extras, "shared_calls": 5000})
    assert export.calls_text(reused) == "reused 50 perturbed images"
    assert "5000" not in export.calls_text(reused)


@pytest.mark.slow
def test_app_download_and_cli_json_have_the_same_schema_for_the_same_run(tmp_path, capsys):
    from explainers.cli import main
    from explainers.store import ExplanationStore, PreparedImage
    from model_zoo.images import load_image
    from model_zoo.samples import sample_png_bytes
    from ui.exports import run_document
    from ui.explain_panel import build_request

    data = sample_png_bytes("coffee")
    path = tmp_path / "coffee.png"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert main(["explain", str(path), "--model", "efficientnet-lite0", "--methods", "gradcam,lime",
                 "--samples", "40", "--seed", "5", "--segmentation", "grid", "--top-k", "2",
                 "--json", "--out", str(tmp_path / "cli.npz")]) == 0
    cli = strict(capsys.readouterr().out)

    # the app's path: the shared store, a RunRequest from the Explain form's builder
    clf = load_efficientnet_lite0()
    fitted = prepare_image(clf, load_image(data), policy="crop")
    image = PreparedImage(fitted.image, fitted, f"{sha}:crop")
    store = ExplanationStore()
    probs = store.probabilities(clf, image)
    preds = [(int(i), clf.labels[int(i)], float(probs[i])) for i in np.argsort(-probs)[:2]]
    req = dataclasses.replace(build_request(["gradcam", "lime"], samples=40, seed=5, segmentation="grid"),
                              labels=tuple(i for i, _, _ in preds))
    results = [r for n, _ in req.methods for r in store.compute(clf, image, req, n)]
    app = strict(export.to_json(run_document(clf, image, req, results, preds, str(path), sha)))

    assert set(app) == set(cli) and app["schema"] == cli["schema"] == export.SCHEMA
    for key in ("model", "image_sha256", "image_shape", "input_shape", "resize", "seed", "samples", "fill",
                "segmentation", "segmentation_params", "num_segments", "labels", "methods"):
        assert app[key] == cli[key], key
    by_key = {(r["method"], r["label"]): r for r in cli["results"]}
    assert len(app["results"]) == len(by_key) == 4
    for r in app["results"]:
        other = by_key[(r["method"], r["label"])]
        assert set(r) == set(other), r["method"]
        assert r["peak_file_rc"] == other["peak_file_rc"] and r["peak_input_rc"] == other["peak_input_rc"]
        assert r["score"] == pytest.approx(other["score"], abs=1e-6)
    app_npz = np.load(io.BytesIO(export.results_npz(fitted, results, app)))
    with np.load(tmp_path / "cli.npz") as cli_npz:
        assert set(app_npz.files) == set(cli_npz.files)


def test_html_report_escapes_hostile_label_names_and_captions(run):
    """A labels file naming a class ``<img src=…>`` must not put an image (a request) in the report."""
    import dataclasses

    from explainers.summary import caption

    fitted, results, doc = run
    labels = list(dict.fromkeys(r.label for r in results))
    hostile = {labels[0]: "<img src=http://127.0.0.1:9/track.png>", labels[1]: "[x](http://127.0.0.1:9/)"}
    results = [dataclasses.replace(r, label_name=hostile[r.label]) for r in results]
    captions = {label: caption([r for r in results if r.label == label]) for label in hostile}
    html = export.html_report(fitted.image, results, dict(doc, image_name="<script>alert(1)</script>"), captions)
    assert "<img src=http" not in html and "<script>alert" not in html
    assert "&lt;img src=http://127.0.0.1:9/track.png&gt;" in html
    assert "The model says “&lt;img src=http://127.0.0.1:9/track.png&gt;” with" in html  # plain text, no \ or **
    assert "[x](http://127.0.0.1:9/)" in html and "href=" not in html


def test_pdf_export_leaves_pillow_strict_about_truncated_files():
    """WeasyPrint's import turns on Pillow's LOAD_TRUNCATED_IMAGES for the whole process; after a
    PDF export a truncated upload must still be refused."""
    import io

    from PIL import Image

    from explainers.export import pdf_report
    from model_zoo.images import ImageError, load_image

    assert pdf_report("<html><body><p>hello</p></body></html>")[:4] == b"%PDF"  # imports WeasyPrint
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    with pytest.raises(ImageError, match="truncated|damaged"):
        load_image(data[: len(data) // 2])


def test_auto_samples_stopped_at_the_budget_are_in_the_json_and_the_report():
    """The budget of an "auto" run and how it ended reach the exports (JSON ``sampling``, the
    report's run table), in the words the app's caption uses."""
    from explainers.base import sampling_words

    clf = load_efficientnet_lite0()
    fitted = prepare_image(clf, sample_image("coffee"), policy="crop")
    ctx = ExplainContext(clf, fitted.image, seed=1, segmentation="grid",
                         sampling=SamplingParams(samples="auto", budget=40, threshold=1.0))
    results = explain(ctx, ["lime"], labels=[int(np.argmax(ctx.probabilities()))])
    doc = export.run_document(results, fitted=fitted, model=clf, image_name="coffee.png",
                              image_sha256="ab" * 32, seed=1, samples="auto", fill="mean", segmentation="grid")
    s = strict(export.to_json(doc))["results"][0]["sampling"]
    assert (s["mode"], s["samples"], s["budget"], s["stopped"]) == ("auto", 40, 40, "budget")
    words = sampling_words(s)
    assert words.startswith("stopped at the budget of 40 samples — the top-5 regions are not yet stable")
    assert words == results[0].sampling.words()
    html = export.html_report(fitted.image, results, doc)
    name = results[0].label_name
    assert f"<tr><th>Samples auto: {name}</th><td>{words}</td></tr>" in html.replace("&lt;", "<")
    stable = dict(s, stopped="stable", samples=1707, stability=1.0, threshold=0.8, budget=4000)
    assert s["rule"] == "expected"
    assert sampling_words(stable) == ("stable at 1707 samples: the top-5 regions' expected overlap with the "
                                      "converged answer 1.00 ≥ 0.80")
    # a run stopped by the split-half fallback, and exports written before the rule existed
    old = {k: v for k, v in stable.items() if k != "rule"}
    for doc_sampling in (dict(stable, rule="split-half"), old):
        assert sampling_words(doc_sampling) == "stable at 1707 samples: the top-5 regions' split-half overlap 1.00 ≥ 0.80"


def test_each_label_gets_its_own_auto_samples_line():
    """Labels stop on their own under "auto": one line per label, in order, fixed runs skipped."""
    from explainers.base import auto_sampling_by_label

    easy = {"mode": "auto", "samples": 560, "stopped": "stable"}
    hard = {"mode": "auto", "samples": 4000, "stopped": "budget"}
    results = [{"label_name": "tiger cat", "sampling": easy}, {"label_name": "Egyptian cat", "sampling": hard},
               {"label_name": "tiger cat", "sampling": easy}, {"label_name": "tabby", "sampling": None},
               {"label_name": "lynx", "sampling": {"mode": "fixed", "samples": 300}}]
    assert auto_sampling_by_label(results) == [("tiger cat", easy), ("Egyptian cat", hard)]
