"""AppTest: hostile uploads and extreme settings (issue 8) — every one gets a message, the page
keeps its sidebar, runs use exactly the settings shown, user text is never rendered as markdown.

Real bundled model and real tiny Keras models; nothing mocked.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from explainers.text import escape_markdown, markdown_to_text
from ui import explain_panel, services, state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
HOSTILE_LABELS = ["<img src=http://127.0.0.1:9/track.png>", "[x](http://127.0.0.1:9/)", "![p](http://127.0.0.1:9/p.png)"]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims ``width × height`` (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def app() -> AppTest:
    st.cache_data.clear()
    st.cache_resource.clear()
    services.store().clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.RUN_KEY] = explain_panel.build_request(["lime", "gradcam", "kernel_shap"], samples=64)
    return at


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> bytes:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path.read_bytes()


def all_text(at: AppTest) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success"):
        out += [e.value for e in getattr(at, kind)]
        out += [e.value for e in getattr(at.sidebar, kind)]
    return out


def errors(at: AppTest) -> list[str]:
    """Error messages as the user reads them (markdown escapes undone)."""
    return [markdown_to_text(e.value) for e in list(at.error) + list(at.sidebar.error)]


ACTIVE = re.compile(r"(?<!\\)(<[a-zA-Z/!]|\]\(|!\[)|https?\\?:\\?/")
"""Markdown a renderer would act on: an HTML tag, a link or an image (unless backslash-escaped)."""


def use_custom(at: AppTest, model: bytes, labels: tuple[str, bytes] | None = None) -> None:
    at.run()
    at.selectbox(key=state.MODEL_KEY).select("custom").run()
    if labels is not None:
        at.file_uploader(key="xai_labels_file").set_value((labels[0], labels[1], "text/plain")).run()
    at.file_uploader(key="xai_model_file").set_value(("tiny.keras", model, "application/octet-stream")).run()


# ----------------------------------------------------------------------------- settings shown = settings run
def test_an_invalid_grid_blocks_explain_instead_of_running_the_previous_one(app: AppTest) -> None:
    app.run()
    app.selectbox(key="xai_seg_algorithm").select("grid").run()
    app.number_input(key="xai_seg_grid_rows").set_value(4).run()
    submit = [b for b in app.button if b.label == "Explain"][0]
    submit.click().run()
    assert not app.exception
    before = app.session_state[state.RUN_KEY]
    assert dict(before.segmentation_params)["rows"] == 4 and before.segmentation == "grid"

    app.number_input(key="xai_seg_grid_rows").set_value(512).run()
    app.number_input(key="xai_seg_grid_cols").set_value(1).run()
    assert not app.exception
    shown = " ".join(errors(app))
    assert "512×1 grid does not fit" in shown and "Explain is blocked" in shown, shown
    submit = [b for b in app.button if b.label == "Explain"][0]
    assert submit.disabled  # AppTest, like a browser, cannot press it
    app.run()
    assert app.session_state[state.RUN_KEY] == before  # nothing ran with the old (4×8) settings

    app.number_input(key="xai_seg_grid_rows").set_value(224).run()
    app.number_input(key="xai_seg_grid_cols").set_value(224).run()
    shown = " ".join(errors(app))
    assert "50,176 cells" in shown and "bigger cells" in shown, shown

    app.number_input(key="xai_seg_grid_rows").set_value(2).run()
    app.number_input(key="xai_seg_grid_cols").set_value(3).run()
    submit = [b for b in app.button if b.label == "Explain"][0]
    assert not submit.disabled
    submit.click().run()
    req = app.session_state[state.RUN_KEY]
    assert dict(req.segmentation_params) == {"rows": 2, "cols": 3}
    assert not app.exception


def test_preprocessing_change_after_a_page_switch_reaches_the_remembered_model(app: AppTest, tiny_model) -> None:
    use_custom(app, tiny_model)
    assert not app.exception and not app.session_state[state.CUSTOM_ERROR_KEY]
    app.switch_page("pages/models.py").run()
    assert not app.exception
    app.switch_page("pages/explain.py").run()  # the uploaders are empty now
    assert app.file_uploader(key="xai_model_file").value is None
    app.selectbox(key="xai_preprocessing").select("caffe").run()
    assert not app.exception
    assert app.session_state[state.CUSTOM_KEY].preprocessing == "caffe"
    app.number_input(key="xai_input_size").set_value(0).run()
    app.switch_page("pages/models.py").run()
    described = " ".join(m.value for m in app.markdown)
    assert "*caffe* preprocessing" in described, described


# ----------------------------------------------------------------------------- hostile labels
def test_hostile_label_names_are_shown_as_text_everywhere(app: AppTest, tiny_model) -> None:
    labels = "\n".join(HOSTILE_LABELS).encode()
    use_custom(app, tiny_model, ("evil<img src=http://127.0.0.1:9/f.png>.txt", labels))
    assert not app.exception and not app.session_state[state.CUSTOM_ERROR_KEY]
    app.toggle(key="xai_stakeholder").set_value(True).run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    texts = all_text(app)
    joined = " ".join(texts)
    for name in HOSTILE_LABELS:
        assert escape_markdown(name) in joined, (name, texts)
    for text in texts:  # nothing a markdown renderer would turn into an image, a link or HTML
        assert not ACTIVE.search(text), text
    app.switch_page("pages/explain.py").run()
    assert not app.exception
    for text in all_text(app):
        assert not ACTIVE.search(text), text


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("deep.json", b"[" * 100_000, "nested too deeply"),
        ("deep.txt", b"[" * 100_000, "nested too deeply"),
        ("sparse.json", b'{"0": "a", "20000000": "b"}', "20,000,000 is out of range"),
        ("latin1.txt", b"caf\xe9\nb\nc\n", "not UTF-8"),
        ("empty.txt", b"", "empty"),
        ("two.txt", b"a\nb\n", "2 names but the model has 3"),
        ("bad<b>name</b>.json", b'{"0": "[x](http://127.0.0.1:9/)", "0": "b"}', "appears twice"),
    ],
)
def test_hostile_labels_files_get_a_message_and_keep_the_sidebar(app: AppTest, tiny_model, name, data, message) -> None:
    use_custom(app, tiny_model, (name, data))
    assert not app.exception
    shown = " ".join(errors(app))
    assert message in shown, shown
    assert app.sidebar.selectbox(key=state.MODEL_KEY).value == "custom"  # the sidebar is still there
    for text in all_text(app):
        assert not ACTIVE.search(text), text


def test_duplicate_label_names_are_accepted_and_listed_apart(app: AppTest, tiny_model) -> None:
    use_custom(app, tiny_model, ("dup.txt", b"cat\ncat\ncat\n"))
    assert not app.exception and not app.session_state[state.CUSTOM_ERROR_KEY]
    assert sorted(app.selectbox(key="xai_view_label").options) != []
    assert len(app.session_state[state.CURRENT_LABELS_KEY]) == 3


# ----------------------------------------------------------------------------- hostile images
@pytest.mark.parametrize(
    "name, data, message",
    [
        ("zero.png", b"", "cannot be used"),
        ("header-bomb.png", png_header_only(100_000, 100_000), "cannot be used"),
        ("wide.png", png_header_only(2**31 - 1, 1), "cannot be used"),
        ("one.png", png(np.zeros((1, 1, 3), np.uint8)), None),  # a 1×1 image is explained
        ("thin.png", png(np.zeros((1, 900, 3), np.uint8) + 200), None),
        ("<img src=http:⁄⁄x>.png", b"GIF89a", "cannot be used"),
    ],
)
def test_hostile_images_get_a_message_and_the_next_session_state_works(app: AppTest, name, data, message) -> None:
    app.run()
    app.radio(key="xai_image_source").set_value("Upload").run()
    app.file_uploader(key="xai_upload").set_value((name, data, "image/png")).run()
    assert not app.exception, app.exception
    if message is None:
        assert not errors(app), errors(app)
        assert len(app.session_state[state.CURRENT_LABELS_KEY]) == 3
    else:
        assert any(message in e for e in errors(app)), errors(app)
        for text in all_text(app):
            assert not ACTIVE.search(text), text
    app.radio(key="xai_image_source").set_value("Sample").run()
    app.selectbox(key="xai_sample").select("coffee").run()
    assert not app.exception and not errors(app)


def test_extreme_seed_and_samples_are_fine(app: AppTest) -> None:
    app.run()
    app.number_input(key="xai_form_seed").set_value(2**31 - 1)
    submit = [b for b in app.button if b.label == "Explain"][0]
    submit.click().run()
    assert not app.exception and not errors(app)
    assert app.session_state[state.RUN_KEY].seed == 2**31 - 1
