"""Tiny real Keras models and image folders shared by the audit tests."""
from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
from PIL import Image

SIZE = 32


def tiny_cnn(seed: int = 0, classes: int = 3, size: int = SIZE) -> keras.Model:
    """conv → conv ("feat") → global average pool → softmax; random but seeded weights."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inp, out)


def save_model(model: keras.Model, path: Path) -> str:
    model.save(path)
    return str(path)


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def noise_folder(root: Path, per_class: int = 4, classes=("a", "b"), shape=(40, 48), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / c / f"{i}.png").write_bytes(png(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)))
    return root


def bomb_png() -> bytes:
    """A valid 1-bit PNG of 96 M pixels: a few KiB on disk, 288 MB as RGB."""
    buf = io.BytesIO()
    Image.new("1", (12_000, 8_000), 1).save(buf, format="PNG")
    return buf.getvalue()


def write_video(path: Path, frames: int = 12, height: int = 48, width: int = 64, fps: int = 6, seed: int = 0) -> Path:
    """A short H.264 clip of noise frames (PyAV)."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
