"""Samples "auto": the shared run grows until the top regions of every requested superpixel
method are stable (expected top-N IoU with the converged answer, from the standard errors;
split halves for methods without them), or stops at the budget; results say how far it got.

Known answers on real tiny Keras models: an additive model (a fixed linear read-out of the
pixels) is stable at the first check; a model whose output is a chaotic function of the
image never is, so it spends the budget. Also: every row is kept when a request grows the run,
per-segment standard errors match the spread over seeds, and an exhaustive run is exact.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers.base import ExplainerError, SamplingInfo
from explainers.context import ExplainContext, SamplingParams
from explainers.metrics import expected_top_n_iou, top_n_iou
from explainers.runner import explain, run_method
from model_zoo.classifier import Classifier

SIZE = 32
GRID = {"rows": 4, "cols": 4}


def _read_out(weights: np.ndarray, name: str) -> Classifier:
    """Class 1's probability = a fixed linear read-out of the grey image (additive in segments)."""
    inp = keras.Input((SIZE, SIZE, 3))
    gray = keras.layers.Conv2D(1, 1, use_bias=False, name="gray")(inp)
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(gray))
    model = keras.Model(inp, out)
    model.get_layer("gray").set_weights([np.full((1, 1, 3, 1), 1 / (3 * 255), np.float32)])
    m = weights.ravel() / np.abs(weights).sum()
    model.get_layer("head").set_weights([np.stack([-m, m], 1).astype(np.float32), np.array([1, 0], np.float32)])
    return Classifier(model, id=name, name=name, labels=["a", "b"], preprocessing="raw", output="probabilities")


@pytest.fixture(scope="module")
def additive() -> Classifier:
    ramp = np.add.outer(np.arange(SIZE), 2.0 * np.arange(SIZE)) + 1.0  # every cell a distinct weight
    return _read_out(ramp, "additive")


