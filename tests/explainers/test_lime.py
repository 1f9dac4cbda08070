"""LIME: lime's own estimator on lime's own rows, known coefficients, surrogates, the method."""
import numpy as np
import pytest

from explainers.base import ExplainerError, make_params
from explainers.lime import LimeParams, fit_lime, lime_kernel, run_lime
from explainers.perturbation import KERNEL_SHARE, PerturbationRun
from explainers.segmentation import segment


def noise_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8)


def presence(images: np.ndarray, image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """z_i = 1 iff segment i shows the original pixels (noise images never equal their fill)."""
    same = (images == image[None]).all(-1)
    return np.stack([same[:, segments == i].all(1) for i in range(int(segments.max()) + 1)], axis=1)


def test_kernel_is_limes():
    Z = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], bool)
    cos = np.array([0.0, 1 - 2 / np.sqrt(2 * 4), 1 - 1 / np.sqrt(4), 1.0])  # empty row: sklearn's 1
    np.testing.assert_allclose(lime_kernel(Z, 0.25), np.sqrt(np.exp(-(cos**2) / 0.25**2)), atol=1e-12)


def test_closed_form_ridge_kernel_and_r2_equal_sklearns():
    from sklearn.linear_model import Ridge
    from sklearn.metrics import pairwise_distances, r2_score

    from explainers.lime import weighted_r2, weighted_ridge

    rng = np.random.default_rng(3)
    Z = (rng.random((300, 17)) < 0.5).astype(float)
    Z[5] = 0.0  # the empty coalition
    y = rng.random(300)
    w = lime_kernel(Z) * rng.uniform(0.2, 2.0, 300)
    d = pairwise_distances(Z, np.ones((1, 17)), metric="cosine").ravel()
    np.testing.assert_allclose(lime_kernel(Z, 0.4), np.sqrt(np.exp(-(d**2) / 0.16)), atol=1e-12)
    for alpha in (1.0, 1e-9, 30.0):
        ref = Ridge(alpha=alpha, fit_intercept=True).fit(Z, y, sample_weight=w)
        coef, intercept = weighted_ridge(Z, y, w, alpha)
        np.testing.assert_allclose(coef, ref.coef_, atol=1e-9)
        assert abs(intercept - ref.intercept_) < 1e-9
        pred = intercept + Z @ coef
        assert abs(weighted_r2(y, pred, w) - r2_score(y, ref.predict(Z), sample_weight=w)) < 1e-9


@pytest.mark.parametrize("label", [0, 2])
def test_same_rows_as_lime_give_limes_explanation(label):
    """Run lime_image itself, recover its coalitions from the images it sent, refit with ours."""
    from lime import lime_image

    img = noise_image(20, 25, seed=1)
    seg = segment(img, "grid", {"rows": 4, "cols": 5})
    proj = np.random.default_rng(2).normal(size=(20, 3))
    captured = []

    def classifier_fn(images):
        images = np.asarray(images)
        captured.append(images.copy())
        z = presence(images, img, seg).astype(float)
        logits = 2.0 * np.tanh(z @ proj + 0.3 * z[:, :1] * z[:, 1:2])
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=7)
    exp = explainer.explain_instance(
        img, classifier_fn, labels=(label,), top_labels=None, hide_color=None,
        num_samples=300, batch_size=50, segmentation_fn=lambda x: seg, random_seed=0,
    )
    images = np.concatenate(captured)
    Z = presence(images, img, seg)
    y = classifier_fn(images)[:, label]
    # our renderer (mean fill, lime's default hide_color=None) gives lime's exact images
    run = PerturbationRun(classifier_fn, img, seg, fill="mean")
    np.testing.assert_array_equal(run.render(Z), images)

    fit = fit_lime(Z, y)
    theirs = np.zeros(20)
    for feature, weight in exp.local_exp[label]:
        theirs[feature] = weight
    np.testing.assert_allclose(fit.coef, theirs, atol=1e-6)
    assert abs(fit.intercept - exp.intercept[label]) < 1e-6
    assert abs(fit.r2 - exp.score) < 1e-6
    assert abs(fit.local_prediction - float(np.ravel(exp.local_pred)[0])) < 1e-6


def _additive_run(m_rows=4, m_cols=5, samples=1000, seed=0, fill="black"):
    img = noise_image(24, 30, seed=seed)
    seg = segment(img, "grid", {"rows": m_rows, "cols": m_cols})
    m = m_rows * m_cols
    c = np.random.default_rng(seed + 10).normal(scale=0.1, size=m)

    def predict(images):
        z = presence(images, img, seg).astype(float)
        return np.stack([0.2 + z @ c, 0.5 - z @ c], axis=1)

    return PerturbationRun(predict, img, seg, fill=fill, seed=seed).extend(samples), c


def test_additive_model_coefficients_are_recovered():
    run, c = _additive_run()
    rows = run.rows()
    exact = fit_lime(rows.Z, rows.Y[:, 0], rows.lime_ratio, LimeParams(alpha=1e-9))
    np.testing.assert_allclose(exact.coef, c, atol=1e-5)
    assert abs(exact.intercept - 0.2) < 1e-5 and exact.r2 > 0.999999
    assert abs(exact.local_prediction - (0.2 + c.sum())) < 1e-5
    # lime's default ridge (alpha=1) shrinks but keeps signs and order
    ridge = fit_lime(rows.Z, rows.Y[:, 0], rows.lime_ratio, LimeParams())
    assert np.array_equal(np.argsort(ridge.coef), np.argsort(c))
    assert np.all(np.sign(ridge.coef) == np.sign(c))
    assert np.linalg.norm(ridge.coef) < np.linalg.norm(c)
    np.testing.assert_allclose(ridge.coef, c, atol=0.01)
    flipped = fit_lime(rows.Z, rows.Y[:, 1], rows.lime_ratio, LimeParams(alpha=1e-9))
    np.testing.assert_allclose(flipped.coef, -c, atol=1e-5)


