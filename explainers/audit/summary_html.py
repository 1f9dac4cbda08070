"""``summary.html``: the audit in one self-contained file (pictures embedded as data URIs), in
the single-image report's style and order: the findings in words first, then the pictures per
class (each with its colour legend) and the flagged images, and how it was computed at the end.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
from typing import Any, Mapping

MAX_LISTED = 50
_CSS = (".thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(130px,1fr));gap:10px}"
        ".thumbs img{width:100%;max-width:160px;height:auto;display:block}"
        ".thumbs figcaption{font-weight:400;font-size:0.8em;margin-top:2px}"
        "ul.findings li{margin:0.35em 0}"
        ".legends{display:flex;flex-wrap:wrap;gap:24px}.legends>div{width:300px}")


def _uri(store: Any, rel: str) -> str:
    from explainers.render import png_data_uri

    return png_data_uri((store.root / rel).read_bytes())


def _flagged(frame, primary: str) -> list[tuple[Any, list[str]]]:
    """(row, flag keys) of each image's top label under the first method that carries a flag."""
    from explainers.audit.aggregate import FLAGS

    top = frame[(frame["rank"] == 0) & (frame["method"] == primary)]
    out = []
    for r in top.itertuples():
        flags = [f for f in FLAGS if getattr(r, f, None) is True]
        if flags:
            out.append((r, flags))
    return out


def _class_section(store: Any, name: str, entry: Mapping[str, Any]) -> list[str]:
    from explainers.legend import legend_html, relative_legend

    esc = html.escape
    legend = relative_legend(name)
    out = [f"<section class='label'><h3>{esc(name)} — {entry['images']} image{'s' if entry['images'] != 1 else ''}"
           "</h3><div class='figures'>",  # its sentence is in the findings above
           f"<figure><figcaption>Mean image (the photos averaged)</figcaption><img class='picture' alt='the average of the "
           f"class&#39;s images' src='{_uri(store, entry['mean_image'])}'></figure>",
           f"<figure><figcaption>Where the model looks (mean map)</figcaption><img class='picture' "
           f"alt='{esc(legend.sentence)}' src='{_uri(store, entry['mean_map'])}'>{legend_html(legend)}</figure>"]
    groups = entry.get("cluster_list") or []
    if len(groups) > 1:
        for g in groups:
            out.append(f"<figure><figcaption>Group {g['id'] + 1}: {g['share']:.0%} of the images</figcaption>"
                       f"<img class='picture' alt='where group {g['id'] + 1} looks; colours as the mean map' "
                       f"src='{_uri(store, g['mean_map'])}'><div class='stats'>Mostly at "
                       f"{esc(str(g.get('where', '')))}; e.g. {esc(', '.join(g['typical']))}. Colours as the mean map."
                       "</div></figure>")
    out.append("</div></section>")
    return out


