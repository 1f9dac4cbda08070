"""KernelSHAP: exact Shapley values by enumeration, known answers when sampled, agreement with
shap.KernelExplainer, and one set of model calls for LIME + KernelSHAP."""
import math

import numpy as np
import pytest

from explainers.base import ExplainerError, make_params
from explainers.kernel_shap import KernelShapParams, fit_kernel_shap, run_kernel_shap
from explainers.perturbation import PerturbationRun
from explainers.segmentation import segment


def noise_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8)


def presence(images: np.ndarray, image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    same = (images == image[None]).all(-1)
    return np.stack([same[:, segments == i].all(1) for i in range(int(segments.max()) + 1)], axis=1)


def strip_setup(m: int, seed: int = 0):
    """An image of m vertical one-pixel-wide segments (presence is cheap to read back)."""
    img = noise_image(4, m, seed=seed)
    seg = np.tile(np.arange(m, dtype=np.int32), (4, 1))
    return img, seg


def game_model(img, seg, game):
    return lambda images: np.asarray(game(presence(images, img, seg)), dtype=np.float32)[:, None]


def brute_force_shapley(game, m: int) -> np.ndarray:
    """φ_i = Σ_S |S|!(M-|S|-1)!/M! (v(S∪i) − v(S)) over all 2^M coalitions."""
    every = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(bool)
    v = np.asarray(game(every), dtype=np.float64)
    size = every.sum(1)
    w = np.array([math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)])
    phi = np.zeros(m)
    for i in range(m):
        without = np.nonzero(~every[:, i])[0]
        phi[i] = np.sum(w[size[without]] * (v[without | (1 << i)] - v[without]))
    return phi


def fit_run(run, label=0, l2=0.0):
    rows = run.rows()
    return fit_kernel_shap(rows.Z, rows.Y[:, label], rows.shapley_weight, rows.Y[0, label], rows.Y[1, label], l2)


def nonadditive_game(m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=m)
    A = rng.normal(scale=0.5, size=(m, m))

    def game(z):
        z = z.astype(float)
        return 1 / (1 + np.exp(-(0.5 * z @ c + np.einsum("ni,ij,nj->n", z, A, z) * 0.3 - 0.2)))

    return game


def test_additive_model_exact_when_enumerated_and_sampled():
    c = np.random.default_rng(0).normal(scale=0.1, size=20)
    img, seg = strip_setup(8)
    run = PerturbationRun(game_model(img, seg, lambda z: 0.3 + z @ c[:8]), img, seg, fill="black").extend(256)
    assert run.exhaustive
    fit = fit_run(run)
    np.testing.assert_allclose(fit.values, c[:8], atol=1e-6)
    assert abs(fit.base_value - 0.3) < 1e-6 and fit.efficiency_gap < 1e-6
    img, seg = strip_setup(20)
    run = PerturbationRun(game_model(img, seg, lambda z: 0.3 + z @ c), img, seg, fill="black").extend(300)
    assert not run.exhaustive
    np.testing.assert_allclose(fit_run(run).values, c, atol=1e-5)


@pytest.mark.parametrize("m", [3, 7, 10])
def test_enumerated_run_gives_exact_shapley_values(m):
    game = nonadditive_game(m, seed=m)
    img, seg = strip_setup(m, seed=m)
    run = PerturbationRun(game_model(img, seg, game), img, seg, fill="mean").extend(2**m)
    assert run.exhaustive
    fit = fit_run(run)
    phi = brute_force_shapley(game, m)
    np.testing.assert_allclose(fit.values, phi, atol=1e-6)
    full, empty = game(np.ones((1, m), bool))[0], game(np.zeros((1, m), bool))[0]
    assert abs(fit.values.sum() - (full - empty)) < 1e-6 and fit.efficiency_gap < 1e-9
    assert abs(fit.base_value - empty) < 1e-6


def test_paired_sampling_is_exact_for_quadratic_games():
    """With complement pairs, KernelSHAP is exact for games of order ≤ 2 (here M = 30, sampled)."""
    m = 30
    rng = np.random.default_rng(4)
    c, A = rng.normal(size=m), rng.normal(scale=0.2, size=(m, m))
    np.fill_diagonal(A, 0)
    game = lambda z: 0.1 + z.astype(float) @ c + np.einsum("ni,ij,nj->n", z.astype(float), A, z.astype(float))  # noqa: E731
    img, seg = strip_setup(m)
    run = PerturbationRun(game_model(img, seg, game), img, seg, fill="black", seed=1).extend(500)
    phi = c + (A.sum(0) + A.sum(1)) / 2  # each pair's interaction split equally
    np.testing.assert_allclose(fit_run(run).values, phi, atol=2e-5)


