"""Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

Cascading model-parameter randomisation: starting from the top (the output layer), the weights
of one more layer after another are randomised, and each method's map of the label on the
randomised model is compared with its map on the trained model. A map that barely changes when
what the model learned is destroyed cannot be explaining what the model learned (an edge
detector would pass for a saliency method otherwise): such a method is flagged "does not depend
on what the model learned".

* **Never the cached model**: the randomised network is a copy (``keras.models.clone_model`` +
  ``set_weights``), wrapped in its own ``Classifier``; the original's weights are untouched
  (tested).
* **Randomisation**: the entries of every weight tensor of the layer are shuffled (seeded).
  The learned arrangement is gone while the scale of each tensor stays (a re-initialisation
  would change the scale, and BatchNorm variances stay positive).
* **Cascade points**: ``steps`` points from "top layer only" to "every layer", evenly spaced over
  the layers with weights in graph order (nested sub-models included), top-down.
* **Similarity** of the map to the original, per point: Spearman rank correlation and SSIM
  (``skimage.metrics.structural_similarity``) of the absolute maps (Adebayo et al. report the
  absolute value as the stricter test: a sign flip is not a new explanation), each scaled to
  [0, 1] by its maximum for SSIM. A constant map (nothing left to rank) counts as similarity 0.
* **Verdict**: a method passes when on the fully randomised model both similarities are below
  ``PASS_SIMILARITY`` (0.5).

The superpixel methods rerun on each randomised copy with ``samples`` fixed rows (default
min(the context's samples, 300)) and the same segments and seed, so only the model differs.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from explainers.base import Explanation, ExplainerError, ProgressFn

PASS_SIMILARITY = 0.5
"""Both similarities below this on the fully randomised model: the map depends on the weights."""

_SHUFFLE_KEY = 0x5A71
"""Second key of the seeded shuffles (seed, key, layer index)."""


@dataclass(frozen=True)
class SanityResult:
    """One method's similarity to its original map along the cascade (index i: ``layers[i]``)."""

    method: str
    spearman: tuple[float, ...]
    ssim: tuple[float, ...]
    passes: bool


