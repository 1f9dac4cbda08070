"""Explain: the image, its top-k predictions, live superpixels, and LIME / Grad-CAM / SHAP side by side."""
from __future__ import annotations

import streamlit as st

import figures

import services
import views

views.page_setup()
st.title("Why did the model say that?")
classifier, image = views.require_model_and_image()
preds = services.predictions(classifier, image, views.top_k())
stakeholder = views.stakeholder_mode()

left, right = st.columns([1, 1.4] if not stakeholder else [1, 1])
with left:
    st.image(image.pixels, caption=f"{services.current_image_choice().name} · {classifier.name}", width="stretch")
with right:
    st.plotly_chart(figures.top_k_bar(preds), key="topk_chart")

if not stakeholder:
    views.segmentation_panel(image)
    views.explain_form(classifier)

request = views.current_request(classifier, preds)
view = views.view_controls(preds)
results = views.draw_comparison(classifier, image, request, view, preds)

if results and not stakeholder:
    views.refine_button(request)
    views.interactive_view(image, results, view["label"])
if results:
    views.export_buttons(classifier, image, request, results, preds)
