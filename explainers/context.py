"""What one explanation request shares between methods: the image, its prediction, its
superpixels and the perturbation pass.

LIME and KernelSHAP (and the trust metrics) ask the context for ``perturbations()`` and get the
same ``PerturbationRun``, so running both costs one set of model calls. CAM methods share one
forward/backward through ``cache``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from explainers.base import Cancelled, ExplainerError, ProgressFn, params_dict

FILLS = ("mean", "blur", "gray", "black")


TIE_TOL = 1e-3
"""Regions within this fraction of the largest weight of the N-th one tie for the top N."""

AUTO = "auto"
"""``SamplingParams.samples`` value that grows the run until the top regions are stable."""


BUDGET_RANGE = (8, 100_000)
"""The sample budgets "auto" accepts (the form's bounds too)."""


@dataclass(frozen=True)
class SamplingParams:
    """Parameters of the shared perturbation pass (LIME, KernelSHAP, trust metrics).

    ``samples`` is a fixed number of perturbed images or ``"auto"`` (the default): the run grows
    in batches and each label stops as soon as the top-``top_n`` regions of every requested
    superpixel method are stable for it (expected top-N IoU with the converged answer ≥
    ``threshold``, see ``ExplainContext.stability``) or at ``budget`` images. Either way the results say how many samples they used and the stability
    reached (``Explanation.sampling``).
    """

    samples: int | str = AUTO
    fill: str = "mean"  # mean | blur | gray | black | #rrggbb
    batch_size: int = 32
    threshold: float = 0.8  # auto: expected top-N IoU at which the run stops
    budget: int = 4000  # auto: the most samples it may use
    top_n: int = 5  # regions whose stability is measured

    @property
    def auto(self) -> bool:
        return isinstance(self.samples, str) and self.samples.strip().lower() == AUTO

    def validate(self) -> None:
        if not self.auto:
            try:
                samples = int(self.samples)
            except (TypeError, ValueError):
                raise ExplainerError(f"samples must be a number or 'auto', not {self.samples!r}") from None
            if not 8 <= samples <= 100_000:
                raise ExplainerError("samples must be between 8 and 100000")
        if self.fill not in FILLS and not _is_hex_colour(self.fill):
            raise ExplainerError(
                f"fill must be one of {', '.join(FILLS)} or a colour like #808080, not {self.fill!r}"
            )
        if not 1 <= int(self.batch_size) <= 1024:
            raise ExplainerError("batch size must be between 1 and 1024")
        try:
            threshold, budget, top_n = float(self.threshold), int(self.budget), int(self.top_n)
        except (TypeError, ValueError):
            raise ExplainerError("threshold, budget and top_n must be numbers") from None
        if not 0.0 < threshold <= 1.0:
            raise ExplainerError(f"the stability threshold must be in (0, 1], not {self.threshold}")
        if not BUDGET_RANGE[0] <= budget <= BUDGET_RANGE[1]:
            raise ExplainerError(f"the sample budget must be between {BUDGET_RANGE[0]} and {BUDGET_RANGE[1]}, "
                                 f"not {self.budget}")
        if not 1 <= top_n <= 10_000:
            raise ExplainerError(f"top_n must be between 1 and 10000, not {self.top_n}")

    @property
    def target(self) -> int:
        """The fixed sample count, or the budget under auto (the most rows a request may use)."""
        return int(self.budget) if self.auto else int(self.samples)


def _is_hex_colour(value: str) -> bool:
    value = str(value)
    if len(value) != 7 or not value.startswith("#"):
        return False
    try:
        int(value[1:], 16)
    except ValueError:
        return False
    return True


class ExplainContext:
    """One image + one classifier + shared intermediate results for any number of methods."""

    def __init__(
        self,
        classifier: Any,
        image: np.ndarray,
        *,
        seed: int = 0,
        segmentation: str = "quickshift",
        segmentation_params: Any = None,
        sampling: SamplingParams | None = None,
        progress: ProgressFn | None = None,
        regions: np.ndarray | None = None,
        kernel_share: float | None = None,
    ) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ExplainerError(f"expected an RGB uint8 image (H, W, 3), got {image.shape} {image.dtype}")
        if classifier.input_size is not None and tuple(image.shape[:2]) != tuple(classifier.input_size):
            raise ExplainerError(
                f"the image is {image.shape[0]}×{image.shape[1]}; resize it to the model input "
                f"{classifier.input_size[0]}×{classifier.input_size[1]} first"
            )
        self.classifier = classifier
        self.image = image
        self.seed = int(seed)
        self.segmentation = segmentation
        self.segmentation_params = segmentation_params
        self.regions: np.ndarray | None = None
        if regions is not None:  # the user's own regions replace the superpixels
            from explainers.segmentation import USER_REGIONS, check_regions

            self.regions = check_regions(regions, image.shape[:2])
            self.segmentation = USER_REGIONS
            self.segmentation_params = None
        self.sampling = sampling or SamplingParams()
        self.sampling.validate()
        self.progress = progress
        self.cache: dict[Any, Any] = {}
        # λ of the shared design; None: chosen by ``plan`` from the requested methods (KernelSHAP
        # alone → 1, LIME alone → 0, both → perturbation.KERNEL_SHARE) when the run is created.
        self.kernel_share = None if kernel_share is None else float(kernel_share)
        self._targets: dict[str, Any] = {}  # perturbation methods the "auto" run must settle
        self._target_labels: set[int] = set()

    # -------------------------------------------------------------- shared results
    def probabilities(self) -> np.ndarray:
        """The model's probabilities for the unperturbed image (C,)."""
        if "probs" not in self.cache:
            self.cache["probs"] = self.classifier.predict(self.image[None])[0]
        return self.cache["probs"]

    def top_labels(self, k: int) -> list[int]:
        probs = self.probabilities()
        return [int(i) for i in np.argsort(-probs, kind="stable")[: max(1, int(k))]]

    def label_name(self, label: int) -> str:
        labels = self.classifier.labels
        return labels[label] if 0 <= label < len(labels) else f"class {label}"

    def segments(self) -> np.ndarray:
        """Superpixels of the image (H, W) int32, ids 0..M-1."""
        if "segments" not in self.cache and self.regions is not None:
            self.cache["segments"] = self.regions
        if "segments" not in self.cache:
            from explainers.segmentation import segment

            self.report(0, 1, "segmentation")  # skimage cannot report inside; cancel before it
            self.cache["segments"] = segment(
                self.image, self.segmentation, self.segmentation_params
            )
            self.report(1, 1, "segmentation")
        return self.cache["segments"]

    def plan(self, methods: Mapping[str, Any], labels: Sequence[int]) -> None:
        """Announce the superpixel methods and labels of a request before running them.

        Under ``samples="auto"`` each label's rows grow until *every* announced method is
        stable for it (so LIME and KernelSHAP of one request use the same rows per label), and
        while no run exists yet the design follows the methods: KernelSHAP alone puts every row
        where KernelSHAP needs it (λ = 1), LIME alone where LIME does (λ = 0).
        """
        from explainers.base import methods as registered

        specs = registered()  # the estimators fitted on the shared rows are registered with ``refit``
        chosen = {n: p for n, p in methods.items() if n in specs and specs[n].refit is not None}
        for name, params in chosen.items():
            self._targets[name] = params  # the latest request's parameters
        self._target_labels.update(int(x) for x in labels)
        if chosen and self.kernel_share is None and "perturbations" not in self.cache:
            from explainers.perturbation import KERNEL_SHARE

            shares = {specs[n].design_share for n in chosen}
            self.kernel_share = shares.pop() if len(shares) == 1 and None not in shares else KERNEL_SHARE

    def _run(self):
        """The shared ``PerturbationRun`` (created empty on first use)."""
        from explainers.perturbation import KERNEL_SHARE, PerturbationRun, design_sampler

        run = self.cache.get("perturbations")
        if run is None:
            if self.kernel_share is None:
                self.kernel_share = KERNEL_SHARE
            run = PerturbationRun(
                self.classifier.predict,
                self.image,
                self.segments(),
                fill=self.sampling.fill,
                seed=self.seed,
                batch_size=self.sampling.batch_size,
                kernel_share=self.kernel_share,
                sampler=design_sampler(self.kernel_share, auto=self.sampling.auto),
            )
            self.cache["perturbations"] = run
        return run

    def perturbations(self, samples: int | None = None):
        """The shared ``PerturbationRun``, extended to ``samples`` rows (default: the fixed count,
        or under "auto" the rows the stability rule settled on, at least 2)."""
        run = self._run()
        if samples is None:
            samples = (self._settled_samples() or 2) if self.sampling.auto else self.sampling.target
        self._extend(run, int(samples), self.progress)
        if run.n and "probs" not in self.cache:
            self.cache["probs"] = run.Y[0]  # row 0 is the unperturbed image: no extra call
        return run

    @staticmethod
    def _extend(run, samples: int, progress: ProgressFn | None) -> None:
        run.extend(samples, progress=progress)

    def perturbation_rows(self, method: str | None = None, params: Any = None,
                          labels: Sequence[int] = ()):
        """(run, {label: (rows, sampling)}, {label: new calls}) for LIME / KernelSHAP.

        ``rows``: exactly the first N rows of the shared run (a run extended earlier, e.g. by
        "more samples" or the trust metrics, must not change a result cached under a smaller N;
        the first N rows of a run are a fresh N-row run). N is the fixed count, or under "auto"
        *each label's own* stopping point: the rows at which every planned method (plus
        ``method``) became stable for that label, or the budget — so the top label's answer
        does not wait for (nor take its words from) a near-tied third label that never
        settles. ``sampling``: a ``SamplingInfo`` saying how that label's N was reached. The
        model calls this request added go to the labels that needed them: in order of N, each
        label is charged for the rows it needed beyond the labels before it (the rest of the
        calls, if any, to the label with the most rows), so they sum to the request's calls.
        """
        if method is not None:
            self._targets[method] = params
        wanted = [int(x) for x in labels] or sorted(self._target_labels) or [0]
        self._target_labels.update(wanted)
        before = self.perturbation_calls()
        start = int(self.cache["perturbations"].n) if "perturbations" in self.cache else 0
        if self.sampling.auto:
            infos = self._settle(wanted)
            run = self._run()
        else:
            run = self.perturbations()
            info = self._fixed_info(run)
            infos = {label: info for label in wanted}
        by_n: dict[int, Any] = {}
        out = {}
        for label in wanted:
            n = int(infos[label].samples)
            if n not in by_n:
                by_n[n] = run.rows(n)
            out[label] = (by_n[n], infos[label])
        return run, out, _charge_calls({label: int(infos[label].samples) for label in wanted},
                                       start, int(run.model_calls) - before)

    # -------------------------------------------------------------- "auto" samples
    def _labels_or_planned(self, labels: Sequence[int] | None) -> list[int]:
        return [int(x) for x in labels] if labels is not None else (sorted(self._target_labels) or [0])

    def stability(self, run, n: int, labels: Sequence[int] | None = None) -> tuple[float, dict[str, float], str]:
        """(stability, per method, rule): how settled the planned methods' top-N regions are on
        the first ``n`` rows, the minimum over methods and ``labels`` (default: the planned ones).

        Rule "expected": each method is fitted once on the ``n`` rows with its standard errors
        (``MethodSpec.refit_std``) and the stability is the expected top-N IoU with the answer
        the estimate converges to (``metrics.expected_top_n_iou``). Rule "split-half" (a
        method without standard errors, e.g. LIME's lasso or tree surrogate): see
        ``split_half_stability``. 1 when the rows are every coalition (exact estimates).

        The sandwich standard errors shrink when there are barely more complement pairs ``c``
        than regions ``M`` (the fit follows the rows: 64 rows on 35 regions gave "certain"), so
        the rule inflates them by √(c / (c − M)) (a degrees-of-freedom correction: ×1.4 at
        c = 2M, ×1.05 at c = 10M) and judges nothing with c ≤ M + 1 (stability 0).
        """
        from explainers.base import get_method
        from explainers.metrics import expected_top_n_iou

        if n >= run.max_rows:
            return 1.0, {name: 1.0 for name in self._targets}, "exhaustive"
        labels = self._labels_or_planned(labels)
        rows = run.rows(n)
        top = int(self.sampling.top_n)
        pairs, m = n // 2, int(run.num_segments)
        if pairs <= m + 1:
            return 0.0, {name: 0.0 for name in self._targets}, "expected"
        inflate = float(np.sqrt(pairs / (pairs - m)))
        per: dict[str, float] = {}
        for name, params in self._targets.items():
            spec = get_method(name)
            if hasattr(params, "for_stability"):  # e.g. KernelSHAP refits without its surrogate
                params = params.for_stability()
            values = []
            for label in labels:
                weights, std = (spec.refit_std(rows, label, params, self.seed)
                                if spec.refit_std is not None else (None, None))
                if std is None:
                    return (*self.split_half_stability(run, n, labels), "split-half")
                values.append(expected_top_n_iou(weights, np.asarray(std) * inflate, top,
                                                 seed=self.seed, tie_tol=TIE_TOL))
            per[name] = float(min(values))
        return (float(min(per.values())) if per else 1.0), per, "expected"

    def split_half_stability(self, run, n: int, labels: Sequence[int] | None = None) -> tuple[float, dict[str, float]]:
        """Min over the planned methods and ``labels`` (default: the planned ones) of the
        split-half top-N IoU on ``n`` rows.

        The complement pairs of the first ``n`` rows are dealt alternately into two halves (each
        a stratified design of its own, weighted by its own counts); each method is fitted on
        both and the IoU of their top-``top_n`` regions measures how much the ranking still
        depends on which rows were drawn. Two half-size estimates agree less than the full one
        would with a repeat of itself, so the rule errs towards more samples (the fallback for
        methods without standard errors). 1 when the rows are every coalition.
        """
        from explainers.metrics import fit_weights, top_n_iou

        if n >= run.max_rows:
            return 1.0, {name: 1.0 for name in self._targets}
        labels = self._labels_or_planned(labels)
        first, second = run.halves(n)
        top = int(self.sampling.top_n)
        per: dict[str, float] = {}
        for name, params in self._targets.items():
            if hasattr(params, "for_stability"):  # e.g. KernelSHAP refits without its surrogate
                params = params.for_stability()
            values = []
            for label in labels:
                a = fit_weights(first, name, label, params, self.seed)
                b = fit_weights(second, name, label, params, self.seed)
                values.append(top_n_iou(a, b, top, tie_tol=TIE_TOL))
            per[name] = float(min(values))
        return (float(min(per.values())) if per else 1.0), per

    def _fixed_info(self, run):
        from explainers.base import SamplingInfo

        n = min(self.sampling.target, run.n)
        return SamplingInfo(mode="fixed", samples=int(n), stability=None, threshold=None,
                            budget=None, top_n=int(self.sampling.top_n),
                            stopped="exhaustive" if n >= run.max_rows else "fixed")

    def _settle(self, labels: Sequence[int]) -> dict[int, Any]:
        """Each label's ``SamplingInfo``: grow the shared run along a fixed schedule of checks
        until every planned method is stable for the label (or the budget); memoised per label.

        The schedule (``step``, then +max(step, n/4)) does not depend on the labels, so a label
        stops at the same N whichever other labels are asked for, before or after it (a label
        added later is checked at the same points on rows that already exist: fits, no model
        calls).
        """
        from explainers.base import SamplingInfo

        sp = self.sampling
        key = (tuple(sorted((n, repr(p)) for n, p in self._targets.items())),
               float(sp.threshold), int(sp.budget), int(sp.top_n))
        if self.cache.get("auto_key") != key:
            self.cache["auto_key"] = key
            self.cache["auto"] = {}
        settled: dict[int, Any] = self.cache["auto"]
        pending = [int(x) for x in dict.fromkeys(labels) if int(x) not in settled]
        if pending:
            run = self._run()
            budget = min(int(sp.budget), run.max_rows)
            step = max(4 * int(sp.batch_size), 4 * run.num_segments)  # a half needs rows per size and segment
            history: dict[int, list[tuple[int, float]]] = {label: [] for label in pending}
            outer = self.progress
            n = min(budget, step)
            while pending:
                start = run.n

                def progress(done: int, total: int, stage: str, _start=start) -> None:
                    if outer is not None:
                        outer(min(_start + done, budget), budget, "perturbation (auto)")

                if n > run.n:
                    self._extend(run, n, progress)
                n = min(n, run.n)
                for label in list(pending):
                    stability, per, rule = self.stability(run, n, [label])
                    history[label].append((n, stability))
                    if n >= run.max_rows:
                        stopped = "exhaustive"
                    elif stability >= float(sp.threshold):
                        stopped = "stable"
                    elif n >= budget:
                        stopped = "budget"
                    else:
                        continue
                    settled[label] = SamplingInfo(
                        mode="auto", samples=int(n), stability=float(stability),
                        threshold=float(sp.threshold), budget=int(sp.budget), top_n=int(sp.top_n),
                        stopped=stopped, per_method=per, history=tuple(history[label]), rule=rule)
                    pending.remove(label)
                n = min(budget, n + max(step, n // 4))
            if "probs" not in self.cache:
                self.cache["probs"] = run.Y[0]
        return {int(label): settled[int(label)] for label in labels}

    def sample_count(self) -> int:
        """The samples a request uses: the fixed count, or under "auto" the most any settled
        label used (the budget before anything settled)."""
        if not self.sampling.auto:
            return int(self.sampling.samples)
        return self._settled_samples() or int(self.sampling.budget)

    def _settled_samples(self) -> int:
        """The most rows any label settled on under "auto" (0 before any did)."""
        return max((int(i.samples) for i in (self.cache.get("auto") or {}).values()), default=0)

    def coalition_cache(self, fill: str, segments: np.ndarray | None = None, key: Any = "superpixels"):
        """The shared ``CoalitionCache`` of (``key``, ``fill``): coalitions any method evaluated before
        cost nothing. ``segments`` default to the superpixels; with those and the shared fill, the
        rows of the shared perturbation run are looked up too."""
        from explainers.perturbation import CoalitionCache

        cache_key = ("coalitions", key, fill)
        cache = self.cache.get(cache_key)
        if cache is None:
            superpixels = segments is None
            segments = self.segments() if superpixels else segments
            cache = CoalitionCache(
                self.classifier.predict, self.image, segments, fill,
                batch_size=self.sampling.batch_size, full=self.cache.get("probs"),
            )
            self.cache[cache_key] = cache
        if key == "superpixels" and fill == self.sampling.fill and cache.shared_run is None:
            cache.shared_run = self.cache.get("perturbations")  # None until LIME/KernelSHAP ran
        return cache

    def perturbation_calls(self) -> int:
        """Images the shared perturbation run has sent to the model so far (0 before it exists)."""
        run = self.cache.get("perturbations")
        return int(run.model_calls) if run is not None else 0

    def report(self, done: int, total: int, stage: str) -> None:
        """Forward progress to the caller's callback (which may raise ``Cancelled``)."""
        if self.progress is not None:
            self.progress(done, total, stage)


def _charge_calls(rows: Mapping[int, int], start: int, new_calls: int) -> dict[int, int]:
    """Split a request's new model calls over its labels: in order of their row counts, each
    label pays for its rows beyond ``start`` and the labels before it; what is left (none, one
    call per row) goes to the label with the most rows, so the parts sum to ``new_calls``."""
    calls = {label: 0 for label in rows}
    covered = start
    for label in sorted(rows, key=rows.__getitem__):
        calls[label] = min(max(0, rows[label] - covered), new_calls - sum(calls.values()))
        covered = max(covered, rows[label])
    if rows:
        calls[max(rows, key=rows.__getitem__)] += new_calls - sum(calls.values())
    return calls


def resolve_labels(ctx: ExplainContext, labels: Sequence[int] | None, top_k: int = 1) -> list[int]:
    """Explicit labels (validated) or the top-k predicted ones."""
    if labels is None:
        return ctx.top_labels(top_k)
    out = []
    for label in labels:
        label = int(label)
        if not 0 <= label < ctx.classifier.num_classes:
            raise ExplainerError(
                f"label {label} is out of range; the model has {ctx.classifier.num_classes} classes"
            )
        out.append(label)
    return out


__all__ = ["ExplainContext", "SamplingParams", "AUTO", "resolve_labels", "shared_params", "contrast_extras",
           "Cancelled", "FILLS"]


def shared_params(ctx, run, n_rows: int | None = None) -> dict:
    """The settings of the shared perturbation pass, recorded with every explanation."""
    from explainers.segmentation import resolve_params

    return {
        "seed": ctx.seed,
        "samples": int(n_rows if n_rows is not None else run.n),
        "requested_samples": ctx.sampling.samples if ctx.sampling.auto else int(ctx.sampling.samples),
        "exhaustive": bool((run.n if n_rows is None else n_rows) >= run.max_rows),
        "fill": run.fill,
        "segmentation": ctx.segmentation,
        "segmentation_params": params_dict(resolve_params(ctx.segmentation, ctx.segmentation_params)),
        "num_segments": int(run.num_segments),
    }


def contrast_extras(ctx, scores, contrast: int | None) -> dict:
    """What a contrast result records besides ``Explanation.contrast``: B's name and score."""
    if contrast is None:
        return {}
    return {"contrast_name": ctx.label_name(int(contrast)), "contrast_score": float(scores[int(contrast)])}
