"""Superpixels for the perturbation methods (LIME, KernelSHAP, trust metrics).

Every algorithm is scikit-image's, wrapped so that it takes one frozen parameter dataclass of
simple fields (the UI builds its controls from them) and returns ids relabelled to exactly
``0..M-1``: the perturbation engine indexes coalition vectors with the segment map directly.
Quickshift's defaults are lime_image's (kernel_size=4, max_dist=200, ratio=0.2); its random
tie-breaking takes a seed so that the same image always gives the same superpixels.

Every algorithm is held to ``MAX_SEGMENTS`` superpixels (the perturbation engine's limit): the
grid, SLIC and watershed are refused before any work when their parameters ask for more;
quickshift and Felzenszwalb, whose count depends on the image, are checked on their result.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from explainers.base import ExplainerError, make_params
from explainers.perturbation import MAX_SEGMENTS, check_segment_count


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ExplainerError(f"{name} must be a number, not {value!r}") from None


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    value = _number(name, value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ExplainerError(f"{name} must be {'≥ 0' if allow_zero else '> 0'}, not {value}")


@dataclass(frozen=True)
class QuickshiftParams:
    """skimage quickshift; defaults are lime_image's."""

    kernel_size: float = 4.0
    max_dist: float = 200.0
    ratio: float = 0.2
    sigma: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        _positive("kernel_size", self.kernel_size)
        _positive("max_dist", self.max_dist)
        if not 0.0 <= _number("ratio", self.ratio) <= 1.0:
            raise ExplainerError(f"ratio must be between 0 and 1, not {self.ratio}")
        _positive("sigma", self.sigma, allow_zero=True)


@dataclass(frozen=True)
class SlicParams:
    """skimage SLIC (k-means in colour + position)."""

    n_segments: int = 50
    compactness: float = 10.0
    sigma: float = 1.0

    def validate(self) -> None:
        if not 1 <= _number("n_segments", self.n_segments) <= MAX_SEGMENTS:
            raise ExplainerError(
                f"n_segments must be between 1 and {MAX_SEGMENTS} (the superpixel limit), "
                f"not {self.n_segments}"
            )
        _positive("compactness", self.compactness)
        _positive("sigma", self.sigma, allow_zero=True)


@dataclass(frozen=True)
class FelzenszwalbParams:
    """skimage Felzenszwalb graph segmentation (larger scale → larger segments)."""

    scale: float = 100.0
    sigma: float = 0.5
    min_size: int = 50

    def validate(self) -> None:
        _positive("scale", self.scale)
        _positive("sigma", self.sigma, allow_zero=True)
        if _number("min_size", self.min_size) < 1:
            raise ExplainerError(f"min_size must be ≥ 1, not {self.min_size}")


@dataclass(frozen=True)
class WatershedParams:
    """Compact watershed on the Sobel gradient of the gray image."""

    markers: int = 100
    compactness: float = 0.001

    def validate(self) -> None:
        if not 1 <= _number("markers", self.markers) <= MAX_SEGMENTS:
            raise ExplainerError(
                f"markers must be between 1 and {MAX_SEGMENTS} (the superpixel limit), not {self.markers}"
            )
        _positive("compactness", self.compactness, allow_zero=True)


@dataclass(frozen=True)
class GridParams:
    """A regular rows × cols grid (as MATLAB's imageLIME); always exactly rows*cols segments."""

    rows: int = 8
    cols: int = 8

    def validate(self) -> None:
        for name in ("rows", "cols"):
            value = _number(name, getattr(self, name))
            if not 1 <= value <= 512 or value != int(value):
                raise ExplainerError(f"{name} must be a whole number between 1 and 512, not {getattr(self, name)}")
        cells = int(self.rows) * int(self.cols)
        if cells > MAX_SEGMENTS:
            raise ExplainerError(
                f"a {int(self.rows)}×{int(self.cols)} grid has {cells:,} cells; the limit is "
                f"{MAX_SEGMENTS:,} superpixels: use bigger cells (fewer rows or columns, e.g. 32×31)"
            )


USER_REGIONS = "regions"
"""The segmentation name of a user's own region map (``ExplainContext(regions=...)``)."""

ALGORITHMS: dict[str, type] = {
    "quickshift": QuickshiftParams,
    "slic": SlicParams,
    "felzenszwalb": FelzenszwalbParams,
    "watershed": WatershedParams,
    "grid": GridParams,
}


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ExplainerError(
            f"segmentation expects an RGB uint8 image (H, W, 3), got {image.shape} {image.dtype}"
        )
    if min(image.shape[:2]) < 2:
        raise ExplainerError(f"the image is too small to segment: {image.shape[0]}×{image.shape[1]}")
    return image


@dataclass(frozen=True)
class UserRegionsParams:
    """Your own region map: nothing to set here (the map itself is given to the context)."""


