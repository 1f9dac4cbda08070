"""Custom model uploads: real tiny Keras models saved to .keras/.h5 bytes and loaded back."""
from __future__ import annotations

import io
import os
import zipfile

import keras
import numpy as np
import pytest

from model_zoo.classifier import Classifier, ModelError
from model_zoo.custom import (
    LAMBDA_MESSAGE,
    check_model_file,
    describe,
    display_filename,
    load_custom_model,
)
from model_zoo.images import sha256_bytes

SIZE = 16
FORMATS = [".keras", ".h5"]


@pytest.fixture(scope="module")
def save(tmp_path_factory):
    """model, extension → the bytes a user would upload."""
    folder = tmp_path_factory.mktemp("models")
    counter = iter(range(10**6))

    def _save(model: keras.Model, ext: str) -> bytes:
        path = folder / f"m{next(counter)}{ext}"
        model.save(path)
        return path.read_bytes()

    return _save


def images(n: int = 3, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def conv_net(head: keras.layers.Layer, channels: int = 3, seed: int = 1, rescale: bool = False):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, channels))
    x = keras.layers.Rescaling(1 / 255.0)(inp) if rescale else inp
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, head(x))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- good models
@pytest.mark.parametrize("ext", FORMATS)
def test_softmax_model(save, ext):
    model = conv_net(keras.layers.Dense(3, activation="softmax", name="head"))
    data = save(model, ext)
    clf = load_custom_model(data, "my net" + ext, labels=["cat", "dog", "cow"])
    assert isinstance(clf, Classifier)
    assert clf.id == "upload:" + sha256_bytes(data)[:12]
    assert clf.name == f"Custom model (my net{ext})"
    assert clf.output == "softmax" and clf.preprocessing == "unit"
    assert clf.input_size == (SIZE, SIZE) and clf.labels == ["cat", "dog", "cow"]
    assert clf.images_seen == 0  # the load-time smoke test is not counted
    x = images()
    expected = model(x.astype("float32") / 255.0).numpy()
    np.testing.assert_allclose(clf.predict(x), expected, atol=1e-6)
    info = describe(clf)
    assert info["id"] == clf.id and info["classes"] == 3 and info["layers"] == 3
    assert info["feature_layers"] == ["conv"] and info["labels_preview"] == ["cat", "dog", "cow"]


def test_rescaling_model_gets_builtin_preprocessing(save):
    model = conv_net(keras.layers.Dense(3, activation="softmax"), rescale=True)
    clf = load_custom_model(save(model, ".keras"), "m.keras")
    assert clf.preprocessing == "builtin"
    x = images()
    np.testing.assert_allclose(clf.predict(x), model(x.astype("float32")).numpy(), atol=1e-6)


