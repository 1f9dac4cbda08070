"""Plain-language captions for stakeholder mode, computed from results already at hand.

No model calls: the regions come from the maps, the confidence after covering them from an
additive method's superpixel values (KernelSHAP; LIME's coefficients otherwise), agreement from
rank correlation of the maps on the same superpixels (``explainers.metrics``), and "how far to
trust it" from the trust verdicts when they were measured (from the fit otherwise). Every text
here is plain text: no markdown, no method ids, class ids, seconds, model calls or statistics
jargon.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from explainers import metrics as M
from explainers.base import Explanation


def where(mask: np.ndarray, weights: np.ndarray | None = None) -> str:
    """Rough position of a boolean mask in words ("the centre", "the upper left", …).

    ``weights`` (same shape, ≥ 0) weight the mask's pixels, so a broad region whose strongest
    part lies low is named by that part rather than by the middle of its extent."""
    if not mask.any():
        return "no particular area"
    rows, cols = np.nonzero(mask)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[rows, cols]
    if w is None or not w.sum() > 0:
        w = np.ones(len(rows))
    r = float(np.average(rows, weights=w)) / mask.shape[0]
    c = float(np.average(cols, weights=w)) / mask.shape[1]
    vert = "upper" if r < 0.38 else "lower" if r > 0.62 else ""
    horiz = "left" if c < 0.38 else "right" if c > 0.62 else ""
    if not vert and not horiz:
        return "the centre"
    if not horiz:
        return f"the {vert} part"
    if not vert:
        return f"the {horiz} side"
    return f"the {vert} {horiz}"


def mean_rank_correlation(results: Sequence[Explanation]) -> float | None:
    """Mean pairwise Spearman correlation of the methods' maps on shared superpixels
    (``metrics.agreement`` on ``metrics.segment_scores``); pairs with a constant map are left out."""
    segs = next((r.segments for r in results if r.segments is not None), None)
    if segs is None or len(results) < 2:
        return None
    scores = {f"{i}:{r.method}": M.segment_scores(r, segs) for i, r in enumerate(results)}
    corr = M.agreement(scores).rank_corr
    values = corr[np.triu_indices(len(scores), k=1)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def _reference(results: Sequence[Explanation]) -> Explanation | None:
    """The superpixel result whose weights best read as "score drop": an additive method first."""
    from explainers.base import methods

    specs = methods()
    with_weights = [r for r in results if r.segment_weights is not None]
    additive = [r for r in with_weights if r.method in specs and specs[r.method].additive]
    return (additive or with_weights or [None])[0]


def reference(results: Sequence[Explanation]) -> Explanation | None:
    """The explanation the story is told from: an additive superpixel method, then any with
    superpixel weights, then the first map."""
    found = _reference(results)
    return found if found is not None else (results[0] if results else None)


def regions(exp: Explanation, top: int = 3) -> list[np.ndarray]:
    """Pixel masks of the (at most ``top``) strongest regions pushing towards the label.

    Superpixel methods: the best positive superpixels. Pixel maps: the largest connected parts
    of the strongest 10 % of pixels.
    """
    if exp.segments is not None and exp.segment_weights is not None:
        # Only regions whose sign the samples settle are claimed (Explanation.unsettled).
        unsettled = exp.unsettled()
        order = [i for i in np.argsort(-exp.segment_weights, kind="stable")[:top]
                 if exp.segment_weights[i] > 0 and not unsettled[i]]
        return [exp.segments == i for i in order]
    from scipy.ndimage import label as connected

    heat = np.asarray(exp.heatmap, np.float32)
    if not (heat > 0).any():
        return []
    strong = (heat >= np.quantile(heat, 0.9)) & (heat > 0)
    parts, count = connected(strong)
    if count == 0:
        return []
    sums = np.bincount(parts.ravel(), weights=heat.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-sums, kind="stable")[:top]
    return [parts == int(i) + 1 for i in order]


def _numbers(n: int) -> str:
    if n == 1:
        return "region 1"
    if n == 2:
        return "regions 1 and 2"
    return f"regions 1–{n}"


def _places(found: Sequence[np.ndarray]) -> str:
    """Where the numbered regions are: one place when they share it ("the upper left of the
    picture"), else each region's own ("1 at the upper left, 2 at the lower part"): the middle
    of regions far apart can be a place none of them is at."""
    places = [where(r) for r in found]
    if len(set(places)) == 1:
        return f"{places[0]} of the picture"
    return ", ".join(f"{i} at {p}" for i, p in enumerate(places, start=1))


@dataclass(frozen=True)
class Story:
    """What stakeholder mode says about one label: the text and the regions it talks about."""

    label_name: str
    score: float
    method: str  # the registry name of the explanation the regions come from
    regions: list[np.ndarray] = field(default_factory=list)
    after: float | None = None  # estimated confidence with the regions covered
    text: str = ""
    trust: str = ""


def story(results: Sequence[Explanation], verdicts: Mapping[str, Sequence[str]] | None = None,
          top: int = 3) -> Story | None:
    """The plain-language story of one label (all ``results`` must be for the same label).

    ``verdicts`` are ``explainers.trust.badge_list`` of a trust report for this label, if one
    was computed.
    """
    ref = reference(results)
    if ref is None:
        return None
    found = regions(ref, top)
    score = float(ref.score)
    text = [f"The model says “{ref.label_name}” with {score:.0%} confidence."]
    after = None
    if found:
        look = f"It looks mostly at {_numbers(len(found))} ({_places(found)})"
        if ref.segment_weights is not None:
            ids = [i for i in np.argsort(-ref.segment_weights, kind="stable")[:top]
                   if ref.segment_weights[i] > 0 and not ref.unsettled()[i]]
            after = float(np.clip(score - float(ref.segment_weights[ids].sum()), 0.0, 1.0))
            if after < 0.01:
                look += f"; covering them would take away almost all of its {score:.0%} confidence."
            else:
                look += f"; covering them would lower its confidence from {score:.0%} to about {after:.0%}."
        else:
            look += "."
        text.append(look)
    else:
        text.append("No part of the picture clearly pushes it towards this answer.")
    if ref.segment_weights is not None:
        doubtful = [i for i in np.argsort(-ref.segment_weights, kind="stable")[:top]
                    if ref.segment_weights[i] > 0 and ref.unsettled()[i]]
        if doubtful:
            few = "One more region" if len(doubtful) == 1 else f"{len(doubtful)} more regions"
            text.append(f"{few} may matter too, but the samples do not settle whether "
                        f"{'it helps' if len(doubtful) == 1 else 'they help'} or "
                        f"hurt{'s' if len(doubtful) == 1 else ''} the answer.")
    agree = mean_rank_correlation(results)
    if agree is not None:
        if agree >= 0.5:
            text.append("The methods agree on this.")
        elif agree >= 0.2:
            text.append("The methods partly agree — treat the details with care.")
        else:
            text.append("The methods disagree — this explanation is not reliable.")
    trust = trust_line(ref, verdicts, agree)
    return Story(ref.label_name, score, ref.method, found, after, " ".join(text), trust)


_WORRIES = (
    ("not faithful", "covering the highlighted regions hurts the answer no more than covering random ones"),
    ("unstable", "another random start highlights other regions"),
    ("fragile", "invisible noise in the photo changes the picture"),
    ("not converged", "the picture had not settled yet"),
    ("low fit", "the simple model behind the picture imitates the real one poorly here"),
    ("misses the object", "the highlighted regions miss the object"),
)
_GOOD = ("faithful:", "stable across seeds", "robust to image noise", "points at the object")


def checked_words(verdicts: Sequence[str]) -> str:
    """What a method's trust checks found, in plain words ("with care — …", "well — …", "fairly — …").

    ``verdicts``: one method's ``explainers.trust.badge_list`` entry. Used by the story's trust
    line and by stakeholder mode's Trust page, so both say the same thing.
    """
    worries = [plain for key, plain in _WORRIES if any(v.startswith(key) for v in verdicts)]
    good = sum(any(v.startswith(g) for v in verdicts) for g in _GOOD)
    if worries:
        return "with care — the checks found that " + "; ".join(worries) + "."
    if good >= 2:
        return ("well — checked: covering these regions really lowers the confidence, and repeated "
                "runs give the same picture.")
    return "fairly — the checks found nothing wrong, but not every check applied."


def trust_line(ref: Explanation, verdicts: Mapping[str, Sequence[str]] | None = None,
               agree: float | None = None) -> str:
    """"How far to trust it" in one plain sentence."""
    mine = list((verdicts or {}).get(ref.method, []))
    if mine:
        return "How far to trust it: " + checked_words(mine)
    fit = ref.r2
    if fit is not None and fit < 0.4:
        return ("How far to trust it: with care — the simple model behind the picture imitates the real "
                "one poorly here (not checked further yet).")
    if agree is not None and agree < 0.2:
        return "How far to trust it: with care — the methods disagree (not checked further yet)."
    if fit is not None and fit >= 0.7 and (agree is None or agree >= 0.5):
        return ("How far to trust it: fairly — the simple model behind the picture imitates the real one "
                "well (not checked further yet).")
    return "How far to trust it: fairly — not checked further yet."


def caption(results: Sequence[Explanation], top: int = 3) -> str:
    """One or two plain sentences for a non-technical audience about one label."""
    told = story(results, top=top)
    return told.text if told is not None else ""


def story_picture(image: np.ndarray, results: Sequence[Explanation], told: Story, *,
                  limit: float | None = None, cmap: str = "blue-white-red", scale: int = 2) -> np.ndarray:
    """The main stakeholder picture: the story's map, its regions outlined and numbered.

    Drawn ``scale`` times larger than the model input so that outlines and numbers stay sharp
    when shown big.
    """
    from PIL import Image

    from explainers.render import numbered_regions, render_explanation

    ref = next(r for r in results if r.method == told.method)
    picture = render_explanation(image, ref, limit=limit, cmap=cmap)
    h, w = picture.shape[:2]
    big = np.asarray(Image.fromarray(picture).resize((w * scale, h * scale), Image.Resampling.BICUBIC))
    masks = [np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w * scale, h * scale),
                                                                         Image.Resampling.NEAREST)) > 127
             for m in told.regions]
    return numbered_regions(big, masks)


def _title(method: str) -> str:
    """A method's title from the registry (ids such as ``kernel_shap`` never reach a person)."""
    from explainers.base import methods

    spec = methods().get(method)
    return spec.title if spec is not None else method


def contrast_caption(results: Sequence[Explanation], top: int = 3) -> str:
    """In words, what separates label A from label B, from contrast results ("A rather than B").

    Prefers an additive superpixel method (KernelSHAP, Partition SHAP, then any with segment
    weights): the regions with the largest positive weights favour A over B, the most negative
    ones favour B (only regions with at least a quarter of the largest weight, and whose sign the
    samples settle: no claim the uncertainty does not support); their weights say how many points
    of the gap p(A) − p(B) they account for.
    Without one, where the first contrast map reaches half its maximum (and half its minimum).
    """
    results = [r for r in results if r.contrast is not None]
    if not results:
        return ""
    first = results[0]
    from explainers.text import escape_markdown  # label names are user-controlled: markdown out

    a = escape_markdown(first.label_name)
    b = escape_markdown(first.extras.get("contrast_name", f"class {first.contrast}"))
    pa, pb = float(first.score), first.extras.get("contrast_score")
    close = pb is not None and abs(pa - float(pb)) < 0.05  # whole percents would hide the gap
    gap = f" ({pa:.1%} vs {pb:.1%})" if close else (f" ({pa:.0%} vs {pb:.0%})" if pb is not None else "")
    head = f"What makes it **{a}** rather than **{b}**{gap}:"
    ref = next((r for r in results if r.method in ("kernel_shap", "partition_shap") and r.segment_weights is not None),
               None) or next((r for r in results if r.segment_weights is not None), None)
    if ref is None:  # a pixel map: where it reaches half its extreme on either side
        heat = np.asarray(first.heatmap, dtype=np.float64)
        hi, lo = float(heat.max()), float(heat.min())
        text = (f"{head} {where(heat >= 0.5 * hi)} of the picture favours {a}" if hi > 0
                else f"{head} nothing in the picture favours {a}")
        if lo < 0:
            text += f"; {where(heat <= 0.5 * lo)} favours {b}"
        return text + f" ({_title(first.method)})."
    w = ref.segment_weights
    unsettled = ref.unsettled()  # as in the story: a region whose sign is not settled is not claimed
    order = np.argsort(-w, kind="stable")
    floor = 0.25 * float(np.abs(w).max())  # regions that matter, not the noise around zero
    pro = [i for i in order[:top] if w[i] > 0 and w[i] >= floor and not unsettled[i]]
    con = [i for i in order[::-1][:top] if w[i] < 0 and -w[i] >= floor and not unsettled[i]]
    if not pro and not con and unsettled.any():
        return (f"{head} the samples do not yet settle which regions favour {a} or {b} "
                f"({_title(ref.method)} estimate; more samples would).")
    if pro:
        body = (f"mostly {where(np.isin(ref.segments, pro))} of the picture, which raises {a} over {b} "
                f"by about {w[pro].sum() * 100:.0f} points")
    else:
        body = f"no region clearly raises {a} over {b}"
    if con:
        body += f"; {where(np.isin(ref.segments, con))} leans towards {b} (about {-w[con].sum() * 100:.0f} points)"
    if pb is not None and pro and con:
        digits = 1 if close else 0  # the gap between the numbers as shown, so the text adds up
        gap_points = abs(round(pa * 100, digits) - round(float(pb) * 100, digits))
        if min(w[pro].sum(), -w[con].sum()) * 100 > 3 * max(gap_points, 1.0):
            # large pulls both ways around a small gap puzzle a reader unless the text says so
            body += (f"; these pulls largely cancel out, which is why the two answers differ by only "
                     + (f"{gap_points:.1f} points" if close else f"{gap_points:.0f} points"))
    return f"{head} {body} ({_title(ref.method)} estimate)."
