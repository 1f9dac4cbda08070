"""The one module between Streamlit pages and the library: caching, session state, progress.

Pages read widgets and draw; everything that loads a model, decodes an image or computes an
explanation goes through here, so caching rules live in one place:
- models: ``st.cache_resource`` (one instance per process; ``Classifier`` holds the inference lock);
- images: decoded once per sha256 of their bytes (never hashed from the array: Streamlit samples
  big arrays when hashing, see DESIGN.md §4);
- explanations: a hand-made bounded memo keyed by (model id, image sha256, method, parameters,
  seed, segmentation, sampling, labels). It lives in ``st.cache_resource`` so all sessions share
  it, and progress callbacks are never part of a cached function (they break on cache hits).
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import streamlit as st

from explainers.base import ExplainerError, Explanation, get_method, methods
from explainers.context import ExplainContext, SamplingParams

# ---------------------------------------------------------------------------- session state
IMAGE_KEY = "xai_image"
MODEL_KEY = "xai_model_ref"
CUSTOM_KEY = "xai_custom_model"
RUN_KEY = "xai_run_request"


@dataclass(frozen=True)
class ImageChoice:
    """The user's image as bytes (kept in session state so page switches never lose it)."""

    data: bytes
    name: str
    source: str  # "sample" | "upload" | "camera"
    sha256: str


def remember_image(data: bytes, name: str, source: str) -> ImageChoice:
    choice = ImageChoice(bytes(data), name, source, hashlib.sha256(data).hexdigest())
    st.session_state[IMAGE_KEY] = choice
    return choice


def current_image_choice() -> ImageChoice | None:
    return st.session_state.get(IMAGE_KEY)


@st.cache_data(max_entries=32, show_spinner=False)
def _decode_image(sha256: str, _data: bytes) -> np.ndarray:
    from model_zoo.images import load_image

    return load_image(_data)


def decode_image(choice: ImageChoice) -> np.ndarray:
    """RGB uint8 pixels of the chosen image (raises ImageError with a user message)."""
    return _decode_image(choice.sha256, choice.data)


@st.cache_data(max_entries=16, show_spinner=False)
def sample_bytes(name: str) -> bytes:
    from model_zoo.samples import sample_png_bytes

    return sample_png_bytes(name)


def sample_titles() -> dict[str, str]:
    from model_zoo.samples import SAMPLES

    return dict(SAMPLES)


# ---------------------------------------------------------------------------- models
@dataclass(frozen=True)
class CustomModelChoice:
    data: bytes
    filename: str
    sha256: str
    labels: tuple[str, ...] | None = None
    preprocessing: str | None = None
    input_size: tuple[int, int] | None = None


CUSTOM_ERROR_KEY = "xai_custom_error"


def remember_custom_model(choice: CustomModelChoice) -> None:
    st.session_state[CUSTOM_KEY] = choice


def preprocessing_choices() -> list[str]:
    from model_zoo.preprocessing import PREPROCESSING

    return ["guess", *PREPROCESSING]


def preprocessing_title(name: str) -> str:
    from model_zoo.preprocessing import PREPROCESSING

    return "guess from the model" if name == "guess" else f"{name}: {PREPROCESSING[name]}"


def remember_custom_model_from_widgets() -> None:
    """Sidebar callback: copy the uploaded model/labels into session state and validate them.

    Problems are stored as one message under CUSTOM_ERROR_KEY (shown by the sidebar); the
    previously loaded model, if any, stays usable.
    """
    state = st.session_state
    state[CUSTOM_ERROR_KEY] = None
    model_file = state.get("xai_model_file")
    if model_file is None:
        return
    labels = None
    labels_file = state.get("xai_labels_file")
    try:
        if labels_file is not None:
            from model_zoo.labels import parse_labels

            labels = tuple(parse_labels(labels_file.getvalue(), labels_file.name))
        data = model_file.getvalue()
        pre = state.get("xai_preprocessing") or "guess"
        size = int(state.get("xai_input_size") or 0)
        choice = CustomModelChoice(
            data=data, filename=model_file.name, sha256=hashlib.sha256(data).hexdigest(),
            labels=labels, preprocessing=None if pre == "guess" else pre,
            input_size=(size, size) if size else None,
        )
        get_classifier("custom", choice)  # load now so that errors show at once
    except EXPECTED_ERRORS as exc:
        state[CUSTOM_ERROR_KEY] = user_message(exc)
        return
    remember_custom_model(choice)


def ensure_default_image() -> None:
    """Start every new session with the bundled cat photo, so the app shows something at once."""
    if current_image_choice() is None:
        st.session_state.setdefault("xai_sample", "chelsea")
        remember_image(sample_bytes(st.session_state["xai_sample"]), st.session_state["xai_sample"], "sample")


def current_custom_model() -> CustomModelChoice | None:
    return st.session_state.get(CUSTOM_KEY)


@st.cache_data(ttl=60, show_spinner=False)
def model_choices() -> list[Any]:
    from model_zoo.registry import available_models

    return available_models()


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _catalog_classifier(ref: str) -> Any:
    from model_zoo.registry import load_classifier

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


