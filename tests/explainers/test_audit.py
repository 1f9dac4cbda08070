"""Dataset audit: sources, the batched run, results files, resume, bad files, ground truth."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from explainers.audit import AuditConfig, open_source, run_audit
from explainers.audit.process import image_id
from explainers.audit.sources import GroundTruth, SourceError, read_item, zip_items
from explainers.base import ExplainerError
from explainers.context import ExplainContext
from explainers.runner import explain
from model_zoo.registry import load_classifier, prepare_image
from tests.explainers.audit_models import bomb_png, noise_folder, png, save_model, tiny_cnn

FAST = dict(samples=32, batch_size=4, deletion_steps=4, random_orders=1, thumb_size=32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_model(tiny_cnn(), tmp_path_factory.mktemp("model") / "tiny.keras")


@pytest.fixture
def clf(model_path):
    return load_classifier(model_path)


@pytest.fixture
def folder(tmp_path):
    root = noise_folder(tmp_path / "data")
    (root / "b" / "garbage.png").write_bytes(b"this is not a picture")
    (root / "b" / "notes.txt").write_text("hello")
    good = png(np.zeros((20, 20, 3), np.uint8))
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "a" / "bomb.png").write_bytes(bomb_png())
    (root / "top.png").write_bytes(png(np.full((30, 30, 3), 200, np.uint8)))
    return root


# ---------------------------------------------------------------------- sources
def test_folder_labels_follow_class_subfolders(folder):
    items = list(open_source(folder).items())
    names = [i.name for i in items]
    assert names[0] == "top.png" and names[1:] == sorted(names[1:])  # walked top-down, sorted
    labels = {i.name: i.true_label for i in items}
    assert labels["a/0.png"] == "a" and labels["b/3.png"] == "b" and labels["top.png"] is None
    assert len(items) == 13


def test_zip_refuses_traversal_links_and_bombs(tmp_path):
    path = tmp_path / "set.zip"
    good = png(np.zeros((8, 8, 3), np.uint8))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cats/1.png", good)
        zf.writestr("../evil.png", good)
        zf.writestr("/abs.png", good)
        zf.writestr("dogs/zeros.png", b"\0" * (8 * 2**20))  # 8 MB of zeros: ratio ≫ 200:1
        zf.writestr("dogs/bomb.png", bomb_png())
        link = zipfile.ZipInfo("dogs/link.png")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    items = {i.name: i for i in zip_items(path)}
    assert items["cats/1.png"].kind == "zip" and items["cats/1.png"].true_label == "cats"
    assert read_item(items["cats/1.png"]).shape == (8, 8, 3)
    assert "outside the archive" in items["../evil.png"].reason
    assert "outside the archive" in items["/abs.png"].reason
    assert "zip bomb" in items["dogs/zeros.png"].reason
    assert "symbolic link" in items["dogs/link.png"].reason
    from explainers.audit.sources import BadItem

    with pytest.raises(BadItem, match="too large"):
        read_item(items["dogs/bomb.png"])
    assert not (tmp_path / "evil.png").exists()


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "missing")
    (tmp_path / "x.zip").write_bytes(b"nope")
    with pytest.raises(SourceError, match="not a readable .zip"):
        list(open_source(tmp_path / "x.zip").items())
    with pytest.raises(SourceError, match="video source only"):
        open_source(tmp_path, every=2)


# ---------------------------------------------------------------------- the run
def test_batched_gradcam_matches_the_single_image_api(clf, tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    feats, scores, classes, grads = clf.top_k_gradients(images, 2)
    for n in range(5):
        f1, s1, g1 = clf.gradients(images[n : n + 1], [int(c) for c in classes[n]])
        np.testing.assert_allclose(feats[n], f1[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grads[n], g1[0], rtol=1e-4, atol=1e-6)
        assert list(classes[n]) == list(np.argsort(-s1[0], kind="stable")[:2])
    # the audit's Grad-CAM maps equal the single-image API's, for every image of a batch
    root = tmp_path / "imgs"
    root.mkdir()
    for n in range(5):
        (root / f"{n}.png").write_bytes(png(images[n]))
    seen = clf.images_seen
    run_audit(open_source(root), tmp_path / "out", classifier=clf,
              config=AuditConfig(methods=("gradcam",), top_k=2, **{**FAST, "deletion_steps": 0}))
    assert clf.images_seen - seen == 5  # one batched forward+backward pass covers every image
    for n in range(5):
        ctx = ExplainContext(clf, images[n])
        for exp in explain(ctx, ["gradcam"], top_k=2):
            with np.load(tmp_path / "out" / "maps" / f"{image_id(f'{n}.png')}.npz") as z:
                saved = z[f"gradcam/{exp.label}"].astype(np.float32)
            np.testing.assert_allclose(saved, exp.heatmap, rtol=2e-3, atol=2e-3 * float(exp.heatmap.max()))


def test_concurrent_gradient_chunks_equal_one_stream_in_order(clf, monkeypatch):
    """Chunks computed two at a time (classifier.GRADIENT_STREAMS) come back in image order
    and equal, to the last bit, the same chunks computed one after another."""
    from model_zoo import classifier as classifier_module

    images = np.random.default_rng(5).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    seen = clf.images_seen
    together = clf.top_k_gradients(images, 2, chunk=2)  # 4 chunks, 2 at a time
    assert clf.images_seen - seen == 7
    monkeypatch.setattr(classifier_module, "GRADIENT_STREAMS", 1)
    alone = clf.top_k_gradients(images, 2, chunk=2)
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)
    for n in (0, 3, 6):  # each row is its own image's
        f1, s1, _ = clf.gradients(images[n : n + 1], [int(c) for c in together[2][n]])
        np.testing.assert_allclose(together[0][n], f1[0], rtol=1e-4, atol=1e-5)
        assert list(together[2][n]) == list(np.argsort(-s1[0], kind="stable")[:2])


def test_run_writes_results_lists_bad_files_and_resumes(clf, folder, tmp_path):
    out = tmp_path / "out"
    cfg = AuditConfig(**FAST)
    summary = run_audit(open_source(folder), out, classifier=clf, config=cfg)
    assert summary["images"] == 9 and summary["errors"] == 4 and summary["status"] == "complete"
    frame = pd.read_parquet(out / "results.parquet")
    for col in ("image", "true_label", "label", "label_name", "probability", "method", "peak_row",
                "peak_col", "deletion_auc", "random_deletion_auc", "pointing_hit", "cluster"):
        assert col in frame.columns
    assert len(frame) == 9 * 2 and set(frame["method"]) == {"gradcam", "kernel_shap"}
    assert frame["pointing_hit"].isna().all() and frame["deletion_auc"].notna().all()
    # peaks are in the file's own pixels (40×48 files, 30×30 for top.png)
    files = frame[frame["image"] != "top.png"]
    assert files["peak_row"].max() < 40 and files["peak_col"].max() < 48
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = {e["image"]: e["reason"] for e in manifest["errors"]}
    assert set(reasons) == {"a/bomb.png", "a/truncated.png", "b/garbage.png", "b/notes.txt"}
    assert "too large" in reasons["a/bomb.png"] and ("truncated" in reasons["a/truncated.png"]
                                                or "damaged" in reasons["a/truncated.png"])
    assert manifest["params"]["seed"] == 0 and "tensorflow" in "".join(manifest["packages"])
    assert manifest["model"]["id"] == clf.id
    html = (out / "summary.html").read_text()
    assert "a/bomb.png" in html and "data:image/png;base64," in html
    # the answer first (findings in words, then the pictures with their colour legend), the settings last
    order = [html.index(h) for h in ("What the audit found", "Where the model looks, per predicted class",
                                     "Files not used", "How it was computed", "Machine-readable data")]
    assert order == sorted(order), order
    assert "9 images explained" in html and "4 files could not be used" in html
    per_class, _, flagged = html.partition("<h2>Flagged images")
    assert per_class.count("class='xai-legend'") == len(json.loads((out / "clusters.json").read_text())["classes"])
    assert not flagged or "class='xai-legend'" in flagged.split("class='thumbs'")[0]  # thumbnails' colours
    assert "pushes towards" in html and "model_calls</th>" not in html  # no raw keys as row names
    assert "Samples per image (KernelSHAP)</th>" in html  # only the methods run on the shared rows
    for image in frame["image_id"].unique():
        with np.load(out / "maps" / f"{image}.npz") as z:
            assert z["gradcam/" + str(frame[frame.image_id == image]["label"].iloc[0])].dtype == np.float16
            for r in frame[frame.image_id == image].itertuples():  # a one-sided scale only when
                assert r.map_signed or z[f"{r.method}/{r.label}"].min() >= 0  # nothing is negative
    # one colour scale per method, never per map (an all-positive KernelSHAP map stays blue-white-red)
    assert not frame[frame.method == "gradcam"]["map_signed"].any()  # ReLU'd: never negative
    assert frame[frame.method == "kernel_shap"]["map_signed"].all()
    # a repeated run skips every finished image: no model call, same rows
    seen = clf.images_seen
    again = run_audit(open_source(folder), out, classifier=clf, config=cfg)
    assert clf.images_seen == seen and again["model_calls"] == 0 and again["new_images"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), frame)
    # other parameters are refused instead of mixing two runs
    with pytest.raises(ExplainerError, match="other parameters"):
        run_audit(open_source(folder), out, classifier=clf, config=AuditConfig(**{**FAST, "seed": 1}))


def test_interrupted_run_resumes_only_the_rest(clf, tmp_path):
    import threading

    root = noise_folder(tmp_path / "data", per_class=4)
    out = tmp_path / "out"
    cfg = AuditConfig(methods=("gradcam",), **{**FAST, "batch_size": 2, "deletion_steps": 0})
    stop = threading.Event()

    def progress(p):
        if p.done >= 3:
            stop.set()

    first = run_audit(open_source(root), out, classifier=clf, config=cfg, progress=progress, cancel=stop)
    assert first["status"] == "cancelled" and 3 <= first["images"] < 8
    seen = clf.images_seen
    second = run_audit(open_source(root), out, classifier=clf, config=cfg)
    assert second["images"] == 8 and second["new_images"] == 8 - first["images"]
    assert clf.images_seen - seen == 8 - first["images"]
    whole = run_audit(open_source(root), tmp_path / "whole", classifier=clf, config=cfg)
    assert whole["images"] == 8
    a = pd.read_parquet(out / "results.parquet").drop(columns=["cluster"])
    b = pd.read_parquet(tmp_path / "whole" / "results.parquet").drop(columns=["cluster"])
    pd.testing.assert_frame_equal(a, b)


def test_masks_and_boxes_give_pointing_metrics(clf, tmp_path):
    root = tmp_path / "imgs"
    masks = tmp_path / "masks"
    root.mkdir(), masks.mkdir()
    rng = np.random.default_rng(1)
    for n in range(3):
        (root / f"im{n}.png").write_bytes(png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    m = np.zeros((32, 32, 3), np.uint8)
    m[:, :16] = 255  # left half is the object
    for n in range(2):  # im2 has no mask
        (masks / f"im{n}.png").write_bytes(png(m))
    cfg = AuditConfig(methods=("gradcam",), **{**FAST, "deletion_steps": 0})
    run_audit(open_source(root), tmp_path / "out", classifier=clf, config=cfg,
              truth_args={"masks_dir": str(masks)})
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index("image")
    for n in range(2):
        row = frame.loc[f"im{n}.png"]
        assert row["pointing_hit"] == (row["peak_col"] < 16)
        with np.load(tmp_path / "out" / "maps" / f"{image_id(f'im{n}.png')}.npz") as z:
            heat = np.maximum(z[f"gradcam/{row['label']}"].astype(np.float64), 0)
        assert row["mass_in_mask"] == pytest.approx(heat[:, :16].sum() / heat.sum(), rel=1e-3)
        assert row["outside_mask"] == (not row["pointing_hit"])  # the peak decides, not the mass
    assert pd.isna(frame.loc["im2.png", "pointing_hit"])
    # a boxes CSV in file pixels gives the same mask
    csv = tmp_path / "boxes.csv"
    csv.write_text("image,x0,y0,x1,y1\nim0.png,0,0,16,32\nim1.png,0,0,16,32\n")
    run_audit(open_source(root), tmp_path / "out2", classifier=clf, config=cfg,
              truth_args={"boxes_csv": str(csv)})
    frame2 = pd.read_parquet(tmp_path / "out2" / "results.parquet").set_index("image")
    np.testing.assert_allclose(frame2["mass_in_mask"].iloc[:2].astype(float), frame["mass_in_mask"].iloc[:2].astype(float))
    with pytest.raises(SourceError, match="columns"):
        bad = tmp_path / "bad.csv"
        bad.write_text("name,a\nx,1\n")
        GroundTruth(boxes_csv=str(bad))


def test_masks_in_a_zip_match_by_path_tail_and_bad_masks_fail_only_their_image(clf, tmp_path):
    root = tmp_path / "imgs"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in ("cats/0.png", "dogs/0.png", "dogs/1.png"):
        (root / name).write_bytes(png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    left, right = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)
    left[:, :16], right[:, 16:] = 255, 255
    masks = tmp_path / "masks.zip"
    with zipfile.ZipFile(masks, "w") as zf:
        zf.writestr("masks/cats/0.png", png(left))  # same stem "0" as dogs/0: matched by cats/0
        zf.writestr("masks/dogs/0.png", png(right))
        zf.writestr("masks/dogs/1.png", b"not a png")
        zf.writestr("../evil.png", png(left))  # listed, never written anywhere
    truth = GroundTruth(str(masks))
    assert truth.kind == "masks" and truth.masks["0"] is None  # ambiguous tail never used
    cfg = AuditConfig(methods=("gradcam",), **{**FAST, "deletion_steps": 0})
    summary = run_audit(open_source(root), tmp_path / "out", classifier=clf, config=cfg,
                        truth_args={"masks_dir": str(masks)})
    assert summary["images"] == 2 and summary["errors"] == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["errors"][0]["image"] == "dogs/1.png"
    assert "its mask cannot be read" in manifest["errors"][0]["reason"]
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index("image")
    assert frame.loc["cats/0.png", "pointing_hit"] == (frame.loc["cats/0.png", "peak_col"] < 16)
    assert frame.loc["dogs/0.png", "pointing_hit"] == (frame.loc["dogs/0.png", "peak_col"] >= 16)
    assert not (tmp_path / "evil.png").exists()
    with pytest.raises(SourceError, match="neither a folder nor a .zip"):
        GroundTruth(str(tmp_path / "missing"))


def test_accuracy_counts_only_folders_named_after_model_classes(model_path, tmp_path):
    """Folders "a"/"b" are not class names of a model labelled "cat"/"dog"/"cow": accuracy is not
    measured (instead of 0 %) and nobody is flagged misclassified; folders named after classes
    are counted, and the page and the report say which were not."""
    from explainers.audit.aggregate import accuracy_words

    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\ncow\n")
    clf = load_classifier(model_path, labels_path=str(labels))
    cfg = AuditConfig(methods=("gradcam",), deletion_steps=0, batch_size=4, thumb_size=32)
    run_audit(open_source(noise_folder(tmp_path / "plain")), tmp_path / "o1", classifier=clf, config=cfg)
    c1 = json.loads((tmp_path / "o1" / "clusters.json").read_text())
    assert c1["accuracy"] is None and c1["unmatched_true_labels"] == ["a", "b"] and c1["unmatched_images"] == 8
    assert c1["flags"]["misclassified"] == 0
    assert pd.read_parquet(tmp_path / "o1" / "results.parquet")["misclassified"].isna().all()
    words = accuracy_words(c1)
    assert words.startswith("Accuracy not measured: the folder names (a, b) are not class names")
    assert "Accuracy not measured" in (tmp_path / "o1" / "summary.html").read_text()

    mixed = noise_folder(tmp_path / "mixed", classes=("cat", "dog", "zebra"))
    run_audit(open_source(mixed), tmp_path / "o2", classifier=clf, config=cfg)
    c2 = json.loads((tmp_path / "o2" / "clusters.json").read_text())
    frame = pd.read_parquet(tmp_path / "o2" / "results.parquet")
    counted = frame[frame["true_label"].isin(["cat", "dog"])]
    expected = float((counted["label_name"] == counted["true_label"]).mean())
    assert c2["accuracy_images"] == 8 and c2["accuracy"] == pytest.approx(expected)
    assert c2["unmatched_true_labels"] == ["zebra"] and c2["unmatched_images"] == 4
    per = {t: float((g["label_name"] == t).mean()) for t, g in counted.groupby("true_label")}
    assert c2["accuracy_per_class"] == pytest.approx(per) and c2["accuracy_per_class_images"] == {"cat": 4, "dog": 4}
    worst = sorted(per, key=lambda t: (per[t], t))
    assert (f"By folder, lowest first: {worst[0]} {per[worst[0]]:.0%} of 4, {worst[1]} {per[worst[1]]:.0%} of 4."
            in accuracy_words(c2))
    assert frame.loc[frame["true_label"] == "zebra", "misclassified"].isna().all()
    assert frame.loc[frame["true_label"] != "zebra", "misclassified"].notna().all()
    assert accuracy_words(c2).endswith("4 images in folders that are not class names of this model (zebra) "
                                       "are not counted.")


def test_polling_the_store_reads_only_new_parts(tmp_path) -> None:
    """The live gallery polls ``parts()`` every 1.5 s: a part already read is not read again
    (same mtime and size), a new one appears, a rewritten one is read afresh."""
    import os

    from explainers.audit.process import Outcome
    from explainers.audit.store import ResultStore

    store = ResultStore(tmp_path)
    for i in range(3):
        store.save(Outcome(f"img{i}.png", image_id(f"img{i}.png"), i, None, error="unreadable"))
    assert [p["image"] for p in store.parts()] == ["img0.png", "img1.png", "img2.png"]
    # same size and mtime, different bytes: a cached part is not re-read
    path = store.part_path(image_id("img1.png"))
    st = path.stat()
    path.write_bytes(b" " * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    store.save(Outcome("img3.png", image_id("img3.png"), 3, None, error="unreadable"))
    assert [p["image"] for p in store.parts()] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    # a part rewritten (resume) is read again; a fresh store reads everything
    store.save(Outcome("img1.png", image_id("img1.png"), 1, "cats", error="unreadable"))
    assert [p["true_label"] for p in store.parts()] == [None, "cats", None, None]
    path.write_text('{"broken', encoding="utf-8")
    with pytest.raises(ValueError):
        list(ResultStore(tmp_path).parts())
    # the manifest, asked for by several panels per rerun, is parsed again only when it changed
    store.write_manifest({"errors": [{"image": "a.png", "reason": "unreadable"}]})
    first = store.read_manifest()
    assert store.read_manifest() is first
    store.write_manifest({"errors": []})
    assert store.read_manifest() == {"errors": []}


@pytest.mark.slow  # the bundled ImageNet weights
def test_imagenet_folders_named_by_wordnet_id_or_synonym_are_counted(tmp_path):
    """ImageNet / Imagenette keep one folder per WordNet id; people write "tiger_cat" or "tabby".
    Chelsea is a tiger cat for the bundled model (tests/model_zoo/test_bundled.py): right under
    n02123159 and tiger_cat, wrong under n02123045 (tabby), not counted under "crane" (two classes)."""
    import skimage.data

    from model_zoo.bundled import load_efficientnet_lite0

    for folder in ("n02123159", "tiger_cat", "n02123045", "crane"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        (tmp_path / "data" / folder / "chelsea.png").write_bytes(png(skimage.data.chelsea()))
    cfg = AuditConfig(methods=("gradcam",), deletion_steps=0, batch_size=4, thumb_size=32)
    run_audit(open_source(tmp_path / "data"), tmp_path / "out", classifier=load_efficientnet_lite0(), config=cfg)
    clusters = json.loads((tmp_path / "out" / "clusters.json").read_text())
    assert clusters["accuracy_images"] == 3 and clusters["accuracy"] == pytest.approx(2 / 3)
    assert clusters["unmatched_true_labels"] == ["crane"]
    assert clusters["confusion"] == [{"true": "n02123045", "predicted": "tiger cat", "count": 1}]
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index("true_label")
    assert frame.loc["n02123045", "misclassified"] is True and frame.loc["tiger_cat", "misclassified"] is False
    assert frame.loc["crane", "misclassified"] is None


def test_thumbnail_colours_follow_the_method_not_the_map(clf, tmp_path):
    """A method that can give negative values keeps the blue-white-red scale even on an image
    where its map happens to be all positive, so one method's thumbnails never mix two colour
    scales; a method whose maps are never negative gets the one-sided scale."""
    from dataclasses import dataclass

    from explainers.base import Explanation, MethodSpec, register, unregister

    @dataclass(frozen=True)
    class NoParams:
        pass

    def ramp(name):  # positive everywhere on every image
        def run(ctx, params, labels):
            h, w = ctx.image.shape[:2]
            heat = np.linspace(0.1, 1.0, h * w, dtype=np.float32).reshape(h, w)
            return [Explanation(method=name, label=c, label_name=ctx.label_name(c),
                                score=float(ctx.probabilities()[c]), heatmap=heat) for c in labels]
        return run

    specs = [MethodSpec(name=name, title=name, family="occlusion", params_type=NoParams, run=ramp(name),
                        signed=signed) for name, signed in (("ramp_signed", True), ("ramp_positive", False))]
    for spec in specs:
        register(spec)
    try:
        root = noise_folder(tmp_path / "data")
        run_audit(open_source(root), tmp_path / "out", classifier=clf,
                  config=AuditConfig(methods=("ramp_signed", "ramp_positive"), **FAST))
    finally:
        for spec in specs:
            unregister(spec.name)
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    signed = frame.groupby("method")["map_signed"].agg(set).to_dict()
    assert signed == {"ramp_signed": {True}, "ramp_positive": {False}}
