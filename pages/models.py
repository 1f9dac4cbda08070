"""Models: catalog with weight status, the bundled model, and the loaded custom model."""
from __future__ import annotations

import streamlit as st

from ui import page, services, state

page.page_setup()
st.title("Models")
st.subheader("Catalog")
for choice in services.model_choices():
    with st.container(border=True):
        cols = st.columns([3, 1])
        cols[0].markdown(f"**{choice.name}** (`{choice.id}`)")
        cols[0].caption(choice.message)
        if choice.available:
            cols[1].success("ready")
        else:
            cols[1].warning("weights missing")
            if cols[1].button("Download", key=f"dl_{choice.id}",
                              help="Fetches the ImageNet weights from the Keras servers (needs internet)."):
                bar = st.progress(0.0, text="Downloading…")

                def show(done: int, total: int | None) -> None:
                    frac = done / total if total else 0.0
                    bar.progress(min(1.0, frac), text=f"Downloading… {done / 2**20:.1f} MB"
                                 + (f" of {total / 2**20:.1f} MB" if total else ""))

                try:
                    services.download_weights(choice.id, show)
                    st.success("Downloaded and verified.")
                except services.EXPECTED_ERRORS as exc:
                    st.error(services.user_message(exc))

st.subheader("Current model")
try:
    classifier = state.current_classifier()
    st.json(classifier.summary())
except services.EXPECTED_ERRORS as exc:
    st.error(f"The selected model cannot be used: {services.user_message(exc)}")
problem = st.session_state.get(state.CUSTOM_ERROR_KEY)
if problem:
    st.error(f"Rejected upload: {problem}")
