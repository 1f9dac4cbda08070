"""The dashboard in a real browser: upload, Explain, compare labels, download the report,
and two sessions explaining different images at the same time."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RUN_TIMEOUT_MS = 240_000


def png_file(tmp_path, name: str, array: np.ndarray):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return path


def wait_idle(page, timeout: int = RUN_TIMEOUT_MS) -> None:
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)


def upload(page, path) -> None:
    # the Source radio's option (the regions uploader below it has an "Upload" button too)
    page.get_by_test_id("stSidebar").get_by_test_id("stRadio").get_by_text("Upload", exact=True).first.click()
    wait_idle(page)
    # the image uploader by its label: the regions uploader is always there, so `.first` could
    # pick it before the image uploader appears
    image_uploader = page.get_by_test_id("stFileUploader").filter(has_text="Image file")
    image_uploader.wait_for(timeout=60_000)
    image_uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    wait_idle(page)


def wait_three_overlays(page) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
        ".filter(e => /model calls|perturbed images/.test(e.innerText)).length >= 3",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)


def explain(page) -> None:
    page.get_by_role("button", name="Explain").click()
    wait_idle(page)
    wait_three_overlays(page)


def top_label(page) -> str:
    """The text of the selected label (the top-1 prediction after a new image)."""
    box = page.get_by_test_id("stSelectbox").filter(has_text="Label to explain")
    return box.get_by_role("combobox").input_value()


def test_upload_explain_compare_and_download(server, browser, tmp_path) -> None:
    from skimage import data

    page = browser.new_page(viewport={"width": 1500, "height": 1800})
    page.goto(server)
    wait_idle(page)
    wait_three_overlays(page)  # the default sample is explained at once
    upload(page, png_file(tmp_path, "coffee.png", data.coffee()))
    explain(page)
    assert "espresso" in top_label(page)
    for title in ("LIME", "Grad-CAM", "KernelSHAP"):
        assert page.get_by_text(title, exact=True).count() >= 1, title
    page.screenshot(path=str(ARTIFACTS / "explain.png"), full_page=True)

    page.get_by_role("link", name="Compare labels").click()
    wait_idle(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
        ".filter(e => /model calls|perturbed images/.test(e.innerText)).length >= 9",
        timeout=RUN_TIMEOUT_MS,
    )
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

    page.get_by_role("link", name="Explain").click()
    wait_idle(page)
    wait_three_overlays(page)
    page.get_by_text("Export", exact=True).click()
    with page.expect_download() as info:
        page.get_by_role("button", name="HTML report").click()
    html = open(info.value.path(), encoding="utf-8").read()
    assert html.startswith("<!doctype html>")
    assert "espresso" in html and "data:image/png;base64," in html
    assert re.search(r"image_sha256", html)

    page.get_by_role("link", name="Trust").click()
    wait_idle(page)
    page.get_by_role("spinbutton", name="Samples per rerun").fill("40")
    page.get_by_role("spinbutton", name="Seeds").fill("2")
    page.get_by_role("button", name="Compute trust metrics").click()
    page.get_by_text("Extra model calls for these metrics").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
    assert page.get_by_test_id("stDataFrame").count() == 1
    page.screenshot(path=str(ARTIFACTS / "trust.png"), full_page=True)
    page.close()


def test_two_sessions_explain_different_images_at_once(server, browser, tmp_path) -> None:
    from skimage import data

    files = {"cat": png_file(tmp_path, "cat.png", data.chelsea()),
             "coffee": png_file(tmp_path, "cup.png", data.coffee())}
    contexts = {name: browser.new_context(viewport={"width": 1400, "height": 1600}) for name in files}
    pages = {name: ctx.new_page() for name, ctx in contexts.items()}
    for name, page in pages.items():
        page.goto(server)
        wait_idle(page)
        upload(page, files[name])
    # Press Explain in both sessions before waiting for either.
    for page in pages.values():
        page.get_by_role("button", name="Explain").click()
    for name, page in pages.items():
        wait_three_overlays(page)
        page.screenshot(path=str(ARTIFACTS / f"concurrent-{name}.png"), full_page=True)
    assert "espresso" in top_label(pages["coffee"])
    assert re.search(r"cat", top_label(pages["cat"]))
    for ctx in contexts.values():
        ctx.close()
