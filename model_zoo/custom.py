"""Loading user-uploaded Keras models safely into a ``Classifier``.

An uploaded model file is untrusted code-carrying data: only ``.keras`` (zip) and ``.h5``
(HDF5) files whose contents match their extension are accepted, size-limited, written to a
temporary file under a name we choose, and loaded with Keras' ``safe_mode=True`` (which refuses
Lambda layers and other embedded Python). Every failure becomes a one-line ``ModelError`` that
tells the user what to change.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import threading
import zipfile
from typing import Any, Sequence

import numpy as np

from model_zoo.classifier import Classifier, ModelError
from model_zoo.images import sha256_bytes
from model_zoo.preprocessing import PREPROCESSING, check_preprocessing, guess_preprocessing

MODEL_EXTENSIONS: tuple[str, ...] = (".keras", ".h5", ".hdf5")
MAX_MODEL_BYTES = 500 * 2**20
MAX_INPUT_SIDE = 4096

LAMBDA_MESSAGE = (
    "the model contains a Lambda layer (arbitrary code); XAI Lens only loads models in safe mode "
    "— replace the Lambda with a built-in or registered layer"
)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
_load_lock = threading.Lock()  # one model load at a time: loads are memory-heavy

_OTHER_FORMATS = {
    ".pb": "a TensorFlow SavedModel",
    ".zip": "an archive (a SavedModel folder?)",
    ".pt": "a PyTorch model",
    ".pth": "a PyTorch model",
    ".ckpt": "a checkpoint",
    ".onnx": "an ONNX model",
    ".tflite": "a TensorFlow Lite model",
    ".safetensors": "a safetensors weights file",
    ".pkl": "a pickle (never loaded: pickles run code)",
    ".pickle": "a pickle (never loaded: pickles run code)",
    ".joblib": "a joblib pickle (never loaded: pickles run code)",
}

_OUTPUT_NOTES = {
    "softmax": "softmax probabilities",
    "logits": "raw scores (logits); XAI Lens applies softmax",
    "sigmoid": "one sigmoid unit, shown as two classes (not X, X)",
    "probabilities": "per-class scores used as given",
}


def display_filename(filename: str, limit: int = 60) -> str:
    """The user's file name made safe for display (never used as a path).

    Keeps the base name, letters and digits of any script and `` ._-()+,``; anything that could
    act as Markdown/HTML or a path is replaced by ``_``.
    """
    base = re.split(r"[\\/]", str(filename or ""))[-1]
    base = "".join(ch if (ch.isalnum() or ch in " ._-()+,") else "_" for ch in base)
    base = " ".join(base.split())
    if len(base) > limit:
        base = base[: limit - 1] + "…"
    return base or "model"


def check_model_file(data: bytes, filename: str, max_bytes: int = MAX_MODEL_BYTES) -> str:
    """Validate size, extension and magic bytes before loading; returns the extension.

    Cheap (no Keras), so a UI can reject a bad upload at once.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelError("expected the model file's bytes")
    size = len(data)
    if size == 0:
        raise ModelError("the model file is empty")
    if size > max_bytes:
        raise ModelError(
            f"the model file is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB"
        )
    ext = os.path.splitext(str(filename or "").strip())[1].lower()
    if ext not in MODEL_EXTENSIONS:
        what = _OTHER_FORMATS.get(ext)
        got = f"{what} ({ext})" if what else (f"a {ext} file" if ext else "a file without extension")
        raise ModelError(
            f"XAI Lens loads Keras models saved with model.save() as .keras or .h5; got {got}"
        )
    head = bytes(data[:8])
    if ext == ".keras":
        if head.startswith(_HDF5_SIGNATURE):
            raise ModelError("the file is an HDF5 (.h5) model but is named .keras; rename it to .h5")
        if not head.startswith(_ZIP_SIGNATURE):
            raise ModelError("the file is not a .keras model (a .keras file is a zip archive)")
        _check_keras_zip(bytes(data), max_bytes)
    else:
        if head.startswith(_ZIP_SIGNATURE):
            raise ModelError(
                f"the file is a .keras (zip) model but is named {ext}; rename it to .keras"
            )
        if not _has_hdf5_signature(data):
            raise ModelError(f"the file is not an HDF5 model (a {ext} file starts with an HDF5 signature)")
    return ".keras" if ext == ".keras" else ".h5"


