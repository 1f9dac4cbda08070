"""The bundled offline EfficientNet-Lite0: real ImageNet weights, known answers, the disk cache."""
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data

from model_zoo import bundled
from model_zoo.bundled import (
    BUNDLED_ID,
    CropError,
    bundled_available,
    center_crop_resize,
    load_efficientnet_lite0,
)
from model_zoo.classifier import INPUT_LAYER
from model_zoo.imagenet import (
    KERAS_CLASS_INDEX_MD5,
    class_index_json,
    imagenet_class_index,
    imagenet_labels,
    install_keras_class_index,
)
from model_zoo.torch_legacy import load_state_dict

pytestmark = pytest.mark.slow  # the real bundled weights

FELINES = range(281, 294)  # 281–285 domestic cats, 286 cougar … 293 cheetah


@pytest.fixture(scope="module")
def clf():
    return load_efficientnet_lite0()


@pytest.fixture(scope="module")
def cat():
    return center_crop_resize(skimage.data.chelsea())


@pytest.fixture(scope="module")
def coffee():
    return center_crop_resize(skimage.data.coffee())


# ------------------------------------------------------------ known answers (PyTorch reference)
def test_chelsea_is_a_tiger_cat(clf, cat):
    probs = clf.predict(cat[None])[0]
    top = np.argsort(-probs)[:5]
    assert top[0] == 282 and clf.labels[282] == "tiger cat"
    assert probs[282] == pytest.approx(0.385, abs=0.01)
    assert set(top[:3]) == {281, 282, 285}  # tabby, tiger, Egyptian cat
    assert all(i in FELINES for i in top[:4])  # then lynx; no 5th cat (window screen, 0.1 %)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_coffee_is_espresso(clf, coffee):
    probs = clf.predict(coffee[None])[0]
    assert int(np.argmax(probs)) == 967 and clf.labels[967] == "espresso"
    assert probs[967] >= 0.90


def _same_pad(x, k, s):
    """TensorFlow SAME padding (more at the bottom/right), as EfficientNet-PyTorch does."""
    h, w = x.shape[2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def _conv(x, weight, stride=1, depthwise=False):
    """torch.nn.functional.conv2d semantics: NCHW input, OIHW weight, cross-correlation."""
    k = weight.shape[-1]
    x = _same_pad(x, k, stride)
    n, c, h, w = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = 0.0
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            if not depthwise:
                out = out + np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
            else:
                out = out + patch * weight[:, 0, i, j][None, :, None, None]
    return out


def _torch_reference_logits(state, image):
    """EfficientNet-Lite0 forward pass straight from the torch state dict, in float64 numpy."""
    sd = {k: v.astype(np.float64) for k, v in state.items()}

    def bn(x, key):
        scale = sd[key + ".weight"] / np.sqrt(sd[key + ".running_var"] + 1e-3)
        shift = sd[key + ".bias"] - sd[key + ".running_mean"] * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def relu6(x):
        return np.clip(x, 0.0, 6.0)

    x = ((image.astype(np.float64) - 127.0) / 128.0).transpose(2, 0, 1)[None]
    x = relu6(bn(_conv(x, sd["_conv_stem.weight"], 2), "_bn0"))
    b = 0
    for repeats, _k, stride, expand, c_in, c_out in bundled.LITE0_STAGES:
        for r in range(repeats):
            t = f"_blocks.{b}."
            inp = x
            if expand != 1:
                x = relu6(bn(_conv(x, sd[t + "_expand_conv.weight"]), t + "_bn0"))
            x = _conv(x, sd[t + "_depthwise_conv.weight"], stride if r == 0 else 1, depthwise=True)
            x = relu6(bn(x, t + "_bn1"))
            x = bn(_conv(x, sd[t + "_project_conv.weight"]), t + "_bn2")
            if r > 0 or (stride == 1 and c_in == c_out):
                x = x + inp
            b += 1
    x = relu6(bn(_conv(x, sd["_conv_head.weight"]), "_bn1"))
    return x.mean(axis=(2, 3)) @ sd["_fc.weight"].T + sd["_fc.bias"]


def test_logits_match_an_independent_torch_semantics_forward_pass(clf, cat):
    state = load_state_dict(bundled.weights_path(), sha256=bundled.WEIGHTS_SHA256)
    expected = _torch_reference_logits(state, cat)[0]
    # Classifier.logits unpacks gradients()'s 3-tuple into 2 names (reported); same call here:
    logits = clf.gradients(cat[None], [], layer=INPUT_LAYER)[1][0]
    assert np.abs(logits - expected).max() < 1e-4
    assert int(np.argmax(expected)) == 282


# ------------------------------------------------------------ the Classifier around it
def test_classifier_facts(clf):
    assert bundled_available()
    assert load_efficientnet_lite0() is clf  # cheap on repeat
    assert clf.id == BUNDLED_ID == "efficientnet-lite0"
    assert clf.name == "EfficientNet-Lite0 (bundled, offline ImageNet)"
    assert clf.input_size == (224, 224) and clf.preprocessing == "lite"
    assert clf.output == "softmax" and clf.num_classes == 1000
    assert clf.labels == imagenet_labels()
    assert clf.cam_layer == "top_activation"
    assert {"stem_conv", "block1a_dwconv", "block6d_add", "top_conv"} <= {
        layer.name for layer in clf.model.layers
    }
    state = load_state_dict(bundled.weights_path())
    n_torch = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert clf.summary()["parameters"] == n_torch == 4_694_024


def test_gradcam_layer_gives_feature_maps_and_gradients(clf, cat):
    feats, scores, grads = clf.gradients(cat[None], [282])
    assert feats.shape == (1, 7, 7, 1280) and grads.shape == (1, 1, 7, 7, 1280)
    assert 0 <= feats.min() and feats.max() <= 6  # ReLU6
    assert np.abs(grads).sum() > 0
    probs = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    assert probs[0, 282] == pytest.approx(0.385, abs=0.01)


# ------------------------------------------------------------ disk cache
def test_conversion_is_cached_and_reused(tmp_path, monkeypatch, cat):
    monkeypatch.setenv("XAI_LENS_CACHE", str(tmp_path / "cache"))
    path = bundled.cached_model_path()
    assert path.parent == tmp_path / "cache"
    assert bundled.WEIGHTS_SHA256[:16] in path.name and path.suffix == ".keras"

    first = bundled.load_efficientnet_lite0_model()
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    expected = first(cat[None].astype("float32") / 128.0 - 127.0 / 128.0).numpy()

    def no_conversion():
        raise AssertionError("converted again instead of using the cache")

    with monkeypatch.context() as m:
        m.setattr(bundled, "convert_efficientnet_lite0", no_conversion)
        again = bundled.load_efficientnet_lite0_model()
    assert path.stat().st_mtime_ns == mtime
    got = again(cat[None].astype("float32") / 128.0 - 127.0 / 128.0).numpy()
    np.testing.assert_array_equal(got, expected)

    path.write_bytes(b"not a keras file")  # a damaged cache file is replaced
    repaired = bundled.load_efficientnet_lite0_model()
    assert path.stat().st_size > 10_000_000
    np.testing.assert_allclose(
        repaired(cat[None].astype("float32") / 128.0 - 127.0 / 128.0).numpy(), expected, atol=1e-6
    )
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


# ------------------------------------------------------------ evaluation crop
def test_center_crop_resize_known_answer():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)
    # 224/256 of the 256-pixel side is exactly 224: a pure centre crop, no resampling
    np.testing.assert_array_equal(center_crop_resize(image), image[16:240, 48:272])
    small = center_crop_resize(image, size=32)
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    flat = np.full((50, 90, 3), 77, np.uint8)
    np.testing.assert_array_equal(center_crop_resize(flat), np.full((224, 224, 3), 77, np.uint8))


