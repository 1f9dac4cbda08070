"""AppTest: page logic of the dashboard with the real bundled model (no mocks).

Each test starts from fresh caches and a small sample count so the suite stays quick.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from ui import explain_panel, services, state
from model_zoo.registry import load_classifier

pytestmark = pytest.mark.slow  # AppTest with the real bundled model

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
PAGES = ["pages/explain.py", "pages/compare.py", "pages/trust.py", "pages/models.py", "pages/guide.py"]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app() -> AppTest:
    st.cache_data.clear()
    services.store().clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    # Small runs keep the suite fast; the defaults are exercised in the browser test.
    at.session_state[state.RUN_KEY] = explain_panel.build_request(["lime", "gradcam", "kernel_shap"], samples=64)
    return at


def method_titles(at: AppTest) -> list[str]:
    return [m.value.strip("*") for m in at.markdown if m.value.startswith("**") and m.value.endswith("**")]


def test_every_page_renders_with_the_bundled_model(app: AppTest) -> None:
    app.run()
    assert not app.exception
    for page in PAGES[1:]:
        app.switch_page(page).run()
        assert not app.exception, page
    app.switch_page(PAGES[0]).run()
    assert not app.exception


def test_the_guide_explains_every_page_and_quotes_the_auto_defaults(app: AppTest) -> None:
    """A newcomer's map: every page in the navigation is described, and the auto-sampling numbers
    it quotes are the parameters' own defaults (read, not copied)."""
    from explainers.context import SamplingParams

    app.run()
    app.switch_page("pages/guide.py").run()
    text = " ".join(m.value for m in app.markdown)
    for page_name in ("Explain", "Compare labels", "Trust", "Audit", "Stakeholder mode", "Dotted outlines"):
        assert f"**{page_name}**" in text, page_name
    sp = SamplingParams()
    assert f"top-{sp.top_n} regions" in text and f"{sp.threshold:.0%}" in text and f"{sp.budget:,} images" in text
    # which methods have a one-sided colour scale: the registry's word, in the text and the table
    from explainers.base import methods

    for spec in methods().values():
        row = next(line for line in text.split("\n") if line.startswith(f"| **{spec.title}**"))
        assert ("one-sided" in row) == (not spec.signed), row
    assert "never negative (Grad-CAM, " in text and "Eigen-CAM, " not in text.split("never negative (")[1][:200]


def test_default_run_fills_three_columns_and_shows_the_cat(app: AppTest) -> None:
    app.run()
    assert not app.exception
    titles = method_titles(app)
    for title in ("LIME", "Grad-CAM", "KernelSHAP"):
        assert title in titles, titles
    captions = [c.value for c in app.caption]
    costs = [c for c in captions if "model call" in c or "reused" in c]
    assert len(costs) == 3, captions
    assert not any("1 model calls" in c for c in captions), "singular for one call"
    # the method sharing LIME's rows reports the 64 rows it used, not the shared run's total
    assert sum("reused 64 perturbed images" in c for c in costs) == 1, costs
    scales = next(c for c in captions if c.startswith("Each method has its own colour scale"))
    assert "symmetric around 0 (Grad-CAM: from 0, as its maps are never negative)" in scales, scales
    label = app.selectbox(key="xai_view_label")
    assert label.value in range(281, 286), "the sample cat should be classified as a cat"


def test_view_changes_and_label_switch_do_not_call_the_model(app: AppTest) -> None:
    app.session_state["xai_top_k"] = 2
    app.run()
    assert not app.exception
    classifier = load_classifier("efficientnet-lite0")
    before = classifier.images_seen
    labels = app.session_state[state.CURRENT_LABELS_KEY]
    assert len(labels) == 2
    app.selectbox(key="xai_view_label").select(labels[1]).run()
    assert app.session_state["xai_view_label"] == labels[1] and not app.exception
    app.slider(key="xai_view_opacity").set_value(0.9).run()
    app.toggle(key="xai_view_positive").set_value(True).run()
    app.radio(key="xai_view_style").set_value("segments").run()
    app.selectbox(key="xai_view_cmap").select("blue-orange").run()
    app.toggle(key="xai_view_outline").set_value(False).run()
    app.number_input(key="xai_view_top_n").set_value(5).run()
    app.toggle(key="xai_interactive").set_value(True).run()
    assert not app.exception
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    assert classifier.images_seen == before, "view-only changes must render from cache"


def test_uploaded_image_gets_predictions(app: AppTest) -> None:
    from skimage import data

    app.run()
    app.radio(key="xai_image_source").set_value("Upload").run()
    app.file_uploader(key="xai_upload").set_value(("coffee.png", png(data.coffee()), "image/png")).run()
    assert not app.exception
    assert state.IMAGE_KEY in app.session_state
    assert app.session_state[state.IMAGE_KEY].name == "coffee.png"
    assert app.selectbox(key="xai_view_label").value == 967  # espresso


