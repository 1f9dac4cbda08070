"""Exports of a comparison: PNG grid, self-contained HTML report, raw NPZ / JSON.

No Streamlit here: the Explain page and the CLI both call these.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from explainers.base import Explanation, ExplainerError
from explainers.render import method_limits, render_explanation


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _titles(names: Sequence[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
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
    names, title, family = _titles([r.method for r in results])
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    cell = max(w, 200)
    pad, head, band = 8, 28, 24
    rows = _label_rows(results, predictions)
    legends = {}
    for idx, label_name, _ in rows:
        for m in names:
            legends[(idx, m)] = legend_png(legend_for(label_name, family[m], limits[m], view["cmap"],
                                                      _positive(view)), width=cell)
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


def calls_text(exp: Explanation) -> str:
    """"12 model calls", "1 model call", "reused 1000 model calls" (a shared perturbation pass)."""
    shared = int(exp.extras.get("shared_calls", 0) or 0) if exp.extras else 0
    if exp.model_calls == 0 and shared:
        return f"reused {shared} model call{'s' if shared != 1 else ''}"
    return f"{exp.model_calls} model call{'s' if exp.model_calls != 1 else ''}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None  # strict JSON: no NaN / Infinity
    return value


def result_record(exp: Explanation) -> dict[str, Any]:
    """A JSON-friendly summary of one explanation (no pixel arrays)."""
    record = {
        "method": exp.method, "label": exp.label, "label_name": exp.label_name, "score": exp.score,
        "seconds": exp.seconds, "model_calls": exp.model_calls, "peak": list(exp.peak()),
        "intercept": exp.intercept, "local_prediction": exp.local_prediction, "r2": exp.r2,
        "base_value": exp.base_value, "params": dict(exp.params), "extras": dict(exp.extras),
    }
    record = _jsonable(record)
    if exp.segment_weights is not None:
        record["segments"] = _jsonable([[i, w] for i, w in exp.ranked_segments()])
    return record


def results_json(meta: Mapping[str, Any], results: Sequence[Explanation]) -> str:
    return json.dumps({**_jsonable(dict(meta)), "results": [result_record(r) for r in results]}, indent=2,
                      allow_nan=False)


def results_npz(image: np.ndarray, results: Sequence[Explanation], meta: Mapping[str, Any]) -> bytes:
    """Every heatmap (and segment map/weights) as arrays, plus the metadata as JSON."""
    arrays: dict[str, np.ndarray] = {"image": np.asarray(image, dtype=np.uint8)}
    for r in results:
        key = f"{r.method}__{r.label}"
        arrays[f"{key}__heatmap"] = r.heatmap
        if r.segments is not None:
            arrays[f"{key}__segments"] = r.segments
        if r.segment_weights is not None:
            arrays[f"{key}__segment_weights"] = r.segment_weights
    arrays["meta_json"] = np.array(results_json(meta, results))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


_CSS = """
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
    """Escape plain text for HTML; ``**bold**`` (if any caption still has it) becomes <strong>."""
    import re

    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


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
    value = _jsonable(value)
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
    ("model_name", "Model"), ("image_name", "Image"), ("image_sha256", "Image SHA-256"),
    ("resize", "Fit to model input"), ("seed", "Seed"), ("samples", "Samples"),
    ("fill", "Hidden superpixels filled with"),
)


def _run_table(meta: Mapping[str, Any], title: Mapping[str, str]) -> list[str]:
    from explainers.base import methods
    from explainers.segmentation import ALGORITHMS

    esc = html.escape
    out = ["<table class='run'>"]
    shown = set()
    for key, name in _RUN_ROWS:
        if key in meta:
            out.append(f"<tr><th>{esc(name)}</th><td>{esc(_plain(meta[key]))}</td></tr>")
            shown.add(key)
    if "segmentation" in meta:
        alg = str(meta["segmentation"])
        params = _written_out(ALGORITHMS.get(alg), meta.get("segmentation_params") or {})
        out.append(f"<tr><th>Superpixels</th><td>{esc(alg)}: {esc(params)}</td></tr>")
        shown |= {"segmentation", "segmentation_params"}
    specs = methods()
    for name, given in dict(meta.get("methods") or {}).items():
        spec = specs.get(name)
        params = _written_out(spec.params_type if spec else None, given or {})
        out.append(f"<tr><th>{esc(title.get(name, spec.title if spec else name))}</th>"
                   f"<td>{esc(params)}</td></tr>")
    shown |= {"methods", "labels", "predictions", "model"}
    for key, value in meta.items():
        if key not in shown:
            out.append(f"<tr><th>{esc(str(key).replace('_', ' ').capitalize())}</th><td>{esc(_plain(value))}</td></tr>")
    out.append("</table>")
    return out


def _trust_table(report: Any, title: Mapping[str, str]) -> list[str]:
    from explainers.trust import badges

    esc = html.escape
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
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango found but could not be loaded
        raise ExplainerError(f"PDF export failed to load WeasyPrint: {str(exc).splitlines()[0]}") from None
    return weasyprint.HTML(string=html_text).write_pdf()


def html_report(
    image: np.ndarray,
    results: Sequence[Explanation],
    meta: Mapping[str, Any],
    predictions: Sequence[tuple[int, str, float]],
    captions: Mapping[int, str] | None = None,
    trust: Mapping[int, Any] | None = None,
    **view: Any,
) -> str:
    """A single self-contained HTML file (images embedded as data URIs) that prints on A4/Letter.

    Method titles as headers, a colour legend under every picture, plain-language captions,
    the trust table for labels where it was measured, the run written out for a person, and
    the machine-readable JSON collapsed at the end.
    """
    from explainers.legend import legend_for, legend_html

    esc = html.escape
    view = _view(view)
    limits = method_limits(results)
    names, title, family = _titles([r.method for r in results])
    rows = _label_rows(results, predictions)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>XAI Lens report — {esc(str(meta.get('image_name', '')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>XAI Lens report</h1>",
        f"<p class='muted'>Generated {esc(_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}. "
        "Colours: the high end of each scale pushes the model towards the label, the low end away from it; "
        "weak regions leave the photo as it is.</p>",
        "<h2>Run</h2>", *_run_table(meta, title),
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
                     f"<img class='picture' alt='the photo' src='{_data_uri(image)}'></figure>")
        for m in names:
            found = [r for r in results if r.method == m and r.label == idx]
            if not found:
                continue
            r = found[0]
            pic = render_explanation(image, r, limit=limits[m], **view)
            legend = legend_for(label_name, family[m], limits[m], view["cmap"], _positive(view))
            stats = f"{r.seconds:.2f} s · {calls_text(r)}"
            if r.r2 is not None:
                stats += f" · R² {r.r2:.2f}"
            parts.append(f"<figure><figcaption>{esc(title[m])}</figcaption>"
                         f"<img class='picture' alt='{esc(legend.sentence)}' src='{_data_uri(pic)}'>"
                         f"{legend_html(legend)}<div class='stats'>{esc(stats)}</div>")
            if r.r2 is not None and r.r2 < 0.4:
                parts.append(f"<div class='warning'>Low fit (R² {r.r2:.2f}): the simple surrogate explains "
                             "little of the model here.</div>")
            parts.append("</figure>")
        parts.append("</div>")
        if trust and trust.get(idx) is not None:
            parts.extend(_trust_table(trust[idx], title))
        parts.append("</section>")
    parts.append("<h2 class='data'>Machine-readable data</h2><details><summary>Parameters, timings and weights (JSON)</summary><pre>")
    parts.append(esc(results_json(meta, results)))
    parts.append("</pre></details></body></html>")
    return "".join(parts)
