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
    """Live superpixel preview: costs no model call, updates as the parameters move.

    When the preview's settings differ from those of the current run, it says so: the pictures
    below were computed with the run's superpixels until Explain is pressed.
    """
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
        run = st.session_state.get(state.RUN_KEY)
        if run is not None and not same_segmentation(run, algorithm, params):
            used = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dict(run.segmentation_params).items())
            st.warning(f"This preview differs from the superpixels the pictures were computed with "
                       f"({run.segmentation}{' — ' + used if used else ', default settings'}). "
                       "Press **Explain** to use the previewed ones.")


def same_segmentation(req: RunRequest, algorithm: str, params: dict[str, Any]) -> bool:
    """Do the preview's settings give the run's segmentation (defaults filled in on both sides)?"""
    from explainers.segmentation import resolve_params

    if req.segmentation != algorithm:
        return False
    try:
        return (resolve_params(algorithm, dict(req.segmentation_params) or None)
                == resolve_params(algorithm, dict(params) or None))
    except services.EXPECTED_ERRORS:
        return False


def explain_form(classifier: Any) -> None:
    """The expensive parameters, applied only when Explain is pressed (sliders never cancel a run)."""
    specs = services.method_specs(classifier)
    defaults = ordered([m for m in DEFAULT_METHODS if m in specs])
    layers = ["auto"] + [layer.path for layer in getattr(classifier, "conv_layers", [])]
    # The Samples control shows the run's sample count, also after "More samples" changed it.
    run = st.session_state.get(state.RUN_KEY)
    current = int(run.samples) if run is not None else DEFAULT_SAMPLES
    if st.session_state.get("xai_form_samples_of_run") != current:
        st.session_state["xai_form_samples"] = current
        st.session_state["xai_form_samples_of_run"] = current
    choices = sorted({*SAMPLE_CHOICES, current})
    with st.form("explain_form"):
        cols = st.columns([3, 1, 1, 1])
        chosen = cols[0].multiselect("Methods", list(specs), default=defaults, key="xai_form_methods",
                                     format_func=lambda n: specs[n].title)
        samples = cols[1].select_slider("Samples", choices, key="xai_form_samples")
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
        st.session_state["xai_form_samples_of_run"] = int(samples)
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
                    on_result: Any = None, progress_slot: Any = None,
                    run_progress: Any = None) -> dict[str, list[Explanation]]:
    """Cached or fresh results per method, fast families first; errors become messages.

    With ``run_progress`` (a ``ui.progress.RunProgress``) each method's bar shows in its own
    slot and the status line; otherwise one bar shows in ``progress_slot`` (or right here).
    """
    from explainers.runner import order_methods

    specs = services.method_specs(classifier)
    results: dict[str, list[Explanation]] = {}
    for name in order_methods([n for n, _ in req.methods]):
        found = services.store().lookup(classifier, image, req, name)
        if found is None:
            perturbation = specs[name].family == "perturbation"
            unit = "perturbed images" if perturbation else None
            if run_progress is not None:
                reporter = run_progress.start(name, unit="perturbed images" if perturbation else "model calls")
            else:
                slot = progress_slot if progress_slot is not None else st.empty()
                label = ("Sampling for LIME + KernelSHAP" if perturbation
                         else f"Running {specs[name].title}")
                reporter = services.ProgressReporter(slot, label, unit or "model calls")
            try:
                found = services.store().compute(classifier, image, req, name, progress=reporter)
            except services.EXPECTED_ERRORS as exc:
                st.error(f"{specs[name].title} failed: {services.user_message(exc)}")
                if run_progress is not None:
                    run_progress.finish(name, ok=False)
                continue
            finally:
                reporter.done()
        results[name] = found
        if run_progress is not None:
            run_progress.finish(name)
        if on_result is not None:
            on_result(results)
    return results