@dataclass(frozen=True)
class SanityReport:
    """``cascading_randomization``'s result."""

    label: int
    layers: tuple[str, ...]  # at point i the weights of every layer down to layers[i] are random
    randomized: tuple[int, ...]  # how many weighted layers are random at point i
    total_layers: int
    methods: Mapping[str, SanityResult]
    model_calls: int
    seconds: float
    threshold: float = PASS_SIMILARITY

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: per method the similarity per layer and ``passes``."""
        return {
            "label": int(self.label),
            "layers": list(self.layers),
            "randomized_layers": [int(k) for k in self.randomized],
            "total_layers": int(self.total_layers),
            "threshold": float(self.threshold),
            "model_calls": int(self.model_calls),
            "methods": {
                name: {
                    "spearman": [_num(v) for v in r.spearman],
                    "ssim": [_num(v) for v in r.ssim],
                    "passes": bool(r.passes),
                }
                for name, r in self.methods.items()
            },
        }


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# ----------------------------------------------------------------------------- the copy
def weighted_layers(model: Any) -> list[tuple[str, Any]]:
    """(path, layer) of every layer holding weights, in graph order, recursing into sub-models."""
    import keras

    out: list[tuple[str, Any]] = []

    def walk(m: Any, prefix: str) -> None:
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer, prefix + layer.name + "/")
            elif layer.weights:
                out.append((prefix + layer.name, layer))

    walk(model, "")
    return out


def copy_model(model: Any) -> Any:
    """An independent copy of a Keras model with the same weights (the original is not touched)."""
    import keras

    try:
        clone = keras.models.clone_model(model)
    except Exception as exc:  # custom layers without get_config etc.
        raise ExplainerError(f"the sanity check cannot copy this model: {exc}") from None
    clone.set_weights(model.get_weights())
    return clone


def shuffle_layer(layer: Any, rng: np.random.Generator) -> None:
    """Shuffle the entries of each weight tensor of ``layer`` in place (on the copy)."""
    values = []
    for w in layer.get_weights():
        flat = np.array(w, copy=True).ravel()
        rng.shuffle(flat)
        values.append(flat.reshape(w.shape))
    layer.set_weights(values)


def cascade_points(total: int, steps: int) -> list[int]:
    """How many layers (from the top) are random at each point: 1 … total, ``steps`` points."""
    if total < 1:
        raise ExplainerError("the model has no layer with weights to randomise")
    steps = max(1, min(int(steps), total))
    return sorted({int(round(k)) for k in np.linspace(1, total, steps)})


@contextlib.contextmanager
def _quiet_retracing():
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _random_classifier(classifier: Any, model: Any, k: int) -> Any:
    from model_zoo.classifier import Classifier

    return Classifier(
        model, id=f"{classifier.id}:random-top-{k}", name=f"{classifier.name} (top {k} layers random)",
        labels=classifier.labels, preprocessing=classifier.preprocessing, output=classifier.output,
        cam_layer=classifier.cam_layer, batch_size=classifier.batch_size,
    )


# ----------------------------------------------------------------------------- similarity
def map_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Spearman, SSIM) of two maps' absolute values; 0 where one of them is constant."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    a = np.abs(np.asarray(a, dtype=np.float64))
    b = np.abs(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ExplainerError(f"maps differ in shape: {a.shape} vs {b.shape}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        same = bool(np.array_equal(a, b))
        return (1.0, 1.0) if same else (0.0, 0.0)
    rho = float(spearmanr(a.ravel(), b.ravel()).statistic)
    win = min(7, *a.shape)
    win -= 1 - win % 2  # odd window, at most the image side
    ssim = float(structural_similarity(a / a.max(), b / b.max(), data_range=1.0, win_size=max(win, 3)))
    return rho, ssim


# ----------------------------------------------------------------------------- the check
def cascading_randomization(
    ctx: Any,
    methods: Sequence[str] | Mapping[str, Any],
    label: int,
    *,
    steps: int = 5,
    samples: int | None = None,
    seed: int | None = None,
    originals: Sequence[Explanation] = (),
    progress: ProgressFn | None = None,
) -> SanityReport:
    """Randomise the weights of a copy of ``ctx``'s model top-down and compare each method's map.

    ``methods``: names or {name: params}; ``originals``: explanations of ``label`` already
    computed on ``ctx`` (the others are computed first). ``steps`` cascade points (the last one
    randomises every layer with weights); ``samples`` the fixed rows of the superpixel methods'
    reruns; ``seed`` of the shuffles (default the context's).
    """
    from explainers.context import ExplainContext, SamplingParams
    from explainers.runner import run_method

    started = time.perf_counter()
    label = int(label)
    if not isinstance(methods, Mapping):
        methods = {name: None for name in methods}
    if not methods:
        raise ExplainerError("no method to check")
    if not 1 <= int(steps) <= 100:
        raise ExplainerError(f"steps must be between 1 and 100, not {steps}")
    seed = ctx.seed if seed is None else int(seed)
    n = int(samples or min(ctx.sample_count(), 300))
    given = {r.method: r for r in originals if r.label == label}
    original = {}
    for name, params in methods.items():
        original[name] = given.get(name) or run_method(ctx, name, params, [label])[0]

    classifier = ctx.classifier
    layers = weighted_layers(classifier.model)
    points = cascade_points(len(layers), steps)
    copy = copy_model(classifier.model)
    copy_layers = weighted_layers(copy)
    top_down = list(reversed(copy_layers))
    calls = 0
    sims: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    done = 0
    for i, k in enumerate(points):
        if progress is not None:
            progress(i, len(points), f"sanity: randomising the top {k} of {len(layers)} layers")
        for j in range(done, k):  # cumulative: one more layer after another
            shuffle_layer(top_down[j][1], np.random.default_rng([seed, _SHUFFLE_KEY, j]))
        done = k
        with _quiet_retracing():  # each copy traces its own functions: TensorFlow warns, expectedly
            rand = _random_classifier(classifier, copy, k)
        sub = ExplainContext(
            rand, ctx.image, seed=ctx.seed, segmentation=ctx.segmentation,
            segmentation_params=ctx.segmentation_params,
            sampling=SamplingParams(samples=n, fill=ctx.sampling.fill, batch_size=ctx.sampling.batch_size),
            regions=getattr(ctx, "regions", None), kernel_share=getattr(ctx, "kernel_share", None),
        )
        sub.cache["segments"] = ctx.segments()
        for name, params in methods.items():
            with _quiet_retracing():
                (result,) = run_method(sub, name, params, [label])
            sims[name].append(map_similarity(original[name].heatmap, result.heatmap))
        calls += int(rand.images_seen)
    if progress is not None:
        progress(len(points), len(points), "sanity: done")
    results = {}
    for name, pairs in sims.items():
        rho = tuple(p[0] for p in pairs)
        ssim = tuple(p[1] for p in pairs)
        passes = bool(rho[-1] < PASS_SIMILARITY and ssim[-1] < PASS_SIMILARITY)
        results[name] = SanityResult(name, rho, ssim, passes)
    return SanityReport(
        label=label,
        layers=tuple(top_down[k - 1][0] for k in points),
        randomized=tuple(points),
        total_layers=len(layers),
        methods=results,
        model_calls=calls,
        seconds=time.perf_counter() - started,
    )


SANITY_FAIL = "does not depend on what the model learned"


def sanity_badges(report: SanityReport) -> dict[str, str]:
    """A verdict per method for the badges."""
    out = {}
    for name, r in report.methods.items():
        if r.passes:
            out[name] = "passes the sanity check: its map changes when the weights are randomised"
        else:
            out[name] = (f"{SANITY_FAIL} (map on the randomised model still similar: "
                         f"Spearman {r.spearman[-1]:.2f}, SSIM {r.ssim[-1]:.2f})")
    return out


__all__ = [
    "SanityResult", "SanityReport", "cascading_randomization", "sanity_badges", "map_similarity",
    "weighted_layers", "copy_model", "shuffle_layer", "cascade_points", "PASS_SIMILARITY", "SANITY_FAIL",
]
