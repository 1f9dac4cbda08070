"""Why A rather than B: a tiny real Keras model whose classes A and B differ only in one region.

Class A's logit reads the mean brightness of a "common" cell (weight 6) and of a "region" cell
(weight 2), class B's only the common cell (weight 6), a third class is a constant (3). The
plain maps of A peak on the common cell (it moves A the most); the contrast A − B can only come
from the region cell, so every contrast map peaks there — and the black-box contrasts reuse the
rows of the plain run (0 model calls).
"""
import keras
import numpy as np
import pytest

from explainers.base import ExplainerError
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import explain, run_method

SIZE, CELL = 16, 4
COMMON, REGION = (2, 1), (0, 3)  # grid cells (row, col) of 4×4 pixels
A, B = 0, 1


def cell_mask(cell) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.float32)
    r, c = cell
    m[r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL] = 1.0
    return m


def contrast_classifier():
    """The model of the module docstring (also saved by test_cli_contrast.py)."""
    from model_zoo.classifier import Classifier

    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(1, 1, use_bias=False, activation="relu", name="conv")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    common, region = cell_mask(COMMON).ravel() / CELL**2, cell_mask(REGION).ravel() / CELL**2
    dense = np.stack([6 * common + 2 * region, 6 * common, np.zeros_like(common)], axis=1)
    model.set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), dense.astype(np.float32),
                       np.array([0, 0, 3], np.float32)])
    return Classifier(model, id="contrast", name="contrast", labels=["A", "B", "other"],
                      preprocessing="unit", batch_size=16)


@pytest.fixture(scope="module")
def classifier():
    return contrast_classifier()


@pytest.fixture(scope="module")
def image():
    return np.full((SIZE, SIZE, 3), 200, np.uint8)


def context(classifier, image):
    return ExplainContext(classifier, image, seed=0, segmentation="grid",
                          segmentation_params={"rows": 4, "cols": 4},
                          sampling=SamplingParams(samples=600, fill="black"))


def peak_cell(heatmap: np.ndarray) -> tuple[int, int]:
    cells = heatmap.reshape(4, CELL, 4, CELL).mean(axis=(1, 3))
    r, c = np.unravel_index(int(np.argmax(cells)), cells.shape)
    return int(r), int(c)


