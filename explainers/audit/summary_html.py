"""``summary.html``: the audit in one self-contained file (pictures embedded as data URIs),
in the style of the single-image report."""
from __future__ import annotations

import html
import json
from typing import Any, Mapping

MAX_LISTED = 50


def _uri(store: Any, rel: str) -> str:
    from explainers.render import png_data_uri

    return png_data_uri((store.root / rel).read_bytes())


def _flagged(frame, primary: str) -> list[tuple[str, list[str]]]:
    top = frame[(frame["rank"] == 0) & (frame["method"] == primary)]
    out = []
    for r in top.itertuples():
        flags = [f for f in ("misclassified", "unfaithful", "outside_mask", "low_fit") if getattr(r, f) is True]
        if flags:
            out.append((r.image, flags))
    return out


def render_summary(store: Any, frame, clusters: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    esc = html.escape
    primary = clusters.get("method", manifest["params"]["methods"][0])
    summary = manifest.get("summary", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>XAI Lens audit</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:6px;vertical-align:top;text-align:center}"
        "img{max-width:160px}.meta td{text-align:left}</style></head><body>",
        "<h1>XAI Lens dataset audit</h1>",
        f"<p>Model <b>{esc(str(manifest['model']['name']))}</b> ({esc(str(manifest['model']['id']))}); "
        f"methods {esc(', '.join(manifest['params']['methods']))}; status {esc(str(manifest.get('status')))}.</p>",
        "<h2>Run</h2><table class='meta'>",
    ]
    for key in ("images", "rows", "errors", "model_calls", "seconds"):
        parts.append(f"<tr><th>{key}</th><td>{esc(str(summary.get(key)))}</td></tr>")
    from explainers.audit.aggregate import accuracy_words

    parts.append(f"<tr><th>accuracy</th><td>{esc(accuracy_words(clusters) or '— (no folder labels)')}</td></tr>")
    for flag, n in clusters.get("flags", {}).items():
        parts.append(f"<tr><th>flagged {esc(flag.replace('_', ' '))}</th><td>{n}</td></tr>")
    parts.append("</table>")
    if clusters.get("confusion"):
        parts.append("<h2>Confusions</h2><table><tr><th>true</th><th>predicted</th><th>images</th></tr>")
        for c in clusters["confusion"][:MAX_LISTED]:
            parts.append(f"<tr><td>{esc(c['true'])}</td><td>{esc(c['predicted'])}</td><td>{c['count']}</td></tr>")
        parts.append("</table>")
    parts.append(f"<h2>Per predicted class ({esc(primary)})</h2><table><tr><th>class</th><th>mean image</th>"
                 "<th>mean map</th><th>strategy clusters (share, typical images)</th></tr>")
    for name, entry in clusters.get("classes", {}).items():
        parts.append(f"<tr><td>{esc(name)}<br><small>{entry['images']} images</small></td>"
                     f"<td><img alt='mean image' src='{_uri(store, entry['mean_image'])}'></td>"
                     f"<td><img alt='mean map' src='{_uri(store, entry['mean_map'])}'></td><td>")
        for c in entry["cluster_list"]:
            parts.append(f"<div style='display:inline-block;margin:4px'><img alt='cluster {c['id']}' "
                         f"src='{_uri(store, c['mean_map'])}'><br><small>cluster {c['id']}: "
                         f"{c['share']:.0%} — {esc(', '.join(c['typical']))}</small></div>")
        parts.append("</td></tr>")
    parts.append("</table>")
    flagged = _flagged(frame, primary)
    if flagged:
        parts.append(f"<h2>Flagged images ({len(flagged)})</h2><table><tr><th>image</th><th>flags</th></tr>")
        for image, flags in flagged[:MAX_LISTED]:
            parts.append(f"<tr><td>{esc(image)}</td><td>{esc(', '.join(flags))}</td></tr>")
        parts.append("</table>")
        if len(flagged) > MAX_LISTED:
            parts.append(f"<p>… and {len(flagged) - MAX_LISTED} more (see results.parquet).</p>")
    errors = manifest.get("errors") or []
    if errors:
        parts.append(f"<h2>Files not used ({len(errors)})</h2><table><tr><th>file</th><th>reason</th></tr>")
        for e in errors[:MAX_LISTED]:
            parts.append(f"<tr><td>{esc(e['image'])}</td><td>{esc(e['reason'])}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Parameters (JSON)</h2><pre>")
    parts.append(esc(json.dumps({k: manifest[k] for k in ("model", "params", "seeds", "packages") if k in manifest},
                                indent=1)))
    parts.append("</pre></body></html>")
    return "".join(parts)


def write_summary(store: Any, frame, clusters: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    from explainers.audit.store import atomic_write

    atomic_write(store.root / "summary.html", render_summary(store, frame, clusters, manifest))


__all__ = ["render_summary", "write_summary"]
