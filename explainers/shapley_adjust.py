"""Regression-adjusted (control-variate) KernelSHAP: a surrogate with exact Shapley values plus
the sampled estimate of what it misses.

Why: KernelSHAP's error at a few hundred rows is the sampling error of one weighted regression.
If a surrogate ``g`` of the game ``v`` has Shapley values we can compute exactly, then
``φ(v) = φ(g) + φ(v − g)`` and only the residual game ``v − g`` needs sampling (Witter et al.,
2025, "Regression-adjusted Monte Carlo estimators for Shapley values"). The surrogate is fitted
on every evaluated row, whatever design drew them (LIME's rows serve too).

Which surrogates can help. Our estimator is linear in ``y`` for a fixed design, so
``φ(g) + φ̂(v − g) = φ̂(v) + (φ(g) − φ̂(g))``: the adjustment only gains where the estimator
itself errs on ``g``. On complement pairs KernelSHAP is exact for every game of order ≤ 2
(``v(z) − v(1−z)`` is then linear in ``z``), so a linear or pairwise-interaction surrogate,
however well fitted, cancels to the last digit (``surrogate="pairwise"`` is kept to show it;
tested). A surrogate must carry odd interactions of order ≥ 3 to change anything: here
gradient-boosted regression trees on the coalition bits (``surrogate="trees"``), whose exact
Shapley values for one baseline are a sum over leaves (``tree_shapley``), or kernel ridge
regression with the Hamming kernel ``k(x, z) = exp(−γ·#{i: x_i ≠ z_i})`` (``surrogate="kernel"``,
the default since 2026-12-05). The kernel is a product over segments, so every fitted term
``z ↦ Π_i (1 if z_i = x_i else ρ)`` carries interactions of every order, and its exact Shapley
values have a closed form (``hamming_kernel_shapley``). It is as accurate as the trees on the
benchmark (quickshift, KernelSHAP alone at 500 rows: 0.330 vs 0.330; plain 0.380) and about 30×
cheaper to fit (one Cholesky factorisation per set of rows, shared by the labels), which is what
made it affordable as the default.

Bagging over folds: the complement pairs are dealt into ``folds`` groups and one surrogate is
fitted without each group; ``g`` is their average, ``φ(g)`` the mean of their exact values, and
the residual game ``v − g`` is evaluated on every row. So the estimate is
``φ̂(v) + (φ(g) − φ̂(g))``: exact when the rows are every coalition, and nearly unbiased (on a
10-segment game with exact values the mean over 12 seeds was as close to the truth as plain
KernelSHAP's). Taking each row's residual from the surrogate that did not see it
(``residuals="oof"``) was measured too: it is not exact on every coalition (the residuals then
belong to a different game per fold) and was both worse and more biased.

What the trees learn (``odd=False``, the default): ``v − f(∅) − z·φ̂`` (``target="additive"``,
the default). Tried on 2026-12-03: the residual **within each coalition size**, ``v(z) − f(∅) − z·φ̂ − a_|z|`` with ``a_s`` the weighted mean of that residual
over the rows of size s (``target="within-size"``, ``within_size``). φ(g) − φ̂(g) vanishes for
every additive game and for every function of the size alone (the size-intercept regression is
exact on both), so neither part carries information for the adjustment; left in the target, the
size trend is what the trees fit first, with splits on single segments, which gives ``g`` spurious
interactions (the additive target is not exact on "additive + h(|z|)" games at small N,
tested). Measured: within-size 0.071 vs 0.074 on the grid, but 0.339 vs 0.330 on quickshift
(KernelSHAP alone at 500, 5 seeds), so the default stays "additive". On complement pairs the estimate depends only on
the odd part ``(v(z) − v(1−z)) / 2`` (an even game has φ = 0 and paired rows cancel it exactly),
so fitting that part alone (``odd=True``) was tried: equal on the grid, worse on a synthetic game.

Standard error: the one reported is plain KernelSHAP's cluster-robust sandwich on the same rows
(``explainers.uncertainty``). The residual regression's own sandwich, conditional on the
surrogate, was measured too small (a third of the spread over 40 seeds on a chaotic model:
the surrogate is fitted on the rows it is then judged on, so the residuals look smaller than
they are), and a bootstrap of the trees costs far more than the fit; the plain estimator's
error is what the adjustment improves on (``tests/explainers/test_auto_samples.py`` checks it
against the adjusted estimates' spread over seeds).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from math import comb

import numpy as np

from explainers.base import ExplainerError

SURROGATES = ("none", "kernel", "trees", "pairwise")

ADJUST_FOLDS = 5
"""Cross-fitting folds of the trees (pairs are dealt into folds, never split)."""

SURROGATE_FOLDS = {"trees": ADJUST_FOLDS, "kernel": 1, "pairwise": 1}
"""Default folds per surrogate. Cross-fitting the kernel measured no better (quickshift at 500: 0.333 with 5 folds, 0.331 with 1; grid
0.089 vs 0.092) at 3–5× the cost; both leave the same small bias (see ``HammingKernel``)."""


# ---------------------------------------------------------------------- exact Shapley values
def tree_shapley(tree, m: int, scale: float = 1.0) -> np.ndarray:
    """Exact Shapley values (M,) of ``z ↦ scale · tree.predict(z)`` on binary coalitions ``z``.

    A leaf reached when the segments ``A`` are present and ``B`` absent is the game
    ``v·1[A ⊆ S, B ∩ S = ∅]``, whose Shapley values are, for i ∈ A, ``v (|A|−1)! |B|! / (|A|+|B|)!``
    (i arrives last of A, before any of B) and, for i ∈ B, ``−v |A|! (|B|−1)! / (|A|+|B|)!``;
    everyone else gets 0. ``tree`` is a fitted sklearn ``DecisionTreeRegressor`` (split
    ``z_f ≤ t`` with 0 ≤ t < 1: left = absent).
    """
    t = tree.tree_
    left, right, feature, threshold = t.children_left, t.children_right, t.feature, t.threshold
    value = t.value.reshape(t.node_count, -1)[:, 0]
    phi = np.zeros(m)
    stack: list[tuple[int, frozenset, frozenset]] = [(0, frozenset(), frozenset())]
    while stack:
        node, present, absent = stack.pop()
        if left[node] < 0:  # a leaf
            v = scale * float(value[node])
            a, b = len(present), len(absent)
            if v == 0.0 or a + b == 0:
                continue
            if a:
                share = v / (a * comb(a + b, a))
                for i in present:
                    phi[i] += share
            if b:
                share = v / (b * comb(a + b, b))
                for i in absent:
                    phi[i] -= share
            continue
        f = int(feature[node])
        if not 0.0 <= threshold[node] < 1.0:
            raise ExplainerError("tree_shapley expects splits between 0 and 1 on binary coalitions")
        if f in present:  # the path already fixed z_f = 1: only the right child is reachable
            stack.append((int(right[node]), present, absent))
        elif f in absent:
            stack.append((int(left[node]), present, absent))
        else:
            stack.append((int(left[node]), present, absent | {f}))
            stack.append((int(right[node]), present | {f}, absent))
    return phi


def pairwise_shapley(main: np.ndarray, inter: np.ndarray) -> np.ndarray:
    """Exact Shapley values of ``z ↦ a·z + Σ_{i<j} c_ij z_i z_j``: ``φ_i = a_i + ½ Σ_j c_ij``.

    ``inter`` (M, M) symmetric with a zero diagonal (c_ij in both triangles)."""
    return np.asarray(main, dtype=np.float64) + 0.5 * np.asarray(inter, dtype=np.float64).sum(axis=1)


# ---------------------------------------------------------------------- surrogates
TREE_PARAMS = {"n_estimators": 500, "max_depth": 4, "learning_rate": 0.05, "subsample": 0.8}
"""Chosen on benchmarks/sample_efficiency.py (quickshift, seeds 0–4; depth 2–6, 150–500 trees tried)."""


class _Trees:
    """Gradient-boosted regression trees on the coalition bits (sklearn), exact Shapley values."""

    def __init__(self, seed: int) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        self.model = GradientBoostingRegressor(**TREE_PARAMS, random_state=int(seed))

    def fit(self, Z: np.ndarray, y: np.ndarray, w: np.ndarray) -> "_Trees":
        self.model.fit(Z, y, sample_weight=w)
        return self

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.model.predict(Z)

    def shapley(self, m: int) -> np.ndarray:
        lr = float(self.model.learning_rate)
        return sum(tree_shapley(est[0], m, lr) for est in self.model.estimators_)


class _Pairwise:
    """Ridge on main effects + all pairwise products, its strength cross-validated (seeded)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    @staticmethod
    def _features(Z: np.ndarray) -> np.ndarray:
        iu = np.triu_indices(Z.shape[1], 1)
        return np.concatenate([Z, Z[:, iu[0]] * Z[:, iu[1]]], axis=1)

    def fit(self, Z: np.ndarray, y: np.ndarray, w: np.ndarray) -> "_Pairwise":
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import GridSearchCV, KFold

        self.m = Z.shape[1]
        X = self._features(Z)
        search = GridSearchCV(Ridge(), {"alpha": np.logspace(-4, 2, 7)},
                              cv=KFold(3, shuffle=True, random_state=self.seed))
        search.fit(X, y, sample_weight=w)
        self.model = search.best_estimator_
        return self

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.model.predict(self._features(Z))

    def shapley(self, m: int) -> np.ndarray:
        coef = self.model.coef_
        inter = np.zeros((m, m))
        iu = np.triu_indices(m, 1)
        inter[iu] = coef[m:]
        inter = inter + inter.T
        return pairwise_shapley(coef[:m], inter)


