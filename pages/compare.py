"""Compare labels: top-k labels (rows) × methods (columns) from the same run — "why seat belt?" at a glance."""
from __future__ import annotations

import streamlit as st

from explainers.render import render_explanation
from ui import explain_panel, page, services, state, widgets

page.page_setup()
st.title("Compare labels")
st.caption("Every top-k label explained by every method of the current run, on one colour scale per method.")
classifier, image = page.require_model_and_image()
preds = services.predictions(classifier, image, state.top_k())
request = explain_panel.current_request(classifier, preds)
results = explain_panel.collect_results(classifier, image, request)
flat = [r for rs in results.values() for r in rs]
if not flat:
    st.info("Nothing to compare yet: choose methods on the Explain page.")
    st.stop()

specs = services.method_specs(classifier)
limits = widgets.limits_for(flat)
view = {"opacity": 0.55, "cmap": "blue-white-red"}
names = list(results)
header = st.columns([1] + [1] * len(names))
header[0].markdown("**Label**")
for col, name in zip(header[1:], names):
    col.markdown(f"**{specs[name].title}**")
for idx, label_name, prob in preds:
    row = st.columns([1] + [1] * len(names))
    row[0].markdown(f"**{label_name}**  \n{prob:.1%} (#{idx})")
    row[0].image(image.pixels, width="stretch")
    for col, name in zip(row[1:], names):
        found = [r for r in results[name] if r.label == idx]
        if found:
            with col:
                st.image(render_explanation(image.pixels, found[0], limit=limits[name], **view), width="stretch")
                st.caption(widgets.stats_line(found[0]))
    if state.stakeholder_mode():
        st.caption(widgets.plain_caption(classifier, image, flat, idx))
