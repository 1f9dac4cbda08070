"""The one result type every explainer returns, and the registry: the one source of method facts.

How to add an explainer (the one registration style; copy any method module, e.g. occlusion.py):

1. Write ``explainers/<name>.py`` with a frozen parameter dataclass whose fields are declared
   with ``param(default, low=…, high=…, choices=…, help=…)``. The bounds live in the field
   metadata and are read by ``make_params`` (validation), the Explain form's widgets and the
   CLI's ``--param`` parsing alike; an optional ``validate()`` method adds cross-field checks.
2. Write ``run(ctx, params, labels) -> list[Explanation]`` returning signed, unnormalised maps.
3. End the module with one ``register(MethodSpec(...))`` call per method, keyword arguments,
   every fact in that call: ``name``, ``title``, ``family``, ``order`` (display order),
   ``scale_group`` (methods in one group share a colour scale), ``needs_gradients`` /
   ``needs_feature_maps``, ``default`` (selected in a new session / CLI run), ``test_params``
   (small parameters for the contract test) and, for methods fitted on the shared perturbation
   rows, ``refit`` (used by the trust metrics' convergence and bootstrap) and ``design_share``.
4. Add the module name to ``explainers/registry.py``'s ``BUILTIN_MODULES``.

The UI, the CLI, the Guide, exports, trust metrics and the contract test
(tests/explainers/test_contract.py) read the registry; no method name is written anywhere else.
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

    ``mode`` "auto": the run grew until the top-``top_n`` stability of every requested
    superpixel method reached ``threshold`` for this label (``stopped`` "stable"; each label
    stops on its own), or hit ``budget`` ("budget"), or held every coalition ("exhaustive");
    ``history`` lists (samples, stability) at each check. ``rule`` says what "stability"
    measured: "expected" (the expected top-N IoU with the converged answer, from the standard
    errors) or "split-half" (the top-N IoU of two half-size fits; methods without standard
    errors). ``mode`` "fixed": the count was given
    (``stopped`` "fixed" or "exhaustive").
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
    rule: str = "expected"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "samples": int(self.samples),
            "stability": None if self.stability is None else float(self.stability),
            "threshold": self.threshold, "budget": self.budget, "top_n": int(self.top_n),
            "stopped": self.stopped, "per_method": {k: float(v) for k, v in self.per_method.items()},
            "history": [[int(n), float(v)] for n, v in self.history], "rule": self.rule,
        }

    def words(self) -> str:
        """How an "auto" run ended, for a person (see ``sampling_words``)."""
        return sampling_words(self.to_dict())


def sampling_words(sampling: Mapping[str, Any]) -> str:
    """How an "auto" run ended, in words (UI caption, CLI, report: one wording): "stable at N
    samples: …" or "stopped at the budget of N samples — … not yet stable"; ``sampling`` is
    ``SamplingInfo.to_dict()`` (also as read back from a JSON export)."""
    n, top = int(sampling["samples"]), int(sampling["top_n"])
    stability, threshold = sampling.get("stability"), sampling.get("threshold")
    if sampling.get("mode") != "auto" or stability is None or threshold is None:
        return f"{n} samples ({sampling.get('stopped', 'fixed')})"
    split = sampling.get("rule", "split-half") == "split-half"  # exports before 2026-12-03: split-half
    overlap = ("split-half overlap" if split
               else "expected overlap with the converged answer")
    if sampling["stopped"] == "stable":
        return (f"stable at {n} samples: the top-{top} regions' {overlap} "
                f"{float(stability):.2f} ≥ {float(threshold):.2f}")
    if sampling["stopped"] == "budget":
        return (f"stopped at the budget of {int(sampling['budget'])} samples — the top-{top} regions are "
                f"not yet stable, {overlap} {float(stability):.2f} < {float(threshold):.2f}")
    return f"every one of the {n} combinations used (exact)"


def auto_sampling_by_label(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """[(label name, sampling dict)] of the "auto" results, one per label in order: each label
    stops on its own, so the CLI and the report give each its own line. ``results`` are export
    dicts (``label_name``, ``sampling``)."""
    seen: dict[str, Mapping[str, Any]] = {}
    for r in results:
        s = r.get("sampling") if isinstance(r, Mapping) else None
        if s and s.get("mode") == "auto":
            seen.setdefault(str(r.get("label_name", r.get("label", ""))), s)
    return list(seen.items())


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

    @property
    def signed(self) -> bool:
        """Whether its colour legend needs both signs: the method's registry fact (``signed``),
        or a negative value all the same (a contrast map, "A rather than B", of RISE)."""
        spec = methods().get(self.method)
        return spec is None or spec.signed or bool(np.min(self.heatmap) < 0)

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


def param(default: Any, *, low: float | None = None, high: float | None = None, above: float | None = None,
          choices: Sequence[Any] | None = None, help: str = "") -> Any:
    """A parameter field whose bounds live in its metadata (``low``/``high`` inclusive, ``above``
    exclusive, ``choices`` for text), read by validation, the UI widgets and the CLI alike."""
    meta = {"low": low, "high": high, "above": above, "choices": tuple(choices) if choices else None, "help": help}
    return field(default=default, metadata=meta)


def bounds(f: dataclasses.Field) -> dict[str, Any]:
    """The bounds of a parameter field (empty values when it was declared without ``param``)."""
    meta = dict(f.metadata or {})
    return {k: meta.get(k) for k in ("low", "high", "above", "choices", "help")}


def check_bounds(params: Any) -> None:
    """Check every field of a parameter dataclass against its metadata bounds (clear messages)."""
    for f in dataclasses.fields(params):
        b = bounds(f)
        value = getattr(params, f.name)
        label = f.name.replace("_", " ")
        if b["choices"] is not None:
            if value not in b["choices"]:
                raise ExplainerError(f"{label} must be one of {', '.join(map(str, b['choices']))}, not {value!r}")
            continue
        if b["low"] is None and b["high"] is None and b["above"] is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ExplainerError(f"{label} must be a number, not {value!r}")
        if not np.isfinite(float(value)):
            raise ExplainerError(f"{label} must be a finite number, not {value}")
        if b["above"] is not None and not value > b["above"]:
            raise ExplainerError(f"{label} must be > {b['above']}, not {value}")
        if b["low"] is not None and b["high"] is not None and not b["low"] <= value <= b["high"]:
            raise ExplainerError(f"{label} must be between {b['low']} and {b['high']}, not {value}")
        if b["low"] is not None and value < b["low"]:
            raise ExplainerError(f"{label} must be ≥ {b['low']}, not {value}")
        if b["high"] is not None and value > b["high"]:
            raise ExplainerError(f"{label} must be ≤ {b['high']}, not {value}")


RefitFn = Callable[[Any, int, Any, int], np.ndarray]
"""``refit(rows, label, params, seed) -> segment weights``: a perturbation method fitted on rows."""

RefitStdFn = Callable[[Any, int, Any, int], "tuple[np.ndarray, np.ndarray | None]"]
"""``refit_std(rows, label, params, seed) -> (segment weights, standard errors or None)``: the
same fit with the estimator's own standard errors (the "auto" stopping rule uses them)."""