def test_bad_image_shows_an_error_and_the_session_keeps_working(app: AppTest) -> None:
    app.run()
    app.radio(key="xai_image_source").set_value("Upload").run()
    app.file_uploader(key="xai_upload").set_value(("fake.png", b"not an image at all", "image/png")).run()
    assert not app.exception
    assert any("cannot be used" in e.value for e in app.error), [e.value for e in app.error]
    # Back to a sample: everything works again.
    app.radio(key="xai_image_source").set_value("Sample").run()
    app.selectbox(key="xai_sample").select("coffee").run()
    assert not app.exception
    assert not app.error


def test_bad_model_file_is_rejected_with_a_message(app: AppTest) -> None:
    app.run()
    app.selectbox(key=state.MODEL_KEY).select("custom").run()
    app.file_uploader(key="xai_model_file").set_value(("evil.keras", b"PK\x03\x04garbage", "application/octet-stream")).run()
    assert not app.exception
    errors = [e.value for e in app.error] + [e.value for e in app.sidebar.error]
    assert errors, "a rejected model must be explained to the user"
    app.selectbox(key=state.MODEL_KEY).select("efficientnet-lite0").run()
    assert not app.exception


def test_trust_page_computes_metrics_and_badges_reach_the_explain_page(app: AppTest) -> None:
    app.run()
    app.switch_page("pages/trust.py").run()
    assert not app.exception
    app.number_input(key="xai_trust_seeds").set_value(2)
    app.number_input(key="xai_trust_samples").set_value(32)
    app.number_input(key="xai_trust_steps").set_value(6)
    submit = [b for b in app.get("form_submit_button") if b.label == "Compute trust metrics"]
    assert len(submit) == 1
    submit[0].click().run()
    assert not app.exception
    captions = " ".join(c.value for c in app.caption)
    assert "Extra model calls for these metrics" in captions, captions
    table = app.dataframe[0].value
    assert set(table["method"]) == {"LIME", "Grad-CAM", "KernelSHAP"}
    assert (table["deletion AUC ↓"] >= 0).all()
    # no mask was given: the mask columns are left out instead of shown as columns of None
    assert "pointing hit" not in table and "mask IoU" not in table and "R²" in table
    # Grad-CAM fits nothing: its R² cell shows the placeholder "n/a", not "None"
    assert app.dataframe[0].proto.placeholder == "n/a" and table["R²"].isna().sum() == 1
    app.switch_page("pages/explain.py").run()
    assert not app.exception
    texts = " ".join(c.value for c in app.caption)
    assert "across seeds" in texts or "faithful" in texts, texts


JARGON = [
    (r"\d+(\.\d+)? ?s\b", "seconds"), (r"model calls?", "model calls"), (r"R²|\bR2\b", "R²"),
    (r"\bbase value|\bbase \d", "base values"), (r"#\d+", "class ids"), (r"\bcalls?\b", "calls"),
    (r"\b(lime|kernel_shap|gradcam|gradcampp|scorecam|eigencam|occlusion|saliency|smoothgrad|"
     r"integrated_gradients|gradient_shap|xgradcam|layercam|hirescam)\b", "method ids"),
    (r"surrogate|intercept|coalition|superpixel|IoU|AUC", "statistics words"),
]


def visible_texts(at: AppTest) -> list[str]:
    """Every text a person sees in the main area and sidebar (markdown, captions, alerts, titles,
    widget labels and options, chart labels)."""
    import json
    import re

    texts = [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error", "title",
                                  "header", "subheader") for e in getattr(at, kind)]
    texts += [e.value for kind in ("caption", "markdown", "header") for e in getattr(at.sidebar, kind)]
    for box in list(at.selectbox) + list(at.radio):
        texts.append(box.label)
        texts += [str(o) for o in box.options]
    texts += [t.label for t in at.toggle] + [s.label for s in at.slider]
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        texts += [str(v) for trace in spec.get("data", []) for k in ("y", "x", "text") for v in trace.get(k, [])
                  if isinstance(v, str)]
    # HTML legends (st.html): their visible words only
    texts += [re.sub(r"<[^>]+>", " ", e.proto.body) for e in at.get("html")]
    return texts


