"""The classifier interface every explainer talks to.

``Classifier`` wraps a Keras model so that callers only ever pass RGB uint8 batches at the
model's input size: preprocessing, grayscale conversion, softmax/logit/sigmoid handling and
batching live here. Gradient methods get pre-softmax scores and feature maps of any layer,
also inside nested sub-models (transfer models whose conv base is a sub-model), by *replaying*
the model's graph: the cached model is never rebuilt or mutated.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from explainers.protocol import INPUT_LAYER  # the library's constant; re-exported here
from model_zoo.errors import ModelError  # re-exported: callers name it from here too
from model_zoo.preprocessing import check_preprocessing, preprocess_tf

GRADIENT_STREAMS = 2
"""How many chunks of one batched gradient call (``top_k_gradients``) run at a time, from
threads of the call.

Why: on the 2-core host of 2026-12-06, two concurrent chunks of 8 ran the Grad-CAM pass at
1.6–1.7× the images/s of one stream (EfficientNet-Lite0), and the dataset audit at 1.0–1.24×.
On the host of 2026-12-05 it measured within noise, so the gain depends on the host
(benchmarks/README.md).

Each chunk is computed exactly as it would be alone, so results do not change (tested). The
caller still holds the model lock."""

_SOFTMAX_NAMES = {"softmax"}
_SIGMOID_NAMES = {"sigmoid"}


@dataclass(frozen=True)
class LayerInfo:
    path: str  # "/"-separated, e.g. "efficientnetb0/top_activation"
    shape: tuple  # output shape without batch


class Classifier:
    """A Keras image classifier behind a small, thread-safe, numpy-in/numpy-out interface."""

    def __init__(
        self,
        model: keras.Model,
        *,
        id: str,
        name: str,
        labels: Sequence[str] | None = None,
        preprocessing: str = "unit",
        output: str | None = None,
        cam_layer: str | None = None,
        batch_size: int = 32,
        description: str = "",
    ) -> None:
        _check_single_io(model)
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3 or shape[-1] not in (1, 3):
            raise ModelError(
                f"the model takes input of shape {shape}; XAI Lens explains image models taking "
                "(height, width, 1 or 3 channels)"
            )
        out_shape = tuple(model.outputs[0].shape[1:])
        if len(out_shape) != 1:
            raise ModelError(
                f"the model outputs shape {out_shape}; an image classifier outputs one score "
                "vector per image"
            )
        self.model = model
        self.id = id
        self.name = name
        self.description = description
        self.preprocessing = check_preprocessing(preprocessing)
        self.channels = int(shape[-1])
        self._declared_size = (shape[0], shape[1])
        self.input_size: tuple[int, int] | None = (
            (int(shape[0]), int(shape[1])) if shape[0] and shape[1] else None
        )
        self.output = output or detect_output_kind(model)
        if self.output not in ("softmax", "logits", "sigmoid", "probabilities"):
            raise ModelError(f"unknown output kind {self.output!r}")
        raw_classes = int(out_shape[0])
        if self.output == "sigmoid" and raw_classes != 1:
            self.output = "probabilities"  # multi-label sigmoid: scores are per-class already
        self.num_classes = 2 if raw_classes == 1 else raw_classes
        if labels is None:
            labels = default_labels(self.num_classes)
        labels = [str(x) for x in labels]
        if raw_classes == 1 and len(labels) == 1:
            labels = [f"not {labels[0]}", labels[0]]
        if len(labels) != self.num_classes:
            raise ModelError(
                f"the labels file has {len(labels)} names but the model has {self.num_classes} "
                "classes"
            )
        self.labels = labels
        self.batch_size = int(batch_size)
        self._lock = threading.RLock()
        self._fns: dict[Any, Callable] = {}
        self._linear_heads: dict[int, keras.layers.Layer] = {}
        self.images_seen = 0
        self._build_linear_heads()
        self.conv_layers = find_conv_layers(model)
        if cam_layer is not None and cam_layer not in {l.path for l in self.conv_layers}:
            raise ModelError(f"layer {cam_layer!r} is not a 4-D feature layer of this model")
        self.cam_layer = cam_layer or (self.conv_layers[-1].path if self.conv_layers else None)

    # ------------------------------------------------------------------ basic facts
    @property
    def supports_gradients(self) -> bool:
        return True

    def with_input_size(self, size: tuple[int, int]) -> "Classifier":
        """Fix the input size of a model declared with undefined height/width."""
        if self.input_size is not None:
            return self
        self.input_size = (int(size[0]), int(size[1]))
        return self

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "input_size": self.input_size,
            "channels": self.channels,
            "classes": self.num_classes,
            "output": self.output,
            "preprocessing": self.preprocessing,
            "cam_layer": self.cam_layer,
            "parameters": int(self.model.count_params()),
        }

    # ------------------------------------------------------------------ forward passes
    def _prepare(self, x: tf.Tensor) -> tf.Tensor:
        """RGB floats 0..255 → model input (grayscale conversion, then preprocessing)."""
        x = tf.cast(x, tf.float32)
        if self.channels == 1:
            x = tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
        return preprocess_tf(x, self.preprocessing)

    def scores_tf(self, x: tf.Tensor, layer: str | None = None, tape=None):
        """(features of ``layer`` or None, pre-softmax scores (N, C)) for RGB floats 0..255.

        Differentiable; ``layer=INPUT_LAYER`` returns the input itself as the features.
        """
        x = tf.cast(x, tf.float32)
        if layer == INPUT_LAYER:
            if tape is not None:
                tape.watch(x)
            _, scores = _replay(self.model, self._prepare(x), [], self._strip_head, tape)
            return x, self._to_scores(scores)
        path = layer.split("/") if layer else []
        feats, scores = _replay(self.model, self._prepare(x), path, self._strip_head, tape)
        return feats, self._to_scores(scores)

    def _to_scores(self, raw: tf.Tensor) -> tf.Tensor:
        if self.output == "sigmoid":  # one logit z → [0, z]: softmax gives [1 - σ(z), σ(z)]
            return tf.concat([tf.zeros_like(raw), raw], axis=-1)
        if self.output == "probabilities":
            return tf.math.log(tf.maximum(raw, 1e-12))
        return raw

    def _strip_head(self, op: keras.layers.Layer) -> keras.layers.Layer | None:
        """A linear twin of the output layer when it ends in softmax/sigmoid (cached)."""
        if self.output not in ("softmax", "sigmoid"):
            return None
        key = id(op)
        if key not in self._linear_heads:  # built eagerly in __init__; this is a fallback
            self._linear_heads[key] = _linear_twin(op)
        return self._linear_heads[key]

    def _build_linear_heads(self) -> None:
        """Create the pre-softmax twin of the output layer eagerly (not inside a tf.function)."""
        if self.output not in ("softmax", "sigmoid"):
            return
        op = _output_operation(self.model)
        while isinstance(op, keras.Model):
            op = _output_operation(op)
        self._linear_heads[id(op)] = _linear_twin(op)

    def _probs_tf(self, x: tf.Tensor) -> tf.Tensor:
        out = self.model(self._prepare(x), training=False)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if self.output == "logits":
            return tf.nn.softmax(out, axis=-1)
        if self.output == "sigmoid":
            return tf.concat([1.0 - out, out], axis=-1)
        return out

    def _compiled(self, key: Any, build: Callable[[], Callable]) -> Callable:
        fn = self._fns.get(key)
        if fn is None:
            fn = self._fns[key] = build()
        return fn

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C) for RGB uint8 images (N, H, W, 3) at the input size."""
        images = self._check_batch(images)
        bs = int(batch_size or self.batch_size)
        h, w = images.shape[1:3]
        fixed = self._compiled(
            ("predict", bs, h, w),
            lambda: tf.function(
                self._probs_tf,
                input_signature=[tf.TensorSpec([bs, h, w, 3], tf.uint8)],
                jit_compile=False,
                autograph=False,
            ),
        )
        ragged = self._compiled(
            ("predict", None, h, w),
            lambda: tf.function(
                self._probs_tf,
                input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8)],
                jit_compile=False,
                autograph=False,
            ),
        )
        out = np.empty((len(images), self.num_classes), dtype=np.float32)
        with self._lock:
            for start in range(0, len(images), bs):
                chunk = images[start : start + bs]
                fn = fixed if len(chunk) == bs else ragged
                out[start : start + len(chunk)] = fn(tf.constant(chunk)).numpy()
            self.images_seen += len(images)
        return out

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Pre-softmax scores (N, C) for RGB uint8 images."""
        _, scores, _ = self.gradients(images, [], layer=INPUT_LAYER)
        return scores

    def gradients(
        self, images: np.ndarray, classes: Sequence[int], layer: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Features of ``layer``, scores and d score[c] / d features for each class in ``classes``.

        Returns ``(features (N, ...), scores (N, C), grads (N, K, ...))`` (grads is None when
        ``classes`` is empty). One forward pass; each class adds a backward pass through the
        part of the network above ``layer`` only. ``layer=None`` uses ``cam_layer``;
        ``INPUT_LAYER`` differentiates with respect to the RGB pixels (0..255).
        """
        layer = layer or self.cam_layer
        if layer is None:
            raise ModelError("this model has no 4-D feature layer for CAM methods")
        images = self._check_batch(images, allow_float=True)
        classes = tuple(int(c) for c in classes)
        for c in classes:
            if not 0 <= c < self.num_classes:
                raise ModelError(f"class index {c} is out of range 0..{self.num_classes - 1}")
        h, w = images.shape[1:3]

        k = len(classes)

        def build() -> Callable:
            # Classes are a tensor argument, so a new set of top-k labels reuses the traced graph.
            def fn(x, cls):
                with tf.GradientTape(persistent=True) as tape:
                    feats, scores = self.scores_tf(x, layer, tape)
                    targets = [tf.gather(scores, cls[i], axis=1) for i in range(k)]
                grads = [tape.gradient(t, feats) for t in targets]
                del tape
                if grads:
                    return feats, scores, tf.stack(grads, axis=1)
                return feats, scores, tf.zeros((0,))

            return tf.function(
                fn,
                input_signature=[
                    tf.TensorSpec([None, h, w, 3], tf.float32),
                    tf.TensorSpec([k], tf.int32),
                ],
                jit_compile=False,
                autograph=False,
            )

        fn = self._compiled(("grad", layer, k, h, w), build)
        cls = tf.constant(classes, dtype=tf.int32, shape=[k])
        out_f, out_s, out_g = [], [], []
        with self._lock:
            for start in range(0, len(images), self.batch_size):
                chunk = tf.constant(images[start : start + self.batch_size], dtype=tf.float32)
                f, s, g = fn(chunk, cls)
                out_f.append(f.numpy())
                out_s.append(s.numpy())
                out_g.append(g.numpy() if classes else None)
            self.images_seen += len(images)
        feats = np.concatenate(out_f)
        scores = np.concatenate(out_s)
        grads = np.concatenate(out_g) if classes else None
        return feats, scores, grads

    def head_scores(self, images: np.ndarray, features: np.ndarray, layer: str | None = None) -> np.ndarray:
        """Pre-softmax scores (N, C) when ``layer``'s output is replaced by ``features``.

        ``features`` (N, h, w, K) takes the place of the layer's output for image ``i`` of
        ``images`` (RGB, N of them); everything above the layer then runs as usual. This is how
        Deep Feature Factorization asks "what does the network above this layer make of a
        concept": put the concept's embedding at every position and read the class scores.
        Branches that bypass the layer (rare after the last conv layer) see ``images``.
        """
        layer = layer or self.cam_layer
        if layer is None or layer == INPUT_LAYER:
            raise ModelError("this model has no 4-D feature layer to replace")
        images = self._check_batch(images, allow_float=True)
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 4 or len(features) != len(images):
            raise ModelError(
                f"features must be (N, h, w, K) with N = {len(images)} images, got {features.shape}"
            )
        h, w = images.shape[1:3]
        path = layer.split("/")

        def build() -> Callable:
            def fn(x, replacement):
                _, scores = _replay(
                    self.model, self._prepare(x), path, self._strip_head, replace=replacement
                )
                return self._to_scores(scores)

            return tf.function(
                fn,
                input_signature=[
                    tf.TensorSpec([None, h, w, 3], tf.float32),
                    tf.TensorSpec([None, *features.shape[1:]], tf.float32),
                ],
                jit_compile=False,
                autograph=False,
            )

        fn = self._compiled(("head", layer, h, w, features.shape[1:]), build)
        out = []
        with self._lock:
            for start in range(0, len(images), self.batch_size):
                stop = start + self.batch_size
                out.append(fn(tf.constant(images[start:stop]), tf.constant(features[start:stop])).numpy())
            self.images_seen += len(images)
        return np.concatenate(out)

    def top_k_gradients(
        self, images: np.ndarray, k: int, layer: str | None = None, chunk: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each image's own top-k classes and d score / d features for them, batched.

        Returns ``(features (N, ...), scores (N, C), classes (N, k), grads (N, k, ...))``. Unlike
        ``gradients`` the explained classes differ per image (its own top-k), so a dataset audit
        gets every image's Grad-CAM inputs from one forward pass and k backward passes per batch
        instead of one of each per image: images in a batch are independent at inference, so
        the gradient of Σ_n score[n, class[n]] with respect to image n's features is that
        image's own gradient. Classes are ranked by score, ties by index (stable). ``chunk``
        images go through the model at a time (default ``batch_size``).
        """
        layer = layer or self.cam_layer
        if layer is None:
            raise ModelError("this model has no 4-D feature layer for CAM methods")
        images = self._check_batch(images, allow_float=True)
        k = int(k)
        if not 1 <= k <= self.num_classes:
            raise ModelError(f"top-k must be between 1 and {self.num_classes}, not {k}")
        h, w = images.shape[1:3]

        def build() -> Callable:
            def fn(x):
                with tf.GradientTape(persistent=True) as tape:
                    feats, scores = self.scores_tf(x, layer, tape)
                    # argsort(-scores) stable = highest first, lower index first on ties
                    classes = tf.argsort(-scores, axis=-1, stable=True)[:, :k]
                    targets = [
                        tf.reduce_sum(tf.gather(scores, classes[:, i], axis=1, batch_dims=1))
                        for i in range(k)
                    ]
                grads = [tape.gradient(t, feats) for t in targets]
                del tape
                return feats, scores, tf.cast(classes, tf.int32), tf.stack(grads, axis=1)

            return tf.function(
                fn,
                input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)],
                jit_compile=False,
                autograph=False,
            )

        fn = self._compiled(("topk_grad", layer, k, h, w), build)
        step = int(chunk or self.batch_size)
        starts = list(range(0, len(images), step))

        def one(start: int) -> list[np.ndarray]:
            return [v.numpy() for v in fn(tf.constant(images[start : start + step], dtype=tf.float32))]

        with self._lock:
            if GRADIENT_STREAMS > 1 and len(starts) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(min(GRADIENT_STREAMS, len(starts))) as pool:
                    parts = list(pool.map(one, starts))  # in order of the chunks
            else:
                parts = [one(start) for start in starts]
            self.images_seen += len(images)
        feats, scores, classes, grads = (np.concatenate([p[i] for p in parts]) for i in range(4))
        return feats, scores, classes, grads

    def _check_batch(self, images: np.ndarray, allow_float: bool = False) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ModelError(f"expected RGB images (N, H, W, 3), got shape {images.shape}")
        if self.input_size is not None and tuple(images.shape[1:3]) != tuple(self.input_size):
            raise ModelError(
                f"images are {images.shape[1]}×{images.shape[2]} but the model takes "
                f"{self.input_size[0]}×{self.input_size[1]}; resize them first"
            )
        if allow_float:
            return images.astype(np.float32, copy=False)
        if images.dtype != np.uint8:
            raise ModelError("predict takes RGB uint8 images")
        return images


# ---------------------------------------------------------------------- model inspection
def default_labels(n: int) -> list[str]:
    return [f"class {i}" for i in range(n)]


def _check_single_io(model: keras.Model) -> None:
    if not isinstance(model, keras.Model):
        raise ModelError("the file does not contain a Keras model")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        raise ModelError(
            "the model has no defined input; save it after building it on an Input"
        ) from None
    if inputs is None or outputs is None:
        raise ModelError("the model has no defined input; save it after building it on an Input")
    if len(inputs) != 1:
        raise ModelError(
            f"the model has {len(inputs)} inputs; XAI Lens explains single-input image classifiers"
        )
    if len(outputs) != 1:
        raise ModelError(
            f"the model has {len(outputs)} outputs; XAI Lens explains single-output classifiers"
        )


def _output_operation(model: keras.Model):
    if isinstance(model, keras.Sequential):
        return model.layers[-1]
    history = getattr(model.outputs[0], "_keras_history", None)
    return history[0] if history else model.layers[-1]


def _activation_name(layer) -> str | None:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", str(act))


def detect_output_kind(model: keras.Model) -> str:
    """'softmax', 'sigmoid' or 'logits', from the output layer (looking into nested models)."""
    op = _output_operation(model)
    while isinstance(op, keras.Model):
        op = _output_operation(op)
    name = _activation_name(op)
    if name in _SOFTMAX_NAMES:
        return "softmax"
    if name in _SIGMOID_NAMES:
        return "sigmoid"
    if name in ("linear", None):
        return "logits"
    return "probabilities"


def _linear_twin(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The same layer without its final softmax/sigmoid (a copy; the original is untouched)."""
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and _activation_name(layer) in ("softmax", "sigmoid")
    ):
        return keras.layers.Identity()
    if not hasattr(layer, "activation"):
        raise ModelError(f"cannot take the pre-activation scores of layer {layer.name!r}")
    config = dict(layer.get_config())
    config["activation"] = "linear"
    config["name"] = layer.name + "_scores"
    twin = layer.__class__.from_config(config)
    twin.build(layer.input.shape if hasattr(layer, "input") else None)
    twin.set_weights(layer.get_weights())
    return twin


