"""CAM family: hand-computed known answers, nested transfer models, shared forward pass."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.decomposition import PCA

from explainers import cam
from explainers.base import ExplainerError, get_method, make_params
from explainers.context import ExplainContext
from model_zoo.classifier import Classifier

ALL_CAMS = ("gradcam", "gradcam_pp", "xgradcam", "layercam", "hirescam", "scorecam", "eigencam")


def run(ctx: ExplainContext, name: str, labels, **params):
    spec = get_method(name)
    return spec.run(ctx, make_params(spec.params_type, params), list(labels))


def image(size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# ---------------------------------------------------------------------- known answer
@pytest.fixture(scope="module")
def linear_cam_model():
    """conv (known kernel, stride 2, no bias) → global average pool → dense (known weights).

    For this model ∂S_c/∂A_ijk = W[k, c] / (h·w) everywhere, so every gradient CAM has a
    closed form in terms of the conv output A, which numpy computes independently.
    """
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("conv").set_weights([kernel])
    model.get_layer("head").set_weights([weights, bias])
    clf = Classifier(model, id="linear", name="linear", preprocessing="unit")
    return clf, kernel, weights


def _conv_same_stride2(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # TF "same" padding with stride 2 on an even size pads 0 before and 1 after.
    padded = np.pad(x, ((0, 1), (0, 1), (0, 0)))
    patches = sliding_window_view(padded, (3, 3), axis=(0, 1))[::2, ::2]  # (4, 4, 3, 3, 3)
    return np.einsum("ijcuv,uvck->ijk", patches, kernel.astype(np.float64))


def _expected(name: str, a: np.ndarray, w: np.ndarray, c: int) -> np.ndarray:
    hw = a.shape[0] * a.shape[1]
    g = w[:, c].astype(np.float64) / hw  # constant gradient per channel
    if name in ("gradcam", "hirescam", "xgradcam"):  # equal when the gradient is constant
        raw = a @ g
    elif name == "layercam":
        raw = a @ np.maximum(g, 0)
    elif name == "gradcam_pp":
        alpha = 1.0 / (2.0 + a.sum(axis=(0, 1)) * g)  # g²/(2g² + ΣA·g³)
        raw = a @ (hw * alpha * np.maximum(g, 0))
    return raw


@pytest.mark.parametrize("name", ["gradcam", "gradcam_pp", "xgradcam", "layercam", "hirescam"])
def test_gradient_cams_match_hand_computed_maps(linear_cam_model, name):
    clf, kernel, weights = linear_cam_model
    img = image(8, seed=3)
    a = _conv_same_stride2(img.astype(np.float64) / 255.0, kernel)
    ctx = ExplainContext(clf, img)
    results = run(ctx, name, [0, 1, 2], upsampling="nearest")
    for res in results:
        raw = _expected(name, a, weights, res.label)
        tol = 1e-5 * max(1.0, np.abs(raw).max())
        np.testing.assert_allclose(res.extras["low_res_signed"], raw, atol=tol)
        np.testing.assert_allclose(res.extras["low_res"], np.maximum(raw, 0), atol=tol)
        # nearest upsampling 4×4 → 8×8 repeats each cell in a 2×2 block; no normalisation
        np.testing.assert_allclose(res.heatmap, np.kron(np.maximum(raw, 0), np.ones((2, 2))), atol=tol)
        assert res.extras["low_res_shape"] == (4, 4) and res.extras["layer"] == "conv"
    # the three labels really have different maps (signed maps; ReLU may blank some)
    signed = [r.extras["low_res_signed"] for r in results]
    assert not np.allclose(signed[0], signed[1]) and not np.allclose(signed[1], signed[2])


def test_score_is_the_model_probability_without_extra_calls(linear_cam_model):
    clf, _, _ = linear_cam_model
    img = image(8, seed=4)
    expected = clf.predict(img[None])[0]
    before = clf.images_seen
    results = run(ExplainContext(clf, img), "gradcam", [0, 1, 2])
    assert clf.images_seen - before == 1
    np.testing.assert_allclose([r.score for r in results], expected, atol=1e-5)


def test_score_of_a_single_sigmoid_unit_model():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    keras.utils.set_random_seed(5)
    clf = Classifier(keras.Model(inp, out), id="s", name="s", preprocessing="unit")
    img = image(8, seed=5)
    results = run(ExplainContext(clf, img), "gradcam", [0, 1])
    np.testing.assert_allclose([r.score for r in results], clf.predict(img[None])[0], atol=1e-5)


# ---------------------------------------------------------------------- nested transfer models
def _base(name: str = "base") -> keras.Model:
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    return keras.Model(inp, x, name=name)


@pytest.fixture(scope="module")
def transfer_models():
    """The same weights as a functional model around a sub-model, a Sequential around it and
    a flat functional model."""
    keras.utils.set_random_seed(7)
    base = _base()
    inp = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inp))
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    nested = keras.Model(inp, out)

    base2 = _base()
    seq = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            base2,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    base2.set_weights(base.get_weights())

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    flat = keras.Model(inp, out)
    flat.set_weights(nested.get_weights())
    for m in (seq,):
        for name in ("hidden", "head"):
            m.get_layer(name).set_weights(nested.get_layer(name).get_weights())

    make = lambda m, i: Classifier(m, id=i, name=i, preprocessing="unit")  # noqa: E731
    return make(nested, "nested"), make(seq, "sequential"), make(flat, "flat")


def test_gradcam_through_nested_models_equals_flat_twin(transfer_models):
    nested, seq, flat = transfer_models
    assert nested.cam_layer == "base/conv2" and seq.cam_layer == "base/conv2"
    img = image(16, seed=8)
    np.testing.assert_allclose(nested.predict(img[None]), flat.predict(img[None]), atol=1e-6)
    np.testing.assert_allclose(seq.predict(img[None]), flat.predict(img[None]), atol=1e-6)
    want = run(ExplainContext(flat, img), "gradcam", [0, 1, 2])
    for clf in (nested, seq):
        got = run(ExplainContext(clf, img), "gradcam", [0, 1, 2])
        for g, w in zip(got, want):
            assert g.extras["layer"] == "base/conv2"
            scale = max(1e-6, float(np.abs(w.heatmap).max()))
            np.testing.assert_allclose(g.heatmap, w.heatmap, atol=1e-5 * scale)
            np.testing.assert_allclose(g.extras["low_res_signed"], w.extras["low_res_signed"], atol=1e-5 * scale)
    assert any(float(np.abs(w.extras["low_res_signed"]).max()) > 0 for w in want)


def test_layer_by_nested_path_and_bad_names(transfer_models):
    nested, _, flat = transfer_models
    img = image(16, seed=9)
    got = run(ExplainContext(nested, img), "gradcam", [1], layer="base/conv1")[0]
    want = run(ExplainContext(flat, img), "gradcam", [1], layer="conv1")[0]
    assert got.extras["low_res_shape"] == (16, 16) and got.extras["layer"] == "base/conv1"
    scale = max(1e-6, float(np.abs(want.extras["low_res_signed"]).max()))
    np.testing.assert_allclose(got.extras["low_res_signed"], want.extras["low_res_signed"], atol=1e-5 * scale)

    ctx = ExplainContext(nested, img)
    seen = nested.images_seen
    with pytest.raises(ExplainerError, match="'base/conv9' is not a convolutional"):
        run(ctx, "gradcam", [0], layer="base/conv9")
    with pytest.raises(ExplainerError, match="did you mean base/conv1"):
        run(ctx, "layercam", [0], layer="conv1")
    with pytest.raises(ExplainerError, match="upsampling must be"):
        run(ctx, "gradcam", [0], upsampling="linear")
    with pytest.raises(ExplainerError, match="max channels"):
        run(ctx, "scorecam", [0], max_channels=0)
    with pytest.raises(ExplainerError, match="unknown parameter"):
        run(ctx, "gradcam", [0], layers="conv1")
    assert nested.images_seen == seen  # bad input is rejected before any model call


def test_model_without_feature_layer_gives_clear_error():
    inp = keras.Input((4, 4, 3))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))
    clf = Classifier(keras.Model(inp, out), id="d", name="d")
    with pytest.raises(ExplainerError, match="no convolutional"):
        run(ExplainContext(clf, image(4)), "gradcam", [0])


# ---------------------------------------------------------------------- the whole family
@pytest.fixture(scope="module")
def cnn():
    """A small CNN whose head is not a global pool, so gradients vary over space."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="tanh")(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    return Classifier(keras.Model(inp, out), id="cnn", name="cnn", preprocessing="unit")