def test_stakeholder_mode_shows_one_numbered_picture_a_plain_caption_and_no_jargon(app: AppTest) -> None:
    import re

    app.session_state["xai_stakeholder"] = True
    app.run()
    assert not app.exception
    assert not app.get("form_submit_button"), "the Explain form is a knob: hidden in stakeholder mode"
    texts = visible_texts(app)
    story = [t for t in texts if t.startswith("#### The model says")]
    assert len(story) == 1, texts
    plain = story[0].removeprefix("#### ").replace("\\", "")
    assert re.search(r"“(tiger|tabby|Egyptian) cat” with \d+% confidence", plain), plain
    assert re.search(r"covering them would (lower its confidence from \d+% to about \d+%|take away almost all "
                     r"of its \d+% confidence)", plain), plain
    assert "*" not in plain and "_" not in plain
    assert any(t.replace("\\", "").startswith("How far to trust it:") for t in texts), texts
    assert sum("pushes towards" in t for t in texts) == 3, "a legend under the main picture and each small one"
    assert {"**Grad-CAM**", "**LIME**"} <= set(texts), "the other methods, small, by title"
    for pattern, what in JARGON:
        flags = 0 if what == "method ids" else re.IGNORECASE  # ids are lower case; titles ("LIME") are fine
        found = [t for t in texts if re.search(pattern, t, flags=flags)]
        assert not found, f"{what} shown in stakeholder mode: {found}"
    # the jargon check can fail: the same texts in normal mode contain it
    app.session_state["xai_stakeholder"] = False
    app.run()
    normal = visible_texts(app)
    assert any(re.search(JARGON[1][0], t) for t in normal) and any("R²" in t for t in normal)


def test_stakeholder_trust_page_has_one_button_and_says_the_verdicts_in_plain_words(app: AppTest) -> None:
    import re

    app.session_state["xai_stakeholder"] = True
    app.run()
    app.switch_page("pages/trust.py").run()
    assert not app.exception
    assert not app.number_input and not app.get("form_submit_button"), "no knobs in stakeholder mode"
    assert [b.label for b in app.button] == ["Check how far these pictures can be trusted"]
    # measured once with small settings in normal mode; stakeholder mode then reads the same report
    app.session_state["xai_stakeholder"] = False
    app.run()
    app.number_input(key="xai_trust_seeds").set_value(2)
    app.number_input(key="xai_trust_samples").set_value(32)
    app.number_input(key="xai_trust_steps").set_value(6)
    next(b for b in app.get("form_submit_button") if b.label == "Compute trust metrics").click().run()
    assert not app.exception and app.dataframe
    app.session_state["xai_stakeholder"] = True
    app.run()
    assert not app.exception and not app.dataframe and not app.get("plotly_chart")
    texts = visible_texts(app)
    verdicts = [t for t in texts if re.match(r"- \*\*(LIME|KernelSHAP|Grad-CAM)\*\* can be trusted (with care|well|fairly) — ", t)]
    assert len(verdicts) == 3, texts
    for pattern, what in JARGON:
        flags = 0 if what == "method ids" else re.IGNORECASE
        found = [t for t in texts if re.search(pattern, t, flags=flags)]
        assert not found, f"{what} shown on the stakeholder Trust page: {found}"


def test_more_samples_refines_the_same_run(app: AppTest) -> None:
    app.run()
    classifier = load_classifier("efficientnet-lite0")
    before = classifier.images_seen
    more = [b for b in app.button if b.label.startswith("More samples")]
    assert len(more) == 1
    more[0].click().run()
    assert not app.exception
    assert app.session_state[state.RUN_KEY].samples == 100  # the next choice of the Samples control
    added = classifier.images_seen - before
    assert 0 < added <= 36, f"refining 64 → 100 samples must only compute the new rows, made {added} calls"


def test_export_buttons_are_offered(app: AppTest) -> None:
    app.run()
    assert not app.exception
    labels = {d.label for d in app.get("download_button")}
    assert labels == {"PNG grid", "HTML report", "PDF report", "Raw NPZ", "JSON"}
    pdf = next(d for d in app.get("download_button") if d.label == "PDF report")
    assert not pdf.proto.disabled, "WeasyPrint and Pango are installed here: PDF must be offered"


