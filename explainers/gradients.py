"""Input-gradient attributions: Saliency, SmoothGrad, Integrated Gradients, GradientSHAP.

All four ask ``classifier.gradients(points, labels, layer=INPUT_LAYER)`` for the gradient of the
*pre-softmax* score of each label with respect to the RGB pixels (0..255, preprocessing
included), in chunks of the classifier's batch size; every label comes from the same forward
passes (one backward pass per label). Gradients are summed chunk by chunk, so memory stays at
one chunk whatever the number of samples or steps.

Heatmaps (image resolution, unnormalised):

- Saliency (Simonyan et al. 2014): ``max_c |∂S/∂x_c|`` over the colour channels -- unsigned, the
  paper's definition: how sensitive the score is to each pixel, not in which direction.
- SmoothGrad (Smilkov et al. 2017): the gradient averaged over ``samples`` noisy copies of the
  image (Gaussian noise, sigma = ``noise`` × the image's value range), then shown like Saliency
  (``max_c |·|``), so SmoothGrad with noise 0 is exactly Saliency.
- Integrated Gradients (Sundararajan et al. 2017): ``(x − x') ⊙ ∫ ∇S`` along the straight path
  from a black or blurred baseline ``x'``, trapezoid rule over ``steps`` intervals; the heatmap
  is the attribution summed over channels (signed). ``extras["completeness_gap"]`` is
  ``|Σ attribution − (S(x) − S(x'))| / |S(x) − S(x')|``: small means enough steps.
- GradientSHAP (Lundberg & Lee 2017, "expected gradients"): the mean over ``samples`` random
  baselines ``b`` (black, blurred or uniform noise) and random points ``b + α(x − b)``,
  ``α ~ U(0, 1)``, of ``(x − b) ⊙ ∇S``; summed over channels (signed).

Randomness comes from ``numpy.random.default_rng((ctx.seed, <method id>))``: the same seed gives
the same map. ``model_calls`` follows the convention in ``explainers.cam`` (images actually sent
through the model, on the first result of a call).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from explainers.base import Explanation, ExplainerError, MethodSpec, Timer, param, params_dict, register
from explainers.cam import label_probability, probabilities_from_scores
from explainers.protocol import INPUT_LAYER

IG_BASELINES = ("black", "blur")
SHAP_BASELINES = ("mixed", "black", "blur", "noise")

# Distinct streams for each method's random numbers under one context seed.
_SEED_SMOOTHGRAD = 101
_SEED_GRADIENT_SHAP = 102


# ---------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class SaliencyParams:
    """Vanilla gradient saliency has no parameters."""


@dataclass(frozen=True)
class SmoothGradParams:
    samples: int = param(16, low=1, high=1024, help="noisy copies averaged")
    noise: float = param(0.15, low=0.0, high=1.0, help="noise sigma as a fraction of the image's value range")


@dataclass(frozen=True)
class IntegratedGradientsParams:
    steps: int = param(32, low=1, high=2048, help="points on the path from the baseline to the image")
    baseline: str = param("black", choices=IG_BASELINES, help="where the path starts")
    blur_sigma: float = param(16.0, above=0.0, high=1000.0, help="pixels, for the blurred baseline")


@dataclass(frozen=True)
class GradientShapParams:
    samples: int = param(16, low=1, high=1024, help="random baselines and points")
    baseline: str = param("mixed", choices=SHAP_BASELINES, help="mixed: each sample draws black, blur or noise")
    blur_sigma: float = param(16.0, above=0.0, high=1000.0, help="pixels, for blurred baselines")


# ---------------------------------------------------------------------- shared machinery
def _check_gradients(ctx: Any) -> None:
    if not getattr(ctx.classifier, "supports_gradients", True):
        raise ExplainerError("this model does not give gradients; gradient methods need them")


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred copy of ``image`` as float32 0..255 (a baseline without detail)."""
    from skimage.filters import gaussian

    return gaussian(
        image.astype(np.float32), sigma=float(sigma), channel_axis=-1, preserve_range=True,
        mode="nearest",
    ).astype(np.float32)


ChunkFn = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


