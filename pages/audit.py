"""Audit: explain a whole folder, zip or video and see where the model looks across each class."""
from __future__ import annotations

import streamlit as st

from ui import audit, page, services, state

page.page_setup()
st.title("Dataset audit")
stakeholder = state.stakeholder_mode()
if stakeholder:
    st.markdown("Give the model many photos at once and see where it looks for each answer it gives — "
                "and whether some answers rest on something other than the object itself (a watermark, "
                "a corner, the background).")
else:
    st.caption(
        "Explain many images at once and find where the model looks across each class: per-class "
        "mean maps, groups of images the model looks at alike (a separate group can reveal a shortcut "
        "such as a watermark), and flags for misclassified or unfaithful explanations. The model is "
        "the one chosen in the sidebar."
    )
try:
    classifier = state.current_classifier()
except services.EXPECTED_ERRORS as exc:
    st.error(f"The model could not be loaded: {services.user_message(exc)}")
    st.stop()

job = audit.current_job()
running = job is not None and job.running
# The form stays on the page while a job runs (Start disabled) so its choices, uploads included,
# are kept for the next run: widgets left out of a run lose their values.
st.markdown("**1 · Images to audit**")
source = audit.source_form()
st.markdown("**2 · Ground truth** (optional)")
truth_args = audit.truth_form()
if stakeholder:  # the knobs stay drawn (their values are kept) but out of the way
    with st.expander("Settings for specialists (the defaults suit most audits)"):
        st.markdown("**Methods**")
        config = audit.settings_form(classifier)
        st.markdown("**Where to run**")
        engine = audit.engine_form()
else:
    st.markdown("**3 · Methods**")
    config = audit.settings_form(classifier)
    st.markdown("**4 · Where to run**")
    engine = audit.engine_form()
model_ref = audit.model_reference(engine)
blocked = engine.engine == "ray" and model_ref is None
if blocked:
    st.error("Ray workers load the model themselves: choose a catalog or the bundled model in the "
             "sidebar (an uploaded model exists only on this server), or run on this server.")
if st.button("Start the audit", type="primary",
             disabled=running or source is None or truth_args is None or not config.methods or blocked,
             key="xai_audit_start"):
    try:
        config.validate()
    except ValueError as exc:
        st.error(str(exc))
    else:
        audit.start_job(classifier, source, config, truth_args, engine, model_ref)
        st.rerun()
if running:
    st.caption("An audit is running: its progress and first results are below (Cancel stops it).")
elif source is None:
    st.caption("Start is enabled once images are chosen in step 1.")
audit.progress_panel()
audit.results_panel()
