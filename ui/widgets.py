"""Small drawing helpers shared by several pages: widgets from dataclasses, view controls, result cells."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

from explainers.base import Explanation
from explainers.render import COLORMAP_TITLES, render_explanation
from explainers.store import PreparedImage
from ui import state


def dataclass_widgets(params_type: type, key_prefix: str, skip: Sequence[str] = (),
                      choices: dict[str, Sequence[Any]] | None = None,
                      labels: dict[str, Callable[[Any], str]] | None = None) -> dict[str, Any]:
    """One widget per dataclass field, bounded by the field's metadata (``explainers.base.param``):
    choices → select box, bool → checkbox, int/float → number input with its low/high, else text.
    ``choices`` overrides a field's choices (e.g. the CAM layers of the current model)."""
    from explainers.base import bounds

    values: dict[str, Any] = {}
    choices = choices or {}
    labels = labels or {}
    for f in dataclasses.fields(params_type):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        meta = bounds(f)
        label = f.name.replace("_", " ")
        key = f"{key_prefix}_{f.name}"
        help_text = meta["help"] or None
        opts = list(choices.get(f.name) or meta["choices"] or [])
        if opts:
            values[f.name] = st.selectbox(label, opts, index=opts.index(default) if default in opts else 0, key=key,
                                          help=help_text, format_func=labels.get(f.name, str))
        elif isinstance(default, bool):
            values[f.name] = st.checkbox(label, value=default, key=key, help=help_text)
        elif isinstance(default, int):
            low = None if meta["low"] is None else int(meta["low"])
            high = None if meta["high"] is None else int(meta["high"])
            values[f.name] = int(st.number_input(label, min_value=low, max_value=high, value=default, step=1,
                                                 key=key, help=help_text))
        elif isinstance(default, float):
            low = meta["low"] if meta["low"] is not None else meta["above"]
            high = meta["high"]
            values[f.name] = float(st.number_input(
                label, min_value=None if low is None else float(low), max_value=None if high is None else float(high),
                value=default, format="%.4g", key=key, help=help_text))
        else:
            values[f.name] = st.text_input(label, value="" if default is None else str(default), key=key, help=help_text)
    return values


COLOUR_CHOICES = ("blue-white-red", "blue-orange", "viridis", "cool-warm", "purple-white-green", "jet")


def view_controls(labels: Sequence[tuple[int, str, float]], key: str = "xai_view_label") -> dict[str, Any]:
    """View-only controls: changing them re-renders from cache, never calls the model."""
    for k, v in state.VIEW_DEFAULTS.items():
        st.session_state.setdefault(k, v)
    options = [idx for idx, _, _ in labels]
    names = {idx: f"{name} ({p:.1%})" for idx, name, p in labels}
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    cols = st.columns([2, 1, 1, 1])
    label = cols[0].selectbox("Label to explain", options, format_func=names.get, key=key)
    if state.stakeholder_mode():
        return {"label": label, "view": state.current_view()}
    cols[1].radio("Style", ["heatmap", "segments"], key="xai_view_style",
                  format_func={"heatmap": "heatmap", "segments": "pros & cons"}.get)
    cols[2].slider("Opacity", 0.0, 1.0, key="xai_view_opacity",
                   help="The tint of the strongest regions; weak regions always keep the photo as it is.")
    cols[3].selectbox("Colours", COLOUR_CHOICES, key="xai_view_cmap", format_func=COLORMAP_TITLES.get,
                      help="The high end always means 'pushes towards the label'. Blue–orange and viridis "
                           "are safe for colour-blind viewers.")
    more = st.expander("More view options: outlines, boundaries, top-N, upsampling").columns(6)
    more[0].toggle("Outlines", key="xai_view_outline",
                   help="Outlines the 3 strongest superpixels, or the strongest 10 % of a pixel map.")
    more[1].toggle("Boundaries", key="xai_view_boundaries")
    more[2].toggle("Positive only", key="xai_view_positive")
    more[3].number_input("Top-N (0 = all)", 0, 200, step=1, key="xai_view_top_n",
                         help="LIME / KernelSHAP: the N strongest superpixels. Pixel maps (Grad-CAM, "
                              "gradients, occlusion): the strongest N % of pixels.")
    more[4].toggle("Hide the rest", key="xai_view_hide_rest")
    more[5].selectbox("Upsampling", ["bilinear", "nearest", "bicubic"], key="xai_view_upsampling")
    if st.session_state.xai_view_top_n or st.session_state.xai_view_hide_rest:
        st.caption(f"Top-N on pixel maps (Grad-CAM and other non-superpixel methods) keeps the strongest "
                   f"{int(st.session_state.xai_view_top_n) or 'non-zero'}"
                   f"{' %' if st.session_state.xai_view_top_n else ''} of pixels.")
    return {"label": label, "view": state.current_view()}


