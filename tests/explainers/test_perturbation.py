"""The shared perturbation engine: the stratified design without repeats and its weights,
vectorised rendering, fills, extension, cancellation and complete enumeration.

The "models" are numpy functions that read which segments are present from the rendered
pixels, so every check on Y is a check that the right images were rendered and predicted.
"""
import heapq
import itertools

import numpy as np
import pytest
from scipy.special import comb

from explainers.base import Cancelled, ExplainerError
from explainers.perturbation import (
    PerturbationRun,
    design,
    design_weights,
    fill_image,
    log_shapley_kernel,
    pair_schedule,
    render,
    render_index,
    strata,
    stratum_pairs,
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


def test_no_coalition_is_drawn_twice(setup):
    """n rows are n distinct coalitions, so n model calls (no repeats to deduplicate)."""
    img, seg, model = setup
    run = PerturbationRun(model, img, seg, fill="black", seed=1, batch_size=16).extend(1000)
    distinct = len(np.unique(np.packbits(run.Z, axis=1), axis=0))
    assert run.model_calls == model.images_seen == distinct == run.n == 1000


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
    assert np.array_equal(a.Z, design(20, 0, 0, 150)) and np.array_equal(a.Z[40:90], design(20, 0, 40, 90))


def test_progress_counts_this_calls_rows_and_cancellation_keeps_a_consistent_state(setup):
    img, seg, model = setup
    run = PerturbationRun(model, img, seg, fill="black", seed=2, batch_size=10)
    run.extend(40)
    seen, stages = [], []

    def progress(done, total, stage):
        stages.append(stage)
        if stage != "perturbation":
            return
        seen.append((done, total, stage))
        if len(seen) == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        run.extend(400, progress=progress)
    assert stages[0] == "sampling"  # drawing the coalitions reports (and can be cancelled) first
    assert [t for _, t, _ in seen] == [360] * 3
    assert seen[0][0] < seen[1][0] < seen[2][0]
    assert run.n == 40 + seen[-1][0]
    assert run.eta_seconds is not None and run.eta_seconds >= 0
    np.testing.assert_array_equal(run.Y, model.game(run.Z).astype(np.float32))  # rows match
    calls_before = run.model_calls
    done = []
    run.extend(400, progress=lambda d, t, s: done.append((d, t)) if s == "perturbation" else None)
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


def sainte_lague(shares, caps, slots):
    """The textbook apportionment, one slot at a time (a heap of a_j / (c_j + ½))."""
    counts = [0] * len(shares)
    heap = [(-a / 0.5, j) for j, a in enumerate(shares)]
    heapq.heapify(heap)
    order = []
    while len(order) < slots and heap:
        _, j = heapq.heappop(heap)
        order.append(j)
        counts[j] += 1
        if counts[j] < caps[j]:
            heapq.heappush(heap, (-shares[j] / (counts[j] + 0.5), j))
    return order


@pytest.mark.parametrize("m", [7, 12, 35])
def test_pair_schedule_is_the_sainte_lague_apportionment_and_prefix_stable(m):
    st = strata(m)
    assert np.isclose(st.shares.sum(), 1.0) and (st.shares > 0).all()
    assert st.pairs[0] == m and (m % 2 or st.pairs[-1] == comb(m, m // 2, exact=True) // 2)
    slots = min(700, st.total_pairs)
    expected = sainte_lague(st.shares.tolist(), st.pairs.tolist(), slots)
    schedule = pair_schedule(m, slots)
    np.testing.assert_array_equal(schedule, expected)
    np.testing.assert_array_equal(pair_schedule(m, slots // 3), schedule[: slots // 3])


def test_strata_are_drawn_without_replacement_and_uniformly():
    m = 40  # pair stratum 4 has C(40, 4) = 91 390 pairs: seeded draws that skip repeats
    for j in (1, 3, 4, 20):
        first = stratum_pairs(m, j, seed=3, count=3000)
        assert (first.sum(1) == j).all()
        canonical = first if 2 * j != m else np.where(first[:, :1], first, ~first)
        assert len(np.unique(np.packbits(canonical, axis=1), axis=0)) == len(first)
        if j == 20:  # segment 0 marks the middle pairs; every other one is in about half
            assert first[:, 0].all()
            assert np.abs(first[:, 1:].mean(0) - 19 / 39).max() < 0.05
    assert len(stratum_pairs(m, 1, 3, 3000)) == 40  # a small stratum is exhausted: all of it
    np.testing.assert_array_equal(stratum_pairs(m, 4, 3, 50), stratum_pairs(m, 4, 3, 3000)[:50])
    assert not np.array_equal(stratum_pairs(m, 4, 3, 50), stratum_pairs(m, 4, 4, 50))


def test_design_enumerates_every_coalition_once_in_complement_pairs():
    for m in (1, 2, 5, 8):
        every = design(m, seed=1, start=0, stop=10**6)
        assert len(every) == 2**m
        assert len(np.unique(np.packbits(every, axis=1), axis=0)) == 2**m
        assert every[0].all() and not every[1].any()
        assert np.array_equal(every[2::2], ~every[3::2])


def test_horvitz_thompson_weights_recover_the_targets_size_by_size():
    """Summed over the rows of one size, the weights give that size's exact target mass."""
    m = 30
    Z = design(m, seed=0, start=0, stop=3001)  # odd: the last pair is incomplete
    lime, shapley, log_q = design_weights(Z)
    assert lime[:2].tolist() == [1.0, 1.0] and shapley[:2].tolist() == [0.0, 0.0]
    assert np.isnan(log_q[:2]).all()
    s = Z[2:].sum(1)
    sizes = np.unique(s)
    assert sizes.tolist() == list(range(1, m))  # every size has rows
    for size in sizes:
        rows = 2 + np.nonzero(s == size)[0]
        kernel_mass = (m - 1) / (size * (m - size))  # Σ of π(z) over all C(M,s) coalitions
        assert np.isclose(shapley[rows].sum(), kernel_mass)
        np.testing.assert_allclose(np.exp(log_q[rows]), len(rows) / 2999 / comb(m, size))
    np.testing.assert_allclose(shapley[2:], np.exp(log_shapley_kernel(Z[2:]) - log_q[2:]) / 2999)
    # LIME: ratio ∝ 2^−M C(M,s) / n_s, summing to the number of sampled rows
    assert np.isclose(lime[2:].sum(), 2999)
    uniform_mass = comb(m, sizes) / 2.0**m
    per_row = uniform_mass / np.array([(s == k).sum() for k in sizes])
    np.testing.assert_allclose(lime[2:], (per_row / uniform_mass.sum() * 2999)[s - 1])


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


def test_extending_to_every_coalition_reuses_rows_and_survives_cancellation():
    img = noise_image(8, 12)
    seg = segment(img, "grid", {"rows": 2, "cols": 3})
    model = PresenceModel(img, seg, linear_game(6))
    run = PerturbationRun(model, img, seg, fill="black", batch_size=8).extend(40)
    Z_before = run.Z.copy()

    def cancel_sampling(done, total, stage):
        raise Cancelled()

    with pytest.raises(Cancelled):  # cancelled while drawing coalitions: nothing changes
        run.extend(64, progress=cancel_sampling)
    assert run.n == 40 and np.array_equal(run.Z, Z_before)

    def cancel(done, total, stage):
        if stage == "perturbation":
            raise Cancelled()

    with pytest.raises(Cancelled):
        run.extend(64, progress=cancel)
    assert not run.exhaustive and run.n == 48  # the first batch of 8 was committed
    assert np.array_equal(run.Z[:40], Z_before)  # earlier rows untouched
    np.testing.assert_array_equal(run.Y, model.game(run.Z).astype(np.float32))
    run.extend(64)
    assert run.exhaustive and run.n == 64 and run.rows().exhaustive and not run.rows(63).exhaustive
    assert run.model_calls == model.images_seen == 64  # each coalition predicted exactly once
    np.testing.assert_array_equal(run.Y, model.game(run.Z).astype(np.float32))
    assert np.array_equal(run.Z, design(6, 0, 0, 64))


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
    with pytest.raises(ExplainerError, match="kernel share"):
        PerturbationRun(lambda x: np.zeros((len(x), 2)), img, seg, kernel_share=1.5)


def test_enumeration_order_is_complement_pairs():
    every = design(5, seed=1, start=0, stop=32)
    pairs = {frozenset(map(tuple, [every[i].tolist(), every[i + 1].tolist()])) for i in range(2, 32, 2)}
    expected = {
        frozenset([z, tuple(not b for b in z)])
        for z in itertools.product([False, True], repeat=5)
        if 0 < sum(z) < 5
    }
    assert pairs == expected


def test_render_into_a_reused_buffer():
    img = noise_image(30, 40, seed=2)
    seg = segment(img, "slic", {"n_segments": 20})
    fill = fill_image(img, seg, "mean")
    Z = np.random.default_rng(0).random((7, int(seg.max()) + 1)) < 0.5
    buffer = np.zeros((9, 30, 40, 3), np.uint8)
    out = render(img, fill, seg, Z, out=buffer, index=render_index(seg))
    assert out.shape == (7, 30, 40, 3) and np.shares_memory(out, buffer)
    np.testing.assert_array_equal(out, np.where(Z[:, seg][..., None], img[None], fill[None]))


# ----------------------------------------------------------------------------- limits (issue 8)
def test_pair_counts_match_exact_binomials_including_the_cap_and_the_middle():
    from explainers.perturbation import pair_counts

    for m in list(range(1, 70)) + [121, 130, 131, 200]:
        j = np.arange(1, m // 2 + 1)
        exact = [min(comb(m, int(k), exact=True), 1 << 62) for k in j]
        if m % 2 == 0 and len(j):
            exact[-1] //= 2  # old formula: cap, then halve the middle stratum
        assert pair_counts(m).tolist() == exact, m


def test_strata_for_huge_m_do_only_a_handful_of_exact_binomials(monkeypatch):
    from explainers import perturbation

    calls = []
    real = perturbation._exact_comb
    monkeypatch.setattr(perturbation, "_exact_comb", lambda m, k: calls.append(k) or real(m, k))
    for m in (10_000, 50_176):
        calls.clear()
        strata.cache_clear()
        st = strata(m)
        # C(M, j) < 2^62 only for the smallest j (j ≤ 5 at M = 10 000, ≤ 4 at 50 176)
        assert 1 <= len(calls) <= 6 and max(calls) <= 6
        assert len(st.pairs) == m // 2 and np.all(np.isfinite(st.shares))
        assert abs(st.shares.sum() - 1.0) < 1e-9 and np.all(st.shares > 0)
        assert st.pairs[0] == m and st.pairs[-2] == 1 << 62 and st.total_pairs == 1 << 62
    strata.cache_clear()


def test_the_engine_refuses_more_than_max_segments_with_advice():
    from explainers.perturbation import MAX_SEGMENTS

    img = noise_image(32, 64)
    seg = np.arange(32 * 64, dtype=np.int32).reshape(32, 64) % (MAX_SEGMENTS + 1)
    with pytest.raises(ExplainerError, match=r"1,001 superpixels.*at most 1,000.*coarser grid"):
        PerturbationRun(lambda x: np.ones((len(x), 2)), img, seg)
    ok = seg % MAX_SEGMENTS
    run = PerturbationRun(lambda x: np.ones((len(x), 2), np.float32), img, ok)
    assert run.num_segments == MAX_SEGMENTS
