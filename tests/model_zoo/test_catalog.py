"""Catalog rows, weights lookup/verification/download, and model resolution.

Every catalog architecture is built once with ``weights=None`` (structure only; no download):
input size, CAM layer, output and preprocessing are checked against Keras itself. Weights tests
use small local files and ``file://`` URLs, never the network.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import socket
import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from model_zoo import registry, weights
from model_zoo.catalog import CATALOG, DEFAULT_CATALOG_ID, UnknownModelError, get_entry
from model_zoo.classifier import ModelError
from model_zoo.preprocessing import PREPROCESSING, guess_preprocessing, preprocess_tf
from model_zoo.weights import WeightsError, default_path, download_weights, weights_status

IDS = [e.id for e in CATALOG]

# Grad-CAM grid of each model (rows, cols, channels): known from the architectures.
CAM_SHAPES = {
    "inceptionv3": (8, 8, 2048),
    "xception": (10, 10, 2048),
    "resnet50": (7, 7, 2048),
    "resnet50v2": (7, 7, 2048),
    "mobilenetv2": (7, 7, 1280),
    "mobilenetv3large": (7, 7, 960),
    "efficientnetb0": (7, 7, 1280),
    "efficientnetv2b0": (7, 7, 1280),
    "densenet121": (7, 7, 1024),
    "vgg16": (14, 14, 512),
    "convnexttiny": (7, 7, 768),
}

# Pixels covering the range, including the channel order (caffe is BGR).
PIXELS = np.array([[[[0, 0, 0], [255, 255, 255], [10, 128, 250], [200, 30, 90]]]], np.float32)


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache: no weights are present."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def keras_source(entry) -> str:
    """Source of the keras.src.applications module that builds ``entry`` and of the application
    modules it builds on (ResNet50V2 takes its weights table from resnet.py)."""
    public = getattr(keras.applications, entry.module)
    module = sys.modules[public.preprocess_input.__module__]
    used = [m for m in vars(module).values()
            if inspect.ismodule(m) and m.__name__.startswith("keras.src.applications.")]
    return "\n".join(inspect.getsource(m) for m in [module, *used])


# ---------------------------------------------------------------------- catalog rows
def test_catalog_has_the_eleven_models_with_unique_lowercase_ids():
    assert IDS == [
        "inceptionv3", "xception", "resnet50", "resnet50v2", "mobilenetv2", "mobilenetv3large",
        "efficientnetb0", "efficientnetv2b0", "densenet121", "vgg16", "convnexttiny",
    ]  # fmt: skip
    assert all(i == i.lower() and " " not in i for i in IDS)
    assert DEFAULT_CATALOG_ID == "inceptionv3"


@pytest.mark.parametrize("entry", CATALOG, ids=IDS)
def test_row_matches_the_installed_keras_sources(entry):
    """Weights URL, file name and hash are Keras's own (so a Keras upgrade that moves them fails)."""
    assert hasattr(keras.applications, entry.constructor)
    assert entry.preprocessing in PREPROCESSING
    src = keras_source(entry)
    folder, _, filename = entry.weights_url.rpartition("/")
    assert filename == entry.weights_file and filename.endswith(".h5")
    assert folder.split("keras-applications", 1)[1] in src or folder.rsplit("/", 1)[-1] in src
    if entry.file_hash is None:
        assert entry.id == "mobilenetv2"  # the only one Keras downloads without a hash
        assert "file_hash" not in src.split("def MobileNetV2", 1)[1].split("def ", 2)[1]
    else:
        assert f'"{entry.file_hash}"' in src
        assert entry.hash_algorithm == ("sha256" if len(entry.file_hash) == 64 else "md5")
    assert 0.5 < entry.crop_fraction <= 1.0


def test_get_entry_is_case_insensitive_and_unknown_ids_list_the_choices():
    assert get_entry(" InceptionV3 ").id == "inceptionv3"
    with pytest.raises(UnknownModelError, match="choose one of inceptionv3, xception"):
        get_entry("alexnet")


