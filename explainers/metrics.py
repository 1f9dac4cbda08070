"""Trust metrics: how far can one explanation be believed?

Everything here works on superpixel scores: a superpixel method's ``segment_weights`` as they
are, a pixel map (CAM, gradients, occlusion) pooled onto the *same* superpixels by its mean
(``pool_to_segments``), so that every method is ranked, hidden and compared region by region.

* **Deletion / insertion** (Petsiuk et al. 2018, on superpixels): hide the regions in decreasing
  importance (deletion; a faithful map makes the score fall fast, low AUC) or reveal them from
  the fully hidden image (insertion; high AUC), with the perturbation run's own fill, rendered by
  ``PerturbationRun.render`` on coalition rows. A random order (mean of a few seeded ones) sets
  the scale. Coalitions shared between curves (the image, the hidden image, the random orders,
  every prefix two methods agree on) and those the perturbation run already predicted are sent to
  the model once; ``model_calls`` counts only the new ones.
* **Stability**: the same method re-run with other seeds (sampling noise), and on copies of the
  image with a small Gaussian noise (a near-identical image should give a near-identical map);
  mean pairwise top-N IoU and Spearman correlation of the segment scores.
* **Agreement**: top-N IoU and Spearman correlation between every pair of methods.
* **Convergence** of LIME / KernelSHAP: re-fits on prefixes of the rows the estimate used (no
  model call) and a bootstrap over those rows for a per-segment standard deviation.
* **Pointing game / mask IoU** against a user-drawn ground-truth mask.

Deterministic: every random choice takes a seed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np

from explainers.base import Explanation, ExplainerError, ProgressFn


def refits_on_rows(method: str) -> bool:
    """Whether ``method`` is fitted on the shared perturbation rows (registered with ``refit``):
    those have convergence and bootstrap metrics."""
    from explainers.base import methods

    spec = methods().get(method)
    return spec is not None and spec.refit is not None

_RANDOM_ORDER_KEY = 0x0DE1
_BOOTSTRAP_KEY = 0xB007
_NOISE_KEY = 0x4015E


class MetricsError(ExplainerError):
    """A bad input to a trust metric (shown to users as one line)."""


# ----------------------------------------------------------------------------- regions
def _check_segments(segments: np.ndarray) -> np.ndarray:
    segments = np.asarray(segments)
    if segments.ndim != 2 or not np.issubdtype(segments.dtype, np.integer) or segments.size == 0:
        raise MetricsError(f"segments must be a non-empty integer map (H, W), got {segments.shape} {segments.dtype}")
    if segments.min() < 0:
        raise MetricsError("segment ids must be ≥ 0")
    return segments


def pool_to_segments(heatmap: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Mean of a pixel map over each superpixel, (M,) float64.

    A map at another resolution (e.g. a CAM at the layer's 7×7) is first resized bilinearly to
    the segments' (H, W). Segments without pixels get 0.
    """
    from explainers.base import upsample

    segments = _check_segments(segments)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise MetricsError(f"a heatmap must be 2-D (H, W), got shape {heat.shape}")
    if heat.shape != segments.shape:
        heat = upsample(heat, segments.shape, "bilinear").astype(np.float64)
    if not np.all(np.isfinite(heat)):
        raise MetricsError("the heatmap contains NaN or infinite values")
    ids = segments.ravel()
    m = int(ids.max()) + 1
    count = np.bincount(ids, minlength=m)
    total = np.bincount(ids, weights=heat.ravel(), minlength=m)
    return total / np.maximum(count, 1)


def segment_scores(result: Explanation, segments: np.ndarray) -> np.ndarray:
    """A result's importance per superpixel of ``segments`` (M,) float64.

    Superpixel methods on these very segments give their weights unchanged; anything else (pixel
    maps, or a superpixel map on other segments, e.g. of a noisy copy) is pooled by the mean.
    """
    segments = _check_segments(segments)
    if (
        result.segment_weights is not None
        and result.segments is not None
        and result.segments.shape == segments.shape
        and np.array_equal(result.segments, segments)
    ):
        return np.asarray(result.segment_weights, dtype=np.float64)
    return pool_to_segments(result.heatmap, segments)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Segment ids by decreasing score; ties keep the lower id first (deterministic)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise MetricsError(f"segment scores must be 1-D, got shape {scores.shape}")
    return np.argsort(-scores, kind="stable")


