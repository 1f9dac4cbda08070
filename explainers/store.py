"""The run store: a bounded, thread-safe memo of explanation contexts, results and trust reports.

No Streamlit here: the dashboard keeps one instance per process (``ui.services.store``) so all
sessions share it; scripts and tests can make their own. Keys are built from the request
(``RunRequest``), never from arrays, and progress callbacks are never part of a key.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from explainers.base import Explanation, get_method
from explainers.context import ExplainContext, SamplingParams


@dataclass(frozen=True)
class PreparedImage:
    """The image at the model's input size, plus how to map coordinates back to the file."""

    pixels: np.ndarray
    fitted: Any
    key: str  # sha256 of the original bytes + resize policy


def freeze(value: Any) -> Any:
    """A hashable, order-independent form of params/settings (dicts, dataclasses, lists) for cache keys."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class RunRequest:
    """Everything that determines an explanation run (and therefore its cache key)."""

    methods: tuple[tuple[str, Any], ...]  # (name, frozen params)
    labels: tuple[int, ...]
    seed: int = 0
    samples: int | str = "auto"  # a count, or "auto": grow until stable (threshold) or the budget
    fill: str = "mean"
    segmentation: str = "quickshift"
    segmentation_params: Any = ()
    threshold: float = SamplingParams.threshold  # auto: expected top-N overlap at which sampling stops
    budget: int = SamplingParams.budget  # auto: the most samples

    def sampling(self, fill: str | None = None) -> SamplingParams:
        return SamplingParams(samples=self.samples, fill=fill or self.fill, threshold=float(self.threshold),
                              budget=int(self.budget))

    def design(self) -> frozenset:
        """The superpixel estimators of the request: the shared design follows them (λ)."""
        from explainers.metrics import refits_on_rows

        return frozenset(n for n, _ in self.methods if refits_on_rows(n))

    def method_params(self, name: str) -> dict[str, Any]:
        for n, params in self.methods:
            if n == name:
                return dict(params)
        return {}


def _params(name: str, req: RunRequest) -> Any:
    from explainers.base import make_params

    return make_params(get_method(name).params_type, req.method_params(name))


class ExplanationStore:
    """Bounded, thread-safe memo of explanation contexts and results shared by all sessions."""

    def __init__(self, max_contexts: int = 6, max_results: int = 400) -> None:
        self._lock = threading.Lock()
        self._contexts: OrderedDict[Any, tuple[ExplainContext, threading.Lock]] = OrderedDict()
        self._results: OrderedDict[Any, list[Explanation]] = OrderedDict()
        self._probs: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._regions: OrderedDict[str, np.ndarray] = OrderedDict()
        self.max_contexts = max_contexts
        self.max_results = max_results

    def clear(self) -> None:
        with self._lock:
            self._contexts.clear()
            self._results.clear()
            self._probs.clear()

    def add_regions(self, key: str, segments: np.ndarray) -> None:
        """Remember a user's region map (fitted to the model input) under ``key``; a request
        with ``segmentation="regions"`` and ``segmentation_params={"key": key}`` uses it."""
        with self._lock:
            self._regions[key] = np.asarray(segments)
            self._regions.move_to_end(key)
            while len(self._regions) > 16:
                self._regions.popitem(last=False)

    def _regions_for(self, req: RunRequest) -> np.ndarray | None:
        from explainers.base import ExplainerError
        from explainers.segmentation import USER_REGIONS

        if req.segmentation != USER_REGIONS:
            return None
        found = self._regions.get(str(dict(req.segmentation_params).get("key", "")))
        if found is None:
            raise ExplainerError("the region map is no longer loaded; upload it again")
        return found

    def probabilities(self, classifier: Any, image: PreparedImage) -> np.ndarray:
        key = (classifier.id, image.key)
        with self._lock:
            if key in self._probs:
                self._probs.move_to_end(key)
                return self._probs[key]
        probs = classifier.predict(image.pixels[None])[0]
        with self._lock:
            self._probs[key] = probs
            while len(self._probs) > 64:
                self._probs.popitem(last=False)
        return probs

    def _context(self, classifier: Any, image: PreparedImage, req: RunRequest):
        # The design (λ) follows the request's superpixel methods, so a result never depends on
        # which request created the context.
        key = (classifier.id, image.key, req.seed, req.fill, req.segmentation, req.segmentation_params,
               req.design())
        with self._lock:
            if key in self._contexts:
                self._contexts.move_to_end(key)
                return self._contexts[key]
            regions = self._regions_for(req)
            ctx = ExplainContext(
                classifier, image.pixels, seed=req.seed, segmentation=req.segmentation,
                segmentation_params=None if regions is not None else (dict(req.segmentation_params) or None),
                sampling=req.sampling(), regions=regions,
            )
            ctx.cache["probs"] = self._probs.get((classifier.id, image.key))
            if ctx.cache["probs"] is None:
                del ctx.cache["probs"]
            entry = (ctx, threading.Lock())
            self._contexts[key] = entry
            while len(self._contexts) > self.max_contexts:
                self._contexts.popitem(last=False)
            return entry

    def lookup(self, classifier: Any, image: PreparedImage, req: RunRequest, name: str) -> list[Explanation] | None:
        key = self._result_key(classifier, image, req, name)
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self._results.move_to_end(key)
            return found

    def _result_key(self, classifier: Any, image: PreparedImage, req: RunRequest, name: str) -> Any:
        samples = None
        if get_method(name).family == "perturbation":
            samples = (req.samples, req.threshold, req.budget, req.design()) if req.samples == "auto" else req.samples
        return (classifier.id, image.key, name, freeze(req.method_params(name)), req.labels,
                req.seed, req.fill, req.segmentation, req.segmentation_params, samples)

    def compute(
        self, classifier: Any, image: PreparedImage, req: RunRequest, name: str,
        progress: Callable[[int, int, str], None] | None = None,
        keep: Sequence[Explanation] = (),
    ) -> list[Explanation]:
        """Cached result or a fresh run (sharing the context's perturbation pass).

        ``keep``: results already computed for some of the labels by a request for them alone
        (the label on screen first). They replace the same labels' results of this run, in the
        cache too: the maps are the same (a label's rows do not depend on the others), but only
        the first results carry the model calls they made; this run charged those labels nothing.
        """
        found = self.lookup(classifier, image, req, name)
        if found is not None:
            return self._kept(classifier, image, req, name, found, keep)
        from explainers.runner import run_method

        ctx, ctx_lock = self._context(classifier, image, req)
        with ctx_lock:
            ctx.sampling = req.sampling(ctx.sampling.fill)
            # "auto" settles every superpixel method of the request together, whichever runs first
            ctx.plan({n: _params(n, req) for n in req.design()}, req.labels)
            ctx.progress = progress
            try:
                results = run_method(ctx, name, req.method_params(name), list(req.labels))
            finally:
                ctx.progress = None
        return self._kept(classifier, image, req, name, results, keep, fresh=True)

    def _kept(self, classifier: Any, image: PreparedImage, req: RunRequest, name: str,
              results: list[Explanation], keep: Sequence[Explanation], fresh: bool = False) -> list[Explanation]:
        mine = {r.label: r for r in keep}
        merged = [mine.get(r.label, r) for r in results]
        if all(a is b for a, b in zip(merged, results)):
            merged = results  # nothing replaced: the cached list itself (a hit stays the same object)
        if fresh or merged is not results:
            key = self._result_key(classifier, image, req, name)
            with self._lock:
                self._results[key] = merged
                while len(self._results) > self.max_results:
                    self._results.popitem(last=False)
        return merged

    def contrast(
        self, classifier: Any, image: PreparedImage, req: RunRequest, name: str, label: int, other: int,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> Explanation:
        """Why ``label`` rather than ``other`` with method ``name`` (memoised), from the request's
        context: the black-box methods reuse the rows the plain run computed (no model call)."""
        from explainers.runner import run_method

        key = ("contrast",) + self._result_key(classifier, image, req, name) + (int(label), int(other))
        with self._lock:
            found = self._results.get(key)
        if found is not None:
            return found[0]
        ctx, ctx_lock = self._context(classifier, image, req)
        with ctx_lock:
            ctx.sampling = dataclasses.replace(ctx.sampling, samples=req.samples)
            ctx.progress = progress
            try:
                results = run_method(ctx, name, req.method_params(name), [int(label)], contrast=int(other))
            finally:
                ctx.progress = None
        with self._lock:
            self._results[key] = results
            while len(self._results) > self.max_results:
                self._results.popitem(last=False)
        return results[0]

    def context_for(self, classifier: Any, image: PreparedImage, req: RunRequest) -> ExplainContext:
        return self._context(classifier, image, req)[0]

    @staticmethod
    def trust_key(classifier: Any, image: PreparedImage, req: RunRequest, label: int,
                  settings: Mapping[str, Any], mask_key: str = "") -> Any:
        """The one key of a trust report (lookup and store use it alike)."""
        return ("trust", classifier.id, image.key, freeze(req), int(label), freeze(settings), mask_key)

    def trust_lookup(self, classifier: Any, image: PreparedImage, req: RunRequest, label: int,
                     settings: Mapping[str, Any], mask_key: str = "") -> Any | None:
        key = self.trust_key(classifier, image, req, label, settings, mask_key)
        with self._lock:
            return self._results.get(key)

    def trust(self, classifier: Any, image: PreparedImage, req: RunRequest, label: int,
              settings: Mapping[str, Any], mask: np.ndarray | None = None, mask_key: str = "",
              progress: Callable[[int, int, str], None] | None = None) -> Any:
        """The trust report of one label for the request's explanations (memoised).

        Reuses the request's context, so the deletion curves, convergence and bootstrap use the
        perturbation rows already computed; stability reruns are kept in the context for the
        next label.
        """
        found = self.trust_lookup(classifier, image, req, label, settings, mask_key)
        if found is not None:
            return found
        from explainers.trust import trust_report

        results = [r for name, _ in req.methods
                   for r in self.compute(classifier, image, req, name) if r.label == int(label)]
        ctx, ctx_lock = self._context(classifier, image, req)
        with ctx_lock:
            ctx.sampling = req.sampling(ctx.sampling.fill)
            report = trust_report(ctx, results, int(label), mask=mask, progress=progress, **dict(settings))
        key = self.trust_key(classifier, image, req, label, settings, mask_key)
        with self._lock:
            self._results[key] = report
        return report
