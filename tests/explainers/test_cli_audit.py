"""``python -m explainers audit``: end to end (JSON summary, resume), and one-line errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from explainers.cli import main
from tests.explainers.audit_models import noise_folder, save_model, tiny_cnn
from tests.explainers.test_cli import one_error_line, run_cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_audit")
    model = save_model(tiny_cnn(), base / "tiny.keras")
    data = noise_folder(base / "data", per_class=3)
    (data / "a" / "junk.png").write_bytes(b"junk")
    return base, model, data


def test_audit_json_end_to_end_and_resume(setup, tmp_path):
    base, model, data = setup
    out = tmp_path / "out"
    args = ("audit", str(data), "--model", model, "--out", str(out), "--samples", "32",
            "--deletion-steps", "4", "--json")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["images"] == 6 and summary["errors"] == 1 and summary["rows"] == 12
    assert summary["model_calls"] > 6 and summary["seconds"] > 0 and set(summary["clusters"]) <= {"class 0", "class 1", "class 2"}
    assert "ETA" in proc.stderr and "error" not in proc.stderr
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["true_label"]) == {"a", "b"}

def test_rerun_resumes_with_no_model_call(setup, tmp_path, capsys):
    base, model, data = setup
    args = ["audit", str(data), "--model", model, "--out", str(tmp_path / "out"), "--samples", "32",
            "--methods", "gradcam", "--json", "--quiet"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["images"] == 6 and first["model_calls"] >= 6
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model_calls"] == 0 and again["images"] == 6 and again["rows"] == first["rows"]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--samples", "3"], "samples must be between"),
        (["--every", "2"], "video source only"),
        (["--masks", "/no/such/dir"], "neither a folder nor a .zip"),
        (["--masks", "x", "--boxes", "y"], "not allowed with"),
        (["--engine", "spark"], "invalid choice"),
        (["--workers", "4"], "need --engine ray"),
        (["--methods", "gradcam,nope"], "unknown method"),
        (["--top-k", "0"], "at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(setup, tmp_path, capsys, extra, fragment):
    base, model, data = setup
    try:
        code = main(["audit", str(data), "--model", model, "--out", str(tmp_path / "o"), *extra])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2
    assert fragment in one_error_line(capsys.readouterr().err)


def test_missing_source_and_out(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exc:
        main(["audit", str(tmp_path)])
    assert exc.value.code == 2 and "--out" in one_error_line(capsys.readouterr().err)


def test_plain_output_ends_with_the_findings_in_words(setup, tmp_path, capsys):
    base, model, data = setup
    out = tmp_path / "out"
    assert main(["audit", str(data), "--model", model, "--out", str(out), "--methods", "gradcam", "--quiet"]) == 0
    text = capsys.readouterr().out
    from explainers.audit.findings import findings

    expected = findings(json.loads((out / "clusters.json").read_text()), 1)
    assert [line.removeprefix("  - ") for line in text.splitlines() if line.startswith("  - ")] == expected
    assert expected[0].startswith("6 images explained") and "1 file could not be used" in expected[0]
    assert f"{out / 'summary.html'}" in text
