"""Tiny real Keras classifiers shared by the tests (one copy each; fixed or seeded weights).

- ``tiny_classifier`` / ``tiny_image``: the contract test's 32×32 CNN and its input;
- ``box_model``: class 1's probability is the mean grey level inside a box (known answers);
- ``small_cnn``: two convolutions, global pooling, softmax over three classes (seeded).
"""
from __future__ import annotations

import keras
import numpy as np

from model_zoo.classifier import Classifier

SIZE = 32


def tiny_classifier() -> Classifier:
    """32×32×3 → 3 classes, fixed seeded weights with an unsaturated softmax."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    # Fixed, seeded weights (not Keras' initialiser), so the maps are the same on every run; a
    # small head keeps the softmax unsaturated (every label has a real probability to explain).
    rng = np.random.default_rng(11)
    scale = {4: 0.3, 2: 0.02, 1: 0.0}  # conv kernels, dense kernel, biases
    model.set_weights(
        [rng.normal(0, scale[w.ndim], w.shape).astype(np.float32) for w in model.get_weights()]
    )
    return Classifier(model, id="tiny", name="tiny", labels=["ant", "bee", "cat"],
                      preprocessing="unit", batch_size=16)


def tiny_image() -> np.ndarray:
    """Dark noise with one bright object, so the maps have structure."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
    img[4:14, 18:28] = (250, 240, 60)
    return img


def box_model(box: tuple[int, int, int, int], size: int = SIZE) -> Classifier:
    """Fixed weights: class 1's probability is the mean grey level (0..1) inside ``box`` (rows
    box[0]..box[1], cols box[2]..box[3]), class 0 its complement. Linear in the pixels, so with
    a black fill each region adds exactly the brightness it holds inside the box."""
    inp = keras.Input((size, size, 3))
    gray = keras.layers.Conv2D(1, 1, use_bias=False, name="gray")(inp)
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(gray))
    model = keras.Model(inp, out)
    model.get_layer("gray").set_weights([np.full((1, 1, 3, 1), 1 / (3 * 255), np.float32)])
    mask = np.zeros((size, size))
    mask[box[0] : box[1], box[2] : box[3]] = 1
    m = mask.ravel() / mask.sum()
    model.get_layer("head").set_weights([np.stack([-m, m], 1).astype(np.float32), np.array([1, 0], np.float32)])
    return Classifier(model, id="region", name="region", labels=["outside", "box"],
                      preprocessing="raw", output="probabilities")


def small_cnn(seed: int, size: int = SIZE, labels: list[str] | None = None) -> Classifier:
    """Two convolutions (c1 stride 2, c2), global average pooling, softmax over three classes."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return Classifier(keras.Model(inp, out), id="tiny", name="tiny", labels=labels, preprocessing="unit")
