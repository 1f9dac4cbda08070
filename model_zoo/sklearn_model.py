"""scikit-learn image classifiers (a fitted Pipeline or estimator on flattened images).

A ``.skops`` file is loaded with skops' safe loader: skops refuses every type that is neither
in its own default-trusted set (scikit-learn's estimators, numpy arrays) nor in our explicit
``TRUSTED_TYPES``; a file naming any other type is refused *before* loading, with the type in
the message. Pickle and joblib files are never loaded (they run code).

A scikit-learn model does not know the shape of its input, so the person uploading declares
it: input height × width, channels (1: the image is turned to gray with the same weights as the
Keras classifier, 3: RGB) and the value range the model was trained on (``low`` for a 0 pixel,
``high`` for a 255 pixel: (0, 16) for scikit-learn's digits, (0, 1) for unit scaling, (16, 0)
for inverted digits). Pixels are flattened row-major (height, width, channels), as
``image.reshape(n, -1)`` does.

``SklearnClassifier`` has the ``Classifier`` interface the black-box explainers use
(``predict``, labels, input size, ``images_seen``) and says that it gives no gradients:
gradient and CAM methods are hidden for it with that reason.
"""
from __future__ import annotations

import io
import threading
import zipfile
from typing import Any, Sequence

import numpy as np

from model_zoo.errors import ModelError
from model_zoo.images import sha256_bytes

SKOPS_EXTENSION = ".skops"
MAX_SKOPS_BYTES = 200 * 2**20
MAX_SIDE = 1024

TRUSTED_TYPES: tuple[str, ...] = (
    # skops does not trust the MLP's optimiser state by default; it is plain numbers and arrays.
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)
"""Types trusted on top of skops' defaults. Anything else in a file is refused."""

NO_GRADIENTS_REASON = "scikit-learn models give no gradients or feature maps"

