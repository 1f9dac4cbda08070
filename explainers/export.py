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

from explainers.base import Explanation
from explainers.render import grid, method_limits, render_explanation


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def comparison_grid(image: np.ndarray, results: Sequence[Explanation], **view: Any) -> np.ndarray:
    """Rows = labels, columns = the photo then one overlay per method."""
    limits = method_limits(results)
    labels = list(dict.fromkeys(r.label for r in results))
    method_order = list(dict.fromkeys(r.method for r in results))
    rows = []
    for label in labels:
        row = [image]
        for method in method_order:
            found = [r for r in results if r.method == method and r.label == label]
            if found:
                row.append(render_explanation(image, found[0], limit=limits[method], **view))
        rows.append(row)
    return grid(rows)


def comparison_png(image: np.ndarray, results: Sequence[Explanation], **view: Any) -> bytes:
    return png_bytes(comparison_grid(image, results, **view))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def result_record(exp: Explanation) -> dict[str, Any]:
    """A JSON-friendly summary of one explanation (no pixel arrays)."""
    record = {
        "method": exp.method, "label": exp.label, "label_name": exp.label_name, "score": exp.score,
        "seconds": exp.seconds, "model_calls": exp.model_calls, "peak": list(exp.peak()),
        "intercept": exp.intercept, "local_prediction": exp.local_prediction, "r2": exp.r2,
        "base_value": exp.base_value, "params": _jsonable(dict(exp.params)),
        "extras": _jsonable(dict(exp.extras)),
    }
    if exp.segment_weights is not None:
        record["segments"] = [[i, w] for i, w in exp.ranked_segments()]
    return record


def results_json(meta: Mapping[str, Any], results: Sequence[Explanation]) -> str:
    return json.dumps({**_jsonable(dict(meta)), "results": [result_record(r) for r in results]}, indent=2)


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


def html_report(
    image: np.ndarray,
    results: Sequence[Explanation],
    meta: Mapping[str, Any],
    predictions: Sequence[tuple[int, str, float]],
    captions: Mapping[int, str] | None = None,
    **view: Any,
) -> str:
    """A single self-contained HTML file (images embedded as data URIs)."""
    esc = html.escape
    limits = method_limits(results)
    labels = list(dict.fromkeys(r.label for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>XAI Lens report</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:6px;vertical-align:top;text-align:center}"
        "img{max-width:260px}.meta td{text-align:left}</style></head><body>",
        "<h1>XAI Lens report</h1>",
        f"<p>Generated {esc(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))}</p>",
        "<h2>Run</h2><table class='meta'>",
    ]
    for key, value in meta.items():
        parts.append(f"<tr><th>{esc(str(key))}</th><td>{esc(json.dumps(_jsonable(value)))}</td></tr>")
    parts.append("</table><h2>Predictions</h2><table><tr><th>#</th><th>label</th><th>probability</th></tr>")
    for idx, name, prob in predictions:
        parts.append(f"<tr><td>{idx}</td><td>{esc(name)}</td><td>{prob:.2%}</td></tr>")
    parts.append("</table><h2>Explanations</h2><table><tr><th>label</th><th>image</th>")
    parts.extend(f"<th>{esc(m)}</th>" for m in methods)
    parts.append("</tr>")
    for label in labels:
        name = next(r.label_name for r in results if r.label == label)
        parts.append(f"<tr><td>{esc(name)} (#{label})")
        if captions and captions.get(label):
            parts.append(f"<p>{esc(captions[label])}</p>")
        parts.append(f"</td><td><img alt='input image' src='{_data_uri(image)}'></td>")
        for method in methods:
            found = [r for r in results if r.method == method and r.label == label]
            if not found:
                parts.append("<td>—</td>")
                continue
            r = found[0]
            pic = render_explanation(image, r, limit=limits[method], **view)
            stats = f"{r.seconds:.2f} s · {r.model_calls} model calls"
            if r.r2 is not None:
                stats += f" · R² {r.r2:.2f}"
            parts.append(f"<td><img alt='{esc(method)}' src='{_data_uri(pic)}'><br><small>{esc(stats)}</small></td>")
        parts.append("</tr>")
    parts.append("</table>")
    parts.append("<h2>Parameters and timings (JSON)</h2><pre>")
    parts.append(esc(results_json(meta, results)))
    parts.append("</pre></body></html>")
    return "".join(parts)
