"""Exports (explainers/export.py) on real explanations of the bundled model: known contents,
read back the way a program would (HTML parsed, PNG pixels, strict JSON), not grepped for a word."""
from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from explainers import export
from explainers.context import ExplainContext, SamplingParams
from explainers.render import COLORMAPS
from explainers.runner import explain
from explainers.summary import caption
from explainers.trust import trust_report
from model_zoo.bundled import load_efficientnet_lite0
from model_zoo.registry import prepare_image
from model_zoo.samples import sample_image

TITLES = ["LIME", "KernelSHAP", "Grad-CAM"]  # registry order


@pytest.fixture(scope="module")
def run():
    clf = load_efficientnet_lite0()
    fitted = prepare_image(clf, sample_image("coffee"), policy="crop")
    image = fitted.image
    ctx = ExplainContext(clf, image, seed=3, segmentation="grid", sampling=SamplingParams(samples=48))
    results = explain(ctx, ["gradcam", "kernel_shap", "lime"], top_k=2)
    preds = [(int(i), clf.labels[int(i)], float(ctx.probabilities()[i])) for i in ctx.top_labels(2)]
    meta = export.run_document(
        results, fitted=fitted, model=clf, image_name="coffee.png", image_sha256="ab" * 32, seed=3,
        samples=48, fill="mean", segmentation="grid", predictions=preds,
        methods={"lime": {"surrogate": "ridge"}, "gradcam": {}, "kernel_shap": {}},
    )
    trust = trust_report(ctx, results, preds[0][0], seeds=2, steps=4, stability_samples=16, random_orders=1,
                         bootstrap=5)
    return image, results, meta, preds, trust