def top_n_iou(a: np.ndarray, b: np.ndarray, top_n: int, tie_tol: float = 0.0) -> float:
    """IoU of the top-``top_n`` segments of two score vectors (1 = same regions, 0 = disjoint).

    ``tie_tol`` > 0: a segment within ``tie_tol × max|score|`` of the N-th score is in the top
    too (regions of equal weight are one answer, whichever of them rounding puts first).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise MetricsError(f"score vectors differ in length: {a.shape} vs {b.shape}")
    n = min(int(top_n), len(a))
    if n < 1:
        raise MetricsError(f"top_n must be ≥ 1, not {top_n}")

    def top(v: np.ndarray) -> set:
        order = ranking(v)
        chosen = set(order[:n].tolist())
        if tie_tol > 0:
            v = np.asarray(v, dtype=np.float64)
            cut = v[order[n - 1]] - float(tie_tol) * float(np.max(np.abs(v)))
            chosen |= set(np.flatnonzero(v >= cut).tolist())
        return chosen

    sa, sb = top(a), top(b)
    return len(sa & sb) / len(sa | sb)


def expected_top_n_iou(
    weights: np.ndarray, std: np.ndarray, top_n: int, *, draws: int = 256, seed: int = 0,
    tie_tol: float = 0.0,
) -> float:
    """Expected top-``top_n`` IoU of an estimate with the answer it converges to, from its
    standard errors: the mean IoU of the estimate's top regions with those of ``draws`` plausible
    answers ``weights + std·ε`` (ε standard normal, seeded; a parametric bootstrap).

    Why not split halves: two half-size estimates differ by 4× the variance of the full
    estimate and its limit, so a split-half rule keeps sampling long after the full estimate
    already agrees with the converged one. ``std`` 0 everywhere (exact weights) gives 1.
    """
    w = np.asarray(weights, dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    if w.ndim != 1 or s.shape != w.shape:
        raise MetricsError(f"weights and standard errors must be 1-D of one length: {w.shape}, {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise MetricsError("standard errors must be finite and ≥ 0")
    n = min(int(top_n), len(w))
    if n < 1:
        raise MetricsError(f"top_n must be ≥ 1, not {top_n}")

    def chosen(v: np.ndarray) -> np.ndarray:  # (B, M) membership of each row's top n (+ ties)
        order = np.argsort(-v, axis=1, kind="stable")
        nth = np.take_along_axis(v, order[:, n - 1 : n], axis=1)
        cut = nth - float(tie_tol) * np.max(np.abs(v), axis=1, keepdims=True)
        member = v >= cut
        np.put_along_axis(member, order[:, :n], True, axis=1)
        return member

    ref = chosen(w[None, :])[0]
    eps = np.random.default_rng([int(seed), 0x5EED, len(w)]).standard_normal((int(draws), len(w)))
    other = chosen(w[None, :] + s[None, :] * eps)
    inter = np.sum(other & ref, axis=1)
    union = np.sum(other | ref, axis=1)
    return float(np.mean(inter / union))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two score vectors; 1 for identical ones, NaN if one is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise MetricsError(f"score vectors differ in length: {a.shape} vs {b.shape}")
    if np.array_equal(a, b):
        return 1.0
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def mean_pairwise(maps: Sequence[np.ndarray], top_n: int) -> tuple[float, float]:
    """(mean top-N IoU, mean Spearman correlation) over all pairs of ``maps``; NaN for < 2 maps."""
    pairs = list(combinations(range(len(maps)), 2))
    if not pairs:
        return float("nan"), float("nan")
    ious = [top_n_iou(maps[i], maps[j], top_n) for i, j in pairs]
    corrs = [rank_correlation(maps[i], maps[j]) for i, j in pairs]
    return float(np.mean(ious)), _nanmean(corrs)


@dataclass(frozen=True, eq=False)
class Agreement:
    """Pairwise agreement between methods (rows and columns in ``methods`` order)."""

    methods: tuple[str, ...]
    rank_corr: np.ndarray  # (k, k) Spearman, 1 on the diagonal, NaN where undefined
    top_iou: np.ndarray  # (k, k) top-N IoU, 1 on the diagonal


def agreement(scores: Mapping[str, np.ndarray], top_n: int = 5) -> Agreement:
    """Spearman and top-N IoU matrices between the methods' segment scores (same segments)."""
    names = tuple(scores)
    k = len(names)
    corr = np.eye(k)
    iou = np.eye(k)
    for i, j in combinations(range(k), 2):
        a, b = scores[names[i]], scores[names[j]]
        corr[i, j] = corr[j, i] = rank_correlation(a, b)
        iou[i, j] = iou[j, i] = top_n_iou(a, b, top_n)
    return Agreement(methods=names, rank_corr=corr, top_iou=iou)


