"""One trust report per label: faithfulness, stability, agreement, convergence, ground truth.

``trust_report(ctx, results_or_methods, label)`` takes explanations already computed on ``ctx``
(or method names, run on ``ctx`` first) and measures them with ``explainers.metrics``, reusing
everything the context holds: the perturbation rows (deletion / insertion curves, convergence
and the bootstrap cost no model call where the rows exist), the segments and the CAM passes.
The stability reruns are the expensive part (``seeds − 1`` perturbation runs for the seeds and
as many for the noisy copies, shared by LIME and KernelSHAP); ``stability_samples`` caps them.
Every extra context is kept in ``ctx.cache``, so a report for another label of the same image
costs only the few model calls of its curves.

``model_calls`` in the report is the *extra* cost of the metrics: the change of
``classifier.images_seen`` while they ran (explanations run on request are counted apart, in
``explain_calls``). ``badges`` turns a report into short sentences for the UI, ``to_json`` into
plain JSON types for the CLI.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from explainers import metrics as M
from explainers.base import Explanation, ExplainerError, ProgressFn, Timer, get_method, make_params
from explainers.progress import Stage, StagedProgress


@dataclass(frozen=True, eq=False)
class MethodTrust:
    """Every trust metric of one method for one label (None where it does not apply)."""

    method: str
    score: float  # the model's probability of the label
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    stability_iou: float | None
    stability_rank_corr: float | None
    noise_iou: float | None
    noise_rank_corr: float | None
    r2: float | None
    convergence: M.Convergence | None
    uncertainty: np.ndarray | None  # (M,) bootstrap std of each segment weight (of the cheap fit: see metrics.bootstrap_std)
    pointing_hit: bool | None
    mask_iou: float | None
    segment_scores: np.ndarray  # (M,) the map on the context's superpixels


@dataclass(frozen=True, eq=False)
class TrustReport:
    """``trust_report``'s result: per-method rows, agreement matrices and the curves to plot."""

    label: int
    label_name: str
    methods: tuple[MethodTrust, ...]
    agreement: M.Agreement
    curves: M.Faithfulness
    stability: Mapping[str, M.Stability]
    segments: np.ndarray
    model_calls: int  # extra images the metrics sent to the model
    explain_calls: int  # images spent running methods given by name (not in model_calls)
    seconds: float
    settings: Mapping[str, Any] = field(default_factory=dict)
    sanity: Any = None  # explainers.sanity.SanityReport when asked for

    def row(self, method: str) -> MethodTrust:
        for r in self.methods:
            if r.method == method:
                return r
        raise ExplainerError(f"the report has no method {method!r}")


def _calls(classifier: Any) -> int:
    return int(getattr(classifier, "images_seen", 0))


def method_params(result: Explanation) -> Any:
    """The parameter dataclass a result was computed with (its recorded params, own fields only)."""
    spec = get_method(result.method)
    names = {f.name for f in dataclasses.fields(spec.params_type)}
    return make_params(spec.params_type, {k: v for k, v in dict(result.params).items() if k in names})


def _as_items(given: Any) -> list[tuple[Any, Any]]:
    if isinstance(given, (str, Explanation)):
        given = [given]
    return list(given.items()) if isinstance(given, Mapping) else [(g, None) for g in given]


def _other_calls(results: Sequence[Explanation]) -> dict[str, int]:
    """Model calls of one run of each method outside the shared perturbation rows."""
    return {r.method: int(r.model_calls) for r in results if not M.refits_on_rows(r.method)}


