"""The Export expander: the run's files built by ``explainers.export`` on click."""
from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from explainers.base import Explanation
from explainers.store import PreparedImage, RunRequest
from ui import state
from ui.widgets import plain_caption


def run_document(classifier: Any, image: PreparedImage, req: RunRequest, results: Sequence[Explanation],
                 preds: Sequence[tuple[int, str, float]], image_name: str, image_sha256: str) -> dict[str, Any]:
    """The run's JSON document (``explainers.export.run_document``: the CLI's schema)."""
    from explainers import export

    return export.run_document(
        results, fitted=image.fitted, model=classifier, image_name=image_name, image_sha256=image_sha256,
        seed=req.seed, samples=req.samples, fill=req.fill, segmentation=req.segmentation,
        segmentation_params=dict(req.segmentation_params), methods={n: dict(p) for n, p in req.methods},
        predictions=preds, model_calls=sum(int(r.model_calls) for r in results),
        seconds=sum(float(r.seconds) for r in results),
    )


@st.cache_resource
def _pdf_problem() -> str | None:
    """Checked once per server (a quick look, WeasyPrint is only imported on click)."""
    from explainers.export import pdf_problem

    return pdf_problem()


def trust_reports(classifier: Any, image: PreparedImage, req: RunRequest) -> dict[int, Any]:
    """Trust reports measured on the Trust page for this run's labels (label → report)."""
    found = {label: state.trust_report_for(classifier, image, req, label) for label in req.labels}
    return {label: report for label, report in found.items() if report is not None}


def export_buttons(classifier: Any, image: PreparedImage, req: RunRequest,
                   results: Sequence[Explanation], preds: Sequence[tuple[int, str, float]]) -> None:
    from explainers import export

    choice = state.current_image_choice()
    pixels, results = image.pixels, list(results)
    view = state.current_view()

    def document() -> dict[str, Any]:
        return run_document(classifier, image, req, results, preds,
                            choice.name if choice else "", choice.sha256 if choice else "")

    def html() -> str:
        captions = {label: plain_caption(classifier, image, results, label) for label in req.labels}
        return export.html_report(pixels, results, document(), captions, trust_reports(classifier, image, req), **view)

    # Callables: the files are built only when a button is pressed, so reruns stay fast.
    with st.expander("Export"):
        cols = st.columns(5)
        cols[0].download_button("PNG grid", lambda: export.comparison_png(pixels, results, preds, **view),
                                file_name="xai-lens-comparison.png", mime="image/png", key="xai_dl_png",
                                on_click="ignore")
        cols[1].download_button("HTML report", html,
                                file_name="xai-lens-report.html", mime="text/html", key="xai_dl_html",
                                on_click="ignore")
        problem = _pdf_problem()
        cols[4].download_button("PDF report", lambda: export.pdf_report(html()),
                                file_name="xai-lens-report.pdf", mime="application/pdf", key="xai_dl_pdf",
                                on_click="ignore", disabled=problem is not None,
                                help=problem or "The HTML report as an A4 PDF (rendered without a browser).")
        cols[2].download_button("Raw NPZ", lambda: export.results_npz(image.fitted, results, document()),
                                file_name="xai-lens-results.npz", mime="application/octet-stream",
                                key="xai_dl_npz", on_click="ignore")
        cols[3].download_button("JSON", lambda: export.to_json(document()),
                                file_name="xai-lens-results.json", mime="application/json", key="xai_dl_json",
                                on_click="ignore")
