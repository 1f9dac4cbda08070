"""Explain: the image, its top-k predictions, live superpixels, and LIME / Grad-CAM / SHAP side by side."""
from __future__ import annotations

import streamlit as st

from explainers.text import escape_markdown
from ui import explain_panel, exports, figures, live, page, services, state, widgets

page.page_setup()
st.title("Why did the model say that?")
status = st.empty()  # one line at the top saying what runs (the toolbar's indicator is hidden)
classifier, image = page.require_model_and_image()
preds = services.predictions(classifier, image, state.top_k())
state.reset_labels_on_new_input(classifier.id, image.key, preds[0][0])
stakeholder = state.stakeholder_mode()

if not stakeholder:
    left, right = st.columns([1, 1.8])  # a modest photo: the pictures below should show at once
    with left:
        st.image(image.pixels, width="stretch",
                 caption=escape_markdown(f"{state.current_image_choice().title} · {classifier.name}"))
    with right:
        st.plotly_chart(figures.top_k_bar(preds), key="topk_chart")
    live.live_panel(classifier)
# The pictures sit right under the photo, where the eye is; the settings that produced them come
# after. The form is drawn first in script order (its Explain button sets the request) but shown
# below the results, through these two containers.
results_area = st.container()
if not stakeholder:
    with st.container():
        st.subheader("What to compute")
        explain_panel.segmentation_panel(image)  # before the form: it checks what the form will use
        explain_panel.explain_form(classifier)

with results_area:
    request = explain_panel.current_request(classifier, preds)
    view = widgets.view_controls(preds)
    results = explain_panel.draw_comparison(classifier, image, request, view, preds, status=status)
    if stakeholder:  # the story comes first; what else the model considered, after it
        st.plotly_chart(figures.top_k_bar(preds, height=200), key="topk_chart")
    if results and not stakeholder:
        explain_panel.refine_button(request, [r for r in results if r.label == view["label"]] or results)
        explain_panel.interactive_view(image, results, view["label"])
    if results:
        exports.export_buttons(classifier, image, request, results, preds)