@pytest.mark.parametrize("ext", FORMATS)
def test_logits_model_predicts_probabilities(save, ext):
    model = conv_net(keras.layers.Dense(4, name="logits"))
    clf = load_custom_model(save(model, ext), "l" + ext, preprocessing="symmetric")
    assert clf.output == "logits" and clf.preprocessing == "symmetric"
    x = images()
    probs = clf.predict(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    raw = model(x.astype("float32") / 127.5 - 1.0).numpy()
    np.testing.assert_allclose(probs, softmax(raw), atol=1e-6)
    np.testing.assert_allclose(clf.logits(x), raw, atol=1e-5)


@pytest.mark.parametrize("ext", FORMATS)
def test_sigmoid_binary_model_becomes_two_classes(save, ext):
    model = conv_net(keras.layers.Dense(1, activation="sigmoid", name="p"))
    clf = load_custom_model(save(model, ext), "b" + ext, labels=["hotdog"])
    assert clf.output == "sigmoid" and clf.num_classes == 2
    assert clf.labels == ["not hotdog", "hotdog"]
    x = images()
    sigma = model(x.astype("float32") / 255.0).numpy()[:, 0]
    probs = clf.predict(x)
    np.testing.assert_allclose(probs[:, 1], sigma, atol=1e-6)
    np.testing.assert_allclose(probs[:, 0], 1 - sigma, atol=1e-6)
    assert describe(clf)["output_note"].startswith("one sigmoid unit")


@pytest.mark.parametrize("ext", FORMATS)
def test_grayscale_model_gets_luma_input(save, ext):
    model = conv_net(keras.layers.Dense(2, activation="softmax"), channels=1)
    clf = load_custom_model(save(model, ext), "g" + ext)
    assert clf.channels == 1 and describe(clf)["grayscale_input"] is True
    x = images()
    gray = (x.astype("float32") * np.array([0.299, 0.587, 0.114], "float32")).sum(-1, keepdims=True)
    np.testing.assert_allclose(clf.predict(x), model(gray / 255.0).numpy(), atol=1e-5)


def nested_transfer_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    base_in = keras.Input((SIZE, SIZE, 3))
    b = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(base_in)
    b = keras.layers.Conv2D(6, 3, activation="relu", name="c2")(b)
    base = keras.Model(base_in, b, name="base")
    inp = keras.Input((SIZE, SIZE, 3))
    x = base(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="transfer")


@pytest.mark.parametrize("ext", FORMATS)
def test_nested_transfer_model_gradients_match_a_flat_twin(save, ext):
    clf = load_custom_model(save(nested_transfer_model(), ext), "t" + ext)
    assert clf.cam_layer == "base/c2"
    assert [layer.path for layer in clf.conv_layers] == ["base/c1", "base/c2"]
    loaded = clf.model
    base = loaded.get_layer("base")
    inp = keras.Input((SIZE, SIZE, 3))
    x = base.get_layer("c2")(base.get_layer("c1")(inp))
    out = loaded.get_layer("head")(loaded.get_layer("gap")(x))
    flat = Classifier(keras.Model(inp, out), id="flat", name="flat", preprocessing=clf.preprocessing)
    assert flat.cam_layer == "c2"
    x = images(4)
    np.testing.assert_allclose(clf.predict(x), flat.predict(x), atol=1e-6)
    feats_n, scores_n, grads_n = clf.gradients(x, [1, 2], layer="base/c2")
    feats_f, scores_f, grads_f = flat.gradients(x, [1, 2], layer="c2")
    assert grads_n.shape == (4, 2, SIZE - 4, SIZE - 4, 6)
    assert np.abs(grads_n).max() > 1e-4  # real gradients, not a disconnected zero map
    np.testing.assert_allclose(feats_n, feats_f, atol=1e-5)
    np.testing.assert_allclose(scores_n, scores_f, atol=1e-5)
    np.testing.assert_allclose(grads_n, grads_f, atol=1e-5)


def test_undefined_input_size_needs_a_choice(save):
    keras.utils.set_random_seed(4)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    data = save(keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)), ".keras")
    with pytest.raises(ModelError, match="the model accepts any image size; choose an input size"):
        load_custom_model(data, "any.keras")
    clf = load_custom_model(data, "any.keras", input_size=(20, 24))
    assert clf.input_size == (20, 24)
    assert clf.predict(np.zeros((2, 20, 24, 3), np.uint8)).shape == (2, 2)
    with pytest.raises(ModelError, match="fails on a 2×2 test image"):
        load_custom_model(data, "any.keras", input_size=(2, 2))  # smaller than the 3×3 kernel


def test_fixed_size_model_rejects_a_different_input_size(save):
    data = save(conv_net(keras.layers.Dense(2, activation="softmax")), ".keras")
    with pytest.raises(ModelError, match="input height is 16, not 32"):
        load_custom_model(data, "m.keras", input_size=(32, 16))
    assert load_custom_model(data, "m.keras", input_size=(16, 16)).input_size == (16, 16)
    with pytest.raises(ModelError, match="height, width"):
        load_custom_model(data, "m.keras", input_size=(16,))


def test_temporary_file_has_our_name_and_is_removed(save, monkeypatch):
    """Spy on the path Keras is given (the real loader still runs)."""
    data = save(conv_net(keras.layers.Dense(2, activation="softmax")), ".keras")
    seen = []
    real = keras.saving.load_model

    def spy(path, *args, **kwargs):
        seen.append((str(path), os.path.exists(path), kwargs.get("safe_mode")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", spy)
    hostile = "../../etc/evil<script>`x`*[y](z).keras"
    clf = load_custom_model(data, hostile)
    (path, existed, safe), = seen
    assert existed and safe is True
    assert os.path.basename(path) == "model.keras" and "evil" not in path
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    for ch in "/<>`*[]":
        assert ch not in clf.name
    assert clf.name == "Custom model (evil_script__x___y_(z).keras)"


# ---------------------------------------------------------------------- refused models
@pytest.mark.parametrize("ext", FORMATS)
def test_lambda_layer_is_refused_by_safe_mode(save, ext):
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    data = save(keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)), ext)
    with pytest.raises(ModelError) as info:
        load_custom_model(data, "lam" + ext)
    assert str(info.value) == LAMBDA_MESSAGE
    assert "contains a Lambda layer (arbitrary code)" in LAMBDA_MESSAGE