def _has_hdf5_signature(data: bytes) -> bool:
    """HDF5 puts its signature at 0, 512, 1024, 2048, … (after an optional user block)."""
    offset = 0
    while offset + 8 <= len(data):
        if bytes(data[offset : offset + 8]) == _HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _check_keras_zip(data: bytes, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise ModelError("the .keras file is damaged (not a readable zip archive)") from None
    names = {info.filename for info in infos}
    if "config.json" not in names:
        raise ModelError(
            "the zip archive has no config.json, so it is not a Keras model; "
            "save the model with model.save('model.keras')"
        )
    for info in infos:
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise ModelError("the .keras archive contains unsafe file paths")
    expanded = sum(info.file_size for info in infos)
    if expanded > 4 * max_bytes:
        raise ModelError(
            f"the .keras archive expands to {expanded / 2**20:.0f} MB; the limit is "
            f"{4 * max_bytes / 2**20:.0f} MB"
        )


def _explain_load_error(exc: BaseException, tmp_dir: str) -> str:
    """Turn a Keras/h5py loading error into one user-facing line."""
    text = str(exc).replace(tmp_dir, "<upload>")
    if "Lambda" in text and ("safe_mode" in text or "arbitrary code" in text):
        return LAMBDA_MESSAGE
    if "safe_mode" in text or "unsafe_deserialization" in text:
        return (
            "the model contains Python code (e.g. a lambda) that Keras only loads in unsafe "
            "mode; XAI Lens only loads models in safe mode — use built-in layers and functions"
        )
    match = re.search(r"Could not locate (?:class|function) '([^']+)'", text) or re.search(
        r"Unknown (?:layer|object|activation|loss|metric)[^']*'([^']+)'", text
    )
    if match:
        name = match.group(1).split(">")[-1]
        return (
            f"the model uses a custom class {name!r} that is not part of Keras; XAI Lens can "
            "only load models made of built-in (or registered) Keras layers"
        )
    if "No model config found" in text:
        return (
            "the file holds only weights, not a model architecture; save the whole model with "
            "model.save('model.keras')"
        )
    if isinstance(exc, (OSError, zipfile.BadZipFile, EOFError)) or "superblock" in text:
        return "the model file is damaged or not a Keras model (it could not be opened)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"the model could not be loaded: {first[:300]}"


def _load_keras(data: bytes, ext: str):
    import keras

    with _load_lock, tempfile.TemporaryDirectory(prefix="xai-lens-upload-") as tmp:
        path = os.path.join(tmp, "model" + ext)  # our name, never the user's
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # Keras and h5py raise many types; the user needs one line
            raise ModelError(_explain_load_error(exc, tmp)) from None
    if not isinstance(model, keras.Model):
        raise ModelError("the file does not contain a Keras model")
    return model


def _resolve_input_size(model, input_size: Sequence[int] | None) -> tuple[int, int] | None:
    """The size to use: the model's own, or ``input_size`` where the model leaves it open."""
    shape = tuple(model.inputs[0].shape[1:3])
    if input_size is not None:
        try:
            size = (int(input_size[0]), int(input_size[1]))
            if len(input_size) != 2:
                raise ValueError
        except (TypeError, ValueError, IndexError):
            raise ModelError(f"the input size must be (height, width), got {input_size!r}") from None
        if not all(1 <= s <= MAX_INPUT_SIDE for s in size):
            raise ModelError(f"the input size must be between 1 and {MAX_INPUT_SIDE} pixels a side")
        for declared, wanted, side in zip(shape, size, ("height", "width")):
            if declared is not None and int(declared) != wanted:
                raise ModelError(
                    f"the model's input {side} is {int(declared)}, not {wanted}; "
                    f"it takes {_fmt(shape)} images"
                )
        return size
    if any(s is None for s in shape):
        raise ModelError("the model accepts any image size; choose an input size")
    return None


def _fmt(shape) -> str:
    return "×".join("any" if s is None else str(int(s)) for s in shape)


def load_custom_model(
    data: bytes,
    filename: str,
    *,
    labels: list[str] | None = None,
    preprocessing: str | None = None,
    input_size: tuple[int, int] | None = None,
    max_bytes: int = MAX_MODEL_BYTES,
) -> Classifier:
    """An uploaded .keras/.h5 model as a ready ``Classifier`` (id ``upload:<sha256[:12]>``).

    ``preprocessing`` defaults to ``guess_preprocessing(model)``; the output kind (softmax,
    logits, sigmoid) is detected by ``Classifier``. A forward pass on a gray test image checks
    the model really runs at its input size before it is handed out.
    """
    ext = check_model_file(data, filename, max_bytes)
    data = bytes(data)
    digest = sha256_bytes(data)
    model = _load_keras(data, ext)
    if preprocessing is None:
        preprocessing = guess_preprocessing(model)
    else:
        try:
            preprocessing = check_preprocessing(preprocessing)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
    shown = display_filename(filename)
    try:
        classifier = Classifier(
            model,
            id="upload:" + digest[:12],
            name=f"Custom model ({shown})",
            labels=labels,
            preprocessing=preprocessing,
            description=f"Uploaded file {shown}, sha256 {digest[:12]}…",
        )
    except ModelError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"the model cannot be used as an image classifier: {first}") from None
    size = _resolve_input_size(model, input_size)
    if size is not None:
        classifier.with_input_size(size)
    _smoke_test(classifier)
    return classifier


def _smoke_test(classifier: Classifier) -> None:
    """One forward pass on a mid-gray image: a model that cannot run fails here, not mid-explain."""
    h, w = classifier.input_size
    try:
        probs = classifier.predict(np.full((1, h, w, 3), 128, np.uint8))
    except Exception as exc:
        text = str(exc).strip().splitlines()
        first = text[0][:300] if text else type(exc).__name__
        raise ModelError(f"the model fails on a {h}×{w} test image: {first}") from None
    finally:
        classifier.images_seen = 0
    if probs.shape != (1, classifier.num_classes) or not np.all(np.isfinite(probs)):
        raise ModelError("the model outputs NaN or infinite scores on a plain gray test image")


def _count_layers(model) -> int:
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        total += _count_layers(layer) if isinstance(layer, keras.Model) else 1
    return total


def describe(classifier: Classifier) -> dict[str, Any]:
    """Facts about a loaded model for the Models page, in plain words."""
    info = classifier.summary()
    info.update(
        {
            "layers": _count_layers(classifier.model),
            "feature_layers": [layer.path for layer in classifier.conv_layers],
            "output_note": _OUTPUT_NOTES.get(classifier.output, classifier.output),
            "preprocessing_note": PREPROCESSING.get(classifier.preprocessing, ""),
            "grayscale_input": classifier.channels == 1,
            "labels_preview": list(classifier.labels[:5]),
        }
    )
    return info
