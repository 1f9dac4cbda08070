"""LIME on superpixels: a weighted surrogate fitted on the shared perturbation rows.

The estimator is lime_image's (marcotcr/lime 0.2): the cosine distance of each coalition to the
all-ones row, the kernel ``sqrt(exp(-d² / w²))`` with width 0.25, and a weighted
``Ridge(alpha=1, fit_intercept=True)`` on all segments (lime_image's ``num_features=100000``
keeps every feature); its R² is the weighted ``score`` and the local prediction the surrogate at
the all-ones row. Fed lime's own rows, ``fit_lime`` gives lime's coefficients.

Our rows come from the size-stratified design of ``explainers.perturbation`` (not lime's
uniform draw), so each row's kernel weight is multiplied by its Horvitz–Thompson ratio
``2^−M C(M,s) / n_s`` (scaled to sum to the number of sampled rows); the weighted sum then
estimates the same objective lime minimises, on the same scale (so ``alpha`` means what it
means in lime). The empty coalition (row 1) has no cosine direction: we follow
sklearn, which gives a zero vector cosine distance 1 (what lime does if it draws it), so its
weight is ``kernel(1)`` (≈ 3e-4 at width 0.25).

Besides ridge: a weighted lasso, and a regression tree whose importances are signed by the
weighted mean effect of each segment (mean output with it present minus absent).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.base import (
    ExplainerError,
    Explanation,
    MethodSpec,
    Timer,
    check_params,
    param,
    params_dict,
    register,
)
from explainers.context import contrast_extras, shared_params

SURROGATES = ("ridge", "lasso", "tree")


@dataclass(frozen=True)
class LimeParams:
    """LIME's surrogate; samples, fill and segmentation are shared settings of the context."""

    kernel_width: float = param(0.25, above=0.0, high=100.0, help="width of lime's exponential kernel on the cosine distance")
    surrogate: str = param("ridge", choices=SURROGATES, help="the local model fitted to the perturbed scores")
    alpha: float = param(1.0, low=0.0, high=1e6, help="ridge penalty (lime's default 1.0)")
    lasso_alpha: float = param(0.001, above=0.0, high=1e3, help="lasso penalty (sklearn's scale: mean squared error / 2)")
    max_depth: int = param(4, low=1, high=64, help="regression tree depth")


@dataclass(frozen=True)
class SurrogateFit:
    """A fitted surrogate: one weight per segment plus lime's diagnostics."""

    coef: np.ndarray  # (M,) float64, signed
    intercept: float
    r2: float
    local_prediction: float
    weights: np.ndarray  # (n,) the sample weights used (kernel × importance ratio)
    std: np.ndarray | None = None  # (M,) standard error of each coefficient (ridge, ``uncertainty=True``)


