"""Pixel preprocessing schemes, as differentiable TensorFlow ops on RGB floats in 0..255.

Keeping preprocessing inside the classifier (instead of in callers) means every explainer
feeds plain RGB uint8 images and gradient methods differentiate through it for free.
"""
from __future__ import annotations

import tensorflow as tf

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

PREPROCESSING: dict[str, str] = {
    "unit": "scale to [0, 1]",
    "symmetric": "scale to [-1, 1] (Inception, Xception, MobileNet, ResNetV2)",
    "caffe": "BGR minus ImageNet mean (ResNet50, VGG16)",
    "torch": "[0, 1] then ImageNet mean/std (DenseNet, PyTorch ports)",
    "lite": "(x - 127) / 128 (EfficientNet-Lite)",
    "raw": "raw 0-255 floats",
    "builtin": "built into the model (raw 0-255 floats, the model rescales itself)",
}


def check_preprocessing(name: str) -> str:
    if name not in PREPROCESSING:
        raise ValueError(
            f"unknown preprocessing {name!r}; choose one of {', '.join(PREPROCESSING)}"
        )
    return name


def preprocess_tf(x: tf.Tensor, name: str) -> tf.Tensor:
    """Map RGB floats in 0..255 (any number of channels ≥ 1) to the model's input scale."""
    x = tf.cast(x, tf.float32)
    if name == "unit":
        return x / 255.0
    if name == "symmetric":
        return x / 127.5 - 1.0
    if name == "lite":
        return (x - 127.0) / 128.0
    if name in ("raw", "builtin"):
        return x
    if name == "torch":
        channels = x.shape[-1]
        mean = tf.constant(_IMAGENET_MEAN_RGB[:channels] if channels == 3 else (0.449,))
        std = tf.constant(_IMAGENET_STD_RGB[:channels] if channels == 3 else (0.226,))
        return (x / 255.0 - mean) / std
    if name == "caffe":
        if x.shape[-1] == 3:
            return x[..., ::-1] - tf.constant(_CAFFE_MEAN_BGR)
        return x - tf.constant(sum(_CAFFE_MEAN_BGR) / 3.0)
    raise ValueError(f"unknown preprocessing {name!r}")


def guess_preprocessing(model) -> str:
    """Best guess for a user model: 'builtin' when it starts with a Rescaling/Normalization layer."""
    import keras

    for layer in _leading_layers(model):
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            return "builtin"
    return "unit"


def _leading_layers(model, depth: int = 4):
    """The first few non-input layers, looking inside a leading nested model."""
    import keras

    out = []
    for layer in getattr(model, "layers", [])[:depth]:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_leading_layers(layer, depth))
    return out
