"""The shared perturbation engine: deterministic design, vectorised rendering, fills,
extension, deduplication, cancellation and the exhaustive switch.

The "models" are numpy functions that read which segments are present from the rendered
pixels, so every check on Y is a check that the right images were rendered and predicted.
"""
import itertools

import numpy as np
import pytest
from scipy.special import comb

from explainers.base import Cancelled, ExplainerError
from explainers.perturbation import (
    BLOCK,
    PerturbationRun,
    enumeration,
    fill_image,
    kernel_size_probabilities,
    log_q,
    log_shapley_kernel,
    sample_block,
)
from explainers.segmentation import segment


def noise_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Pixels 1..254 all differ from black and (almost surely) from their segment's mean."""
    return np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8)


class PresenceModel:
    """f(images) = game(z) where z_i = 1 iff segment i shows the original pixels."""

    def __init__(self, image, segments, game):
        self.image, self.segments, self.game = image, segments, game
        self.m = int(segments.max()) + 1
        self.images_seen = 0

    def presence(self, images: np.ndarray) -> np.ndarray:
        same = (images == self.image[None]).all(-1)  # (N, H, W)
        return np.stack([same[:, self.segments == i].all(1) for i in range(self.m)], axis=1)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.images_seen += len(images)
        return np.asarray(self.game(self.presence(images)), dtype=np.float32)


def linear_game(m: int, seed: int = 0):
    c = np.random.default_rng(seed).normal(size=(m, 3))
    return lambda z: 0.1 + z.astype(float) @ c


@pytest.fixture
def setup():
    img = noise_image(24, 30)
    seg = segment(img, "grid", {"rows": 4, "cols": 5})
    return img, seg, PresenceModel(img, seg, linear_game(20))


def test_anchor_rows_and_complement_pairs(setup):
    img, seg, model = setup
    run = PerturbationRun(model, img, seg, fill="black", seed=3).extend(200)
    Z = run.Z
    assert Z.shape == (200, 20) and Z.dtype == bool
    assert Z[0].all() and not Z[1].any()
    assert np.array_equal(Z[2::2], ~Z[3::2])
    assert not run.exhaustive


def test_every_row_is_the_model_on_its_rendered_image(setup):
    img, seg, model = setup
    run = PerturbationRun(model, img, seg, fill="black", seed=1).extend(300)
    assert np.array_equal(model.presence(run.render(run.Z)), run.Z)
    np.testing.assert_array_equal(run.Y, model.game(run.Z).astype(np.float32))


def test_duplicates_are_predicted_once(setup):
    img, seg, model = setup
    run = PerturbationRun(model, img, seg, fill="black", seed=1, batch_size=16).extend(1000)
    distinct = len(np.unique(np.packbits(run.Z, axis=1), axis=0))
    assert run.model_calls == model.images_seen == distinct < run.n


@pytest.mark.parametrize("first,second", [(67, 300), (2, 130), (130, 131), (64, 66)])
def test_extending_gives_exactly_the_rows_of_a_fresh_run(setup, first, second):
    img, seg, model = setup
    grown = PerturbationRun(model, img, seg, fill="mean", seed=5, batch_size=7)
    grown.extend(first)
    calls_first = grown.model_calls
    grown.extend(second)
    fresh = PerturbationRun(PresenceModel(img, seg, model.game), img, seg, fill="mean", seed=5).extend(second)
    assert np.array_equal(grown.Z, fresh.Z)
    np.testing.assert_array_equal(grown.Y, fresh.Y)
    assert grown.model_calls == fresh.model_calls  # nothing computed twice
    assert grown.model_calls >= calls_first
    assert grown.extend(second - 1).n == second  # never shrinks


def test_seed_decides_the_design(setup):
    img, seg, model = setup
    a = PerturbationRun(model, img, seg, seed=0).extend(150)
    b = PerturbationRun(model, img, seg, seed=0).extend(150)
    c = PerturbationRun(model, img, seg, seed=1).extend(150)
    assert np.array_equal(a.Z, b.Z) and np.array_equal(a.Y, b.Y)
    assert not np.array_equal(a.Z, c.Z)
    assert np.array_equal(a.Z[2 : 2 + BLOCK], sample_block(20, 0, 0))


