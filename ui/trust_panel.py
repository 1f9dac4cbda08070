"""The Trust page's panel: settings form, optional ground-truth mask, the report's table and charts."""
from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from explainers.store import PreparedImage
from model_zoo.registry import fit_mask
from ui import services, state
from ui.explain_panel import current_request
from ui.state import TRUST_DEFAULTS, TRUST_KEY, reset_labels_on_new_input, top_k


def trust_settings_form() -> dict[str, Any] | None:
    """The trust parameters; returns them when the user asks for a (new) computation.

    Stakeholder mode has no knobs: one button runs the checks with the defaults.
    """
    if state.stakeholder_mode():
        if not st.button("Check how far these pictures can be trusted", type="primary", key="xai_trust_go"):
            return None
        return {"settings": dict(TRUST_DEFAULTS), "mask": None}
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
        sanity = st.checkbox(
            "Sanity check: randomise the model's weights layer by layer (on a copy) and see whether "
            "each map changes", TRUST_DEFAULTS["sanity"], key="xai_trust_sanity",
            help="Adebayo et al. 2018: a map that barely changes when what the model learned is "
                 "destroyed does not explain the model. Costs a few reruns of every method.")
        mask_file = st.file_uploader("Ground-truth mask (optional: white = the object)", type=["png", "jpg", "jpeg", "bmp"],
                                     key="xai_trust_mask")
        go = st.form_submit_button("Compute trust metrics", type="primary")
    if not go:
        return None
    return {"settings": {"seeds": int(seeds), "noise_sigma": float(sigma), "top_n": int(top_n),
                         "steps": int(steps), "stability_samples": int(samples), "sanity": bool(sanity)},
            "mask": (mask_file.getvalue(), mask_file.name) if mask_file is not None else None}


def trust_panel(classifier: Any, image: PreparedImage) -> None:
    import pandas as pd

    from ui import figures
    from explainers.trust import badges

    preds = services.predictions(classifier, image, top_k())
    reset_labels_on_new_input(classifier.id, image.key, preds[0][0])
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
        if not state.stakeholder_mode():
            st.info("Press **Compute trust metrics**. It reuses the explanation run's model calls where it "
                    "can; the stability reruns cost extra calls (shown below).")
        return
    mask, mask_key = None, ""
    if asked["mask"] is not None:
        try:
            mask = fit_mask(classifier, asked["mask"][0], image.fitted)
            mask_key = hashlib.sha256(asked["mask"][0]).hexdigest()
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
    state.remember_trust_report(classifier, image, req, label, report)
    specs = services.method_specs(classifier)
    title = {n: specs[n].title if n in specs else n for n in (r.method for r in report.methods)}
    if state.stakeholder_mode():  # the verdicts in plain words; the numbers stay for specialists
        from explainers.summary import checked_words
        from explainers.trust import badge_list

        for method, verdicts in badge_list(report).items():
            st.markdown(f"- **{title[method]}** can be trusted {checked_words(verdicts)}")
        st.caption("Switch stakeholder mode off to see the measurements behind these sentences.")
        return
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
    table = trust_table(rows)
    fmt = {c: st.column_config.NumberColumn(format="%.3f") for c in table.columns
           if pd.api.types.is_float_dtype(table[c])}  # pointing hit stays a tick box
    # a cell that does not apply (R² of Grad-CAM, which fits nothing) reads "n/a", not "None"
    st.dataframe(table, hide_index=True, key="xai_trust_table", column_config=fmt, placeholder="n/a")
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
    if report.sanity is not None:
        sanity_charts(report.sanity, title)
    conv = {title[r.method]: (r.convergence.samples, r.convergence.rel_error)
            for r in report.methods if r.convergence is not None}
    if conv:
        st.plotly_chart(figures.curves(conv, "Convergence: change of the weights vs the full run",
                                       "samples", "relative error"), key="xai_trust_conv")


def trust_table(rows: list[dict[str, Any]]) -> Any:
    """The measurements, numeric (a missing value is NaN, shown with the table's placeholder); a
    column nothing measured (pointing and mask IoU need a mask) is dropped, not shown empty."""
    import pandas as pd

    table = pd.DataFrame(rows).dropna(axis=1, how="all")
    for c in table.columns:  # a number column with a None (R² of Grad-CAM) arrives as objects
        if c != "method" and table[c].dtype == object and table[c].map(type).ne(bool).all():
            table[c] = pd.to_numeric(table[c])
    return table


def sanity_charts(sanity: Any, title: dict[str, str]) -> None:
    """Similarity of each map to the original as more layers (from the top) are randomised."""
    from ui import figures

    x = list(sanity.randomized)
    st.caption("Sanity check: layers randomised from the top down, the last point every layer "
               f"({' → '.join(sanity.layers)}). A map that stays similar (above the dashed line at "
               f"{sanity.threshold:.1f} once every layer is randomised) does not depend on what the model "
               "learned.")
    cols = st.columns(2)
    rho = {title.get(m, m): (x, r.spearman) for m, r in sanity.methods.items()}
    ssim = {title.get(m, m): (x, r.ssim) for m, r in sanity.methods.items()}
    line = (float(sanity.threshold), "pass: ends below")
    cols[0].plotly_chart(figures.curves(rho, "Sanity: rank correlation with the trained model's map",
                                        "layers randomised (from the top)", "Spearman ρ", hline=line),
                         key="xai_trust_sanity_rho")
    cols[1].plotly_chart(figures.curves(ssim, "Sanity: SSIM with the trained model's map",
                                        "layers randomised (from the top)", "SSIM", hline=line),
                         key="xai_trust_sanity_ssim")
