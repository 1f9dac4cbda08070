"""Weighted normal equations of LIME and KernelSHAP, built in row chunks.

Why chunks: with many superpixels and samples (up to ``MAX_SEGMENTS`` × 100 000 rows) one
float64 copy of the coalitions is 800 MB and the ``Xᵀ W X`` product takes seconds. Working on
row chunks of ≈ 4 M cells keeps the extra memory near 100 MB, and reporting progress per chunk
lets a user cancel a long regression. Usual runs (tens of segments, a few thousand rows) fit
in one chunk, so their result is the same single matrix product as before.
"""
from __future__ import annotations

import numpy as np

from explainers.base import ProgressFn

CHUNK_CELLS = 1 << 22
"""Rows × segments converted to float64 at a time (32 MB)."""


def chunk_rows(m: int) -> int:
    """Rows per chunk for M segments."""
    return max(1, CHUNK_CELLS // max(int(m), 1))


def _report(progress: ProgressFn | None, done: int, total: int, stage: str) -> None:
    if progress is not None:
        progress(done, total, stage)


def group_means(
    Z: np.ndarray, w: np.ndarray, group: np.ndarray, groups: int,
    progress: ProgressFn | None = None, stage: str = "regression",
) -> np.ndarray:
    """Weighted mean row of each group, (groups, M): ``Σ_{g(i)=k} w_i z_i / Σ_{g(i)=k} w_i``."""
    n, m = Z.shape
    sums = np.zeros((groups, m))
    step = chunk_rows(m)
    for start in range(0, n, step):
        stop = min(start + step, n)
        onehot = np.zeros((stop - start, groups))
        onehot[np.arange(stop - start), group[start:stop]] = w[start:stop]
        sums += onehot.T @ Z[start:stop].astype(np.float64)
        _report(progress, stop, n, stage)
    total = np.bincount(group, weights=w, minlength=groups)
    return sums / np.where(total > 0, total, 1.0)[:, None]


def centred_normal_equations(
    Z: np.ndarray, w: np.ndarray, yc: np.ndarray, centres: np.ndarray, group: np.ndarray | None = None,
    progress: ProgressFn | None = None, stage: str = "regression",
) -> tuple[np.ndarray, np.ndarray]:
    """``(Xᵀ W X, Xᵀ W yc)`` with ``X = Z − centres[group]`` (centres (G, M); group None: row 0).

    ``Z`` may be bool: only one chunk is ever converted to float64.
    """
    n, m = Z.shape
    gram = np.zeros((m, m))
    rhs = np.zeros(m)
    step = chunk_rows(m)
    for start in range(0, n, step):
        stop = min(start + step, n)
        rows = slice(start, stop)
        centre = centres[0] if group is None else centres[group[rows]]
        Xc = Z[rows].astype(np.float64) - centre
        Xw = Xc * w[rows, None]
        if start == 0 and stop == n:  # one chunk: exactly the single product
            return Xw.T @ Xc, Xw.T @ yc
        gram += Xw.T @ Xc
        rhs += Xw.T @ yc[rows]
        _report(progress, stop, n, stage)
    return gram, rhs


def matvec(Z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``Z @ coef`` for a bool or float ``Z`` without a full float64 copy."""
    n, m = Z.shape
    step = chunk_rows(m)
    if n <= step:
        return np.asarray(Z, dtype=np.float64) @ coef
    return np.concatenate(
        [Z[start : start + step].astype(np.float64) @ coef for start in range(0, n, step)]
    )


__all__ = ["CHUNK_CELLS", "chunk_rows", "group_means", "centred_normal_equations", "matvec"]
