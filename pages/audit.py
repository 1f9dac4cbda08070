"""Audit: explain a whole folder, zip or video and see where the model looks across each class."""
from __future__ import annotations

import streamlit as st

from ui import audit, page, services, state

page.page_setup()
st.title("Dataset audit")
st.caption(
    "Explain many images at once and find where the model looks across each class: per-class "
    "mean maps, strategy clusters (a separate cluster can reveal a shortcut such as a watermark), "
    "and flags for misclassified or unfaithful explanations. The model is the one chosen in the sidebar."
)
try:
    classifier = state.current_classifier()
except services.EXPECTED_ERRORS as exc:
    st.error(f"The model could not be loaded: {services.user_message(exc)}")
    st.stop()

job = audit.current_job()
if job is None or not job.running:
    source = audit.source_form()
    config = audit.settings_form(classifier)
    if st.button("Start the audit", type="primary", disabled=source is None or not config.methods,
                 key="xai_audit_start"):
        try:
            config.validate()
        except ValueError as exc:
            st.error(str(exc))
        else:
            audit.start_job(classifier, source, config)
            st.rerun()
audit.progress_panel()
audit.results_panel()