# ----------------------------------------------------------------------------- deletion / insertion
@dataclass(frozen=True, eq=False)
class Curve:
    """A deletion or insertion curve of one label's probability."""

    kind: str  # "deletion" | "insertion"
    counts: np.ndarray  # (S,) regions hidden (deletion) or shown (insertion) at each step
    fractions: np.ndarray  # (S,) counts / M: the x axis of the AUC, 0..1
    area_fractions: np.ndarray  # (S,) share of pixels hidden / shown (for plotting)
    scores: np.ndarray  # (S,) the label's probability at each step
    auc: float  # trapezoid of scores over fractions


def step_counts(num_segments: int, steps: int) -> np.ndarray:
    """``steps`` evenly spaced region counts 0..M (fewer when M < steps − 1: no duplicates)."""
    m, steps = int(num_segments), int(steps)
    if m < 1:
        raise MetricsError("there are no segments to remove")
    if not 2 <= steps <= 1000:
        raise MetricsError(f"steps must be between 2 and 1000, not {steps}")
    return np.unique(np.round(np.linspace(0, m, steps)).astype(np.int64))


def curve_coalitions(order: np.ndarray, counts: np.ndarray, kind: str) -> np.ndarray:
    """Coalition rows (S, M) of a curve: deletion step k shows every region except the first k
    of ``order``; insertion step k shows only those k."""
    order = np.asarray(order, dtype=np.int64)
    m = len(order)
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    top = rank[None, :] < np.asarray(counts)[:, None]  # (S, M): among the first k
    if kind == "deletion":
        return ~top
    if kind == "insertion":
        return top
    raise MetricsError(f"a curve is a deletion or an insertion, not {kind!r}")