def weighted_gradients(
    ctx: Any, n: int, chunk: ChunkFn, labels: list[int], stage: str
) -> tuple[np.ndarray, np.ndarray]:
    """``Σ_i m_i ⊙ ∇_x S_label(p_i)`` for each label, and the scores of every point.

    ``chunk(start, stop)`` returns the points ``p`` (b, H, W, 3) float32 and their multipliers
    ``m`` (broadcastable to (b, H, W, 3)). Returns ((L, H, W, 3) float64, (n, C) scores).
    """
    classifier = ctx.classifier
    bs = max(1, int(classifier.batch_size))
    h, w = ctx.image.shape[:2]
    total = np.zeros((len(labels), h, w, 3), dtype=np.float64)
    scores = np.empty((n, classifier.num_classes), dtype=np.float32)
    ctx.report(0, n, stage)
    for start in range(0, n, bs):
        stop = min(n, start + bs)
        points, mult = chunk(start, stop)
        _, s, g = classifier.gradients(points, labels, layer=INPUT_LAYER)
        scores[start:stop] = s
        if labels:
            g = np.asarray(g, dtype=np.float32)
            mult = np.asarray(mult, dtype=np.float32)
            if mult.size == len(g):  # one scalar per point: no (b, H, W, 3) temporary
                total += np.tensordot(mult.reshape(-1), g, axes=(0, 0))
            else:
                total += np.einsum("blhwc,bhwc->lhwc", g, np.broadcast_to(mult, points.shape))
        ctx.report(stop, n, stage)
    return total, scores


def _explanation(
    ctx: Any,
    method: str,
    label: int,
    score: float,
    heatmap: np.ndarray,
    calls: int,
    seconds: float,
    params: Any,
    extras: dict[str, Any],
) -> Explanation:
    return Explanation(
        method=method,
        label=int(label),
        label_name=ctx.label_name(int(label)),
        score=float(score),
        heatmap=heatmap.astype(np.float32),
        model_calls=int(calls),
        seconds=seconds,
        params=params_dict(params),
        extras=extras,
    )


def _clean_probability(ctx: Any, label: int) -> tuple[float, int]:
    """The label's probability for the unperturbed image and the model calls it took (0 or 1)."""
    had = "probs" in ctx.cache
    return label_probability(ctx, label), 0 if had else 1


# ---------------------------------------------------------------------- methods
def run_saliency(ctx: Any, params: SaliencyParams, labels: list[int]) -> list[Explanation]:
    """``max_c |∂S/∂x_c|``: one forward pass and one backward pass per label."""
    _check_gradients(ctx)
    labels = [int(c) for c in labels]
    x = ctx.image.astype(np.float32)[None]
    with Timer() as timer:
        total, scores = weighted_gradients(
            ctx, 1, lambda a, b: (x, np.ones((1, 1, 1, 1), np.float32)), labels, "Saliency"
        )
        maps = np.abs(total).max(axis=-1)
    probs = ctx.cache.get("probs")
    if probs is None:
        probs = probabilities_from_scores(ctx.classifier, scores[0])
    return [
        _explanation(ctx, "saliency", c, probs[c], maps[i], 1 if i == 0 else 0, timer.seconds,
                     params, {"shared_calls": 1})
        for i, c in enumerate(labels)
    ]


