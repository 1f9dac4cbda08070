"""Leverage-score sampling of complement pairs (Musco & Witter, ICLR 2025, "Leverage SHAP").

Why: the rows of KernelSHAP's regression (after the efficiency constraint is projected out) have
leverage score ∝ 1 / C(M, s) for a coalition of size s: every size carries the same total
leverage, uniform within the size. Leverage SHAP samples coalitions with these probabilities, in
complement pairs, **without replacement by Bernoulli inclusion** (pair S is taken with
probability ``min(1, c·p_S)``, ``c`` set so that the expected number of pairs is the budget, so
small sizes are taken completely once ``c`` is large) and solves the constrained least squares
with weights ``kernel(z) / inclusion probability``.

How it is made extendable (a run must keep its rows when it grows): pair S of stratum j gets a
uniform ``u_S`` and enters when ``c ≥ u_S / q_j`` (``q_j`` its leverage probability). For any
fixed ``c`` the pairs with ``u_S / q_j ≤ c`` are exactly a Bernoulli(min(1, c q_j)) sample, and a
larger ``c`` only adds pairs: ordering every pair by its entry point gives one nested sequence.
Within a stratum all ``q_j`` are equal, so the entry points are the order statistics of ``P_j``
uniforms (drawn by exponential spacings, seeded per stratum and chunk) divided by ``q_j``, and
the k-th pair to enter is the k-th pair of the stratum's seeded order
(``perturbation.stratum_pairs``). A prefix of exactly K pairs is a priority sample: with
``τ`` the entry point of pair K + 1, weighting each pair by ``1 / min(1, τ q_j)`` is unbiased
(Duffield, Lund & Thorup, 2007), which is the inverse-inclusion weight of the paper.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from explainers.perturbation import _log_comb, strata

_LEVERAGE_KEY = 0x1E7E_4A6E
_SPACING_CHUNK = 1024


def pair_probabilities(m: int) -> np.ndarray:
    """q_j (J,): leverage probability of one pair of pair-stratum j (a pair = both its members).

    A coalition of size s has probability 1 / ((M−1) C(M, s)); a pair of stratum j < M/2 holds
    one coalition of size j and one of size M−j: 2 / ((M−1) C(M, j)); a middle pair (j = M/2,
    ``C(M, M/2)/2`` of them) holds two of size M/2: 2 / ((M−1) C(M, M/2)). Each stratum's total is
    2 / (M−1) (1 / (M−1) in the middle): every size gets the same mass.
    """
    j = np.arange(1, m // 2 + 1)
    log_q = math.log(2.0) - math.log(m - 1.0) - _log_comb(m, j)
    return np.exp(log_q)


def leverage_scale(m: int, pairs: float) -> float:
    """The c with Σ_j P_j min(1, c q_j) = ``pairs``: Bernoulli inclusion with that expected count.

    (Bisection on a monotone sum; ``inf`` when ``pairs`` is every pair.)"""
    st = strata(m)
    P = st.pairs.astype(np.float64)
    q = pair_probabilities(m)
    if pairs >= P.sum():
        return math.inf
    lo, hi = 0.0, 1.0 / q.min()
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        if (P * np.minimum(1.0, mid * q)).sum() >= pairs:
            hi = mid
        else:
            lo = mid
    return hi


def _entry_points(m: int, j: int, seed: int, count: int, total: int, q: float) -> np.ndarray:
    """Entry points of the first ``count`` pairs of stratum j (increasing), seeded per chunk."""
    out = np.empty(count)
    done, acc, chunk = 0, 0.0, 0
    while done < count:
        k = min(_SPACING_CHUNK, count - done)
        rng = np.random.default_rng([int(seed), _LEVERAGE_KEY, int(j), chunk])
        e = rng.standard_exponential(_SPACING_CHUNK)[:k]
        i = np.arange(done, done + k, dtype=np.float64)  # pairs already entered before each draw
        cum = acc + np.cumsum(e / (float(total) - i))
        out[done:done + k] = -np.expm1(-cum) / q  # U_(k) = 1 − exp(−Σ E_i / (P − i + 1))
        acc = float(cum[-1])
        done += k
        chunk += 1
    return out


@lru_cache(maxsize=32)
def leverage_order(m: int, seed: int, count: int) -> tuple[np.ndarray, float]:
    """(stratum index (0-based) of each of the first ``count`` pair slots, τ).

    τ is the entry point of the next pair (``inf`` once every pair is in). The first ``count``
    slots of a longer call are the same (the order is nested).
    """
    st = strata(m)
    pairs = st.pairs.astype(np.float64)
    count = int(min(max(count, 0), st.total_pairs))
    q = pair_probabilities(m)
    if count == 0 or len(q) == 0:
        return np.zeros(0, dtype=np.intp), 0.0
    margin = 2.0
    while True:
        # c* with Σ min(P_j, c q_j P_j) ≈ margin · (count + 1): how far each stratum must be drawn
        lo, hi = 0.0, 1.0 / q.min()
        need = min(margin * (count + 1), pairs.sum())
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if np.minimum(pairs, mid * q * pairs).sum() >= need:
                hi = mid
            else:
                lo = mid
        per = np.minimum(pairs, np.ceil(hi * q * pairs + 4.0 * np.sqrt(hi * q * pairs) + 8.0))
        per = np.minimum(per, count + 1).astype(np.int64)
        points = [_entry_points(m, j + 1, seed, int(per[j]), int(st.pairs[j]), float(q[j]))
                  for j in range(len(q))]
        flat = np.concatenate(points)
        idx = np.repeat(np.arange(len(q)), per)
        order = np.argsort(flat, kind="stable")
        if len(order) <= count:
            if int(per.sum()) == st.total_pairs:  # everything drawn: every pair is in
                return idx[order][:count].astype(np.intp), math.inf
            margin *= 2.0
            continue
        tau = float(flat[order[count]])
        # valid when every stratum not fully drawn reaches past τ
        short = [(per[j] < st.pairs[j]) and (len(points[j]) == 0 or points[j][-1] <= tau)
                 for j in range(len(q))]
        if not any(short):
            return idx[order][:count].astype(np.intp), tau
        margin *= 2.0


def leverage_inclusion(m: int, seed: int, slots: int) -> np.ndarray:
    """Inclusion probability (J,) of a pair of each stratum for a prefix of ``slots`` pairs."""
    _, tau = leverage_order(m, seed, slots)
    return np.minimum(1.0, tau * pair_probabilities(m))


def leverage_shapley_weights(Z: np.ndarray, seed: int) -> np.ndarray:
    """Leverage SHAP's row weights ``π(z) / min(1, τ q_j)`` for leverage design rows ``Z``
    (row 0 full, row 1 empty: weight 0), ``π`` the Shapley kernel."""
    from explainers.perturbation import log_shapley_kernel

    Z = np.asarray(Z, dtype=bool)
    n, m = Z.shape
    out = np.zeros(n)
    if n <= 2 or m < 2:
        return out
    slots = (n - 2 + 1) // 2
    incl = leverage_inclusion(m, seed, slots)
    s = Z[2:].sum(axis=1)
    j = np.minimum(s, m - s)
    out[2:] = np.exp(log_shapley_kernel(Z[2:])) / incl[j - 1]
    return out


__all__ = ["pair_probabilities", "leverage_scale", "leverage_order", "leverage_inclusion", "leverage_shapley_weights"]
