"""The Explain page's panels: superpixel preview, the Explain form, the run request and the result columns."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import streamlit as st

from explainers.base import Explanation
from explainers.store import PreparedImage, RunRequest, _freeze
from ui import services, state
from ui.state import DEFAULT_METHODS, DEFAULT_SAMPLES, SAMPLE_CHOICES, stakeholder_mode
from ui.widgets import badge_for, dataclass_widgets, draw_result, limits_for, trust_badges


def segmentation_panel(image: PreparedImage) -> None:
    """Live superpixel preview: costs no model call, updates as the parameters move."""
    from explainers.segmentation import ALGORITHMS

    with st.expander("Superpixels (used by LIME and KernelSHAP)", expanded=False):
        cols = st.columns([1, 2])
        with cols[0]:
            algorithm = st.selectbox("Algorithm", list(ALGORITHMS), key="xai_seg_algorithm")
            params = dataclass_widgets(ALGORITHMS[algorithm], f"xai_seg_{algorithm}")
        try:
            segments, picture = services.segment_preview(image, algorithm, params)
        except services.EXPECTED_ERRORS as exc:
            cols[1].error(f"These segmentation parameters do not work: {services.user_message(exc)}")
            return
        st.session_state["xai_segmentation"] = (algorithm, params)
        cols[1].image(picture, caption=f"{int(segments.max()) + 1} superpixels", width="stretch")


def explain_form(classifier: Any) -> None:
    """The expensive parameters, applied only when Explain is pressed (sliders never cancel a run)."""
    specs = services.method_specs(classifier)
    defaults = ordered([m for m in DEFAULT_METHODS if m in specs])
    layers = ["auto"] + [layer.path for layer in getattr(classifier, "conv_layers", [])]
    with st.form("explain_form"):
        cols = st.columns([3, 1, 1, 1])
        chosen = cols[0].multiselect("Methods", list(specs), default=defaults, key="xai_form_methods",
                                     format_func=lambda n: specs[n].title)
        samples = cols[1].select_slider("Samples", SAMPLE_CHOICES, value=DEFAULT_SAMPLES,
                                        key="xai_form_samples")
        fill = cols[2].selectbox("Hidden superpixels", ["mean", "blur", "gray", "black"], key="xai_form_fill")
        seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0, key="xai_form_seed")
        cols2 = st.columns(3)
        surrogate = cols2[0].selectbox("LIME surrogate", ["ridge", "lasso", "tree"], key="xai_form_surrogate")
        layer = cols2[1].selectbox("CAM layer", layers, key="xai_form_layer")
        cam_up = cols2[2].selectbox("CAM upsampling", ["bilinear", "nearest", "bicubic"], key="xai_form_cam_up")
        submitted = st.form_submit_button("Explain", type="primary")
    if submitted:
        if not chosen:
            st.warning("Pick at least one method.")
            return
        algorithm, seg_params = st.session_state.get("xai_segmentation", ("quickshift", {}))
        st.session_state[state.RUN_KEY] = build_request(
            chosen, samples=int(samples), fill=fill, seed=int(seed), surrogate=surrogate,
            layer="" if layer == "auto" else layer, cam_upsampling=cam_up,
            segmentation=algorithm, segmentation_params=seg_params,
        )


def build_request(methods: Sequence[str], *, samples: int = DEFAULT_SAMPLES, fill: str = "mean", seed: int = 0,
                  surrogate: str = "ridge", layer: str = "", cam_upsampling: str = "bilinear",
                  segmentation: str = "quickshift", segmentation_params: dict | None = None) -> RunRequest:
    """A RunRequest with each method's parameters filled from the form's shared choices."""
    specs = services.method_specs()
    per_method = []
    for name in ordered(methods):
        fields = {f.name for f in dataclasses.fields(specs[name].params_type)}
        params: dict[str, Any] = {}
        if "surrogate" in fields:
            params["surrogate"] = surrogate
        if "layer" in fields:
            params["layer"] = layer
        if "upsampling" in fields:
            params["upsampling"] = cam_upsampling
        per_method.append((name, _freeze(params)))
    return RunRequest(
        methods=tuple(per_method), labels=(), seed=seed, samples=samples, fill=fill,
        segmentation=segmentation, segmentation_params=_freeze(segmentation_params or {}),
    )


def current_request(classifier: Any, preds: Sequence[tuple[int, str, float]]) -> RunRequest:
    """The last submitted request (or the defaults), applied to the current top-k labels."""
    req = st.session_state.get(state.RUN_KEY)
    specs = services.method_specs(classifier)
    if req is None:
        req = build_request([m for m in DEFAULT_METHODS if m in specs])
        st.session_state[state.RUN_KEY] = req
    usable = tuple((n, p) for n, p in req.methods if n in specs)
    labels = tuple(idx for idx, _, _ in preds)
    st.session_state[state.CURRENT_LABELS_KEY] = labels
    return dataclasses.replace(req, methods=usable, labels=labels)


def collect_results(classifier: Any, image: PreparedImage, req: RunRequest,
                    on_result: Any = None, progress_slot: Any = None) -> dict[str, list[Explanation]]:
    """Cached or fresh results per method, fast families first; errors become messages."""
    from explainers.runner import order_methods

    specs = services.method_specs(classifier)
    results: dict[str, list[Explanation]] = {}
    for name in order_methods([n for n, _ in req.methods]):
        found = services.store().lookup(classifier, image, req, name)
        if found is None:
            slot = progress_slot if progress_slot is not None else st.empty()
            label = ("Sampling for LIME + KernelSHAP" if specs[name].family == "perturbation"
                     else f"Running {specs[name].title}")
            reporter = services.ProgressReporter(slot, label)
            try:
                found = services.store().compute(classifier, image, req, name, progress=reporter)
            except services.EXPECTED_ERRORS as exc:
                st.error(f"{specs[name].title} failed: {services.user_message(exc)}")
                continue
            finally:
                reporter.done()
        results[name] = found
        if on_result is not None:
            on_result(results)
    return results


def draw_comparison(classifier: Any, image: PreparedImage, req: RunRequest,
                    view: dict[str, Any], preds: Sequence[tuple[int, str, float]]) -> list[Explanation]:
    """One column per method for the selected label, filled progressively."""
    specs = services.method_specs(classifier)
    names = ordered([n for n, _ in req.methods])
    if not names:
        st.info("Choose methods and press Explain.")
        return []
    if stakeholder_mode():
        return draw_story(classifier, image, req, view["label"])
    progress_slot = st.empty()
    columns = st.columns(len(names))
    slots = {name: col.empty() for name, col in zip(names, columns)}
    label = view["label"]

    trust = trust_badges(label)

    def redraw(results: dict[str, list[Explanation]]) -> None:
        flat = [r for rs in results.values() for r in rs]
        limits = limits_for(flat)
        for name, rs in results.items():
            found = [r for r in rs if r.label == label]
            if found:
                box = slots[name].container()
                draw_result(box, image.pixels, found[0], limits[name], view["view"], specs[name].title,
                            trust.get(name) or badge_for(found[0]))

    for name in names:
        slots[name].info(f"{specs[name].title}: waiting…")
    results = collect_results(classifier, image, req, on_result=redraw, progress_slot=progress_slot)
    return [r for name in names for r in results.get(name, [])]


def draw_story(classifier: Any, image: PreparedImage, req: RunRequest, label: int) -> list[Explanation]:
    """Stakeholder mode: one large numbered picture, a plain caption, how far to trust it, the
    other methods small beside it. No numbers a non-specialist would have to decode."""
    from explainers.render import render_explanation
    from explainers.summary import story, story_picture
    from ui.widgets import escape_markdown, legend_markdown, trust_verdicts

    specs = services.method_specs(classifier)
    results = collect_results(classifier, image, req, progress_slot=st.empty())
    flat = [r for name in ordered(list(results)) for r in results[name]]
    mine = [r for r in flat if r.label == label]
    told = story(mine, trust_verdicts(label)) if mine else None
    if told is None:
        st.info("Nothing to show yet.")
        return flat
    view = state.current_view()
    limits = limits_for(flat)
    ref = next(r for r in mine if r.method == told.method)
    main, side = st.columns([1.5, 1])
    with main:
        st.image(story_picture(image.pixels, mine, told, limit=limits[told.method], cmap=view["cmap"]),
                 width="stretch")
        st.markdown(legend_markdown(ref, limits[told.method], view, title=specs[told.method].title),
                    unsafe_allow_html=True)
    with side:
        st.markdown(f"#### {escape_markdown(told.text)}")
        st.markdown(escape_markdown(told.trust))
        others = [r for r in mine if r.method != told.method]
        if others:
            st.markdown("**What the other methods see**")
            cols = st.columns(2)
            for i, r in enumerate(others):
                with cols[i % 2]:
                    st.markdown(f"**{specs[r.method].title}**")
                    st.image(render_explanation(image.pixels, r, limit=limits[r.method], **view), width="stretch")
                    st.markdown(legend_markdown(r, limits[r.method], view), unsafe_allow_html=True)
    return flat


def ordered(names: Sequence[str]) -> list[str]:
    """Method names in the registry's order (the same order on every page and in every export)."""
    order = list(services.method_specs())
    return sorted(dict.fromkeys(names), key=lambda n: order.index(n) if n in order else len(order))


