"""The audit's answer in plain words: what a person reads first, on the Audit page and at the
top of ``summary.html`` (one wording for both, from ``clusters.json`` alone).

Sentences, not tables: how many images, how often the model was right, per class how many
ways of looking it has and where each looks (a small group looking somewhere else is how a
shortcut shows), what was flagged — and what could not be checked, so that "nothing flagged"
is never said about a check that did not run.
"""
from __future__ import annotations

from typing import Any, Mapping

from explainers.audit.aggregate import FLAGS, accuracy_words
from explainers.text import count

LISTED_CLASSES = 8  # classes named one by one; the rest are counted
EXAMPLES = 2  # typical image names quoted per group


def _percent(share: float) -> str:
    return f"{share:.0%}"


def unit_of(manifest: Mapping[str, Any] | None) -> str:
    """"frame" for an audited video, else "image" (from the run's manifest)."""
    return "frame" if ((manifest or {}).get("source") or {}).get("kind") == "video" else "image"


def class_words(name: str, entry: Mapping[str, Any], unit: str = "image") -> str:
    """One predicted class: its ways of looking (strategy clusters), their shares and where each looks."""
    groups = list(entry.get("cluster_list") or [])
    head = f"{name} ({count(int(entry['images']), unit)})"
    if len(groups) < 2:
        return f"{head}: one way of looking, mostly at {entry.get('where', 'no particular area')}."
    parts = [f"group {g['id'] + 1}, {_percent(g['share'])} of them, mostly at {g.get('where', 'no particular area')} "
             f"(e.g. {', '.join(g['typical'][:EXAMPLES])})" for g in groups]
    text = f"{head}: {len(groups)} different ways of looking — " + "; ".join(parts) + "."
    main = groups[0].get("where")
    if any(g.get("where") != main for g in groups[1:]):
        text += (" Groups that look at different places can mean that some images are answered from a "
                 "shortcut (a tag, a watermark, a corner, the background): open each group's images to check.")
    else:
        text += " The groups look at the same area and differ in detail."
    return text


def findings(clusters: Mapping[str, Any], errors: int = 0, plain: bool = False, unit: str = "image") -> list[str]:
    """The audit's findings as plain sentences (no markup: callers escape them for their medium).

    ``plain`` (stakeholder mode) leaves out the surrogate's fit, a diagnostic for specialists, and
    names flags by their plain tags ("wrong answer", not "misclassified").
    ``unit`` "frame" for a video: frames carry no folder labels, so accuracy is not discussed."""
    classes = dict(clusters.get("classes") or {})
    total = int(clusters.get("images") or sum(int(e["images"]) for e in classes.values()))
    out = [f"{count(total, unit)} explained, predicted as {count(len(classes), 'class', 'classes')}"
           + (f"; {count(errors, 'file')} could not be used (listed below)." if errors else ".")]
    video = unit == "frame"
    accuracy = accuracy_words(clusters)
    if accuracy or not video:
        out.append(accuracy or "Accuracy not measured: the images carry no labels (put them in one folder "
                               "per class, named after the model's classes, to measure it).")
    # classes with more than one way of looking first: that is where shortcuts show
    ordered = sorted(classes.items(), key=lambda kv: (len(kv[1].get("cluster_list") or []) < 2,
                                                      -int(kv[1]["images"])))
    for name, entry in ordered[:LISTED_CLASSES]:
        out.append(class_words(name, entry, unit))
    if len(ordered) > LISTED_CLASSES:
        out.append(f"{count(len(ordered) - LISTED_CLASSES, 'other class', 'other classes')}: see the "
                   "pictures per class.")
    flags, checked = dict(clusters.get("flags") or {}), dict(clusters.get("flags_checked") or {})
    if plain:
        flags.pop("low_fit", None)
    if video:
        flags.pop("misclassified", None)
    found = [f"{count(n, unit)} {FLAGS[f].finding} ({FLAGS[f].meaning})"
             for f, n in flags.items() if n and checked.get(f, True)]
    # "none found" only for the checks a person asks for (those that say how to get them)
    clean = [FLAGS[f].plain if plain else FLAGS[f].short
             for f, n in flags.items() if not n and checked.get(f, False) and FLAGS[f].unchecked]
    if found:
        out.append("Flagged: " + "; ".join(found) + ".")
    if clean:
        quoted = [f"“{c}”" for c in clean]
        out.append(f"No {unit} was flagged " + (", ".join(quoted[:-1]) + " or " if len(quoted) > 1 else "")
                   + quoted[-1] + ".")
    missing = [FLAGS[f].unchecked for f in flags if FLAGS[f].unchecked and f in checked and not checked[f]]
    if missing and not video:  # a video has neither folder labels nor masks to give
        out.append("Not checked: " + "; ".join(missing) + ".")
    return out


__all__ = ["findings", "class_words", "unit_of"]