class Page(HTMLParser):
    """A tiny DOM: the text of each element by tag, images, tables as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.imgs: list[dict] = []
        self.tables: list[list[list[str]]] = []
        self.classes: list[str] = []
        self.details: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.classes.extend((attrs.get("class") or "").split())
        if tag == "img":
            self.imgs.append(attrs)
            return
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self.stack:
            self.text.setdefault(self.stack[-1], []).append(data)
            if "details" in self.stack:
                self.details.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def test_html_report_reads_like_a_report(run):
    image, results, meta, preds, trust = run
    captions = {p[0]: caption([r for r in results if r.label == p[0]]) for p in preds}
    html = export.html_report(image, results, meta, captions, {preds[0][0]: trust})
    page = parse(html)
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.imgs)  # self-contained
    # method titles as headers, in registry order, once per label; no raw ids
    # the caption's numbered regions have their own picture, right after the photo
    story = [t for t in page.text["figcaption"] if t.startswith("Regions named in the text")]
    assert len(story) == 2, page.text["figcaption"]
    assert [t for t in page.text["figcaption"] if t not in story] == (["Photo"] + TITLES) * 2
    assert page.text["figcaption"][1] == story[0]
    body = " ".join(t for ts in page.text.values() for t in ts if t not in page.details)
    for raw in ("kernel_shap", "gradcam", "#967", "{}", '"'):
        assert raw not in body, raw
    # captions rendered as text, no literal markdown
    shown = [t for t in page.text["p"] if t.startswith("The model says")]
    assert len(shown) == 2 and not any("**" in t for t in shown)
    # a legend under every overlay (bar image + both meanings)
    assert page.classes.count("xai-legend") == 2 * (3 + 1)
    spans = page.text["span"]
    assert sum(s.startswith("pushes towards espresso") for s in spans) == 3 + 1
    # the run table: readable values, defaults written out, method parameters by title
    # the answer first: predictions and captions before the settings ("How it was computed")
    assert html.index("<h2>Predictions</h2>") < html.index("The model says") < html.index("<h2>How it was computed</h2>")
    run_table = {row[0]: row[1] for row in next(t for t in page.tables if t[0][0] == "Model")}
    assert run_table["Model"] == meta["model_name"] and run_table["Seed"] == "3"
    assert run_table["Superpixels made by"].startswith("grid: rows 8, cols 8")  # defaults written out
    assert "surrogate ridge" in run_table["LIME"] and "(defaults)" in run_table["Grad-CAM"]
    assert run_table["Samples used"] == "48"
    # predictions without class ids
    assert page.tables[0][0] == ["Label", "Probability"] and page.tables[0][1] == [preds[0][1], f"{preds[0][2]:.1%}"]
    # the trust table for the measured label, by title
    trust_rows = next(t for t in page.tables if t[0][:2] == ["Method", "Verdict"])
    assert [r[0] for r in trust_rows[1:]] == [r.method.replace("kernel_shap", "KernelSHAP").replace(
        "gradcam", "Grad-CAM").replace("lime", "LIME") for r in trust.methods]
    # consistent model-call counts: KernelSHAP reused LIME's samples
    stats = page.text["div"]
    assert any("reused 48 perturbed images" in s for s in stats), stats
    assert not any(" 0 model calls" in s for s in stats)
    # the machine-readable JSON is collapsed at the end and parses strictly
    data = json.loads("".join(page.details).split("(JSON)", 1)[1], parse_constant=_refuse)
    assert len(data["results"]) == 6
    assert html.rstrip().endswith("</details></body></html>")


def test_html_report_prints_without_cutting_images(run):
    image, results, meta, preds, _ = run
    html = export.html_report(image, results, meta)
    style = parse(html).text["style"][0]
    assert "@media print" in style and "@page" in style
    printed = style.split("@media print", 1)[1]
    assert "break-inside:avoid" in printed and "max-width:100%" in printed


def _refuse(name: str):
    raise ValueError(f"not strict JSON: {name}")


def test_png_grid_has_headers_label_rows_and_legends(run):
    image, results, _, preds, _ = run
    png = np.asarray(Image.open(io.BytesIO(export.comparison_png(image, results, preds))).convert("RGB"))
    h, w = image.shape[:2]
    # the photo appears once per label row, in the first column
    found = [y for y in range(png.shape[0] - h) if np.array_equal(png[y, 8 : 8 + w], image[0])]
    rows = [y for y in found if np.array_equal(png[y : y + h, 8 : 8 + w], image)]
    assert len(rows) == 2
    # header text above the first row, label text above every row (dark pixels)
    assert (png[: rows[0] - 24].max(axis=-1) < 80).sum() > 100
    for y in rows:
        assert (png[y - 20 : y, 8 : 8 + w].max(axis=-1) < 80).sum() > 50
    # under each of the 3 overlays of each row: the legend bar with both end colours, or only the
    # towards colour for a method whose maps are never negative (Grad-CAM)
    from explainers.base import display_order, get_method

    blue, red = COLORMAPS["blue-white-red"][0][1], COLORMAPS["blue-white-red"][-1][1]
    names = display_order(sorted({r.method for r in results}))
    assert [get_method(n).signed for n in names] == [True, True, False]  # LIME, KernelSHAP, Grad-CAM
    for y in rows:
        below = png[y + h : y + h + 30]
        for j, name in enumerate(names, start=1):
            x0 = 8 + j * (max(w, 200) + 8)
            strip = below[:, x0 : x0 + max(w, 200)]
            assert (np.abs(strip.astype(int) - blue).sum(-1) < 12).any() == get_method(name).signed, (y, name)
            assert (np.abs(strip.astype(int) - red).sum(-1) < 12).any(), (y, name)


def test_pdf_report_is_a4_with_the_report_text_and_every_picture(run):
    """WeasyPrint renders the HTML report without a browser; read it back with pdfium."""
    import pypdfium2 as pdfium

    image, results, meta, preds, trust = run
    captions = {p[0]: caption([r for r in results if r.label == p[0]]) for p in preds}
    html = export.html_report(image, results, meta, captions, {preds[0][0]: trust})
    assert export.pdf_problem() is None, export.pdf_problem()
    pdf = pdfium.PdfDocument(export.pdf_report(html))
    assert 1 <= len(pdf) <= 6
    for page in pdf:
        w, h = page.get_size()
        assert abs(w - 595.3) < 1 and abs(h - 841.9) < 1  # A4 in points
    text = " ".join(" ".join(page.get_textpage().get_text_range() for page in pdf).split())
    for words in ("XAI Lens report", "KernelSHAP", "Grad-CAM", "pushes towards espresso", "The model says"):
        assert words in text, words
    assert "**" not in text
    # every photo and overlay is an image on a page, none wider than the page
    images = [obj for page in pdf for obj in page.get_objects() if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE]
    assert len(images) >= 2 * 4
    for page in pdf:
        w, _ = page.get_size()
        for obj in page.get_objects():
            if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE:
                left, _, right, _ = obj.get_bounds()
                assert left >= 0 and right <= w + 0.5
