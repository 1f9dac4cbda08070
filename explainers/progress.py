"""One progress bar over a computation made of stages, and an ETA that only settles.

Why: the trust report runs five kinds of work one after the other (curves, seed reruns, noisy
copies, convergence); reporting each stage's own ``done/total`` made a bar restart five times
and its ETA jump (0 s → 102 → 182 → 255 s). ``StagedProgress`` maps every stage's own counts
onto one fraction of the whole, with a weight per stage estimated up front (in model calls, the
physical cost), and names the stage in words. ``EtaEstimator`` turns a fraction into seconds
left from the average rate over all the work done so far, and never lets the estimate rise by
more than noise: a person watching sees it settle, not jump.

No streamlit here: the UI and the CLI both draw from these numbers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from explainers.base import ProgressFn

RESOLUTION = 1000
"""``StagedProgress`` reports ``done`` out of this many units (per mille of the whole)."""


@dataclass(frozen=True)
class Stage:
    """One stage of a plan: the words a person reads and its estimated cost (any unit)."""

    words: str
    weight: float


class StagedProgress:
    """Maps each stage's own ``(done, total)`` onto one fraction of the whole computation.

    ``stage(i)`` returns a ``ProgressFn`` for stage ``i``; whatever it receives is reported to
    ``sink`` as ``(done, RESOLUTION, words)`` where ``done`` never decreases. With
    ``pass_words=True`` the inner stage name replaces the stage's words (for nested plans whose
    inner names are already sentences). Entering a stage completes every earlier one.
    """

    def __init__(self, stages: Sequence[Stage], sink: ProgressFn | None) -> None:
        self.stages = list(stages)
        self.sink = sink
        weights = [max(0.0, float(s.weight)) for s in self.stages]
        total = sum(weights) or 1.0
        self._starts = [sum(weights[:i]) / total for i in range(len(weights))]
        self._shares = [w / total for w in weights]
        self._done = 0

    def stage(self, index: int, pass_words: bool = False) -> ProgressFn:
        words = self.stages[index].words

        def report(done: int, total: int, inner: str = "") -> None:
            frac = min(1.0, max(0.0, done / total)) if total else 1.0
            self._emit(self._starts[index] + frac * self._shares[index],
                       inner if pass_words and inner else words)

        return report

    def enter(self, index: int) -> None:
        """Stage ``index`` starts (its words shown at once, at its starting fraction)."""
        self.stage(index)(0, 1, "")

    def finish(self, words: str = "Done") -> None:
        self._emit(1.0, words)

    def _emit(self, fraction: float, words: str) -> None:
        done = max(self._done, int(round(fraction * RESOLUTION)))
        self._done = min(done, RESOLUTION)
        if self.sink is not None:
            self.sink(self._done, RESOLUTION, words)


class EtaEstimator:
    """Seconds left from the fraction of the whole work done; the estimate never goes up.

    The rate is measured from the *first* report on (``(f − f₀) / (t − t₀)``), so start-up costs
    paid before it (tracing the model, the first batch) do not inflate the estimate, and it is
    the average over everything since, which smooths per-batch noise. It is withheld (None) until
    ``warmup_s`` have passed since the first report and ``min_fraction`` more is done. After that
    the shown ETA follows the raw one down at once, but when the raw one is higher (a stage
    slower than its weight said) the shown ETA does not rise: it keeps counting down, at
    ``slowdown`` of the wall clock's speed, until the raw estimate meets it.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter, *, warmup_s: float = 1.0,
                 min_fraction: float = 0.02, slowdown: float = 0.5) -> None:
        self.clock = clock
        self.start = clock()
        self.warmup_s = warmup_s
        self.min_fraction = min_fraction
        self.slowdown = slowdown
        self._first: tuple[float, float] | None = None  # (time, fraction) of the first report
        self._last: tuple[float, float] | None = None  # (time, shown eta)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def update(self, fraction: float) -> float | None:
        """The ETA in seconds after ``fraction`` (0..1) of the work, or None while unknown."""
        now = self.clock()
        f = min(1.0, max(0.0, float(fraction)))
        if f >= 1.0:
            self._last = (now, 0.0)
            return 0.0
        if self._first is None:
            self._first = (now, f)
            return None
        t0, f0 = self._first
        if self._last is None and (f - f0 < self.min_fraction or now - t0 < self.warmup_s):
            return None
        eta = (now - t0) * (1.0 - f) / max(f - f0, 1e-9)
        if self._last is not None:
            then, shown = self._last
            eta = min(eta, max(0.0, shown - self.slowdown * (now - then)))
        self._last = (now, eta)
        return eta


def format_eta(seconds: float | None) -> str:
    """``about 40 s left`` / ``about 3 min left`` / ``almost done`` / ``estimating time…``."""
    if seconds is None:
        return "estimating time…"
    if seconds < 1.5:
        return "almost done"
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    return f"about {seconds / 60:.0f} min left"


__all__ = ["RESOLUTION", "Stage", "StagedProgress", "EtaEstimator", "format_eta"]