def default_model_ref() -> str:
    from model_zoo.registry import default_model_id

    return default_model_id()


def current_model_ref() -> str:
    if MODEL_KEY not in st.session_state:
        st.session_state[MODEL_KEY] = default_model_ref()
    return st.session_state[MODEL_KEY]


def get_classifier(ref: str | None = None, custom: CustomModelChoice | None = None) -> Any:
    """The selected classifier (raises ModelError with a user message)."""
    ref = ref or current_model_ref()
    if ref == "custom":
        custom = custom or current_custom_model()
        if custom is None:
            from model_zoo.classifier import ModelError

            raise ModelError("upload a .keras or .h5 model in the sidebar first")
        return _custom_classifier(
            custom.sha256, custom.filename, custom.labels, custom.preprocessing,
            custom.input_size, custom.data,
        )
    return _catalog_classifier(ref)


@dataclass(frozen=True)
class PreparedImage:
    """The image at the model's input size, plus how to map coordinates back to the file."""

    pixels: np.ndarray
    fitted: Any
    key: str  # sha256 of the original bytes + resize policy


def prepare(classifier: Any, choice: ImageChoice, policy: str = "crop") -> PreparedImage:
    fitted = _prepare_cached(classifier.id, choice.sha256, policy, _classifier=classifier, _choice=choice)
    return PreparedImage(fitted.image, fitted, f"{choice.sha256}:{policy}")


@st.cache_data(max_entries=32, show_spinner=False)
def _prepare_cached(model_id: str, sha256: str, policy: str, *, _classifier: Any, _choice: ImageChoice) -> Any:
    from model_zoo.registry import prepare_image

    return prepare_image(_classifier, decode_image(_choice), policy=policy)


def predictions(classifier: Any, image: PreparedImage, top_k: int) -> list[tuple[int, str, float]]:
    probs = store().probabilities(classifier, image)
    order = np.argsort(-probs, kind="stable")[:top_k]
    return [(int(i), classifier.labels[int(i)], float(probs[i])) for i in order]


