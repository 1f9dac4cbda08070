"""benchmarks/time_to_stable.py: the ladder search, the medians and the resumable cache (no timing
is asserted; the model-free parts only)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tts():
    spec = importlib.util.spec_from_file_location("time_to_stable", ROOT / "benchmarks" / "time_to_stable.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["time_to_stable"] = module
    spec.loader.exec_module(module)
    return module


def test_ladder_stops_at_the_reference(tts) -> None:
    assert tts.ladder(8000) == [250, 500, 1000, 2000, 4000, 8000]
    assert tts.ladder(4000) == [250, 500, 1000, 2000, 4000]
    assert tts.ladder(3000) == [250, 500, 1000, 2000, 3000]


def test_the_smallest_count_whose_top5_matches_the_reference_is_chosen(tts) -> None:
    reference = np.arange(20, dtype=float)  # top-5: regions 15..19
    calls = []

    def fn(n: int) -> np.ndarray:
        calls.append(n)
        w = reference.copy()
        if n < 1000:  # two of the five top regions are wrong below 1000: IoU 3/7
            w[[15, 16]], w[[0, 1]] = 0.0, 100.0
        elif n == 1000:  # one wrong: IoU 4/6 < 0.8
            w[15], w[0] = 0.0, 100.0
        return w

    row = tts.time_until_stable(fn, reference, tts.ladder(8000))
    assert row["reached"] and row["samples"] == 2000 and row["iou"] == 1.0
    assert calls == [250, 500, 1000, 2000]  # stops at the first count that reaches IoU 0.8
    assert [t["samples"] for t in row["tried"]] == calls
    assert row["tried"][2]["iou"] == pytest.approx(4 / 6)
    assert row["seconds"] == row["tried"][-1]["seconds"]  # only the reaching run is the time


def test_never_reaching_reports_the_last_run_as_not_reached(tts) -> None:
    reference = np.arange(10, dtype=float)
    row = tts.time_until_stable(lambda n: -reference, reference, [250, 500])
    assert not row["reached"] and row["samples"] == 500 and row["iou"] == 0.0
    with pytest.raises(ValueError):
        tts.time_until_stable(lambda n: reference, reference, [])


def test_medians_over_images(tts) -> None:
    rows = [{"ours_vs_lime": v, "ours_vs_shap": 2 * v, "ours_vs_lime_plus_shap": v / 2} for v in (0.1, 0.5, 0.3)]
    assert tts.summarise(rows) == {"ours_vs_lime": 0.3, "ours_vs_shap": 0.6, "ours_vs_lime_plus_shap": 0.15}


def test_a_cached_row_is_reused_without_the_model(tts, tmp_path: Path) -> None:
    row = {"image": "rocket", "ours_vs_lime": 0.4}
    (tmp_path / "rocket-ref4000-seed0.json").write_text(json.dumps(row))
    assert tts.measure_image(None, "rocket", 4000, 0, tmp_path) == row  # None: no model is touched


def test_bad_arguments_exit_2(tts, capsys) -> None:
    assert tts.main(["--images", "nosuch"]) == 2
    assert "unknown image" in capsys.readouterr().err
    assert tts.main(["--images", "rocket", "--reference-samples", "100"]) == 2
