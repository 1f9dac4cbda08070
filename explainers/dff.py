"""Deep Feature Factorization (Collins, Achanta & Süsstrunk 2018): concepts a layer has found.

The feature maps ``A`` (h, w, C) of one conv layer are a non-negative matrix of C channels by
h·w positions. scikit-learn's NMF factorises it into K concepts, ``A ≈ W H``: column ``k`` of
``W`` (C,) is concept k's *embedding* (which channels fire together) and row ``k`` of ``H``
(h·w,) is where in the image it is present. Each concept is then shown as a coloured region
(``extras["concept_regions"]``: the strongest concept at each pixel) with its top categories:
the class scores the network above the layer gives a feature map holding the concept's
embedding at every position (``Classifier.head_scores``; for the usual global-pooling heads this
is the head applied to the embedding, as in jacobgil/pytorch-grad-cam's ``dff``).

Scale: NMF leaves a scale free between ``W`` and ``H``; each ``H`` row is scaled to peak at 1
and its ``W`` column by the inverse, so an embedding is "the activations at a pixel where the
concept is fully present". Layers with negative activations (no ReLU) are shifted per channel
by their minimum before the factorisation and the shift is added back to the embeddings (what
pytorch-grad-cam does).

The one ``Explanation`` per label: the heatmap is the map of the concept most associated with
the label (the highest probability of the label among the concepts' head outputs), times that
probability; every concept's map is in ``extras["concept_maps"]`` (K, H, W) float32, its top
categories in ``extras["concept_top"]`` and the label's probability under each concept in
``extras["concept_label_probability"]``. Model calls: the shared CAM layer pass (one image,
reused with Grad-CAM & co.) plus K images for the concept head scores.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.base import (
    Explanation,
    ExplainerError,
    MethodSpec,
    Timer,
    param,
    params_dict,
    register,
    upsample,
)
from explainers.cam import CamParams, label_probability, layer_pass, probabilities_from_scores, resolve_layer

MAX_CONCEPTS = 16


@dataclass(frozen=True)
class DffParams(CamParams):
    """How many concepts to find and how many categories to name per concept."""

    concepts: int = param(4, low=2, high=MAX_CONCEPTS, help="concepts found by the factorisation")
    top_categories: int = param(3, low=1, high=20, help="categories named per concept")
    max_iter: int = param(400, low=10, high=10_000, help="NMF iterations")


@dataclass(frozen=True)
class Factorization:
    """``A (h·w, C) ≈ maps.T @ embeddings`` (after the per-channel shift)."""

    maps: np.ndarray  # (K, h, w) float32, each row peaks at 1 (or is all zero)
    embeddings: np.ndarray  # (K, C) float32, with the shift added back
    offset: np.ndarray  # (C,) per-channel shift subtracted before NMF (0 for ReLU layers)
    reconstruction_error: float  # relative Frobenius error of the factorisation


def factorize(features: np.ndarray, k: int, seed: int = 0, max_iter: int = 400) -> Factorization:
    """NMF of a (h, w, C) feature map into ``k`` concepts (seeded, deterministic)."""
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    features = np.asarray(features, dtype=np.float64)
    h, w, c = features.shape
    if k > h * w:
        raise ExplainerError(
            f"the layer has only {h}×{w} = {h * w} positions; ask for at most {h * w} concepts "
            "or choose an earlier layer"
        )
    x = features.reshape(h * w, c)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    offset = np.minimum(x.min(axis=0), 0.0)
    x = x - offset
    if not np.any(x > 0):
        raise ExplainerError("the layer's activations are all zero for this image; no concepts to find")
    model = NMF(n_components=int(k), init="nndsvda", random_state=int(seed), max_iter=int(max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        spatial = model.fit_transform(x)  # (h·w, K)
    emb = model.components_  # (K, C)
    peak = spatial.max(axis=0)
    scale = np.where(peak > 0, peak, 1.0)
    spatial = spatial / scale
    emb = emb * scale[:, None]
    error = float(np.linalg.norm(x - spatial @ emb) / max(np.linalg.norm(x), 1e-12))
    return Factorization(
        maps=spatial.T.reshape(k, h, w).astype(np.float32),
        embeddings=(emb + offset).astype(np.float32),
        offset=offset.astype(np.float32),
        reconstruction_error=error,
    )


def concept_regions(maps: np.ndarray) -> np.ndarray:
    """(H, W) int32: the strongest concept at each pixel, −1 where no concept is present."""
    maps = np.asarray(maps)
    regions = np.argmax(maps, axis=0).astype(np.int32)
    regions[maps.max(axis=0) <= 0] = -1
    return regions


def _concept_pass(ctx: Any, params: DffParams) -> tuple[dict[str, Any], int, int]:
    """Factorisation + concept probabilities, cached per (layer, K, iterations, seed)."""
    layer = resolve_layer(ctx.classifier, params.layer)
    key = ("dff", layer, int(params.concepts), int(params.max_iter), params.upsampling, ctx.seed)
    entry, calls = layer_pass(ctx, layer, [])
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached, calls, entry.calls
    k = int(params.concepts)
    ctx.report(0, 2, "Deep Feature Factorization: NMF")
    fact = factorize(entry.features, k, seed=ctx.seed, max_iter=int(params.max_iter))
    h, w = entry.features.shape[:2]
    tiled = np.broadcast_to(fact.embeddings[:, None, None, :], (k, h, w, fact.embeddings.shape[1]))
    ctx.report(1, 2, "Deep Feature Factorization: concept categories")
    scores = ctx.classifier.head_scores(np.repeat(ctx.image[None], k, axis=0), tiled, layer=layer)
    calls += k
    probs = probabilities_from_scores(ctx.classifier, scores)  # (K, C)
    maps = np.stack([upsample(m, ctx.image.shape[:2], params.upsampling) for m in fact.maps])
    maps = np.maximum(maps, 0.0)  # bicubic overshoot must not invent negative presence
    out = {
        "layer": layer,
        "factorization": fact,
        "probs": probs.astype(np.float32),
        "maps": maps.astype(np.float32),
        "regions": concept_regions(maps),
        "calls": entry.calls + k,
        "scores": entry.scores,
    }
    ctx.cache[key] = out
    ctx.report(2, 2, "Deep Feature Factorization: done")
    return out, calls, entry.calls


def run_dff(ctx: Any, params: DffParams, labels: list[int]) -> list[Explanation]:
    """One Explanation per label from one factorisation: the label's concept as the heatmap."""
    with Timer() as timer:
        found, calls, _ = _concept_pass(ctx, params)
    probs = found["probs"]
    top_n = min(int(params.top_categories), probs.shape[1])
    top = [
        [(int(c), ctx.label_name(int(c)), float(p[c])) for c in np.argsort(-p, kind="stable")[:top_n]]
        for p in probs
    ]
    fact: Factorization = found["factorization"]
    results = []
    for i, label in enumerate(labels):
        assoc = probs[:, int(label)]
        best = int(np.argmax(assoc))
        results.append(
            Explanation(
                method="dff",
                label=int(label),
                label_name=ctx.label_name(int(label)),
                score=label_probability(ctx, int(label), found["scores"]),
                heatmap=found["maps"][best] * float(assoc[best]),
                model_calls=calls if i == 0 else 0,
                seconds=timer.seconds,
                params=params_dict(params),
                extras={
                    "layer": found["layer"],
                    "concept": best,
                    "concept_maps": found["maps"],
                    "concept_regions": found["regions"],
                    "concept_top": top,
                    "concept_label_probability": assoc.astype(np.float32),
                    "low_res_shape": tuple(int(s) for s in fact.maps.shape[1:]),
                    "reconstruction_error": fact.reconstruction_error,
                    "shared_calls": int(found["calls"]),
                },
            )
        )
    return results


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="dff", title="Concepts (DFF)", family="cam", order=37, signed=False,
    params_type=DffParams, run=run_dff, needs_feature_maps=True,
    description="Deep Feature Factorization: splits a layer's activations into K concepts "
    "(non-negative matrix factorisation), each a coloured region with the categories the "
    "network gives it; the map is the concept most associated with the label.",
))

__all__ = ["DffParams", "Factorization", "factorize", "concept_regions", "run_dff"]