def test_importance_weights_estimate_limes_uniform_objective():
    """On a non-additive game, our stratified rows + Horvitz–Thompson ratios ≈ lime's objective
    over every coalition: closer than lime's own uniform draw of the same size, for the default
    design and for one tilted towards KernelSHAP (where ignoring the weights is biased)."""
    img = noise_image(10, 12, seed=3)
    seg = segment(img, "grid", {"rows": 1, "cols": 12})
    rng = np.random.default_rng(0)
    c = rng.normal(size=12)

    def game(z):
        z = z.astype(float)
        return 1 / (1 + np.exp(-(z @ c) + 3 * z[:, 0] * z[:, 1]))

    def predict(images):
        return game(presence(images, img, seg))[:, None]

    every = np.array([[(i >> k) & 1 for k in range(12)] for i in range(2**12)], bool)
    target = fit_lime(every, game(every))  # lime's objective with every coalition once
    uniform = np.random.RandomState(0).randint(0, 2, (1200, 12)).astype(bool)
    uniform[0] = True  # lime's own draw: the image, then uniform coalitions
    lime_error = np.abs(fit_lime(uniform, game(uniform)).coef - target.coef).max()
    for share in (KERNEL_SHARE, 1.0):  # the default design, and one tilted towards KernelSHAP
        run = PerturbationRun(predict, img, seg, fill="black", seed=0, kernel_share=share).extend(1200)
        ours = fit_lime(run.Z, run.Y[:, 0], run.lime_weights())
        err = np.abs(ours.coef - target.coef).max()
        assert err < 0.012 and err < 0.7 * lime_error
        if share == 1.0:  # ignoring the design is then clearly biased; the weights undo it
            unweighted = fit_lime(run.Z, run.Y[:, 0])
            assert err < 0.5 * np.abs(unweighted.coef - target.coef).max()


def test_lasso_and_tree_surrogates():
    img = noise_image(16, 16, seed=5)
    seg = segment(img, "grid", {"rows": 4, "cols": 4})

    def predict(images):
        z = presence(images, img, seg).astype(float)
        return (0.1 + 0.6 * z[:, 3] - 0.4 * z[:, 7] + 0.2 * z[:, 3] * z[:, 9])[:, None]

    run = PerturbationRun(predict, img, seg, fill="black").extend(600)
    rows = run.rows()
    lasso = fit_lime(rows.Z, rows.Y[:, 0], rows.lime_ratio, LimeParams(surrogate="lasso", lasso_alpha=0.01))
    assert set(np.nonzero(np.abs(lasso.coef) > 0.02)[0]) == {3, 7, 9}
    assert lasso.coef[3] > 0 > lasso.coef[7]
    tree = fit_lime(rows.Z, rows.Y[:, 0], rows.lime_ratio, LimeParams(surrogate="tree", max_depth=3))
    top = set(np.argsort(-np.abs(tree.coef))[:3])
    assert top == {3, 7, 9} and tree.coef[3] > 0 > tree.coef[7] and tree.coef[9] > 0
    assert abs(tree.local_prediction - 0.5) < 1e-6  # depth 3 reproduces the 3-variable model
    assert tree.r2 > 0.999


@pytest.mark.parametrize(
    "values",
    [{"kernel_width": 0}, {"surrogate": "forest"}, {"alpha": -1}, {"max_depth": 0}, {"lasso_alpha": "x"}, {"width": 1}],
)
def test_bad_parameters(values):
    with pytest.raises(ExplainerError):
        make_params(LimeParams, values)


def test_too_few_rows():
    with pytest.raises(ExplainerError):
        fit_lime(np.ones((1, 3), bool), np.ones(1))


def test_method_on_a_keras_classifier():
    import keras

    from explainers.context import ExplainContext, SamplingParams
    from model_zoo.classifier import Classifier

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    )
    clf = Classifier(model, id="tiny", name="tiny", labels=["a", "b", "c"])
    img = noise_image(16, 16, seed=9)
    ctx = ExplainContext(clf, img, seed=4, segmentation="grid", segmentation_params={"rows": 3, "cols": 3},
                         sampling=SamplingParams(samples=120, fill="gray", batch_size=16))
    params = LimeParams()
    out = run_lime(ctx, params, [0, 2])
    seen = clf.images_seen
    run = ctx.perturbations()
    assert seen == run.model_calls and 0 < run.model_calls <= 120
    assert [e.label for e in out] == [0, 2] and out[1].label_name == "c"
    # The calls this method caused sit on its first result, so summing never double counts.
    assert [e.model_calls for e in out] == [run.model_calls, 0]
    for e in out:
        assert e.method == "lime" and e.heatmap.dtype == np.float32 and e.heatmap.shape == (16, 16)
        np.testing.assert_array_equal(e.heatmap, e.segment_weights[e.segments])
        assert e.extras["shared_calls"] == run.model_calls
        assert e.params["seed"] == 4 and e.params["samples"] == 120 and e.params["fill"] == "gray"
        assert e.params["segmentation"] == "grid" and e.params["kernel_width"] == 0.25
        assert e.extras["surrogate"] == "ridge" and 0 <= e.r2 <= 1
        assert abs(e.score - clf.predict(img[None])[0, e.label]) < 1e-5
        rows = run.rows()
        ref = fit_lime(rows.Z, rows.Y[:, e.label], rows.lime_ratio, params, seed=4)
        np.testing.assert_allclose(e.segment_weights, ref.coef, rtol=1e-6, atol=1e-7)