@lru_cache(maxsize=16)
def hamming_kernel_shapley(m: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley values of one kernel term ``g_x(z) = Π_i h_i(z_i)``, ``h_i = 1`` where
    ``z_i = x_i`` and ``ρ`` elsewhere, as tables over ``s = |x|``: ``(V1[s], V0[s])`` is segment
    j's value when ``x_j = 1`` / ``x_j = 0``.

    Why closed form: with ``h_i(z) = a_i + b_i z``, ``g(S ∪ j) − g(S) = b_j Π_{i∈S} (a_i + b_i)
    Π_{i∉S, i≠j} a_i``, so φ_j = ``b_j Σ_t w(t) e_t`` where ``e_t`` is the coefficient of ``u^t`` in
    ``Π_{i≠j} (a_i + (a_i + b_i) u)`` and ``w(t) = t!(M−1−t)!/M!``. Present segments of x give
    the factor ``(ρ + u)``, absent ones ``(1 + ρu)``, so the polynomial depends on ``s`` alone.
    """
    w = np.array([1.0 / (m * comb(m - 1, t)) for t in range(m)])

    def weighted(present: int, absent: int) -> float:
        c1 = np.array([comb(present, k) * rho ** (present - k) for k in range(present + 1)])
        c2 = np.array([comb(absent, k) * rho**k for k in range(absent + 1)])
        c = np.convolve(c1, c2)
        return float(c @ w[: len(c)])

    v1, v0 = np.zeros(m + 1), np.zeros(m + 1)
    for s in range(m + 1):
        if s >= 1:  # x_j = 1: a = ρ, b = 1 − ρ
            v1[s] = (1.0 - rho) * weighted(s - 1, m - s)
        if s <= m - 1:  # x_j = 0: a = 1, b = ρ − 1
            v0[s] = (rho - 1.0) * weighted(s, m - s - 1)
    v1.flags.writeable = v0.flags.writeable = False  # cached (28 s at M = 1 000): shared by every fit
    return v1, v0


KERNEL_GAMMA = 5.0
"""γ·M of the Hamming kernel: LOO over γ·M in 1.75–14 chose 3.5–7 on quickshift (M = 35) and
4.8 on the grid (M = 12); fixing it cost nothing measurable and saves a factorisation per γ."""
KERNEL_ALPHA = 1e-2
"""Ridge strength (the kernel's diagonal is 1). Exact leave-one-out over 10⁻³–10⁻¹ chose mostly
10⁻² and measured no better than fixing it (quickshift at 500 rows: 0.332 vs 0.330 alone, 0.428
vs 0.428 with LIME; grid 0.094 vs 0.093), while its eigendecomposition cost 6× the Cholesky
factorisation (0.13 s vs 0.02 s at 1 000 rows): enough to push the explanation's time outside
the model over 3 % in compare_peers.py."""
KERNEL_ROWS = 1000
"""At most this many rows (the run's first: a prefix is a fresh run) fit the kernel: its cost is cubic."""

_KERNEL_CACHE: dict[bytes, object] = {}
"""The last few kernel matrices and Cholesky factors: the labels of one explanation fit the
same rows, so they share them (at 1 000 rows one factorisation and kernel matrix take ≈ 0.04 s)."""


def _rows_key(*parts: object) -> bytes:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(np.packbits(part > 0.5, axis=1).tobytes() + repr(part.shape).encode()
                 if isinstance(part, np.ndarray) else repr(part).encode())
    return h.digest()


def _cached(key: bytes, make):
    hit = _KERNEL_CACHE.get(key)
    if hit is None:
        hit = make()
        while len(_KERNEL_CACHE) >= 4:
            _KERNEL_CACHE.pop(next(iter(_KERNEL_CACHE)))
        _KERNEL_CACHE[key] = hit
    return hit


def hamming_kernel(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(−γ · Hamming(a, b))`` for every pair of rows (binary coalitions)."""
    ham = A @ (1.0 - B).T + (1.0 - A) @ B.T
    return np.exp(-gamma * ham)


class HammingKernel:
    """Kernel ridge regression on the coalition bits with ``k(x, z) = exp(−γ Hamming(x, z))``,
    γ = ``KERNEL_GAMMA`` / M, ridge ``KERNEL_ALPHA``; exact Shapley values.

    Fitted on the same rows it adjusts (one fold), the estimate keeps a small bias: on the 3×4
    grid's exact game, the mean of 40 seeds' estimates was 2.7 % off the truth (plain KernelSHAP
    1.7 %, its noise level at 40 seeds; the cross-fitted trees 2.5 %), while one estimate's error
    fell from 9.7 % to 6.9 %. Deterministic: no random choice (``seed`` is unused)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def fit(self, Z: np.ndarray, y: np.ndarray, w: np.ndarray) -> "HammingKernel":
        X = np.asarray(Z, dtype=np.float64)[:KERNEL_ROWS]
        y = np.asarray(y, dtype=np.float64)[:KERNEL_ROWS]
        self.m = X.shape[1]
        self.gamma = KERNEL_GAMMA / self.m
        self.X, self.offset = X, float(np.mean(y))
        from scipy.linalg import cho_factor, cho_solve

        self.alpha = KERNEL_ALPHA
        factor = _cached(_rows_key("cholesky", X, self.gamma, self.alpha),
                         lambda: cho_factor(self._matrix(X) + self.alpha * np.eye(len(X)), lower=True,
                                            check_finite=False))
        self.coef = cho_solve(factor, y - self.offset, check_finite=False)
        return self

    def _matrix(self, Z: np.ndarray) -> np.ndarray:
        """k(Z, X), cached: the labels ask for the same rows and their complements. A complement's
        is free: Hamming(1 − z, x) = M − Hamming(z, x), so k(1 − z, x) = e^(−γM) / k(z, x)."""
        if len(Z) <= 64:  # a few rows (the anchors): computing is cheaper than evicting a big entry
            return hamming_kernel(Z, self.X, self.gamma)
        flipped = _KERNEL_CACHE.get(_rows_key("k", 1.0 - Z, self.X, self.gamma))
        if flipped is not None:
            return np.exp(-self.gamma * self.m) / flipped
        return _cached(_rows_key("k", Z, self.X, self.gamma), lambda: hamming_kernel(Z, self.X, self.gamma))

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.offset + self._matrix(np.asarray(Z, dtype=np.float64)) @ self.coef

    def shapley(self, m: int) -> np.ndarray:
        v1, v0 = hamming_kernel_shapley(m, float(np.exp(-self.gamma)))
        s = np.rint(self.X.sum(axis=1)).astype(np.int64)
        per_row = self.X * v1[s][:, None] + (1.0 - self.X) * v0[s][:, None]
        return self.coef @ per_row


def make_surrogate(kind: str, seed: int):
    if kind == "kernel":
        return HammingKernel(seed)
    if kind == "trees":
        return _Trees(seed)
    if kind == "pairwise":
        return _Pairwise(seed)
    raise ExplainerError(f"surrogate must be one of {', '.join(SURROGATES)}, not {kind!r}")


# ---------------------------------------------------------------------- the estimator
TARGETS = ("additive", "within-size")
"""What the surrogate learns (``fit_adjusted_shap(target=…)``); the first is the default
("within-size" measured better on the grid, worse on quickshift: benchmarks/README.md, 2026-12-03)."""


def within_size(r: np.ndarray, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``r`` minus its weighted mean within each coalition size, on the rows of positive weight
    (0 elsewhere: the anchors)."""
    r = np.asarray(r, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    out = np.zeros(len(r))
    if not keep.any():
        return out
    sizes = np.rint(np.asarray(Z)[keep].sum(axis=1)).astype(np.int64)
    _, group = np.unique(sizes, return_inverse=True)
    mean = np.bincount(group, weights=w[keep] * r[keep]) / np.bincount(group, weights=w[keep])
    out[keep] = r[keep] - mean[group]
    return out


def pair_folds(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of each design row (anchors: −1); a complement pair stays in one fold."""
    idx = np.arange(int(n))
    pairs = (idx[2:] - 2) // 2
    count = int(pairs.max()) + 1 if len(pairs) else 0
    order = np.random.default_rng([int(seed), 0xF01D]).permutation(count)
    fold_of_pair = np.empty(count, dtype=np.int64)
    fold_of_pair[order] = np.arange(count) % max(1, int(folds))
    out = np.full(len(idx), -1, dtype=np.int64)
    out[2:] = fold_of_pair[pairs]
    return out


def fit_adjusted_shap(
    Z: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    f_x: float,
    f_empty: float,
    surrogate: str = "trees",
    folds: int | None = None,
    seed: int = 0,
    l2: float = 0.0,
    uncertainty: bool = False,
    odd: bool = False,
    residuals: str = "all",
    target: str = "additive",
):
    """KernelSHAP on design rows ``Z`` (row 0 full, row 1 empty, then complement pairs) with a
    surrogate control variate; returns a ``kernel_shap.ShapFit`` (same fields, same meaning).

    ``folds`` ≥ 2 cross-fits the surrogate (see the module docstring); 1 fits it on all rows;
    ``None``: the surrogate's default (``SURROGATE_FOLDS``).
    ``target`` (with ``odd=False``): what the trees learn besides plain KernelSHAP's fit —
    "additive" (the default): ``v − f(∅) − z·φ̂`` on every row (size trend left in); "within-size":
    its residual within each coalition size, i.e. after the size intercepts too, on the weighted
    rows (exact on additive + size-function games; better on the grid, worse on quickshift).
    """
    if target not in TARGETS:
        raise ExplainerError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    from explainers.kernel_shap import fit_kernel_shap

    target_kind = target
    if surrogate == "none":
        return fit_kernel_shap(Z, y, weights, f_x, f_empty, l2=l2, uncertainty=uncertainty)
    if surrogate not in SURROGATES:
        raise ExplainerError(f"surrogate must be one of {', '.join(SURROGATES)}, not {surrogate!r}")
    folds = SURROGATE_FOLDS[surrogate] if folds is None else int(folds)
    Zf = np.asarray(Z, dtype=np.float64)
    y = y_in = np.asarray(y, dtype=np.float64)
    n, m = Zf.shape
    if n < 2 + 2 * max(2, folds) or m < 2:  # too few pairs to fit anything: plain KernelSHAP
        return fit_kernel_shap(Z, y, weights, f_x, f_empty, l2=l2, uncertainty=uncertainty)
    fold = pair_folds(n, folds, seed)
    # the odd part h(z) = (v(z) − v(1−z)) / 2 carries all of φ (an even game has φ = 0):
    # the surrogate learns h on both members of every complete pair (h(1−z) = −h(z))
    paired = np.zeros(n, bool)
    npairs = (n - 2) // 2
    paired[2 : 2 + 2 * npairs] = True
    target = np.zeros(n)
    h = (y[2 : 2 + 2 * npairs : 2] - y[3 : 3 + 2 * npairs : 2]) / 2.0
    target[2 : 2 + 2 * npairs : 2], target[3 : 3 + 2 * npairs : 2] = h, -h
    target[0] = (float(f_x) - float(f_empty)) / 2.0
    target[1] = -target[0]
    paired[:2] = True
    if not odd:  # the surrogate learns what plain KernelSHAP's additive fit leaves (every row)
        base = fit_kernel_shap(Z, y, weights, f_x, f_empty, l2=l2).values
        target, paired = y - float(f_empty) - Zf @ base, np.ones(n, bool)
        y = target  # the additive part cancels in φ(g) − φ̂(g): only the trees' part is adjusted
        if target_kind == "within-size":
            # a function of the size alone is exact in the size-intercept regression (φ̂ = φ), so
            # it cancels in φ(g) − φ̂(g) as well: take it out so the trees spend no splits on it
            target = within_size(target, Zf, weights)
            paired = np.asarray(weights, dtype=np.float64) > 0
    fx, fe = (float(f_x), float(f_empty)) if odd else (float(y[0]), float(y[1]))
    models = []
    g_odd = np.zeros(n)
    for k in range(max(1, int(folds))):
        train = paired & ((fold != k) if folds > 1 else True)
        model = make_surrogate(surrogate, seed + 7919 * k).fit(Zf[train], target[train], np.ones(int(train.sum())))
        models.append(model)
        if residuals == "oof" and folds > 1:  # each row's residual from the model that did not see it
            test = fold == k
            g_odd[test] = (model.predict(Zf[test]) - model.predict(1.0 - Zf[test])) / 2.0
        else:  # the residual game v − ḡ of the averaged surrogate, on every row
            g_odd += (model.predict(Zf) - model.predict(1.0 - Zf)) / 2.0 / max(1, int(folds))
    ends = np.array([[1.0] * m])
    g_full = float(np.mean([(mdl.predict(ends) - mdl.predict(1.0 - ends))[0] / 2.0 for mdl in models]))
    phi_g = np.mean([mdl.shapley(m) for mdl in models], axis=0)  # φ(g) = φ(odd part of g)
    # residual game v − g_odd (g's even part has φ = 0; subtracting only the odd part keeps
    # the residual's even part, which paired rows cancel anyway)
    resid = y - g_odd
    # the anchors under the averaged surrogate's odd part (g_odd(0) = −g_odd(1))
    resid[0], resid[1] = fx - g_full, fe + g_full
    fit = fit_kernel_shap(Z, resid, weights, resid[0], resid[1], l2=l2)
    values = phi_g + fit.values
    if not odd:
        values = values + base
        y = np.asarray(y_in, dtype=np.float64)
    if uncertainty:  # plain KernelSHAP's sandwich on the same rows (see the module docstring)
        fit = replace(fit, std=fit_kernel_shap(Z, y, weights, f_x, f_empty, l2=l2, uncertainty=True).std)
    delta = float(f_x) - float(f_empty)
    # R² of the additive model on the original outputs (what plain KernelSHAP reports)
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    r2 = 1.0
    if keep.any():
        yk = y[keep] - float(f_empty)
        pred = Zf[keep] @ values
        mean = np.average(yk, weights=w[keep])
        ss_tot = float(np.sum(w[keep] * (yk - mean) ** 2))
        ss_res = float(np.sum(w[keep] * (yk - pred) ** 2))
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return replace(fit, values=values, base_value=float(f_empty), prediction=float(f_x),
                   efficiency_gap=float(abs(values.sum() - delta)), r2=r2)


__all__ = ["SURROGATES", "TARGETS", "ADJUST_FOLDS", "SURROGATE_FOLDS", "HammingKernel", "hamming_kernel", "hamming_kernel_shapley", "within_size", "tree_shapley", "pairwise_shapley", "pair_folds",
           "fit_adjusted_shap", "make_surrogate"]
