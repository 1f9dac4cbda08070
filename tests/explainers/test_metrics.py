"""Trust metrics with known answers: deletion / insertion on a model whose score is the mean
brightness of a square, agreement, stability of a deterministic method, convergence and the
bootstrap on additive games, pointing game and mask IoU."""
from __future__ import annotations

import numpy as np
import pytest

from explainers import metrics as M
from explainers.base import Explanation, ExplainerError
from explainers.cam import CamParams
from explainers.context import ExplainContext, SamplingParams
from explainers.lime import LimeParams
from explainers.perturbation import PerturbationRun
from explainers.runner import run_method
from model_zoo.classifier import Classifier
from tests.models import box_model, small_cnn

SIZE = 32
BOX = (4, 20, 4, 20)  # rows 4..19, cols 4..19: spans 3×3 cells of the 4×4 grid, 4 of them partly
GRID = {"rows": 4, "cols": 4}


# ----------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def region_model() -> Classifier:
    return box_model(BOX, SIZE)


@pytest.fixture(scope="module")
def tiny_cnn() -> Classifier:
    return small_cnn(3, SIZE)


def bright_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def true_cell_weights(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Exact contribution of each cell to the box score (black fill)."""
    gray = image.astype(np.float64).mean(-1) / 255.0
    box = np.zeros(segments.shape, bool)
    box[BOX[0] : BOX[1], BOX[2] : BOX[3]] = True
    return np.bincount(segments[box], weights=gray[box], minlength=int(segments.max()) + 1) / box.sum()


# ----------------------------------------------------------------------------- deletion / insertion
def test_deletion_and_insertion_known_answers(region_model):
    img = bright_image()
    ctx = ExplainContext(region_model, img, segmentation="grid", segmentation_params=GRID,
                         sampling=SamplingParams(samples=64, fill="black"))
    seg = ctx.segments()
    w = true_cell_weights(img, seg)
    assert (w > 0).sum() == 9  # the box touches 9 of the 16 cells
    run = PerturbationRun(region_model.predict, img, seg, fill="black")  # render only: no rows
    before = region_model.images_seen
    f = M.faithfulness(run, {"true": w, "reverse": -w}, 1, steps=17, random_orders=5, seed=0)
    # every coalition is predicted once, and only those are counted
    assert region_model.images_seen - before == f.model_calls == f.distinct < f.coalitions
    score = float(region_model.predict(img[None])[0, 1])
    # additive model: the deletion curve is f(x) minus the weights removed so far
    order = np.argsort(-w, kind="stable")
    expected = score - np.concatenate([[0], np.cumsum(w[order])])
    np.testing.assert_allclose(f.deletion["true"].scores, expected, atol=1e-5)
    np.testing.assert_allclose(f.insertion["true"].scores, score - expected, atol=1e-5)
    np.testing.assert_allclose(f.deletion["true"].fractions, np.arange(17) / 16)
    assert f.deletion["true"].auc == pytest.approx(np.trapezoid(expected, np.arange(17) / 16), abs=1e-5)
    # true ordering < random < reverse for deletion; the other way round for insertion
    assert f.deletion["true"].auc < f.random_deletion.auc < f.deletion["reverse"].auc
    assert f.insertion["true"].auc > f.random_insertion.auc > f.insertion["reverse"].auc
    # the reverse order removes the 7 empty cells first: the score does not move
    np.testing.assert_allclose(f.deletion["reverse"].scores[:8], score, atol=1e-5)
    assert f.deletion["true"].area_fractions[-1] == 1.0 and f.insertion["true"].area_fractions[0] == 0.0


def test_curves_reuse_the_perturbation_rows_and_earlier_calls(region_model):
    img = bright_image(1)
    ctx = ExplainContext(region_model, img, segmentation="grid", segmentation_params=GRID,
                         sampling=SamplingParams(samples=64, fill="black"))
    run = ctx.perturbations()
    w = true_cell_weights(img, ctx.segments())
    known: dict = {}
    before = region_model.images_seen
    f = M.faithfulness(run, {"true": w}, 1, steps=5, random_orders=2, known=known)
    in_run = {r.tobytes() for r in np.packbits(run.Z, axis=1)}
    orders = [np.argsort(-w, kind="stable")] + [
        np.random.default_rng([0, M._RANDOM_ORDER_KEY, r]).permutation(16) for r in range(2)
    ]
    Z = np.concatenate([M.curve_coalitions(o, M.step_counts(16, 5), kind)
                        for o in orders for kind in ("deletion", "insertion")])
    wanted = {r.tobytes() for r in np.packbits(Z, axis=1)}
    assert f.coalitions == len(Z) == 30 and f.distinct == len(wanted)
    assert f.model_calls == len(wanted - in_run) == region_model.images_seen - before
    assert len(wanted & in_run) >= 2  # at least the image and the black image (rows 0 and 1)
    # asking again costs nothing: every coalition is in the run or in ``known``
    before = region_model.images_seen
    again = M.faithfulness(run, {"true": w}, 1, steps=5, random_orders=2, known=known)
    assert again.model_calls == 0 and region_model.images_seen == before
    np.testing.assert_allclose(again.deletion["true"].scores, f.deletion["true"].scores)


def test_step_counts_and_bad_inputs():
    np.testing.assert_array_equal(M.step_counts(4, 16), [0, 1, 2, 3, 4])  # no duplicate steps
    assert len(M.step_counts(100, 16)) == 16
    with pytest.raises(ExplainerError):
        M.step_counts(10, 1)
    with pytest.raises(ValueError, match="curve"):
        M.curve_coalitions(np.arange(3), np.array([0, 1]), "sideways")


# ----------------------------------------------------------------------------- agreement
def test_agreement_known_answers():
    a = np.array([5.0, 4, 3, 2, 1, 0])
    assert M.rank_correlation(a, a) == 1.0 and M.top_n_iou(a, a, 2) == 1.0
    assert M.rank_correlation(a, -a) == pytest.approx(-1.0)
    b = a[::-1].copy()  # top-2 {4, 5} vs {0, 1}: disjoint
    assert M.top_n_iou(a, b, 2) == 0.0
    assert M.top_n_iou(a, np.array([5.0, 0, 4, 0, 0, 0]), 2) == pytest.approx(1 / 3)
    assert np.isnan(M.rank_correlation(a, np.ones(6)))
    ag = M.agreement({"x": a, "same": a.copy(), "flipped": b}, top_n=2)
    assert ag.methods == ("x", "same", "flipped")
    np.testing.assert_array_equal(np.diag(ag.rank_corr), 1.0)
    assert ag.rank_corr[0, 1] == 1.0 and ag.top_iou[0, 1] == 1.0
    assert ag.top_iou[0, 2] == ag.top_iou[2, 0] == 0.0
    np.testing.assert_allclose(ag.rank_corr, ag.rank_corr.T)


def test_pool_to_segments_known_answer():
    seg = np.zeros((4, 4), np.int32)
    seg[:, 2:] = 1
    seg[3, :] = 2
    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(M.pool_to_segments(heat, seg), [np.mean([0, 1, 4, 5, 8, 9]),
                                                               np.mean([2, 3, 6, 7, 10, 11]), 13.5])
    # a low-resolution map is resized to the segments first: a constant stays constant
    np.testing.assert_allclose(M.pool_to_segments(np.full((2, 2), 3.0), seg), 3.0)
    # a superpixel result on the same segments keeps its weights exactly
    wts = np.array([0.1, -0.2, 0.3])
    res = Explanation("lime", 0, "a", 1.0, wts[seg], segments=seg, segment_weights=wts)
    np.testing.assert_array_equal(M.segment_scores(res, seg), np.float32(wts).astype(np.float64))
    with pytest.raises(ExplainerError):
        M.pool_to_segments(np.ones(4), seg)


# ----------------------------------------------------------------------------- stability
def test_deterministic_method_is_perfectly_stable_and_seed_zero_reuses_the_run(tiny_cnn):
    img = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    ctx = ExplainContext(tiny_cnn, img, seed=4, segmentation="grid", segmentation_params=GRID,
                         sampling=SamplingParams(samples=48))
    (lime,) = run_method(ctx, "lime", None, [0])
    before = tiny_cnn.images_seen
    st = M.stability(ctx, {"gradcam": CamParams(), "lime": LimeParams()}, 0, seeds=3,
                     noise_sigma=3.0, top_n=4)
    g = st["gradcam"]
    assert g.seed_iou == 1.0 and g.seed_rank_corr == 1.0
    assert len(g.seed_maps) == 3 and len(g.noise_maps) == 3
    assert 0.0 <= g.noise_iou <= 1.0
    # seed ctx.seed on the same samples reuses the original rows: the same map
    np.testing.assert_allclose(st["lime"].seed_maps[0], lime.segment_weights)
    assert 0.0 <= st["lime"].seed_iou <= 1.0
    # 3 gradcam passes per experiment; LIME: 2 new seeds and 2 noisy copies of ≤ 48 rows
    calls = tiny_cnn.images_seen - before
    assert 6 <= calls <= 5 + 4 * 48
    # the stability contexts are cached: asking again costs nothing
    before = tiny_cnn.images_seen
    again = M.stability(ctx, {"lime": LimeParams()}, 0, seeds=3, noise_sigma=3.0, top_n=4)
    assert tiny_cnn.images_seen == before
    assert again["lime"].seed_iou == st["lime"].seed_iou


def test_noisy_image_is_seeded_and_small():
    img = np.full((64, 64, 3), 128, np.uint8)
    a, b = M.noisy_image(img, 3.0, 0, 1), M.noisy_image(img, 3.0, 0, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, M.noisy_image(img, 3.0, 0, 2))
    assert 2.5 < np.std(a.astype(float) - 128) < 3.5
    np.testing.assert_array_equal(M.noisy_image(img, 0.0, 0, 1), img)


def test_stability_rejects_bad_settings(tiny_cnn):
    ctx = ExplainContext(tiny_cnn, np.zeros((SIZE, SIZE, 3), np.uint8), segmentation="grid",
                         segmentation_params=GRID)
    with pytest.raises(ExplainerError, match="seeds"):
        M.stability(ctx, {"gradcam": None}, 0, seeds=0)
    with pytest.raises(ExplainerError, match="noise"):
        M.stability(ctx, {"gradcam": None}, 0, noise_sigma=-1)


# ----------------------------------------------------------------------------- convergence
def strips(m: int, seed: int = 0):
    img = np.random.default_rng(seed).integers(1, 255, (4, m, 3), dtype=np.uint8)
    return img, np.tile(np.arange(m, dtype=np.int32), (4, 1))


def game_predict(img, seg, game, counter):
    """A model that reads which strips show the image (fill black) and returns game(z)."""

    def predict(images):
        same = (images == img[None]).all(-1)
        z = np.stack([same[:, seg == i].all(1) for i in range(seg.shape[1])], axis=1)
        counter.append(len(images))
        y = np.asarray(game(z), dtype=np.float64)
        return np.stack([1 - y, y], axis=1).astype(np.float32)

    return predict


def additive_game(m: int, noise: float, seed: int = 0):
    """f = b + Σ c_i z_i, plus (if noise > 0) a deterministic pseudo-random term of z."""
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=0.05, size=m)
    h = rng.normal(size=m) * 37.0

    def game(z):
        z = z.astype(np.float64)
        return 0.4 + z @ c + noise * np.sin(z @ h)

    return game, c


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_convergence_error_falls_with_samples(method):
    m = 12
    img, seg = strips(m)
    calls: list[int] = []
    game, c = additive_game(m, noise=0.02)
    run = PerturbationRun(game_predict(img, seg, game, calls), img, seg, fill="black").extend(800)
    spent = sum(calls)
    conv = M.convergence(run, method, 1)
    assert sum(calls) == spent  # no model call: re-fits on prefixes of the rows
    np.testing.assert_array_equal(conv.samples, [25, 50, 100, 200, 400, 800])
    assert conv.rel_error[-1] == 0.0 and conv.rank_corr[-1] == 1.0
    err = dict(zip(conv.samples.tolist(), conv.rel_error))
    assert err[25] > err[100] > err[400] and err[25] > 3 * err[400]
    # purely additive: KernelSHAP is exact with any rows, LIME's ridge shrinkage fades with n
    pure, _ = additive_game(m, noise=0.0)
    run = PerturbationRun(game_predict(img, seg, pure, calls), img, seg, fill="black").extend(800)
    conv = M.convergence(run, method, 1)
    if method == "kernel_shap":  # exact once the rows determine the 11 free values
        assert conv.rel_error[1:].max() < 1e-5
    else:
        assert np.all(np.diff(conv.rel_error) < 0)


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_bootstrap_std_shrinks_with_more_rows(method):
    m = 12
    img, seg = strips(m, seed=1)
    calls: list[int] = []
    game, _ = additive_game(m, noise=0.05, seed=1)
    run = PerturbationRun(game_predict(img, seg, game, calls), img, seg, fill="black").extend(800)
    spent = sum(calls)
    small = M.bootstrap_std(run, method, 1, n=100, rounds=40, seed=0)
    large = M.bootstrap_std(run, method, 1, n=800, rounds=40, seed=0)
    assert sum(calls) == spent
    assert small.shape == (m,) and np.all(large > 0)
    assert small.mean() > 1.8 * large.mean()  # ≈ √8 expected
    np.testing.assert_array_equal(small, M.bootstrap_std(run, method, 1, n=100, rounds=40, seed=0))
    # an exhaustive run is exact: no sampling uncertainty
    img4, seg4 = strips(4)
    run = PerturbationRun(game_predict(img4, seg4, additive_game(4, 0.05)[0], calls), img4, seg4,
                          fill="black").extend(16)
    assert run.exhaustive
    np.testing.assert_array_equal(M.bootstrap_std(run, method, 1), 0.0)


def test_bootstrap_refits_kernel_shap_without_its_surrogate():
    """The resamples are fitted plain (for_stability); convergence keeps the surrogate."""
    m = 12
    img, seg = strips(m, seed=2)
    game, _ = additive_game(m, noise=0.05, seed=2)
    run = PerturbationRun(game_predict(img, seg, game, []), img, seg, fill="black").extend(300)
    plain = M.bootstrap_std(run, "kernel_shap", 1, {"surrogate": "none"}, rounds=10, seed=0)
    np.testing.assert_array_equal(M.bootstrap_std(run, "kernel_shap", 1, rounds=10, seed=0), plain)
    np.testing.assert_array_equal(M.bootstrap_std(run, "kernel_shap", 1, {"surrogate": "kernel"}, rounds=10, seed=0),
                                  plain)
    with_kernel = M.fit_weights(run.rows(), "kernel_shap", 1, {"surrogate": "kernel"})
    assert not np.allclose(with_kernel, M.fit_weights(run.rows(), "kernel_shap", 1, {"surrogate": "none"}))


def test_convergence_only_for_perturbation_methods():
    img, seg = strips(4)
    run = PerturbationRun(game_predict(img, seg, additive_game(4, 0)[0], []), img, seg).extend(8)
    with pytest.raises(ExplainerError, match="convergence"):
        M.convergence(run, "gradcam", 1)


# ----------------------------------------------------------------------------- ground truth
def test_pointing_game_known_answers():
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:10] = True
    heat = np.zeros((20, 20))
    heat[7, 7] = 1.0
    assert M.pointing_game(heat, mask) is True
    heat = np.zeros((20, 20))
    heat[7, 13] = 1.0  # 4 pixels right of the mask's edge (column 9)
    assert M.pointing_game(heat, mask) is False
    assert M.pointing_game(heat, mask, tolerance=3) is False
    assert M.pointing_game(heat, mask, tolerance=4) is True
    assert M.pointing_game(np.ones((20, 20)), mask) is False  # a constant map points nowhere
    plateau = np.zeros((20, 20))
    plateau[5:10, 3:10] = 1.0  # 25 of its 35 maximal pixels are on the object
    assert M.pointing_game(plateau, mask) is True
    plateau[5:10, 0:5] = 1.0  # now 25 of 50: still half
    plateau[10, 0:5] = 1.0  # 25 of 55: a miss
    assert M.pointing_game(plateau, mask) is False
    # a low-resolution map is resized to the mask: peak in the upper-left quarter
    assert M.pointing_game(np.array([[1.0, 0], [0, 0]]), np.pad(np.ones((10, 10), bool), ((0, 10), (0, 10))))


def test_mask_iou_known_answers():
    mask = np.zeros((16, 32), bool)
    mask[:8, :16] = True  # 128 pixels, a quarter of the image
    assert M.mask_iou(mask.astype(float), mask) == 1.0
    heat = np.zeros((16, 32))
    heat[:8, 8:24] = 1.0  # the top quarter of the map, half on the object
    assert M.mask_iou(heat, mask) == pytest.approx(64 / 192)
    assert M.mask_iou(heat, mask, top_fraction=0.25) == pytest.approx(1 / 3)
    seg = np.repeat(np.repeat(np.arange(8, dtype=np.int32).reshape(2, 4), 8, 0), 8, 1)  # 8×8 cells
    scores = np.array([0.0, 5, 4, 0, 0, 0, 0, 0])  # cells 1 and 2: columns 8..23 of the top half
    assert M.segments_mask_iou(scores, seg, mask, top_n=2) == pytest.approx(64 / 192)
    assert M.segments_mask_iou(np.array([5.0, 4, 0, 0, 0, 0, 0, 0]), seg, mask, top_n=2) == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [(np.zeros((4, 4), bool), "empty"), (np.ones((3, 4), bool), "mask is 3×4"),
     (np.full((4, 4), 7), "boolean")],
)
def test_bad_masks_are_rejected_in_one_line(bad, message):
    with pytest.raises(ValueError, match=message):
        M.check_mask(bad, (4, 4))