def test_every_variant_is_finite_label_specific_and_deterministic(cnn):
    img = image(16, seed=12)
    first = {n: run(ExplainContext(cnn, img, seed=1), n, [0, 1]) for n in ALL_CAMS}
    again = {n: run(ExplainContext(cnn, img, seed=1), n, [0, 1]) for n in ALL_CAMS}
    for name in ALL_CAMS:
        a, b = first[name]
        assert a.method == name and a.label == 0 and b.label == 1
        assert a.heatmap.shape == (16, 16) and a.heatmap.dtype == np.float32
        assert np.isfinite(a.heatmap).all() and np.isfinite(b.heatmap).all()
        assert a.extras["layer"] == "conv2" and a.extras["low_res_shape"] == (8, 8)
        for x, y in zip(first[name], again[name]):
            np.testing.assert_array_equal(x.heatmap, y.heatmap)
        if name == "eigencam":  # class-agnostic by definition
            np.testing.assert_array_equal(a.heatmap, b.heatmap)
        else:
            assert not np.allclose(a.extras["low_res_signed"], b.extras["low_res_signed"])
            assert a.heatmap.min() >= 0  # after the ReLU the method defines
    # the variants are not one method under different names
    maps = [first[n][0].extras["low_res_signed"] for n in ("gradcam", "gradcam_pp", "layercam", "hirescam")]
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            assert not np.allclose(maps[i], maps[j])


