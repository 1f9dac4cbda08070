"""Progress where the eye is: a bar in each method's slot and one status line at the top.

Why: the first run takes 30–60 s; a single bar below the pictures sat under the fold of a
1400×900 window and the toolbar's running indicator is hidden (``toolbarMode = "minimal"``), so
nothing on screen said that work was going on. Each method's slot now holds a placeholder with
its own bar and ETA until its picture arrives, and a compact line at the top of the page says
what runs and what is ready. ETAs come from ``explainers.progress.EtaEstimator`` (they settle,
they do not jump).
"""
from __future__ import annotations

import time
from typing import Any, Iterable

import streamlit as st

from explainers.progress import EtaEstimator, format_eta

_MIN_INTERVAL_S = 0.25  # redraws at most 4×/s: each costs a websocket message


_SIDE_STAGES = {"sampling": "drawing coalitions", "segmentation": "computing superpixels",
                "regression": "fitting"}
"""Library stages that report progress (and can be cancelled) but make no model calls."""


class ProgressReporter:
    """Drives one ``st.progress`` bar from a library callback ``(done, total, stage)``.

    ``unit`` names what ``done`` counts ("perturbed images"); without one the bar shows the
    callback's stage words (the trust report's stages are sentences already) and a percentage.
    """

    def __init__(self, placeholder: Any, label: str, unit: str | None = None) -> None:
        self.placeholder = placeholder
        self.label = label
        self.unit = unit
        self.eta = EtaEstimator()
        self.fraction = 0.0
        self.text = f"{label}: starting…"
        self._drawn = 0.0
        self.bar = placeholder.progress(0.0, text=self.text)

    def __call__(self, done: int, total: int, stage: str = "") -> None:
        if stage in _SIDE_STAGES:  # steps without model calls: named, the bar and ETA unchanged
            now = time.perf_counter()
            if now - self._drawn >= _MIN_INTERVAL_S:  # drawing lets Streamlit stop a cancelled run
                self._drawn = now
                self.bar.progress(self.fraction, text=f"{self.label}: {_SIDE_STAGES[stage]}…")
            return
        self.fraction = min(1.0, done / total) if total else 1.0
        eta = format_eta(self.eta.update(self.fraction))
        if self.unit and stage.endswith("(auto)"):  # "auto" samples: the total is only a ceiling
            self.text = (f"{self.label}: {done} {self.unit} · stops when the top regions are stable "
                         f"(at most {total}: {eta.removesuffix(' left')})")
        elif self.unit:
            self.text = f"{self.label}: {done} of {total} {self.unit} · {eta}"
        elif stage:
            self.text = f"{stage} · {self.fraction:.0%} · {eta}"
        else:
            self.text = f"{self.label} · {eta}"
        now = time.perf_counter()
        if now - self._drawn >= _MIN_INTERVAL_S or self.fraction >= 1.0:
            self._drawn = now
            self.bar.progress(self.fraction, text=self.text)

    def done(self) -> None:
        self.placeholder.empty()


class RunProgress:
    """Placeholders for the method slots of one comparison, plus the status line above the page.

    ``start(name)`` returns the callback for that method's run; LIME and KernelSHAP share one
    perturbation pass, so the bar of a shared run shows in every slot that waits for it.
    """

    def __init__(self, status: Any, slots: dict[str, Any], titles: dict[str, str],
                 shared: Iterable[str] = ()) -> None:
        self.status = status
        self.slots = slots
        self.titles = titles
        self.shared = [n for n in shared if n in slots]
        self.ready: list[str] = []
        self.failed: list[str] = []
        self.running: str | None = None
        self._reporters: dict[str, ProgressReporter] = {}
        for name in slots:
            self._waiting(name)

    def _waiting(self, name: str) -> None:
        with self.slots[name].container(border=True):
            st.markdown(f"**{self.titles[name]}**")
            st.caption("Waiting for its turn…")

    def _running_title(self, name: str) -> str:
        if name in self.shared:
            return " + ".join(self.titles[n] for n in self.shared)
        return self.titles[name]

    def start(self, name: str, unit: str | None = None) -> ProgressReporter:
        """The callback for ``name``'s run; draws a bar in its slot (and its partners')."""
        self.running = name
        targets = [n for n in (self.shared if name in self.shared else [name]) if n not in self.ready]
        bars = []
        for n in targets:
            box = self.slots[n].container(border=True)
            box.markdown(f"**{self.titles[n]}**")
            bars.append(box.empty())
        label = self._running_title(name) if unit else f"Computing {self.titles[name]}"
        main = ProgressReporter(bars[0] if bars else st.empty(), label, unit)
        partners = [ProgressReporter(b, label, unit) for b in bars[1:]]
        status = self

        class _Fanout:
            def __call__(self, done: int, total: int, stage: str = "") -> None:
                stage = stage if unit else ""  # a CAM's inner stage names are not for people
                main(done, total, stage)
                for p in partners:
                    p(done, total, stage)
                status._line(main.text, main.fraction)

            def done(self) -> None:
                main.done()
                for p in partners:
                    p.done()

        self._line(f"{label}: starting…", 0.0)
        return _Fanout()  # type: ignore[return-value]

    def background(self, name: str, what: str, unit: str | None = None) -> ProgressReporter:
        """The callback of work whose picture is already shown (``name``'s other labels): its
        bar is the status line at the top, the slots keep their pictures."""
        return ProgressReporter(self.status, f"{self._running_title(name)} for {what}", unit)

    def finish(self, name: str, ok: bool = True) -> None:
        (self.ready if ok else self.failed).append(name)
        self.running = None
        self._line(None, 0.0)

    def _line(self, current: str | None, fraction: float) -> None:
        """One bar at the top: the running computation, what is ready, what comes next."""
        parts = []
        if current:
            parts.append(current)
        running = set(self.shared) if self.running in self.shared else {self.running}
        waiting = [n for n in self.slots if n not in self.ready and n not in self.failed
                   and n not in running]
        if self.ready:
            parts.append("ready: " + ", ".join(self.titles[n] for n in self.ready))
        if waiting and current:
            parts.append("next: " + ", ".join(self.titles[n] for n in waiting))
        if not current and not waiting:
            self.status.empty()
            return
        # the bar is the running computation's own (its text says what is ready and next)
        self.status.progress(min(1.0, fraction if current else 0.0),
                             text=" · ".join(parts) if parts else "Preparing…")

    def close(self) -> None:
        self.status.empty()


__all__ = ["ProgressReporter", "RunProgress"]