def lime_kernel(Z: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """lime_image's weights: sqrt(exp(-d²/w²)) of the cosine distance to the all-ones row."""
    Z = np.asarray(Z, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", Z, Z)) * np.sqrt(Z.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):  # sklearn: a zero row has distance 1
        similarity = np.where(norms > 0, Z.sum(axis=1) / norms, 0.0)
    d = np.clip(1.0 - similarity, 0.0, 2.0)  # sklearn's cosine distance to the all-ones row
    return np.sqrt(np.exp(-(d**2) / float(kernel_width) ** 2))


def weighted_ridge(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float, uncertainty: bool = False
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, np.ndarray]:
    """sklearn's ``Ridge(alpha, fit_intercept=True).fit(Z, y, sample_weight=w)`` in closed form.

    Centre by the weighted means, solve ``(Xᵀ W X + αI) β = Xᵀ W y``, intercept ``ȳ − x̄·β``
    (what sklearn's cholesky solver does), without its per-call validation overhead: LIME fits
    one surrogate per label on every explanation. ``uncertainty``: also the coefficients'
    standard errors (``explainers.uncertainty``; design rows in run order).
    """
    w = np.asarray(w, dtype=np.float64)
    total = w.sum()
    x_mean = (w @ Z) / total
    y_mean = float(w @ y) / total
    Xc = Z - x_mean
    yc = y - y_mean
    Xw = Xc * w[:, None]
    gram = Xw.T @ Xc
    gram[np.diag_indices_from(gram)] += alpha
    try:
        coef = np.linalg.solve(gram, Xw.T @ yc)
        solve = lambda b: np.linalg.solve(gram, b)  # noqa: E731
    except np.linalg.LinAlgError:  # alpha = 0 on collinear rows: the minimum-norm solution
        coef = np.linalg.lstsq(gram, Xw.T @ yc, rcond=None)[0]
        solve = lambda b: np.linalg.lstsq(gram, b, rcond=None)[0]  # noqa: E731
    intercept = y_mean - float(x_mean @ coef)
    if not uncertainty:
        return coef, intercept
    from explainers.uncertainty import design_terms, sandwich_cov, std_from_cov

    clusters, fpc = design_terms(len(Z), Z)
    cov = sandwich_cov(Xc, w, yc - Xc @ coef, solve, clusters, fpc)
    return coef, intercept, std_from_cov(cov)


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    """sklearn's ``r2_score(y, pred, sample_weight=w)`` (1 when y is constant and fitted)."""
    mean = float(w @ y) / float(w.sum())
    ss_res = float(w @ (y - pred) ** 2)
    ss_tot = float(w @ (y - mean) ** 2)
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def signed_tree_importance(tree, Z: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``feature_importances_`` × sign of each segment's weighted mean effect (present − absent)."""
    Zb = np.asarray(Z, dtype=bool)
    on = (w[:, None] * Zb).sum(axis=0)
    off = (w[:, None] * ~Zb).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = (w * y) @ Zb / on - (w * y) @ ~Zb / off
    sign = np.sign(np.nan_to_num(effect, nan=0.0))
    return tree.feature_importances_ * sign


def fit_lime(
    Z: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    params: LimeParams | None = None,
    seed: int = 0,
    uncertainty: bool = False,
) -> SurrogateFit:
    """Fit lime's surrogate on coalitions ``Z`` (n, M) and outputs ``y`` (n,).

    The row weights are lime's kernel times ``sample_weight`` (importance ratios; None = 1,
    which is exactly lime). Returns the segment weights, intercept, weighted R² and the
    surrogate's prediction at the all-ones row.
    """
    params = params or LimeParams()
    check_params(params)
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if Z.ndim != 2 or y.shape != (len(Z),) or len(Z) < 2:
        raise ExplainerError(f"LIME needs (n, M) coalitions and n outputs, n ≥ 2; got {Z.shape}, {y.shape}")
    w = lime_kernel(Z, params.kernel_width)
    if sample_weight is not None:
        w = w * np.asarray(sample_weight, dtype=np.float64)
    ones = np.ones((1, Z.shape[1]))
    std = None
    if params.surrogate == "ridge":
        if uncertainty:
            coef, intercept, std = weighted_ridge(Z, y, w, float(params.alpha), uncertainty=True)
        else:
            coef, intercept = weighted_ridge(Z, y, w, float(params.alpha))
        pred = intercept + Z @ coef
        r2 = weighted_r2(y, pred, w)
        local = intercept + float(coef.sum())
    else:
        if params.surrogate == "lasso":
            from sklearn.linear_model import Lasso

            model = Lasso(alpha=float(params.lasso_alpha), fit_intercept=True, max_iter=10_000, random_state=seed)
            model.fit(Z, y, sample_weight=w)
            coef, intercept = model.coef_, float(model.intercept_)
        else:
            from sklearn.tree import DecisionTreeRegressor

            model = DecisionTreeRegressor(max_depth=int(params.max_depth), random_state=seed)
            model.fit(Z, y, sample_weight=w)
            coef = signed_tree_importance(model, Z, y, w)
            intercept = float(model.predict(np.zeros((1, Z.shape[1])))[0])  # surrogate at "all hidden"
        r2 = float(model.score(Z, y, sample_weight=w))
        local = float(model.predict(ones)[0])
    return SurrogateFit(
        coef=np.asarray(coef, dtype=np.float64), intercept=intercept, r2=r2,
        local_prediction=local, weights=w, std=std,
    )


def run_lime(ctx, params: LimeParams, labels: list[int], contrast: int | None = None) -> list[Explanation]:
    """One LIME explanation per label, all from the context's shared perturbation run; with
    ``contrast`` B the surrogate is fitted to output(label) − output(B) on the same rows."""
    with Timer() as total:
        run, per_label, calls = ctx.perturbation_rows("lime", params, labels)
        segments = ctx.segments()
        out = []
        for i, label in enumerate(labels):
            ctx.report(i, len(labels), "regression")  # M×M fits take seconds near MAX_SEGMENTS
            rows, sampling = per_label[label]
            y = rows.Y[:, label] if contrast is None else rows.Y[:, label] - rows.Y[:, int(contrast)]
            fit = fit_lime(rows.Z, y, rows.lime_ratio, params, seed=ctx.seed,
                           uncertainty=not rows.exhaustive)
            out.append((label, fit, rows, sampling))
    results = []
    for i, (label, fit, rows, sampling) in enumerate(out):
        results.append(
            Explanation(
                method="lime",
                label=label,
                label_name=ctx.label_name(label),
                score=float(rows.Y[0, label]),
                heatmap=fit.coef.astype(np.float32)[segments],
                segments=segments,
                segment_weights=fit.coef,
                intercept=fit.intercept,
                local_prediction=fit.local_prediction,
                r2=fit.r2,
                model_calls=calls[label] if label not in labels[:i] else 0,
                seconds=total.seconds,
                segment_std=fit.std if fit.std is not None or not rows.exhaustive else np.zeros(len(fit.coef)),
                sampling=sampling,
                params={**params_dict(params), **shared_params(ctx, run, len(rows.Z))},
                extras={
                    "surrogate": params.surrogate,
                    "shared_run_seconds_in_model": float(run.seconds_in_model),
                    "shared_calls": int(run.model_calls),
                    **contrast_extras(ctx, rows.Y[0], contrast),
                },
                contrast=contrast,
            )
        )
    return results


def refit_lime(rows: Any, label: int, params: LimeParams, seed: int = 0) -> np.ndarray:
    """LIME's segment weights fitted on perturbation ``rows`` (trust: convergence, bootstrap)."""
    return fit_lime(rows.Z, rows.Y[:, int(label)], rows.lime_ratio, params, seed=seed).coef


def refit_lime_std(rows: Any, label: int, params: LimeParams, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``refit_lime`` with the standard errors (ridge surrogate only; None for lasso / tree)."""
    fit = fit_lime(rows.Z, rows.Y[:, int(label)], rows.lime_ratio, params, seed=seed,
                   uncertainty=not rows.exhaustive)
    std = fit.std if fit.std is not None or not rows.exhaustive else np.zeros(len(fit.coef))
    return fit.coef, std


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="lime", title="LIME", family="perturbation", order=10, default=True,
    scale_group="probability per superpixel",
    params_type=LimeParams, run=run_lime, refit=refit_lime, refit_std=refit_lime_std, design_share=0.0, contrast=True,
    description="Fits a weighted linear model (or lasso / tree) to the model's output on images with "
    "superpixels hidden; a segment's weight is how much showing it raises the score.",
))

__all__ = ["LimeParams", "SurrogateFit", "fit_lime", "lime_kernel", "run_lime", "weighted_ridge", "weighted_r2", "refit_lime", "refit_lime_std"]
