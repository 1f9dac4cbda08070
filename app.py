"""XAI Lens: why did my image classifier say that?

Entry point: page navigation plus the shared sidebar (model, image, top-k, stakeholder mode).
The sidebar is drawn on every page, so its choices survive page switches; uploads are copied
into session state at once. Pages live in pages/ and stay thin; heavy work goes through
services.py.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import streamlit as st

import services

st.set_page_config(page_title="XAI Lens", page_icon="🔍", layout="wide")

PAGES = [
    st.Page("pages/explain.py", title="Explain", icon="🔍", default=True),
    st.Page("pages/compare.py", title="Compare labels", icon="🏷️", url_path="compare"),
    st.Page("pages/trust.py", title="Trust", icon="🛡️", url_path="trust"),
    st.Page("pages/models.py", title="Models", icon="🧠", url_path="models"),
    st.Page("pages/guide.py", title="Guide", icon="📖", url_path="guide"),
]


def _on_upload() -> None:
    upload = st.session_state.get("xai_upload")
    if upload is not None:
        services.remember_image(upload.getvalue(), upload.name, "upload")


def _on_camera() -> None:
    shot = st.session_state.get("xai_camera")
    if shot is not None:
        services.remember_image(shot.getvalue(), "camera snapshot", "camera")


def _on_sample() -> None:
    name = st.session_state.get("xai_sample")
    if name:
        services.remember_image(services.sample_bytes(name), name, "sample")


def _on_custom_model() -> None:
    services.remember_custom_model_from_widgets()


def model_sidebar() -> None:
    st.header("Model")
    choices = services.model_choices()
    titles = {c.id: c.name + ("" if c.available else " — weights missing") for c in choices}
    titles["custom"] = "Your own model (.keras / .h5)…"
    services.current_model_ref()  # initialises the default choice
    st.selectbox("Classifier", list(titles), format_func=titles.get, key=services.MODEL_KEY)
    if st.session_state[services.MODEL_KEY] == "custom":
        st.file_uploader("Model file", type=["keras", "h5"], key="xai_model_file",
                         on_change=_on_custom_model,
                         help="Loaded in Keras safe mode: Lambda layers and custom code are refused.")
        st.file_uploader("Labels (optional)", type=["txt", "json", "csv"], key="xai_labels_file",
                         on_change=_on_custom_model)
        st.selectbox("Preprocessing", services.preprocessing_choices(), key="xai_preprocessing",
                     format_func=services.preprocessing_title, on_change=_on_custom_model,
                     help="How pixels are scaled before the model; 'guess' looks at the model's first layers.")
        st.number_input("Input size (only if the model accepts any size)", 0, 1024, 0, 1,
                        key="xai_input_size", on_change=_on_custom_model)
        problem = st.session_state.get(services.CUSTOM_ERROR_KEY)
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
    st.selectbox("Fit to model input", ["crop", "stretch", "pad"], key="xai_resize",
                 help="crop: centre crop like the model's evaluation; stretch: ignore aspect; pad: letterbox.")


def draw_sidebar() -> None:
    services.ensure_default_image()
    with st.sidebar:
        model_sidebar()
        image_sidebar()
        st.header("View")
        st.slider("Top-k labels", 1, 10, 3, key="xai_top_k")
        st.toggle("Stakeholder mode", key="xai_stakeholder",
                  help="Hide the knobs, enlarge pictures and add plain-language captions.")


page = st.navigation(PAGES)
draw_sidebar()
page.run()
