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

import base64
import dataclasses
import datetime as _dt
import io
import json
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from explainers.base import Explanation
from explainers.render import grid, method_limits, render_explanation

SCHEMA = "xai-lens.run/1"
"""Version of the JSON document and of the NPZ layout (bump on any incompatible change)."""

MAX_ARRAY_IN_JSON = 64
"""Arrays in params/extras with more elements than this stay out of the JSON (they are in the NPZ)."""


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 RGB (or grey) array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(image: np.ndarray) -> str:
    """The one PNG data-URI helper (HTML report, plotly figures): images travel inside the file."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def comparison_grid(image: np.ndarray, results: Sequence[Explanation], **view: Any) -> np.ndarray:
    """Rows = labels, columns = the photo then one overlay per method."""
    from explainers.base import display_order

    limits = method_limits(results)
    labels = list(dict.fromkeys(r.label for r in results))
    method_order = display_order([r.method for r in results])
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
    """What one result cost in model calls, in words: new calls, or the perturbed images it reused
    (the rows it actually used, not the whole shared run)."""
    if exp.model_calls:
        return f"{exp.model_calls} model calls"
    used = dict(exp.params).get("samples")
    if used:
        return f"reused {int(used)} perturbed images"
    return "0 model calls (cached)"


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


def _titles(names: Sequence[str]) -> dict[str, str]:
    from explainers.base import methods

    specs = methods()
    return {n: specs[n].title if n in specs else n for n in names}


def html_report(
    image: np.ndarray,
    results: Sequence[Explanation],
    document: Mapping[str, Any],
    captions: Mapping[int, str] | None = None,
    **view: Any,
) -> str:
    """A single self-contained HTML file (images embedded as data URIs) ending with the JSON document.

    Every user-controlled string (labels, names, captions) is HTML-escaped; captions are the
    markdown of ``explainers.summary.caption`` and appear as their plain text.
    """
    from explainers.base import display_order
    from explainers.text import escape_html as esc, markdown_to_text

    limits = method_limits(results)
    labels = list(dict.fromkeys(r.label for r in results))
    methods = display_order([r.method for r in results])
    titles = _titles(methods)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>XAI Lens report</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:6px;vertical-align:top;text-align:center}"
        "img{max-width:260px}.meta td{text-align:left}</style></head><body>",
        "<h1>XAI Lens report</h1>",
        f"<p>Generated {esc(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))}</p>",
        "<h2>Run</h2><table class='meta'>",
    ]
    for key, value in document.items():
        if key in ("results", "predictions"):
            continue
        parts.append(f"<tr><th>{esc(str(key))}</th><td>{esc(json.dumps(jsonable(value)))}</td></tr>")
    parts.append("</table><h2>Predictions</h2><table><tr><th>#</th><th>label</th><th>probability</th></tr>")
    for p in document.get("predictions") or []:
        prob = "" if p["probability"] is None else f"{p['probability']:.2%}"
        parts.append(f"<tr><td>{p['index']}</td><td>{esc(p['label'])}</td><td>{prob}</td></tr>")
    parts.append("</table><h2>Explanations</h2><table><tr><th>label</th><th>image</th>")
    parts.extend(f"<th>{esc(titles[m])}</th>" for m in methods)
    parts.append("</tr>")
    photo = png_data_uri(image)
    for label in labels:
        name = next(r.label_name for r in results if r.label == label)
        parts.append(f"<tr><td>{esc(name)} (#{label})")
        if captions and captions.get(label):
            parts.append(f"<p>{esc(markdown_to_text(captions[label]))}</p>")
        parts.append(f"</td><td><img alt='input image' src='{photo}'></td>")
        for method in methods:
            found = [r for r in results if r.method == method and r.label == label]
            if not found:
                parts.append("<td>—</td>")
                continue
            r = found[0]
            pic = render_explanation(image, r, limit=limits[method], **view)
            stats = f"{r.seconds:.2f} s · {calls_text(r)}"
            if r.r2 is not None:
                stats += f" · R² {r.r2:.2f}"
            parts.append(f"<td><img alt='{esc(method)}' src='{png_data_uri(pic)}'><br><small>{esc(stats)}</small></td>")
        parts.append("</tr>")
    parts.append("</table>")
    parts.append("<h2>Parameters and timings (JSON)</h2><pre>")
    parts.append(esc(to_json(document)))
    parts.append("</pre></body></html>")
    return "".join(parts)