def test_gradient_cams_share_one_forward_pass(cnn):
    ctx = ExplainContext(cnn, image(16, seed=13))
    before = cnn.images_seen
    results = []
    for name in ("gradcam", "gradcam_pp", "layercam"):
        results += run(ctx, name, [0, 2])
    assert cnn.images_seen - before == 1
    assert sum(r.model_calls for r in results) == 1
    assert all(r.extras["shared_calls"] == 1 for r in results)
    # a new label needs one more forward (with its own backward) and nothing else
    run(ctx, "xgradcam", [1])
    assert cnn.images_seen - before == 2


def test_score_cam_batched_calls_and_known_weights(cnn):
    img = image(16, seed=14)
    ctx = ExplainContext(cnn, img)
    before = cnn.images_seen
    results = run(ctx, "scorecam", [0, 1, 2], max_channels=5, batch_size=2)
    used = results[0].extras["channels_used"]
    assert 1 <= used <= 5 and results[0].extras["channels_total"] == 8
    # one forward for the feature maps + one masked image per channel + the black baseline
    assert cnn.images_seen - before == 1 + used + 1
    assert sum(r.model_calls for r in results) == cnn.images_seen - before
    # other labels later: no new calls
    run(ctx, "scorecam", [1], max_channels=5, batch_size=2)
    assert cnn.images_seen - before == 1 + used + 1

    # independent recomputation of the weights for label 1
    entry = ctx.cache[("cam", "conv2")]
    a = entry.features
    top = np.argsort(-a.mean(axis=(0, 1)), kind="stable")[:5]
    top = [k for k in top if a[..., k].max() > a[..., k].min()]
    probs_black = cnn.predict(np.zeros_like(img)[None])[0]
    raw = np.zeros(a.shape[:2])
    nearest = run(ExplainContext(cnn, img), "scorecam", [1], max_channels=5, upsampling="nearest")[0]
    for k in top:
        up = np.kron(a[..., k], np.ones((2, 2)))
        mask = (up - up.min()) / (up.max() - up.min())
        masked = np.rint(img * mask[..., None]).astype(np.uint8)
        gain = cnn.predict(masked[None])[0][1] - probs_black[1]
        raw += gain * a[..., k]
    np.testing.assert_allclose(nearest.extras["low_res_signed"], raw, atol=1e-5 * max(1e-3, np.abs(raw).max()))