@keras.saving.register_keras_serializable(package="xai_lens_test_only")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


@pytest.mark.parametrize("ext", FORMATS)
def test_unknown_custom_layer_is_named(save, ext):
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(Doubler(name="doubler")(inp))
    data = save(keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)), ext)
    registry = keras.saving.get_custom_objects()
    key = "xai_lens_test_only>Doubler"
    saved = registry.pop(key)
    try:  # as on the server: the uploader's class is not registered there
        with pytest.raises(ModelError, match="custom class 'Doubler' that is not part of Keras"):
            load_custom_model(data, "c" + ext)
    finally:
        registry[key] = saved


@pytest.mark.parametrize("ext", FORMATS)
def test_multi_output_model_is_refused(save, ext):
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    model = keras.Model(inp, [keras.layers.Dense(2)(x), keras.layers.Dense(3)(x)])
    with pytest.raises(ModelError, match="2 outputs"):
        load_custom_model(save(model, ext), "mo" + ext)


def test_multi_input_model_is_refused(save):
    a, b = keras.Input((SIZE, SIZE, 3)), keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(ModelError, match="2 inputs"):
        load_custom_model(save(model, ".keras"), "mi.keras")


@pytest.mark.parametrize("ext", FORMATS)
def test_vector_input_model_is_refused(save, ext):
    inp = keras.Input((10,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(inp))
    with pytest.raises(ModelError, match=r"input of shape \(10,\).*image models"):
        load_custom_model(save(model, ext), "v" + ext)


def test_labels_length_mismatch_is_refused(save):
    data = save(conv_net(keras.layers.Dense(3, activation="softmax")), ".keras")
    with pytest.raises(ModelError, match="2 names but the model has 3 classes"):
        load_custom_model(data, "m.keras", labels=["a", "b"])


def test_unknown_preprocessing_is_refused(save):
    data = save(conv_net(keras.layers.Dense(3, activation="softmax")), ".keras")
    with pytest.raises(ModelError, match="unknown preprocessing 'zscore'"):
        load_custom_model(data, "m.keras", preprocessing="zscore")


def test_weights_only_file_is_explained(tmp_path):
    model = conv_net(keras.layers.Dense(2, activation="softmax"))
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with pytest.raises(ModelError, match="only weights"):
        load_custom_model(path.read_bytes(), "weights.h5")


@pytest.mark.parametrize(
    "data, filename, words",
    [
        (b"", "m.keras", "empty"),
        (os.urandom(256), "m.keras", "not a .keras model"),
        (b"PK\x03\x04" + os.urandom(256), "m.keras", "damaged"),
        (os.urandom(256), "m.h5", "not an HDF5 model"),
        (b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8, "m.h5", "damaged or not a Keras model"),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "m.keras", "rename it to .h5"),
        (b"PK\x03\x04" + b"\x00" * 64, "m.h5", "rename it to .keras"),
        (b"\x80\x02}q\x00.", "m.pt", r"\.keras or \.h5; got a PyTorch model"),
        (b"ONNX", "m.onnx", "ONNX"),
        (b"data", "m.txt", r"got a \.txt file"),
        (b"data", "model", "without extension"),
    ],
)
def test_bad_files_are_refused(data, filename, words):
    with pytest.raises(ModelError, match=words):
        load_custom_model(data, filename)


def test_zip_without_keras_config_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="no config.json"):
        check_model_file(buf.getvalue(), "m.keras")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("../../evil.txt", "x")
    with pytest.raises(ModelError, match="unsafe file paths"):
        check_model_file(buf.getvalue(), "m.keras")


def test_size_limit(save):
    data = save(conv_net(keras.layers.Dense(2, activation="softmax")), ".keras")
    with pytest.raises(ModelError, match="the limit is"):
        load_custom_model(data, "m.keras", max_bytes=len(data) - 1)
    assert check_model_file(data, "M.KERAS", max_bytes=len(data)) == ".keras"


def test_display_filename():
    assert display_filename("C:\\Users\\me\\net.keras") == "net.keras"
    assert display_filename("a/b/<script>x</script>.h5") == "script_.h5"
    assert display_filename("x" * 100 + ".keras").endswith("…") and len(display_filename("x" * 100)) == 60
    assert display_filename("") == "model"