def stats_line(exp: Explanation) -> str:
    from explainers.export import calls_text

    parts = [f"{exp.seconds:.2f} s", calls_text(exp)]
    if exp.r2 is not None:
        parts.append(f"R² {exp.r2:.2f}")
    if exp.base_value is not None:
        parts.append(f"base {exp.base_value:.3f}")
    return " · ".join(parts)


def legend_block(exp: Explanation, limit: float, view: dict[str, Any], title: str = "") -> str:
    """The colour legend of one overlay as HTML for ``st.html`` (label names escaped; no user markup)."""
    from explainers.legend import legend_for, legend_html
    from ui import services

    spec = services.method_specs().get(exp.method)
    family = spec.family if spec is not None else ""
    positive = bool(view.get("positive_only")) and view.get("style") != "segments"
    return legend_html(legend_for(exp.label_name, family, limit, view.get("cmap", "blue-white-red"),
                                  positive, title, exp.signed))


def draw_result(container: Any, image: np.ndarray, exp: Explanation, limit: float, view: dict[str, Any],
                title: str, caption: str | None = None, stats: bool = True) -> None:
    """One method's picture with its title, colour legend, numbers (unless ``stats`` is off) and hint."""
    with container:
        st.markdown(f"**{title}**")
        st.image(render_explanation(image, exp, limit=limit, **view), width="stretch")
        st.html(legend_block(exp, limit, view))
        if stats:
            st.caption(stats_line(exp))
        if caption:
            st.caption(caption)
        if exp.extras and exp.extras.get("concept_maps") is not None:
            draw_concepts(image, exp)


def draw_concepts(image: np.ndarray, exp: Explanation) -> None:
    """Deep Feature Factorization: every concept as a coloured region, with its top categories."""
    from explainers.render import concept_legend, render_concepts

    st.image(render_concepts(image, exp.extras["concept_maps"]), width="stretch",
             caption="Concepts the layer found (colour = strongest concept)")
    chosen = int(exp.extras.get("concept", -1))
    lines = []
    for k, ((r, g, b), text) in enumerate(concept_legend(exp.extras["concept_top"])):
        mark = " ← this label" if k == chosen else ""
        lines.append(f"<span style='color:rgb({r},{g},{b})'>■</span> concept {k + 1}: {_escape(text)}{mark}")
    st.markdown("<br>".join(lines), unsafe_allow_html=True)


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))


def badge_for(exp: Explanation) -> str | None:
    """A one-line trust hint under a picture until the Trust page has measured this label."""
    from explainers.trust import LOW_R2

    if exp.r2 is not None and exp.r2 < LOW_R2:
        return f"⚠️ low fit: R² {exp.r2:.2f} — the linear surrogate explains little of the model here"
    return None


def trust_badges(classifier: Any, image: PreparedImage, req: Any, label: int) -> dict[str, str]:
    """Badges from a trust report computed earlier for this very run and label (none if not computed)."""
    from explainers.trust import badges

    report = state.trust_report_for(classifier, image, req, label)
    return badges(report) if report is not None else {}


def trust_verdicts(classifier: Any, image: PreparedImage, req: Any, label: int) -> dict[str, list[str]]:
    """The trust verdicts (``explainers.trust.badge_list``) measured for this run and label, if any."""
    from explainers.trust import badge_list

    report = state.trust_report_for(classifier, image, req, label)
    return badge_list(report) if report is not None else {}


def plain_caption(classifier: Any, image: PreparedImage, results: Sequence[Explanation], label: int) -> str:
    from explainers.summary import caption

    return caption([r for r in results if r.label == label])


def escape_markdown(text: str) -> str:
    """Plain text shown through st.markdown as literal characters (``explainers.text``)."""
    from explainers.text import escape_markdown as escape

    return escape(text)
