"""``python -m explainers explain --contrast B``: why A rather than B from the command line, on a
saved tiny model whose classes A and B differ only in one cell (see test_contrast.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from explainers.cli import main
from tests.explainers.test_contrast import CELL, COMMON, REGION, SIZE, contrast_classifier


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    clf = contrast_classifier()
    folder = tmp_path_factory.mktemp("contrast")
    png = folder / "grey.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 200, np.uint8)).save(png)
    model = folder / "contrast.keras"
    clf.model.save(model)
    labels = folder / "labels.txt"
    labels.write_text("A\nB\nother\n")
    return png, model, labels


def cell_of(peak) -> tuple[int, int]:
    return peak[0] // CELL, peak[1] // CELL


def explain(files, *extra: str) -> tuple[int, str, str]:
    png, model, labels = files
    return main(["explain", str(png), "--model", str(model), "--labels", str(labels),
                 "--preprocess", "unit", "--resize", "stretch", "--segmentation", "grid",
                 "--seg-param", "rows=4", "--seg-param", "cols=4", "--fill", "black",
                 "--samples", "600", "--target", "0", *extra])


def test_contrast_from_the_command_line(files, capsys):
    methods = ["--methods", "kernel_shap,hirescam,rise", "--param", "hirescam.layer=conv",
               "--param", "rise.cell=4", "--param", "rise.masks=600"]
    assert explain(files, *methods, "--json") == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["contrast"] is None
    assert {cell_of(r["peak_file_rc"]) for r in plain["results"]} == {COMMON}
    assert explain(files, *methods, "--contrast", "B", "--json") == 0
    versus = json.loads(capsys.readouterr().out)
    assert versus["contrast"] == 1
    for r in versus["results"]:
        assert r["contrast"] == 1 and r["contrast_name"] == "B" and cell_of(r["peak_file_rc"]) == REGION
    assert explain(files, "--methods", "lime", "--contrast", "1") == 0
    assert "0 A rather than 1 B" in capsys.readouterr().out


@pytest.mark.parametrize("args, fragment", [
    (["--contrast", "0"], "rather than itself"),
    (["--contrast", "zebra"], "neither a class index nor a label"),
    (["--contrast", "9"], "out of range"),
    (["--methods", "eigencam", "--contrast", "1"], "cannot explain one label rather than another"),
])
def test_bad_contrasts_exit_2_with_one_line(files, capsys, args, fragment):
    assert explain(files, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]


def test_methods_lists_the_new_methods_and_which_can_contrast(capsys):
    assert main(["methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["methods"]}
    assert {"partition_shap", "rise"} <= set(rows)
    assert rows["partition_shap"]["params"]["max_evals"] == 500 and rows["rise"]["params"]["masks"] == 1000
    assert all(rows[m]["contrast"] for m in ("lime", "kernel_shap", "partition_shap", "gradcam", "rise"))
    assert not rows["eigencam"]["contrast"]