@dataclass(frozen=True)
class MethodSpec:
    """A registered explainer and every fact about it (the only place these facts live)."""

    name: str
    title: str
    family: str  # "perturbation" | "cam" | "gradient" | "occlusion" | …
    params_type: type
    run: Callable[..., list[Explanation]]
    order: int = 1000  # display order everywhere (pages, exports, CLI listing)
    scale_group: str = ""  # methods sharing a group share one colour scale ("" = own scale)
    needs_gradients: bool = False
    needs_feature_maps: bool = False  # reads a conv layer's activations (no gradients needed)
    default: bool = False  # chosen in a new session and by the CLI without --methods
    additive: bool = False  # segment weights add up to the score change (used by captions)
    refit: RefitFn | None = None  # fitted on the shared perturbation rows (convergence, bootstrap)
    refit_std: RefitStdFn | None = None  # the same fit with standard errors ("auto" stopping rule)
    design_share: float | None = None  # rows' Shapley-kernel share this method wants when alone (0..1)
    test_params: Mapping[str, Any] = field(default_factory=dict)  # small values for the contract test
    description: str = ""
    contrast: bool = False  # run(..., contrast=B) explains label − B ("why A rather than B")
    signed: bool = True  # False: its maps are never negative, so legends show one side (Explanation.signed)

    def usable_with(self, classifier: Any) -> bool:
        """Whether this classifier offers what the method needs (gradients, feature maps)."""
        if self.needs_gradients and not getattr(classifier, "supports_gradients", False):
            return False
        if self.needs_feature_maps and not getattr(
            classifier, "supports_feature_maps", getattr(classifier, "supports_gradients", False)
        ):
            return False
        return True

    @property
    def scale_key(self) -> str:
        """Methods with the same key are drawn on one colour scale."""
        return self.scale_group or self.name


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (idempotent for the same name); returns the spec."""
    if not dataclasses.is_dataclass(spec.params_type):
        raise TypeError(f"{spec.name}: params_type must be a dataclass")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method (tests that register a method of their own clean up with this)."""
    _REGISTRY.pop(name, None)


