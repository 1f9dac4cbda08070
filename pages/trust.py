"""Trust: how far each explanation can be believed (faithfulness, stability, agreement, convergence)."""
from __future__ import annotations

import streamlit as st

from ui import page, state, trust_panel

page.page_setup()
st.title("Trust")
if state.stakeholder_mode():
    st.markdown(
        "Can these pictures be believed? XAI Lens checks each one: does covering the regions it "
        "highlights really lower the model's confidence, and does it stay the same when run again "
        "from another random start or on the photo with invisible noise added?"
    )
else:
    st.caption(
        "How far can each picture be believed? Faithfulness (does hiding the regions a method points "
        "at really lower the score?), stability (same picture with other seeds or invisible noise?), "
        "agreement between methods, and convergence with the number of samples."
    )
classifier, image = page.require_model_and_image()
trust_panel.trust_panel(classifier, image)