def _trust_plan(ctx: Any, given: Any, label: int, *, seeds: int, noise_sigma: float, steps: int,
                random_orders: int, samples: int, resegment: bool,
                sanity_calls: int = 0) -> list[Stage]:
    """The stages of ``trust_report`` in words, weighted by estimated model calls."""
    items = _as_items(given)
    names = [i.method if isinstance(i, Explanation) else i for i, _ in items
             if not isinstance(i, Explanation) or i.label == label]
    names = [n for n in dict.fromkeys(names) if isinstance(n, str)]
    named = [i for i, _ in items if isinstance(i, str)]
    perturb = [n for n in named if get_method(n).family == "perturbation"]
    explain_cost = (ctx.sample_count() if perturb and "perturbations" not in ctx.cache else 0)
    explain_cost += len(named) - len(perturb)
    curves = 2 * (int(steps) + 1) * (len(names) + int(random_orders))
    calls = _other_calls([i for i, _ in items if isinstance(i, Explanation)])
    stab = sum(s.weight for s in M.stability_plan(
        ctx, names, seeds=seeds, noise_sigma=noise_sigma, samples=samples, resegment=resegment,
        method_calls=calls))
    total = explain_cost + curves + stab + sanity_calls
    return [
        Stage("Explaining the label", explain_cost),
        Stage("Covering the most important regions first (deletion and insertion curves)", curves),
        Stage("Checking stability", stab),
        Stage("Checking convergence and the ground truth", max(1.0, 0.02 * total)),
        Stage("Randomising the model's weights layer by layer (sanity check)", float(sanity_calls)),
    ]