_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class SklearnClassifier:
    """A fitted scikit-learn estimator with ``predict_proba`` behind the ``Classifier`` interface."""

    supports_gradients = False
    supports_feature_maps = False
    cam_layer: str | None = None
    conv_layers: list = []
    output = "probabilities"
    preprocessing = "declared"

    def __init__(
        self,
        estimator: Any,
        *,
        id: str,
        name: str,
        input_size: tuple[int, int],
        channels: int = 1,
        value_range: tuple[float, float] = (0.0, 1.0),
        labels: Sequence[str] | None = None,
        batch_size: int = 256,
        description: str = "",
    ) -> None:
        if not callable(getattr(estimator, "predict_proba", None)):
            raise ModelError(
                "the scikit-learn model has no predict_proba; XAI Lens explains class "
                "probabilities (use e.g. SVC(probability=True) or LogisticRegression)"
            )
        try:
            h, w = int(input_size[0]), int(input_size[1])
        except (TypeError, ValueError, IndexError):
            raise ModelError(f"the input size must be (height, width), got {input_size!r}") from None
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise ModelError(f"the input size must be between 1 and {MAX_SIDE} pixels a side, got {h}×{w}")
        if int(channels) not in (1, 3):
            raise ModelError(f"channels must be 1 (gray) or 3 (RGB), not {channels}")
        lo, hi = (float(v) for v in value_range)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
            raise ModelError(f"the value range must be two different numbers, got {value_range!r}")
        features = h * w * int(channels)
        expected = getattr(estimator, "n_features_in_", None)
        if expected is not None and int(expected) != features:
            raise ModelError(
                f"the model takes {int(expected)} features per image but {h}×{w}×{int(channels)} = "
                f"{features}; declare the size and channels it was trained on"
            )
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise ModelError("the scikit-learn model is not fitted (it has no classes_)")
        self.estimator = estimator
        self.id = id
        self.name = name
        self.description = description
        self.input_size: tuple[int, int] | None = (h, w)
        self.channels = int(channels)
        self.value_range = (lo, hi)
        self.num_classes = len(classes)
        if self.num_classes < 2:
            raise ModelError("the model knows only one class; nothing to explain")
        labels = [str(c) for c in classes] if labels is None else [str(x) for x in labels]
        if len(labels) != self.num_classes:
            raise ModelError(
                f"the labels file has {len(labels)} names but the model has {self.num_classes} classes"
            )
        self.labels = labels
        self.batch_size = int(batch_size)
        self.images_seen = 0
        self._lock = threading.RLock()

    def features(self, images: np.ndarray) -> np.ndarray:
        """RGB uint8 (N, H, W, 3) → the flattened, scaled rows the estimator was trained on."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ModelError(f"expected RGB images (N, H, W, 3), got shape {images.shape}")
        if tuple(images.shape[1:3]) != self.input_size:
            raise ModelError(
                f"images are {images.shape[1]}×{images.shape[2]} but the model takes "
                f"{self.input_size[0]}×{self.input_size[1]}; resize them first"
            )
        x = images.astype(np.float64)
        if self.channels == 1:
            x = (x @ _GRAY)[..., None]
        lo, hi = self.value_range
        x = lo + x * ((hi - lo) / 255.0)
        return x.reshape(len(images), -1)

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C) float32 for RGB uint8 images at the input size."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ModelError("predict takes RGB uint8 images")
        x = self.features(images)
        bs = int(batch_size or self.batch_size)
        out = np.empty((len(x), self.num_classes), dtype=np.float32)
        with self._lock:
            for start in range(0, len(x), bs):
                out[start : start + bs] = self.estimator.predict_proba(x[start : start + bs])
            self.images_seen += len(x)
        return out

    def gradients(self, *args: Any, **kwargs: Any):
        raise ModelError(NO_GRADIENTS_REASON)

    def with_input_size(self, size: tuple[int, int]) -> "SklearnClassifier":
        return self

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "input_size": self.input_size,
            "channels": self.channels,
            "classes": self.num_classes,
            "output": self.output,
            "preprocessing": f"values {self.value_range[0]:g}..{self.value_range[1]:g}",
            "cam_layer": None,
            "estimator": type(self.estimator).__name__,
        }


# ---------------------------------------------------------------------- loading
def check_skops_file(data: bytes, filename: str, max_bytes: int = MAX_SKOPS_BYTES) -> None:
    """Extension, size and container checks before skops reads anything."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or not bytes(data):
        raise ModelError("the model file is empty")
    name = str(filename or "").lower()
    if name.endswith((".pkl", ".pickle", ".joblib")):
        raise ModelError(
            "pickle and joblib files are never loaded (they can run code); save the model with "
            "skops.io.dump(model, 'model.skops')"
        )
    if not name.endswith(SKOPS_EXTENSION):
        raise ModelError("scikit-learn models are loaded from .skops files (skops.io.dump)")
    if len(data) > max_bytes:
        raise ModelError(f"the model file is {len(data) / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    if not bytes(data[:4]) == b"PK\x03\x04":
        raise ModelError("the file is not a .skops model (a .skops file is a zip archive)")
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
            if "schema.json" not in zf.namelist():
                raise ModelError("the file is a zip archive but not a skops model (no schema.json)")
    except zipfile.BadZipFile:
        raise ModelError("the .skops file is damaged (not a readable zip archive)") from None


def untrusted_types(data: bytes) -> list[str]:
    """Types in the file that neither skops nor ``TRUSTED_TYPES`` trusts."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=bytes(data))
    except Exception as exc:  # skops raises many kinds of errors on malformed schemas
        raise ModelError(f"the .skops file could not be read ({str(exc).splitlines()[0][:160]})") from None
    return sorted(set(found) - set(TRUSTED_TYPES))


def load_sklearn_model(
    data: bytes,
    filename: str,
    *,
    input_size: tuple[int, int],
    channels: int = 1,
    value_range: tuple[float, float] = (0.0, 1.0),
    labels: Sequence[str] | None = None,
) -> SklearnClassifier:
    """Load an uploaded ``.skops`` model safely and wrap it as a classifier."""
    import skops.io as sio

    check_skops_file(data, filename)
    refused = untrusted_types(data)
    if refused:
        raise ModelError(
            "the .skops file contains types XAI Lens does not trust: " + ", ".join(refused[:5])
            + (" …" if len(refused) > 5 else "")
        )
    try:
        estimator = sio.loads(bytes(data), trusted=list(TRUSTED_TYPES))
    except Exception as exc:
        raise ModelError(f"the .skops file could not be loaded ({str(exc).splitlines()[0][:160]})") from None
    sha = sha256_bytes(data)
    from model_zoo.custom import display_filename

    return SklearnClassifier(
        estimator,
        id=f"sklearn:{sha[:12]}",
        name=display_filename(filename),
        input_size=input_size,
        channels=channels,
        value_range=value_range,
        labels=labels,
        description=f"scikit-learn {type(estimator).__name__} loaded with skops",
    )


__all__ = [
    "SklearnClassifier", "load_sklearn_model", "check_skops_file", "untrusted_types",
    "TRUSTED_TYPES", "NO_GRADIENTS_REASON", "SKOPS_EXTENSION",
]
