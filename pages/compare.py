"""Compare labels: top-k labels (rows) × methods (columns) from the same run — "why seat belt?" at a
glance — and "why A rather than B" for any two labels."""
from __future__ import annotations

import streamlit as st

from explainers.render import method_limits, render_explanation
from explainers.text import escape_markdown
from ui import contrast_panel, explain_panel, page, services, state, widgets

page.page_setup()
st.title("Compare labels")
st.caption("Every top-k label explained by every method of the current run, on one colour scale per method "
           "and with the colours chosen on the Explain page.")
classifier, image = page.require_model_and_image()
preds = services.predictions(classifier, image, state.top_k())
request = explain_panel.current_request(classifier, preds)
results = explain_panel.collect_results(classifier, image, request)
flat = [r for rs in results.values() for r in rs]
if not flat:
    st.info("Nothing to compare yet: choose methods on the Explain page.")
    st.stop()

specs = services.method_specs(classifier)
limits = method_limits(flat)
view = state.current_view()
stakeholder = state.stakeholder_mode()
names = explain_panel.ordered(list(results))
header = st.columns([1] + [1] * len(names))
header[0].image(image.pixels, caption="The photo", width="stretch")  # once, not on every row
for col, name in zip(header[1:], names):
    col.markdown(f"**{specs[name].title}**")
for idx, label_name, prob in preds:
    st.divider()
    row = st.columns([1] + [1] * len(names))
    row[0].markdown(f"**{escape_markdown(label_name)}**  \n{prob:.1%}")
    trust = widgets.trust_badges(classifier, image, request, idx)
    for col, name in zip(row[1:], names):
        found = [r for r in results[name] if r.label == idx]
        if found:
            with col:
                st.image(render_explanation(image.pixels, found[0], limit=limits[name], **view), width="stretch")
                st.html(widgets.legend_block(found[0], limits[name], view))
                if not stakeholder:
                    st.caption(widgets.stats_line(found[0]))
                    hint = trust.get(name) or widgets.badge_for(found[0])
                    if hint:
                        st.caption(hint)
    if stakeholder:
        row[0].caption(widgets.escape_markdown(widgets.plain_caption(classifier, image, flat, idx)))

st.divider()
contrast_panel.draw(classifier, image, request, preds)
