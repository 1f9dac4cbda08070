"""Every exported file of a run — one JSON schema, one NPZ layout, the PNG grid, the HTML report.

No Streamlit here: the Explain page's downloads and ``python -m explainers explain --json/--out``
both build their files with these functions, so the same run gives the same document.

The JSON document (``run_document``) is strict JSON (NaN and infinities become ``null``; it
parses with ``json.loads(s, parse_constant=reject)``), versioned by its ``schema`` field, and
its ``extras`` are nested JSON values (small arrays as lists, large ones only in the NPZ).
Positions carry their frame in their name: ``peak_file_rc`` is (row, col) in the pixels of the
image file, ``peak_input_rc`` in the model input the maps are drawn on.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from explainers.base import Explanation, ExplainerError
from explainers.render import method_limits, png_bytes, png_data_uri, render_explanation  # noqa: F401 (re-exported)

SCHEMA = "xai-lens.run/1"
"""Version of the JSON document and of the NPZ layout (bump on any incompatible change)."""

MAX_ARRAY_IN_JSON = 64
"""Arrays in params/extras with more elements than this stay out of the JSON (they are in the NPZ)."""


def _method_facts(names: Sequence[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Registry order, titles and families for these method names (unknown names keep their id)."""
    from explainers.base import methods

    specs = methods()
    order = list(specs)
    names = sorted(dict.fromkeys(names), key=lambda n: order.index(n) if n in order else len(order))
    title = {n: specs[n].title if n in specs else n for n in names}
    family = {n: specs[n].family if n in specs else "" for n in names}
    return names, title, family


def _view(view: Mapping[str, Any]) -> dict[str, Any]:
    return {"cmap": "blue-white-red", **dict(view)}


def _positive(view: Mapping[str, Any]) -> bool:
    return bool(view.get("positive_only")) and view.get("style") != "segments"


def _label_rows(results: Sequence[Explanation],
                predictions: Sequence[tuple[int, str, float]] | None) -> list[tuple[int, str, float]]:
    """(label, name, probability) in the order of the predictions, then any other explained label."""
    rows = [(int(i), str(n), float(p)) for i, n, p in (predictions or [])
            if any(r.label == i for r in results)]
    for r in results:
        if all(r.label != i for i, _, _ in rows):
            rows.append((r.label, r.label_name, float(r.score)))
    return rows


