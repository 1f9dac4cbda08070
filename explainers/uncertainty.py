"""Standard errors of LIME's and KernelSHAP's segment weights from the rows they were fitted on.

Why not the bootstrap: refitting 30–50 times per label costs as much as the fits of a whole
request several times over (and numpy's threaded BLAS is slow right after a TensorFlow batch);
the estimator's own variance costs one more pass over the rows. Both estimators are weighted
least squares ``β = G⁻¹ Xᵀ W y`` on centred rows, so their sampling covariance is the sandwich
``G⁻¹ (Σ_c g_c g_cᵀ) G⁻¹`` with ``g_c = Σ_{rows i of c} w_i r_i x_i``:

* the clusters ``c`` are the complement pairs of the design (a row and its complement are
  drawn together, and their residuals are strongly correlated: this is what makes paired
  sampling precise, and treating the rows as independent would overstate the error);
* each cluster is scaled by the finite-population correction of its stratum (a size drawn
  completely has no sampling error: an exhaustive run has standard error 0);
* the anchors (the image and the fully hidden image) are fixed rows, not draws: no term.

``metrics.bootstrap_std`` (the trust report) stays the slower empirical cross-check; the
tests compare this estimate with the spread of the estimates over many seeds.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from explainers.perturbation import pair_ids, unsampled_fraction


def sandwich_cov(
    X: np.ndarray,
    w: np.ndarray,
    resid: np.ndarray,
    solve: Callable[[np.ndarray], np.ndarray],
    clusters: np.ndarray,
    fpc: np.ndarray,
) -> np.ndarray:
    """``G⁻¹ M G⁻¹`` for ``solve(B) = G⁻¹ B``: cluster-robust covariance of a weighted fit (M × M).

    ``X`` (n, M) the centred regressors, ``w`` the row weights, ``resid`` the residuals,
    ``clusters`` (n,) cluster ids (< 0: fixed rows), ``fpc`` (n,) finite-population factor.
    """
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[1]
    use = (np.asarray(clusters) >= 0) & (np.asarray(w) > 0)
    if not use.any():
        return np.zeros((m, m))
    cl = np.asarray(clusters)[use]
    order = np.argsort(cl, kind="stable")  # design rows are already in cluster order
    cl = cl[order]
    scores = (X[use] * (np.asarray(w)[use] * np.asarray(resid)[use])[:, None])[order]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    g = np.add.reduceat(scores, starts, axis=0)  # one score per cluster (np.add.at is ~10× slower)
    f = np.maximum.reduceat(np.asarray(fpc, dtype=np.float64)[use][order], starts)
    c = len(starts)
    scale = c / (c - 1.0) if c > 1 else 1.0
    meat = (g * (f * scale)[:, None]).T @ g
    left = solve(meat)
    return solve(left.T)


def design_terms(n: int, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair ids, finite-population factors) of design rows in run order."""
    return pair_ids(n), unsampled_fraction(Z)


def std_from_cov(cov: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))


__all__ = ["sandwich_cov", "design_terms", "std_from_cov"]
