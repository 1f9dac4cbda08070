"""AppTest: samples "auto" in the Explain form and the sanity check on the Trust page, with the
real bundled model."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui import explain_panel, services, state

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300


def fresh(req) -> AppTest:
    st.cache_data.clear()
    services.store().clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.RUN_KEY] = req
    return at


@pytest.mark.slow
def test_auto_samples_say_how_many_they_used_and_the_threshold_is_shown() -> None:
    assert state.SAMPLE_CHOICES[0] == "auto"
    req = explain_panel.build_request(["lime", "kernel_shap"], samples="auto", threshold=0.9)
    assert req.samples == "auto" and req.threshold == 0.9
    app = fresh(dataclasses.replace(req, budget=96, segmentation="grid"))
    app.run()
    assert not app.exception
    assert app.select_slider(key="xai_form_samples").value == "auto"
    assert app.slider(key="xai_form_threshold").value == 0.9
    assert app.number_input(key="xai_form_budget").value == 96
    used = [c.value for c in app.caption if c.value.startswith("LIME and KernelSHAP computed with")]
    assert used and "96 samples (auto: stopped at the budget of 96 samples — the top-5 regions are not yet stable" \
        in used[0], used
    more = [b for b in app.button if b.label.startswith("More samples")]
    assert len(more) == 1 and more[0].label == "More samples (auto: 96 → 100)"
    more[0].click().run()
    assert not app.exception
    assert app.session_state[state.RUN_KEY].samples == 100  # a fixed count from now on


@pytest.mark.slow
def test_the_budget_set_in_the_form_stops_the_run_and_the_caption_says_so() -> None:
    """The budget is a form control: a small one makes "auto" stop there, and the caption and
    the request say so (stable at the default budget would read "stable at N")."""
    assert state.DEFAULT_BUDGET == 4000
    app = fresh(dataclasses.replace(explain_panel.build_request(["lime"], samples="auto", budget=64),
                                    segmentation="grid"))
    app.run()
    assert not app.exception
    assert app.number_input(key="xai_form_budget").value == 64  # the form shows the run's budget
    app.slider(key="xai_form_threshold").set_value(1.0)
    app.number_input(key="xai_form_budget").set_value(40)
    app.button(key="xai_explain_button").click().run()
    assert not app.exception
    req = app.session_state[state.RUN_KEY]
    assert (req.samples, req.threshold, req.budget) == ("auto", 1.0, 40)
    used = [c.value for c in app.caption if " computed with " in c.value]
    assert used and "40 samples (auto: stopped at the budget of 40 samples — the top-5 regions are not yet " \
        "stable" in used[0], used
    assert "40 model calls" in [c.value for c in app.caption][0]
    assert app.number_input(key="xai_form_budget").value == 40


def test_build_request_carries_the_budget_into_the_sampling_parameters() -> None:
    req = explain_panel.build_request(["lime", "kernel_shap"], samples="auto", threshold=0.7, budget=321)
    sp = req.sampling()
    assert (sp.samples, sp.threshold, sp.budget) == ("auto", 0.7, 321)
    assert explain_panel.build_request(["lime"]).budget == state.DEFAULT_BUDGET


@pytest.mark.slow
def test_trust_page_sanity_check_draws_its_curves() -> None:
    app = fresh(explain_panel.build_request(["gradcam"], samples=32))
    app.run()
    app.switch_page("pages/trust.py").run()
    assert not app.exception
    app.number_input(key="xai_trust_seeds").set_value(1)
    app.number_input(key="xai_trust_steps").set_value(4)
    app.checkbox(key="xai_trust_sanity").check()
    submit = [b for b in app.get("form_submit_button") if b.label == "Compute trust metrics"]
    submit[0].click().run()
    assert not app.exception
    texts = " ".join(m.value for m in app.markdown) + " ".join(c.value for c in app.caption)
    assert "Sanity check: layers randomised from the top down" in texts
    assert "passes the sanity check" in texts or "does not depend on what the model learned" in texts
    charts = [c for c in app.get("plotly_chart")]
    assert len(charts) >= 6  # deletion, insertion, 2 agreement, 2 sanity


@pytest.mark.slow
def test_the_label_on_screen_is_explained_first_and_captioned_with_its_own_samples() -> None:
    """With top-3 labels, LIME/KernelSHAP first explain the label on screen alone (shown while the
    others run: under "auto" each label stops on its own), and the caption under the pictures
    gives the shown label's samples, also after switching labels."""
    from explainers.base import SamplingInfo

    req = dataclasses.replace(explain_panel.build_request(["lime", "kernel_shap"], samples="auto", budget=400),
                              segmentation="grid")
    app = fresh(req)
    app.run()
    assert not app.exception
    labels = app.session_state[state.CURRENT_LABELS_KEY]
    assert len(labels) == 3
    shown = app.selectbox(key="xai_view_label").value
    assert shown == labels[0]
    store = services.store()  # result keys: (model, image, method, params, labels, …)
    for name in ("lime", "kernel_shap"):
        keys = [k for k in store._results if k[2] == name]
        assert {k[4] for k in keys} == {(shown,), tuple(labels)}, keys  # the shown label alone, then all
    results = {(r.method, r.label): r for k, rs in store._results.items() if k[4] == tuple(labels) for r in rs}
    for label in labels[:2]:
        app.selectbox(key="xai_view_label").set_value(label).run()
        assert not app.exception
        info: SamplingInfo = results[("lime", label)].sampling
        assert results[("kernel_shap", label)].sampling == info
        used = [c.value for c in app.caption if " computed with " in c.value]
        assert used and f"{info.samples} samples (auto: {info.words()})" in used[0], (label, used)
    # The whole request's cached results still carry the calls the shown label made alone (a
    # rerun, the report and the JSON read them): every row was paid for by exactly one label.
    full = [r for k, rs in store._results.items() if k[2] == "lime" and k[4] == tuple(labels) for r in rs]
    by_label = {r.label: r for r in full}
    assert by_label[shown].model_calls > 0, "the label on screen made the first rows"
    assert sum(r.model_calls for r in full) == max(r.sampling.samples for r in full), \
        [(r.label, r.model_calls, r.sampling.samples) for r in full]


@pytest.mark.slow
def test_stakeholder_story_is_told_from_the_label_on_screen_first() -> None:
    """Stakeholder mode also explains the label on screen alone first (its story is drawn as
    soon as every method has it), then the others; the story is told once, for that label."""
    req = dataclasses.replace(explain_panel.build_request(["lime", "kernel_shap", "gradcam"], samples="auto",
                                                          budget=300), segmentation="grid")
    app = fresh(req)
    app.session_state["xai_stakeholder"] = True
    app.run()
    assert not app.exception
    labels = app.session_state[state.CURRENT_LABELS_KEY]
    shown = app.session_state["xai_view_label"]
    assert len(labels) == 3 and shown == labels[0]
    for name in ("lime", "kernel_shap"):
        assert {k[4] for k in services.store()._results if k[2] == name} == {(shown,), tuple(labels)}
    assert len([m for m in app.markdown if m.value.startswith("**What the other methods see**")]) == 1