def test_size_intercepts_make_size_only_games_exact_from_any_rows():
    """v depends on |z| only: every Shapley value is Δ/M. The per-size intercepts absorb such
    a trend exactly on sampled rows; one common intercept (plain KernelSHAP) does not."""
    m = 25
    img, seg = strip_setup(m)
    game = lambda z: 1 / (1 + np.exp(-(z.sum(1) - 10.0) / 3.0))  # noqa: E731
    run = PerturbationRun(game_model(img, seg, game), img, seg, fill="black", seed=2).extend(120)
    fit = fit_run(run)
    delta = game(np.ones((1, m), bool))[0] - game(np.zeros((1, m), bool))[0]
    np.testing.assert_allclose(fit.values, delta / m, atol=1e-12)
    rows = run.rows()
    w = rows.shapley_weight / rows.shapley_weight.sum()
    Z = rows.Z.astype(float)
    X = (Z[:, :-1] - Z[:, -1:]) * np.sqrt(w)[:, None]
    t = (rows.Y[:, 0] - rows.Y[1, 0] - Z[:, -1] * delta) * np.sqrt(w)
    head = np.linalg.lstsq(X, t, rcond=None)[0]  # Lundberg & Lee's single-intercept estimator
    plain = np.append(head, delta - head.sum())
    assert np.abs(plain - delta / m).max() > 1e-3


def test_agrees_with_shap_kernel_explainer():
    import shap

    m = 10
    game = nonadditive_game(m, seed=5)
    img, seg = strip_setup(m, seed=5)
    model = game_model(img, seg, game)
    exact_run = PerturbationRun(model, img, seg, fill="blur").extend(1024)
    f = lambda masks: model(exact_run.render(masks > 0.5))[:, 0]  # noqa: E731  shap's f over masks
    np.random.seed(0)
    explainer = shap.KernelExplainer(f, np.zeros((1, m)))
    theirs = np.ravel(explainer.shap_values(np.ones((1, m)), nsamples=2048, silent=True))  # enumerates
    assert abs(explainer.expected_value - exact_run.Y[1, 0]) < 1e-6
    np.testing.assert_allclose(fit_run(exact_run).values, theirs, atol=1e-6)
    # sampled (400 rows < 2^10): within sampling error of the exact values, like shap's own
    sampled = PerturbationRun(model, img, seg, fill="blur", seed=0).extend(400)
    ours = fit_run(sampled).values
    np.random.seed(0)
    theirs_sampled = np.ravel(
        explainer.shap_values(np.ones((1, m)), nsamples=sampled.model_calls, silent=True, l1_reg=False)
    )
    rmse = lambda v: float(np.sqrt(np.mean((v - theirs) ** 2)))  # noqa: E731
    assert rmse(ours) < 0.05 * np.abs(theirs).max()  # ignoring q (plain kernel weights) fails this
    assert rmse(ours) < 2.5 * rmse(theirs_sampled) + 1e-3


def test_l2_shrinks_but_keeps_efficiency():
    m = 12
    game = nonadditive_game(m, seed=2)
    img, seg = strip_setup(m, seed=2)
    run = PerturbationRun(game_model(img, seg, game), img, seg, fill="black").extend(200)
    plain, ridge = fit_run(run), fit_run(run, l2=1.0)
    assert ridge.efficiency_gap < 1e-9
    assert np.var(ridge.values) < np.var(plain.values)


def test_bad_inputs():
    with pytest.raises(ExplainerError):
        make_params(KernelShapParams, {"l2": -1})
    with pytest.raises(ExplainerError):
        make_params(KernelShapParams, {"l2": "a"})
    Z = np.array([[1, 0], [0, 1]], bool)
    with pytest.raises(ExplainerError):
        fit_kernel_shap(Z, np.ones(2), np.array([-1.0, 1.0]), 1.0, 0.0)
    with pytest.raises(ExplainerError):
        fit_kernel_shap(Z, np.ones(3), np.ones(2), 1.0, 0.0)
    with pytest.raises(ExplainerError):
        fit_kernel_shap(Z, np.ones(2), np.zeros(2), 1.0, 0.0)  # nothing between empty and full
    one = fit_kernel_shap(np.ones((2, 1), bool), np.ones(2), np.zeros(2), 0.7, 0.2)
    assert np.allclose(one.values, [0.5])