# ---------------------------------------------------------------------------- explanations
def _freeze(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class RunRequest:
    """Everything that determines an explanation run (and therefore its cache key)."""

    methods: tuple[tuple[str, Any], ...]  # (name, frozen params)
    labels: tuple[int, ...]
    seed: int = 0
    samples: int = 1000
    fill: str = "mean"
    segmentation: str = "quickshift"
    segmentation_params: Any = ()

    def method_params(self, name: str) -> dict[str, Any]:
        for n, params in self.methods:
            if n == name:
                return dict(params)
        return {}


class ExplanationStore:
    """Bounded, thread-safe memo of explanation contexts and results shared by all sessions."""

    def __init__(self, max_contexts: int = 6, max_results: int = 400) -> None:
        self._lock = threading.Lock()
        self._contexts: OrderedDict[Any, tuple[ExplainContext, threading.Lock]] = OrderedDict()
        self._results: OrderedDict[Any, list[Explanation]] = OrderedDict()
        self._probs: OrderedDict[Any, np.ndarray] = OrderedDict()
        self.max_contexts = max_contexts
        self.max_results = max_results

    def clear(self) -> None:
        with self._lock:
            self._contexts.clear()
            self._results.clear()
            self._probs.clear()

    def probabilities(self, classifier: Any, image: PreparedImage) -> np.ndarray:
        key = (classifier.id, image.key)
        with self._lock:
            if key in self._probs:
                self._probs.move_to_end(key)
                return self._probs[key]
        probs = classifier.predict(image.pixels[None])[0]
        with self._lock:
            self._probs[key] = probs
            while len(self._probs) > 64:
                self._probs.popitem(last=False)
        return probs

    def _context(self, classifier: Any, image: PreparedImage, req: RunRequest):
        key = (classifier.id, image.key, req.seed, req.fill, req.segmentation, req.segmentation_params)
        with self._lock:
            if key in self._contexts:
                self._contexts.move_to_end(key)
                return self._contexts[key]
            ctx = ExplainContext(
                classifier, image.pixels, seed=req.seed, segmentation=req.segmentation,
                segmentation_params=dict(req.segmentation_params) or None,
                sampling=SamplingParams(samples=req.samples, fill=req.fill),
            )
            ctx.cache["probs"] = self._probs.get((classifier.id, image.key))
            if ctx.cache["probs"] is None:
                del ctx.cache["probs"]
            entry = (ctx, threading.Lock())
            self._contexts[key] = entry
            while len(self._contexts) > self.max_contexts:
                self._contexts.popitem(last=False)
            return entry

    def lookup(self, classifier: Any, image: PreparedImage, req: RunRequest, name: str) -> list[Explanation] | None:
        key = self._result_key(classifier, image, req, name)
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self._results.move_to_end(key)
            return found

    def _result_key(self, classifier: Any, image: PreparedImage, req: RunRequest, name: str) -> Any:
        samples = req.samples if get_method(name).family == "perturbation" else None
        return (classifier.id, image.key, name, _freeze(req.method_params(name)), req.labels,
                req.seed, req.fill, req.segmentation, req.segmentation_params, samples)

    def compute(
        self, classifier: Any, image: PreparedImage, req: RunRequest, name: str,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> list[Explanation]:
        """Cached result or a fresh run (sharing the context's perturbation pass)."""
        found = self.lookup(classifier, image, req, name)
        if found is not None:
            return found
        from explainers.runner import run_method

        ctx, ctx_lock = self._context(classifier, image, req)
        with ctx_lock:
            ctx.sampling = dataclasses.replace(ctx.sampling, samples=req.samples)
            ctx.progress = progress
            try:
                results = run_method(ctx, name, req.method_params(name), list(req.labels))
            finally:
                ctx.progress = None
        key = self._result_key(classifier, image, req, name)
        with self._lock:
            self._results[key] = results
            while len(self._results) > self.max_results:
                self._results.popitem(last=False)
        return results

    def context_for(self, classifier: Any, image: PreparedImage, req: RunRequest) -> ExplainContext:
        return self._context(classifier, image, req)[0]

    def trust_lookup(self, classifier: Any, image: PreparedImage, req: RunRequest, label: int,
                     settings: Mapping[str, Any], mask_key: str = "") -> Any | None:
        key = ("trust", classifier.id, image.key, _freeze(req), int(label), _freeze(settings), mask_key)
        with self._lock:
            return self._results.get(key)

    def trust(self, classifier: Any, image: PreparedImage, req: RunRequest, label: int,
              settings: Mapping[str, Any], mask: np.ndarray | None = None, mask_key: str = "",
              progress: Callable[[int, int, str], None] | None = None) -> Any:
        """The trust report of one label for the request's explanations (memoised).

        Reuses the request's context, so the deletion curves, convergence and bootstrap use the
        perturbation rows already computed; stability reruns are kept in the context for the
        next label.
        """
        found = self.trust_lookup(classifier, image, req, label, settings, mask_key)
        if found is not None:
            return found
        from explainers.trust import trust_report

        results = [r for name, _ in req.methods
                   for r in self.compute(classifier, image, req, name) if r.label == int(label)]
        ctx, ctx_lock = self._context(classifier, image, req)
        with ctx_lock:
            ctx.sampling = dataclasses.replace(ctx.sampling, samples=req.samples)
            report = trust_report(ctx, results, int(label), mask=mask, progress=progress, **dict(settings))
        key = ("trust", classifier.id, image.key, _freeze(req), int(label), _freeze(settings), mask_key)
        with self._lock:
            self._results[key] = report
        return report


@st.cache_resource
def store() -> ExplanationStore:
    return ExplanationStore()


def method_specs(classifier: Any | None = None) -> dict[str, Any]:
    """Registered methods usable with this classifier (white-box ones need gradients)."""
    found = methods()
    if classifier is not None and not getattr(classifier, "supports_gradients", False):
        found = {k: v for k, v in found.items() if not v.needs_gradients}
    return found


def segment_preview(image: PreparedImage, algorithm: str, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(segments, picture with boundaries) — cheap, before any model call."""
    return _segment_cached(image.key, algorithm, _freeze(params), _pixels=image.pixels)


@st.cache_data(max_entries=64, show_spinner=False)
def _segment_cached(key: str, algorithm: str, params: Any, *, _pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from explainers.render import draw_boundaries
    from explainers.segmentation import segment

    segments = segment(_pixels, algorithm, dict(params) or None)
    return segments, draw_boundaries(_pixels, segments)


class ProgressReporter:
    """Drives an ``st.progress`` bar from the engine's callback, with an ETA."""

    def __init__(self, placeholder: Any, label: str) -> None:
        self.placeholder = placeholder
        self.label = label
        self.start = time.perf_counter()
        self.bar = placeholder.progress(0.0, text=f"{label}: starting…")

    def __call__(self, done: int, total: int, stage: str) -> None:
        elapsed = time.perf_counter() - self.start
        frac = done / total if total else 1.0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        text = f"{self.label}: {done}/{total} model calls"
        if frac > 0 and frac < 1:
            text += f" · about {eta:.0f} s left"
        self.bar.progress(min(1.0, frac), text=text)

    def done(self) -> None:
        self.placeholder.empty()


def user_message(exc: BaseException) -> str:
    """One readable line for an expected error (bad image, model, parameter)."""
    text = str(exc).strip() or exc.__class__.__name__
    return text[0].upper() + text[1:] if text else text


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, ExplainerError, OSError)


def download_weights(model_id: str, progress: Callable[[int, int], None] | None = None) -> str:
    """Fetch a catalog model's ImageNet weights on explicit request (hash-checked, atomic)."""
    from model_zoo.catalog import get_entry
    from model_zoo.weights import download_weights as fetch

    path = fetch(get_entry(model_id), progress)
    model_choices.clear()
    return str(path)