@pytest.fixture(scope="module")
def chaotic() -> Classifier:
    """sin of a large random projection: flipping any segment scrambles the output."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(8, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0), name="proj")(x)
    x = keras.layers.Activation(lambda t: keras.ops.sin(t * 3.0))(x)
    out = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    return Classifier(keras.Model(inp, out), id="chaotic", name="chaotic", labels=["a", "b"], preprocessing="raw")


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def ctx_for(clf, grid=GRID, seed=0, **sampling) -> ExplainContext:
    return ExplainContext(clf, image(), seed=seed, segmentation="grid", segmentation_params=grid,
                          sampling=SamplingParams(**sampling))


def test_auto_is_the_default_and_validates():
    assert SamplingParams().auto and SamplingParams().samples == "auto"
    for bad, msg in (({"threshold": 0}, "threshold"), ({"budget": 3}, "budget"),
                     ({"samples": "lots"}, "samples"), ({"top_n": 0}, "top_n")):
        with pytest.raises(ExplainerError, match=msg):
            SamplingParams(**bad).validate()


def test_additive_model_is_stable_at_the_first_check(additive):
    ctx = ctx_for(additive, budget=2000)
    results = explain(ctx, ["lime", "kernel_shap"], [1])
    info = results[0].sampling
    assert isinstance(info, SamplingInfo) and info.mode == "auto" and info.stopped == "stable"
    assert info.samples == 128 and len(info.history) == 1  # first check: 4 batches of 32
    assert info.stability >= 0.8 and set(info.per_method) == {"lime", "kernel_shap"}
    # both methods of the request use the same rows, and say so
    assert all(r.sampling == info and r.params["samples"] == 128 for r in results)
    assert all(r.params["requested_samples"] == "auto" for r in results)
    assert additive.images_seen >= 128 and ctx.cache["perturbations"].n == 128


def test_chaotic_model_hits_the_budget(chaotic):
    ctx = ctx_for(chaotic, grid={"rows": 5, "cols": 5}, budget=600)
    (res,) = explain(ctx, ["kernel_shap"], [0])
    info = res.sampling
    assert info.stopped == "budget" and info.samples == 600
    assert info.stability < 0.8
    assert [n for n, _ in info.history] == sorted(n for n, _ in info.history)
    assert info.history[-1][0] == 600
    assert ctx.cache["perturbations"].model_calls == 600  # rows kept between checks: no recomputation


def test_growing_keeps_every_row_and_matches_a_fixed_run(chaotic):
    ctx = ctx_for(chaotic, grid={"rows": 5, "cols": 5}, budget=400)
    (auto,) = explain(ctx, ["lime"], [0])
    n = auto.sampling.samples
    fixed_ctx = ctx_for(chaotic, grid={"rows": 5, "cols": 5}, samples=n, budget=400)
    fixed_ctx.kernel_share = ctx.kernel_share  # same design
    (fixed,) = explain(fixed_ctx, ["lime"], [0])
    np.testing.assert_allclose(auto.segment_weights, fixed.segment_weights, rtol=1e-6, atol=1e-9)
    assert fixed.sampling.mode == "fixed" and fixed.sampling.samples == n
    np.testing.assert_array_equal(ctx.cache["perturbations"].Z, fixed_ctx.cache["perturbations"].Z)


@pytest.fixture(scope="module")
def mixed() -> Classifier:
    """Output 0 chaotic (never settles), output 1 an additive read-out (settles at once)."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((SIZE, SIZE, 3))
    flat = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(8, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))(flat)
    x = keras.layers.Activation(lambda t: keras.ops.sin(t * 3.0))(x)
    chaos = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    gray = keras.layers.Conv2D(1, 1, use_bias=False, name="gray")(inp)
    lin = keras.layers.Dense(1, name="lin")(keras.layers.Flatten()(gray))
    model = keras.Model(inp, keras.layers.Concatenate()([chaos, lin]))
    model.get_layer("gray").set_weights([np.full((1, 1, 3, 1), 1 / (3 * 255), np.float32)])
    ramp = (np.add.outer(np.arange(SIZE), 2.0 * np.arange(SIZE)) + 1.0).ravel()
    model.get_layer("lin").set_weights([(ramp / ramp.sum())[:, None].astype(np.float32), np.zeros(1, np.float32)])
    return Classifier(model, id="mixed", name="mixed", labels=["chaos", "line"], preprocessing="raw",
                      output="probabilities")


def test_each_label_stops_on_its_own(mixed):
    """A label that settles at once is not held back by (nor described by) one that never does."""
    grid = {"rows": 5, "cols": 5}
    ctx = ctx_for(mixed, grid=grid, budget=600)
    both = explain(ctx, ["lime", "kernel_shap"], [0, 1])
    by = {(r.method, r.label): r for r in both}
    easy, hard = by[("kernel_shap", 1)].sampling, by[("kernel_shap", 0)].sampling
    assert easy.stopped == "stable" and easy.samples == 128 and easy.stability >= 0.8
    assert hard.stopped == "budget" and hard.samples == 600 and hard.stability < 0.8
    for method in ("lime", "kernel_shap"):  # each result carries its own label's rows and words
        assert by[(method, 1)].sampling == easy and by[(method, 1)].params["samples"] == 128
        assert by[(method, 0)].sampling == hard and by[(method, 0)].params["samples"] == 600
    # each label is charged for the rows it needed beyond the labels that stopped before it
    assert (by[("lime", 1)].model_calls, by[("lime", 0)].model_calls) == (128, 600 - 128)
    assert by[("kernel_shap", 1)].model_calls == by[("kernel_shap", 0)].model_calls == 0  # rows reused
    # the easy label's answer is the one a request for it alone gives, asked before or after
    alone = ctx_for(mixed, grid=grid, budget=600)
    first = {r.method: r for r in explain(alone, ["lime", "kernel_shap"], [1])}
    assert alone.cache["perturbations"].model_calls == 128  # it did not wait for label 0
    later = {r.method: r for r in explain(alone, ["lime", "kernel_shap"], [0, 1]) if r.label == 1}
    for method in ("lime", "kernel_shap"):
        np.testing.assert_allclose(first[method].segment_weights, by[(method, 1)].segment_weights, rtol=1e-6)
        np.testing.assert_allclose(later[method].segment_weights, by[(method, 1)].segment_weights, rtol=1e-6)
    assert alone.sample_count() == 600  # the trust metrics' default: the most any label used


