"""RISE: a tiny real Keras model whose score is the mean brightness of one region → the map peaks
there; masks are seeded, smooth and keep the asked share of the image; progress and cancel."""
import keras
import numpy as np
import pytest

from explainers.base import Cancelled, ExplainerError, make_params
from explainers.context import ExplainContext
from explainers.rise import RiseParams, mask_batches
from explainers.runner import run_method

SIZE = 24
REGION = (slice(4, 10), slice(14, 20))


@pytest.fixture(scope="module")
def classifier():
    from model_zoo.classifier import Classifier

    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(1, 1, use_bias=False, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inp, out)
    region = np.zeros((SIZE, SIZE), np.float32)
    region[REGION] = 1.0
    w = np.stack([4 * region.ravel() / region.sum(), np.zeros(SIZE * SIZE, np.float32)], 1)
    model.set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), w, np.array([0, 2], np.float32)])
    return Classifier(model, id="region", name="region", labels=["region", "rest"],
                      preprocessing="unit", batch_size=16)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(150, 255, (SIZE, SIZE, 3), dtype=np.uint8)


def test_rise_peaks_on_the_region_the_score_reads(classifier, image):
    ctx = ExplainContext(classifier, image, seed=0)
    before = classifier.images_seen
    out = run_method(ctx, "rise", {"masks": 500, "cell": 6}, [0, 1])
    assert classifier.images_seen - before == sum(r.model_calls for r in out) == 501  # + the image
    inside = np.zeros((SIZE, SIZE), bool)
    inside[REGION] = True
    region, rest = out[0].heatmap[inside], out[0].heatmap[~inside]
    r, c = out[0].peak()
    assert REGION[0].start <= r < REGION[0].stop and REGION[1].start <= c < REGION[1].stop
    assert region.mean() > rest.mean() + 0.5 * (rest.max() - rest.min())
    # two classes: the other label's map is the mirror image (p1 = 1 − p0), peaking away
    assert out[1].heatmap[REGION].mean() < out[1].heatmap.mean()
    # same seed → the same map; another seed → another one
    again = run_method(ExplainContext(classifier, image, seed=0), "rise", {"masks": 500, "cell": 6}, [0])[0]
    np.testing.assert_array_equal(again.heatmap, out[0].heatmap)
    other = run_method(ExplainContext(classifier, image, seed=1), "rise", {"masks": 500, "cell": 6}, [0])[0]
    assert not np.array_equal(other.heatmap, out[0].heatmap)
    # a later label costs nothing
    before = classifier.images_seen
    run_method(ctx, "rise", {"masks": 500, "cell": 6}, [1])
    assert classifier.images_seen == before


def test_masks_are_smooth_seeded_and_keep_the_asked_share():
    p = RiseParams(masks=300, cell=8, keep=0.3, batch_size=64)
    masks = np.concatenate(list(mask_batches((40, 40), p, seed=3)))
    assert masks.shape == (300, 40, 40) and masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean() - 0.3) < 0.03
    assert np.abs(np.diff(masks, axis=1)).max() <= 1 / 8 + 1e-6  # bilinear over 8-pixel cells
    again = np.concatenate(list(mask_batches((40, 40), p, seed=3)))
    np.testing.assert_array_equal(masks, again)


def test_progress_and_cancel(classifier, image):
    calls = []

    def progress(done, total, stage):
        calls.append((done, total, stage))
        if done >= 64:
            raise Cancelled()

    ctx = ExplainContext(classifier, image, seed=0, progress=progress)
    with pytest.raises(Cancelled):
        run_method(ctx, "rise", {"masks": 1000, "batch_size": 32}, [0])
    assert calls[0][:2] == (0, 1000) and calls[-1][0] == 64 and "RISE" in calls[-1][2]


def test_bad_parameters():
    for bad in ({"masks": 1}, {"cell": -1}, {"keep": 1.0}, {"keep": 0}, {"fill": "noise"}, {"batch_size": 0}):
        with pytest.raises(ExplainerError):
            make_params(RiseParams, bad)


def test_automatic_cell_is_a_seventh_of_the_shorter_side():
    from explainers.rise import cell_size

    assert cell_size((224, 224), RiseParams()) == 32  # the paper's 7×7 on 224²
    assert cell_size((32, 48), RiseParams()) == 4
    assert cell_size((5, 5), RiseParams()) == 1
    assert cell_size((224, 224), RiseParams(cell=10)) == 10
    masks = np.concatenate(list(mask_batches((35, 35), RiseParams(masks=64, keep=0.5), seed=0)))
    # 5-pixel cells: neighbouring pixels differ by at most 1/5 (bilinear), unlike 1-pixel noise
    assert np.abs(np.diff(masks, axis=1)).max() <= 1 / 5 + 1e-6