def _call(op, *args, **kwargs):
    if getattr(op, "_call_has_training_arg", False):
        kwargs["training"] = False
    return op(*args, **kwargs)


def _replay(model, x, path: list[str], strip_head: Callable | None, tape=None, replace=None):
    """Run ``model`` on ``x``; return (output of the layer at ``path`` or None, model output).

    With ``replace`` (a tensor shaped like that layer's output) the layer's output is swapped for
    it before the rest of the network runs (``Classifier.head_scores``).

    The output layer is swapped for ``strip_head(layer)`` when that returns a layer (pre-softmax
    scores). A path through a nested model recurses into it, so the feature maps and the final
    scores come from one connected computation (tf-keras-vis issue #71 is the failure this avoids).
    """
    captured: dict[str, Any] = {}
    out_op = _output_operation(model)

    def wrap(op):
        head = strip_head if (strip_head is not None and op is out_op) else None
        if path and op.name == path[0]:
            if len(path) == 1:

                def target(*args, **kwargs):
                    out = _call(op, *args, **kwargs) if replace is None else replace
                    if tape is not None:
                        tape.watch(out)
                    captured["features"] = out
                    if head is not None:  # the captured layer is also the output layer
                        twin = head(op)
                        return _call(twin, *args, **kwargs) if twin is not None else out
                    return out

                return target

            def nested(*args, **kwargs):
                feats, out = _replay(op, args[0], path[1:], head, tape, replace)
                captured["features"] = feats
                return out

            return nested
        if head is not None:
            if isinstance(op, keras.Model):
                return lambda *a, **k: _replay(op, a[0], [], head, tape)[1]
            twin = head(op)
            if twin is not None:
                return lambda *a, **k: _call(twin, *a, **k)
        return lambda *a, **k: _call(op, *a, **k)

    if isinstance(model, keras.Sequential):
        out = x
        for layer in model.layers:
            out = wrap(layer)(out)
    else:
        out = model._run_through_graph([x], operation_fn=wrap)
        if isinstance(out, (list, tuple)):
            out = out[0]
    if path and "features" not in captured:
        raise ModelError(f"layer {'/'.join(path)!r} not found in model {model.name!r}")
    return captured.get("features"), out


def _layer_output_shape(layer) -> tuple | None:
    try:
        return tuple(layer.output.shape[1:])
    except (AttributeError, ValueError):
        return None


def find_conv_layers(model: keras.Model, prefix: str = "") -> list[LayerInfo]:
    """Layers with 4-D output and spatial size > 1, in graph order, recursing into sub-models."""
    found: list[LayerInfo] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = prefix + layer.name
        if isinstance(layer, keras.Model):
            found.extend(find_conv_layers(layer, path + "/"))
            continue
        shape = _layer_output_shape(layer)
        if shape is None or len(shape) != 3:
            continue
        h, w = shape[0], shape[1]
        if (h is None or h > 1) and (w is None or w > 1):
            found.append(LayerInfo(path, shape))
    return found
