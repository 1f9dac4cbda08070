"""The first run in a 1400×900 window: progress must be visible above the fold (the toolbar's
running indicator is hidden), in the status line at the top and in each method's slot."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
WIDTH, HEIGHT = 1400, 900


@pytest.fixture(scope="module")
def fresh_server():
    """Its own process, so the first page load really computes (nothing cached by other tests)."""
    with serve(samples=400, log_name="streamlit-progress.log") as url:
        yield url


def test_first_run_shows_progress_above_the_fold(fresh_server, browser) -> None:
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(fresh_server)
    bars = page.locator("[data-testid=stProgress]")
    # the status bar at the top and a bar in the slot of the method that runs
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stProgress]').length >= 2",
                           timeout=240_000)
    page.locator("[data-testid=stProgress]", has_text="perturbed images").first.wait_for(timeout=240_000)
    page.screenshot(path=str(ARTIFACTS / "first-run-progress.png"))  # the viewport only: what the eye sees
    top = bars.first
    box = top.bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= HEIGHT / 2, box
    text = top.inner_text()
    assert "LIME + KernelSHAP" in text and "ready: Grad-CAM" in text, text
    # when the run ends, the status line goes and the pictures are there
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
        ".filter(e => /model calls?|perturbed images/.test(e.innerText)).length >= 3", timeout=240_000)
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=240_000)
    assert bars.count() == 0  # no bar left once every picture is there
    page.screenshot(path=str(ARTIFACTS / "first-run-done.png"))

    # Trust: one bar over the whole computation, its stage in words
    page.get_by_role("link", name="Trust").click()
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=240_000)
    page.get_by_role("spinbutton", name="Samples per rerun").fill("200")
    page.get_by_role("button", name="Compute trust metrics").click()
    stability = page.locator("[data-testid=stProgress]", has_text="Checking stability")
    stability.first.wait_for(timeout=240_000)
    page.screenshot(path=str(ARTIFACTS / "trust-progress.png"))
    assert bars.count() == 1, "one bar for the whole trust computation"
    assert "of 5)" in stability.first.inner_text()
    page.get_by_text("Extra model calls for these metrics").wait_for(timeout=240_000)
    page.close()
