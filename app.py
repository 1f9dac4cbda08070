"""XAI Lens: why did my image classifier say that?

Entry point: page configuration and navigation. Every page starts with ``ui.page.page_setup()``,
which draws the shared sidebar (model, image, top-k, stakeholder mode) and keeps its choices
across page switches. Pages live in pages/ and stay thin; Streamlit helpers live in ui/ and
heavy work goes through ui/services.py into the library (explainers/, model_zoo/).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ui.live import preload_webrtc  # noqa: E402

preload_webrtc()  # before anything imports TensorFlow (see ui/live.py)

import streamlit as st

st.set_page_config(page_title="XAI Lens", page_icon=":material/image_search:", layout="wide")

PAGES = [
    st.Page("pages/explain.py", title="Explain", icon=":material/image_search:", default=True),
    st.Page("pages/compare.py", title="Compare labels", icon=":material/compare:", url_path="compare"),
    st.Page("pages/trust.py", title="Trust", icon=":material/verified_user:", url_path="trust"),
    st.Page("pages/audit.py", title="Audit", icon=":material/photo_library:", url_path="audit"),
    st.Page("pages/models.py", title="Models", icon=":material/neurology:", url_path="models"),
    st.Page("pages/guide.py", title="Guide", icon=":material/menu_book:", url_path="guide"),
]


page = st.navigation(PAGES)
page.run()