# ---------------------------------------------------------------------- structure (weights=None)
@pytest.mark.parametrize("entry", CATALOG, ids=IDS)
def test_structure_input_cam_layer_and_preprocessing(entry):
    clf = registry.load_catalog_structure(entry)
    assert clf.id == entry.id
    assert clf.input_size == entry.input_shape
    assert clf.num_classes == 1000 and clf.output == "softmax"
    assert clf.labels[282] == "tiger cat"
    layers = {info.path: info.shape for info in clf.conv_layers}
    if entry.cam_layer is not None:
        assert clf.cam_layer == entry.cam_layer
    assert clf.cam_layer in layers
    assert layers[clf.cam_layer] == CAM_SHAPES[entry.id]  # 4-D output, H and W > 1

    # The pixels the model sees equal what keras.applications.<module>.preprocess_input makes.
    ours = preprocess_tf(tf.constant(PIXELS), clf.preprocessing).numpy()
    module = importlib.import_module(f"keras.applications.{entry.module}")
    reference = np.asarray(module.preprocess_input(PIXELS.copy()))
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-5)
    # "builtin" models rescale inside (their preprocess_input is the identity); the others must
    # not, or pixels would be scaled twice.
    assert guess_preprocessing(clf.model) == ("builtin" if entry.preprocessing == "builtin" else "unit")


def test_structure_model_predicts_probabilities():
    clf = registry.load_catalog_structure(get_entry("mobilenetv2"))
    image = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    probs = clf.predict(image)
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def _save_legacy_h5(model, path: Path) -> None:
    """Save weights in the legacy .h5 layout Keras's ImageNet files use."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_efficientnet_from_a_weights_file_computes_like_kerass_imagenet_graph(tmp_path):
    """weights=<path> lacks the Rescaling(1/sqrt(stddev)) Keras adds for weights="imagenet";
    the catalog's fix must reproduce it: (x/255 - mean) / sqrt(variance) / sqrt(stddev)."""
    from keras.src.applications import efficientnet

    assert registry.EFFICIENTNET_STDDEV == tuple(efficientnet.IMAGENET_STDDEV_RGB)
    entry = get_entry("efficientnetb0")
    source = keras.applications.EfficientNetB0(weights=None)
    norm = next(l for l in source.layers if isinstance(l, keras.layers.Normalization))
    mean, variance = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    norm.set_weights([mean, variance, np.array(0)])
    path = tmp_path / entry.weights_file
    _save_legacy_h5(source, path)
    entry = replace(entry, file_hash=md5(path.read_bytes()))

    clf = registry.load_catalog_classifier(entry, path)
    loaded_norm = next(l for l in clf.model.layers if isinstance(l, keras.layers.Normalization))
    probe = keras.Model(clf.model.inputs[0], loaded_norm.output)
    image = np.zeros((1, 224, 224, 3), np.float32)
    image[0, 0, :4] = PIXELS[0, 0]
    out = np.asarray(probe(image))[:, :1, :4]
    stddev = np.array([0.229, 0.224, 0.225])
    expected = (PIXELS / 255.0 - mean) / np.sqrt(variance) / np.sqrt(stddev)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # the rest of the weights came from the file
    np.testing.assert_array_equal(
        clf.model.get_layer("predictions").get_weights()[0],
        source.get_layer("predictions").get_weights()[0],
    )
    assert path.read_bytes()  # untouched


def test_a_file_with_the_right_hash_that_is_not_weights_gives_a_clear_error(tmp_path):
    path = tmp_path / "not_weights.h5"
    path.write_bytes(b"this is not an HDF5 file")
    entry = replace(get_entry("mobilenetv2"), file_hash=md5(path.read_bytes()))
    with pytest.raises(ModelError, match="cannot be loaded into MobileNet V2.*left untouched"):
        registry.load_catalog_classifier(entry, path)
    assert path.read_bytes() == b"this is not an HDF5 file"


# ---------------------------------------------------------------------- weights lookup
def test_missing_weights_message_names_file_folder_and_url(keras_home):
    entry = get_entry("inceptionv3")
    status = weights_status(entry)
    assert not status.present
    assert status.path == keras_home / "models" / entry.weights_file
    assert str(keras_home / "models" / entry.weights_file) in status.message
    assert entry.weights_url in status.message
    assert "python -m model_zoo download inceptionv3" in status.message
    with pytest.raises(WeightsError, match="not on this machine"):
        weights.require_weights(entry)


def test_right_file_is_accepted_md5_and_sha256(keras_home):
    data = b"pretend weights"
    (keras_home / "models").mkdir()
    md5_entry = replace(get_entry("resnet50"), file_hash=md5(data))
    default_path(md5_entry).write_bytes(data)
    status = weights_status(md5_entry)
    assert status.present and status.path == default_path(md5_entry)
    assert "md5 verified" in status.message

    sha_entry = replace(get_entry("convnexttiny"), file_hash=hashlib.sha256(data).hexdigest())
    default_path(sha_entry).write_bytes(data)
    assert sha_entry.hash_algorithm == "sha256"
    assert weights_status(sha_entry).present
    assert weights.require_weights(sha_entry) == default_path(sha_entry)


