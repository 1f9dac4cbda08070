"""Live Grad-CAM per frame: the map follows a bright blob around a full-size frame."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers.base import ExplainerError
from explainers.live import LiveGradCam, crop_box
from explainers.base import upsample
from model_zoo.classifier import Classifier


@pytest.fixture(scope="module")
def bright_model() -> Classifier:
    """1×1 conv = relu(mean RGB − 0.6) → GAP → dense [+1, −1]: class 0 = "something bright"."""
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(1, 1, activation="relu", name="bright")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("bright").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), np.array([-0.6], np.float32)])
    model.get_layer("head").set_weights([np.array([[4.0, -4.0]], np.float32), np.zeros(2, np.float32)])
    return Classifier(model, id="bright", name="bright", labels=["bright", "dark"], preprocessing="unit")


def frame_with_blob(row: int, col: int, h: int = 240, w: int = 320) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w]
    blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * 12.0**2))
    return np.clip(30 + 225 * blob[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)


@pytest.mark.parametrize("where", [(60, 100), (180, 220), (120, 160)])
def test_the_map_follows_the_blob(bright_model, where):
    live = LiveGradCam(bright_model)
    out = live.process(frame_with_blob(*where))
    assert out.picture.shape == (240, 320, 3) and out.picture.dtype == np.uint8
    assert out.label == 0 and out.label_name == "bright" and 0.5 < out.probability <= 1.0
    top, left, bh, bw = out.box
    assert (top, left, bh, bw) == (0, 40, 240, 240)  # the centred square of a 4:3 frame
    heat = upsample(out.heatmap, (bh, bw))
    r, c = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(top + r - where[0]) <= 240 / 32 + 1 and abs(left + c - where[1]) <= 240 / 32 + 1
    # outside the crop the frame is only dimmed
    frame = frame_with_blob(*where)
    np.testing.assert_array_equal(out.picture[:, :40], frame[:, :40] // 2)
    # inside, the picture is render.overlay's positive-only jet blend (up to resampling)
    from explainers.render import overlay

    ref = overlay(frame[:, 40:280], out.heatmap, limit=float(out.heatmap.max()), cmap="jet",
                  opacity=0.5, positive_only=True)
    assert np.abs(ref.astype(int) - out.picture[:, 40:280]).mean() < 3


def test_frame_counter_and_rate(bright_model):
    live = LiveGradCam(bright_model)
    assert live.fps() == 0.0
    for i in range(5):
        live.process(frame_with_blob(100, 100 + 10 * i))
    assert live.frames == 5 and live.fps() > 0 and live.last.label == 0


def test_crop_box_and_refusals(bright_model):
    assert crop_box(480, 640, 224, 224) == (0, 80, 480, 480)
    assert crop_box(640, 480, 224, 224) == (80, 0, 480, 480)
    live = LiveGradCam(bright_model)
    with pytest.raises(ExplainerError, match="RGB uint8 frame"):
        live.process(np.zeros((10, 10), np.uint8))

    class NoGradients:
        supports_gradients = False
        cam_layer = None

    with pytest.raises(ExplainerError, match="needs a model with gradients"):
        LiveGradCam(NoGradients())
