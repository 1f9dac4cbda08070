"""One progress over a staged computation and an ETA that settles (explainers.progress), and the
trust report driving them on a tiny Keras model."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers.context import ExplainContext, SamplingParams
from explainers.progress import RESOLUTION, EtaEstimator, Stage, StagedProgress, format_eta
from explainers.runner import explain
from explainers.trust import trust_report
from model_zoo.classifier import Classifier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_staged_progress_maps_each_stage_onto_one_fraction():
    seen = []
    plan = StagedProgress([Stage("first", 1), Stage("second", 3)], lambda d, t, w: seen.append((d, t, w)))
    plan.enter(0)
    plan.stage(0)(1, 2)          # half of the first quarter
    plan.stage(1)(0, 10)         # the second stage starts at 1/4
    plan.stage(1)(5, 10)         # half of the remaining 3/4
    plan.stage(0)(2, 2)          # a late report of an earlier stage never moves the bar back
    plan.finish()
    assert seen == [(0, RESOLUTION, "first"), (125, RESOLUTION, "first"), (250, RESOLUTION, "second"),
                    (625, RESOLUTION, "second"), (625, RESOLUTION, "first"), (1000, RESOLUTION, "Done")]


def test_eta_is_withheld_during_warm_up_then_exact_for_a_constant_rate():
    clock = Clock()
    eta = EtaEstimator(clock, warmup_s=2.0, min_fraction=0.02)
    clock.now += 30.0  # start-up before the first report (tracing, the first batch) is not counted
    assert eta.update(0.1) is None  # the first report only starts the clock
    clock.now += 1.0
    assert eta.update(0.2) is None  # before the warm-up
    clock.now += 1.0
    assert eta.update(0.3) == pytest.approx(7.0)  # 2 s for 20 % → 7 s for the last 70 %
    clock.now += 2.0
    assert eta.update(0.5) == pytest.approx(5.0)  # 4 s for 40 % → 5 s for the last 50 %
    clock.now += 5.0
    assert eta.update(1.0) == 0.0


def test_eta_never_rises_when_a_stage_is_slower_than_its_weight():
    """Work: 50 % in 10 s, then the second half runs 3× slower (30 s). The raw estimate would
    jump from 10 s to ~30 s; the shown one only goes down, and meets the truth at the end."""
    clock = Clock()
    eta = EtaEstimator(clock, warmup_s=1.0, slowdown=0.5)
    assert eta.update(0.0) is None  # the run starts
    shown = []
    for second in range(1, 41):
        clock.now += 1.0
        done = second / 20 if second <= 10 else 0.5 + (second - 10) / 60
        shown.append(eta.update(min(done, 1.0)))
    assert shown[0] == pytest.approx(19.0)  # 1 s for 5 %: a steady rate so far
    assert all(b <= a + 1e-9 for a, b in zip(shown, shown[1:])), shown
    assert shown[9] == pytest.approx(10.0)  # 10 s for 50 %
    assert shown[-1] == 0.0
    # the raw estimate at 70 % (t = 22 s) is 22 × 0.3 / 0.7 ≈ 9.4 s; the shown one is no higher
    assert shown[21] <= 22 * 0.3 / 0.7 + 1e-9


@pytest.mark.parametrize("seconds, words", [
    (None, "estimating time…"), (0.4, "almost done"), (42.2, "about 42 s left"), (200, "about 3 min left"),
])
def test_format_eta(seconds, words):
    assert format_eta(seconds) == words


@pytest.fixture(scope="module")
def tiny() -> Classifier:
    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return Classifier(keras.Model(inp, out), id="tiny-progress", name="tiny", labels=["a", "b", "c"],
                      preprocessing="unit")


def test_trust_report_drives_one_bar_with_stages_in_words(tiny):
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ctx = ExplainContext(tiny, img, seed=0, segmentation="grid", segmentation_params={"rows": 4, "cols": 4},
                         sampling=SamplingParams(samples=64))
    results = explain(ctx, ["lime", "kernel_shap", "gradcam"], labels=[0])
    seen = []
    trust_report(ctx, results, 0, seeds=3, steps=6, stability_samples=48,
                 progress=lambda d, t, w: seen.append((d, t, w)))
    totals = {t for _, t, _ in seen}
    assert totals == {RESOLUTION}  # one bar: the total never changes
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == RESOLUTION  # it never restarts
    words = list(dict.fromkeys(w for _, _, w in seen))
    assert words[0] == "Covering the most important regions first (deletion and insertion curves)"
    assert words[1:6] == [
        "Checking stability (1 of 5): the original run",
        "Checking stability (2 of 5): another random seed",
        "Checking stability (3 of 5): another random seed",
        "Checking stability (4 of 5): the photo with faint noise added",
        "Checking stability (5 of 5): the photo with faint noise added",
    ]
    assert words[-2:] == ["Checking convergence and the ground truth", "Trust measured"]
    assert not any(w in " ".join(words) for w in ("trust:", "perturbation", "stability 1/"))
    # the reruns (4 × 48 new rows) dominate the estimated work: the bar is past the curves early
    at_stability = next(d for d, _, w in seen if w.startswith("Checking stability"))
    assert at_stability < RESOLUTION * 0.4
