"""The Explain page's panels: superpixel preview, the Explain form, the run request and the result columns."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import streamlit as st

from explainers.base import Explanation
from explainers.context import BUDGET_RANGE
from explainers.render import method_limits
from explainers.store import PreparedImage, RunRequest, freeze
from ui import services, state
from ui.state import DEFAULT_BUDGET, DEFAULT_SAMPLES, DEFAULT_THRESHOLD, SAMPLE_CHOICES, stakeholder_mode
from ui.widgets import badge_for, dataclass_widgets, draw_result, trust_badges


SEGMENTATION_ERROR_KEY = "xai_segmentation_error"


def segmentation_panel(image: PreparedImage) -> None:
    """Live superpixel preview: costs no model call, updates as the parameters move.

    When the preview's settings differ from those of the current run, it says so: the pictures
    below were computed with the run's superpixels until Explain is pressed.
    """
    from explainers.segmentation import ALGORITHMS, USER_REGIONS

    regions = state.current_regions()
    options = list(ALGORITHMS) + ([USER_REGIONS] if regions is not None else [])
    if st.session_state.get("xai_seg_algorithm") not in options:
        st.session_state["xai_seg_algorithm"] = USER_REGIONS if regions is not None else options[0]
    users = [s.title for s in services.method_specs().values() if s.family == "perturbation"]
    with st.expander(f"Superpixels (used by {', '.join(users) or 'superpixel methods'})",
                     expanded=regions is not None):
        cols = st.columns([1, 2])
        with cols[0]:
            algorithm = st.selectbox("Algorithm", options, key="xai_seg_algorithm",
                                     format_func=lambda a: "your regions" if a == USER_REGIONS else a)
        if algorithm == USER_REGIONS:
            _regions_preview(image, regions, cols[1])
            return
        with cols[0]:
            params = dataclass_widgets(ALGORITHMS[algorithm], f"xai_seg_{algorithm}")
        # What is shown is what runs: the settings are stored even when they fail, with the
        # reason, and the Explain button stays blocked until they work (no silent fallback to
        # the previous valid settings).
        st.session_state["xai_segmentation"] = (algorithm, params)
        try:
            segments, picture = services.segment_preview(image, algorithm, params)
        except services.EXPECTED_ERRORS as exc:
            reason = services.user_message(exc)
            st.session_state[SEGMENTATION_ERROR_KEY] = reason
            cols[1].error(f"These segmentation parameters do not work: {reason}")
            return
        st.session_state[SEGMENTATION_ERROR_KEY] = None
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


def _regions_preview(image: PreparedImage, regions: Any, slot: Any) -> None:
    """Fit the uploaded region map like the image; show it or say why it cannot be used."""
    from explainers.render import draw_boundaries

    try:
        key, fitted = services.fit_regions(image, regions)
    except services.EXPECTED_ERRORS as exc:
        reason = services.user_message(exc)
        slot.error(f"Your region map cannot be used: {reason}")
        st.session_state.pop("xai_segmentation", None)
        st.session_state[SEGMENTATION_ERROR_KEY] = f"your region map cannot be used: {reason}"
        return
    st.session_state["xai_segmentation"] = ("regions", {"key": key})
    st.session_state[SEGMENTATION_ERROR_KEY] = None
    note = f" ({fitted.dropped} cut off by the crop)" if fitted.dropped else ""
    slot.image(draw_boundaries(image.pixels, fitted.segments), width="stretch")
    slot.caption(f"{fitted.count} regions from your map{note}")


def explain_form(classifier: Any) -> None:
    """The expensive parameters, applied only when Explain is pressed (sliders never cancel a run).

    Every method's own parameters are widgets built from its parameter dataclass (bounds from
    the field metadata), one tab per method, so a newly registered method appears here as is.
    """
    from explainers.base import default_methods

    specs = services.method_specs(classifier)
    layers = ["", *[layer.path for layer in getattr(classifier, "conv_layers", [])]]
    # The Samples control shows the run's sample count, also after "More samples" changed it.
    run = st.session_state.get(state.RUN_KEY)
    current = run.samples if run is not None else DEFAULT_SAMPLES
    if st.session_state.get("xai_form_samples_of_run") != current:
        st.session_state["xai_form_samples"] = current
        st.session_state["xai_form_samples_of_run"] = current
    choices = SAMPLE_CHOICES if current in SAMPLE_CHOICES else ["auto", *sorted(
        {*(c for c in SAMPLE_CHOICES if c != "auto"), int(current)})]
    with st.form("explain_form"):
        cols = st.columns([3, 1, 1, 1])
        chosen = cols[0].multiselect("Methods", list(specs), default=default_methods(classifier),
                                     key="xai_form_methods", format_func=lambda n: specs[n].title)
        samples = cols[1].select_slider(
            "Samples", choices, key="xai_form_samples",
            help="auto: add batches of samples until the top-5 regions of LIME and KernelSHAP stop "
                 "changing (judged from each region's uncertainty: the expected overlap with the "
                 "answer many more samples would give reaches the threshold below), at most the "
                 "budget; or a fixed number.")
        auto_cols = st.columns([3, 1])
        threshold = auto_cols[0].slider(
            "Auto samples: stop when the top-5 regions are expected to match the final answer this well",
            0.5, 1.0, float(run.threshold) if run is not None else DEFAULT_THRESHOLD, 0.05,
            key="xai_form_threshold", help="Used when Samples is auto. Higher: steadier top regions, more samples.")
        budget = auto_cols[1].number_input(
            "Auto samples: budget", BUDGET_RANGE[0], BUDGET_RANGE[1],
            int(run.budget) if run is not None else DEFAULT_BUDGET, 100, key="xai_form_budget",
            help="Used when Samples is auto: the most samples it may use. A run that reaches it "
                 "stops there and says its top regions are not yet stable.")
        fill = cols[2].selectbox("Hidden superpixels", ["mean", "blur", "gray", "black"], key="xai_form_fill")
        seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0, key="xai_form_seed")
        per_method: dict[str, dict[str, Any]] = {}
        with st.expander("Method parameters"):
            for tab, (name, spec) in zip(st.tabs([s.title for s in specs.values()]), specs.items()):
                with tab:
                    per_method[name] = dataclass_widgets(
                        spec.params_type, f"xai_param_{name}", choices={"layer": layers},
                        labels={"layer": lambda v: v or "auto (the model's last conv layer)"},
                    )
        blocked = st.session_state.get(SEGMENTATION_ERROR_KEY)
        if blocked:
            st.error(f"Explain is blocked until the superpixel settings work: {blocked}")
        submitted = st.form_submit_button("Explain", type="primary", disabled=bool(blocked),
                                          key="xai_explain_button")
    hidden = [spec.title for name, spec in services.method_specs().items() if name not in specs]
    if hidden:
        st.caption(f"Not offered for this model (it gives no gradients or feature maps): {', '.join(hidden)}.")
    if submitted:
        if blocked:  # never run with settings other than those shown
            return
        if not chosen:
            st.warning("Pick at least one method.")
            return
        algorithm, seg_params = st.session_state.get("xai_segmentation", ("quickshift", {}))
        try:
            req = build_request(
                chosen, samples=samples if samples == "auto" else int(samples), threshold=float(threshold),
                budget=int(budget), fill=fill, seed=int(seed),
                params={n: per_method.get(n, {}) for n in chosen},
                segmentation=algorithm, segmentation_params=seg_params,
            )
        except services.EXPECTED_ERRORS as exc:
            st.error(f"These parameters do not work: {services.user_message(exc)}")
            return
        st.session_state["xai_form_samples_of_run"] = req.samples
        st.session_state[state.RUN_KEY] = req


def build_request(methods: Sequence[str], *, samples: int | str = DEFAULT_SAMPLES,
                  threshold: float = DEFAULT_THRESHOLD, budget: int = DEFAULT_BUDGET,
                  fill: str = "mean", seed: int = 0,
                  params: Mapping[str, Mapping[str, Any]] | None = None,
                  segmentation: str = "quickshift", segmentation_params: dict | None = None) -> RunRequest:
    """A RunRequest with each method's parameters resolved and checked against its dataclass
    (missing ones take their defaults; raises ExplainerError with a user message)."""
    from explainers.base import display_order, get_method, make_params, params_dict

    params = params or {}
    per_method = []
    for name in display_order(methods):
        resolved = make_params(get_method(name).params_type, params.get(name))
        per_method.append((name, freeze(params_dict(resolved))))
    return RunRequest(
        methods=tuple(per_method), labels=(), seed=seed, samples=samples, fill=fill, threshold=float(threshold),
        budget=int(budget),
        segmentation=segmentation, segmentation_params=freeze(segmentation_params or {}),
    )


def show_in_form(req: RunRequest) -> None:
    """Make the form and the superpixel panel show ``req`` (a run set from elsewhere, e.g. an
    audited image opened here), so pressing Explain again runs what the pictures were made with."""
    session = st.session_state
    session["xai_form_methods"] = [name for name, _ in req.methods]
    session["xai_form_samples"] = session["xai_form_samples_of_run"] = req.samples
    session["xai_form_threshold"], session["xai_form_budget"] = float(req.threshold), int(req.budget)
    session["xai_form_fill"], session["xai_form_seed"] = req.fill, int(req.seed)
    for name, params in req.methods:
        for key, value in dict(params).items():
            if not isinstance(value, tuple):  # scalar fields have widgets
                session[f"xai_param_{name}_{key}"] = value
    session["xai_seg_algorithm"] = req.segmentation
    for key, value in dict(req.segmentation_params).items():
        session[f"xai_seg_{req.segmentation}_{key}"] = value


def current_request(classifier: Any, preds: Sequence[tuple[int, str, float]]) -> RunRequest:
    """The last submitted request (or the defaults), applied to the current top-k labels."""
    req = st.session_state.get(state.RUN_KEY)
    specs = services.method_specs(classifier)
    if req is None:
        from explainers.base import default_methods

        req = build_request(default_methods(classifier))
        st.session_state[state.RUN_KEY] = req
    usable = tuple((n, p) for n, p in req.methods if n in specs)
    labels = tuple(idx for idx, _, _ in preds)
    st.session_state[state.CURRENT_LABELS_KEY] = labels
    return dataclasses.replace(req, methods=usable, labels=labels)


def collect_results(classifier: Any, image: PreparedImage, req: RunRequest,
                    on_result: Any = None, progress_slot: Any = None,
                    run_progress: Any = None, first_label: int | None = None) -> dict[str, list[Explanation]]:
    """Cached or fresh results per method, fast families first; errors become messages.

    With ``run_progress`` (a ``ui.progress.RunProgress``) each method's bar shows in its own
    slot and the status line; otherwise one bar shows in ``progress_slot`` (or right here).
    With ``first_label`` (the label on screen) and more labels asked, the superpixel methods
    first explain that label alone and show it, then the others: under "auto" each label stops
    on its own, so the picture being looked at does not wait for a near-tied label that needs
    the whole budget (same answer either way: a label's rows do not depend on the others).
    """
    from explainers.runner import order_methods

    specs = services.method_specs(classifier)
    results: dict[str, list[Explanation]] = {}
    later: list[str] = []
    for name in order_methods([n for n, _ in req.methods]):
        found = services.store().lookup(classifier, image, req, name)
        perturbation = specs[name].family == "perturbation"
        ask = req
        if (found is None and perturbation and first_label is not None and len(req.labels) > 1
                and first_label in req.labels):
            ask = dataclasses.replace(req, labels=(int(first_label),))
            found = services.store().lookup(classifier, image, ask, name)
            later.append(name)
        if found is None:
            unit = "perturbed images" if perturbation else None
            if run_progress is not None:
                reporter = run_progress.start(name, unit=unit)
            else:
                slot = progress_slot if progress_slot is not None else st.empty()
                sharing = [specs[n].title for n, _ in req.methods if specs[n].family == "perturbation"]
                label = (f"Sampling for {' + '.join(sharing)}" if perturbation
                         else f"Running {specs[name].title}")
                reporter = services.ProgressReporter(slot, label, unit or "model calls")
            try:
                found = services.store().compute(classifier, image, ask, name, progress=reporter)
            except services.EXPECTED_ERRORS as exc:
                st.error(f"{specs[name].title} failed: {services.user_message(exc)}")
                if run_progress is not None:
                    run_progress.finish(name, ok=False)
                if name in later:
                    later.remove(name)
                continue
            finally:
                reporter.done()
        results[name] = found
        if run_progress is not None:
            run_progress.finish(name)
        if on_result is not None:
            on_result(results)
    others = ", ".join(classifier.labels[i] if 0 <= i < len(classifier.labels) else f"class {i}"
                       for i in req.labels if i != first_label)
    for name in later:  # the labels not on screen, with the bar in the status line only
        if run_progress is not None:
            reporter = run_progress.background(name, f"the other labels ({others})", "perturbed images")
        else:
            reporter = services.ProgressReporter(progress_slot if progress_slot is not None else st.empty(),
                                                 f"{specs[name].title} for the other labels ({others})",
                                                 "perturbed images")
        try:
            # the shown label keeps its own result (the same map, with the calls it made), in the
            # store's cache too, so that later reruns, the report and the JSON count them
            results[name] = services.store().compute(classifier, image, req, name, progress=reporter,
                                                     keep=results[name])
        except services.EXPECTED_ERRORS as exc:
            st.error(f"{specs[name].title} failed for {others}: {services.user_message(exc)}")
            continue
        finally:
            reporter.done()
        if on_result is not None:
            on_result(results)
    return {n: results[n] for n, _ in req.methods if n in results}  # display order


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

    trust = trust_badges(classifier, image, req, label)

    def redraw(results: dict[str, list[Explanation]]) -> None:
        flat = [r for rs in results.values() for r in rs]
        limits = method_limits(flat)
        for name, rs in results.items():
            found = [r for r in rs if r.label == label]
            if found:
                box = slots[name].container()
                draw_result(box, image.pixels, found[0], limits[name], view["view"], specs[name].title,
                            trust.get(name) or badge_for(found[0]))

    one_sided = [specs[n].title for n in names if not specs[n].signed]
    st.caption(f"Each method has its own colour scale{shared_scales_note(names, specs)}, symmetric around 0"
               + (f" ({', '.join(one_sided)}: from 0, as {'its maps are' if len(one_sided) == 1 else 'their maps are'}"
                  " never negative)" if one_sided else "")
               + "; the legend under each picture says what its colours mean.")
    progress = RunProgress(status if status is not None else st.empty(), slots,
                           {n: specs[n].title for n in names},
                           shared=[n for n in names if specs[n].family == "perturbation"])
    results = collect_results(classifier, image, req, on_result=redraw, run_progress=progress,
                              first_label=label)
    progress.close()
    flat = [r for rs in results.values() for r in rs]
    if flat:
        computed_with([r for r in flat if r.label == label] or flat)  # each label has its own samples
    return [r for name in names for r in results.get(name, [])]


def shared_scales_note(names: Sequence[str], specs: Mapping[str, Any]) -> str:
    """" (LIME and KernelSHAP share one: …)" for the chosen methods that share a colour scale."""
    groups: dict[str, list[str]] = {}
    for n in names:
        if n in specs and specs[n].scale_group:
            groups.setdefault(specs[n].scale_group, []).append(specs[n].title)
    parts = [f"{' and '.join(t)} share one: {g}" for g, t in groups.items() if len(t) > 1]
    return f" ({'; '.join(parts)})" if parts else ""


def run_settings(results: Sequence[Explanation]) -> dict[str, Any] | None:
    """What the superpixel pictures were computed with, read from the results themselves."""
    for r in results:
        p = dict(r.params)
        if "segmentation" in p and "samples" in p:
            return {
                "segmentation": p["segmentation"], "segmentation_params": dict(p.get("segmentation_params") or {}),
                "num_segments": int(p.get("num_segments", 0)), "samples": int(p["samples"]),
                "requested": p.get("requested_samples", p["samples"]),
                "sampling": r.sampling,
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
    elif info["requested"] == "auto" and info.get("sampling") is not None:
        samples = f"{info['samples']} samples (auto: {info['sampling'].words()})"
    else:
        samples = f"{info['samples']} samples"
        if info["requested"] != info["samples"]:
            samples += f" of {info['requested']} asked"
    return (f"{m} superpixels from {seg} · {samples} · hidden superpixels filled with "
            f"{info['fill']} · seed {info['seed']}")


def sampled_titles(names: Sequence[str]) -> str:
    """"LIME and KernelSHAP": the titles of the chosen methods that sample superpixels (registry)."""
    specs = services.method_specs()
    titles = [specs[n].title for n in dict.fromkeys(names) if n in specs and specs[n].family == "perturbation"]
    return " and ".join(titles) or "The superpixel methods"


def computed_with(results: Sequence[Explanation]) -> None:
    """One line under the pictures: the segmentation and the samples they were computed with."""
    info = run_settings(results)
    if info is not None:
        st.caption(f"{sampled_titles([r.method for r in results])} computed with {settings_words(info)}.")


def next_samples(samples: int) -> int:
    """The next sample count of the form's choices above ``samples`` (doubling past the last)."""
    bigger = [c for c in SAMPLE_CHOICES if c != "auto" and c > samples]
    return min(MAX_SAMPLES, bigger[0] if bigger else samples * 2)


MAX_SAMPLES = 20000


def draw_story(classifier: Any, image: PreparedImage, req: RunRequest, label: int,
               status: Any = None) -> list[Explanation]:
    """Stakeholder mode: one large numbered picture, a plain caption, how far to trust it, the
    other methods small beside it. No numbers a non-specialist would have to decode. With more
    labels asked, the story of the label on screen is drawn as soon as it is ready."""
    specs = services.method_specs(classifier)
    area = st.empty()
    wanted = {n for n, _ in req.methods}

    def draw(results: dict[str, list[Explanation]], final: bool = False) -> None:
        # drawn as soon as every method has the label on screen (the other labels come later)
        if final or wanted <= {n for n, rs in results.items() if any(r.label == label for r in rs)}:
            with area.container():
                _story(classifier, image, req, label, results, specs)

    results = collect_results(classifier, image, req, on_result=draw, first_label=label,
                              progress_slot=status if status is not None else st.empty())
    draw(results, final=True)
    return [r for name in ordered(list(results)) for r in results[name]]


def _story(classifier: Any, image: PreparedImage, req: RunRequest, label: int,
           results: Mapping[str, list[Explanation]], specs: Mapping[str, Any]) -> None:
    from explainers.render import render_explanation
    from explainers.summary import story, story_picture
    from ui.widgets import escape_markdown, legend_block, trust_verdicts

    flat = [r for name in ordered(list(results)) for r in results[name]]
    mine = [r for r in flat if r.label == label]
    told = story(mine, trust_verdicts(classifier, image, req, label)) if mine else None
    if told is None:
        st.info("Nothing to show yet.")
        return
    view = state.current_view()
    limits = method_limits(flat)
    ref = next(r for r in mine if r.method == told.method)
    main, side = st.columns([1.5, 1])
    with main:
        st.image(story_picture(image.pixels, mine, told, limit=limits[told.method], cmap=view["cmap"]),
                 width="stretch")
        st.html(legend_block(ref, limits[told.method], view, title=specs[told.method].title))
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
                    st.html(legend_block(r, limits[r.method], view))


def ordered(names: Sequence[str]) -> list[str]:
    """Method names in the registry's display order (the same on every page and in every export)."""
    from explainers.base import display_order

    return display_order(list(dict.fromkeys(names)))


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
                   f"{info['num_segments']} superpixels are already computed, so "
                   f"{sampled_titles([n for n, _ in req.methods])} are exact for these superpixels. Choose finer superpixels to see more detail.")
        return
    used = info["samples"] if req.samples == "auto" and info is not None else req.samples
    if used == "auto" or used >= MAX_SAMPLES:
        return
    target = next_samples(int(used))
    shown = f"auto: {used}" if req.samples == "auto" else str(used)
    if st.button(f"More samples ({shown} → {target})", key="xai_more_samples",
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
        limit = method_limits(results)[exp.method]
        view = state.current_view()
        st.plotly_chart(
            figures.interactive_heatmap(image.pixels, exp, limit, cmap=view["cmap"], view=view,
                                        title=specs[chosen].title if chosen in specs else chosen,
                                        family=specs[chosen].family if chosen in specs else ""),
            key="xai_interactive_chart")