def test_a_later_method_grows_the_same_run(additive, chaotic):
    ctx = ctx_for(chaotic, grid={"rows": 5, "cols": 5}, budget=400, threshold=0.3)
    (first,) = run_method(ctx, "lime", None, [0])
    calls = ctx.cache["perturbations"].model_calls
    (second,) = run_method(ctx, "kernel_shap", None, [0])
    # the second request re-checks with both methods; rows only grow, never recomputed
    assert second.sampling.samples >= first.sampling.samples
    assert ctx.cache["perturbations"].model_calls == max(calls, second.sampling.samples)
    assert set(second.sampling.per_method) == {"lime", "kernel_shap"}


def test_design_follows_the_requested_methods(additive):
    shap_only = ctx_for(additive, samples=64)
    explain(shap_only, ["kernel_shap"], [1])
    both = ctx_for(additive, samples=64)
    explain(both, ["lime", "kernel_shap", "gradcam"], [1])
    lime_only = ctx_for(additive, samples=64)
    explain(lime_only, ["lime"], [1])
    assert shap_only.cache["perturbations"].kernel_share == 1.0
    assert lime_only.cache["perturbations"].kernel_share == 0.0
    assert 0 < both.cache["perturbations"].kernel_share < 1


def test_standard_errors_match_the_spread_over_seeds(chaotic):
    """The sandwich standard error (pairs as clusters, finite-population factor) vs the
    empirical sd of the estimates over 40 seeds: same size within a factor 1.6 on average.
    (KernelSHAP's default is regression-adjusted; it reports plain KernelSHAP's sandwich.)"""
    grid = {"rows": 4, "cols": 5}
    for method in ("kernel_shap", "lime"):
        weights, stds = [], []
        for seed in range(40):
            ctx = ctx_for(chaotic, grid=grid, seed=seed, samples=200)
            (r,) = explain(ctx, [method], [0])
            weights.append(r.segment_weights)
            stds.append(r.segment_std)
        empirical = np.std(np.asarray(weights), axis=0, ddof=1)
        estimated = np.mean(np.asarray(stds), axis=0)
        ratio = float(np.exp(np.mean(np.log(estimated / empirical))))
        assert 1 / 1.6 < ratio < 1.6, (method, ratio)


def test_exhaustive_run_has_zero_uncertainty_and_is_settled(additive):
    ctx = ctx_for(additive, grid={"rows": 2, "cols": 4}, samples=256)
    results = explain(ctx, ["lime", "kernel_shap"], [1])
    for r in results:
        assert r.sampling.stopped == "exhaustive"
        np.testing.assert_array_equal(r.segment_std, 0)
        assert not r.unsettled().any()


def test_tied_regions_count_as_one_answer():
    a = np.array([1.0, 1.0, 1.0, 0.2, 0.1])
    b = np.array([1.0 - 1e-9, 1.0, 1.0 + 1e-9, 0.2, 0.1])
    assert top_n_iou(a, b, 2) < 1
    assert top_n_iou(a, b, 2, tie_tol=1e-3) == 1
    assert top_n_iou(a, np.array([0.1, 0.2, 1.0, 1.0, 0.9]), 2, tie_tol=1e-3) < 0.5