def test_eigencam_is_the_first_principal_component_without_gradients(cnn):
    img = image(16, seed=15)
    ctx = ExplainContext(cnn, img)
    before = cnn.images_seen
    results = run(ctx, "eigencam", [0, 1])
    assert cnn.images_seen - before == 1
    assert ctx.cache[("cam", "conv2")].grads == {}  # feature maps only
    # independent: Keras sub-model for the features, scikit-learn PCA for the component
    sub = keras.Model(cnn.model.inputs[0], cnn.model.get_layer("conv2").output)
    a = np.asarray(sub(img[None].astype(np.float32) / 255.0))[0].reshape(-1, 8)
    proj = PCA(n_components=1, svd_solver="full").fit_transform(a)[:, 0]
    if np.corrcoef(proj, a.mean(axis=1))[0, 1] < 0:
        proj = -proj
    np.testing.assert_allclose(results[0].extras["low_res"].ravel(), proj, atol=1e-4 * np.abs(proj).max())
    assert results[0].extras["class_agnostic"] is True
    assert results[0].heatmap.min() < 0 < results[0].heatmap.max()  # signed, not ReLU'd


def _independent_activations_and_gradients(clf: Classifier, img: np.ndarray, label: int):
    """A and ∂logit/∂A from plain Keras layers and a GradientTape (no Classifier replay)."""
    import tensorflow as tf

    m = clf.model
    x = tf.constant(img[None].astype(np.float32) / 255.0)
    a = keras.Model(m.inputs[0], m.get_layer("conv2").output)(x)
    flatten, hidden, out = m.layers[-3:]
    with tf.GradientTape() as tape:
        tape.watch(a)
        logits = tf.matmul(hidden(flatten(a)), out.kernel) + out.bias  # pre-softmax, by hand
        score = logits[:, label]
    g = tape.gradient(score, a)
    return np.asarray(a[0], np.float64), np.asarray(g[0], np.float64)


def test_variants_match_reference_formulas_with_spatially_varying_gradients(cnn):
    """The formulas of pytorch-grad-cam (Grad-CAM++: Σ_ab A_ab · g_ij³ in the denominator)."""
    img = image(16, seed=16)
    ctx = ExplainContext(cnn, img)
    for label in (0, 2):
        a, g = _independent_activations_and_gradients(cnn, img, label)
        assert g.std(axis=(0, 1)).max() > 0  # this head really varies the gradient over space
        g2, g3 = g**2, g**3
        alpha = np.where(g != 0, g2 / (2 * g2 + a.sum(axis=(0, 1)) * g3), 0)
        expected = {
            "gradcam": a @ g.mean(axis=(0, 1)),
            "gradcam_pp": a @ (alpha * np.maximum(g, 0)).sum(axis=(0, 1)),
            "xgradcam": a @ ((a * g).sum(axis=(0, 1)) / np.where(a.sum(axis=(0, 1)) == 0, np.inf, a.sum(axis=(0, 1)))),
            "layercam": (np.maximum(g, 0) * a).sum(axis=-1),
            "hirescam": (g * a).sum(axis=-1),
        }
        for name, want in expected.items():
            got = run(ctx, name, [label])[0].extras["low_res_signed"]
            np.testing.assert_allclose(got, want, atol=1e-5 * max(1e-6, np.abs(want).max()), err_msg=name)


def test_eigen_map_sign_follows_the_mean_activation():
    rng = np.random.default_rng(0)
    flipped = 0
    for _ in range(8):
        feats = np.maximum(rng.normal(size=(6, 6, 5)), 0).astype(np.float32)
        low = cam.eigen_map(feats)
        x = feats.reshape(36, 5).astype(np.float64)
        _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
        raw = (x - x.mean(0)) @ vt[0]
        assert np.corrcoef(low.ravel(), x.mean(axis=1))[0, 1] > 0
        np.testing.assert_allclose(np.abs(low.ravel()), np.abs(raw), atol=1e-5)
        flipped += int(np.dot(raw, low.ravel()) < 0)
    assert flipped > 0  # the SVD sign alone would have been wrong at least once here
    assert not cam.eigen_map(np.ones((3, 3, 2), np.float32)).any()

