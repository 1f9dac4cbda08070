"""The Bayesian-quadrature design (issue 13 item 2): what KernelSHAP alone samples, checked on
games with exact Shapley values by enumeration and through the app path with a real Keras model."""
from __future__ import annotations

import numpy as np
import pytest

import explainers.quadrature as quadrature
from explainers.perturbation import design, design_sampler, make_rows
from explainers.shapley_adjust import fit_adjusted_shap
from tests.explainers.test_shapley_sampling import brute_force_shapley, high_order_game, rel


@pytest.fixture
def small_cap(monkeypatch):
    """A quadrature head of 40 pairs from a pool of 150, so a short design crosses into the tail."""
    monkeypatch.setattr(quadrature, "QUADRATURE_PAIRS", 40)
    monkeypatch.setattr(quadrature, "POOL_PAIRS", 150)
    quadrature._pool.cache_clear()
    quadrature._order.cache_clear()
    yield
    quadrature._pool.cache_clear()
    quadrature._order.cache_clear()


def test_quadrature_rows_are_complementary_distinct_nested_and_seeded(small_cap):
    m = 14
    Z = design(m, 5, 0, 402, sampler="quadrature")
    assert Z[0].all() and not Z[1].any()
    np.testing.assert_array_equal(Z[2::2], ~Z[3::2])
    assert len(np.unique(np.packbits(Z, axis=1), axis=0)) == len(Z)  # the tail skips the head's pairs
    for start, stop in ((0, 60), (60, 83), (83, 402)):  # across the head / tail boundary (row 82)
        np.testing.assert_array_equal(design(m, 5, start, stop, sampler="quadrature"), Z[start:stop])
    assert not np.array_equal(design(m, 6, 0, 402, sampler="quadrature"), Z)
    first = Z[2:82:2]  # the head's members all come from the stratified λ = 1 pool
    pool = {r.tobytes() for r in np.packbits(design(m, 5, 2, 302, 1.0)[0::2], axis=1)}
    assert all(r.tobytes() in pool for r in np.packbits(first, axis=1))


@pytest.mark.parametrize("m", [5, 8])
def test_quadrature_design_enumerates_every_coalition_once(m, small_cap):
    Z = design(m, 3, 0, 2**m + 10, sampler="quadrature")
    assert len(Z) == 2**m
    assert len(np.unique(np.packbits(Z, axis=1), axis=0)) == 2**m


def test_greedy_order_takes_the_pair_that_explains_most_variance():
    """Known answer at the first step: with no rows yet, the best pair is the one whose odd part
    covaries most with φ. By symmetry that is a size-1 pair (its member's own segment)."""
    m = 9
    quadrature._pool.cache_clear()
    quadrature._order.cache_clear()
    pool = quadrature._pool(m, 0)
    first = pool[quadrature._order(m, 0, 1)[0]]
    assert first.sum() == 1
    # and the first M picks are exactly the M singletons (each one explains its own segment)
    picks = pool[quadrature._order(m, 0, m)]
    np.testing.assert_array_equal(np.sort(np.argmax(picks, axis=1)), np.arange(m))
    assert (picks.sum(axis=1) == 1).all()


def test_quadrature_rows_estimate_shapley_values_better_than_stratified_rows():
    """The default estimator (kernel surrogate) on a game with interactions of order 3–4: at 120 of
    1 024 rows, over 8 seeds, the quadrature rows give a smaller error than the stratified λ = 1
    rows (exact values by enumeration)."""
    m = 10
    game = high_order_game(m)
    exact = brute_force_shapley(game, m)
    errors = {"quadrature": [], "stratified": []}
    for sampler in errors:
        for seed in range(8):
            Z = design(m, seed, 0, 120, kernel_share=1.0, sampler=sampler)
            rows = make_rows(Z, game(Z)[:, None].astype(np.float32))
            y = rows.Y[:, 0].astype(np.float64)
            fit = fit_adjusted_shap(rows.Z, y, rows.shapley_weight, y[0], y[1], surrogate="kernel", seed=seed)
            errors[sampler].append(rel(fit.values, exact))
    quad, strat = np.mean(errors["quadrature"]), np.mean(errors["stratified"])
    assert quad < 0.85 * strat, (quad, strat)


def test_kernel_shap_alone_at_a_fixed_count_gets_the_quadrature_design_others_stay_stratified():
    from explainers.context import ExplainContext, SamplingParams
    from explainers.runner import explain
    from tests.models import tiny_classifier, tiny_image

    assert design_sampler(1.0) == "quadrature" and design_sampler(0.05) == "stratified"
    assert design_sampler(1.0, auto=True) == "stratified"  # the stopping rule assumes random rows
    clf = tiny_classifier()

    def run(methods, seed=0):
        ctx = ExplainContext(clf, tiny_image(), seed=seed, segmentation="grid",
                             segmentation_params={"rows": 4, "cols": 4}, sampling=SamplingParams(samples=120))
        results = explain(ctx, methods, [0])
        return ctx.cache["perturbations"], results

    alone, (shap,) = run(["kernel_shap"])
    both, _ = run(["lime", "kernel_shap"])
    assert alone.sampler == "quadrature" and alone.kernel_share == 1.0
    assert both.sampler == "stratified"
    np.testing.assert_array_equal(alone.Z, design(16, 0, 0, 120, sampler="quadrature"))
    again, (shap2,) = run(["kernel_shap"])  # deterministic: same seed, same rows, same answer
    np.testing.assert_array_equal(again.Z, alone.Z)
    np.testing.assert_array_equal(shap.segment_weights, shap2.segment_weights)
    assert shap.segment_std is not None and np.isfinite(shap.segment_std).all()
    ctx = ExplainContext(clf, tiny_image(), seed=0, segmentation="grid",
                         segmentation_params={"rows": 4, "cols": 4}, sampling=SamplingParams(budget=200))
    explain(ctx, ["kernel_shap"], [0])  # "auto" (the default): stratified rows
    assert ctx.cache["perturbations"].sampler == "stratified" and ctx.cache["perturbations"].kernel_share == 1.0


def test_order_is_the_same_with_one_blas_thread_or_many():
    """Ray actors run with one thread, a laptop with several: the same seed must give the same rows
    (ties among symmetric pairs are broken by pool position, not by rounding noise)."""
    from threadpoolctl import threadpool_limits

    quadrature._order.cache_clear()
    many = np.array(quadrature._order(35, 4, 120))
    quadrature._order.cache_clear()
    with threadpool_limits(limits=1):
        one = np.array(quadrature._order(35, 4, 120))
    quadrature._order.cache_clear()
    np.testing.assert_array_equal(one, many)