def test_progress_counts_this_calls_rows_and_cancellation_keeps_a_consistent_state(setup):
    img, seg, model = setup
    run = PerturbationRun(model, img, seg, fill="black", seed=2, batch_size=10)
    run.extend(40)
    seen = []

    def progress(done, total, stage):
        seen.append((done, total, stage))
        if len(seen) == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        run.extend(400, progress=progress)
    assert [t for _, t, _ in seen] == [360] * 3 and seen[0][2] == "perturbation"
    assert seen[0][0] < seen[1][0] < seen[2][0]
    assert run.n == 40 + seen[-1][0]
    assert run.eta_seconds is not None and run.eta_seconds >= 0
    np.testing.assert_array_equal(run.Y, model.game(run.Z).astype(np.float32))  # rows match
    calls_before = run.model_calls
    done = []
    run.extend(400, progress=lambda d, t, s: done.append((d, t)))
    assert done[-1] == (400 - 40 - seen[-1][0],) * 2
    fresh = PerturbationRun(model, img, seg, fill="black", seed=2).extend(400)
    assert np.array_equal(run.Z, fresh.Z) and np.array_equal(run.Y, fresh.Y)
    assert run.model_calls == fresh.model_calls > calls_before


def test_rendering_a_known_mask():
    img = noise_image(6, 8)
    seg = segment(img, "grid", {"rows": 2, "cols": 2})  # 3×4 cells
    run = PerturbationRun(lambda x: np.zeros((len(x), 1)), img, seg, fill="#0a141e")
    out = run.render(np.array([[True, False, False, True], [False, True, True, False]]))
    assert out.shape == (2, 6, 8, 3) and out.dtype == np.uint8
    colour = np.array([10, 20, 30], np.uint8)
    np.testing.assert_array_equal(out[0, :3, :4], img[:3, :4])  # segment 0 present
    np.testing.assert_array_equal(out[0, :3, 4:], np.broadcast_to(colour, (3, 4, 3)))  # 1 hidden
    np.testing.assert_array_equal(out[0, 3:, :4], np.broadcast_to(colour, (3, 4, 3)))  # 2 hidden
    np.testing.assert_array_equal(out[0, 3:, 4:], img[3:, 4:])  # 3 present
    shown_in_first = np.isin(seg, [0, 3])[..., None]
    np.testing.assert_array_equal(out[1], np.where(shown_in_first, colour, img))  # the complement
    with pytest.raises(ExplainerError):
        run.render(np.ones((1, 5), bool))


def test_rendering_equals_the_per_pixel_definition():
    img = noise_image(40, 50, seed=6)
    seg = segment(img, "slic", {"n_segments": 30})
    for fill in ("mean", "blur", "#7f0011"):
        run = PerturbationRun(lambda x: np.zeros((len(x), 1)), img, seg, fill=fill)
        Z = np.random.default_rng(1).random((9, run.num_segments)) < 0.5
        reference = np.where(Z[:, seg][..., None], img[None], run.fill_image[None])
        np.testing.assert_array_equal(run.render(Z), reference)


def test_fills():
    img = noise_image(20, 20, seed=4)
    seg = segment(img, "grid", {"rows": 2, "cols": 2})
    assert not fill_image(img, seg, "black").any()
    assert (fill_image(img, seg, "gray") == 128).all()
    assert (fill_image(img, seg, "#ff0080") == np.array([255, 0, 128], np.uint8)).all()
    # mean: lime_image's construction (float mean assigned into a uint8 copy)
    lime_fudged = img.copy()
    for x in np.unique(seg):
        lime_fudged[seg == x] = tuple(np.mean(img[seg == x][:, c]) for c in range(3))
    np.testing.assert_array_equal(fill_image(img, seg, "mean"), lime_fudged)
    from skimage.filters import gaussian

    blurred = gaussian(img.astype(float), sigma=1.0, channel_axis=-1, preserve_range=True)
    np.testing.assert_array_equal(fill_image(img, seg, "blur"), np.round(blurred).astype(np.uint8))  # 20/20
    assert np.abs(fill_image(img, seg, "blur", blur_sigma=3.0).astype(int) - 128).mean() < np.abs(img.astype(int) - 128).mean()
    for bad in ("purple", "#12345", "#gg0000"):
        with pytest.raises(ExplainerError):
            fill_image(img, seg, bad)


