"""Time to the first full comparison in the real app, and to a cached re-render.

Starts `streamlit run app.py` on 127.0.0.1 with the default settings (bundled model, sample
cat, LIME + Grad-CAM + KernelSHAP, 1000 samples), opens it in Debian's chromium, and measures:
  1. page open → the three overlays visible (cold: model conversion/loading + one perturbation pass),
  2. a second browser session on the same image → overlays visible (served from the memo),
  3. view-only changes (toggles) → the script finishes again.
Usage: python benchmarks/ui_timing.py [--samples N]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
THREE = ("() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
         ".filter(e => e.innerText.includes('model calls')).length >= 3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, XAI_LENS_DEFAULT_SAMPLES=str(args.samples), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            rows = []
            for name in ("first full comparison (cold)", "second session, same image (cached)"):
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_function(THREE, timeout=600_000)
                page.wait_for_selector(IDLE, timeout=600_000)
                rows.append((name, time.perf_counter() - t0))
            for label, action in (
                ("view-only change (boundaries toggle)", lambda: page.get_by_text("Boundaries", exact=True).click()),
                ("view-only change (positive only toggle)", lambda: page.get_by_text("Positive only", exact=True).click()),
            ):
                t0 = time.perf_counter()
                action()
                page.wait_for_selector("[data-testid=stApp][data-test-script-state=running]", timeout=5000)
                page.wait_for_selector(IDLE, timeout=60_000)
                rows.append((label + ", rerun to idle", time.perf_counter() - t0))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"samples={args.samples}")
    for name, seconds in rows:
        print(f"{name:<45} {seconds:7.2f} s")


if __name__ == "__main__":
    main()