def _resolve_results(
    ctx: Any, given: Sequence[Explanation | str] | Mapping[str, Any], label: int,
    progress: ProgressFn | None = None,
) -> list[Explanation]:
    from explainers.runner import run_method

    items = _as_items(given)
    out: list[Explanation] = []
    saved = ctx.progress
    for item, params in items:
        if isinstance(item, Explanation):
            if item.label == label:
                out.append(item)
        elif isinstance(item, str):
            ctx.progress = progress
            try:
                out.extend(run_method(ctx, item, params, [label]))
            finally:
                ctx.progress = saved
        else:
            raise ExplainerError(f"expected explanations or method names, got {type(item).__name__}")
    if not out:
        raise ExplainerError(f"no explanation of label {label} to assess")
    names = [r.method for r in out]
    if len(set(names)) != len(names):
        raise ExplainerError(f"each method may appear once in a trust report, got {', '.join(names)}")
    return out


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def trust_report(
    ctx: Any,
    results_or_methods: Sequence[Explanation | str] | Mapping[str, Any],
    label: int,
    *,
    seeds: int = 3,
    noise_sigma: float = 3.0,
    top_n: int = 5,
    steps: int = 16,
    mask: Any = None,
    progress: ProgressFn | None = None,
    stability_samples: int | None = None,
    random_orders: int = 3,
    bootstrap: int = 50,
    pointing_tolerance: int = 0,
    resegment_noisy: bool = True,
    sanity: bool = False,
    sanity_steps: int = 5,
    sanity_samples: int | None = None,
) -> TrustReport:
    """Measure how far the explanations of ``label`` on ``ctx`` can be trusted.

    ``results_or_methods``: explanations computed on ``ctx`` (other labels are ignored), method
    names, or {name: params}. ``seeds`` maps per method for the seed stability (and ``seeds − 1``
    noisy copies with σ = ``noise_sigma`` grey levels); ``top_n`` regions for every IoU;
    ``steps`` points per deletion / insertion curve; ``mask`` an optional bool (H, W) object mask
    for the pointing game and mask IoU; ``stability_samples`` the perturbation rows per rerun
    (default min(context samples, 500)). ``progress(done, total, words)`` sees one fraction of
    the whole computation (``done`` never decreases, ``total`` is fixed) with the stage in words;
    feed it to ``explainers.progress.EtaEstimator`` for an ETA that settles. ``sanity``: also the
    cascading weight randomisation of ``explainers.sanity`` (``sanity_steps`` points,
    ``sanity_samples`` rows per superpixel rerun; its model calls go to a copy of the model and
    are counted in ``model_calls``).
    """
    label = int(label)
    if not 0 <= label < ctx.classifier.num_classes:
        raise ExplainerError(f"label {label} is out of range; the model has {ctx.classifier.num_classes} classes")
    if not 1 <= int(top_n) <= 10_000:
        raise ExplainerError(f"top_n must be between 1 and 10000, not {top_n}")
    if not 2 <= int(bootstrap) <= 10_000:
        raise ExplainerError(f"bootstrap rounds must be between 2 and 10000, not {bootstrap}")
    gt = M.check_mask(mask, ctx.image.shape[:2]) if mask is not None else None
    stab_n = int(stability_samples or min(ctx.sample_count(), 500))
    if not 8 <= stab_n <= 100_000:
        raise ExplainerError(f"stability samples must be between 8 and 100000, not {stability_samples}")

    san_n = int(sanity_samples or min(ctx.sample_count(), 300))
    n_methods = len(results_or_methods) if not isinstance(results_or_methods, (str, Explanation)) else 1
    plan = StagedProgress(
        _trust_plan(ctx, results_or_methods, label, seeds=seeds, noise_sigma=noise_sigma,
                    steps=steps, random_orders=random_orders, samples=stab_n,
                    resegment=resegment_noisy,
                    sanity_calls=int(sanity_steps) * san_n * n_methods if sanity else 0),
        progress,
    )

    with Timer() as timer:
        before = _calls(ctx.classifier)
        if plan.stages[0].weight > 0:
            plan.enter(0)
        results = _resolve_results(ctx, results_or_methods, label, progress=plan.stage(0))
        explain_calls = _calls(ctx.classifier) - before
        start = _calls(ctx.classifier)
        segments = ctx.segments()
        scores = {r.method: M.segment_scores(r, segments) for r in results}

        # deletion / insertion, on the context's own run (rows reused) or a render-only one
        plan.enter(1)
        run = ctx.cache.get("perturbations")
        if run is None:
            from explainers.perturbation import PerturbationRun

            run = PerturbationRun(ctx.classifier.predict, ctx.image, segments, fill=ctx.sampling.fill,
                                  seed=ctx.seed, batch_size=ctx.sampling.batch_size)
        # the context's coalition cache: curves reuse what Partition SHAP evaluated, and back
        known = ctx.coalition_cache(run.fill).known
        faith = M.faithfulness(run, scores, label, steps=steps, random_orders=random_orders,
                               seed=ctx.seed, known=known, progress=plan.stage(1))

        stab = M.stability(ctx, {r.method: method_params(r) for r in results}, label, seeds=seeds,
                           noise_sigma=noise_sigma, top_n=top_n, samples=stab_n,
                           resegment=resegment_noisy, progress=plan.stage(2, pass_words=True),
                           method_calls=_other_calls(results))

        rows = []
        converge = plan.stage(3)
        for i, r in enumerate(results):
            converge(i, len(results))
            conv = unc = None
            if M.refits_on_rows(r.method) and "perturbations" in ctx.cache:
                prun = ctx.cache["perturbations"]
                n = int(r.params.get("samples", prun.n))
                params = method_params(r)
                conv = M.convergence(prun, r.method, label, params, n=n, seed=ctx.seed)
                unc = M.bootstrap_std(prun, r.method, label, params, n=n, rounds=bootstrap, seed=ctx.seed)
            hit = miou = None
            if gt is not None:
                hit = M.pointing_game(r.heatmap, gt, pointing_tolerance)
                miou = M.mask_iou(r.heatmap, gt)
            s = stab[r.method]
            rows.append(MethodTrust(
                method=r.method,
                score=float(r.score),
                deletion_auc=faith.deletion[r.method].auc,
                insertion_auc=faith.insertion[r.method].auc,
                random_deletion_auc=faith.random_deletion.auc,
                random_insertion_auc=faith.random_insertion.auc,
                stability_iou=_finite(s.seed_iou),
                stability_rank_corr=_finite(s.seed_rank_corr),
                noise_iou=_finite(s.noise_iou),
                noise_rank_corr=_finite(s.noise_rank_corr),
                r2=None if r.r2 is None else float(r.r2),
                convergence=conv,
                uncertainty=unc,
                pointing_hit=hit,
                mask_iou=miou,
                segment_scores=scores[r.method],
            ))
        agree = M.agreement(scores, top_n)
        extra = _calls(ctx.classifier) - start
        san = None
        if sanity:
            from explainers.sanity import cascading_randomization

            plan.enter(4)
            san = cascading_randomization(ctx, {r.method: method_params(r) for r in results}, label,
                                          steps=sanity_steps, samples=san_n, originals=results,
                                          progress=plan.stage(4))
            extra += san.model_calls
        plan.finish("Trust measured")
    return TrustReport(
        label=label,
        label_name=ctx.label_name(label),
        methods=tuple(rows),
        agreement=agree,
        curves=faith,
        stability=stab,
        segments=segments,
        model_calls=int(extra),
        explain_calls=int(explain_calls),
        seconds=timer.seconds,
        sanity=san,
        settings={
            "seed": ctx.seed, "seeds": int(seeds), "noise_sigma": float(noise_sigma),
            "top_n": int(top_n), "steps": int(steps), "stability_samples": stab_n,
            "random_orders": int(random_orders), "bootstrap": int(bootstrap),
            "pointing_tolerance": int(pointing_tolerance), "resegment_noisy": bool(resegment_noisy),
            "samples": ctx.sample_count(), "sampling": ctx.sampling.samples, "fill": ctx.sampling.fill,
            "segmentation": ctx.segmentation, "num_segments": int(run.num_segments),
            "sanity": bool(sanity), "sanity_steps": int(sanity_steps),
        },
    )