@pytest.fixture(scope="module")
def tiny_classifier():
    import keras

    from model_zoo.classifier import Classifier

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    )
    return Classifier(model, id="tiny", name="tiny", labels=["a", "b", "c"], batch_size=16)


def test_lime_then_kernel_shap_share_one_set_of_model_calls(tiny_classifier):
    from explainers.context import ExplainContext, SamplingParams
    from explainers.lime import LimeParams, run_lime

    clf = tiny_classifier
    img = noise_image(12, 12, seed=3)
    ctx = ExplainContext(clf, img, seed=1, segmentation="grid", segmentation_params={"rows": 4, "cols": 4},
                         sampling=SamplingParams(samples=200, fill="mean", batch_size=16))
    start = clf.images_seen
    lime_out = run_lime(ctx, LimeParams(), [0, 1])
    after_lime = clf.images_seen
    run = ctx.perturbations()
    calls = run.model_calls
    assert after_lime - start == calls > 0
    shap_out = run_kernel_shap(ctx, KernelShapParams(), [0, 1])
    assert clf.images_seen == after_lime and run.model_calls == calls  # no new model calls
    assert [e.model_calls for e in lime_out] == [calls, 0]
    assert [e.model_calls for e in shap_out] == [0, 0]  # everything came from LIME's pass
    for e in shap_out + lime_out:
        assert e.extras["shared_calls"] == calls and e.params["samples"] == 200
    for e in shap_out:
        assert e.method == "kernel_shap"
        np.testing.assert_array_equal(e.heatmap, e.segment_weights[e.segments])
        assert abs(e.base_value - run.Y[1, e.label]) < 1e-7
        assert abs(e.local_prediction - run.Y[0, e.label]) < 1e-6  # efficiency: f(∅) + Σφ = f(x)
        assert e.extras["efficiency_gap"] < 1e-6 and e.extras["exact"] is False


def test_exhaustive_context_gives_exact_shapley_values_of_the_keras_model(tiny_classifier):
    from explainers.context import ExplainContext, SamplingParams

    clf = tiny_classifier
    img = noise_image(12, 12, seed=8)
    ctx = ExplainContext(clf, img, seed=0, segmentation="grid", segmentation_params={"rows": 2, "cols": 3},
                         sampling=SamplingParams(samples=64, fill="gray"))
    out = run_kernel_shap(ctx, KernelShapParams(), [2])[0]
    run = ctx.perturbations()
    assert run.exhaustive and out.extras["exact"]
    game = lambda z: clf.predict(run.render(z))[:, 2]  # noqa: E731  the model's probability
    np.testing.assert_allclose(out.segment_weights, brute_force_shapley(game, 6), atol=1e-6)


def test_registered_methods_run_through_the_runner(tiny_classifier):
    from explainers.base import get_method
    from explainers.context import ExplainContext, SamplingParams
    from explainers.runner import explain

    assert get_method("lime").title == "LIME" and get_method("lime").family == "perturbation"
    assert get_method("kernel_shap").title == "KernelSHAP" and get_method("kernel_shap").family == "perturbation"
    clf = tiny_classifier
    ctx = ExplainContext(clf, noise_image(12, 12, seed=5), seed=2, segmentation="grid",
                         segmentation_params=None, sampling=SamplingParams(samples=80))
    start = clf.images_seen
    out = explain(ctx, {"kernel_shap": {"l2": 0.0}, "lime": {"surrogate": "lasso"}}, top_k=2)
    assert sorted((e.method, e.label) for e in out) == sorted(
        (m, label) for m in ("lime", "kernel_shap") for label in ctx.top_labels(2)
    )
    run = ctx.perturbations()
    assert clf.images_seen - start == run.model_calls + 1  # + the one forward pass for top-k
    assert out[0].params["segmentation_params"] == {"rows": 8, "cols": 8}


@pytest.mark.parametrize("rows", [3, 11, 40, 300])
def test_normal_equation_solve_is_the_minimum_norm_least_squares_solution(rows):
    """The fast solver equals lstsq's minimum-norm answer, also with fewer rows than segments."""
    from explainers.kernel_shap import _min_norm_solve

    rng = np.random.default_rng(rows)
    X = rng.random((rows, 12))
    X -= X.mean(axis=1, keepdims=True)  # centred rows: 1 is in the null space
    t = rng.random(rows)
    expected = np.linalg.lstsq(X, t, rcond=None)[0]
    np.testing.assert_allclose(_min_norm_solve(X.T @ X, X.T @ t), expected, atol=1e-10)
