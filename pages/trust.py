"""Trust: how far each explanation can be believed (faithfulness, stability, agreement, convergence)."""
from __future__ import annotations

import streamlit as st

import views

views.page_setup()
st.title("Trust")
st.info(
    "The trust panel (deletion/insertion faithfulness, stability across seeds and noise, agreement "
    "between methods, convergence with samples) is not built yet: it is the next issue on the tracker. "
    "Until then, the Explain page shows LIME's R² as a fit warning."
)
