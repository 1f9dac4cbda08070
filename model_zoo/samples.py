"""A small gallery of sample images that ship with scikit-image (no download needed).

Samples are PNG-encoded and decoded with ``load_image`` exactly like an upload, so a sample
takes the same code path and has a stable sha256 to key caches on. Two grayscale samples are
included on purpose: they exercise the gray → RGB path.
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image

from model_zoo.images import ImageError, load_image


def _motorcycle() -> np.ndarray:
    from skimage import data

    return data.stereo_motorcycle()[0]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)()

    return load


# id → (title, loader); ids follow scikit-image's names; every loader reads a file bundled
# inside the scikit-image wheel (checked offline with 0.26: no pooch download).
_SOURCES: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "chelsea": ("Cat (Chelsea)", _skimage("chelsea")),
    "coffee": ("Cup of coffee", _skimage("coffee")),
    "astronaut": ("Astronaut (Eileen Collins)", _skimage("astronaut")),
    "rocket": ("Rocket on the launch pad", _skimage("rocket")),
    "motorcycle": ("Motorcycle", _motorcycle),
    "camera": ("Cameraman (grayscale)", _skimage("camera")),
    "coins": ("Coins (grayscale)", _skimage("coins")),
}

SAMPLES: dict[str, str] = {key: title for key, (title, _) in _SOURCES.items()}
"""Sample id → display title, in gallery order."""


def _check(name: str) -> None:
    if name not in _SOURCES:
        raise ImageError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLES)}")


@lru_cache(maxsize=None)
def sample_png_bytes(name: str) -> bytes:
    """The sample as PNG bytes (grayscale samples stay 1-channel), as if the user uploaded it."""
    _check(name)
    array = np.asarray(_SOURCES[name][1]())
    if array.dtype != np.uint8:
        raise ImageError(f"sample {name!r} is not an 8-bit image")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


@lru_cache(maxsize=None)
def _decoded(name: str) -> np.ndarray:
    image = load_image(sample_png_bytes(name))
    image.setflags(write=False)
    return image


def sample_image(name: str) -> np.ndarray:
    """The sample decoded to RGB uint8 (H, W, 3): identical to uploading ``sample_png_bytes``."""
    _check(name)
    return _decoded(name).copy()