METHODS = {
    "lime": None,
    "kernel_shap": None,
    "partition_shap": {"max_evals": 400, "fill": "black", "hierarchy": "balanced"},
    "rise": {"masks": 600, "cell": 4},
    "occlusion": {"window": 4, "stride": 4, "fill": "black"},
    "hirescam": {"layer": "conv"},
    "layercam": {"layer": "conv"},
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_contrast_map_peaks_where_the_classes_differ(classifier, image, name):
    ctx = context(classifier, image)
    plain = run_method(ctx, name, METHODS[name], [A])[0]
    assert peak_cell(plain.heatmap) == COMMON, "the plain map of A peaks on the common cell"
    before = classifier.images_seen
    versus = run_method(ctx, name, METHODS[name], [A], contrast=B)[0]
    extra = classifier.images_seen - before
    assert peak_cell(versus.heatmap) == REGION
    assert versus.contrast == B and versus.label == A and versus.extras["contrast_name"] == "B"
    assert versus.model_calls == extra
    if name not in ("hirescam", "layercam"):  # black-box: the rows already computed
        assert extra == 0
    else:  # one more backward pass for B's gradient (the forward pass is shared)
        assert extra <= 1
    plain_b = run_method(ctx, name, METHODS[name], [B])[0]
    if name in ("lime", "kernel_shap", "rise", "occlusion", "hirescam"):
        # linear in the output: the contrast map is A's map minus B's, exactly
        np.testing.assert_allclose(versus.heatmap, plain.heatmap - plain_b.heatmap, atol=2e-5)
    if name == "partition_shap":  # B's own run spends its budget elsewhere; the same traversal's
        from explainers.partition_shap import PartitionShapParams, partition_run, segment_values

        run, calls = partition_run(ctx, PartitionShapParams(**METHODS[name]), [A])
        res = run.result
        assert calls == 0
        np.testing.assert_allclose(versus.segment_weights,
                                   segment_values(run, res.values[:, A] - res.values[:, B]), atol=1e-9)


def test_runner_and_bad_contrasts(classifier, image):
    ctx = context(classifier, image)
    results = explain(ctx, ["kernel_shap", "rise"], labels=[A], contrast=B)
    assert {r.method for r in results} == {"kernel_shap", "rise"} and all(r.contrast == B for r in results)
    with pytest.raises(ExplainerError, match="rather than itself"):
        run_method(ctx, "lime", None, [A], contrast=A)
    with pytest.raises(ExplainerError, match="out of range"):
        run_method(ctx, "lime", None, [A], contrast=7)
    with pytest.raises(ExplainerError, match="cannot explain one label rather than another"):
        explain(ctx, ["eigencam"], labels=[A], contrast=B)


def test_caption_says_where_the_two_labels_differ(classifier, image):
    from explainers.summary import contrast_caption

    ctx = context(classifier, image)
    results = explain(ctx, ["kernel_shap", "hirescam"], labels=[A], contrast=B)
    text = contrast_caption(results)
    assert text.startswith("What makes it **A** rather than **B**")
    assert "the upper" in text and "KernelSHAP estimate" in text and "kernel_shap" not in text  # REGION is cell (0, 3)
    only_cam = contrast_caption([r for r in results if r.method == "hirescam"])
    assert "the upper right of the picture favours A" in only_cam
    assert contrast_caption(explain(ctx, ["kernel_shap"], labels=[A])) == ""  # not a contrast


def test_store_contrast_reuses_the_plain_run_of_the_request(classifier, image):
    """The Compare page's path: plain results for the request's labels, then A rather than B for
    a pair of them — Partition SHAP reads the traversal made for both labels, no model call."""
    from explainers.store import ExplanationStore, PreparedImage, RunRequest

    store = ExplanationStore()
    prepared = PreparedImage(pixels=image, fitted=None, key="grey")
    req = RunRequest(methods=(("partition_shap", (("max_evals", 300), ("fill", "black"))), ("lime", ())),
                     labels=(A, B), samples=300, fill="black", segmentation="grid",
                     segmentation_params=(("cols", 4), ("rows", 4)))
    for name, _ in req.methods:
        store.compute(classifier, prepared, req, name)
    before = classifier.images_seen
    versus = {name: store.contrast(classifier, prepared, req, name, A, B) for name, _ in req.methods}
    assert classifier.images_seen == before
    assert all(v.contrast == B and v.label == A for v in versus.values())
    assert peak_cell(versus["lime"].heatmap) == REGION


def test_caption_claims_only_regions_whose_sign_is_settled():
    """Known answers on a hand-made contrast: four quadrant regions, weights +0.30 (upper left)
    and −0.20 (upper right); what the caption claims follows their standard errors."""
    from explainers.base import Explanation
    from explainers.summary import contrast_caption

    segments = np.zeros((8, 8), dtype=np.int32)
    segments[:4, 4:], segments[4:, :4], segments[4:, 4:] = 1, 2, 3
    weights = np.array([0.30, -0.20, 0.02, 0.0])

    def caption(std):
        exp = Explanation(method="kernel_shap", label=0, label_name="A", score=0.4,
                          heatmap=weights[segments], segments=segments, segment_weights=weights,
                          segment_std=np.asarray(std, dtype=np.float64), contrast=1,
                          extras={"contrast_name": "B", "contrast_score": 0.3})
        return contrast_caption([exp])

    settled = caption([0.05, 0.05, 0.05, 0.05])
    assert "upper left of the picture, which raises A over B by about 30 points" in settled
    assert "upper right leans towards B (about 20 points)" in settled
    assert "cancel" not in settled  # 40 % vs 30 %: pulls of 30 and 20 points around a 10-point gap
    mixed = caption([0.5, 0.05, 0.05, 0.05])  # the upper left's sign is not settled
    assert "no region clearly raises A over B" in mixed and "30 points" not in mixed
    assert "upper right leans towards B" in mixed
    none = caption([0.5, 0.5, 0.5, 0.5])
    assert "do not yet settle which regions favour A or B" in none and "points" not in none


def _halves_caption(pa: float, pb: float) -> str:
    """The caption of a hand-made contrast: left half +0.30, right half −0.28 (both settled)."""
    from explainers.base import Explanation
    from explainers.summary import contrast_caption

    segments = np.zeros((8, 8), dtype=np.int32)
    segments[:, 4:] = 1
    weights = np.array([0.30, -0.28])
    exp = Explanation(method="kernel_shap", label=0, label_name="A", score=pa, heatmap=weights[segments],
                      segments=segments, segment_weights=weights, segment_std=np.full(2, 0.02), contrast=1,
                      extras={"contrast_name": "B", "contrast_score": pb})
    return contrast_caption([exp])


def test_caption_says_when_large_pulls_cancel_around_a_small_gap():
    """+30 and −28 points between answers 2 points apart: the text says the pulls cancel."""
    text = _halves_caption(0.38, 0.36)
    assert "by about 30 points" in text and "(about 28 points)" in text
    assert "these pulls largely cancel out, which is why the two answers differ by only 2.0 points" in text
    assert "(38.0% vs 36.0%)" in text  # close answers get a decimal, so the gap matches what is shown


def test_the_stated_gap_is_the_gap_between_the_numbers_shown():
    """38.46 % vs 36.54 % are shown as 38.5 % vs 36.5 %: the text says 2.0 points, not 1.9."""
    text = _halves_caption(0.3846, 0.3654)
    assert "(38.5% vs 36.5%)" in text and "differ by only 2.0 points" in text, text