def run_smoothgrad(ctx: Any, params: SmoothGradParams, labels: list[int]) -> list[Explanation]:
    """Saliency of the gradient averaged over noisy copies of the image (seeded)."""
    _check_gradients(ctx)
    labels = [int(c) for c in labels]
    n = int(params.samples)
    image = ctx.image.astype(np.float32)
    span = float(image.max() - image.min()) or 255.0
    sigma = float(params.noise) * span
    rng = np.random.default_rng((ctx.seed, _SEED_SMOOTHGRAD))

    def chunk(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        noise = rng.normal(0.0, 1.0, size=(stop - start,) + image.shape).astype(np.float32)
        return image[None] + sigma * noise, np.full((stop - start, 1, 1, 1), 1.0 / n, np.float32)

    with Timer() as timer:
        total, _ = weighted_gradients(ctx, n, chunk, labels, "SmoothGrad")
        maps = np.abs(total).max(axis=-1)
        scored = [_clean_probability(ctx, c) for c in labels]
    extra_call = scored[0][1] if scored else 0
    return [
        _explanation(ctx, "smoothgrad", c, scored[i][0], maps[i], (n + extra_call) if i == 0 else 0,
                     timer.seconds, params, {"shared_calls": n, "sigma": sigma})
        for i, c in enumerate(labels)
    ]


def run_integrated_gradients(
    ctx: Any, params: IntegratedGradientsParams, labels: list[int]
) -> list[Explanation]:
    """Integrated Gradients along the straight path from the baseline (trapezoid rule)."""
    _check_gradients(ctx)
    labels = [int(c) for c in labels]
    steps = int(params.steps)
    x = ctx.image.astype(np.float32)
    base = np.zeros_like(x) if params.baseline == "black" else blurred(ctx.image, params.blur_sigma)
    diff = x - base
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float64)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] = 0.5 / steps

    def chunk(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        a = alphas[start:stop, None, None, None]
        points = (base[None] + a * diff[None]).astype(np.float32)
        points[a[:, 0, 0, 0] == 1.0] = x  # the end point is the image itself, exactly
        return points, weights[start:stop, None, None, None]

    with Timer() as timer:
        total, scores = weighted_gradients(ctx, steps + 1, chunk, labels, "Integrated gradients")
        attributions = total * diff[None].astype(np.float64)  # (L, H, W, 3)
    probs = ctx.cache.get("probs")
    if probs is None:
        probs = probabilities_from_scores(ctx.classifier, scores[-1])
    results = []
    for i, c in enumerate(labels):
        delta = float(scores[-1, c]) - float(scores[0, c])
        summed = float(attributions[i].sum())
        gap = abs(summed - delta) / max(abs(delta), 1e-6)
        extras = {
            "completeness_gap": gap,
            "attribution_sum": summed,
            "input_score": float(scores[-1, c]),
            "baseline_score": float(scores[0, c]),
            "shared_calls": steps + 1,
        }
        results.append(
            _explanation(ctx, "integrated_gradients", c, probs[c], attributions[i].sum(axis=-1),
                         (steps + 1) if i == 0 else 0, timer.seconds, params, extras)
        )
    return results


def run_gradient_shap(ctx: Any, params: GradientShapParams, labels: list[int]) -> list[Explanation]:
    """Expected gradients over random baselines and random points on the path (seeded)."""
    _check_gradients(ctx)
    labels = [int(c) for c in labels]
    n = int(params.samples)
    x = ctx.image.astype(np.float32)
    rng = np.random.default_rng((ctx.seed, _SEED_GRADIENT_SHAP))
    kinds = (
        rng.choice(["black", "blur", "noise"], size=n)
        if params.baseline == "mixed"
        else np.array([params.baseline] * n)
    )
    alphas = rng.uniform(0.0, 1.0, size=n)
    blur = blurred(ctx.image, params.blur_sigma) if "blur" in kinds else None

    def baseline(kind: str) -> np.ndarray:
        if kind == "black":
            return np.zeros_like(x)
        if kind == "blur":
            return blur
        return rng.uniform(0.0, 255.0, size=x.shape).astype(np.float32)

    def chunk(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        bases = np.stack([baseline(k) for k in kinds[start:stop]])
        diffs = x[None] - bases
        a = alphas[start:stop, None, None, None].astype(np.float32)
        return bases + a * diffs, diffs / n

    with Timer() as timer:
        total, _ = weighted_gradients(ctx, n, chunk, labels, "GradientSHAP")
        maps = total.sum(axis=-1)
        scored = [_clean_probability(ctx, c) for c in labels]
    extra_call = scored[0][1] if scored else 0
    counts = {k: int((kinds == k).sum()) for k in ("black", "blur", "noise") if (kinds == k).any()}
    return [
        _explanation(ctx, "gradient_shap", c, scored[i][0], maps[i],
                     (n + extra_call) if i == 0 else 0, timer.seconds, params,
                     {"shared_calls": n, "baselines": counts})
        for i, c in enumerate(labels)
    ]


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="saliency", title="Saliency", family="gradient", order=60, signed=False,
    params_type=SaliencyParams, run=run_saliency, needs_gradients=True,
    description="Largest absolute gradient of the class score over the colour channels.",
))
register(MethodSpec(
    name="smoothgrad", title="SmoothGrad", family="gradient", order=61, signed=False,
    params_type=SmoothGradParams, run=run_smoothgrad, needs_gradients=True,
    test_params={"samples": 4},
    description="Saliency of the gradient averaged over noisy copies of the image.",
))
register(MethodSpec(
    name="integrated_gradients", title="Integrated Gradients", family="gradient", order=62,
    params_type=IntegratedGradientsParams, run=run_integrated_gradients, needs_gradients=True,
    test_params={"steps": 8},
    description="Gradients integrated from a black or blurred baseline to the image; the "
    "attributions add up to the score difference.",
))
register(MethodSpec(
    name="gradient_shap", title="GradientSHAP", family="gradient", order=63,
    params_type=GradientShapParams, run=run_gradient_shap, needs_gradients=True,
    test_params={"samples": 4},
    description="Expected gradients over random baselines and points between them and the image.",
))

__all__ = [
    "SaliencyParams",
    "SmoothGradParams",
    "IntegratedGradientsParams",
    "GradientShapParams",
    "weighted_gradients",
    "blurred",
    "run_saliency",
    "run_smoothgrad",
    "run_integrated_gradients",
    "run_gradient_shap",
]
