"""AppTest (real bundled model): labels follow a new image, the run says what it was computed
with, More samples reflects / refuses the run, a missing catalog model offers its download on
the Explain page, a garbage model upload gives one message, and the compact Models page."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from model_zoo.registry import load_classifier
from ui import explain_panel, services, state

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
pytestmark = pytest.mark.slow


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no catalog weights here
    st.cache_data.clear()
    services.store().clear()
    services.clear_classifier_cache()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.RUN_KEY] = explain_panel.build_request(["lime", "gradcam", "kernel_shap"], samples=64)
    return at


def messages(at: AppTest) -> list[str]:
    return [m.value for kind in ("error", "warning", "info", "success") for m in getattr(at, kind)] + [
        m.value for kind in ("error", "warning", "info") for m in getattr(at.sidebar, kind)]


def test_a_new_image_resets_the_label_to_its_top1(app: AppTest) -> None:
    """Item 3: the label picked for the old image must not survive when it is still in the top-k."""
    from skimage import data

    app.session_state["xai_top_k"] = 5
    app.run()
    assert not app.exception
    old = list(app.session_state[state.CURRENT_LABELS_KEY])
    app.selectbox(key="xai_view_label").select(old[1]).run()  # not the top-1
    assert app.session_state["xai_view_label"] == old[1]

    flipped = np.ascontiguousarray(data.chelsea()[:, ::-1])  # another photo of the same cat
    app.radio(key="xai_image_source").set_value("Upload").run()
    app.file_uploader(key="xai_upload").set_value(("flipped.png", png(flipped), "image/png")).run()
    assert not app.exception
    new = list(app.session_state[state.CURRENT_LABELS_KEY])
    assert old[1] in new, "the old choice must still be offered, or the test proves nothing"
    assert new[0] != old[1]
    assert app.selectbox(key="xai_view_label").value == new[0]


def test_pictures_say_what_they_were_computed_with_and_preview_differences_are_flagged(app: AppTest) -> None:
    app.run()
    assert not app.exception
    used = [c.value for c in app.caption if c.value.startswith("LIME and KernelSHAP computed with")]
    assert len(used) == 1, [c.value for c in app.caption]
    assert "superpixels from quickshift" in used[0] and "64 samples" in used[0] and "seed 0" in used[0]
    assert not [w for w in app.warning if "differs" in w.value]

    app.selectbox(key="xai_seg_algorithm").select("slic").run()
    warnings = [w.value for w in app.warning if "differs" in w.value]
    assert len(warnings) == 1 and "quickshift" in warnings[0]
    app.selectbox(key="xai_seg_algorithm").select("quickshift").run()
    assert not [w for w in app.warning if "differs" in w.value]


def test_more_samples_moves_the_samples_control_with_the_run(app: AppTest) -> None:
    app.run()
    assert app.select_slider(key="xai_form_samples").value == 64
    more = [b for b in app.button if b.label.startswith("More samples")]
    assert len(more) == 1 and more[0].label == "More samples (64 → 100)"
    more[0].click().run()
    assert not app.exception
    assert app.session_state[state.RUN_KEY].samples == 100
    assert app.select_slider(key="xai_form_samples").value == 100
    used = [c.value for c in app.caption if c.value.startswith("LIME and KernelSHAP computed with")]
    assert "100 samples" in used[0]


def test_more_samples_is_disabled_with_a_reason_when_the_run_is_exhaustive(app: AppTest) -> None:
    """A 2 × 3 grid has 2^6 = 64 coalitions: 100 samples ask for more than exist."""
    app.session_state[state.RUN_KEY] = explain_panel.build_request(
        ["lime", "kernel_shap"], samples=100, segmentation="grid", segmentation_params={"rows": 2, "cols": 3})
    app.run()
    assert not app.exception
    more = [b for b in app.button if b.label.startswith("More samples")]
    assert len(more) == 1 and more[0].disabled
    text = " ".join(c.value for c in app.caption)
    assert "all 64 combinations of the 6 superpixels are already computed" in text
    assert "all 64 combinations of the 6 superpixels (exact)" in text


@pytest.fixture
def bad_mirror(tmp_path, monkeypatch):
    """A local HTTP server serving a wrong InceptionV3 weights file, named as the mirror."""
    from model_zoo.catalog import get_entry

    root = tmp_path / "www"
    root.mkdir()
    (root / get_entry("inceptionv3").weights_file).write_bytes(b"not the weights")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("XAI_LENS_WEIGHTS_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    yield root
    server.shutdown()
    server.server_close()


def test_missing_catalog_weights_keep_the_image_and_offer_the_download(app: AppTest, tmp_path, bad_mirror) -> None:
    from model_zoo.catalog import get_entry

    app.run()
    app.selectbox(key=state.MODEL_KEY).select("inceptionv3").run()
    assert not app.exception
    assert not app.error, [e.value for e in app.error]
    assert len(app.get("image")) == 1, "the chosen image stays on screen"
    entry = get_entry("inceptionv3")
    buttons = [b for b in app.button if b.label.startswith("Download the weights")]
    assert [b.label for b in buttons] == ["Download the weights (92 MB)"]
    where = " ".join(c.value for c in app.caption)
    assert str(tmp_path / "keras_home" / "models" / entry.weights_file) in where and "92 MB" in where

    buttons[0].click().run()  # the mirror serves a wrong file: refused, one error, no stale bar
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and "download failed" in errors[0] and entry.file_hash in errors[0]
    assert not app.get("progress"), "no Downloading… bar may stay above the error"
    assert not (tmp_path / "keras_home" / "models" / entry.weights_file).exists()


def test_garbage_h5_upload_gives_exactly_one_message(app: AppTest) -> None:
    app.run()
    app.selectbox(key=state.MODEL_KEY).select("custom").run()
    assert not app.exception
    before = messages(app)
    assert len(before) == 1 and "Upload a .keras or .h5" in before[0]
    app.file_uploader(key="xai_model_file").set_value(("model.h5", b"\x89HDF\r\n garbage", "application/octet-stream")).run()
    assert not app.exception
    shown = messages(app)
    assert len(shown) == 1, shown
    assert shown[0].startswith("Your model file was rejected") and "upload a" not in shown[0].lower()


def test_models_page_has_compact_rows_and_a_readable_current_model(app: AppTest) -> None:
    from model_zoo.catalog import CATALOG

    app.run()
    app.switch_page("pages/models.py").run()
    assert not app.exception
    assert not app.json, "the current model is described in words, not as a JSON tree"
    text = " ".join(m.value for m in app.markdown)
    assert "EfficientNet-Lite0" in text and "Chooses among 1,000 classes" in text
    downloads = [b for b in app.button if b.label.startswith("Download")]
    assert len(downloads) == len(CATALOG)  # every catalog model misses its weights here: one action each
    inception = next(e for e in CATALOG if e.id == "inceptionv3")
    button = app.button(key="dl_inceptionv3")
    assert button.label == f"Download ({inception.size_mb:.0f} MB)" == "Download (92 MB)"
    assert inception.weights_file in button.help
    assert not any("https://" in c.value for c in app.caption), "no URL paragraphs in the rows"