def resolve_params(algorithm: str, params: Any = None) -> Any:
    """The validated parameter dataclass of ``algorithm`` from a dataclass, a dict or None."""
    if algorithm == USER_REGIONS:
        return UserRegionsParams()
    if algorithm not in ALGORITHMS:
        raise ExplainerError(
            f"unknown segmentation {algorithm!r}; choose from {', '.join(ALGORITHMS)}"
        )
    params_type = ALGORITHMS[algorithm]
    if params is None or isinstance(params, Mapping):
        return make_params(params_type, params)
    if not isinstance(params, params_type):
        raise ExplainerError(
            f"{algorithm} segmentation takes {params_type.__name__}, not {type(params).__name__}"
        )
    return make_params(params_type, dataclasses.asdict(params))


def _grid(shape: tuple[int, int], p: GridParams) -> np.ndarray:
    h, w = shape
    rows, cols = int(p.rows), int(p.cols)
    if rows > h or cols > w:
        raise ExplainerError(f"a {rows}×{cols} grid does not fit a {h}×{w} image")
    r = (np.arange(h) * rows) // h
    c = (np.arange(w) * cols) // w
    return (r[:, None] * cols + c[None, :]).astype(np.int32)


def _raw_segments(image: np.ndarray, algorithm: str, p: Any) -> np.ndarray:
    import skimage.segmentation as seg

    if algorithm == "quickshift":
        return seg.quickshift(
            image, ratio=float(p.ratio), kernel_size=float(p.kernel_size),
            max_dist=float(p.max_dist), sigma=float(p.sigma), rng=int(p.seed),
        )
    if algorithm == "slic":
        return seg.slic(
            image, n_segments=int(p.n_segments), compactness=float(p.compactness),
            sigma=float(p.sigma), start_label=0, channel_axis=-1,
        )
    if algorithm == "felzenszwalb":
        return seg.felzenszwalb(
            image, scale=float(p.scale), sigma=float(p.sigma), min_size=int(p.min_size)
        )
    if algorithm == "watershed":
        from skimage.color import rgb2gray
        from skimage.filters import sobel

        return seg.watershed(
            sobel(rgb2gray(image)), markers=int(p.markers), compactness=float(p.compactness)
        )
    return _grid(image.shape[:2], p)


def segment(
    image: np.ndarray, algorithm: str = "quickshift", params: Any = None
) -> np.ndarray:
    """Superpixels of ``image`` as an int32 (H, W) map with ids exactly 0..M-1 (deterministic)."""
    if algorithm == USER_REGIONS:
        raise ExplainerError("'your regions' needs a region map: upload one (CLI: --regions FILE)")
    image = _check_image(image)
    p = resolve_params(algorithm, params)
    try:
        raw = _raw_segments(image, algorithm, p)
    except ExplainerError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ExplainerError(f"{algorithm} segmentation failed: {exc}") from None
    ids, inverse = np.unique(np.asarray(raw), return_inverse=True)
    check_segment_count(len(ids), f"this {algorithm} segmentation")
    return inverse.reshape(image.shape[:2]).astype(np.int32)


def check_regions(regions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A user region map as the engine needs it: (H, W) int32 with ids exactly 0..M−1, 2 ≤ M ≤ 512.

    Ids that are not consecutive are renumbered in increasing order.
    """
    from model_zoo.regions import MAX_REGIONS, MIN_REGIONS

    regions = np.asarray(regions)
    if regions.shape != tuple(shape[:2]) or not np.issubdtype(regions.dtype, np.integer):
        raise ExplainerError(
            f"the region map must be an integer map of the image size {tuple(shape[:2])}, got "
            f"{regions.shape} {regions.dtype}; fit it with model_zoo.regions"
        )
    _, inverse = np.unique(regions, return_inverse=True)
    out = inverse.reshape(regions.shape).astype(np.int32)
    m = int(out.max()) + 1
    if m < MIN_REGIONS:
        raise ExplainerError("the region map has only one region; draw at least two")
    if m > MAX_REGIONS:
        raise ExplainerError(f"the region map has {m} regions; the limit is {MAX_REGIONS}")
    return out


def boundaries(
    image: np.ndarray, segments: np.ndarray, color: tuple[float, float, float] = (1.0, 1.0, 0.0)
) -> np.ndarray:
    """``image`` with superpixel borders drawn (uint8), for a live preview of the segmentation."""
    from skimage.segmentation import mark_boundaries

    image = _check_image(image)
    segments = np.asarray(segments)
    if segments.shape != image.shape[:2]:
        raise ExplainerError(f"segments {segments.shape} do not match the image {image.shape[:2]}")
    marked = mark_boundaries(image, segments, color=color)
    return np.clip(np.round(marked * 255.0), 0, 255).astype(np.uint8)


__all__ = [
    "ALGORITHMS", "QuickshiftParams", "SlicParams", "FelzenszwalbParams", "WatershedParams",
    "GridParams", "segment", "boundaries", "resolve_params", "USER_REGIONS", "check_regions",
]
