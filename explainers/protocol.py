"""What the explainers need from a classifier: a Protocol, so the library never imports a backend.

``model_zoo.classifier.Classifier`` (Keras/TensorFlow) implements it; anything else with these
attributes works too. Importing this module imports neither TensorFlow nor Streamlit.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

INPUT_LAYER = "input"
"""Pseudo layer name: gradients with respect to the RGB input pixels."""


@runtime_checkable
class Classifier(Protocol):
    """An image classifier as the explainers use it (numpy in, numpy out, thread-safe)."""

    id: str
    name: str
    labels: Sequence[str]
    num_classes: int
    input_size: tuple[int, int] | None
    batch_size: int
    images_seen: int  # images sent to the model so far (model-call accounting)
    output: str  # "softmax" | "logits" | "sigmoid" | "probabilities"
    cam_layer: str | None
    conv_layers: Sequence[Any]

    @property
    def supports_gradients(self) -> bool: ...

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, num_classes) of uint8 images (N, H, W, 3)."""
        ...

    def gradients(self, images: np.ndarray, classes: Sequence[int], layer: str | None = None) -> Any:
        """(features of ``layer``, scores, d score / d features) — ``INPUT_LAYER`` for pixels."""
        ...

    def head_scores(self, images: np.ndarray, features: np.ndarray, layer: str | None = None) -> np.ndarray:
        """Class scores with ``layer``'s features replaced by ``features``."""
        ...


__all__ = ["Classifier", "INPUT_LAYER"]
