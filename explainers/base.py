"""The one result type every explainer returns, and the registry the UI and CLI read.

A method is a plain function ``run(ctx, params, labels) -> list[Explanation]`` registered with
a parameter dataclass. The UI builds its controls from the dataclass fields, the CLI its flags,
and the contract test (tests/explainers/test_contract.py) runs every registered method, so a
new explainer is one file plus one ``register(...)`` call.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, stage)``: called from the engine; may raise ``Cancelled``."""


class Cancelled(Exception):
    """Raised (by a progress callback or the engine) to stop a run early."""


class ExplainerError(ValueError):
    """A bad parameter or an input a method cannot explain; the message is shown to users."""


@dataclass(frozen=True)
class SamplingInfo:
    """How many perturbed images a LIME / KernelSHAP estimate used, and how settled it was.

    ``mode`` "auto": the run grew until the split-half top-``top_n`` IoU of every requested
    superpixel method reached ``threshold`` (``stopped`` "stable"), or hit ``budget``
    ("budget"), or held every coalition ("exhaustive"); ``history`` lists (samples, stability)
    at each check. ``mode`` "fixed": the count was given (``stopped`` "fixed" or "exhaustive").
    """

    mode: str
    samples: int
    stability: float | None
    threshold: float | None
    budget: int | None
    top_n: int
    stopped: str
    per_method: Mapping[str, float] = field(default_factory=dict)
    history: tuple[tuple[int, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "samples": int(self.samples),
            "stability": None if self.stability is None else float(self.stability),
            "threshold": self.threshold, "budget": self.budget, "top_n": int(self.top_n),
            "stopped": self.stopped, "per_method": {k: float(v) for k, v in self.per_method.items()},
            "history": [[int(n), float(v)] for n, v in self.history],
        }


SIGN_Z = 1.96
"""A segment's sign is settled when |weight| ≥ SIGN_Z × its standard error (≈ 95 %)."""


@dataclass(frozen=True, eq=False)
class Explanation:
    """One method's explanation of one label.

    ``heatmap`` is signed and unnormalised, at the resolution of the explained image; only
    ``explainers.render`` normalises. Superpixel methods also carry ``segments`` and
    ``segment_weights`` so that the picture can be redrawn (top-N, pros and cons) without
    recomputing anything.
    """

    method: str
    label: int
    label_name: str
    score: float
    heatmap: np.ndarray
    segments: np.ndarray | None = None
    segment_weights: np.ndarray | None = None
    intercept: float | None = None
    local_prediction: float | None = None
    r2: float | None = None
    base_value: float | None = None
    model_calls: int = 0
    seconds: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    segment_std: np.ndarray | None = None  # (M,) standard error of each segment weight
    sampling: SamplingInfo | None = None  # samples used and their stability (LIME, KernelSHAP)
    contrast: int | None = None  # "why label rather than contrast": the map explains score A − score B

    def __post_init__(self) -> None:
        object.__setattr__(self, "heatmap", np.asarray(self.heatmap, dtype=np.float32))
        if self.segments is not None:
            object.__setattr__(self, "segments", np.asarray(self.segments, dtype=np.int32))
        if self.segment_weights is not None:
            object.__setattr__(
                self, "segment_weights", np.asarray(self.segment_weights, dtype=np.float32)
            )
        if self.segment_std is not None:
            object.__setattr__(self, "segment_std", np.asarray(self.segment_std, dtype=np.float32))

    def unsettled(self, z: float = SIGN_Z) -> np.ndarray:
        """Segments whose sign the samples do not settle (|weight| < z × standard error), (M,) bool.

        All False when there is no uncertainty estimate (exact or non-sampled methods).
        """
        if self.segment_weights is None:
            return np.zeros(0, dtype=bool)
        if self.segment_std is None:
            return np.zeros(len(self.segment_weights), dtype=bool)
        return np.abs(self.segment_weights) < float(z) * self.segment_std

    def ranked_segments(self) -> list[tuple[int, float]]:
        """Segments by decreasing weight (superpixel methods only)."""
        if self.segment_weights is None:
            return []
        order = np.argsort(-self.segment_weights, kind="stable")
        return [(int(i), float(self.segment_weights[i])) for i in order]

    def peak(self) -> tuple[int, int]:
        """(row, col) of the heatmap maximum."""
        r, c = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return int(r), int(c)


@dataclass(frozen=True)
class MethodSpec:
    """A registered explainer: its name, how to show it, its parameters and what it needs."""

    name: str
    title: str
    family: str  # "perturbation" | "cam" | "gradient" | "occlusion"
    params_type: type
    run: Callable[..., list[Explanation]]
    needs_gradients: bool = False
    description: str = ""
    contrast: bool = False  # run(..., contrast=B) explains label − B ("why A rather than B")


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (idempotent for the same name)."""
    if not dataclasses.is_dataclass(spec.params_type):
        raise TypeError(f"{spec.name}: params_type must be a dataclass")
    _REGISTRY[spec.name] = spec
    return spec


def methods() -> dict[str, MethodSpec]:
    """All registered methods, importing the built-in ones on first use."""
    import explainers.registry  # noqa: F401  (registers the built-in methods)

    return dict(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    found = methods()
    if name not in found:
        raise ExplainerError(f"unknown method {name!r}; choose from {', '.join(sorted(found))}")
    return found[name]


def make_params(params_type: type, values: Mapping[str, Any] | None = None) -> Any:
    """Build a parameter dataclass from a dict, rejecting unknown keys with a clear message."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(params_type)}
    unknown = set(values) - names
    if unknown:
        raise ExplainerError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} for {params_type.__name__}; "
            f"known: {', '.join(sorted(names))}"
        )
    try:
        params = params_type(**values)
    except (TypeError, ValueError) as exc:
        raise ExplainerError(str(exc)) from None
    validate = getattr(params, "validate", None)
    if callable(validate):
        validate()
    return params


def params_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params or {})


class Timer:
    """Context manager measuring wall seconds (``with Timer() as t: ...; t.seconds``)."""

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def upsample(map_: np.ndarray, shape: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """Resize a low-resolution map (h, w) to ``shape`` (H, W) without normalising it."""
    from skimage.transform import resize

    order = {"nearest": 0, "bilinear": 1, "bicubic": 3}.get(method)
    if order is None:
        raise ExplainerError(f"upsampling must be nearest, bilinear or bicubic, not {method!r}")
    map_ = np.asarray(map_, dtype=np.float32)
    if tuple(map_.shape) == tuple(shape[:2]):
        return map_
    return resize(
        map_, tuple(shape[:2]), order=order, mode="edge", anti_aliasing=False, preserve_range=True
    ).astype(np.float32)
