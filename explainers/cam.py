"""Class activation maps: Grad-CAM and its family, from one shared forward pass.

Every gradient CAM variant needs the same two things: the feature maps ``A`` (h, w, K) of one
layer and, for each explained label, ``g = d score / d A`` taken on the *pre-softmax* score
(saturated softmax gives blank maps). ``layer_pass`` gets them from
``classifier.gradients(image[None], labels, layer)`` -- one forward pass, one backward pass per
label through the part of the network above the layer -- and keeps them in ``ctx.cache`` so
that Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM and HiResCAM on one context cost a single image
through the model. The variants differ only in how ``A`` and ``g`` are combined (the small
``_*_map`` functions below, following jacobgil/pytorch-grad-cam without its per-image
normalisation).

Heatmap convention: the method's map at image resolution, *never* normalised per image. Every
method here except Eigen-CAM defines a final ReLU, and the heatmap is the map after that ReLU
(so it is >= 0); the map before the ReLU is kept in ``extras["low_res_signed"]`` at the layer's
resolution, next to ``extras["low_res"]`` (after the ReLU). Eigen-CAM is a signed projection
and stays signed.

Model-call accounting (shared by the cam, occlusion and gradients modules):
``Explanation.model_calls`` counts the images this call actually sent through the model,
attributed to the first result of the call, so summing ``model_calls`` over every result gives
the real cost; a result that reused shared work reports 0 and says in
``extras["shared_calls"]`` how many images the shared work it used took. ``seconds`` is the wall
time of the whole call, on every result of that call.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from explainers.base import (
    Explanation,
    ExplainerError,
    MethodSpec,
    Timer,
    get_method,
    param,
    params_dict,
    register,
    upsample,
)

UPSAMPLING = ("nearest", "bilinear", "bicubic")


# ---------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class CamParams:
    """Parameters shared by every CAM method."""

    layer: str = param("", help='the conv layer ("" = the classifier\'s default CAM layer; nested as "base/conv2")')
    upsampling: str = param("bilinear", choices=UPSAMPLING, help="how the coarse map is resized to the image")

    def validate(self) -> None:
        if not isinstance(self.layer, str):
            raise ExplainerError("layer must be a layer name (text), e.g. 'conv5_block3_out'")


@dataclass(frozen=True)
class ScoreCamParams(CamParams):
    """Score-CAM: one masked image per channel, so the number of channels bounds the cost."""

    max_channels: int = param(256, low=1, high=4096, help="the channels with the highest mean activation are used")
    batch_size: int = param(32, low=1, high=1024, help="masked images per model call")


# ---------------------------------------------------------------------- shared helpers
def probabilities_from_scores(classifier: Any, scores: np.ndarray) -> np.ndarray:
    """Probabilities from the classifier's pre-softmax scores (no extra model call).

    ``Classifier.gradients`` returns logits for softmax/logit models, ``[0, z]`` for single
    sigmoid units (softmax of which is ``[1 - σ(z), σ(z)]``) and ``log p`` for models that
    already output probabilities.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if getattr(classifier, "output", None) == "probabilities":
        return np.exp(scores).astype(np.float32)
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def label_probability(ctx: Any, label: int, scores: np.ndarray | None = None) -> float:
    """The model's probability of ``label`` for the explained image, without a new call when
    the context already has it or ``scores`` (pre-softmax, (C,)) are given."""
    probs = ctx.cache.get("probs")
    if probs is None:
        probs = (
            probabilities_from_scores(ctx.classifier, scores)
            if scores is not None
            else ctx.probabilities()
        )
    return float(probs[label])


