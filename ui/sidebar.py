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
                f"This upload could not be read ({exc.__class__.__name__}: {services.user_message(exc)})"
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


def _on_regions() -> None:
    upload = st.session_state.get("xai_regions_file")
    if upload is not None:
        state.remember_regions(upload.getvalue(), upload.name)
        st.session_state["xai_seg_algorithm"] = "regions"  # a new map is meant to be used
    else:
        st.session_state.pop(state.REGIONS_KEY, None)


def _on_sample() -> None:
    name = st.session_state.get("xai_sample")
    if name:
        state.remember_image(services.sample_bytes(name), name, "sample")


def remember_custom_model_from_widgets() -> None:
    """Sidebar callback: copy the uploaded model/labels into session state and validate them.

    Problems are stored as one message under CUSTOM_ERROR_KEY, shown once by the page (not
    also in the sidebar); a rejected file replaces the previously loaded model, so the page
    never explains with a model the user meant to replace. After a page switch the uploaders
    are empty (Streamlit drops the widget state of pages not drawn) while the remembered model
    is still in use: a preprocessing, input-size or labels change then applies to the
    remembered model instead of being silently ignored.
    """
    session = st.session_state
    session[state.CUSTOM_ERROR_KEY] = None
    remembered = state.current_custom_model()
    if remembered is not None and remembered.kind != "keras":
        remembered = None
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
        session[state.CUSTOM_KEY] = None
        return
    state.remember_custom_model(choice)


_on_custom_model = _guarded(remember_custom_model_from_widgets, state.CUSTOM_ERROR_KEY)


def remember_sklearn_model_from_widgets() -> None:
    """Sidebar callback for a scikit-learn upload: declared size, channels and value range."""
    session = st.session_state
    session[state.CUSTOM_ERROR_KEY] = None
    model_file = session.get("xai_skops_file")
    if model_file is None:
        return
    try:
        labels = None
        labels_file = session.get("xai_skops_labels")
        if labels_file is not None:
            from model_zoo.labels import parse_labels

            labels = tuple(parse_labels(labels_file.getvalue(), labels_file.name))
        data = model_file.getvalue()
        choice = services.CustomModelChoice(
            data=data, filename=model_file.name, sha256=hashlib.sha256(data).hexdigest(),
            labels=labels, kind="sklearn",
            input_size=(int(session.get("xai_skops_height", 8)), int(session.get("xai_skops_width", 8))),
            channels=int(session.get("xai_skops_channels", 1)),
            value_range=(float(session.get("xai_skops_low", 0.0)), float(session.get("xai_skops_high", 1.0))),
        )
        services.get_classifier("sklearn", choice)  # load now so that errors show at once
    except services.EXPECTED_ERRORS as exc:
        session[state.CUSTOM_ERROR_KEY] = services.user_message(exc)
        session[state.CUSTOM_KEY] = None
        return
    state.remember_custom_model(choice)


_on_upload = _guarded(_on_upload, state.IMAGE_ERROR_KEY)
_on_camera = _guarded(_on_camera, state.IMAGE_ERROR_KEY)
_on_sample = _guarded(_on_sample, state.IMAGE_ERROR_KEY)
_on_regions = _guarded(_on_regions, state.IMAGE_ERROR_KEY)
_on_sklearn_model = _guarded(remember_sklearn_model_from_widgets, state.CUSTOM_ERROR_KEY)


def _sklearn_sidebar() -> None:
    st.file_uploader("scikit-learn model (.skops)", type=["skops"], key="xai_skops_file",
                     on_change=_on_sklearn_model,
                     help="A fitted Pipeline or classifier with predict_proba on flattened images, "
                     "saved with skops.io.dump. Loaded with skops' safe loader; pickles are never loaded.")
    st.file_uploader("Labels (optional)", type=["txt", "json", "csv"], key="xai_skops_labels",
                     on_change=_on_sklearn_model)
    cols = st.columns(2)
    cols[0].number_input("Input height", 1, 1024, 8, step=1, key="xai_skops_height",
                         on_change=_on_sklearn_model)
    cols[1].number_input("Input width", 1, 1024, 8, step=1, key="xai_skops_width",
                         on_change=_on_sklearn_model)
    st.radio("Channels", [1, 3], horizontal=True, key="xai_skops_channels",
             format_func={1: "1 (gray)", 3: "3 (RGB)"}.get, on_change=_on_sklearn_model)
    cols = st.columns(2)
    cols[0].number_input("Value of black", value=0.0, key="xai_skops_low", format="%.4g",
                         on_change=_on_sklearn_model)
    cols[1].number_input("Value of white", value=1.0, key="xai_skops_high", format="%.4g",
                         on_change=_on_sklearn_model,
                         help="The values a black and a white pixel had in training "
                         "(e.g. 0 and 16 for scikit-learn's digits).")
    st.caption("Gradient and CAM methods are hidden: scikit-learn models give no gradients.")


def model_sidebar() -> None:
    st.header("Model")
    choices = services.model_choices()
    titles = {c.id: c.name + ("" if c.available else " — weights missing") for c in choices}
    titles["custom"] = "Your own model (.keras / .h5)…"
    titles["sklearn"] = "Your scikit-learn model (.skops)…"
    state.current_model_ref()  # initialises the default choice
    st.selectbox("Classifier", list(titles), format_func=titles.get, key=state.MODEL_KEY)
    # The select box cuts long names: the full name of the current choice, wrapped.
    st.caption(titles.get(st.session_state[state.MODEL_KEY], ""))
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
    elif st.session_state[state.MODEL_KEY] == "sklearn":
        _sklearn_sidebar()


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
        choice = state.current_image_choice()
        if st.session_state.get("xai_upload") is None and choice is not None and choice.source == "upload":
            # the uploader empties on a page switch (or the image came from the Audit page)
            from explainers.text import escape_markdown

            st.caption(f"In use: **{escape_markdown(choice.name)}**")
    else:
        st.camera_input("Snapshot", key="xai_camera", on_change=_on_camera)
    problem = st.session_state.get(state.IMAGE_ERROR_KEY)
    if problem:
        st.error(problem)
    st.selectbox("Fit to model input", ["crop", "stretch", "pad"], key="xai_resize",
                 help="crop: centre crop like the model's evaluation; stretch: ignore aspect; pad: letterbox.")
    st.file_uploader("Your regions (optional)", type=["png", "bmp", "tif", "tiff", "gif"],
                     key="xai_regions_file", on_change=_on_regions,
                     help="A PNG the size of the image with one grey value (id) or one colour per "
                     "region; choose 'your regions' under Superpixels to use it instead.")


def draw_sidebar() -> None:
    state.ensure_default_image()
    with st.sidebar:
        model_sidebar()
        st.slider("Labels to explain (top-k)", 1, 10, key="xai_top_k",
                  help="Each label is explained by every chosen method: more labels, more model work "
                       "(LIME and KernelSHAP reuse their samples; Grad-CAM and the others run again).")
        image_sidebar()
        st.header("View")
        st.toggle("Stakeholder mode", key="xai_stakeholder",
                  help="Hide the knobs, enlarge pictures and add plain-language captions.")
