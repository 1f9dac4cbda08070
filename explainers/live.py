"""Grad-CAM on a video stream: one forward and one backward pass per frame.

Each frame is centre-cropped to the model's aspect ratio and resized to its input (like the
"crop" fit of ``model_zoo.images`` but on an integer box, bilinear and without the evaluation
crop fraction: a frame has ~3 ms to spare for this), the model's own top-1 class is explained by Grad-CAM in the same
pass (``Classifier.top_k_gradients``: the class is picked inside the graph, no second call), and
the map is blended over the crop region of the full-size frame; the rest of the frame is dimmed
so that one sees what the model saw. Frames are independent (no smoothing across frames), so
each picture is exactly that frame's explanation. No Streamlit here: the live page calls
``LiveGradCam.process`` from its video thread.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.base import ExplainerError


@dataclass(frozen=True)
class LiveFrame:
    picture: np.ndarray  # (H, W, 3) uint8, the frame with the map over the model's crop
    label: int
    label_name: str
    probability: float
    seconds: float  # time spent on this frame (fit + model + drawing)
    heatmap: np.ndarray  # Grad-CAM at the layer's resolution, after the ReLU (unnormalised)
    box: tuple[int, int, int, int]  # (top, left, height, width) of the frame the model saw
    model_seconds: float = 0.0  # of ``seconds``, the forward + backward pass


class LiveGradCam:
    """Explains frames one by one and keeps a rolling frame rate (thread-safe counters)."""

    def __init__(self, classifier: Any, layer: str | None = None, opacity: float = 0.5,
                 window: int = 30) -> None:
        if not getattr(classifier, "supports_gradients", False) or classifier.cam_layer is None:
            raise ExplainerError("the live view shows Grad-CAM, which needs a model with gradients "
                                 "and a convolutional layer")
        if classifier.input_size is None:
            raise ExplainerError("the model does not declare its input size")
        self.classifier = classifier
        self.layer = layer or classifier.cam_layer
        self.opacity = float(opacity)
        self.frames = 0
        self.last: LiveFrame | None = None
        self._times: deque[float] = deque(maxlen=int(window))
        self._lock = threading.Lock()

    def process(self, frame: np.ndarray) -> LiveFrame:
        """The explained picture of one RGB uint8 frame (H, W, 3) of any size."""
        t0 = time.perf_counter()
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ExplainerError(f"expected an RGB uint8 frame, got {frame.shape} {frame.dtype}")
        th, tw = self.classifier.input_size
        h, w = frame.shape[:2]
        top, left, bh, bw = crop_box(h, w, th, tw)
        crop = frame[top : top + bh, left : left + bw]
        small = _resize(crop, (th, tw))
        t_model = time.perf_counter()
        feats, scores, classes, grads = self.classifier.top_k_gradients(small[None], 1, self.layer)
        model_seconds = time.perf_counter() - t_model
        a = feats[0].astype(np.float32)
        cam = np.maximum(a @ grads[0, 0].mean(axis=(0, 1)), 0.0)
        label = int(classes[0, 0])
        s = scores[0].astype(np.float64)
        if getattr(self.classifier, "output", None) == "probabilities":
            prob = float(np.exp(s[label]))
        else:
            e = np.exp(s - s.max())
            prob = float(e[label] / e.sum())
        picture = frame >> 1  # dim what the model did not see
        picture[top : top + bh, left : left + bw] = self._blend(crop, cam)
        seconds = time.perf_counter() - t0
        result = LiveFrame(picture, label, self.classifier.labels[label], prob, seconds, cam,
                           (top, left, bh, bw), model_seconds)
        with self._lock:
            self.frames += 1
            self.last = result
            self._times.append(time.perf_counter())
        return result

    def warm_up(self) -> None:
        """Trace the gradient function on a gray frame (seconds), then forget that frame, so
        the first camera frame is as fast as the others."""
        th, tw = self.classifier.input_size
        self.process(np.full((th, tw, 3), 128, np.uint8))
        with self._lock:
            self.frames = 0
            self.last = None
            self._times.clear()

    def _blend(self, crop: np.ndarray, cam: np.ndarray) -> np.ndarray:
        """The map over the crop, as ``render.overlay(..., cmap="jet", positive_only=True)``
        draws it, but in Pillow (palette lookup, point table, composite): the numpy float
        pipeline took ~3× the model's time on a 480×480 crop."""
        from PIL import Image

        peak = float(cam.max())
        values = cam / peak if peak > 0 else np.zeros_like(cam)
        small = Image.fromarray(np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8))
        index = small.resize((crop.shape[1], crop.shape[0]), Image.Resampling.BILINEAR)
        palette, alpha = _tables(self.opacity)
        colours = Image.frombuffer("P", index.size, index.tobytes(), "raw", "P", 0, 1)
        colours.putpalette(palette)
        mask = index.point(alpha)
        return np.asarray(Image.composite(colours.convert("RGB"), Image.fromarray(crop), mask))

    def fps(self) -> float:
        """Frames per second over the last ``window`` frames (0 before two frames)."""
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0


_TABLES: dict[float, tuple[bytes, list[int]]] = {}


def _tables(opacity: float) -> tuple[bytes, list[int]]:
    """(palette: 256 jet colours as RGB bytes, alpha table 0..255) of the positive-only overlay
    (``render.overlay``'s tint: opacity · √value)."""
    found = _TABLES.get(opacity)
    if found is None:
        from explainers.render import colormap

        v = np.linspace(0.0, 1.0, 256)
        alpha = np.clip(np.rint(255.0 * opacity * np.sqrt(v)), 0, 255).astype(int)
        found = _TABLES[opacity] = (colormap(v, "jet").astype(np.uint8).tobytes(), alpha.tolist())
    return found


def crop_box(h: int, w: int, th: int, tw: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centred region with the input's aspect."""
    aspect = tw / th
    if w / h > aspect:
        bh, bw = h, max(1, int(round(h * aspect)))
    else:
        bh, bw = max(1, int(round(w / aspect))), w
    return (h - bh) // 2, (w - bw) // 2, bh, bw


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


__all__ = ["LiveGradCam", "LiveFrame", "crop_box"]
