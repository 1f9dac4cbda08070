"""Compare labels → "why A rather than B": two label pickers, one contrast map per method of the
current run that can contrast (a registry fact), and a caption in words.

The contrasts come from the request's own context (``ExplanationStore.contrast``): LIME,
KernelSHAP, Partition SHAP, RISE and occlusion reuse the rows the plain run computed, the CAM
family takes the gradient of (score A − score B) from its shared pass.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import streamlit as st

from explainers.render import method_limits, render_explanation
from explainers.store import PreparedImage, RunRequest
from explainers.summary import contrast_caption
from explainers.text import escape_markdown
from ui import services, state, widgets

A_KEY, B_KEY = "xai_contrast_a", "xai_contrast_b"


def label_options(classifier: Any, image: PreparedImage, preds: Sequence[tuple[int, str, float]]) -> list[int]:
    """The top-k labels first, then every other label by decreasing probability."""
    probs = services.store().probabilities(classifier, image)
    top = [int(i) for i, _, _ in preds]
    rest = [int(i) for i in np.argsort(-probs, kind="stable") if int(i) not in top]
    return top + rest


def draw(classifier: Any, image: PreparedImage, request: RunRequest,
         preds: Sequence[tuple[int, str, float]]) -> None:
    st.subheader("Why one label rather than another")
    specs = services.method_specs(classifier)
    names = [n for n, _ in request.methods if specs[n].contrast]
    others = [specs[n].title for n, _ in request.methods if not specs[n].contrast]
    if not names:
        st.info("None of the chosen methods can contrast two labels; choose e.g. KernelSHAP, "
                "Partition SHAP or Grad-CAM on the Explain page.")
        return
    probs = services.store().probabilities(classifier, image)
    options = label_options(classifier, image, preds)
    fmt = lambda i: f"{classifier.labels[i]} ({probs[i]:.1%})"  # noqa: E731
    left, right = st.columns(2)
    a = left.selectbox("Why this label…", options, index=0, format_func=fmt, key=A_KEY)
    b = right.selectbox("…rather than this one", options, index=min(1, len(options) - 1),
                        format_func=fmt, key=B_KEY)
    if a == b:
        st.warning("Pick two different labels.")
        return
    results = []
    slot = st.empty()
    for name in names:
        reporter = services.ProgressReporter(
            slot, escape_markdown(f"{specs[name].title}: {classifier.labels[a]} vs {classifier.labels[b]}"))
        try:
            results.append(services.store().contrast(classifier, image, request, name, a, b, progress=reporter))
        except services.EXPECTED_ERRORS as exc:
            st.error(f"{specs[name].title} failed: {services.user_message(exc)}")
        finally:
            reporter.done()
    if not results:
        return
    st.markdown(contrast_caption(results))
    limits = method_limits(results)
    view = {**state.current_view(), "style": "heatmap", "top_n": None, "hide_rest": False, "positive_only": False}
    columns = st.columns(len(results))
    for col, r in zip(columns, results):
        with col:
            st.markdown(f"**{specs[r.method].title}**")
            st.image(render_explanation(image.pixels, r, limit=limits[r.method], **view), width="stretch")
            st.html(widgets.legend_block(r, limits[r.method], view))
            if not state.stakeholder_mode():
                st.caption(widgets.stats_line(r))
    st.caption(f"High end of each colour scale: favours {escape_markdown(classifier.labels[a])}; low end: "
               f"favours {escape_markdown(classifier.labels[b])}."
               + (f" Not shown ({', '.join(others)}): they cannot contrast two labels." if others else ""))
