"""Superpixels: contiguous ids, determinism, exact grids, lime's quickshift, clear errors."""

import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from explainers.base import ExplainerError
from explainers.segmentation import (
    ALGORITHMS,
    GridParams,
    QuickshiftParams,
    SlicParams,
    boundaries,
    segment,
)


def _photo(size: int) -> np.ndarray:
    return (resize(data.astronaut(), (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo(96)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_ids_are_contiguous_and_deterministic(photo, algorithm):
    seg = segment(photo, algorithm)
    assert seg.dtype == np.int32 and seg.shape == photo.shape[:2]
    m = int(seg.max()) + 1
    assert m > 1
    assert np.array_equal(np.unique(seg), np.arange(m))
    assert np.array_equal(seg, segment(photo, algorithm))


def test_quickshift_defaults_are_limes(photo):
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    assert (QuickshiftParams().kernel_size, QuickshiftParams().max_dist, QuickshiftParams().ratio) == (4, 200, 0.2)
    theirs = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=0)(photo)
    ours = segment(photo, "quickshift", {"seed": 0})
    # same partition (lime keeps quickshift's raw labels, we relabel to 0..M-1)
    _, relabelled = np.unique(theirs, return_inverse=True)
    assert np.array_equal(ours, relabelled.reshape(ours.shape))


@pytest.mark.parametrize("shape,rows,cols", [((37, 53), 7, 9), ((10, 10), 10, 1), ((299, 299), 8, 8), ((5, 7), 5, 7)])
def test_grid_gives_exactly_rows_times_cols(shape, rows, cols):
    img = np.zeros(shape + (3,), np.uint8)
    seg = segment(img, "grid", GridParams(rows=rows, cols=cols))
    assert seg.max() + 1 == rows * cols
    counts = np.bincount(seg.ravel())
    assert len(counts) == rows * cols and counts.min() > 0
    # cells are axis-aligned rectangles in row-major order
    assert seg[0, 0] == 0 and seg[-1, -1] == rows * cols - 1
    assert np.all(np.diff(seg[:, 0]) >= 0) and np.all(np.diff(seg[0]) >= 0)


def test_parameters_change_the_result(photo):
    few = segment(photo, "slic", {"n_segments": 8})
    many = segment(photo, "slic", SlicParams(n_segments=120))
    assert few.max() + 1 < many.max() + 1
    assert 15 <= segment(photo, "watershed", {"markers": 20}).max() + 1 <= 30  # a grid of ~20 seeds


@pytest.mark.parametrize(
    "algorithm,params",
    [
        ("kmeans", None),
        ("slic", {"n_segments": 0}),
        ("slic", {"segments": 10}),
        ("quickshift", {"ratio": 2.0}),
        ("quickshift", {"kernel_size": "big"}),
        ("felzenszwalb", {"scale": -1}),
        ("watershed", {"compactness": float("nan")}),
        ("grid", {"rows": 0}),
        ("grid", {"rows": 200}),  # does not fit a 96-pixel image
        ("grid", SlicParams()),  # the wrong dataclass
    ],
)
def test_bad_parameters_raise_a_clear_error(photo, algorithm, params):
    with pytest.raises(ExplainerError):
        segment(photo, algorithm, params)


@pytest.mark.parametrize("image", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((1, 8, 3), np.uint8)])
def test_bad_images_raise_a_clear_error(image):
    with pytest.raises(ExplainerError):
        segment(image, "grid")


def test_boundaries_mark_cell_borders_only():
    img = np.full((40, 40, 3), 60, np.uint8)
    seg = segment(img, "grid", {"rows": 2, "cols": 2})
    out = boundaries(img, seg)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert tuple(out[19, 5]) == (255, 255, 0) and tuple(out[5, 19]) == (255, 255, 0)  # the borders
    assert np.count_nonzero((out[:, 5] != 60).any(-1)) == 1
    assert tuple(out[5, 5]) == (60, 60, 60)  # interior untouched
    with pytest.raises(ExplainerError):
        boundaries(img, seg[:10])


def test_default_segmentation_gives_a_moderate_count_at_inception_size():
    # Speed is a benchmark's business (machines here are shared); the count is what the
    # default must get right: enough regions to localise, few enough for the sample budget.
    seg = segment(_photo(299))
    assert 10 <= seg.max() + 1 <= 400


# ----------------------------------------------------------------------------- limits (issue 8)
def test_a_224_by_224_grid_is_refused_before_any_work(monkeypatch):
    """50 176 cells: refused by the parameter check, before the grid is built."""
    from explainers import segmentation

    monkeypatch.setattr(segmentation, "_raw_segments", lambda *a: pytest.fail("segmented anyway"))
    with pytest.raises(ExplainerError, match=r"224×224 grid has 50,176 cells.*1,000.*bigger cells"):
        segment(np.zeros((224, 224, 3), np.uint8), "grid", {"rows": 224, "cols": 224})
    with pytest.raises(ExplainerError, match="1000"):
        segment(np.zeros((224, 224, 3), np.uint8), "slic", {"n_segments": 5000})
    with pytest.raises(ExplainerError, match="1000"):
        segment(np.zeros((224, 224, 3), np.uint8), "watershed", {"markers": 1001})
    monkeypatch.undo()
    assert int(segment(np.zeros((64, 64, 3), np.uint8), "grid", {"rows": 25, "cols": 40}).max()) == 999


def test_segmenters_whose_count_depends_on_the_image_are_checked_on_the_result():
    noise = np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    with pytest.raises(ExplainerError, match=r"felzenszwalb segmentation has [\d,]+ superpixels.*larger Felzenszwalb scale"):
        segment(noise, "felzenszwalb", {"scale": 0.01, "sigma": 0.0, "min_size": 1})