def resolve_layer(classifier: Any, layer: str = "") -> str:
    """The layer path to use: ``layer`` checked against the model's 4-D layers, or the default."""
    if not getattr(classifier, "supports_gradients", True):
        raise ExplainerError("this model does not give gradients; CAM methods need them")
    if not layer:
        if classifier.cam_layer is None:
            raise ExplainerError(
                "this model has no convolutional (4-D) layer, so CAM methods cannot explain it"
            )
        return classifier.cam_layer
    paths = [info.path for info in classifier.conv_layers]
    if layer in paths:
        return layer
    close = difflib.get_close_matches(layer, paths, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else (
        "the last ones are " + ", ".join(paths[-3:]) if paths else "the model has none"
    )
    raise ExplainerError(
        f"layer {layer!r} is not a convolutional (4-D) layer of this model; {hint}"
    )


@dataclass
class LayerPass:
    """Feature maps of one layer for the explained image, and d score / d features per label."""

    layer: str
    features: np.ndarray  # (h, w, K) float32
    scores: np.ndarray  # (C,) pre-softmax scores of the explained image
    grads: dict[int, np.ndarray] = field(default_factory=dict)  # label -> (h, w, K)
    calls: int = 0  # images sent through the model to build this entry


def layer_pass(ctx: Any, layer: str, labels: Sequence[int]) -> tuple[LayerPass, int]:
    """The cached pass for ``layer`` holding gradients for ``labels``; returns (pass, new calls).

    Cached per layer in ``ctx.cache[("cam", layer)]``; a request for labels not in the cache
    runs one more forward pass with backward passes for the missing labels only.
    """
    key = ("cam", layer)
    entry: LayerPass | None = ctx.cache.get(key)
    missing = [int(c) for c in dict.fromkeys(labels) if entry is None or int(c) not in entry.grads]
    if entry is not None and not missing:
        return entry, 0
    feats, scores, grads = ctx.classifier.gradients(ctx.image[None], missing, layer=layer)
    feats = np.asarray(feats[0], dtype=np.float32)
    if feats.ndim != 3:
        raise ExplainerError(
            f"layer {layer!r} outputs shape {feats.shape}; CAM methods need a (height, width, "
            "channels) feature map"
        )
    if entry is None:
        entry = LayerPass(layer, feats, np.asarray(scores[0], dtype=np.float32))
        ctx.cache[key] = entry
    for i, label in enumerate(missing):
        entry.grads[label] = np.asarray(grads[0, i], dtype=np.float32)
    entry.calls += 1
    return entry, 1


# ---------------------------------------------------------------------- the variants
# Each takes A (h, w, K) and g (h, w, K) as float64 and returns the signed map (h, w) before
# the final ReLU.
def _gradcam_map(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): channel weights = spatial mean of the gradient."""
    return a @ g.mean(axis=(0, 1))


def _gradcam_pp_map(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Grad-CAM++ (Chattopadhay et al. 2018), closed form with the exp(score) approximation:
    alpha_ij = g_ij² / (2 g_ij² + Σ_ab A_ab · g_ij³), weights = Σ_ij alpha_ij relu(g_ij)."""
    g2 = g * g
    denom = 2.0 * g2 + a.sum(axis=(0, 1)) * g2 * g
    alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
    return a @ (alpha * np.maximum(g, 0.0)).sum(axis=(0, 1))


def _xgradcam_map(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """XGrad-CAM (Fu et al. 2020): weights = Σ_ij A_ij g_ij / Σ_ij A_ij."""
    num = (a * g).sum(axis=(0, 1))
    den = a.sum(axis=(0, 1))
    weights = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return a @ weights


def _layercam_map(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """LayerCAM (Jiang et al. 2021): Σ_k relu(g_k) ⊙ A_k, element-wise weights."""
    return (np.maximum(g, 0.0) * a).sum(axis=-1)


def _hirescam_map(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """HiResCAM (Draelos & Carin 2020): Σ_k g_k ⊙ A_k, faithful to the score for GAP heads."""
    return (g * a).sum(axis=-1)


GRADIENT_CAMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "gradcam": _gradcam_map,
    "gradcam_pp": _gradcam_pp_map,
    "xgradcam": _xgradcam_map,
    "layercam": _layercam_map,
    "hirescam": _hirescam_map,
}
"""How each gradient CAM combines activations and gradients (its facts are in its registration)."""


def _finish(
    ctx: Any,
    method: str,
    label: int,
    score: float,
    low: np.ndarray,
    relu: bool,
    params: CamParams,
    layer: str,
    calls: int,
    shared_calls: int,
    seconds: float,
    extras: dict[str, Any] | None = None,
    contrast: int | None = None,
    scores: np.ndarray | None = None,
) -> Explanation:
    low_signed = np.asarray(low, dtype=np.float32)
    low_map = np.maximum(low_signed, 0.0) if relu else low_signed
    heatmap = upsample(low_map, ctx.image.shape[:2], params.upsampling)
    more = {
        "layer": layer,
        "low_res_shape": tuple(int(s) for s in low_map.shape),
        "low_res": low_map,
        "low_res_signed": low_signed,
        "relu": relu,
        "shared_calls": int(shared_calls),
    }
    more.update(extras or {})
    if contrast is not None:
        more.update(contrast_name=ctx.label_name(int(contrast)),
                    contrast_score=label_probability(ctx, int(contrast), scores))
    return Explanation(
        method=method,
        label=int(label),
        label_name=ctx.label_name(int(label)),
        score=score,
        heatmap=heatmap,
        model_calls=int(calls),
        seconds=seconds,
        params=params_dict(params),
        extras=more,
        contrast=contrast,
    )


def _gradient_cam(name: str) -> Callable[[Any, CamParams, list[int]], list[Explanation]]:
    combine = GRADIENT_CAMS[name]

    def run(ctx: Any, params: CamParams, labels: list[int], contrast: int | None = None) -> list[Explanation]:
        with Timer() as timer:
            layer = resolve_layer(ctx.classifier, params.layer)
            ctx.report(0, 1, f"{get_method(name).title}: forward and backward pass")
            wanted = list(labels) + ([] if contrast is None else [int(contrast)])
            entry, calls = layer_pass(ctx, layer, wanted)
            a = entry.features.astype(np.float64)
            # d(score A − score B)/dA = gA − gB: the contrast needs no other pass
            other = 0.0 if contrast is None else entry.grads[int(contrast)].astype(np.float64)
            maps = [combine(a, entry.grads[int(c)].astype(np.float64) - other) for c in labels]
            ctx.report(1, 1, f"{get_method(name).title}: done")
        return [
            _finish(
                ctx, name, c, label_probability(ctx, c, entry.scores), m, True, params, layer,
                calls if i == 0 else 0, entry.calls, timer.seconds, contrast=contrast, scores=entry.scores,
            )
            for i, (c, m) in enumerate(zip(labels, maps))
        ]

    run.__name__ = f"run_{name}"
    run.__doc__ = f"{name} for each label, from the shared layer pass."
    return run


# ---------------------------------------------------------------------- Eigen-CAM
def eigen_map(features: np.ndarray) -> np.ndarray:
    """First principal component of the feature maps (pixels as samples, channels as
    features), projected back onto each pixel. The sign of a principal component is arbitrary;
    it is fixed so that the map correlates positively with the mean activation."""
    h, w, k = features.shape
    x = features.reshape(h * w, k).astype(np.float64)
    centred = x - x.mean(axis=0)
    if not np.any(centred):
        return np.zeros((h, w), dtype=np.float32)
    # The top eigenvector of the smaller Gram matrix gives the same projection as an SVD and
    # is much faster here (LAPACK's SVD of a 49×1280 matrix took 0.06–1.4 s on 2 busy cores).
    if centred.shape[0] <= centred.shape[1]:
        vals, vecs = np.linalg.eigh(centred @ centred.T)  # pixels × pixels
        proj = vecs[:, -1] * np.sqrt(max(float(vals[-1]), 0.0))
    else:
        _, vecs = np.linalg.eigh(centred.T @ centred)  # channels × channels
        proj = centred @ vecs[:, -1]
    mean_act = x.mean(axis=1)
    if np.dot(proj - proj.mean(), mean_act - mean_act.mean()) < 0:
        proj = -proj
    return proj.reshape(h, w).astype(np.float32)


def run_eigencam(ctx: Any, params: CamParams, labels: list[int]) -> list[Explanation]:
    """Eigen-CAM (Muhammad & Yeasin 2020): class-agnostic, feature maps only, no gradients."""
    with Timer() as timer:
        layer = resolve_layer(ctx.classifier, params.layer)
        entry, calls = layer_pass(ctx, layer, [])
        low = eigen_map(entry.features)
    return [
        _finish(
            ctx, "eigencam", c, label_probability(ctx, c, entry.scores), low, False, params, layer,
            calls if i == 0 else 0, entry.calls, timer.seconds, {"class_agnostic": True},
        )
        for i, c in enumerate(labels)
    ]


# ---------------------------------------------------------------------- Score-CAM
@dataclass
class _ScoreCamRun:
    channels: np.ndarray  # indices of the channels used
    probs: np.ndarray  # (len(channels), C) probabilities of the masked images
    baseline: np.ndarray  # (C,) probabilities of the black image
    calls: int


def _channel_masks(features: np.ndarray, channels: np.ndarray, shape: Sequence[int], method: str) -> np.ndarray:
    """(len(channels), H, W) masks in [0, 1]: each channel map upsampled and min-max scaled."""
    from skimage.transform import resize

    order = {"nearest": 0, "bilinear": 1, "bicubic": 3}[method]
    maps = features[:, :, channels].astype(np.float32)
    up = resize(
        maps, (int(shape[0]), int(shape[1]), len(channels)), order=order, mode="edge",
        anti_aliasing=False, preserve_range=True,
    )
    up = np.moveaxis(up, -1, 0)
    lo = up.min(axis=(1, 2), keepdims=True)
    hi = up.max(axis=(1, 2), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((up - lo) / span, 0.0, 1.0).astype(np.float32)


def _score_cam_predictions(ctx: Any, entry: LayerPass, params: ScoreCamParams) -> tuple[_ScoreCamRun, int]:
    key = ("scorecam", entry.layer, int(params.max_channels), params.upsampling)
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached, 0
    a = entry.features
    order = np.argsort(-a.mean(axis=(0, 1)), kind="stable")[: int(params.max_channels)]
    # A constant channel gives a constant (all-zero after min-max) mask: the black baseline,
    # whose gain is 0 by definition; it is not worth a model call.
    flat = a.reshape(-1, a.shape[-1])
    channels = np.array([k for k in order if flat[:, k].max() > flat[:, k].min()], dtype=np.int64)
    image = ctx.image.astype(np.float32)
    classifier = ctx.classifier
    bs = int(params.batch_size)
    total = len(channels) + 1
    ctx.report(0, total, "Score-CAM: masked images")
    baseline = classifier.predict(np.zeros_like(ctx.image)[None], batch_size=bs)[0]
    probs = np.empty((len(channels), classifier.num_classes), dtype=np.float32)
    for start in range(0, len(channels), bs):
        chunk = channels[start : start + bs]
        masks = _channel_masks(a, chunk, ctx.image.shape[:2], params.upsampling)
        masked = np.rint(image[None] * masks[..., None]).astype(np.uint8)
        probs[start : start + len(chunk)] = classifier.predict(masked, batch_size=bs)
        ctx.report(1 + start + len(chunk), total, "Score-CAM: masked images")
    run = _ScoreCamRun(channels, probs, baseline, total)
    ctx.cache[key] = run
    return run, total


def run_scorecam(ctx: Any, params: ScoreCamParams, labels: list[int], contrast: int | None = None) -> list[Explanation]:
    """Score-CAM (Wang et al. 2020): channel weights are the gain in the label's probability
    when the image is masked by that channel's (upsampled, min-max scaled) map, relative to a
    black image. No gradients; one set of masked predictions serves every label."""
    with Timer() as timer:
        layer = resolve_layer(ctx.classifier, params.layer)
        entry, calls = layer_pass(ctx, layer, [])
        run, more = _score_cam_predictions(ctx, entry, params)
        calls += more
        a = entry.features[:, :, run.channels].astype(np.float64)
        gain = (run.probs - run.baseline[None, :]).astype(np.float64)
        if contrast is not None:  # the gain of A − B: linear in the probabilities, no new calls
            gain = gain - gain[:, [int(contrast)]]
        maps = [a @ gain[:, c] for c in labels]
    extras = {
        "channels_used": int(len(run.channels)),
        "channels_total": int(entry.features.shape[-1]),
    }
    return [
        _finish(
            ctx, "scorecam", c, label_probability(ctx, c, entry.scores), m, True, params, layer,
            calls if i == 0 else 0, entry.calls + run.calls, timer.seconds, extras, contrast, entry.scores,
        )
        for i, (c, m) in enumerate(zip(labels, maps))
    ]


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="gradcam", title="Grad-CAM", family="cam", order=30, signed=False, default=True,
    params_type=CamParams, run=_gradient_cam("gradcam"), needs_gradients=True, contrast=True,
    description="Feature maps weighted by the mean gradient of the class score.",
))
register(MethodSpec(
    name="gradcam_pp", title="Grad-CAM++", family="cam", order=31, signed=False,
    params_type=CamParams, run=_gradient_cam("gradcam_pp"), needs_gradients=True, contrast=True,
    description="Grad-CAM with pixel-wise gradient weights; better for several instances.",
))
register(MethodSpec(
    name="xgradcam", title="XGrad-CAM", family="cam", order=32, signed=False,
    params_type=CamParams, run=_gradient_cam("xgradcam"), needs_gradients=True, contrast=True,
    description="Feature maps weighted by activation-normalised gradients (axiom-based).",
))
register(MethodSpec(
    name="layercam", title="LayerCAM", family="cam", order=33, signed=False,
    params_type=CamParams, run=_gradient_cam("layercam"), needs_gradients=True, contrast=True,
    description="Positive gradients times activations, pixel by pixel; works on early layers.",
))
register(MethodSpec(
    name="hirescam", title="HiResCAM", family="cam", order=34, signed=False,
    params_type=CamParams, run=_gradient_cam("hirescam"), needs_gradients=True, contrast=True,
    description="Gradients times activations summed over channels, without averaging.",
))
register(MethodSpec(
    name="scorecam", title="Score-CAM", family="cam", order=35, signed=False,
    params_type=ScoreCamParams, run=run_scorecam, needs_feature_maps=True, contrast=True,
    test_params={"max_channels": 8},
    description="Feature maps weighted by how much each one, used as a mask, raises the "
    "class probability. No gradients; one model call per channel.",
))
register(MethodSpec(
    name="eigencam", title="Eigen-CAM", family="cam", order=36,
    params_type=CamParams, run=run_eigencam, needs_feature_maps=True,
    description="First principal component of the feature maps. No gradients; class-agnostic: "
    "the same map for every label.",
))

__all__ = [
    "CamParams",
    "ScoreCamParams",
    "LayerPass",
    "layer_pass",
    "resolve_layer",
    "eigen_map",
    "probabilities_from_scores",
    "label_probability",
    "GRADIENT_CAMS",
]