def auc(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule."""
    return float(np.trapezoid(np.asarray(scores, dtype=np.float64), np.asarray(fractions, dtype=np.float64)))


def _keys(Z: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.packbits(np.asarray(Z, dtype=bool), axis=1)]


def predict_coalitions(
    run: Any,
    Z: np.ndarray,
    known: dict[bytes, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    stage: str = "deletion / insertion",
) -> tuple[np.ndarray, int]:
    """Model outputs (k, C) for coalitions ``Z`` rendered with ``run``'s image, segments and fill.

    Rows the run already predicted and rows in ``known`` (a coalition-bytes → output cache that
    this function fills) are reused; every other distinct coalition is rendered and sent to the
    model once, in batches of ``run.batch_size``. Returns (outputs, new model calls).
    """
    Z = np.asarray(Z, dtype=bool)
    keys = _keys(Z)
    known = {} if known is None else known
    wanted = set(keys)
    in_run: dict[bytes, int] = {}
    if run.n:
        for i, key in enumerate(_keys(run.Z)):
            if key in wanted and key not in in_run:
                in_run[key] = i
    fresh: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        if key not in known and key not in in_run and key not in fresh:
            fresh[key] = i
    todo = list(fresh.items())
    for start in range(0, len(todo), run.batch_size):
        chunk = todo[start : start + run.batch_size]
        out = np.asarray(run.predict(run.render(Z[[i for _, i in chunk]])), dtype=np.float32)
        if out.ndim != 2 or len(out) != len(chunk) or not np.all(np.isfinite(out)):
            raise MetricsError(
                f"the model returned shape {out.shape} (or non-finite scores) for {len(chunk)} images"
            )
        for (key, _), row in zip(chunk, out):
            known[key] = row
        if progress is not None:
            progress(min(start + len(chunk), len(todo)), len(todo), stage)
    Y = run.Y
    rows = [Y[in_run[key]] if key in in_run else known[key] for key in keys]
    return np.stack(rows).astype(np.float32), len(todo)


@dataclass(frozen=True, eq=False)
class Faithfulness:
    """Deletion and insertion curves of one label for several maps, plus the random baseline."""

    label: int
    deletion: dict[str, Curve]
    insertion: dict[str, Curve]
    random_deletion: Curve
    random_insertion: Curve
    model_calls: int  # new images sent to the model
    coalitions: int  # rows of all curves together
    distinct: int  # distinct coalitions among them


def faithfulness(
    run: Any,
    scores: Mapping[str, np.ndarray],
    label: int,
    *,
    steps: int = 16,
    random_orders: int = 3,
    seed: int = 0,
    known: dict[bytes, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> Faithfulness:
    """Deletion and insertion curves (label probability vs fraction of regions) for each map.

    ``run`` is a ``PerturbationRun`` (its image, segments, fill and predict are used; its rows are
    reused); ``scores`` maps a name to segment scores (M,). The random baseline averages
    ``random_orders`` orders drawn with ``default_rng([seed, key, r])``.
    """
    m = int(run.num_segments)
    counts = step_counts(m, steps)
    if not 1 <= int(random_orders) <= 100:
        raise MetricsError(f"random orders must be between 1 and 100, not {random_orders}")
    orders: dict[str, np.ndarray] = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.shape != (m,):
            raise MetricsError(f"{name}: expected {m} segment scores, got shape {s.shape}")
        orders[name] = ranking(s)
    randoms = [
        np.random.default_rng([int(seed), _RANDOM_ORDER_KEY, r]).permutation(m)
        for r in range(int(random_orders))
    ]
    blocks: list[tuple[str, str, np.ndarray]] = []
    for name, order in list(orders.items()) + [(f"random {r}", o) for r, o in enumerate(randoms)]:
        for kind in ("deletion", "insertion"):
            blocks.append((name, kind, curve_coalitions(order, counts, kind)))
    Z = np.concatenate([b[2] for b in blocks])
    Y, calls = predict_coalitions(run, Z, known, progress)
    y = Y[:, int(label)].astype(np.float64)
    area = np.bincount(run.segments.ravel(), minlength=m) / run.segments.size
    curves: dict[tuple[str, str], Curve] = {}
    at = 0
    for name, kind, rows in blocks:
        s = y[at : at + len(rows)]
        at += len(rows)
        shown = rows.astype(np.float64) @ area
        area_frac = 1.0 - shown if kind == "deletion" else shown
        fr = counts / m
        curves[(name, kind)] = Curve(kind, counts, fr, area_frac, s, auc(fr, s))

    def mean_curve(kind: str) -> Curve:
        parts = [curves[(f"random {r}", kind)] for r in range(len(randoms))]
        s = np.mean([c.scores for c in parts], axis=0)
        a = np.mean([c.area_fractions for c in parts], axis=0)
        return Curve(kind, counts, counts / m, a, s, auc(counts / m, s))

    return Faithfulness(
        label=int(label),
        deletion={n: curves[(n, "deletion")] for n in orders},
        insertion={n: curves[(n, "insertion")] for n in orders},
        random_deletion=mean_curve("deletion"),
        random_insertion=mean_curve("insertion"),
        model_calls=int(calls),
        coalitions=len(Z),
        distinct=len(set(_keys(Z))),
    )


# ----------------------------------------------------------------------------- convergence
def _fit_params(method: str, params: Any) -> Any:
    from explainers.base import make_params, methods

    refits = [n for n, s in methods().items() if s.refit is not None]
    if method not in refits:
        raise MetricsError(f"convergence is defined for {', '.join(refits)}, not {method!r}")
    params_type = methods()[method].params_type
    if isinstance(params, params_type):
        return params
    if dataclasses.is_dataclass(params):
        params = dataclasses.asdict(params)
    names = {f.name for f in dataclasses.fields(params_type)}
    return make_params(params_type, {k: v for k, v in dict(params or {}).items() if k in names})


def fit_weights(rows: Any, method: str, label: int, params: Any = None, seed: int = 0) -> np.ndarray:
    """Segment weights of ``method`` (one registered with ``refit``) fitted on ``rows`` (a ``Rows``)."""
    from explainers.base import get_method

    p = _fit_params(method, params)
    return np.asarray(get_method(method).refit(rows, int(label), p, seed))


@dataclass(frozen=True, eq=False)
class Convergence:
    """How a sampled estimate moves as rows are added (relative to the estimate on all rows)."""

    samples: np.ndarray  # (S,) row counts, the last one is the full estimate's
    rel_error: np.ndarray  # (S,) ‖w_n − w_N‖ / ‖w_N‖ (0 at N)
    rank_corr: np.ndarray  # (S,) Spearman(w_n, w_N) (1 at N)


def default_sizes(n: int, start: int = 25) -> list[int]:
    """25, 50, 100, … below ``n``, then ``n``."""
    sizes, s = [], int(start)
    while s < n:
        sizes.append(s)
        s *= 2
    return sizes + [int(n)]


def convergence(
    run: Any,
    method: str,
    label: int,
    params: Any = None,
    n: int | None = None,
    sizes: Sequence[int] | None = None,
    seed: int = 0,
) -> Convergence:
    """Re-fit ``method`` on the first rows of ``run`` (no model call) and compare with all ``n``."""
    n = int(run.n if n is None else min(int(n), run.n))
    if n < 4:
        raise MetricsError("convergence needs at least 4 perturbation rows")
    sizes = sorted({int(s) for s in (sizes or default_sizes(n)) if 4 <= int(s) <= n} | {n})
    full = fit_weights(run.rows(n), method, label, params, seed)
    norm = float(np.linalg.norm(full))
    errors, corrs = [], []
    for s in sizes:
        w = full if s == n else fit_weights(run.rows(s), method, label, params, seed)
        diff = float(np.linalg.norm(w - full))
        errors.append(diff / norm if norm > 0 else (0.0 if diff == 0 else float("inf")))
        corrs.append(rank_correlation(w, full))
    return Convergence(np.asarray(sizes), np.asarray(errors), np.asarray(corrs))


def bootstrap_std(
    run: Any,
    method: str,
    label: int,
    params: Any = None,
    n: int | None = None,
    rounds: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """Per-segment standard deviation of ``method``'s weights over bootstrap resamples of the rows.

    The two anchors (the image and the fully hidden image) stay; the sampled rows are drawn with
    replacement ``rounds`` times (``default_rng([seed, key])``). An exhaustive run has no
    sampling error: zeros. Each resample is fitted with the method's cheap form where it has one
    (``for_stability``: KernelSHAP without its surrogate, whose standard error is also the one
    reported for the adjusted values; a kernel fit per round cost 0.4 s, 50 rounds 20 s).
    """
    params = _fit_params(method, params)
    if hasattr(params, "for_stability"):
        params = params.for_stability()
    n = int(run.n if n is None else min(int(n), run.n))
    rows = run.rows(n)
    m = rows.num_segments
    if rows.exhaustive:  # these n rows are every coalition (not merely a run that holds them all)
        return np.zeros(m)
    if not 2 <= int(rounds) <= 10_000:
        raise MetricsError(f"bootstrap rounds must be between 2 and 10000, not {rounds}")
    if n < 4:
        raise MetricsError("the bootstrap needs at least 4 perturbation rows")
    rng = np.random.default_rng([int(seed), _BOOTSTRAP_KEY])
    draws = []
    for _ in range(int(rounds)):
        idx = np.concatenate([[0, 1], rng.integers(2, n, n - 2)])
        sub = dataclasses.replace(
            rows, Z=rows.Z[idx], Y=rows.Y[idx], lime_ratio=rows.lime_ratio[idx],
            shapley_weight=rows.shapley_weight[idx], log_q=rows.log_q[idx],
        )
        draws.append(fit_weights(sub, method, label, params, seed))
    return np.std(np.asarray(draws), axis=0, ddof=1)


# ----------------------------------------------------------------------------- stability
@dataclass(frozen=True, eq=False)
class Stability:
    """One method's maps under other seeds and on noisy copies, pooled on the same segments."""

    method: str
    seed_maps: tuple[np.ndarray, ...]  # K maps: seeds ctx.seed .. ctx.seed+K−1
    noise_maps: tuple[np.ndarray, ...]  # the ctx.seed map, then K−1 noisy copies
    seed_iou: float
    seed_rank_corr: float
    noise_iou: float
    noise_rank_corr: float


def noisy_image(image: np.ndarray, sigma: float, seed: int, copy: int) -> np.ndarray:
    """``image`` + N(0, sigma²) grey levels, rounded and clipped to uint8 (seeded per copy)."""
    rng = np.random.default_rng([int(seed), _NOISE_KEY, int(copy)])
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0.0, float(sigma), image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _sub_context(ctx: Any, key: tuple, image: np.ndarray, seed: int, samples: int,
                 share_segments: bool, share_run: bool, progress: ProgressFn | None) -> Any:
    """A context for a stability rerun, kept in ``ctx.cache`` so other labels reuse its calls."""
    from explainers.context import ExplainContext, SamplingParams

    sub = ctx.cache.get(key)
    if sub is None:
        sampling = SamplingParams(samples=int(samples), fill=ctx.sampling.fill,
                                  batch_size=ctx.sampling.batch_size)
        sub = ExplainContext(ctx.classifier, image, seed=seed, segmentation=ctx.segmentation,
                             segmentation_params=ctx.segmentation_params, sampling=sampling,
                             regions=getattr(ctx, "regions", None),  # your regions stay fixed
                             kernel_share=getattr(ctx, "kernel_share", None))
        if share_segments:
            sub.cache["segments"] = ctx.segments()
        if share_run and "perturbations" in ctx.cache:
            # Rows are drawn in seeded blocks: the first ``samples`` rows of the original run are
            # exactly what a fresh run with this seed and sample count would compute.
            sub.cache["perturbations"] = ctx.cache["perturbations"]
        ctx.cache[key] = sub
    sub.progress = progress
    return sub


NOISY_SEGMENTATION_COST = 32
"""Weight of re-segmenting a noisy copy, in model calls (quickshift ≈ a batch's time here)."""


def stability_plan(
    ctx: Any, names: Sequence[str], *, seeds: int, noise_sigma: float, samples: int,
    resegment: bool = True, method_calls: Mapping[str, int] | None = None,
) -> list[Any]:
    """The reruns ``stability`` will do, in order, as progress stages with words and weights.

    Weights are estimated model calls: the perturbation rows a rerun must compute (none for the
    first seed when the context's run already holds them), plus one run of every other method.
    """
    from explainers.base import get_method
    from explainers.progress import Stage

    k, n = int(seeds), int(samples)
    perturb = any(get_method(name).family == "perturbation" for name in names)
    others = sum(max(1, int((method_calls or {}).get(name, 1))) for name in names
                 if get_method(name).family != "perturbation")
    run = ctx.cache.get("perturbations")
    have = int(run.n) if run is not None else 0
    jobs = k + (k - 1 if float(noise_sigma) > 0 else 0)
    stages = []
    for i in range(k):
        rows = (max(0, n - have) if i == 0 else n) if perturb else 0
        what = "the original run" if i == 0 else "another random seed"
        stages.append(Stage(f"Checking stability ({len(stages) + 1} of {jobs}): {what}",
                            rows + others))
    if float(noise_sigma) > 0:
        for i in range(1, k):
            rows = n if perturb else 0
            seg = NOISY_SEGMENTATION_COST if resegment and perturb else 0
            stages.append(Stage(f"Checking stability ({len(stages) + 1} of {jobs}): the photo "
                                "with faint noise added", rows + others + seg))
    return stages


def stability(
    ctx: Any,
    methods: Mapping[str, Any],
    label: int,
    *,
    seeds: int = 3,
    noise_sigma: float = 3.0,
    top_n: int = 5,
    samples: int | None = None,
    resegment: bool = True,
    progress: ProgressFn | None = None,
    method_calls: Mapping[str, int] | None = None,
) -> dict[str, Stability]:
    """Re-run ``methods`` ({name: params}) under ``seeds`` seeds and on ``seeds − 1`` noisy copies.

    Seed run k uses a new context with seed ``ctx.seed + k`` sharing the classifier, the image,
    the segments and the sampling (with ``samples`` rows, default the context's); the first
    reuses the context's own perturbation rows. The noisy copies (σ = ``noise_sigma`` grey
    levels) are explained with ``ctx.seed`` and, when ``resegment``, their own superpixels (what a
    user re-running on that image would get); every map is pooled onto ``ctx.segments()``.
    ``seeds=1`` or ``noise_sigma=0`` skips that experiment (NaN scores). The extra contexts are
    kept in ``ctx.cache`` (another label reuses their model calls). ``samples`` above the rows of
    the context's run extends that run (LIME / KernelSHAP results keep using their own N rows).
    ``progress`` sees one fraction over all reruns (``explainers.progress``), each named in
    words; ``method_calls`` (name → model calls of one run) sharpens the reruns' weights.
    """
    from explainers.runner import run_method

    k = int(seeds)
    if not 1 <= k <= 20:
        raise MetricsError(f"seeds must be between 1 and 20, not {seeds}")
    sigma = float(noise_sigma)
    if not (np.isfinite(sigma) and 0 <= sigma <= 64):
        raise MetricsError(f"noise sigma must be between 0 and 64 grey levels, not {noise_sigma}")
    n = int(samples or ctx.sample_count())
    segments = ctx.segments()
    names = list(methods)
    seed_maps: dict[str, list[np.ndarray]] = {name: [] for name in names}
    noise_maps: dict[str, list[np.ndarray]] = {name: [] for name in names}
    jobs: list[tuple[str, int]] = [("seed", i) for i in range(k)]
    if sigma > 0:
        jobs += [("noise", i) for i in range(1, k)]

    from explainers.progress import StagedProgress

    plan = StagedProgress(stability_plan(ctx, names, seeds=k, noise_sigma=sigma, samples=n,
                                         resegment=resegment, method_calls=method_calls), progress)
    for j, (kind, i) in enumerate(jobs):
        plan.enter(j)
        if kind == "seed":
            sub = _sub_context(ctx, ("trust", "seed", ctx.seed + i, n), ctx.image, ctx.seed + i, n,
                               share_segments=True, share_run=(i == 0), progress=plan.stage(j))
        else:
            image = noisy_image(ctx.image, sigma, ctx.seed, i)
            sub = _sub_context(ctx, ("trust", "noise", sigma, i, n, bool(resegment)), image, ctx.seed,
                               n, share_segments=not resegment, share_run=False,
                               progress=plan.stage(j))
        for name in names:
            (result,) = run_method(sub, name, methods[name], [label])
            pooled = segment_scores(result, segments)
            (seed_maps if kind == "seed" else noise_maps)[name].append(pooled)
    out = {}
    for name in names:
        seeds_list = seed_maps[name]
        noise_list = [seeds_list[0]] + noise_maps[name] if noise_maps[name] else []
        s_iou, s_corr = mean_pairwise(seeds_list, top_n)
        n_iou, n_corr = mean_pairwise(noise_list, top_n)
        out[name] = Stability(name, tuple(seeds_list), tuple(noise_list), s_iou, s_corr, n_iou, n_corr)
    plan.finish("Stability checked")
    return out


# ----------------------------------------------------------------------------- ground truth
def check_mask(mask: Any, shape: Sequence[int]) -> np.ndarray:
    """A ground-truth mask as bool (H, W) matching ``shape``; MetricsError otherwise."""
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = arr[..., 0]
    if arr.shape != tuple(shape[:2]):
        raise MetricsError(
            f"the mask is {'×'.join(map(str, arr.shape))} but the image is {shape[0]}×{shape[1]}"
        )
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, (0, 1, 255))):
            raise MetricsError("the mask must be boolean (or 0/1, 0/255 values)")
        arr = arr > 0
    if not arr.any():
        raise MetricsError("the mask is empty: mark the object's pixels")
    return arr


