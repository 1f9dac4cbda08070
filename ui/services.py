"""Cached services between the Streamlit pages and the library: models, images, the run store, progress.

Everything that loads a model, decodes an image or computes an explanation goes through here,
so caching rules live in one place:
- models: catalog models from ``model_zoo.registry``'s one bounded LRU cache, uploads in
  ``st.cache_resource`` (one instance per process; ``Classifier`` holds the inference lock);
- images: fitted to the model input once per (model, sha256 of the bytes, policy) and kept in a
  byte-bounded LRU (``explainers.bytecache``); full-resolution pixels are never cached (never
  hashed from the array either: Streamlit samples big arrays when hashing, see DESIGN.md §4);
- explanations: one ``explainers.store.ExplanationStore`` in ``st.cache_resource``, shared by all
  sessions; progress callbacks are never part of a cached function (they break on cache hits).
Functions here take explicit arguments; session state lives in ``ui.state``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import streamlit as st

from explainers.base import ExplainerError, methods_for
from explainers.bytecache import ByteLRU
from explainers.store import ExplanationStore, PreparedImage, freeze
from ui.progress import ProgressReporter  # noqa: F401  (pages and panels reach it through services)


@dataclass(frozen=True)
class ImageChoice:
    """The user's image as bytes (kept in session state so page switches never lose it)."""

    data: bytes
    name: str
    source: str  # "sample" | "upload" | "camera"
    sha256: str

    @property
    def title(self) -> str:
        """What a person calls it: a bundled sample's title ("Cat (Chelsea)"), else the file name."""
        return sample_titles().get(self.name, self.name) if self.source == "sample" else self.name


@dataclass(frozen=True)
class RegionsChoice:
    """The user's region map file (PNG of ids or colours), as uploaded."""

    data: bytes
    name: str
    sha256: str


def fit_regions(image: "PreparedImage", regions: RegionsChoice) -> tuple[str, Any]:
    """(store key, RegionMap) of the region map fitted to the model input like ``image``;
    registered in the run store so that explanations can use it. Raises RegionError."""
    shape = tuple(int(v) for v in image.pixels.shape[:2])
    fitted = _fit_regions_cached(image.key, shape, regions.sha256, _image=image, _regions=regions)
    key = f"{regions.sha256}:{image.key}:{fitted.segments.shape[0]}x{fitted.segments.shape[1]}"
    store().add_regions(key, fitted.segments)
    return key, fitted


@st.cache_data(max_entries=16, show_spinner=False)
def _fit_regions_cached(image_key: str, shape: tuple, sha256: str, *, _image: Any, _regions: RegionsChoice) -> Any:
    from model_zoo.regions import load_region_map

    return load_region_map(_regions.data, _image.fitted)


FITTED_CACHE_BYTES = 256 * 2**20
"""Fitted images (model input size + the geometry back to the file) kept for all sessions."""

SEGMENT_CACHE_BYTES = 128 * 2**20
"""Superpixel previews (segments + boundary picture) kept for all sessions."""


@st.cache_resource(show_spinner=False)
def _fitted_cache() -> ByteLRU:
    return ByteLRU(FITTED_CACHE_BYTES)


@st.cache_resource(show_spinner=False)
def _segment_cache() -> ByteLRU:
    return ByteLRU(SEGMENT_CACHE_BYTES)


def decode_image(choice: ImageChoice) -> np.ndarray:
    """RGB uint8 pixels of the chosen image at full resolution (raises ImageError with a user message).

    Not cached: full-resolution pixels of big photos are what made memory follow image size;
    ``prepare`` keeps only the fitted image and its coordinate mapping.
    """
    from model_zoo.images import load_image

    return load_image(choice.data)


@st.cache_data(max_entries=16, show_spinner=False)
def sample_bytes(name: str) -> bytes:
    from model_zoo.samples import sample_png_bytes

    return sample_png_bytes(name)