def test_wrong_file_is_reported_and_never_deleted(keras_home):
    entry = get_entry("inceptionv3")
    target = default_path(entry)
    target.parent.mkdir()
    target.write_bytes(b"truncated download")
    status = weights_status(entry)
    assert not status.present
    assert status.found_hash == md5(b"truncated download")
    for part in (entry.file_hash, md5(b"truncated download"), str(target), "left untouched"):
        assert part in status.message
    with pytest.raises(ModelError, match=entry.file_hash):
        registry.load_classifier("inceptionv3")
    with pytest.raises(WeightsError, match="already at"):
        download_weights(entry, url="file:///nonexistent")
    assert target.read_bytes() == b"truncated download"
    choice = next(c for c in registry.available_models() if c.id == "inceptionv3")
    assert choice.weights == "wrong file" and not choice.available


def test_user_given_path_is_checked_too(tmp_path, keras_home):
    entry = get_entry("vgg16")
    missing = tmp_path / "nowhere.h5"
    status = weights_status(entry, missing)
    assert not status.present and str(missing) in status.message
    wrong = tmp_path / "vgg.h5"
    wrong.write_bytes(b"x")
    assert not weights_status(entry, wrong).present
    assert weights_status(replace(entry, file_hash=md5(b"x")), wrong).present


def test_model_without_published_hash_accepts_any_file(keras_home):
    entry = get_entry("mobilenetv2")
    default_path(entry).parent.mkdir()
    default_path(entry).write_bytes(b"anything")
    status = weights_status(entry)
    assert status.present and "no checksum" in status.message


# ---------------------------------------------------------------------- download
def test_download_from_file_url_with_progress(tmp_path, keras_home):
    data = np.random.default_rng(1).bytes(2_500_000)  # 3 chunks of 1 MiB
    source = tmp_path / "served.h5"
    source.write_bytes(data)
    entry = replace(get_entry("densenet121"), file_hash=md5(data))
    calls = []
    path = download_weights(entry, lambda done, total: calls.append((done, total)),
                            url=source.as_uri())
    assert path == keras_home / "models" / entry.weights_file
    assert path.read_bytes() == data
    assert calls[0] == (0, len(data)) and calls[-1] == (len(data), len(data))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) == 4
    assert list(path.parent.glob("*.part")) == []
    assert weights_status(entry).present
    assert download_weights(entry, url="file:///nonexistent") == path  # already there: no fetch


def test_download_with_wrong_hash_is_discarded(tmp_path, keras_home):
    source = tmp_path / "served.h5"
    source.write_bytes(b"corrupted by a proxy")
    entry = get_entry("densenet121")
    with pytest.raises(WeightsError) as info:
        download_weights(entry, url=source.as_uri())
    message = str(info.value)
    assert entry.file_hash in message and md5(b"corrupted by a proxy") in message
    assert not default_path(entry).exists()
    assert list((keras_home / "models").iterdir()) == []  # no partial file left


def test_download_offline_gives_the_manual_instructions(keras_home):
    entry = get_entry("xception")
    with socket.socket() as s:  # a local port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsError) as info:
        download_weights(entry, url=f"http://127.0.0.1:{port}/x.h5", timeout=5)
    message = str(info.value)
    assert "another machine" in message and str(default_path(entry)) in message
    assert not default_path(entry).exists()


# ---------------------------------------------------------------------- resolution
def test_default_is_bundled_without_inception_weights_and_inception_with_them(
    keras_home, monkeypatch
):
    assert registry.default_model_id() == "efficientnet-lite0"
    choices = registry.available_models()
    assert [c.id for c in choices] == ["efficientnet-lite0", *IDS]
    assert choices[0].kind == "bundled" and choices[0].default
    assert not any(c.available for c in choices[1:])
    assert {c.weights for c in choices} == {"bundled", "missing"}

    data = b"stand-in for the InceptionV3 weights"
    entry = replace(get_entry("inceptionv3"), file_hash=md5(data))
    monkeypatch.setitem(sys.modules["model_zoo.catalog"]._BY_ID, "inceptionv3", entry)
    default_path(entry).parent.mkdir()
    default_path(entry).write_bytes(data)
    assert registry.default_model_id() == "inceptionv3"


