"""``python -m model_zoo`` end to end, in subprocesses, as a user would run it.

The Keras cache is an empty temporary folder (no catalog weights, so the default model is the
bundled EfficientNet-Lite0) and the bundled model's conversion cache is shared by the session.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CATALOG_IDS = [
    "inceptionv3", "xception", "resnet50", "resnet50v2", "mobilenetv2", "mobilenetv3large",
    "efficientnetb0", "efficientnetv2b0", "densenet121", "vgg16", "convnexttiny",
]  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli_env")
    (root / "keras_home").mkdir()
    out = dict(os.environ)
    out.update(
        KERAS_HOME=str(root / "keras_home"),
        XAI_LENS_CACHE=str(root / "xai_cache"),
        PYTHONPATH=str(REPO),
        TF_CPP_MIN_LOG_LEVEL="2",  # the CLI must stay quiet even when this is not 3
    )
    return out


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model_zoo", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


@pytest.fixture(scope="module")
def chelsea_png(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("images") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="module")
def color_model(tmp_path_factory) -> tuple[Path, Path]:
    """A 3-class "which colour dominates" model: conv = identity, dense = 10 × identity."""
    folder = tmp_path_factory.mktemp("model")
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    dense = keras.layers.Dense(3, activation="softmax", name="scores")
    model = keras.Model(inputs, dense(x))
    conv.set_weights([np.eye(3, dtype=np.float32)[None, None]])
    dense.set_weights([10 * np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    model_path = folder / "colors.keras"
    model.save(model_path)
    labels = folder / "colors.txt"
    labels.write_text("red\ngreen\nblue\n")
    return model_path, labels


@pytest.fixture(scope="module")
def green_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "green.png"
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 1] = 230
    Image.fromarray(image).save(path)
    return path


def test_list_json_shows_bundled_default_and_every_catalog_model(env):
    result = run(env, "list", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["default"] == "efficientnet-lite0"
    assert [m["id"] for m in out["models"]] == ["efficientnet-lite0", *CATALOG_IDS]
    bundled, inception = out["models"][0], out["models"][1]
    assert bundled["available"] and bundled["kind"] == "bundled" and bundled["default"]
    assert not inception["available"] and inception["input_size"] == [299, 299]
    models_dir = Path(env["KERAS_HOME"]) / "models"
    assert inception["weights_path"] == str(models_dir / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5")
    assert out["keras_models_dir"] == str(models_dir)
    assert result.stderr == ""



def test_list_table(tmp_path, monkeypatch, capsys):
    from model_zoo.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for model_id in CATALOG_IDS:
        assert f"  {model_id} " in out
    assert "* efficientnet-lite0" in out and "missing" in out
    assert str(tmp_path / "models") in out


@pytest.mark.slow
def test_predict_default_model_on_a_cat(env, chelsea_png):
    result = run(env, "predict", str(chelsea_png), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"model", "predictions"}
    assert out["model"] == "efficientnet-lite0"
    preds = out["predictions"]
    assert len(preds) == 5 and all(set(p) == {"index", "label", "probability"} for p in preds)
    assert preds[0]["index"] in CAT_CLASSES
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6

    text = run(env, "predict", str(chelsea_png), "--top-k", "2")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[1].lstrip().startswith("1. ")
    assert preds[0]["label"] in text.stdout.splitlines()[1]
    assert len(text.stdout.strip().splitlines()) == 3


def test_predict_with_a_custom_model_and_labels(env, color_model, green_png):
    model_path, labels = color_model
    result = run(env, "predict", str(green_png), "--model", str(model_path), "--labels",
                 str(labels), "--top-k", "3", "--resize", "stretch", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"].startswith("upload:")
    top = out["predictions"][0]
    assert (top["index"], top["label"]) == (1, "green")
    # known answer: "unit" preprocessing, mean colour (0, 230/255, 0), logits 10 × that
    expected = np.exp([0.0, 10 * 230 / 255, 0.0])
    expected /= expected.sum()
    got = [p["probability"] for p in sorted(out["predictions"], key=lambda p: p["index"])]
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def _error_case(case: str, tmp_path: Path, model_path: Path, image: Path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG but not really")
    broken_model = tmp_path / "broken.keras"
    broken_model.write_bytes(b"not a zip archive")
    short_labels = tmp_path / "two.txt"
    short_labels.write_text("red\ngreen\n")
    custom = ["--model", str(model_path)]
    return {
        "garbage_image": (["predict", str(garbage)], ["not a supported image"]),
        "missing_image": (["predict", str(tmp_path / "nope.jpg")], ["nope.jpg does not exist"]),
        "bad_model_file": (["predict", str(image), "--model", str(broken_model)], []),
        "unknown_id": (["predict", str(image), "--model", "alexnet"], ["unknown model"]),
        "top_k_zero": (["predict", str(image), "--top-k", "0"], ["--top-k"]),
        "missing_weights": (["predict", str(image), "--model", "vgg16"],
                            ["vgg16_weights_tf_dim_ordering_tf_kernels.h5", "https://"]),
        "top_k_too_big": (["predict", str(image), *custom, "--top-k", "4"], ["between 1 and 3"]),
        "bad_labels": (["predict", str(image), *custom, "--labels", str(short_labels)],
                       ["2 names", "3 classes"]),
        "bad_preprocess": (["predict", str(image), *custom, "--preprocess", "sepia"],
                           ["unknown preprocessing 'sepia'"]),
        "bad_resize": (["predict", str(image), "--resize", "zoom"], ["invalid choice"]),
        "labels_file_missing": (["predict", str(image), *custom, "--labels", "nope.txt"],
                                ["nope.txt does not exist"]),
    }[case]


@pytest.mark.parametrize(
    "case", ["garbage_image", "missing_image", "bad_model_file", "unknown_id", "top_k_zero"]
)
def test_bad_input_exits_2_with_one_error_line(env, case, tmp_path, color_model, green_png):
    """In a fresh process: exit code 2, one "error: " line, no traceback, no TF log noise."""
    args, fragments = _error_case(case, tmp_path, color_model[0], green_png)
    assert_user_error(run(env, *args), *fragments)


@pytest.mark.parametrize(
    "case",
    ["missing_weights", "top_k_too_big", "bad_labels", "bad_preprocess", "bad_resize",
     "labels_file_missing"],
)
def test_more_bad_inputs_in_process(case, tmp_path, color_model, green_png, capsys, monkeypatch):
    """The same contract through cli.main (in this process, to keep the suite fast)."""
    from model_zoo.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    args, fragments = _error_case(case, tmp_path, color_model[0], green_png)
    try:
        code = main(args)
    except SystemExit as e:  # argparse errors
        code = e.code
    captured = capsys.readouterr()
    assert_user_error(subprocess.CompletedProcess(args, code, captured.out, captured.err),
                      *fragments)


def test_predict_default_top_k_fits_a_two_class_model(tmp_path, green_png, capsys, monkeypatch):
    """No --top-k on a 2-class model prints both classes (default min(5, classes))."""
    from model_zoo.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    path = tmp_path / "two.keras"
    model.save(path)
    code = main(["predict", str(green_png), "--model", str(path), "--preprocess", "unit",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    preds = json.loads(captured.out)["predictions"]
    assert sorted(p["index"] for p in preds) == [0, 1]