def sample_titles() -> dict[str, str]:
    from model_zoo.samples import SAMPLES

    return dict(SAMPLES)


@dataclass(frozen=True)
class CustomModelChoice:
    data: bytes
    filename: str
    sha256: str
    labels: tuple[str, ...] | None = None
    preprocessing: str | None = None
    input_size: tuple[int, int] | None = None
    kind: str = "keras"  # "keras" | "sklearn"
    channels: int = 1  # sklearn: values per pixel
    value_range: tuple[float, float] = (0.0, 1.0)  # sklearn: a black and a white pixel's values


def preprocessing_choices() -> list[str]:
    from model_zoo.preprocessing import PREPROCESSING

    return ["guess", *PREPROCESSING]


def preprocessing_title(name: str) -> str:
    from model_zoo.preprocessing import PREPROCESSING

    return "guess from the model" if name == "guess" else f"{name}: {PREPROCESSING[name]}"


@st.cache_data(ttl=60, show_spinner=False)
def model_choices() -> list[Any]:
    from model_zoo.registry import available_models

    return available_models()


def _catalog_classifier(ref: str) -> Any:
    """Catalog models come from ``model_zoo.registry``'s one bounded cache (no second layer here)."""
    from model_zoo.registry import load_classifier

    with st.spinner("Loading the model… (the first time after the server starts, TensorFlow "
                    "starts too)", show_time=True):
        return load_classifier(ref)


@st.cache_resource(max_entries=3, show_spinner="Loading your model…")
def _custom_classifier(
    sha256: str, filename: str, labels: tuple[str, ...] | None, preprocessing: str | None,
    input_size: tuple[int, int] | None, _data: bytes,
) -> Any:
    from model_zoo.custom import load_custom_model

    return load_custom_model(
        _data, filename, labels=list(labels) if labels else None,
        preprocessing=preprocessing, input_size=input_size,
    )


def clear_classifier_cache() -> None:
    """Forget loaded catalog models and the catalog's weight status (after a download)."""
    from model_zoo.registry import clear_cache

    clear_cache()
    model_choices.clear()


def default_model_ref() -> str:
    from model_zoo.registry import default_model_id

    return default_model_id()


@st.cache_resource(max_entries=3, show_spinner="Loading your scikit-learn model…")
def _sklearn_classifier(
    sha256: str, filename: str, labels: tuple[str, ...] | None, input_size: tuple[int, int],
    channels: int, value_range: tuple[float, float], _data: bytes,
) -> Any:
    from model_zoo.sklearn_model import load_sklearn_model

    return load_sklearn_model(
        _data, filename, input_size=input_size, channels=channels, value_range=value_range,
        labels=list(labels) if labels else None,
    )


def get_classifier(ref: str, custom: CustomModelChoice | None = None) -> Any:
    """The classifier ``ref`` (``"custom"``/``"sklearn"``: the uploaded ``custom``); raises
    ModelError with a user message."""
    if ref == "sklearn":
        from model_zoo.classifier import ModelError

        if custom is None or custom.kind != "sklearn":
            raise ModelError("upload a scikit-learn .skops model in the sidebar first")
        if custom.input_size is None:
            raise ModelError("give the input height and width the model was trained on")
        return _sklearn_classifier(
            custom.sha256, custom.filename, custom.labels, custom.input_size, custom.channels,
            custom.value_range, custom.data,
        )
    if ref == "custom":
        if custom is None or custom.kind != "keras":
            from model_zoo.classifier import ModelError

            raise ModelError("upload a .keras or .h5 model in the sidebar first")
        return _custom_classifier(
            custom.sha256, custom.filename, custom.labels, custom.preprocessing,
            custom.input_size, custom.data,
        )
    return _catalog_classifier(ref)


