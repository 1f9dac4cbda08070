"""Hostile inputs in a real browser (issue 8): a labels file whose names are HTML and markdown
links must never make the browser fetch them, and the server keeps serving other sessions.

A fake tracker URL on a closed local port stands in for an external site; every request the
page makes is recorded with ``page.on("request")``.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_browser import RUN_TIMEOUT_MS, top_label, upload, wait_idle


def wait_three_overlays(page) -> None:
    """Three result captions ("0.12 s · 64 model calls", "… · reused 64 perturbed images")."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
        ".filter(e => /\\d\\.\\d\\d s · /.test(e.innerText)).length >= 3",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TRACKER = "http://127.0.0.1:9/"
HOSTILE_NAMES = [f"<img src={TRACKER}track.png>", f"[x]({TRACKER})", f"![p]({TRACKER}p.png)"]


def tiny_model(path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)


def choose_custom_model(page) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Classifier").click()
    page.get_by_role("option", name="Your own model (.keras / .h5)…").click()
    wait_idle(page)


def test_hostile_labels_never_reach_the_network_and_a_second_session_still_works(server, browser, tmp_path) -> None:
    model = tmp_path / "tiny.keras"
    tiny_model(model)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(HOSTILE_NAMES) + "\n", encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text('{"<img src=%sbad.png>": "a"}' % TRACKER, encoding="utf-8")

    page = browser.new_page(viewport={"width": 1500, "height": 1800})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server)
    wait_idle(page)
    choose_custom_model(page)
    uploaders = page.get_by_test_id("stFileUploaderDropzoneInput")
    # an error message that quotes the file: the class index is the hostile text
    # each upload is waited for by its file name (the idle state right after set_input_files
    # can still be the old one: the next upload then raced the rerun, and CI once timed out)
    sidebar = page.get_by_test_id("stSidebar")
    uploaders.nth(1).set_input_files(str(bad))
    sidebar.get_by_text("bad.json").first.wait_for(timeout=60_000)
    wait_idle(page)
    uploaders.nth(0).set_input_files(str(model))
    sidebar.get_by_text("tiny.keras").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_text("is not a class index").first.wait_for(timeout=120_000)
    # now the hostile names themselves
    uploaders.nth(1).set_input_files(str(labels))
    wait_idle(page)
    try:
        wait_three_overlays(page)  # the custom model is explained with the hostile names
        page.screenshot(path=str(ARTIFACTS / "hostile-explain.png"), full_page=True)
        page.get_by_role("link", name="Compare labels").click()
        wait_idle(page)
        page.get_by_text("track.png", exact=False).first.wait_for(timeout=RUN_TIMEOUT_MS)
        wait_idle(page)
    finally:
        page.screenshot(path=str(ARTIFACTS / "hostile-compare.png"), full_page=True)
    body = page.inner_text("body").replace("\u200b", "")  # the zero-width spaces that stop autolinks
    assert HOSTILE_NAMES[0] in body  # shown as the characters it is made of
    assert page.locator(f"img[src^='{TRACKER}'], a[href^='{TRACKER}']").count() == 0
    leaked = [u for u in requests if u.startswith(TRACKER)]
    assert not leaked, leaked
    page.close()

    # the server keeps serving a second session normally
    second = browser.new_page(viewport={"width": 1400, "height": 1600})
    second.goto(server)
    wait_idle(second)
    wait_three_overlays(second)
    assert "cat" in top_label(second).lower()  # the default sample, explained as usual
    second.close()


def test_hostile_images_get_messages_and_the_server_keeps_serving(server, browser, tmp_path) -> None:
    from tests.app.test_hostile import png_header_only

    zero = tmp_path / "zero.png"
    zero.write_bytes(b"")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(100_000, 100_000))
    one = tmp_path / "one.png"
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(one)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(server)
    wait_idle(page)
    for path in (zero, bomb):
        upload(page, path, shown=False)
        page.get_by_text("This image cannot be used").first.wait_for(timeout=60_000)
        assert page.get_by_test_id("stSidebar").count() == 1
    upload(page, one)
    wait_three_overlays(page)
    page.close()
    second = browser.new_page()
    second.goto(server)
    wait_idle(second)
    wait_three_overlays(second)
    second.close()
