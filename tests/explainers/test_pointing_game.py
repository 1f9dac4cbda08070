"""Pointing game: a CNN trained here to find a bright square; every method must point at it.

The class of a synthetic 32×32 image is the quadrant holding a bright 8×8 square on a noisy
background, so the evidence for the predicted class is exactly the square. For one test image
per quadrant, every registered method's heatmap must put its maximum on the square (pixel
methods) or rank first the superpixel holding it (LIME / KernelSHAP on a 4×4 grid whose cells
are aligned with the square). One model, trained in a few seconds with fixed seeds, serves every
method (module fixture).

The model is built so that the square is the *only* evidence (dark pixels are cut by a fixed
threshold, convolutions have no bias, position enters through brightness-gated coordinate
channels, and the head is global average pooling), so a miss is the method's fault, not an
ambiguity of the model. Hidden pixels are filled with black (LIME/SHAP, occlusion): for this
model black means "nothing here", whereas a uniformly coloured square filled with its own mean
colour would not be hidden at all.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from explainers.base import methods
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import run_method
from model_zoo.classifier import Classifier

SIZE = 32
SQUARE = 8
QUADRANT = SIZE // 2
# Test squares (top, left) sit exactly on a cell of the 4×4 grid (cells are 8×8), one per quadrant;
# training squares are anywhere inside their quadrant.
ALIGNED_SQUARES = {0: (8, 0), 1: (0, 24), 2: (16, 8), 3: (24, 16)}
SMALL = {"samples": 16, "steps": 16, "max_channels": 32, "window": 8, "stride": 2, "fill": "black"}


def draw(rng: np.random.Generator, top: int, left: int) -> np.ndarray:
    """Noisy dark background with a bright (slightly coloured) square at (top, left)."""
    img = rng.integers(0, 90, (SIZE, SIZE, 3)).astype(np.uint8)
    img[top : top + SQUARE, left : left + SQUARE] = rng.integers(200, 256, 3).astype(np.uint8)
    return img


def dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i, label in enumerate(labels):
        r0, c0 = (label // 2) * QUADRANT, (label % 2) * QUADRANT
        top = r0 + rng.integers(0, QUADRANT - SQUARE + 1)
        left = c0 + rng.integers(0, QUADRANT - SQUARE + 1)
        images[i] = draw(rng, int(top), int(left))
    return images, labels


class BrightCoords(keras.layers.Layer):
    """Appends (row, col) coordinate channels in [-1, 1] times the pixel's brightness.

    CoordConv, gated: a convolution can then detect "bright pixels in the upper left" locally,
    so the network can end in global average pooling (the architecture the CAM family assumes;
    with a position-dependent dense head Grad-CAM's averaged gradients cancel out), while dark
    pixels stay exactly zero in every channel.
    """

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        rows, cols = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
        grid = keras.ops.convert_to_tensor(np.stack([rows, cols], -1)[None].astype("float32"))
        gate = keras.ops.mean(x, axis=-1, keepdims=True)
        return keras.ops.concatenate([x, grid * gate], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] + 2)


@pytest.fixture(scope="module")
def trained() -> Classifier:
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    # A fixed threshold: pixels darker than mid-gray give 0 (and a zero gradient), and the
    # convolutions have no bias, so every feature comes from the bright square: it is the only
    # evidence, and the test is whether each method finds it.
    x = keras.layers.Rescaling(1 / 255.0, offset=-0.5)(inp)
    x = keras.layers.ReLU()(x)
    x = BrightCoords()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", use_bias=False, name="conv1")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", use_bias=False, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    images, labels = dataset(2000, seed=1)
    model.fit(images.astype(np.float32), labels, epochs=6, batch_size=64, verbose=0, shuffle=True)
    clf = Classifier(model, id="quadrants", name="quadrants", labels=["upper left", "upper right",
                     "lower left", "lower right"], preprocessing="raw", cam_layer="conv2")
    test_images, test_labels = dataset(200, seed=2)
    accuracy = float((clf.predict(test_images).argmax(1) == test_labels).mean())
    assert accuracy > 0.95, f"the quadrant CNN did not learn its task (accuracy {accuracy:.2f})"
    return clf


def small_params(params_type: type) -> dict:
    names = {f.name: f for f in dataclasses.fields(params_type)}
    return {k: v for k, v in SMALL.items() if k in names and type(names[k].default) is type(v)}


@pytest.mark.parametrize("quadrant", sorted(ALIGNED_SQUARES))
def test_every_method_points_at_the_square(trained, quadrant):
    top, left = ALIGNED_SQUARES[quadrant]
    img = draw(np.random.default_rng(100 + quadrant), top, left)
    square = np.zeros((SIZE, SIZE), bool)
    square[top : top + SQUARE, left : left + SQUARE] = True
    ctx = ExplainContext(
        trained, img, seed=0, segmentation="grid", segmentation_params={"rows": 4, "cols": 4},
        sampling=SamplingParams(samples=512, fill="black"),
    )
    assert ctx.top_labels(1) == [quadrant]
    misses = []
    for name, spec in sorted(methods().items()):
        (exp,) = run_method(ctx, name, small_params(spec.params_type), [quadrant])
        if exp.segment_weights is not None:
            best = int(np.argmax(exp.segment_weights))
            hit = bool(square[exp.segments == best].any())
        else:
            hit = bool(square[exp.peak()])
        if not hit:
            misses.append(f"{name} peak {exp.peak()}")
    assert not misses, f"square at rows {top}..{top + SQUARE - 1}, cols {left}..{left + SQUARE - 1}: {misses}"