def prepare(classifier: Any, choice: ImageChoice, policy: str = "crop") -> PreparedImage:
    """The image fitted to the model input (shared by all sessions, bounded by bytes).

    The full-resolution decode is dropped as soon as the image is fitted; the cached
    ``FittedImage`` holds the input-size pixels (read-only) and the mapping back to the file.
    """
    from model_zoo.registry import prepare_image

    def fit() -> Any:
        fitted = prepare_image(classifier, decode_image(choice), policy=policy)
        fitted.image.setflags(write=False)  # shared between sessions: nobody may draw on it
        return fitted

    key = (classifier.id, tuple(classifier.input_size or ()), choice.sha256, policy)
    fitted = _fitted_cache().get_or_compute(key, fit)
    return PreparedImage(fitted.image, fitted, f"{choice.sha256}:{policy}")


def predictions(classifier: Any, image: PreparedImage, top_k: int) -> list[tuple[int, str, float]]:
    # A cached answer returns before the spinner's half-second delay: it only shows on a first
    # forward (a model's first call also traces it: seconds, with nothing else on the page yet).
    with st.spinner("Asking the model what it sees…"):
        probs = store().probabilities(classifier, image)
    order = np.argsort(-probs, kind="stable")[:top_k]
    return [(int(i), classifier.labels[int(i)], float(probs[i])) for i in order]


@st.cache_resource(show_spinner=False)
def store() -> ExplanationStore:
    return ExplanationStore()


def method_specs(classifier: Any | None = None) -> dict[str, Any]:
    """Registered methods usable with this classifier, in display order (all for ``None``)."""
    return methods_for(classifier)


def method_table_markdown() -> str:
    """The Guide's method table, read from the registry (one row per method, display order)."""
    rows = ["| Method | id | Family | Needs | Colour scale | What it does |", "|---|---|---|---|---|---|"]
    for name, spec in methods_for(None).items():
        needs = ", ".join(n for n, flag in (("gradients", spec.needs_gradients),
                                              ("feature maps", spec.needs_feature_maps)) if flag) or "only predictions"
        scale = (spec.scale_group or "its own") + ("" if spec.signed else "; one-sided, from 0 (never negative)")
        rows.append(f"| **{spec.title}** | `{name}` | {spec.family} | {needs} | {scale} | {spec.description} |")
    return "\n".join(rows)


def segment_preview(image: PreparedImage, algorithm: str, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(segments, picture with boundaries) — cheap, before any model call."""
    from explainers.render import draw_boundaries
    from explainers.segmentation import segment

    frozen = freeze(params)

    def compute() -> tuple[np.ndarray, np.ndarray]:
        segments = segment(image.pixels, algorithm, dict(frozen) or None)
        picture = draw_boundaries(image.pixels, segments)
        segments.setflags(write=False)
        picture.setflags(write=False)
        return segments, picture

    # the fitted pixels depend on the model (input size, crop): key on them, not on the file
    digest = hashlib.sha256(np.ascontiguousarray(image.pixels).tobytes()).hexdigest()
    key = (digest, image.pixels.shape, algorithm, frozen)
    return _segment_cache().get_or_compute(key, compute)


def user_message(exc: BaseException) -> str:
    """One readable line for an expected error (bad image, model, parameter), escaped for markdown.

    Messages quote file names and file contents (a labels file's bad entry), so they are
    escaped: shown with ``st.error`` they stay text, never links or images.
    """
    from explainers.text import escape_markdown

    text = str(exc).strip() or exc.__class__.__name__
    text = text[0].upper() + text[1:] if text else text
    return escape_markdown(text[:2000])


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, ExplainerError, OSError)


def download_weights(model_id: str, progress: Callable[[int, int], None] | None = None) -> str:
    """Fetch a catalog model's ImageNet weights on explicit request (hash-checked, atomic)."""
    from model_zoo.catalog import get_entry
    from model_zoo.weights import download_weights as fetch

    path = fetch(get_entry(model_id), progress)
    model_choices.clear()
    return str(path)