def refine_button(req: RunRequest) -> None:
    specs = services.method_specs()
    if not any(specs[n].family == "perturbation" for n, _ in req.methods):
        return
    if req.samples >= 20000:
        return
    if st.button(f"More samples ({req.samples} → {min(20000, req.samples * 2)})",
                 help="Adds samples to the same run; the ones already computed are reused."):
        base = st.session_state[state.RUN_KEY]
        st.session_state[state.RUN_KEY] = dataclasses.replace(base, samples=min(20000, req.samples * 2))
        st.rerun()


def interactive_view(image: PreparedImage, results: Sequence[Explanation], label: int) -> None:
    from ui import figures

    # A toggle rather than an expander: an expander's content is built on every rerun, and this
    # figure is the heaviest element of the page.
    if not st.toggle("Interactive view (hover a superpixel to see its weight)", key="xai_interactive"):
        return
    with st.container(border=True):
        mine = [r for r in results if r.label == label]
        if not mine:
            return
        specs = services.method_specs()
        names = ordered([r.method for r in mine])
        chosen = st.selectbox("Method", names, key="xai_interactive_method",
                              format_func=lambda n: specs[n].title if n in specs else n)
        exp = next(r for r in mine if r.method == chosen)
        limit = limits_for(results)[exp.method]
        view = state.current_view()
        st.plotly_chart(
            figures.interactive_heatmap(image.pixels, exp, limit, cmap=view["cmap"], view=view,
                                        title=specs[chosen].title if chosen in specs else chosen,
                                        family=specs[chosen].family if chosen in specs else ""),
            key="xai_interactive_chart")