@pytest.mark.parametrize(
    "ref, kwargs, match",
    [
        ("alexnet", {}, "unknown model 'alexnet'; choose one of efficientnet-lite0, inceptionv3"),
        ("resnet50", {}, "download https://storage.googleapis.com/.*resnet50_weights"),
        ("missing_model.keras", {}, "missing_model.keras does not exist"),
        ("resnet50", {"preprocessing": "sepia"}, "unknown preprocessing 'sepia'"),
        ("resnet50", {"input_size": 128}, "resnet50 takes 224×224 images"),
        ("efficientnet-lite0", {"weights_path": "w.h5"}, "only be given for a Keras Applications"),
    ],
)
def test_load_classifier_errors_are_one_clear_line(keras_home, ref, kwargs, match):
    with pytest.raises(ModelError, match=match) as info:
        registry.load_classifier(ref, **kwargs)
    assert "\n" not in str(info.value)


def test_custom_model_is_loaded_with_labels_and_cached(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")

    clf = registry.load_classifier(str(path), labels_path=labels)
    assert clf.labels == ["cat", "dog"] and clf.input_size == (8, 8)
    assert registry.load_classifier(str(path), labels_path=labels) is clf
    other = registry.load_classifier(str(path), preprocessing="symmetric", labels_path=labels)
    assert other is not clf and other.preprocessing == "symmetric"
    assert registry.crop_fraction(clf) == 1.0


def test_prepare_image_uses_the_evaluation_crop_for_catalog_models():
    clf = registry.load_catalog_structure(get_entry("mobilenetv2"))
    image = np.zeros((100, 200, 3), np.uint8)
    fitted = registry.prepare_image(clf, image, policy="crop")
    assert fitted.image.shape == (224, 224, 3)
    # 0.875 of the shorter side (87.5 px), centred
    np.testing.assert_allclose(fitted.source_box, (6.25, 56.25, 93.75, 143.75))
    whole = registry.prepare_image(clf, image, policy="pad")
    assert whole.source_box == (0.0, 0.0, 100.0, 200.0)


# ---------------------------------------------------------------------- download over real HTTP
@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server (a real socket, in a thread) serving ``tmp_path/www``."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_over_http_good_file_then_wrong_checksum_refused(http_folder, keras_home):
    root, base = http_folder
    good = np.random.default_rng(7).bytes(1_500_000)
    (root / "good.h5").write_bytes(good)
    (root / "bad.h5").write_bytes(b"an error page from a captive portal")
    entry = replace(get_entry("resnet50"), file_hash=md5(good))
    models = keras_home / "models"
    models.mkdir()
    (models / "someone_elses.h5").write_bytes(b"keep me")

    calls = []
    path = download_weights(entry, lambda d, t: calls.append((d, t)), url=f"{base}/good.h5")
    assert path.read_bytes() == good and weights_status(entry).present
    assert calls[0] == (0, len(good)) and calls[-1] == (len(good), len(good))  # Content-Length used

    other = replace(get_entry("densenet121"))  # the real published md5: the served file is wrong
    with pytest.raises(WeightsError) as info:
        download_weights(other, url=f"{base}/bad.h5")
    assert md5(b"an error page from a captive portal") in str(info.value)
    assert "was not changed" in str(info.value)
    # refused, and nothing deleted: the good download, the unrelated file and the served files stay
    assert sorted(p.name for p in models.iterdir()) == sorted([entry.weights_file, "someone_elses.h5"])
    assert path.read_bytes() == good and (models / "someone_elses.h5").read_bytes() == b"keep me"
    assert (root / "bad.h5").exists() and (root / "good.h5").exists()

    # a wrong file already in place is refused before any download and left as it is
    (models / other.weights_file).write_bytes(b"half a file")
    with pytest.raises(WeightsError, match="left untouched"):
        download_weights(other, url=f"{base}/bad.h5")
    assert (models / other.weights_file).read_bytes() == b"half a file"

    with pytest.raises(WeightsError, match="cannot download"):  # HTTP 404
        download_weights(replace(get_entry("vgg16")), url=f"{base}/missing.h5")
    assert not default_path(get_entry("vgg16")).exists()


def test_download_from_a_mirror_named_by_the_environment(http_folder, keras_home, monkeypatch):
    root, base = http_folder
    data = b"mirrored weights"
    entry = replace(get_entry("resnet50"), file_hash=md5(data))
    (root / entry.weights_file).write_bytes(data)
    monkeypatch.setenv(weights.MIRROR_ENV, base + "/")
    assert weights.weights_url(entry) == f"{base}/{entry.weights_file}"
    assert download_weights(entry).read_bytes() == data
    monkeypatch.delenv(weights.MIRROR_ENV)
    assert weights.weights_url(entry) == entry.weights_url