def methods() -> dict[str, MethodSpec]:
    """All registered methods, importing the built-in ones on first use."""
    import explainers.registry  # noqa: F401  (registers the built-in methods)

    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


def display_order(names: Sequence[str]) -> list[str]:
    """``names`` in the registry's display order (unknown names last, as given)."""
    found = methods()
    rank = {n: i for i, n in enumerate(found)}
    return sorted(dict.fromkeys(names), key=lambda n: rank.get(n, len(rank)))


def default_methods(classifier: Any | None = None) -> list[str]:
    """The methods a new session (or a CLI run without --methods) explains with."""
    return [n for n, s in methods().items() if s.default and (classifier is None or s.usable_with(classifier))]


def methods_for(classifier: Any | None) -> dict[str, MethodSpec]:
    """Registered methods usable with this classifier (all of them for ``None``)."""
    return {n: s for n, s in methods().items() if classifier is None or s.usable_with(classifier)}


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
    check_params(params)
    return params


def check_params(params: Any) -> None:
    """A parameter dataclass's metadata bounds, then its own ``validate()`` (cross-field checks)."""
    check_bounds(params)
    validate = getattr(params, "validate", None)
    if callable(validate):
        validate()


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


def _bilinear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of linear interpolation along one axis, exactly as
    ``scipy.ndimage.zoom(order=1, mode="nearest", grid_mode=True)`` computes them: pixel
    centres aligned, the two neighbours clamped to the edge, weights 1 − t and t."""
    cc = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    start = np.floor(cc)
    t = cc - start
    first = start.astype(np.intp)
    return np.clip(first, 0, n_in - 1), np.clip(first + 1, 0, n_in - 1), 1.0 - t, t


def bilinear_resize(map_: np.ndarray, shape: Sequence[int], clip_to: np.ndarray | None = None) -> np.ndarray:
    """``skimage.transform.resize(map_, shape, order=1, mode="edge", anti_aliasing=False,
    preserve_range=True)`` for a 2-D float map, bit for bit, as four gathers and products in
    numpy (the same double-precision terms, summed in the same order, then clipped to the
    input's range) instead of scipy's general spline code: ~10× faster for a 7×7 → 224×224
    Grad-CAM map. Returns float64 like skimage for float64 input, float32 otherwise.
    ``clip_to``: clip to that array's range instead (skimage clips an anti-aliased resize to
    the range of the image before its Gaussian filter)."""
    a = np.asarray(map_)
    out_dtype = np.float64 if a.dtype == np.float64 else np.float32
    a64 = a.astype(np.float64, copy=False)
    r0, r1, wr0, wr1 = _bilinear_axis(a.shape[0], int(shape[0]))
    c0, c1, wc0, wc1 = _bilinear_axis(a.shape[1], int(shape[1]))
    # ndimage: for each of the 2×2 neighbours in row-major order, (value × w_row) × w_col, added
    # to a sum that starts at 0; value × w_row is taken before the columns are gathered
    top = np.take(a64, r0, axis=0) * wr0[:, None]
    bottom = np.take(a64, r1, axis=0) * wr1[:, None]
    out = np.take(top, c0, axis=1) * wc0
    out += np.take(top, c1, axis=1) * wc1
    out += np.take(bottom, c0, axis=1) * wc0
    out += np.take(bottom, c1, axis=1) * wc1
    out = out.astype(out_dtype, copy=False)
    ref = a if clip_to is None else np.asarray(clip_to)
    low, high = ref.astype(out_dtype, copy=False).min(), ref.astype(out_dtype, copy=False).max()
    return np.clip(out, low, high, out=out)


def upsample(map_: np.ndarray, shape: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """Resize a low-resolution map (h, w) to ``shape`` (H, W) without normalising it."""
    order = {"nearest": 0, "bilinear": 1, "bicubic": 3}.get(method)
    if order is None:
        raise ExplainerError(f"upsampling must be nearest, bilinear or bicubic, not {method!r}")
    map_ = np.asarray(map_, dtype=np.float32)
    if tuple(map_.shape) == tuple(shape[:2]):
        return map_
    if order == 1 and map_.ndim == 2 and map_.size and np.isfinite(map_).all():
        return bilinear_resize(map_, shape[:2])
    from skimage.transform import resize

    return resize(
        map_, tuple(shape[:2]), order=order, mode="edge", anti_aliasing=False, preserve_range=True
    ).astype(np.float32)
