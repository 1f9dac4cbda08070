"""Session state of the dashboard: its keys, defaults and the user's current choices.

Streamlit-specific; the one place that knows which ``st.session_state`` key holds what.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import streamlit as st

from explainers.context import SamplingParams
from explainers.render import DEFAULT_VIEW

from ui import services
from ui.services import CustomModelChoice, ImageChoice


IMAGE_KEY = "xai_image"


MODEL_KEY = "xai_model_ref"


CUSTOM_KEY = "xai_custom_model"


RUN_KEY = "xai_run_request"


CUSTOM_ERROR_KEY = "xai_custom_error"


IMAGE_ERROR_KEY = "xai_image_error"


CURRENT_LABELS_KEY = "xai_current_labels"


TRUST_KEY = "xai_trust_request"


REGIONS_KEY = "xai_regions"


_ENV_SAMPLES = os.environ.get("XAI_LENS_DEFAULT_SAMPLES", "auto").strip().lower()  # lowered by the browser tests
DEFAULT_SAMPLES: int | str = "auto" if _ENV_SAMPLES == "auto" else int(_ENV_SAMPLES)
"""'auto' (grow until the top regions are stable, see explainers.context.SamplingParams) or a count."""

DEFAULT_THRESHOLD: float = SamplingParams.threshold
"""Auto samples stop when the expected top-5 overlap of every superpixel method with its converged answer reaches this."""

DEFAULT_BUDGET: int = SamplingParams.budget
"""Auto samples stop here at the latest, stable or not (the library's default)."""


SAMPLE_CHOICES: list[int | str] = ["auto", *sorted({50, 100, 250, 500, 1000, 2000, 5000} | (
    {DEFAULT_SAMPLES} if isinstance(DEFAULT_SAMPLES, int) else set()))]


VIEW_DEFAULTS = {
    "xai_view_style": DEFAULT_VIEW["style"], "xai_view_opacity": DEFAULT_VIEW["opacity"],
    "xai_view_cmap": DEFAULT_VIEW["cmap"], "xai_view_boundaries": DEFAULT_VIEW["boundaries"],
    "xai_view_positive": DEFAULT_VIEW["positive_only"], "xai_view_top_n": DEFAULT_VIEW["top_n"] or 0,
    "xai_view_hide_rest": DEFAULT_VIEW["hide_rest"], "xai_view_upsampling": DEFAULT_VIEW["upsampling"],
    "xai_view_outline": DEFAULT_VIEW["outline_top"],
}
"""The view controls' session keys, starting from ``explainers.render.DEFAULT_VIEW``."""

PLAIN_VIEW = {k: DEFAULT_VIEW[k] for k in ("opacity", "cmap", "upsampling", "outline_top")}
"""The default view without per-user knobs (the live camera view); pages and exports draw with
``current_view()``, which follows the colours chosen on the Explain page."""


def current_view() -> dict[str, Any]:
    """The view options chosen on the Explain page (defaults until then): every page and export
    draws with these, so colours mean the same everywhere. Stakeholder mode uses the defaults
    with the chosen colours."""
    s = {k: st.session_state.get(k, v) for k, v in VIEW_DEFAULTS.items()}
    if stakeholder_mode():
        s = {**VIEW_DEFAULTS, "xai_view_cmap": s["xai_view_cmap"]}
    return {
        "style": s["xai_view_style"], "opacity": float(s["xai_view_opacity"]), "cmap": s["xai_view_cmap"],
        "boundaries": bool(s["xai_view_boundaries"]), "positive_only": bool(s["xai_view_positive"]),
        "top_n": int(s["xai_view_top_n"]) or None, "hide_rest": bool(s["xai_view_hide_rest"]),
        "upsampling": s["xai_view_upsampling"], "outline_top": bool(s["xai_view_outline"]),
    }


SIDEBAR_DEFAULTS = {
    "xai_image_source": "Sample", "xai_resize": "crop", "xai_top_k": 3, "xai_stakeholder": False,
    "xai_preprocessing": "guess", "xai_input_size": 0,
}


PERSISTENT_KEYS = (*SIDEBAR_DEFAULTS, MODEL_KEY, "xai_sample", *VIEW_DEFAULTS, "xai_view_label")


TRUST_DEFAULTS = {"seeds": 3, "noise_sigma": 3.0, "top_n": 5, "steps": 16, "stability_samples": 300,
                  "sanity": False}


def remember_image(data: bytes, name: str, source: str) -> ImageChoice:
    choice = ImageChoice(bytes(data), name, source, hashlib.sha256(data).hexdigest())
    st.session_state[IMAGE_KEY] = choice
    return choice


def current_image_choice() -> ImageChoice | None:
    return st.session_state.get(IMAGE_KEY)


def ensure_default_image() -> None:
    """Start every new session with the bundled cat photo, so the app shows something at once."""
    if current_image_choice() is None:
        st.session_state.setdefault("xai_sample", "chelsea")
        remember_image(services.sample_bytes(st.session_state["xai_sample"]), st.session_state["xai_sample"], "sample")


def remember_regions(data: bytes, name: str) -> None:
    """The uploaded region map file (bytes + sha256), kept across page switches."""
    st.session_state[REGIONS_KEY] = services.RegionsChoice(bytes(data), name, hashlib.sha256(data).hexdigest())


def current_regions() -> "services.RegionsChoice | None":
    return st.session_state.get(REGIONS_KEY)


def remember_custom_model(choice: CustomModelChoice) -> None:
    st.session_state[CUSTOM_KEY] = choice


def current_custom_model() -> CustomModelChoice | None:
    return st.session_state.get(CUSTOM_KEY)


def current_model_ref() -> str:
    if MODEL_KEY not in st.session_state:
        st.session_state[MODEL_KEY] = services.default_model_ref()
    return st.session_state[MODEL_KEY]


def stakeholder_mode() -> bool:
    return bool(st.session_state.get("xai_stakeholder", False))


def top_k() -> int:
    return int(st.session_state.get("xai_top_k", 3))


def current_classifier() -> Any:
    """The classifier chosen in the sidebar (raises ModelError with a user message)."""
    return services.get_classifier(current_model_ref(), current_custom_model())


LABEL_KEYS = ("xai_view_label", "xai_trust_label")


def reset_labels_on_new_input(model_id: str, image_key: str, top1: int) -> None:
    """A new image or model resets the label pickers to the new top-1.

    Why: the pickers kept the previous image's label whenever it was still among the new top-k
    (e.g. *tiger cat 7.2 %* while the new top-1 was *Egyptian cat 77.5 %*).
    """
    seen = (model_id, image_key)
    if st.session_state.get("xai_labels_for") != seen:
        st.session_state["xai_labels_for"] = seen
        for key in LABEL_KEYS:
            st.session_state[key] = int(top1)


TRUST_REPORTS_KEY = "xai_trust_reports"


def _trust_report_key(classifier: Any, image: Any, req: Any, label: int) -> Any:
    """The one key of a remembered trust report: model, image, the whole run request, label."""
    from explainers.store import freeze

    return (classifier.id, image.key, freeze(req), int(label))


def remember_trust_report(classifier: Any, image: Any, req: Any, label: int, report: Any) -> None:
    """Keep a trust report so the Explain page can show its badges for the same run and label."""
    st.session_state.setdefault(TRUST_REPORTS_KEY, {})[_trust_report_key(classifier, image, req, label)] = report


def trust_report_for(classifier: Any, image: Any, req: Any, label: int) -> Any | None:
    """The trust report computed earlier for this run and label, if any."""
    return st.session_state.get(TRUST_REPORTS_KEY, {}).get(_trust_report_key(classifier, image, req, label))