def _at_mask(heatmap: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    from explainers.base import upsample

    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise MetricsError(f"a heatmap must be 2-D (H, W), got shape {heat.shape}")
    if heat.shape != tuple(shape):
        heat = upsample(heat, shape, "bilinear").astype(np.float64)
    if not np.all(np.isfinite(heat)):
        raise MetricsError("the heatmap contains NaN or infinite values")
    return heat


def pointing_game(heatmap: np.ndarray, mask: Any, tolerance: int = 0) -> bool:
    """Does the heatmap's maximum fall on the object (Zhang et al. 2016)?

    Hit when the maximal pixels lie (at least half of them, for the plateaus of superpixel maps)
    inside the mask grown by ``tolerance`` pixels. A constant map points nowhere: a miss.
    """
    mask = check_mask(mask, np.shape(mask)[:2])
    heat = _at_mask(heatmap, mask.shape)
    if int(tolerance) < 0:
        raise MetricsError(f"tolerance must be ≥ 0 pixels, not {tolerance}")
    if int(tolerance) > 0:
        from scipy.ndimage import binary_dilation
        from skimage.morphology import disk

        mask = binary_dilation(mask, structure=disk(int(tolerance)).astype(bool))
    peak = heat >= heat.max()
    if peak.all():
        return False
    return bool(mask[peak].mean() >= 0.5)


def mask_iou(heatmap: np.ndarray, mask: Any, top_fraction: float | None = None) -> float:
    """IoU of the heatmap's top pixels with the mask.

    Top pixels: those at or above the value of the ``top_fraction`` quantile from the top
    (default: the mask's own share of the image, so a perfect map scores 1); ties are included.
    """
    mask = check_mask(mask, np.shape(mask)[:2])
    heat = _at_mask(heatmap, mask.shape)
    frac = float(mask.mean()) if top_fraction is None else float(top_fraction)
    if not 0 < frac <= 1:
        raise MetricsError(f"top fraction must be in (0, 1], not {top_fraction}")
    k = max(1, int(round(frac * heat.size)))
    threshold = np.partition(heat.ravel(), heat.size - k)[heat.size - k]
    top = heat >= threshold
    return float((top & mask).sum() / (top | mask).sum())


def segments_mask_iou(scores: np.ndarray, segments: np.ndarray, mask: Any, top_n: int) -> float:
    """IoU of the union of the top-``top_n`` superpixels with the mask."""
    segments = _check_segments(segments)
    mask = check_mask(mask, segments.shape)
    top = np.isin(segments, ranking(scores)[: max(1, int(top_n))])
    return float((top & mask).sum() / (top | mask).sum())


__all__ = [
    "MetricsError", "refits_on_rows", "pool_to_segments", "segment_scores", "ranking",
    "top_n_iou", "expected_top_n_iou", "rank_correlation", "mean_pairwise", "Agreement", "agreement", "Curve",
    "step_counts", "curve_coalitions", "auc", "predict_coalitions", "Faithfulness", "faithfulness",
    "fit_weights", "Convergence", "default_sizes", "convergence", "bootstrap_std", "Stability",
    "noisy_image", "stability", "check_mask", "pointing_game", "mask_iou", "segments_mask_iou",
]