@pytest.mark.parametrize(
    "image, kwargs, message",
    [
        (np.zeros((10, 10), np.uint8), {}, "RGB"),
        (np.zeros((10, 10, 4), np.uint8), {}, "RGB"),
        (np.zeros((10, 10, 3), np.float32), {}, "uint8"),
        (np.zeros((0, 10, 3), np.uint8), {}, "empty"),
        (np.zeros((10, 10, 3), np.uint8), {"crop_fraction": 0}, "crop_fraction"),
        (np.zeros((10, 10, 3), np.uint8), {"size": 0}, "size"),
    ],
)
def test_center_crop_resize_rejects_bad_input(image, kwargs, message):
    with pytest.raises(CropError, match=message):
        center_crop_resize(image, **kwargs)
    assert issubclass(CropError, ValueError)


# ------------------------------------------------------------ ImageNet names
def test_imagenet_labels():
    labels = imagenet_labels()
    assert len(labels) == 1000 and len(set(labels)) == 1000
    assert labels[0] == "tench" and labels[967] == "espresso"
    assert labels[281:286] == ["tabby cat", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]
    assert labels[134] == "crane (bird)" and labels[517] == "crane (machine)"


def test_keras_class_index_has_kerass_md5(tmp_path):
    index = imagenet_class_index()
    assert index["0"] == ["n01440764", "tench"] and index["281"] == ["n02123045", "tabby"]
    assert index["282"] == ["n02123159", "tiger_cat"] and len(index) == 1000
    assert hashlib.md5(class_index_json()).hexdigest() == KERAS_CLASS_INDEX_MD5
    path = install_keras_class_index(tmp_path)
    assert path == tmp_path / "models" / "imagenet_class_index.json"
    assert json.loads(path.read_text()) == index


def test_keras_decode_predictions_works_offline(tmp_path):
    install_keras_class_index(tmp_path)
    code = (
        "import numpy as np\n"
        "from keras.applications.imagenet_utils import decode_predictions\n"
        "p = np.zeros((1, 1000), 'float32'); p[0, 282] = 0.7; p[0, 281] = 0.2\n"
        "print(decode_predictions(p, top=2))\n"
    )
    # no network here: if Keras disliked the file it would try to download it and fail
    env = dict(os.environ, KERAS_HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "('n02123159', 'tiger_cat', np.float32(0.7))" in out.stdout
    assert "('n02123045', 'tabby', np.float32(0.2))" in out.stdout