def draw_comparison(classifier: Any, image: PreparedImage, req: RunRequest,
                    view: dict[str, Any], preds: Sequence[tuple[int, str, float]],
                    status: Any = None) -> list[Explanation]:
    """One column per method for the selected label, filled progressively.

    Until its picture arrives, each column holds a placeholder with its own bar and ETA;
    ``status`` (a placeholder near the top of the page) gets one line saying what runs.
    """
    from ui.progress import RunProgress

    specs = services.method_specs(classifier)
    names = ordered([n for n, _ in req.methods])
    if not names:
        st.info("Choose methods and press Explain.")
        return []
    if stakeholder_mode():
        return draw_story(classifier, image, req, view["label"], status)
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

    progress = RunProgress(status if status is not None else st.empty(), slots,
                           {n: specs[n].title for n in names},
                           shared=[n for n in names if specs[n].family == "perturbation"])
    results = collect_results(classifier, image, req, on_result=redraw, run_progress=progress)
    progress.close()
    flat = [r for rs in results.values() for r in rs]
    if flat:
        computed_with(flat)
    return [r for name in names for r in results.get(name, [])]


def run_settings(results: Sequence[Explanation]) -> dict[str, Any] | None:
    """What the superpixel pictures were computed with, read from the results themselves."""
    for r in results:
        p = dict(r.params)
        if "segmentation" in p and "samples" in p:
            return {
                "segmentation": p["segmentation"], "segmentation_params": dict(p.get("segmentation_params") or {}),
                "num_segments": int(p.get("num_segments", 0)), "samples": int(p["samples"]),
                "requested": int(p.get("requested_samples", p["samples"])),
                "exhaustive": bool(p.get("exhaustive", False)), "fill": p.get("fill", ""),
                "seed": int(p.get("seed", 0)),
            }
    return None


def settings_words(info: dict[str, Any]) -> str:
    params = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info["segmentation_params"].items())
    seg = f"{info['segmentation']}" + (f" ({params})" if params else "")
    m = info["num_segments"]
    if info["exhaustive"]:
        samples = f"all {info['samples']} combinations of the {m} superpixels (exact)"
    else:
        samples = f"{info['samples']} samples"
        if info["requested"] != info["samples"]:
            samples += f" of {info['requested']} asked"
    return (f"{m} superpixels from {seg} · {samples} · hidden superpixels filled with "
            f"{info['fill']} · seed {info['seed']}")


def computed_with(results: Sequence[Explanation]) -> None:
    """One line under the pictures: the segmentation and the samples they were computed with."""
    info = run_settings(results)
    if info is not None:
        st.caption(f"LIME and KernelSHAP computed with {settings_words(info)}.")


def next_samples(samples: int) -> int:
    """The next sample count of the form's choices above ``samples`` (doubling past the last)."""
    bigger = [c for c in SAMPLE_CHOICES if c > samples]
    return min(MAX_SAMPLES, bigger[0] if bigger else samples * 2)


MAX_SAMPLES = 20000


def draw_story(classifier: Any, image: PreparedImage, req: RunRequest, label: int,
               status: Any = None) -> list[Explanation]:
    """Stakeholder mode: one large numbered picture, a plain caption, how far to trust it, the
    other methods small beside it. No numbers a non-specialist would have to decode."""
    from explainers.render import render_explanation
    from explainers.summary import story, story_picture
    from ui.widgets import escape_markdown, legend_markdown, trust_verdicts

    specs = services.method_specs(classifier)
    results = collect_results(classifier, image, req, progress_slot=status if status is not None else st.empty())
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


def refine_button(req: RunRequest, results: Sequence[Explanation] = ()) -> None:
    """"More samples" adds rows to the same run; disabled (with the reason) when nothing can change."""
    specs = services.method_specs()
    if not any(specs[n].family == "perturbation" for n, _ in req.methods):
        return
    info = run_settings(results)
    if info is not None and info["exhaustive"]:
        st.button("More samples", disabled=True, key="xai_more_samples",
                  help="Every combination is already computed.")
        st.caption(f"More samples cannot change anything: all {info['samples']} combinations of the "
                   f"{info['num_segments']} superpixels are already computed, so LIME and KernelSHAP "
                   "are exact for these superpixels. Choose finer superpixels to see more detail.")
        return
    if req.samples >= MAX_SAMPLES:
        return
    target = next_samples(req.samples)
    if st.button(f"More samples ({req.samples} → {target})", key="xai_more_samples",
                 help="Adds samples to the same run; the ones already computed are reused."):
        base = st.session_state[state.RUN_KEY]
        st.session_state[state.RUN_KEY] = dataclasses.replace(base, samples=target)
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
