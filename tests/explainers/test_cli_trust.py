"""`python -m explainers trust` end to end in a subprocess, on the bundled model."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explainers", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("trust") / "cat.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


def test_trust_json_has_the_documented_schema(cat, tmp_path):
    mask = np.zeros(Image.open(cat).size[::-1], np.uint8)
    mask[80:250, 120:380] = 255  # the cat's face
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    proc = run("trust", str(cat), "--methods", "lime,kernel_shap,gradcam", "--samples", "64",
               "--seeds", "2", "--steps", "6", "--stability-samples", "32", "--segmentation", "grid",
               "--mask", str(mask_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == ["label", "model_calls", "methods", "agreement"]
    assert out["label"] in range(281, 286)  # a domestic cat
    assert out["model_calls"] > 0
    assert [m["method"] for m in out["methods"]] == ["gradcam", "lime", "kernel_shap"]
    for m in out["methods"]:
        for key in ("deletion_auc", "insertion_auc", "random_deletion_auc", "stability_iou", "stability_rank_corr"):
            assert isinstance(m[key], float), (m["method"], key)
        assert isinstance(m["pointing_hit"], bool) and 0.0 <= m["mask_iou"] <= 1.0
    gradcam = out["methods"][0]
    assert gradcam["stability_iou"] == 1.0 and gradcam["stability_rank_corr"] == 1.0  # deterministic
    agree = out["agreement"]
    assert agree["methods"] == ["gradcam", "lime", "kernel_shap"]
    assert [agree["rank_corr"][i][i] for i in range(3)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("args, words", [
    (["--label", "5000"], "--label must be between"),
    (["--noise", "-1"], "--noise must be between"),
    (["--methods", "nope"], "unknown method"),
])
def test_bad_trust_arguments_exit_2_with_one_line(cat, args, words):
    proc = run("trust", str(cat), "--samples", "16", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_trust_sanity_json(cat):
    """--sanity: per method the similarity per randomised layer and `passes`, on the bundled model."""
    proc = run("trust", str(cat), "--methods", "gradcam", "--samples", "16", "--seeds", "1",
               "--steps", "4", "--segmentation", "grid", "--sanity", "--sanity-steps", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "retracing" not in proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == ["label", "model_calls", "methods", "agreement", "sanity"]
    san = out["sanity"]
    assert san["layers"][0] == "predictions" and len(san["layers"]) == 2
    assert san["randomized_layers"] == [1, san["total_layers"]] and san["total_layers"] > 50
    grad = san["methods"]["gradcam"]
    assert len(grad["spearman"]) == len(grad["ssim"]) == 2 and isinstance(grad["passes"], bool)
    assert grad["passes"]  # Grad-CAM depends on the weights (Adebayo et al.)
