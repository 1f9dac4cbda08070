"""What every page calls first: keep the sidebar's choices, draw it, and get a usable model + image."""
from __future__ import annotations

from typing import Any

import streamlit as st

from explainers.store import PreparedImage
from ui import services, state
from ui.sidebar import draw_sidebar


def page_setup() -> None:
    """Call first on every page: keeps sidebar choices across page switches and draws the sidebar.

    Streamlit drops the state of widgets that a page does not draw; re-assigning the keys turns
    them into plain session values that survive the switch (uploads are copied at once by
    their callbacks). The sidebar is drawn by each page rather than by app.py because AppTest
    only keeps a file page's own elements on reruns.
    """
    session = st.session_state
    for key in state.PERSISTENT_KEYS:
        if key in session:
            session[key] = session[key]
    for key, value in state.SIDEBAR_DEFAULTS.items():
        session.setdefault(key, value)
    draw_sidebar()


def _show_original_image() -> None:
    """The chosen image as it is (no model needed), so it stays on screen while a model is missing."""
    choice = state.current_image_choice()
    if choice is None:
        return
    try:
        pixels = services.decode_image(choice)
    except services.EXPECTED_ERRORS:
        return
    st.image(pixels, caption=choice.title, width=360)


def require_model_and_image() -> tuple[Any, PreparedImage]:
    """The chosen classifier and image, or an error message and ``st.stop()``."""
    ref = state.current_model_ref()
    custom = state.current_custom_model()
    wanted = {"custom": "keras", "sklearn": "sklearn"}.get(ref)
    if wanted is not None and (custom is None or custom.kind != wanted):
        # Exactly one message: the rejection (kept from the upload callback) or what to do.
        problem = st.session_state.get(state.CUSTOM_ERROR_KEY)
        if problem:
            st.error(f"Your model file was rejected: {problem}")
        elif wanted == "keras":
            st.info("Upload a .keras or .h5 model file in the sidebar.")
        else:
            st.info("Upload a scikit-learn .skops model in the sidebar and declare its input.")
        st.stop()
    try:
        classifier = state.current_classifier()
    except services.EXPECTED_ERRORS as exc:
        from ui.downloads import offer_download, weights_facts

        if weights_facts(ref) is not None:
            _show_original_image()
            offer_download(ref)
            st.info("Or pick another model in the sidebar; the bundled EfficientNet-Lite0 works offline.")
            st.stop()
        st.error(f"The model could not be loaded: {services.user_message(exc)}")
        st.info("Pick another model in the sidebar; the bundled EfficientNet-Lite0 always works offline.")
        st.stop()
    choice = state.current_image_choice()
    if choice is None:
        st.info("Choose an image in the sidebar.")
        st.stop()
    try:
        if classifier.input_size is None:
            raise ValueError("this model accepts any input size; set an input size in the sidebar")
        image = services.prepare(classifier, choice, st.session_state.get("xai_resize", "crop"))
    except Exception as exc:  # noqa: BLE001 - a hostile file must never replace the page with a traceback
        st.error(f"This image cannot be used: {services.user_message(exc)}")
        st.info("Upload a PNG, JPEG, GIF, BMP, TIFF or WebP photo, or pick a sample image.")
        st.stop()
    return classifier, image
