"""AppTest for issue 12's additions: concepts (DFF), your own regions, scikit-learn models."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from ui import explain_panel, services, state

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
pytestmark = pytest.mark.slow


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app() -> AppTest:
    st.cache_data.clear()
    services.store().clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.RUN_KEY] = explain_panel.build_request(["gradcam"], samples=64)
    return at


def titles(at: AppTest) -> list[str]:
    return [m.value.strip("*") for m in at.markdown if m.value.startswith("**") and m.value.endswith("**")]


def test_concepts_are_drawn_with_their_categories(app: AppTest) -> None:
    app.session_state[state.RUN_KEY] = explain_panel.build_request(["dff"], samples=64)
    app.run()
    assert not app.exception
    assert "Concepts (DFF)" in titles(app)
    legend = [m.value for m in app.markdown if "concept 1:" in m.value]
    assert legend and "← this label" in legend[0] and legend[0].count("concept ") == 4


def test_your_regions_replace_the_superpixels(app: AppTest) -> None:
    app.run()
    pixels = np.asarray(Image.open(io.BytesIO(services.sample_bytes("chelsea"))))
    h, w = pixels.shape[:2]
    ids = np.zeros((h, w), np.uint8)
    ids[:, w // 2 :] = 1
    ids[: h // 3, :] = 2
    app.file_uploader(key="xai_regions_file").set_value(("regions.png", png(ids), "image/png")).run()
    assert not app.exception
    assert app.selectbox(key="xai_seg_algorithm").value == "regions"
    assert any("3 regions from your map" in c.value for c in app.caption), [c.value for c in app.caption]
    app.multiselect(key="xai_form_methods").set_value(["feature_ablation", "lime"])
    app.button(key="xai_explain_button").click()  # the form's Explain button
    app.run()
    assert not app.exception
    assert {"Feature ablation", "LIME"} <= set(titles(app))
    ctx = services.store()._contexts
    assert any(c.segmentation == "regions" and int(c.segments().max()) == 2 for c, _ in ctx.values())

    # a map of the wrong size is refused with a message, and the session keeps working
    app.file_uploader(key="xai_regions_file").set_value(("bad.png", png(ids[:-5]), "image/png")).run()
    assert not app.exception
    assert any("region map cannot be used" in e.value for e in app.error), [e.value for e in app.error]


def test_a_scikit_learn_model_is_explained_without_gradient_methods(app: AppTest) -> None:
    import skops.io as sio
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=200,
                                                         random_state=0)).fit(digits.data, digits.target)
    app.session_state[state.RUN_KEY] = explain_panel.build_request(["lime", "gradcam"], samples=64)
    app.run()
    app.selectbox(key=state.MODEL_KEY).select("sklearn").run()
    app.number_input(key="xai_skops_high").set_value(16.0).run()
    app.file_uploader(key="xai_skops_file").set_value(
        ("digits.skops", sio.dumps(pipe), "application/octet-stream")).run()
    assert not app.exception
    assert not app.session_state[state.CUSTOM_ERROR_KEY]
    app.radio(key="xai_image_source").set_value("Upload").run()
    digit = np.repeat(np.rint(digits.images[3] * 255 / 16).astype(np.uint8)[:, :, None], 3, axis=2)
    app.file_uploader(key="xai_upload").set_value(("three.png", png(digit), "image/png")).run()
    assert not app.exception
    assert app.session_state[state.CURRENT_LABELS_KEY][0] == 3
    shown = titles(app)
    assert "LIME" in shown and "Grad-CAM" not in shown
    assert any("Not offered for this model" in c.value and "Grad-CAM" in c.value for c in app.caption)

    # a pickle is refused with a message
    app.file_uploader(key="xai_skops_file").set_value(("m.skops", b"\x80\x04junk", "application/octet-stream")).run()
    assert not app.exception
    errors = [e.value.replace("\\", "") for e in app.error]  # the message is markdown-escaped
    assert any("rejected" in e and "not a .skops model" in e for e in errors), errors