def comparison_grid(image: np.ndarray, results: Sequence[Explanation],
                    predictions: Sequence[tuple[int, str, float]] | None = None, **view: Any) -> np.ndarray:
    """Rows = labels, columns = the photo then one overlay per method (registry order).

    A header row names the methods; each row starts with the label's name and probability; a
    colour legend sits under every overlay (its units and what each end means).
    """
    from PIL import ImageDraw

    from explainers.legend import font as legend_font
    from explainers.legend import legend_for, legend_png

    view = _view(view)
    limits = method_limits(results)
    names, title, family = _method_facts([r.method for r in results])
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    cell = max(w, 200)
    pad, head, band = 8, 28, 24
    rows = _label_rows(results, predictions)
    legends = {}
    for idx, label_name, _ in rows:
        for m in names:
            signed = all(r.signed for r in results if r.method == m and r.label == idx)
            legends[(idx, m)] = legend_png(legend_for(label_name, family[m], limits[m], view["cmap"],
                                                      _positive(view), signed=signed), width=cell)
    leg_h = max(p.shape[0] for p in legends.values()) if legends else 0
    row_h = band + h + leg_h + pad
    canvas = Image.new("RGB", (pad + (len(names) + 1) * (cell + pad), head + len(rows) * row_h + pad),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    bold = legend_font(15, bold=True)
    font = legend_font(13)
    draw.text((pad, head // 2), "Photo", fill=(20, 20, 20), font=bold, anchor="lm")
    for j, m in enumerate(names, start=1):
        draw.text((pad + j * (cell + pad), head // 2), title[m], fill=(20, 20, 20), font=bold, anchor="lm")
    for i, (idx, label_name, prob) in enumerate(rows):
        y = head + i * row_h
        draw.line((pad, y + 2, canvas.width - pad, y + 2), fill=(200, 200, 200))
        draw.text((pad, y + band // 2 + 2), f"{label_name} — {prob:.1%}", fill=(20, 20, 20), font=font,
                  anchor="lm")
        canvas.paste(Image.fromarray(image), (pad, y + band))
        for j, m in enumerate(names, start=1):
            found = [r for r in results if r.method == m and r.label == idx]
            if not found:
                continue
            x = pad + j * (cell + pad)
            canvas.paste(Image.fromarray(render_explanation(image, found[0], limit=limits[m], **view)), (x, y + band))
            canvas.paste(Image.fromarray(legends[(idx, m)]), (x, y + band + h))
    return np.asarray(canvas)


def comparison_png(image: np.ndarray, results: Sequence[Explanation],
                   predictions: Sequence[tuple[int, str, float]] | None = None, **view: Any) -> bytes:
    return png_bytes(comparison_grid(image, results, predictions, **view))


_SKIP = object()


def jsonable(value: Any) -> Any:
    """Plain, strict JSON values: NaN/±inf → None, numpy scalars → Python, dataclasses → dicts,
    small arrays → lists (larger ones are left out: they belong in the NPZ)."""
    out = _jsonable(value)
    return None if out is _SKIP else out


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in ((k, _jsonable(v)) for k, v in value.items()) if v is not _SKIP}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist()) if value.size <= MAX_ARRAY_IN_JSON else _SKIP
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for v in (_jsonable(v) for v in value) if v is not _SKIP]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if np.isfinite(f) else None
    if value is None or isinstance(value, (int, str)):
        return value
    return str(value)


def to_json(document: Mapping[str, Any], indent: int | None = 2) -> str:
    """The document as strict JSON text (``allow_nan=False``: a NaN that slipped through fails here)."""
    return json.dumps(jsonable(document), indent=indent, allow_nan=False)


def calls_text(exp: Explanation) -> str:
    """What one result cost in model calls, in words: new calls, the perturbed images it reused
    (the rows it actually used, not the whole shared run), or the shared pass it reused."""
    if exp.model_calls:
        return f"{exp.model_calls} model call{'s' if exp.model_calls != 1 else ''}"
    used = dict(exp.params).get("samples")
    if used:
        return f"reused {int(used)} perturbed images"
    shared = int(dict(exp.extras).get("shared_calls", 0) or 0)
    if shared:
        return f"reused {shared} model call{'s' if shared != 1 else ''}"
    return "no new model calls (cached)"


def result_record(exp: Explanation, fitted: Any = None) -> dict[str, Any]:
    """One explanation in the document: scores, peak in both frames, ranked segments, params, extras."""
    row, col = exp.peak()
    out: dict[str, Any] = {
        "method": exp.method,
        "label": int(exp.label),
        "label_name": exp.label_name,
        "score": jsonable(exp.score),
        "seconds": jsonable(exp.seconds),
        "model_calls": int(exp.model_calls),
        "calls": calls_text(exp),
        "peak_input_rc": [int(row), int(col)],
        "peak_file_rc": list(map(int, fitted.to_original(row, col))) if fitted is not None else [int(row), int(col)],
        "heatmap_max": jsonable(exp.heatmap.max()),
        "heatmap_min": jsonable(exp.heatmap.min()),
        "contrast": None if getattr(exp, "contrast", None) is None else int(exp.contrast),
        "contrast_name": dict(exp.extras).get("contrast_name"),
    }
    if exp.segment_weights is not None:
        out["segments"] = [[i, jsonable(w)] for i, w in exp.ranked_segments()]
    if getattr(exp, "segment_std", None) is not None:  # by segment id; "unsettled": sign not settled
        out["segment_std"] = [jsonable(v) for v in exp.segment_std]
        out["unsettled"] = [int(i) for i in np.flatnonzero(exp.unsettled())]
    if getattr(exp, "sampling", None) is not None:
        out["sampling"] = jsonable(exp.sampling.to_dict())
    for name in ("r2", "base_value", "intercept", "local_prediction"):
        out[name] = jsonable(getattr(exp, name))
    out["params"] = jsonable(dict(exp.params))
    out["extras"] = jsonable(dict(exp.extras))
    return out


def run_document(
    results: Sequence[Explanation],
    *,
    fitted: Any,
    model: Any,
    image_name: str,
    image_sha256: str,
    seed: int,
    samples: Any,
    fill: str,
    segmentation: str,
    segmentation_params: Mapping[str, Any] | None = None,
    methods: Mapping[str, Mapping[str, Any]] | None = None,
    predictions: Sequence[tuple[int, str, float]] | None = None,
    model_calls: int | None = None,
    seconds: float | None = None,
    load_seconds: float | None = None,
) -> dict[str, Any]:
    """The one JSON document of a run (app download and CLI ``--json``/``--out`` alike).

    ``fitted`` is the ``model_zoo.images.FittedImage`` the maps were computed on (it maps
    peaks back to the file); ``model`` the classifier (its ``id`` and ``name`` are recorded).
    """
    segments = next((r.segments for r in results if r.segments is not None), None)
    used = [int(r.sampling.samples) for r in results if getattr(r, "sampling", None) is not None]
    used += [int(dict(r.params)["samples"]) for r in results
             if getattr(r, "sampling", None) is None and "samples" in dict(r.params)]
    return {
        "schema": SCHEMA,
        "model": model.id,
        "model_name": model.name,
        "image": image_name,
        "image_sha256": image_sha256,
        "image_shape": [int(v) for v in fitted.original_shape[:2]],
        "input_shape": [int(v) for v in fitted.image.shape[:2]],
        "resize": fitted.policy,
        "seed": int(seed),
        "samples": samples if isinstance(samples, str) else int(samples),
        "samples_used": max(used, default=None),
        "fill": fill,
        "segmentation": segmentation,
        "segmentation_params": _segmentation_params(segmentation, segmentation_params),
        "num_segments": None if segments is None else int(segments.max()) + 1,
        "methods": jsonable({n: dict(p) for n, p in (methods or {}).items()}),
        "labels": list(dict.fromkeys(int(r.label) for r in results)),
        "contrast": next((int(r.contrast) for r in results if getattr(r, "contrast", None) is not None), None),
        "predictions": None if predictions is None else [
            {"index": int(i), "label": str(n), "probability": jsonable(p)} for i, n, p in predictions
        ],
        "model_calls": None if model_calls is None else int(model_calls),
        "seconds": jsonable(seconds),
        "load_seconds": jsonable(load_seconds),
        "results": [result_record(r, fitted) for r in results],
    }


def _segmentation_params(algorithm: str, params: Any) -> dict[str, Any]:
    """Every parameter of the segmentation, defaults included, so app and CLI write the same."""
    from explainers.base import ExplainerError, params_dict
    from explainers.segmentation import resolve_params

    try:
        return jsonable(params_dict(resolve_params(algorithm, dict(params) if isinstance(params, Mapping) else params)))
    except ExplainerError:
        return jsonable(params) or {}


def results_npz(fitted: Any, results: Sequence[Explanation], document: Mapping[str, Any]) -> bytes:
    """The one NPZ layout: heatmaps (R, H, W) at the model input, the input image, the mapping back
    to the file, segments and (R, M) segment weights / standard errors (NaN rows for methods
    without them), DFF's concept maps (K, H, W) and regions (H, W) when it ran; ``meta`` is the
    JSON document. Loadable with ``np.load`` (no pickle)."""
    seg = next((r.segments for r in results if r.segments is not None), None)
    arrays: dict[str, Any] = {
        "schema": np.array(SCHEMA),
        "image": np.asarray(fitted.image, dtype=np.uint8),
        "heatmaps": np.stack([r.heatmap for r in results]).astype(np.float32),
        "methods": np.array([r.method for r in results]),
        "labels": np.array([r.label for r in results], dtype=np.int64),
        "label_names": np.array([r.label_name for r in results]),
        "scores": np.array([r.score for r in results], dtype=np.float32),
        "original_shape": np.array(fitted.original_shape, dtype=np.int64),
        "source_box": np.array(fitted.source_box, dtype=np.float64),
        "target_box": np.array(fitted.target_box, dtype=np.int64),
        "meta": np.array(to_json(document, indent=None)),
    }
    if seg is not None:
        m = int(seg.max()) + 1
        weights = np.full((len(results), m), np.nan, dtype=np.float32)
        std = np.full((len(results), m), np.nan, dtype=np.float32)
        for i, r in enumerate(results):
            if r.segment_weights is not None and len(r.segment_weights) == m:
                weights[i] = r.segment_weights
            if getattr(r, "segment_std", None) is not None and len(r.segment_std) == m:
                std[i] = r.segment_std
        arrays["segments"] = seg.astype(np.int32)
        arrays["segment_weights"] = weights
        arrays["segment_std"] = std
    concepts = next((r for r in results if r.extras and r.extras.get("concept_maps") is not None), None)
    if concepts is not None:  # Deep Feature Factorization: every concept's map and the regions
        arrays["concept_maps"] = np.asarray(concepts.extras["concept_maps"], dtype=np.float32)
        arrays["concept_regions"] = np.asarray(concepts.extras["concept_regions"], dtype=np.int32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


REPORT_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
     padding:0 1em}
h1{margin-bottom:0.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd} .muted{color:#666}
table{border-collapse:collapse;margin:0.5em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left;overflow-wrap:anywhere;word-break:break-word}
.run th{background:#f5f5f5;white-space:nowrap}
.label{break-inside:avoid;page-break-inside:avoid;margin:1.2em 0}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:14px}
figure{margin:0;break-inside:avoid;page-break-inside:avoid}
figure img.picture{width:100%;max-width:320px;height:auto;display:block}
figcaption{font-weight:600;margin-bottom:4px} .stats{font-size:0.8em;color:#555}
.caption{font-size:1.05em;background:#f3f8f3;border-left:4px solid #5a5;padding:6px 10px}
.warning{color:#8a5300;font-size:0.85em}
details pre{white-space:pre-wrap;word-break:break-all;font-size:0.75em}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
@page{size:auto;margin:12mm}
@media print{
  body{margin:0;max-width:none;font-size:10pt}
  .figures{grid-template-columns:repeat(4,1fr)}
  img{max-width:100% !important;break-inside:avoid;page-break-inside:avoid}
  h2,h3{break-after:avoid;page-break-after:avoid}
  tr{break-inside:avoid;page-break-inside:avoid}
  details,h2.data{display:none}
}
"""


def _inline(text: str) -> str:
    """A caption as HTML text: markdown escapes undone and ``**`` dropped (plain text), then
    HTML-escaped, so nothing a user controls (a label name) becomes markup."""
    from explainers.text import escape_html, markdown_to_text

    return escape_html(markdown_to_text(text))


def _written_out(params_type: type | None, given: Mapping[str, Any]) -> str:
    """"n segments 49, compactness 10 (defaults)" — every parameter written out, never ``{}``."""
    import dataclasses

    values: dict[str, Any] = {}
    if params_type is not None and dataclasses.is_dataclass(params_type):
        for f in dataclasses.fields(params_type):
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
    values.update(dict(given))
    if not values:
        return "no parameters"
    shown = ", ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in values.items())
    return shown + (" (defaults)" if not given else "")


def _plain(value: Any) -> str:
    """A value as a person writes it: no JSON quotes, lists joined with commas."""
    value = jsonable(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "—"
    if value == "":
        return "automatic"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in value.items()) or "—"
    return str(value) if str(value) else "—"


_RUN_ROWS = (
    ("model_name", "Model"), ("image", "Image"), ("image_sha256", "Image SHA-256"),
    ("image_shape", "Image size (rows, columns)"), ("input_shape", "Model input (rows, columns)"),
    ("resize", "Fit to model input"), ("seed", "Seed"), ("samples", "Samples asked"),
    ("samples_used", "Samples used"), ("fill", "Hidden superpixels filled with"),
    ("num_segments", "Superpixels"), ("model_calls", "Model calls"), ("seconds", "Seconds"),
)
_NOT_IN_RUN_TABLE = {"schema", "results", "predictions", "labels", "model", "methods", "segmentation",
                     "segmentation_params", "contrast", "load_seconds"}


def _run_table(meta: Mapping[str, Any], title: Mapping[str, str]) -> list[str]:
    from explainers.base import methods
    from explainers.segmentation import ALGORITHMS

    from explainers.text import escape_html as esc
    out = ["<table class='run'>"]
    shown = set()
    for key, name in _RUN_ROWS:
        if key in meta:
            out.append(f"<tr><th>{esc(name)}</th><td>{esc(_plain(meta[key]))}</td></tr>")
            shown.add(key)
    from explainers.base import auto_sampling_by_label, sampling_words

    for name, sampling in auto_sampling_by_label(meta.get("results") or []):  # each label stops on its own
        budget = "" if sampling.get("stopped") == "budget" else f" (budget {sampling.get('budget')})"
        out.append(f"<tr><th>Samples auto: {esc(name)}</th><td>{esc(sampling_words(sampling) + budget)}</td></tr>")
    if "segmentation" in meta:
        alg = str(meta["segmentation"])
        params = _written_out(ALGORITHMS.get(alg), meta.get("segmentation_params") or {})
        out.append(f"<tr><th>Superpixels made by</th><td>{esc(alg)}: {esc(params)}</td></tr>")
    specs = methods()
    for name, given in dict(meta.get("methods") or {}).items():
        spec = specs.get(name)
        params = _written_out(spec.params_type if spec else None, given or {})
        out.append(f"<tr><th>{esc(title.get(name, spec.title if spec else name))}</th>"
                   f"<td>{esc(params)}</td></tr>")
    for key, value in meta.items():
        if key not in shown and key not in _NOT_IN_RUN_TABLE and value is not None:
            out.append(f"<tr><th>{esc(str(key).replace('_', ' ').capitalize())}</th><td>{esc(_plain(value))}</td></tr>")
    out.append("</table>")
    return out


def _trust_table(report: Any, title: Mapping[str, str]) -> list[str]:
    from explainers.trust import badges

    from explainers.text import escape_html as esc
    verdicts = badges(report)

    def num(v: Any) -> str:
        return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{float(v):.2f}"

    out = [f"<h3>How far to trust the explanations of {esc(report.label_name)}</h3>",
           "<table class='trust'><tr><th>Method</th><th>Verdict</th><th>Deletion AUC (lower is better)</th>"
           "<th>Random deletion</th><th>Insertion AUC (higher is better)</th><th>Top regions same across seeds"
           "</th><th>Same under noise</th></tr>"]
    for r in report.methods:
        out.append(
            f"<tr><td>{esc(title.get(r.method, r.method))}</td><td>{esc(verdicts.get(r.method, ''))}</td>"
            f"<td>{num(r.deletion_auc)}</td><td>{num(r.random_deletion_auc)}</td><td>{num(r.insertion_auc)}</td>"
            f"<td>{num(r.stability_iou)}</td><td>{num(r.noise_iou)}</td></tr>")
    out.append(f"</table><p class='muted'>These checks cost {report.model_calls} extra model "
               f"call{'s' if report.model_calls != 1 else ''}.</p>")
    return out


def pdf_problem() -> str | None:
    """Why PDF export cannot work here (None when it can): WeasyPrint or Pango missing.

    Looks without importing WeasyPrint (that takes seconds), so a page can ask on every run.
    """
    import ctypes.util
    import importlib.util

    missing = [what for what, ok in (
        ("the Python package weasyprint", importlib.util.find_spec("weasyprint") is not None),
        ("the system library Pango", ctypes.util.find_library("pangoft2-1.0") is not None),
    ) if not ok]
    if missing:
        return (f"PDF export needs {' and '.join(missing)} (pip install weasyprint; "
                "apt-get install libpango-1.0-0 libpangoft2-1.0-0).")
    return None


def pdf_report(html_text: str) -> bytes:
    """The HTML report as an A4 PDF, rendered by WeasyPrint (no browser).

    WeasyPrint is pure Python but draws text with the system's Pango library; where Pango is
    missing the message says which packages to install.
    """
    problem = pdf_problem()
    if problem is not None:
        raise ExplainerError(problem)
    from PIL import ImageFile

    strict = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango found but could not be loaded
        raise ExplainerError(f"PDF export failed to load WeasyPrint: {str(exc).splitlines()[0]}") from None
    finally:
        # Importing WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES = True, which would
        # let every later upload through with half its pixels: our report holds only our own PNGs,
        # so put Pillow's setting back.
        ImageFile.LOAD_TRUNCATED_IMAGES = strict
    return weasyprint.HTML(string=html_text).write_pdf()


def _story_figure(image: np.ndarray, results: Sequence[Explanation], label_name: str,
                  limits: Mapping[str, float], family: Mapping[str, str], view: Mapping[str, Any]) -> list[str]:
    """The caption's picture: its regions outlined and numbered, so "regions 1–3" can be found.

    Empty when the caption names no regions (no method ran for the label, or nothing pushes
    towards it).
    """
    from explainers.legend import legend_for, legend_html
    from explainers.summary import story, story_picture
    from explainers.text import escape_html as esc

    told = story(results)
    if told is None or not told.regions:
        return []
    picture = story_picture(image, results, told, limit=limits[told.method], cmap=view["cmap"], scale=1)
    signed = all(r.signed for r in results if r.method == told.method)
    legend = legend_for(label_name, family[told.method], limits[told.method], view["cmap"], False, signed=signed)
    title = _method_facts([told.method])[1][told.method]
    return [f"<figure class='story'><figcaption>Regions named in the text ({esc(title)})</figcaption>"
            f"<img class='picture' alt='{esc(legend.sentence)}; the regions named in the text are numbered' "
            f"src='{png_data_uri(picture)}'>{legend_html(legend)}</figure>"]


def html_report(
    image: np.ndarray,
    results: Sequence[Explanation],
    document: Mapping[str, Any],
    captions: Mapping[int, str] | None = None,
    trust: Mapping[int, Any] | None = None,
    **view: Any,
) -> str:
    """A single self-contained HTML file (images embedded as data URIs) that prints on A4/Letter.

    Method titles as headers, a colour legend under every picture, plain-language captions,
    the trust table for labels where it was measured; then the run written out for a person and
    the machine-readable JSON collapsed at the end (the answer first, the settings after it).
    """
    from explainers.legend import legend_for, legend_html
    from explainers.text import escape_html as esc

    view = _view(view)
    meta = document
    predictions = [(int(p["index"]), str(p["label"]), float(p["probability"] or 0.0))
                   for p in document.get("predictions") or []]
    limits = method_limits(results)
    names, title, family = _method_facts([r.method for r in results])
    rows = _label_rows(results, predictions)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>XAI Lens report — {esc(str(meta.get('image', '')))}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        "<h1>XAI Lens report</h1>",
        f"<p class='muted'>Generated {esc(_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}. "
        "Colours: the high end of each scale pushes the model towards the label, the low end away from it "
        "(a scale that starts at 0 shows only what pushes towards it); weak regions leave the photo as it is.</p>",
        f"<p>{esc(str(meta.get('model_name') or meta.get('model', '')))} looked at "
        f"<b>{esc(str(meta.get('image', '')))}</b>. What it answered and why come first; how the "
        "explanations were computed is at the end.</p>",
        "<h2>Predictions</h2><table class='predictions'><tr><th>Label</th><th>Probability</th></tr>",
    ]
    for _, name, prob in predictions:
        parts.append(f"<tr><td>{esc(name)}</td><td>{prob:.1%}</td></tr>")
    parts.append("</table><h2>Explanations</h2>")
    for idx, label_name, prob in rows:
        parts.append(f"<section class='label'><h3>{esc(label_name)} — {prob:.1%}</h3>")
        if captions and captions.get(idx):
            parts.append(f"<p class='caption'>{_inline(captions[idx])}</p>")
        parts.append("<div class='figures'><figure><figcaption>Photo</figcaption>"
                     f"<img class='picture' alt='the photo' src='{png_data_uri(image)}'></figure>")
        if captions and captions.get(idx):
            parts.extend(_story_figure(image, [r for r in results if r.label == idx], label_name,
                                       limits, family, view))
        for m in names:
            found = [r for r in results if r.method == m and r.label == idx]
            if not found:
                continue
            r = found[0]
            pic = render_explanation(image, r, limit=limits[m], **view)
            legend = legend_for(label_name, family[m], limits[m], view["cmap"], _positive(view), signed=r.signed)
            stats = f"{r.seconds:.2f} s · {calls_text(r)}"
            if r.r2 is not None:
                stats += f" · R² {r.r2:.2f}"
            parts.append(f"<figure><figcaption>{esc(title[m])}</figcaption>"
                         f"<img class='picture' alt='{esc(legend.sentence)}' src='{png_data_uri(pic)}'>"
                         f"{legend_html(legend)}<div class='stats'>{esc(stats)}</div>")
            if r.r2 is not None and r.r2 < 0.4:
                parts.append(f"<div class='warning'>Low fit (R² {r.r2:.2f}): the simple surrogate explains "
                             "little of the model here.</div>")
            parts.append("</figure>")
        parts.append("</div>")
        if trust and trust.get(idx) is not None:
            parts.extend(_trust_table(trust[idx], title))
        parts.append("</section>")
    # the answer first (a stakeholder reads the top); the settings after it, for whoever checks
    parts.extend(["<h2>How it was computed</h2>", *_run_table(meta, title)])
    parts.append("<h2 class='data'>Machine-readable data</h2><details><summary>Parameters, timings and weights (JSON)</summary><pre>")
    parts.append(esc(to_json(document)))
    parts.append("</pre></details></body></html>")
    return "".join(parts)
