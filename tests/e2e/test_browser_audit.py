"""The Audit page in a real browser: upload a zip, watch the background job's progress refresh by
itself (st.fragment run_every), then the per-class pictures, the gallery and the downloads."""
from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from tests.e2e.conftest import ARTIFACTS
from tests.explainers.audit_models import png

pytestmark = pytest.mark.e2e
RUN_TIMEOUT_MS = 400_000


def test_audit_zip_upload_runs_in_the_background(server, browser, tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for cls in ("cats", "dogs"):
            for i in range(2 if cls == "cats" else 1):
                zf.writestr(f"{cls}/{i}.png", png(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
        zf.writestr("../escape.png", b"x")
    masks = tmp_path / "masks.zip"
    obj = np.zeros((64, 64, 3), np.uint8)
    obj[16:48, 16:48] = 255
    with zipfile.ZipFile(masks, "w") as zf:
        for name in ("cats/0", "cats/1", "dogs/0"):
            zf.writestr(f"masks/{name}.png", png(obj))
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    try:
        page.goto(server)
        page.get_by_role("link", name="Audit").click()
        page.get_by_text("Dataset audit", exact=True).wait_for(timeout=120_000)
        page.get_by_test_id("stMain").get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
        page.get_by_text("photos.zip", exact=True).wait_for(timeout=60_000)  # the upload's rerun is done
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=60_000)
        page.get_by_text("Object masks (.zip)").click()
        page.get_by_test_id("stMain").get_by_test_id("stFileUploaderDropzoneInput").nth(1).wait_for(state="attached", timeout=60_000)
        page.get_by_test_id("stMain").get_by_test_id("stFileUploaderDropzoneInput").nth(1).set_input_files(str(masks))
        page.get_by_text("3 masks found", exact=False).wait_for(timeout=60_000)
        start = page.get_by_role("button", name="Start the audit")
        start.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('button')].some(b => b.innerText.includes('Start the audit') && !b.disabled)",
            timeout=60_000)
        start.click()
        # No further interaction: the progress fragment must redraw by itself until the end.
        page.get_by_text("Gallery", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
        page.get_by_text("Where the model looks, per predicted class").wait_for(timeout=60_000)
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=120_000)
        page.get_by_test_id("stDownloadButton").first.wait_for(timeout=60_000)
        assert page.get_by_text("3 images", exact=False).count() >= 1
        assert page.get_by_test_id("stDownloadButton").count() == 2  # results.parquet, summary.html
        assert page.get_by_text(re.compile(r"\b1 unusable file(?!s)")).count() == 2  # summary + the list of reasons
        assert page.get_by_test_id("stImage").count() >= 3 + 3  # class pictures + thumbnails
        # every thumbnail's caption says whether its peak lies on the mask
        assert page.get_by_text(re.compile(r"· peak (on|off) the object")).count() == 3
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "audit-failure.png"), full_page=True)
        raise
    finally:
        page.close()
