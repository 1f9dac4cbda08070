"""Streamlit drawing helpers shared by several pages (widgets from dataclasses, result columns).

Pages stay short: they call these and services.py; nothing here touches TensorFlow.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np
import streamlit as st

import services
from explainers.base import Explanation
from explainers.render import COLORMAPS, method_limits, render_explanation

DEFAULT_METHODS = ("lime", "gradcam", "kernel_shap")
CURRENT_LABELS_KEY = "xai_current_labels"
DEFAULT_SAMPLES = int(os.environ.get("XAI_LENS_DEFAULT_SAMPLES", "1000"))  # lowered by the browser tests
SAMPLE_CHOICES = sorted({50, 100, 250, 500, 1000, 2000, 5000, DEFAULT_SAMPLES})
VIEW_DEFAULTS = {
    "xai_view_style": "heatmap", "xai_view_opacity": 0.55, "xai_view_cmap": "blue-white-red",
    "xai_view_boundaries": False, "xai_view_positive": False, "xai_view_top_n": 0,
    "xai_view_hide_rest": False, "xai_view_upsampling": "bilinear",
}


# ------------------------------------------------------------------------- sidebar
SIDEBAR_DEFAULTS = {
    "xai_image_source": "Sample", "xai_resize": "crop", "xai_top_k": 3, "xai_stakeholder": False,
    "xai_preprocessing": "guess", "xai_input_size": 0,
}
PERSISTENT_KEYS = (*SIDEBAR_DEFAULTS, services.MODEL_KEY, "xai_sample", *VIEW_DEFAULTS, "xai_view_label")


def page_setup() -> None:
    """Call first on every page: keeps sidebar choices across page switches and draws the sidebar.

    Streamlit drops the state of widgets that a page does not draw; re-assigning the keys turns
    them into plain session values that survive the switch (uploads are copied at once by
    their callbacks). The sidebar is drawn by each page rather than by app.py because AppTest
    only keeps a file page's own elements on reruns.
    """
    state = st.session_state
    for key in PERSISTENT_KEYS:
        if key in state:
            state[key] = state[key]
    for key, value in SIDEBAR_DEFAULTS.items():
        state.setdefault(key, value)
    draw_sidebar()


def _on_upload() -> None:
    upload = st.session_state.get("xai_upload")
    if upload is not None:
        services.remember_image(upload.getvalue(), upload.name, "upload")


def _on_camera() -> None:
    shot = st.session_state.get("xai_camera")
    if shot is not None:
        services.remember_image(shot.getvalue(), "camera snapshot", "camera")


def _on_sample() -> None:
    name = st.session_state.get("xai_sample")
    if name:
        services.remember_image(services.sample_bytes(name), name, "sample")


def _on_custom_model() -> None:
    services.remember_custom_model_from_widgets()


def model_sidebar() -> None:
    st.header("Model")
    choices = services.model_choices()
    titles = {c.id: c.name + ("" if c.available else " — weights missing") for c in choices}
    titles["custom"] = "Your own model (.keras / .h5)…"
    services.current_model_ref()  # initialises the default choice
    st.selectbox("Classifier", list(titles), format_func=titles.get, key=services.MODEL_KEY)
    if st.session_state[services.MODEL_KEY] == "custom":
        st.file_uploader("Model file", type=["keras", "h5"], key="xai_model_file",
                         on_change=_on_custom_model,
                         help="Loaded in Keras safe mode: Lambda layers and custom code are refused.")
        st.file_uploader("Labels (optional)", type=["txt", "json", "csv"], key="xai_labels_file",
                         on_change=_on_custom_model)
        st.selectbox("Preprocessing", services.preprocessing_choices(), key="xai_preprocessing",
                     format_func=services.preprocessing_title, on_change=_on_custom_model,
                     help="How pixels are scaled before the model; 'guess' looks at the model's first layers.")
        st.number_input("Input size (only if the model accepts any size)", 0, 1024, step=1,
                        key="xai_input_size", on_change=_on_custom_model)
        problem = st.session_state.get(services.CUSTOM_ERROR_KEY)
        if problem:
            st.error(problem)


def image_sidebar() -> None:
    st.header("Image")
    source = st.radio("Source", ["Sample", "Upload", "Camera"], horizontal=True, key="xai_image_source")
    if source == "Sample":
        titles = services.sample_titles()
        st.selectbox("Sample image", list(titles), format_func=titles.get, key="xai_sample",
                     on_change=_on_sample)
    elif source == "Upload":
        st.file_uploader("Image file", type=["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"],
                         key="xai_upload", on_change=_on_upload)
    else:
        st.camera_input("Snapshot", key="xai_camera", on_change=_on_camera)
    st.selectbox("Fit to model input", ["crop", "stretch", "pad"], key="xai_resize",
                 help="crop: centre crop like the model's evaluation; stretch: ignore aspect; pad: letterbox.")


def draw_sidebar() -> None:
    services.ensure_default_image()
    with st.sidebar:
        model_sidebar()
        image_sidebar()
        st.header("View")
        st.slider("Top-k labels", 1, 10, key="xai_top_k")
        st.toggle("Stakeholder mode", key="xai_stakeholder",
                  help="Hide the knobs, enlarge pictures and add plain-language captions.")



def stakeholder_mode() -> bool:
    return bool(st.session_state.get("xai_stakeholder", False))


def top_k() -> int:
    return int(st.session_state.get("xai_top_k", 3))


def require_model_and_image() -> tuple[Any, services.PreparedImage]:
    """The chosen classifier and image, or an error message and ``st.stop()``."""
    try:
        classifier = services.get_classifier()
    except services.EXPECTED_ERRORS as exc:
        st.error(f"The model could not be loaded: {services.user_message(exc)}")
        st.info("Pick another model in the sidebar; the bundled EfficientNet-Lite0 always works offline.")
        st.stop()
    choice = services.current_image_choice()
    if choice is None:
        st.info("Choose an image in the sidebar.")
        st.stop()
    try:
        if classifier.input_size is None:
            raise ValueError("this model accepts any input size; set an input size in the sidebar")
        image = services.prepare(classifier, choice, st.session_state.get("xai_resize", "crop"))
    except services.EXPECTED_ERRORS as exc:
        st.error(f"This image cannot be used: {services.user_message(exc)}")
        st.info("Upload a PNG, JPEG, GIF, BMP, TIFF or WebP photo, or pick a sample image.")
        st.stop()
    return classifier, image


def dataclass_widgets(params_type: type, key_prefix: str, skip: Sequence[str] = (),
                      choices: dict[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """One widget per dataclass field (numbers → number inputs, bools → checkboxes, str → text/select)."""
    values: dict[str, Any] = {}
    choices = choices or {}
    for f in dataclasses.fields(params_type):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        label = f.name.replace("_", " ")
        key = f"{key_prefix}_{f.name}"
        if f.name in choices:
            opts = list(choices[f.name])
            values[f.name] = st.selectbox(label, opts, index=opts.index(default) if default in opts else 0, key=key)
        elif isinstance(default, bool):
            values[f.name] = st.checkbox(label, value=default, key=key)
        elif isinstance(default, int):
            values[f.name] = int(st.number_input(label, value=default, step=1, key=key))
        elif isinstance(default, float):
            values[f.name] = float(st.number_input(label, value=default, format="%.4g", key=key))
        else:
            values[f.name] = st.text_input(label, value="" if default is None else str(default), key=key)
    return values


def view_controls(labels: Sequence[tuple[int, str, float]], key: str = "xai_view_label") -> dict[str, Any]:
    """View-only controls: changing them re-renders from cache, never calls the model."""
    for k, v in VIEW_DEFAULTS.items():
        st.session_state.setdefault(k, v)
    options = [idx for idx, _, _ in labels]
    names = {idx: f"{name} ({p:.1%})" for idx, name, p in labels}
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    cols = st.columns([2, 1, 1, 1])
    label = cols[0].selectbox("Label to explain", options, format_func=names.get, key=key)
    if stakeholder_mode():
        return {"label": label, "view": {"opacity": 0.55, "cmap": "blue-white-red", "upsampling": "bilinear"}}
    style = cols[1].radio("Style", ["heatmap", "segments"], key="xai_view_style",
                          format_func={"heatmap": "heatmap", "segments": "pros & cons"}.get)
    cols[2].slider("Opacity", 0.0, 1.0, key="xai_view_opacity")
    cols[3].selectbox("Colours", list(COLORMAPS), key="xai_view_cmap")
    more = st.columns(5)
    more[0].toggle("Boundaries", key="xai_view_boundaries")
    more[1].toggle("Positive only", key="xai_view_positive")
    more[2].number_input("Top-N segments (0 = all)", 0, 200, step=1, key="xai_view_top_n")
    more[3].toggle("Hide the rest", key="xai_view_hide_rest")
    more[4].selectbox("Upsampling", ["bilinear", "nearest", "bicubic"], key="xai_view_upsampling")
    s = st.session_state
    return {
        "label": label,
        "view": {
            "style": style, "opacity": s.xai_view_opacity, "cmap": s.xai_view_cmap,
            "boundaries": s.xai_view_boundaries, "positive_only": s.xai_view_positive,
            "top_n": int(s.xai_view_top_n) or None, "hide_rest": s.xai_view_hide_rest,
            "upsampling": s.xai_view_upsampling,
        },
    }


def stats_line(exp: Explanation) -> str:
    shared = int(exp.extras.get("shared_calls", 0) or 0) if exp.extras else 0
    if exp.model_calls == 0 and shared:
        calls = f"reused {shared} model calls"
    else:
        calls = f"{exp.model_calls} model calls"
    parts = [f"{exp.seconds:.2f} s", calls]
    if exp.r2 is not None:
        parts.append(f"R² {exp.r2:.2f}")
    if exp.base_value is not None:
        parts.append(f"base {exp.base_value:.3f}")
    return " · ".join(parts)


def draw_result(container: Any, image: np.ndarray, exp: Explanation, limit: float, view: dict[str, Any],
                title: str, caption: str | None = None) -> None:
    with container:
        st.markdown(f"**{title}**")
        st.image(render_explanation(image, exp, limit=limit, **view), width="stretch")
        st.caption(stats_line(exp))
        if caption:
            st.caption(caption)


def limits_for(results: Sequence[Explanation]) -> dict[str, float]:
    """Symmetric colour limits: one per method across its labels (methods have different units).

    LIME and KernelSHAP both attribute the same probability per superpixel, so they share one.
    """
    limits = method_limits(results)
    shared = [m for m in ("lime", "kernel_shap") if m in limits]
    if len(shared) == 2:
        both = max(limits["lime"], limits["kernel_shap"])
        limits["lime"] = limits["kernel_shap"] = both
    return limits


# ------------------------------------------------------------------------- explanation runs
def segmentation_panel(image: services.PreparedImage) -> None:
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
    defaults = [m for m in DEFAULT_METHODS if m in specs]
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
        st.session_state[services.RUN_KEY] = build_request(
            chosen, samples=int(samples), fill=fill, seed=int(seed), surrogate=surrogate,
            layer="" if layer == "auto" else layer, cam_upsampling=cam_up,
            segmentation=algorithm, segmentation_params=seg_params,
        )


def build_request(methods: Sequence[str], *, samples: int = DEFAULT_SAMPLES, fill: str = "mean", seed: int = 0,
                  surrogate: str = "ridge", layer: str = "", cam_upsampling: str = "bilinear",
                  segmentation: str = "quickshift", segmentation_params: dict | None = None) -> services.RunRequest:
    """A RunRequest with each method's parameters filled from the form's shared choices."""
    specs = services.method_specs()
    per_method = []
    for name in methods:
        fields = {f.name for f in dataclasses.fields(specs[name].params_type)}
        params: dict[str, Any] = {}
        if "surrogate" in fields:
            params["surrogate"] = surrogate
        if "layer" in fields:
            params["layer"] = layer
        if "upsampling" in fields:
            params["upsampling"] = cam_upsampling
        per_method.append((name, services._freeze(params)))
    return services.RunRequest(
        methods=tuple(per_method), labels=(), seed=seed, samples=samples, fill=fill,
        segmentation=segmentation, segmentation_params=services._freeze(segmentation_params or {}),
    )


def current_request(classifier: Any, preds: Sequence[tuple[int, str, float]]) -> services.RunRequest:
    """The last submitted request (or the defaults), applied to the current top-k labels."""
    req = st.session_state.get(services.RUN_KEY)
    specs = services.method_specs(classifier)
    if req is None:
        req = build_request([m for m in DEFAULT_METHODS if m in specs])
        st.session_state[services.RUN_KEY] = req
    usable = tuple((n, p) for n, p in req.methods if n in specs)
    labels = tuple(idx for idx, _, _ in preds)
    st.session_state[CURRENT_LABELS_KEY] = labels
    return dataclasses.replace(req, methods=usable, labels=labels)


def collect_results(classifier: Any, image: services.PreparedImage, req: services.RunRequest,
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


def draw_comparison(classifier: Any, image: services.PreparedImage, req: services.RunRequest,
                    view: dict[str, Any], preds: Sequence[tuple[int, str, float]]) -> list[Explanation]:
    """One column per method for the selected label, filled progressively."""
    specs = services.method_specs(classifier)
    names = [n for n, _ in req.methods]
    if not names:
        st.info("Choose methods and press Explain.")
        return []
    progress_slot = st.empty()
    columns = st.columns(len(names))
    slots = {name: col.empty() for name, col in zip(names, columns)}
    label = view["label"]
    captions = st.empty()

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

    st.caption("Colours: the warm end pushed the model towards the label, the cool end against it; "
               "each method has its own symmetric scale (LIME and KernelSHAP share one).")
    for name in names:
        slots[name].info(f"{specs[name].title}: waiting…")
    results = collect_results(classifier, image, req, on_result=redraw, progress_slot=progress_slot)
    flat = [r for rs in results.values() for r in rs]
    if stakeholder_mode() and flat:
        captions.success(plain_caption(classifier, image, flat, label))
    return flat


def badge_for(exp: Explanation) -> str | None:
    """A one-line trust hint under a picture until the Trust page has measured this label."""
    if exp.r2 is not None and exp.r2 < 0.4:
        return f"⚠️ low fit: R² {exp.r2:.2f} — the linear surrogate explains little of the model here"
    return None


def plain_caption(classifier: Any, image: services.PreparedImage, results: Sequence[Explanation], label: int) -> str:
    from explainers.summary import caption

    return caption([r for r in results if r.label == label])


def refine_button(req: services.RunRequest) -> None:
    specs = services.method_specs()
    if not any(specs[n].family == "perturbation" for n, _ in req.methods):
        return
    if req.samples >= 20000:
        return
    if st.button(f"More samples ({req.samples} → {min(20000, req.samples * 2)})",
                 help="Adds samples to the same run; the ones already computed are reused."):
        base = st.session_state[services.RUN_KEY]
        st.session_state[services.RUN_KEY] = dataclasses.replace(base, samples=min(20000, req.samples * 2))
        st.rerun()


def interactive_view(image: services.PreparedImage, results: Sequence[Explanation], label: int) -> None:
    import figures

    # A toggle rather than an expander: an expander's content is built on every rerun, and this
    # figure is the heaviest element of the page.
    if not st.toggle("Interactive view (hover a superpixel to see its weight)", key="xai_interactive"):
        return
    with st.container(border=True):
        mine = [r for r in results if r.label == label]
        if not mine:
            return
        names = [r.method for r in mine]
        chosen = st.selectbox("Method", names, key="xai_interactive_method")
        exp = mine[names.index(chosen)]
        limit = limits_for(results)[exp.method]
        st.plotly_chart(figures.interactive_heatmap(image.pixels, exp, limit), key="xai_interactive_chart")


def run_metadata(classifier: Any, image: services.PreparedImage, req: services.RunRequest) -> dict[str, Any]:
    choice = services.current_image_choice()
    return {
        "model": classifier.id, "model_name": classifier.name, "image_name": choice.name if choice else "",
        "image_sha256": choice.sha256 if choice else "", "resize": st.session_state.get("xai_resize", "crop"),
        "seed": req.seed, "samples": req.samples, "fill": req.fill, "segmentation": req.segmentation,
        "segmentation_params": dict(req.segmentation_params),
        "methods": {n: dict(p) for n, p in req.methods}, "labels": list(req.labels),
    }


def export_buttons(classifier: Any, image: services.PreparedImage, req: services.RunRequest,
                   results: Sequence[Explanation], preds: Sequence[tuple[int, str, float]]) -> None:
    import report

    meta = run_metadata(classifier, image, req)
    meta["predictions"] = [{"index": i, "label": n, "probability": p} for i, n, p in preds]
    view = {"opacity": 0.55, "cmap": "blue-white-red"}
    pixels, results = image.pixels, list(results)

    def html() -> str:
        captions = {label: plain_caption(classifier, image, results, label) for label in req.labels}
        return report.html_report(pixels, results, meta, preds, captions, **view)

    # Callables: the files are built only when a button is pressed, so reruns stay fast.
    with st.expander("Export"):
        cols = st.columns(4)
        cols[0].download_button("PNG grid", lambda: report.comparison_png(pixels, results, **view),
                                file_name="xai-lens-comparison.png", mime="image/png", key="xai_dl_png",
                                on_click="ignore")
        cols[1].download_button("HTML report", html,
                                file_name="xai-lens-report.html", mime="text/html", key="xai_dl_html",
                                on_click="ignore")
        cols[2].download_button("Raw NPZ", lambda: report.results_npz(pixels, results, meta),
                                file_name="xai-lens-results.npz", mime="application/octet-stream",
                                key="xai_dl_npz", on_click="ignore")
        cols[3].download_button("JSON", lambda: report.results_json(meta, results),
                                file_name="xai-lens-results.json", mime="application/json", key="xai_dl_json",
                                on_click="ignore")


# ------------------------------------------------------------------------- trust
TRUST_DEFAULTS = {"seeds": 3, "noise_sigma": 3.0, "top_n": 5, "steps": 16, "stability_samples": 300}
TRUST_KEY = "xai_trust_request"


def trust_settings_form() -> dict[str, Any] | None:
    """The trust parameters; returns them when the user asks for a (new) computation."""
    with st.form("trust_form"):
        cols = st.columns(5)
        seeds = cols[0].number_input("Seeds", 1, 10, TRUST_DEFAULTS["seeds"], key="xai_trust_seeds",
                                     help="Reruns with other seeds (and as many noisy copies, minus one).")
        sigma = cols[1].number_input("Noise σ (grey levels)", 0.0, 50.0, TRUST_DEFAULTS["noise_sigma"],
                                     key="xai_trust_sigma")
        top_n = cols[2].number_input("Top-N regions", 1, 50, TRUST_DEFAULTS["top_n"], key="xai_trust_top_n")
        steps = cols[3].number_input("Curve steps", 4, 64, TRUST_DEFAULTS["steps"], key="xai_trust_steps")
        samples = cols[4].number_input("Samples per rerun", 16, 5000, TRUST_DEFAULTS["stability_samples"],
                                       key="xai_trust_samples")
        mask_file = st.file_uploader("Ground-truth mask (optional: white = the object)", type=["png", "jpg", "jpeg", "bmp"],
                                     key="xai_trust_mask")
        go = st.form_submit_button("Compute trust metrics", type="primary")
    if not go:
        return None
    return {"settings": {"seeds": int(seeds), "noise_sigma": float(sigma), "top_n": int(top_n),
                         "steps": int(steps), "stability_samples": int(samples)},
            "mask": (mask_file.getvalue(), mask_file.name) if mask_file is not None else None}


def load_mask(classifier: Any, data: bytes, image: services.PreparedImage) -> np.ndarray:
    """A user mask mapped onto the model input exactly as the image was (same crop / pad)."""
    from model_zoo.images import load_image
    from model_zoo.registry import prepare_image

    pixels = load_image(data)
    if pixels.shape[:2] != tuple(image.fitted.original_shape[:2]):
        raise ValueError(
            f"the mask is {pixels.shape[1]}×{pixels.shape[0]} but the image is "
            f"{image.fitted.original_shape[1]}×{image.fitted.original_shape[0]}; use a mask of the same size"
        )
    fitted = prepare_image(classifier, pixels, policy=image.fitted.policy)
    return fitted.image.mean(axis=-1) >= 128


def trust_panel(classifier: Any, image: services.PreparedImage) -> None:
    import pandas as pd

    import figures
    from explainers.trust import badges

    preds = services.predictions(classifier, image, top_k())
    req = current_request(classifier, preds)
    if not req.methods:
        st.info("Choose methods on the Explain page first.")
        return
    names = {idx: f"{name} ({p:.1%})" for idx, name, p in preds}
    label = st.selectbox("Label", list(names), format_func=names.get, key="xai_trust_label")
    asked = trust_settings_form()
    if asked is not None:
        st.session_state[TRUST_KEY] = asked
    asked = st.session_state.get(TRUST_KEY)
    if asked is None:
        st.info("Press **Compute trust metrics**. It reuses the explanation run's model calls where it "
                "can; the stability reruns cost extra calls (shown below).")
        return
    mask, mask_key = None, ""
    if asked["mask"] is not None:
        try:
            mask = load_mask(classifier, asked["mask"][0], image)
            mask_key = services.hashlib.sha256(asked["mask"][0]).hexdigest()
        except services.EXPECTED_ERRORS as exc:
            st.error(f"The mask cannot be used: {services.user_message(exc)}")
            return
    report = services.store().trust_lookup(classifier, image, req, label, asked["settings"], mask_key)
    if report is None:
        reporter = services.ProgressReporter(st.empty(), "Measuring trust")
        try:
            report = services.store().trust(classifier, image, req, label, asked["settings"], mask, mask_key,
                                            progress=reporter)
        except services.EXPECTED_ERRORS as exc:
            st.error(f"The trust metrics failed: {services.user_message(exc)}")
            return
        finally:
            reporter.done()
    st.session_state.setdefault("xai_trust_reports", {})[(req.seed, label)] = report
    specs = services.method_specs(classifier)
    title = {n: specs[n].title if n in specs else n for n in (r.method for r in report.methods)}
    st.caption(f"Extra model calls for these metrics: **{report.model_calls}** · {report.seconds:.1f} s")
    for method, text in badges(report).items():
        st.markdown(f"- **{title[method]}**: {text}")
    rows = []
    for r in report.methods:
        rows.append({
            "method": title[r.method], "deletion AUC ↓": r.deletion_auc, "random deletion": r.random_deletion_auc,
            "insertion AUC ↑": r.insertion_auc, "random insertion": r.random_insertion_auc,
            "seed IoU": r.stability_iou, "seed ρ": r.stability_rank_corr, "noise IoU": r.noise_iou,
            "noise ρ": r.noise_rank_corr, "R²": r.r2, "pointing hit": r.pointing_hit, "mask IoU": r.mask_iou,
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="xai_trust_table")
    cols = st.columns(2)
    curves = report.curves
    deletion = {title[m]: (c.fractions, c.scores) for m, c in curves.deletion.items()}
    deletion["random order"] = (curves.random_deletion.fractions, curves.random_deletion.scores)
    insertion = {title[m]: (c.fractions, c.scores) for m, c in curves.insertion.items()}
    insertion["random order"] = (curves.random_insertion.fractions, curves.random_insertion.scores)
    cols[0].plotly_chart(figures.curves(deletion, "Deletion: hide the top regions first (lower is better)",
                                        "fraction of regions hidden", "probability"), key="xai_trust_del")
    cols[1].plotly_chart(figures.curves(insertion, "Insertion: show the top regions first (higher is better)",
                                        "fraction of regions shown", "probability"), key="xai_trust_ins")
    cols = st.columns(2)
    agree = report.agreement
    cols[0].plotly_chart(figures.matrix(agree.rank_corr, [title[m] for m in agree.methods],
                                        "Agreement: rank correlation"), key="xai_trust_rho")
    cols[1].plotly_chart(figures.matrix(agree.top_iou, [title[m] for m in agree.methods],
                                        f"Agreement: top-{asked['settings']['top_n']} IoU", zmin=0.0),
                         key="xai_trust_iou")
    conv = {title[r.method]: (r.convergence.samples, r.convergence.rel_error)
            for r in report.methods if r.convergence is not None}
    if conv:
        st.plotly_chart(figures.curves(conv, "Convergence: change of the weights vs the full run",
                                       "samples", "relative error"), key="xai_trust_conv")


def trust_badges(label: int) -> dict[str, str]:
    """Badges from a trust report computed earlier for this label (none if not computed)."""
    from explainers.trust import badges

    req = st.session_state.get(services.RUN_KEY)
    reports = st.session_state.get("xai_trust_reports", {})
    report = reports.get((req.seed if req else 0, label))
    return badges(report) if report is not None else {}
