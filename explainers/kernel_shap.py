"""KernelSHAP on superpixels from the shared perturbation rows.

Shapley values of the game ``v(S) = f(image with the segments outside S filled)`` for the
model's probability of the label (the same output LIME explains). The base value is ``f(∅)``:
the model on the fully filled image (the analogue of shap's single-background expectation).

The estimator is Lundberg & Lee's weighted least squares with the Shapley kernel
``π(z) = (M−1) / (C(M,s) s (M−s))`` under the efficiency constraint ``Σφ = f(x) − f(∅)``, with
one change that only matters for sampled rows: **one free intercept per coalition size**.
Centring ``z`` and ``v`` within each size (weighted means) and regressing the centred values
gives the pooled within-size contrasts; because a centred row sums to zero, the fit fixes ``φ``
up to a constant, and the constraint fixes the constant: ``φ = β + (Δ − Σβ) / M``.

Why it is still KernelSHAP: write ``D_{s,i}`` for the mean of ``v`` over the size-s coalitions
that contain ``i`` minus over those that do not. The Shapley value is
``φ_i = (Δ + Σ_{s=1}^{M−1} D_{s,i}) / M``, every size counting equally. On all coalitions of a
size the within-size least-squares contrast equals ``D_s`` exactly, and the kernel weights
``π ∝ 1 / (C(M,s) s (M−s))`` make the pooled fit weigh each size equally, so an exhaustive run
still returns the exact Shapley values (tested against brute force and shap), and complement
pairs still make it exact for games of order ≤ 2. On sampled rows the size intercepts absorb
how the mean output changes with the number of visible segments, which is most of the
variation between rows and none of the information about individual segments: on the
benchmarks this cuts the error by 10–20 % at the same rows (``benchmarks/README.md``).

The row weights come from ``explainers.perturbation`` (Horvitz–Thompson weights of its
size-stratified design; the exact kernel on exhaustive runs). Requested alone with a fixed sample
count, KernelSHAP's rows are chosen by Bayesian quadrature for its kernel-surrogate estimate
(``explainers.quadrature``).
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Any

import numpy as np

from explainers.base import ExplainerError, Explanation, MethodSpec, Timer, param, params_dict, register
from explainers.context import contrast_extras, shared_params
from explainers.shapley_adjust import SURROGATES


@dataclass(frozen=True)
class KernelShapParams:
    """Ridge penalty on the Shapley values (0 = plain KernelSHAP); samples come from the context."""

    l2: float = param(0.0, low=0.0, high=1e6, help="ridge penalty on the Shapley values (0 = plain KernelSHAP)")
    surrogate: str = param(
        "kernel", choices=SURROGATES,
        help="control variate: a surrogate of the game with exact Shapley values, fitted on the rows "
        "(kernel: kernel ridge with all-order interactions, 13–19 % less error at 500 samples "
        "for a fraction of a second; none: plain KernelSHAP; trees: boosted trees, as accurate as "
        "the kernel but seconds of fitting per label; pairwise: no gain on paired rows, kept to show it)",
    )

    def for_stability(self) -> "KernelShapParams":
        """The parameters the "auto" stopping rule refits with: plain KernelSHAP (cheap; the
        adjusted estimate is at least as accurate on the benchmarks, so this errs towards more rows)."""
        from dataclasses import replace

        return replace(self, surrogate="none")


@dataclass(frozen=True)
class ShapFit:
    values: np.ndarray  # (M,) float64 Shapley value estimates
    base_value: float  # f(∅)
    prediction: float  # f(x)
    efficiency_gap: float  # |Σφ − (f(x) − f(∅))|
    r2: float  # weighted R² of the additive model f(∅) + z·φ on the weighted rows
    std: np.ndarray | None = None  # (M,) standard error of each value (``uncertainty=True``)


def _min_norm_solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The minimum-norm β of ``gram β = rhs`` for a centred Gram matrix (``gram 1 = 0``, rhs ⊥ 1).

    Adding ``c 11ᵀ / M`` makes it positive definite without changing the solution on 1⊥, so a
    Cholesky solve suffices (microseconds); a rank-deficient design (too few rows) falls back
    to an eigen-solve that drops the null directions. Both avoid numpy's ``eigh``/``lstsq``,
    whose threaded OpenBLAS calls take ~15 ms each right after a TensorFlow batch on 2 cores.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh

    m = len(gram)
    scale = float(np.trace(gram)) / m
    if scale <= 0:
        return np.zeros(m)
    A = gram + scale / m  # + c 11ᵀ / M with c = scale
    try:
        factor = cho_factor(A, lower=True, check_finite=False)
        if np.min(np.abs(np.diag(factor[0]))) ** 2 <= 1e-10 * scale:
            raise LinAlgError("nearly singular")
        return cho_solve(factor, rhs, check_finite=False)
    except LinAlgError:
        vals, vecs = eigh(gram, check_finite=False)
        keep = vals > 1e-10 * max(float(vals.max()), 0.0)
        inv = (1.0 / vals[keep]).reshape((-1,) + (1,) * (np.ndim(rhs) - 1))
        return vecs[:, keep] @ ((vecs[:, keep].T @ rhs) * inv)


def fit_kernel_shap(
    Z: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    f_x: float,
    f_empty: float,
    l2: float = 0.0,
    uncertainty: bool = False,
) -> ShapFit:
    """Weighted least squares with one intercept per coalition size, ``Σφ = f(x) − f(∅)``.

    min Σ w (y − a_|z| − zφ)² + l2‖φ‖² over φ and the size intercepts a_s. Rows with zero
    weight (the anchors, the empty and the full coalition) are ignored; the constraint is exact.
    ``uncertainty``: also the standard error of each value (``explainers.uncertainty``; the
    rows must be design rows in run order: anchors, then complement pairs).
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if Z.ndim != 2 or y.shape != (len(Z),) or w.shape != (len(Z),):
        raise ExplainerError(f"KernelSHAP needs (n, M) coalitions, n outputs and n weights; got {Z.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ExplainerError("KernelSHAP weights must be finite and ≥ 0")
    m = Z.shape[1]
    delta = float(f_x) - float(f_empty)
    keep = w > 0
    if uncertainty:
        from explainers.uncertainty import design_terms

        clusters, fpc = (t[keep] for t in design_terms(len(Z), Z))
    Z, y, w = Z[keep], y[keep] - float(f_empty), w[keep]
    std = None
    if m == 1:
        values = np.array([delta])
        std = np.zeros(1) if uncertainty else None
    else:
        if len(w) == 0:
            raise ExplainerError("KernelSHAP needs samples between the empty and the full image")
        w = w / w.sum()
        sizes = np.rint(Z.sum(axis=1)).astype(np.int64)
        _, group = np.unique(sizes, return_inverse=True)
        total = np.bincount(group, weights=w)
        z_mean = np.stack([np.bincount(group, weights=w * Z[:, j]) for j in range(m)], axis=1) / total[:, None]
        y_mean = np.bincount(group, weights=w * y) / total
        Xc = Z - z_mean[group]  # rows sum to 0: φ is fixed up to a constant
        Xw = Xc * w[:, None]
        gram = Xw.T @ Xc  # M × M normal equations: cheap next to the rows
        rhs = Xw.T @ (y - y_mean[group])
        # Under Σφ = Δ, ‖φ‖² = ‖φ − Δ/M‖² + Δ²/M: a ridge on β is a ridge on φ.
        gram[np.diag_indices_from(gram)] += float(l2)
        beta = _min_norm_solve(gram, rhs)
        values = beta + (delta - beta.sum()) / m
        if uncertainty:
            from explainers.uncertainty import sandwich_cov, std_from_cov

            resid = (y - y_mean[group]) - Xc @ beta
            cov = sandwich_cov(Xc, w, resid, lambda b: _min_norm_solve(gram, b), clusters, fpc)
            proj = np.eye(m) - 1.0 / m  # φ = P β + Δ/M
            std = std_from_cov(proj @ cov @ proj)
    gap = float(abs(values.sum() - delta))
    if len(y):
        pred = Z @ values
        mean = np.average(y, weights=w)
        ss_tot = float(np.sum(w * (y - mean) ** 2))
        ss_res = float(np.sum(w * (y - pred) ** 2))
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    else:
        r2 = 1.0
    return ShapFit(values=values, base_value=float(f_empty), prediction=float(f_x), efficiency_gap=gap,
                   r2=r2, std=std)


def fit_shapley(rows: Any, y: np.ndarray, params: KernelShapParams, seed: int = 0,
                uncertainty: bool = False) -> ShapFit:
    """KernelSHAP of outputs ``y`` on design ``rows``, regression-adjusted when
    ``params.surrogate`` names a surrogate (``explainers.shapley_adjust``)."""
    from explainers.shapley_adjust import fit_adjusted_shap

    y = np.asarray(y, dtype=np.float64)
    return fit_adjusted_shap(rows.Z, y, rows.shapley_weight, y[0], y[1],
                             surrogate=getattr(params, "surrogate", "none"), seed=int(seed),
                             l2=float(params.l2), uncertainty=uncertainty)


def run_kernel_shap(ctx, params: KernelShapParams, labels: list[int], contrast: int | None = None) -> list[Explanation]:
    """One KernelSHAP explanation per label from the context's shared perturbation run; with
    ``contrast`` B, Shapley values of output(label) − output(B) from the same rows."""
    with Timer() as total:
        run, per_label, calls = ctx.perturbation_rows("kernel_shap", params, labels)
        segments = ctx.segments()
        fits = []
        for i, label in enumerate(labels):
            ctx.report(i, len(labels), "regression")  # M×M fits take seconds near MAX_SEGMENTS
            rows, sampling = per_label[label]
            y = rows.Y[:, label].astype(np.float64)
            if contrast is not None:
                y = y - rows.Y[:, int(contrast)]
            fits.append((label, fit_shapley(rows, y, params, ctx.seed, uncertainty=True), rows, sampling))
    return [
        Explanation(
            method="kernel_shap",
            label=label,
            label_name=ctx.label_name(label),
            score=float(rows.Y[0, label]),
            heatmap=fit.values.astype(np.float32)[segments],
            segments=segments,
            segment_weights=fit.values,
            local_prediction=fit.base_value + float(fit.values.sum()),
            r2=fit.r2,
            base_value=fit.base_value,
            model_calls=calls[label] if label not in labels[:i] else 0,
            seconds=total.seconds,
            segment_std=fit.std,
            sampling=sampling,
            params={**params_dict(params), **shared_params(ctx, run, len(rows.Z))},
            extras={
                "efficiency_gap": fit.efficiency_gap,
                "exact": bool(rows.exhaustive),
                "shared_run_seconds_in_model": float(run.seconds_in_model),
                "shared_calls": int(run.model_calls),
                **contrast_extras(ctx, rows.Y[0], contrast),
            },
            contrast=contrast,
        )
        for i, (label, fit, rows, sampling) in enumerate(fits)
    ]


def refit_kernel_shap(rows: Any, label: int, params: KernelShapParams, seed: int = 0) -> np.ndarray:
    """Shapley values fitted on perturbation ``rows`` (trust: convergence, bootstrap)."""
    return fit_shapley(rows, rows.Y[:, int(label)], params, seed).values


def refit_kernel_shap_std(rows: Any, label: int, params: KernelShapParams, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``refit_kernel_shap`` with each value's standard error."""
    fit = fit_shapley(rows, rows.Y[:, int(label)], params, seed, uncertainty=True)
    return fit.values, fit.std


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="kernel_shap", title="KernelSHAP", family="perturbation", order=20, default=True,
    scale_group="probability per superpixel", additive=True,
    params_type=KernelShapParams, run=run_kernel_shap, refit=refit_kernel_shap,
    refit_std=refit_kernel_shap_std, design_share=1.0,
    contrast=True,
    description="Shapley values of the superpixels: each segment's fair share of the difference "
    "between the model's score on the image and on the fully hidden image.",
))

__all__ = ["KernelShapParams", "ShapFit", "fit_kernel_shap", "fit_shapley", "run_kernel_shap", "refit_kernel_shap",
           "refit_kernel_shap_std"]