# ----------------------------------------------------------------------------- badges
FAITHFUL_GAIN = 0.25
"""Deletion AUC at least this fraction below the random order's: "faithful"."""
NO_GAIN = 0.05
"""Deletion AUC less than this fraction below random: "no better than random"."""
STABLE_IOU = 0.8
UNSTABLE_IOU = 0.5
LOW_R2 = 0.5
"""Below this R² a surrogate explains too little of the model: the one low-fit threshold (badges, trust)."""
CONVERGED_ERROR = 0.1
UNCONVERGED_ERROR = 0.3


def badge_list(report: TrustReport) -> dict[str, list[str]]:
    """Short verdicts per method, most important first (thresholds are the constants above)."""
    out: dict[str, list[str]] = {}
    for r in report.methods:
        b: list[str] = []
        top = max(float(report.curves.deletion[r.method].scores.max()), 1e-12)
        rand = r.random_deletion_auc
        if top < 0.05:
            b.append("score too low to judge faithfulness")
        elif rand > 0:
            gain = (rand - r.deletion_auc) / rand
            if gain >= FAITHFUL_GAIN:
                b.append("faithful: deletion drops the score fast")
            elif gain <= NO_GAIN:
                b.append("not faithful: hiding its top regions hurts no more than random")
            else:
                b.append(f"weakly faithful: deletion only {gain:.0%} below random")
        if r.stability_iou is not None:
            corr = r.stability_rank_corr
            if r.stability_iou >= STABLE_IOU and (corr is None or corr >= STABLE_IOU):
                b.append("stable across seeds")
            elif r.stability_iou < UNSTABLE_IOU:
                b.append("unstable: top regions change with the seed")
            else:
                b.append(f"partly stable across seeds (top-region overlap {r.stability_iou:.2f})")
        if r.noise_iou is not None:
            if r.noise_iou >= STABLE_IOU:
                b.append("robust to image noise")
            elif r.noise_iou < UNSTABLE_IOU:
                b.append("fragile: invisible noise changes the top regions")
            else:
                b.append(f"partly robust to image noise (overlap {r.noise_iou:.2f})")
        if r.r2 is not None and r.r2 < LOW_R2:
            b.append(f"low fit R² {r.r2:.2f}")
        if r.convergence is not None and len(r.convergence.samples) > 1:
            n = r.convergence.samples[-1]
            half = [i for i, s in enumerate(r.convergence.samples) if s <= n // 2]
            if half:
                err = float(r.convergence.rel_error[half[-1]])
                if err > UNCONVERGED_ERROR:
                    b.append(
                        f"not converged: with {r.convergence.samples[half[-1]]} samples the "
                        f"weights differ by {err:.0%}"
                    )
                elif err <= CONVERGED_ERROR:
                    b.append("converged in samples")
        if r.pointing_hit is not None:
            b.append("points at the object" if r.pointing_hit else "misses the object")
        san = report.sanity.methods.get(r.method) if report.sanity is not None else None
        if san is not None:
            from explainers.sanity import sanity_badges

            verdict = sanity_badges(report.sanity)[r.method]
            if san.passes:
                b.append(verdict)
            else:  # the most important verdict of all: first
                b.insert(0, verdict)
        out[r.method] = b
    return out


def badges(report: TrustReport) -> dict[str, str]:
    """One line of verdicts per method, e.g. "faithful: … · stable across seeds · low fit R² 0.31"."""
    return {m: " · ".join(b) for m, b in badge_list(report).items()}


# ----------------------------------------------------------------------------- JSON
def _num(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    x = float(x)
    return x if np.isfinite(x) else None


def _nums(a: Any) -> Any:
    if a is None:
        return None
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        return _num(arr)
    return [_nums(v) for v in arr]


def to_json(report: TrustReport) -> dict[str, Any]:
    """The report as plain JSON types (NaN → null): label, model_calls, methods, agreement."""
    methods = []
    for r in report.methods:
        conv = None
        if r.convergence is not None:
            conv = {
                "samples": [int(s) for s in r.convergence.samples],
                "rel_error": _nums(r.convergence.rel_error),
                "rank_corr": _nums(r.convergence.rank_corr),
            }
        methods.append({
            "method": r.method,
            "score": _num(r.score),
            "deletion_auc": _num(r.deletion_auc),
            "insertion_auc": _num(r.insertion_auc),
            "random_deletion_auc": _num(r.random_deletion_auc),
            "random_insertion_auc": _num(r.random_insertion_auc),
            "stability_iou": _num(r.stability_iou),
            "stability_rank_corr": _num(r.stability_rank_corr),
            "noise_iou": _num(r.noise_iou),
            "noise_rank_corr": _num(r.noise_rank_corr),
            "r2": _num(r.r2),
            "convergence": conv,
            "uncertainty": _nums(r.uncertainty),
            "pointing_hit": _num(r.pointing_hit),
            "mask_iou": _num(r.mask_iou),
        })
    return {
        "label": int(report.label),
        "model_calls": int(report.model_calls),
        "methods": methods,
        "agreement": {
            "methods": list(report.agreement.methods),
            "rank_corr": _nums(report.agreement.rank_corr),
            "top_iou": _nums(report.agreement.top_iou),
        },
        **({"sanity": report.sanity.to_json()} if report.sanity is not None else {}),
    }


JSON_METHOD_KEYS = (
    "method", "score", "deletion_auc", "insertion_auc", "random_deletion_auc",
    "random_insertion_auc", "stability_iou", "stability_rank_corr", "noise_iou",
    "noise_rank_corr", "r2", "convergence", "uncertainty", "pointing_hit", "mask_iou",
)
"""The keys of each entry of ``to_json(report)["methods"]``, in order."""

__all__ = [
    "MethodTrust", "TrustReport", "trust_report", "method_params", "badge_list", "badges",
    "to_json", "JSON_METHOD_KEYS",
]