def test_custom_model_with_labels_gets_predictions(app: AppTest, tmp_path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    app.run()
    app.selectbox(key=state.MODEL_KEY).select("custom").run()
    app.file_uploader(key="xai_labels_file").set_value(("labels.txt", b"red\ngreen\nblue\n", "text/plain")).run()
    app.file_uploader(key="xai_model_file").set_value(("tiny.keras", path.read_bytes(), "application/octet-stream")).run()
    assert not app.exception
    assert not app.session_state[state.CUSTOM_ERROR_KEY]
    labels = app.session_state[state.CURRENT_LABELS_KEY]
    assert set(labels) <= {0, 1, 2} and len(labels) == 3
    names = " ".join(m.value for m in app.markdown)
    assert "LIME" in names and "Grad-CAM" in names


def test_models_page_says_which_weights_file_goes_where(app: AppTest) -> None:
    from model_zoo.catalog import get_entry

    app.run()
    app.switch_page("pages/models.py").run()
    assert not app.exception
    entry = get_entry("inceptionv3")
    helps = " ".join(b.help or "" for b in app.button)
    assert entry.weights_file in helps, "a missing catalog model must name the file to place"
    texts = " ".join(m.value for m in app.markdown)
    assert "EfficientNet-Lite0" in texts  # the current model
    assert "ready (bundled)" in texts and "weights missing" in texts
    # statuses use Streamlit's icon font: emoji drew as empty boxes where no emoji font is installed
    assert not re.search("[\u2600-\u27bf\u2b00-\u2bff\U0001F300-\U0001FAFF]", texts), texts


def test_sidebar_choices_survive_page_switches(app: AppTest) -> None:
    app.run()
    app.slider(key="xai_top_k").set_value(2).run()
    app.selectbox(key="xai_resize").select("pad").run()
    app.switch_page("pages/guide.py").run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    assert app.slider(key="xai_top_k").value == 2
    assert app.selectbox(key="xai_resize").value == "pad"
    assert len(app.session_state[state.CURRENT_LABELS_KEY]) == 2


def test_camera_snapshot_is_explained(app: AppTest) -> None:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, format="JPEG", quality=92)
    app.run()
    app.radio(key="xai_image_source").set_value("Camera").run()
    app.camera_input(key="xai_camera").set_value(("snapshot.jpg", buf.getvalue(), "image/jpeg")).run()
    assert not app.exception
    assert app.session_state[state.IMAGE_KEY].source == "camera"
    assert app.session_state[state.CURRENT_LABELS_KEY][0] == 967  # espresso


def test_compare_page_explains_one_label_rather_than_another_without_model_calls(app: AppTest) -> None:
    app.session_state["xai_top_k"] = 2
    app.run()
    assert not app.exception
    classifier = load_classifier("efficientnet-lite0")
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    labels = app.session_state[state.CURRENT_LABELS_KEY]
    before = classifier.images_seen
    app.selectbox(key="xai_contrast_a").select(labels[1]).run()
    app.selectbox(key="xai_contrast_b").select(labels[0]).run()
    assert not app.exception
    names = classifier.labels
    caption = [m.value for m in app.markdown if m.value.startswith("What makes it")]
    assert caption and f"**{names[labels[1]]}** rather than **{names[labels[0]]}**" in caption[0]
    # LIME and KernelSHAP from the rows already computed; Grad-CAM's pass holds both gradients
    assert classifier.images_seen == before
    costs = [c.value for c in app.caption if "model call" in c.value or "perturbed images" in c.value]
    assert len(costs) >= 6, costs  # 2 labels × 3 + 3 contrasts
    app.selectbox(key="xai_contrast_b").select(labels[1]).run()
    assert any("two different labels" in w.value for w in app.warning)


@pytest.mark.slow
def test_a_method_registered_at_test_time_gets_its_own_widgets_in_the_explain_form(app: AppTest) -> None:
    from explainers.base import register, unregister
    from tests.explainers.test_registry import TOY, TOY_SPEC

    register(TOY_SPEC)
    try:
        app.run()
        assert not app.exception
        assert "Toy stripes" in app.multiselect(key="xai_form_methods").options
        bands = app.number_input(key=f"xai_param_{TOY}_bands")
        assert bands.value == 4 and bands.min == 1 and bands.max == 16
        assert app.number_input(key=f"xai_param_{TOY}_strength").value == 1.5
        assert app.selectbox(key=f"xai_param_{TOY}_direction").options == ["rows", "cols"]
        # the built-in methods' parameters come from their dataclasses too (no hard-coded three)
        assert app.selectbox(key="xai_param_lime_surrogate").options == ["ridge", "lasso", "tree"]
        assert app.number_input(key="xai_param_occlusion_window").value == 32
        # choosing it and pressing Explain runs it next to the others, with the chosen parameter
        app.multiselect(key="xai_form_methods").set_value(["lime", TOY])
        app.number_input(key=f"xai_param_{TOY}_bands").set_value(7)
        app.get("form_submit_button")[0].click().run()  # the Explain form's button
        assert not app.exception
        assert "Toy stripes" in method_titles(app)
        assert dict(app.session_state[state.RUN_KEY].method_params(TOY))["bands"] == 7
    finally:
        unregister(TOY)


def test_new_methods_appear_in_the_explain_form_from_the_registry(app: AppTest) -> None:
    app.run()
    assert not app.exception
    options = app.multiselect(key="xai_form_methods").options
    assert "Partition SHAP" in options and "RISE" in options
    assert app.selectbox(key="xai_param_partition_shap_hierarchy").options == ["colour", "balanced"]
    evals = app.number_input(key="xai_param_partition_shap_max_evals")
    assert evals.value == 500 and evals.min == 4
    assert app.number_input(key="xai_param_rise_masks").value == 1000
