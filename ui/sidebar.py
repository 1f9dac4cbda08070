"""The shared sidebar (model, image, top-k, stakeholder mode) and its upload callbacks."""
from __future__ import annotations

import hashlib
from typing import Callable

import streamlit as st

from ui import services, state


def _guarded(callback: Callable[[], None], error_key: str) -> Callable[[], None]:
    """An upload callback whose unexpected failures become one message, never a traceback.

    Expected problems (bad files) are reported by the callbacks themselves; anything else
    (a library bug on a hostile file, memory exhaustion) is shown under ``error_key`` too.
    """
    def run() -> None:
        st.session_state[error_key] = None
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - the user sees a message, the session survives
            st.session_state[error_key] = (
                f"this upload could not be read ({exc.__class__.__name__}: {services.user_message(exc)})"
            )

    return run


def _on_upload() -> None:
    upload = st.session_state.get("xai_upload")
    if upload is not None:
        state.remember_image(upload.getvalue(), upload.name, "upload")


def _on_camera() -> None:
    shot = st.session_state.get("xai_camera")
    if shot is not None:
        state.remember_image(shot.getvalue(), "camera snapshot", "camera")


def _on_sample() -> None:
    name = st.session_state.get("xai_sample")
    if name:
        state.remember_image(services.sample_bytes(name), name, "sample")


def remember_custom_model_from_widgets() -> None:
    """Sidebar callback: copy the uploaded model/labels into session state and validate them.

    After a page switch the uploaders are empty (Streamlit drops widget state of pages not
    drawn) but the remembered model is still in use: a preprocessing or input-size change then
    applies to the remembered model and its labels, instead of being silently ignored.
    Problems are stored as one message under CUSTOM_ERROR_KEY (shown by the sidebar); the
    previously loaded model, if any, stays usable.
    """
    session = st.session_state
    session[state.CUSTOM_ERROR_KEY] = None
    remembered = state.current_custom_model()
    model_file = session.get("xai_model_file")
    labels_file = session.get("xai_labels_file")
    if model_file is None and remembered is None:
        return
    try:
        if model_file is not None:
            data, filename = model_file.getvalue(), model_file.name
            sha = hashlib.sha256(data).hexdigest()
        else:  # the uploader was emptied by a page switch: keep the remembered model
            data, filename, sha = remembered.data, remembered.filename, remembered.sha256
        if labels_file is not None:
            from model_zoo.labels import parse_labels

            labels = tuple(parse_labels(labels_file.getvalue(), labels_file.name))
        elif model_file is None:
            labels = remembered.labels
        else:
            labels = None
        pre = session.get("xai_preprocessing") or "guess"
        size = int(session.get("xai_input_size") or 0)
        choice = services.CustomModelChoice(
            data=data, filename=filename, sha256=sha,
            labels=labels, preprocessing=None if pre == "guess" else pre,
            input_size=(size, size) if size else None,
        )
        services.get_classifier("custom", choice)  # load now so that errors show at once
    except services.EXPECTED_ERRORS as exc:
        session[state.CUSTOM_ERROR_KEY] = services.user_message(exc)
        return
    state.remember_custom_model(choice)


_on_custom_model = _guarded(remember_custom_model_from_widgets, state.CUSTOM_ERROR_KEY)
_on_upload = _guarded(_on_upload, state.IMAGE_ERROR_KEY)
_on_camera = _guarded(_on_camera, state.IMAGE_ERROR_KEY)
_on_sample = _guarded(_on_sample, state.IMAGE_ERROR_KEY)


def model_sidebar() -> None:
    st.header("Model")
    choices = services.model_choices()
    titles = {c.id: c.name + ("" if c.available else " — weights missing") for c in choices}
    titles["custom"] = "Your own model (.keras / .h5)…"
    state.current_model_ref()  # initialises the default choice
    st.selectbox("Classifier", list(titles), format_func=titles.get, key=state.MODEL_KEY)
    if st.session_state[state.MODEL_KEY] == "custom":
        st.file_uploader("Model file", type=["keras", "h5"], key="xai_model_file",
                         on_change=_on_custom_model,
                         help="Loaded in Keras safe mode: Lambda layers and custom code are refused.")
        st.file_uploader("Labels (optional)", type=["txt", "json", "csv"], key="xai_labels_file",
                         on_change=_on_custom_model)
        st.selectbox("Preprocessing", services.preprocessing_choices(), key="xai_preprocessing",
                     format_func=services.preprocessing_title, on_change=_on_custom_model,
                     help="How pixels are scaled before the model; 'guess' looks at the model's first layers.")
        st.number_input("Input size (only if the model accepts any size)", 0, 1024, step=1,
                        key="xai_input_size", on_change=_on_custom_model)
        problem = st.session_state.get(state.CUSTOM_ERROR_KEY)
        if problem:
            st.error(problem)


def image_sidebar() -> None:
    st.header("Image")
    source = st.radio("Source", ["Sample", "Upload", "Camera"], horizontal=True, key="xai_image_source")
    if source == "Sample":
        titles = services.sample_titles()
        st.selectbox("Sample image", list(titles), format_func=titles.get, key="xai_sample",
                     on_change=_on_sample)
    elif source == "Upload":
        st.file_uploader("Image file", type=["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"],
                         key="xai_upload", on_change=_on_upload)
    else:
        st.camera_input("Snapshot", key="xai_camera", on_change=_on_camera)
    problem = st.session_state.get(state.IMAGE_ERROR_KEY)
    if problem:
        st.error(problem)
    st.selectbox("Fit to model input", ["crop", "stretch", "pad"], key="xai_resize",
                 help="crop: centre crop like the model's evaluation; stretch: ignore aspect; pad: letterbox.")


def draw_sidebar() -> None:
    state.ensure_default_image()
    with st.sidebar:
        model_sidebar()
        image_sidebar()
        st.header("View")
        st.slider("Top-k labels", 1, 10, key="xai_top_k")
        st.toggle("Stakeholder mode", key="xai_stakeholder",
                  help="Hide the knobs, enlarge pictures and add plain-language captions.")