# ---------------------------------------------------------------- the stopping rule
def test_expected_overlap_known_answers():
    w = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0])
    assert expected_top_n_iou(w, np.zeros_like(w), 3) == 1.0  # exact weights
    assert expected_top_n_iou(w, np.full_like(w, 1e-3), 3) == 1.0  # gaps ≫ errors
    # errors ≫ gaps: the top 3 of 8 is a random draw; E[IoU] of two random 3-sets of 8
    # (one fixed) = Σ_k P(k shared) k / (6 − k), hypergeometric
    from math import comb

    chance = sum(comb(3, k) * comb(5, 3 - k) / comb(8, 3) * k / (6 - k) for k in range(4))
    assert abs(expected_top_n_iou(w, np.full_like(w, 1e4), 3, draws=4000) - chance) < 0.02
    # only regions 3 and 4 (values 2 and 1) are uncertain: the third top place is a coin toss
    # between them → IoU 1 or 2/4 with about equal odds
    w2 = np.array([9.0, 8.0, 2.0, 2.0, -5.0])
    s2 = np.array([0.0, 0.0, 1.0, 1.0, 0.0])
    assert abs(expected_top_n_iou(w2, s2, 3, draws=4000) - 0.75) < 0.03
    with pytest.raises(ValueError, match="standard errors"):
        expected_top_n_iou(w, -np.ones_like(w), 3)


def test_expected_overlap_is_calibrated():
    """The rule's promise: for estimates w = θ + s·ε, the mean of expected_top_n_iou(w, s) is
    close to the mean actual IoU of top(w) with top(θ) (the converged answer)."""
    rng = np.random.default_rng(7)
    theta = rng.normal(0, 1, 30)
    s = np.full(30, 0.25)
    actual, predicted = [], []
    for i in range(300):
        w = theta + s * rng.standard_normal(30)
        actual.append(top_n_iou(w, theta, 5))
        predicted.append(expected_top_n_iou(w, s, 5, seed=i))
    assert 0.5 < np.mean(actual) < 0.95  # a regime where the answer is neither certain nor random
    assert abs(np.mean(predicted) - np.mean(actual)) < 0.06, (np.mean(predicted), np.mean(actual))


@pytest.fixture(scope="module")
def smooth() -> Classifier:
    """A smooth non-additive model: tanh of two random read-outs of a 4×4-pooled image."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.AveragePooling2D(8)(keras.layers.Rescaling(1 / 255)(inp))
    x = keras.layers.Dense(6, activation="tanh", kernel_initializer=keras.initializers.RandomNormal(stddev=1.5))(
        keras.layers.Flatten()(x))
    out = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(x)
    return Classifier(keras.Model(inp, out), id="smooth", name="smooth", labels=["a", "b"], preprocessing="raw")


def test_auto_stops_sooner_than_split_halves_and_matches_the_converged_answer(smooth):
    """On 25 regions, "auto" (expected-overlap rule) stops earlier than the split-half rule would
    have on the same rows, and its top 5 still agree with a 6 000-sample run (IoU ≥ 0.8 on average
    over seeds; each seed's own rule promised ≥ 0.8)."""
    grid = {"rows": 5, "cols": 5}
    ious, earlier = [], []
    ref_ctx = ctx_for(smooth, grid=grid, seed=99, samples=6000)
    (ref,) = explain(ref_ctx, ["kernel_shap"], [0])
    for seed in range(4):
        ctx = ctx_for(smooth, grid=grid, seed=seed, budget=3000)
        (res,) = explain(ctx, ["kernel_shap"], [0])
        info = res.sampling
        assert info.rule == "expected" and info.stopped == "stable", info
        ious.append(top_n_iou(res.segment_weights, ref.segment_weights, 5, tie_tol=1e-3))
        split, _ = ctx.split_half_stability(ctx.cache["perturbations"], info.samples)
        earlier.append(split < info.threshold)
    assert np.mean(ious) >= 0.8, ious
    assert sum(earlier) >= 2, earlier  # the split-half rule would have gone on sampling


def test_methods_without_standard_errors_fall_back_to_split_halves(additive):
    ctx = ExplainContext(additive, image(), seed=0, segmentation="grid", segmentation_params=GRID,
                         sampling=SamplingParams(budget=1000))
    (res,) = explain(ctx, {"lime": {"surrogate": "lasso"}}, [1])
    assert res.sampling.rule == "split-half"
    (res2,) = explain(ctx_for(additive, budget=1000), ["lime"], [1])
    assert res2.sampling.rule == "expected"
