"""A Bayesian-quadrature design for KernelSHAP: which coalitions to evaluate first.

Why: KernelSHAP's default estimate is the exact Shapley value of a Hamming-kernel ridge
surrogate fitted to the evaluated rows (``explainers.shapley_adjust.HammingKernel``), i.e. the
posterior mean of φ under a Gaussian-process prior with that kernel. The posterior *variance* of
φ under that prior depends only on which coalitions were evaluated, not on the model's outputs,
so the rows can be chosen before any model call to shrink it fastest (sequential Bayesian
quadrature). Greedily, from a pool of candidate pairs (the first pairs of the stratified
λ = 1 design: the same seed gives the same pool), each step takes the complement pair whose
observation most reduces Σ_i Var(φ_i | rows). The greedy order does not depend on how many pairs
are asked for, so a run's first N rows are still a fresh N-row run ("more samples" extends it). Measured with ``benchmarks/sample_efficiency.py`` (KernelSHAP alone, its default
estimator, 500 rows): quickshift (35 superpixels, seeds 0–4) 0.290 instead of 0.330 on the
stratified rows, shap's KernelExplainer at 1 000 being 0.323; the 3×4 grid (exact values, 20
seeds) ≈ 0.05 instead of 0.075 (benchmarks README, 2026-12-06). On a synthetic game with 3- and
4-way interactions plain KernelSHAP gains as well (``tests/explainers/test_quadrature.py``).

The rows are not a random sample within each size, so the Horvitz–Thompson weights that the
estimators use (per size, from the realised counts) no longer make plain KernelSHAP or LIME
unbiased in the sampling sense: the design is for the kernel estimate, which is nearly the
surrogate's exact Shapley value (a posterior mean: the ridge almost interpolates the rows) and
owes little to those weights. That is why only a request for KernelSHAP alone with a fixed
sample count gets it (``perturbation.design_sampler``): a run that also serves LIME stays
stratified, and so does an "auto" run, whose stopping rule reads plain KernelSHAP's standard
errors (on quadrature rows it once stopped at 128 rows with 2 of the top 5 right). The standard
errors shown (plain KernelSHAP's sandwich on the same rows) still match the spread of the
estimates over 40 seeds within the tested factor 1.6 (``tests/explainers/test_auto_samples.py``).

With complement pairs only the odd part ``h(z) = (v(z) − v(1−z)) / 2`` of the game matters (an
even game has φ = 0), whose prior covariance is ``(k(x, z) − k(x, 1−z)) / 2``, and
``Cov(φ_i, h(x))`` is the closed-form Shapley value of the kernel term ``k(·, x)``
(``hamming_kernel_shapley``). Only the first ``QUADRATURE_PAIRS`` pairs are chosen this way (the
greedy step costs O(pool × chosen)); later rows continue with the stratified λ = 1 design,
skipping the pairs already taken. The order depends on M and the seed only, not on the image, so
an audit of many images pays it once per segment count (memoised).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

QUADRATURE_PAIRS = 500
"""Pairs chosen by quadrature (1 000 rows); later rows follow the stratified design."""
POOL_PAIRS = 4096
"""Candidate pairs the greedy step chooses from (the stratified design's first ones), and at
most half of all pairs: a random pool matters. On the 3×4 grid (2 047 pairs), choosing from every
pair gave 0.070 at 500 rows, from a random half 0.050 (a quarter: 0.054); the greedy step, free to
pick among all pairs, follows the prior's symmetries into structured rows the model's game does
not share."""


@lru_cache(maxsize=8)  # up to 4 MB each (4 096 × M bools); the orders below are small
def _pool(m: int, seed: int) -> np.ndarray:
    """Candidate pairs (their member of size ≤ M/2, (P, M) bool): the stratified λ = 1 design's first."""
    from explainers.perturbation import design, strata

    count = int(min(POOL_PAIRS, max(1, strata(m, 1.0).total_pairs // 2)))
    pool = design(m, seed, 2, 2 + 2 * count, kernel_share=1.0, sampler="stratified")[0::2]
    pool.flags.writeable = False  # cached: shared by every call
    return pool


@lru_cache(maxsize=64)
def _order(m: int, seed: int, count: int) -> np.ndarray:
    """Indices into ``_pool(m, seed)`` of the first ``count`` pairs in greedy quadrature order."""
    from explainers.shapley_adjust import KERNEL_ALPHA, KERNEL_GAMMA, hamming_kernel_shapley

    X = _pool(m, seed).astype(np.float64)
    count = int(min(count, len(X)))
    gamma = KERNEL_GAMMA / m
    v1, v0 = hamming_kernel_shapley(m, float(np.exp(-gamma)))
    size = X.sum(axis=1)
    s = np.rint(size).astype(np.int64)
    resid_cov = X * v1[s][:, None] + (1.0 - X) * v0[s][:, None]  # Cov(φ, h(x)), then residualised
    noise = KERNEL_ALPHA / 2.0  # the ridge on both members of a pair, seen through h
    resid_var = np.full(len(X), 0.5 * (1.0 - np.exp(-gamma * m)) + noise)
    basis = np.zeros((count, len(X)))  # row t: the t-th Cholesky column over the pool
    chosen = np.zeros(count, dtype=np.int64)
    taken = np.zeros(len(X), dtype=bool)
    for t in range(count):
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.einsum("ij,ij->i", resid_cov, resid_cov) / resid_var
        score[taken | ~(resid_var > 1e-12)] = -np.inf
        # the prior is symmetric, so many pairs tie: round away the last bits (which BLAS threads
        # may order differently) so that ties go to the first in the pool on every machine
        score = np.round(score / max(float(score.max()), 1e-300), 9)
        c = int(np.argmax(score))
        chosen[t], taken[c] = c, True
        # Hamming(x, x_c) = |x| + |x_c| − 2 x·x_c, and Hamming(x, 1 − x_c) = M − Hamming(x, x_c)
        ham = size + size[c] - 2.0 * (X @ X[c])
        col = 0.5 * (np.exp(-gamma * ham) - np.exp(-gamma * (m - ham)))  # odd-part covariance
        col[c] += noise
        col -= basis[:t, c] @ basis[:t]
        pivot = np.sqrt(resid_var[c])
        col /= pivot
        basis[t] = col
        resid_var -= col**2
        resid_cov -= col[:, None] * (resid_cov[c] / pivot)
    chosen.flags.writeable = False  # cached
    return chosen


def quadrature_pairs(m: int, seed: int, count: int) -> np.ndarray:
    """The first ``count`` pairs of the quadrature design (their member of size ≤ M/2, (count, M) bool)."""
    from explainers.perturbation import design, strata

    count = int(min(max(count, 0), strata(m, 1.0).total_pairs))
    pool = _pool(m, seed)
    head = min(count, QUADRATURE_PAIRS, len(pool))
    if head == 0:
        return np.zeros((0, m), dtype=bool)
    # always the whole head's order (one cache entry per M and seed): a prefix of it is the same
    first = pool[_order(m, int(seed), min(QUADRATURE_PAIRS, len(pool)))[:head]]
    if count == head:
        return first
    # later pairs: the stratified λ = 1 design's, without the ones taken above
    # at most ``head`` of the stratified design's first ``count`` pairs are among those taken
    more = design(m, seed, 2, 2 + 2 * count, kernel_share=1.0, sampler="stratified")[0::2]
    seen = {row.tobytes() for row in np.packbits(first, axis=1)}
    keep = np.array([row.tobytes() not in seen for row in np.packbits(more, axis=1)], dtype=bool)
    return np.concatenate([first, more[keep][: count - head]])


__all__ = ["QUADRATURE_PAIRS", "POOL_PAIRS", "quadrature_pairs"]