def test_design_density_and_weights():
    m = 8
    every = enumeration(m, seed=0)
    assert len(np.unique(np.packbits(every, axis=1), axis=0)) == 2**m
    assert np.isclose(np.exp(log_q(every)).sum(), 1.0)  # q is a distribution
    s = np.arange(m + 1)
    assert np.allclose(kernel_size_probabilities(m)[1:m], (1 / (s[1:m] * (m - s[1:m]))) / np.sum(1 / (s[1:m] * (m - s[1:m]))))
    pi = np.exp(log_shapley_kernel(every))
    size = every.sum(1)
    assert pi[size == 0].sum() == 0 and pi[size == m].sum() == 0
    assert np.allclose(pi[size == 1], (m - 1) / (m * 1 * (m - 1)))
    # empirical size frequencies of the sampled rows match q's size marginal
    rows = np.concatenate([sample_block(m, 11, b) for b in range(300)])
    freq = np.bincount(rows.sum(1), minlength=m + 1) / len(rows)
    expected = 0.5 * comb(m, s) / 2**m + 0.5 * kernel_size_probabilities(m)
    assert np.abs(freq - expected).max() < 0.01


def test_importance_ratios_average_to_one():
    img = noise_image(10, 30)
    seg = segment(img, "grid", {"rows": 1, "cols": 30})
    run = PerturbationRun(lambda x: np.zeros((len(x), 2)), img, seg, seed=0).extend(6000)
    rows = run.rows()
    assert rows.lime_ratio[:2].tolist() == [1.0, 1.0] and rows.shapley_weight[:2].tolist() == [0.0, 0.0]
    assert rows.lime_ratio.max() <= 2.0 + 1e-12  # bounded: lime's distribution is half of q
    assert abs(rows.lime_ratio[2:].mean() - 1.0) < 0.05  # E_q[p/q] = 1
    # E_q[π/q] = Σ π = Σ_s (M-1)/(s(M-s))
    total_pi = np.sum([(30 - 1) / (s * (30 - s)) for s in range(1, 30)])
    assert abs(rows.shapley_weight[2:].mean() / total_pi - 1.0) < 0.05
    assert run.rows(100).n == 100 and np.array_equal(run.rows(100).Z, run.Z[:100])


def test_exhaustive_when_all_coalitions_fit():
    img = noise_image(8, 8)
    seg = segment(img, "grid", {"rows": 2, "cols": 2})
    model = PresenceModel(img, seg, linear_game(4))
    run = PerturbationRun(model, img, seg, fill="black").extend(16)
    assert run.exhaustive and run.n == 16 and run.model_calls == 16
    assert len(np.unique(np.packbits(run.Z, axis=1), axis=0)) == 16
    assert run.Z[0].all() and not run.Z[1].any() and np.array_equal(run.Z[2::2], ~run.Z[3::2])
    assert (run.rows().lime_ratio == 1).all()
    assert run.extend(1000).n == 16  # nothing more to compute
    sampled = PerturbationRun(model, img, seg, fill="black").extend(15)
    assert not sampled.exhaustive and sampled.n == 15


def test_switching_to_enumeration_reuses_predictions_and_survives_cancellation():
    img = noise_image(8, 12)
    seg = segment(img, "grid", {"rows": 2, "cols": 3})
    model = PresenceModel(img, seg, linear_game(6))
    run = PerturbationRun(model, img, seg, fill="black", batch_size=8).extend(40)
    before = run.model_calls
    Z_before = run.Z.copy()

    def cancel(done, total, stage):
        raise Cancelled()

    with pytest.raises(Cancelled):
        run.extend(64, progress=cancel)
    assert not run.exhaustive and np.array_equal(run.Z, Z_before)  # untouched
    run.extend(64)
    assert run.exhaustive and run.n == 64
    assert run.model_calls == model.images_seen == 64  # each coalition predicted exactly once
    assert before < 64
    np.testing.assert_array_equal(run.Y, model.game(run.Z).astype(np.float32))


def test_bad_inputs_raise_clear_errors():
    img = noise_image(8, 8)
    seg = segment(img, "grid", {"rows": 2, "cols": 2})
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: x, img, seg + 1)  # ids not 0..M-1
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: x, img, seg[:4])
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: x, img.astype(float), seg)
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: x, img, seg, fill="nope")
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: np.zeros((len(x),)), img, seg).extend(10)
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: np.full((len(x), 2), np.nan), img, seg).extend(10)
    with pytest.raises(ExplainerError):
        PerturbationRun(lambda x: np.zeros((len(x), 2)), img, seg).extend(0)


def test_enumeration_order_is_complement_pairs():
    every = enumeration(5, seed=1)
    pairs = {frozenset(map(tuple, [every[i].tolist(), every[i + 1].tolist()])) for i in range(2, 32, 2)}
    expected = {
        frozenset([z, tuple(not b for b in z)])
        for z in itertools.product([False, True], repeat=5)
        if 0 < sum(z) < 5
    }
    assert pairs == expected