def _run_rows(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """How it was computed, for a person (the JSON below has every field)."""
    from explainers.base import get_method

    params, summary, model = manifest["params"], manifest.get("summary", {}), manifest["model"]
    titles = [get_method(m).title for m in params["methods"]]
    seg = params.get("segmentation_params") or {}
    rows = [("Model", f"{model['name']} ({model['id']})"), ("Methods", ", ".join(titles)),
            ("Images explained", str(summary.get("images"))), ("Files not used", str(summary.get("errors"))),
            ("Labels explained per image", f"top {params['top_k']}"),
            ("Rows in results.parquet", f"{summary.get('rows')} (image × label × method)"),
            ("Model calls", str(summary.get("model_calls"))), ("Time", f"{summary.get('seconds')} s"),
            ("Status", str(manifest.get("status")))]
    shared = [get_method(m).title for m in params["methods"] if get_method(m).refit is not None]
    if shared:  # the methods fitted on the shared perturbation rows, as run
        rows.append((f"Samples per image ({', '.join(shared)})", str(params["samples"])))
    rows += [("Regions", f"{params['segmentation']}: " + ", ".join(f"{k} {v}" for k, v in seg.items())),
             ("Hidden regions filled with", str(params["fill"])),
             ("Deletion curves", "off" if not params.get("deletion_steps") else
              f"{params['deletion_steps']} steps, against {params['random_orders']} random orders"),
             ("Image size", f"{params['resize']} to the model's input"),
             ("Seed", f"{params['seed']} (each image's own seed derives from it and the image's name)")]
    return rows


def render_summary(store: Any, frame, clusters: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    from explainers.audit.aggregate import FLAGS
    from explainers.audit.findings import findings, unit_of
    from explainers.text import count
    from explainers.base import get_method
    from explainers.export import REPORT_CSS
    from explainers.legend import legend_html, thumbnail_legends

    esc = html.escape
    primary = clusters.get("method", manifest["params"]["methods"][0])
    summary = manifest.get("summary", {})
    errors = manifest.get("errors") or []
    title = get_method(primary).title
    unit = unit_of(manifest)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>XAI Lens audit</title>",
        f"<style>{REPORT_CSS}{_CSS}</style></head><body>",
        "<h1>XAI Lens dataset audit</h1>",
        f"<p class='muted'>Generated {esc(_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}.</p>",
        f"<p>{esc(str(manifest['model']['name']))} looked at {esc(count(int(summary.get('images') or 0), unit))}, and "
        f"{esc(title)} showed where it looked in each. What the audit found comes first; how it was "
        "computed is at the end.</p>",
        "<h2>What the audit found</h2><ul class='findings'>",
        *[f"<li>{esc(line)}</li>" for line in findings(clusters, len(errors), unit=unit)],
        "</ul>",
    ]
    if clusters.get("confusion"):
        parts.append("<h3>Most confused</h3><table><tr><th>true</th><th>predicted</th><th>images</th></tr>")
        for c in clusters["confusion"][:MAX_LISTED]:
            parts.append(f"<tr><td>{esc(c['true'])}</td><td>{esc(c['predicted'])}</td><td>{c['count']}</td></tr>")
        parts.append("</table>")
    parts.append(f"<h2>Where the model looks, per predicted class ({esc(title)})</h2>"
                 "<p class='muted'>The mean map averages the class's maps (each scaled to its own strongest "
                 "point; only the part that pushes towards the class). Groups are images whose maps look "
                 "alike: a small group that looks somewhere else can reveal a shortcut.</p>")
    for name, entry in clusters.get("classes", {}).items():
        parts.extend(_class_section(store, name, entry))
    flagged = _flagged(frame, primary)
    if flagged:
        parts.append(f"<h2>Flagged images ({len(flagged)})</h2><p class='muted'>Each picture is the image "
                     f"tinted by the {esc(title)} map of its top label, scaled to its own strongest value.</p>"
                     "<div class='legends'>"
                     + "".join(f"<div>{legend_html(lg)}</div>"
                               for lg in thumbnail_legends(getattr(r, "map_signed", None) for r, _ in flagged))
                     + "</div><div class='thumbs'>")
        for r, flags in flagged[:MAX_LISTED]:
            thumb = store.thumb_path(r.image_id, r.method, r.label)
            img = (f"<img alt='{esc(r.image)}' src='{_uri(store, str(thumb.relative_to(store.root)))}'>"
                   if thumb.exists() else "")
            words = "; ".join(FLAGS[f].plain for f in flags)  # a shared report: no statistics words
            parts.append(f"<figure>{img}<figcaption><b>{esc(r.image)}</b><br>{esc(str(r.label_name))} "
                         f"{r.probability:.0%}<br>⚠ {esc(words)}</figcaption></figure>")
        parts.append("</div>")
        if len(flagged) > MAX_LISTED:
            parts.append(f"<p>… and {len(flagged) - MAX_LISTED} more (see results.parquet).</p>")
        parts.append("<p class='muted'>" + "<br>".join(esc(f.plain_title[0].upper() + f.plain_title[1:])
                                                       for f in FLAGS.values()) + "</p>")
    if errors:
        parts.append(f"<h2>Files not used ({len(errors)})</h2><table><tr><th>file</th><th>reason</th></tr>")
        for e in errors[:MAX_LISTED]:
            parts.append(f"<tr><td>{esc(e['image'])}</td><td>{esc(e['reason'])}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>How it was computed</h2><table class='run'>")
    parts.extend(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _run_rows(manifest))
    parts.append("</table><h2 class='data'>Machine-readable data</h2><details><summary>Model, parameters, "
                 "seeds and package versions (JSON)</summary><pre>")
    parts.append(esc(json.dumps({k: manifest[k] for k in ("model", "params", "seeds", "packages") if k in manifest},
                                indent=1)))
    parts.append("</pre></details></body></html>")
    return "".join(parts)


def write_summary(store: Any, frame, clusters: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    from explainers.audit.store import atomic_write

    atomic_write(store.root / "summary.html", render_summary(store, frame, clusters, manifest))


__all__ = ["render_summary", "write_summary"]
