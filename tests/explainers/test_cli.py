"""``python -m explainers``: end to end on the bundled model, peaks in file coordinates, errors."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from explainers.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 64


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "explainers", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def chelsea_png(tmp_path_factory) -> Path:
    from skimage.data import chelsea

    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    Image.fromarray(chelsea()).save(path)  # 300×451: not square
    return path


# ---------------------------------------------------------------------- bundled model, subprocess
@pytest.mark.slow
def test_bundled_model_json_end_to_end(chelsea_png, tmp_path):
    out = tmp_path / "maps.npz"
    proc = run_cli(
        "explain", str(chelsea_png), "--model", "efficientnet-lite0", "--resize", "crop",
        "--methods", "lime,kernel_shap,gradcam", "--samples", str(SAMPLES), "--seed", "3",
        "--top-k", "2", "--json", "--out", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # TensorFlow's start-up chatter is silenced
    report = json.loads(proc.stdout)

    assert report["model"] == "efficientnet-lite0"
    assert report["image_sha256"] == hashlib.sha256(chelsea_png.read_bytes()).hexdigest()
    assert report["image_shape"] == [300, 451] and report["input_shape"] == [224, 224]
    assert report["seconds"] > 0
    results = report["results"]
    assert sorted(r["method"] for r in results) == sorted(["lime", "kernel_shap", "gradcam"] * 2)
    assert results[0]["label"] == 282 and results[0]["label_name"] == "tiger cat"  # known answer
    assert report["labels"][0] == 282

    # Model calls: one perturbation pass shared by LIME and KernelSHAP (duplicated coalitions are
    # predicted once), one image for Grad-CAM, one for the top-k prediction.
    assert SAMPLES - 8 <= report["model_calls"] - 2 <= SAMPLES
    assert sum(r["model_calls"] for r in results) == report["model_calls"] - 1

    # Peaks are in the file's pixels, inside the centre crop the model saw (224/256 of the
    # shorter side, centred): rows 18.75..281.25, cols 94.25..356.75.
    for r in results:
        row, col = r["peak_file_rc"]
        assert 18 <= row <= 281 and 94 <= col <= 356, r
        assert r["seconds"] >= 0 and 0 <= r["score"] <= 1
    m = report["num_segments"]
    for r in results:
        if r["method"] == "gradcam":
            assert "segments" not in r
            continue
        ids = [s[0] for s in r["segments"]]
        weights = [s[1] for s in r["segments"]]
        assert sorted(ids) == list(range(m)) and weights == sorted(weights, reverse=True)
        assert r["params"]["samples"] <= SAMPLES and r["params"]["seed"] == 3
        assert r["r2"] is not None
    shap = [r for r in results if r["method"] == "kernel_shap"]
    for r in shap:  # efficiency: base value + Σφ = f(x)
        assert r["base_value"] + sum(w for _, w in r["segments"]) == pytest.approx(r["score"], abs=1e-4)

    with np.load(out) as npz:
        assert npz["heatmaps"].shape == (6, 224, 224) and npz["heatmaps"].dtype == np.float32
        assert list(npz["methods"]) == [r["method"] for r in results]
        assert npz["segments"].shape == (224, 224) and int(npz["segments"].max()) + 1 == m
        assert npz["segment_weights"].shape == (6, m) and npz["segment_std"].shape == (6, m)
        for i, r in enumerate(results):  # standard errors by segment id, NaN for Grad-CAM
            if r["method"] == "gradcam":
                assert np.isnan(npz["segment_std"][i]).all()
            else:
                np.testing.assert_allclose(npz["segment_std"][i], r["segment_std"], rtol=1e-6)
        for i, r in enumerate(results):
            peak = np.unravel_index(np.argmax(npz["heatmaps"][i]), (224, 224))
            assert list(peak) == r["peak_input_rc"]


@pytest.mark.slow
def test_auto_samples_report_what_they_used(chelsea_png, capsys):
    """--samples auto (the default) with a tiny budget: the run stops at the budget and every
    superpixel result says so, with per-segment standard errors and the unsettled segments."""
    code = main(["explain", str(chelsea_png), "--model", "efficientnet-lite0", "--methods",
                 "lime,kernel_shap", "--budget", "96", "--threshold", "1", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == "auto" and report["samples_used"] == 96
    m = report["num_segments"]
    for r in report["results"]:
        s = r["sampling"]
        assert s["mode"] == "auto" and s["samples"] == 96 and s["budget"] == 96
        assert s["stopped"] == "budget" and 0 <= s["stability"] < 1 and s["threshold"] == 1
        assert set(s["per_method"]) == {"lime", "kernel_shap"}
        assert len(r["segment_std"]) == m and all(v > 0 for v in r["segment_std"])
        weights = dict(r["segments"])
        for i in range(m):  # unsettled ⇔ |w| < 1.96 σ
            assert (i in r["unsettled"]) == (abs(weights[i]) < 1.96 * r["segment_std"][i])
        assert r["params"]["samples"] == 96 and r["params"]["requested_samples"] == "auto"


def test_unknown_method_is_one_line_after_tensorflow_import(chelsea_png):
    proc = run_cli("explain", str(chelsea_png), "--methods", "lime,deeplift")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "deeplift" in line and "gradcam" in line  # names the valid choices


def test_unreadable_image_is_one_line(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    proc = run_cli("explain", str(bad))
    assert proc.returncode == 2
    assert "not a supported image" in one_error_line(proc.stderr)


# ---------------------------------------------------------------------- in process
@pytest.mark.slow
def test_readable_table(chelsea_png, capsys):
    code = main(["explain", str(chelsea_png), "--model", "efficientnet-lite0",
                 "--methods", "gradcam,gradcam_pp", "--top-k", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "tiger cat" in out and "gradcam_pp" in out and "PEAK (row, col)" in out


def test_readable_table_says_what_auto_samples_did(chelsea_png, capsys):
    code = main(["explain", str(chelsea_png), "--model", "efficientnet-lite0", "--methods", "kernel_shap",
                 "--top-k", "1", "--budget", "64", "--threshold", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "samples auto, tiger cat: stopped at the budget of 64 samples — the top-5 regions are not yet stable, expected overlap with the converged answer" \
        in out, out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--samples", "3"], "samples must be between"),
        (["--samples", "many"], "--samples"),
        (["--threshold", "1.5"], "threshold"),
        (["--model", "no-such-model"], "unknown model"),
        (["--seg-param", "ratio=0.5", "--seg-param", "colour=3"], "unknown quickshift parameter 'colour'"),
        (["--seg-param", "ratio=high"], "must be a number"),
        (["--seg-param", "ratio"], "name=value"),
        (["--segmentation", "slic", "--seg-param", "n_segments=0"], "n_segments"),
        (["--fill", "pink"], "fill must be"),
        (["--methods", "occlusion", "--param", "occlusion.stride=99"], "stride"),
        (["--methods", "gradcam", "--param", "lime.alpha=1"], "not in --methods"),
        (["--methods", "gradcam", "--target", "1000"], "out of range"),
        (["--methods", "gradcam", "--top-k", "0"], "--top-k"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(chelsea_png, capsys, args, fragment):
    with_model = [] if "--model" in args else ["--model", "efficientnet-lite0"]
    try:
        code = main(["explain", str(chelsea_png), *with_model, *args])
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    assert fragment in one_error_line(captured.err)
    assert captured.out == ""


def test_bad_model_file(tmp_path, chelsea_png, capsys):
    fake = tmp_path / "model.keras"
    fake.write_bytes(b"this is not a zip")
    assert main(["explain", str(chelsea_png), "--model", str(fake)]) == 2
    assert one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------- known answer: peak mapping
H, W = 90, 150
BLOB = (35, 88)  # row, col of the blob maximum in the file: inside the centre crop, off its edges


@pytest.fixture(scope="module")
def blob_files(tmp_path_factory) -> tuple[Path, Path]:
    """A 90×150 PNG with one Gaussian bright blob, and a 32×32 model that detects brightness.

    Model: 1×1 conv = relu(mean RGB − 0.6) → global average pool → dense [+1, −1]. For class 0
    Grad-CAM is the conv map itself, so its maximum is the blob's maximum; the CLI must map it
    back to ``BLOB`` in the file's pixels whatever the resize policy.
    """
    folder = tmp_path_factory.mktemp("blob")
    rows, cols = np.mgrid[0:H, 0:W]
    blob = np.exp(-((rows - BLOB[0]) ** 2 + (cols - BLOB[1]) ** 2) / (2 * 7.0**2))
    rng = np.random.default_rng(0)
    img = 40 + 215 * blob[..., None] + rng.integers(0, 6, (H, W, 3))
    png = folder / "blob.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(png)

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(1, 1, activation="relu", name="bright")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("bright").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), np.array([-0.6], np.float32)])
    model.get_layer("head").set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    path = folder / "bright.keras"
    model.save(path)
    return png, path


@pytest.mark.parametrize("policy", ["crop", "stretch", "pad"])
def test_peak_maps_back_to_the_file(blob_files, capsys, policy):
    png, model = blob_files
    code = main(["explain", str(png), "--model", str(model), "--preprocess", "unit",
                 "--resize", policy, "--methods", "gradcam,occlusion", "--target", "0",
                 "--param", "occlusion.window=6", "--param", "occlusion.stride=1", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["image_shape"] == [H, W] and report["resize"] == policy
    # one input pixel covers (90/32, 90/32) file pixels for crop, (90/32, 150/32) for stretch
    # and (150/32, 150/32) for pad
    scale_r = {"crop": H / 32, "stretch": H / 32, "pad": W / 32}[policy]
    scale_c = {"crop": H / 32, "stretch": W / 32, "pad": W / 32}[policy]
    for r in report["results"]:
        row, col = r["peak_file_rc"]
        assert abs(row - BLOB[0]) <= scale_r + 1 and abs(col - BLOB[1]) <= scale_c + 1, (r["method"], r["peak_file_rc"])


# ---------------------------------------------------------------------- your own regions
def _regions_png(folder: Path, single: bool = False) -> Path:
    rows, cols = np.mgrid[0:H, 0:W]
    ids = np.zeros((H, W), np.uint8)
    if not single:
        ids[(rows - BLOB[0]) ** 2 + (cols - BLOB[1]) ** 2 <= 15**2] = 9  # the blob
    path = folder / ("one.png" if single else "regions.png")
    Image.fromarray(ids).save(path)
    return path


@pytest.mark.parametrize("policy", ["crop", "pad"])
def test_your_regions_replace_the_superpixels(blob_files, tmp_path, capsys, policy):
    png, model = blob_files
    regions = _regions_png(tmp_path)
    code = main(["explain", str(png), "--model", str(model), "--preprocess", "unit",
                 "--resize", policy, "--methods", "feature_ablation,lime", "--target", "0",
                 "--regions", str(regions), "--fill", "black", "--samples", "16", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["segmentation"] == "regions"
    assert report["num_segments"] == (3 if policy == "pad" else 2)  # + the letterbox bars
    ablation = next(r for r in report["results"] if r["method"] == "feature_ablation")
    blob_id, weight = ablation["segments"][0]
    # reading order: (the letterbox bar,) the background, then the blob
    assert blob_id == (2 if policy == "pad" else 1) and weight > 0
    assert all(abs(w) < abs(weight) / 10 for _, w in ablation["segments"][1:])


def test_bad_region_map_is_one_line(blob_files, tmp_path, capsys):
    png, model = blob_files
    for path, fragment in [(_regions_png(tmp_path, single=True), "only one region"),
                           (tmp_path / "missing.png", "does not exist")]:
        code = main(["explain", str(png), "--model", str(model), "--preprocess", "unit",
                     "--methods", "feature_ablation", "--regions", str(path)])
        captured = capsys.readouterr()
        assert code == 2
        assert fragment in one_error_line(captured.err)


# ---------------------------------------------------------------------- default --top-k fits the model
def test_explain_and_trust_default_top_k_fits_a_two_class_model(blob_files, capsys):
    """Without --top-k a 2-class model gets both classes (min(5, classes)), not an error."""
    png, model = blob_files
    common = [str(png), "--model", str(model), "--preprocess", "unit", "--methods", "gradcam"]
    assert main(["explain", *common, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(r["label"] for r in report["results"]) == [0, 1]

    code = main(["trust", *common, "--segmentation", "grid", "--samples", "16", "--seeds", "2",
                 "--steps", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["label"] in (0, 1)

    code = main(["explain", *common, "--top-k", "3"])
    assert code == 2 and "between 1 and 2" in one_error_line(capsys.readouterr().err)
