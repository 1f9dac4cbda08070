"""The Keras Applications ImageNet models XAI Lens offers, one row per model.

Why a table: everything the app needs about a model (how to build it, how to preprocess, where
to take Grad-CAM, which weights file Keras uses and how to check it) lives in one frozen row, so
adding a model is adding one row. Nothing here imports Keras or TensorFlow: listing models and
checking their weights must stay cheap.

Facts below were read from the installed Keras 3.15 sources (``keras/src/applications/*.py``):
weights URLs, the file names Keras caches under ``<KERAS_HOME>/models/`` and Keras's own
``file_hash`` values (32 hex digits = md5, 64 = sha256, the rule of ``keras.utils.get_file``).
CAM layers were found by building every model with ``weights=None``.
"""
from __future__ import annotations

from dataclasses import dataclass

_GCS = "https://storage.googleapis.com/tensorflow/keras-applications/"

# Evaluation crop: every model here was evaluated on a centre crop of 224/256 = 0.875 of the
# shorter side (Keras/TF-slim/timm standard), resized to the input size.
STANDARD_CROP = 0.875


@dataclass(frozen=True)
class CatalogEntry:
    """One Keras Applications ImageNet classifier."""

    id: str  # stable id used in URLs, the CLI and caches
    name: str  # display name
    constructor: str  # keras.applications.<constructor>
    module: str  # keras.applications.<module> holding preprocess_input / decode_predictions
    input_size: int  # square input side in pixels
    preprocessing: str  # a name from model_zoo.preprocessing.PREPROCESSING
    cam_layer: str | None  # Grad-CAM layer; None = the last 4-D layer (Keras names it by counter)
    weights_file: str  # the file name Keras caches under <KERAS_HOME>/models/
    weights_url: str  # where Keras downloads it from
    file_hash: str | None  # Keras's hash of the file (md5 or sha256); None: Keras publishes none
    crop_fraction: float = STANDARD_CROP
    top1: float | None = None  # ImageNet top-1 accuracy in % (keras.io/api/applications)
    size_mb: float | None = None  # download size in MB (keras.io table)
    # A correction Keras applies only when it downloads the weights itself (weights="imagenet")
    # and that must be redone when we pass the verified file as weights=<path>; see registry.
    weights_fix: str | None = None

    @property
    def hash_algorithm(self) -> str | None:
        """'md5' or 'sha256' (Keras's rule: 64 hex digits is sha256), None without a hash."""
        if self.file_hash is None:
            return None
        return "sha256" if len(self.file_hash) == 64 else "md5"

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.input_size, self.input_size)


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "inceptionv3", "Inception V3", "InceptionV3", "inception_v3", 299, "symmetric", "mixed10",
        "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        _GCS + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        "9a0d58056eeedaa3f26cb7ebd46da564", top1=77.9, size_mb=92,
    ),
    CatalogEntry(
        "xception", "Xception", "Xception", "xception", 299, "symmetric", "block14_sepconv2_act",
        "xception_weights_tf_dim_ordering_tf_kernels.h5",
        _GCS + "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
        "0a58e3b7378bc2990ea3b43d5981f1f6", top1=79.0, size_mb=88,
    ),
    CatalogEntry(
        "resnet50", "ResNet-50", "ResNet50", "resnet50", 224, "caffe", "conv5_block3_out",
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        _GCS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        "2cb95161c43110f7111970584f804107", top1=74.9, size_mb=98,
    ),
    CatalogEntry(
        "resnet50v2", "ResNet-50 V2", "ResNet50V2", "resnet_v2", 224, "symmetric", "post_relu",
        "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5",
        _GCS + "resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels.h5",
        "3ef43a0b657b3be2300d5770ece849e0", top1=76.0, size_mb=98,
    ),
    CatalogEntry(
        "mobilenetv2", "MobileNet V2", "MobileNetV2", "mobilenet_v2", 224, "symmetric", "out_relu",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        _GCS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        None,  # Keras downloads this file without a hash; it is checked by loading it
        top1=71.3, size_mb=14,
    ),
    CatalogEntry(
        "mobilenetv3large", "MobileNet V3 Large", "MobileNetV3Large", "mobilenet_v3", 224,
        "builtin", None,  # the last activation is named "activation_<counter>"
        "weights_mobilenet_v3_large_224_1.0_float.h5",
        _GCS + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float.h5",
        "59e551e166be033d707958cf9e29a6a7", top1=75.6,  # Keras docstring table
    ),
    CatalogEntry(
        "efficientnetb0", "EfficientNet B0", "EfficientNetB0", "efficientnet", 224, "builtin",
        "top_activation", "efficientnetb0.h5",
        "https://storage.googleapis.com/keras-applications/efficientnetb0.h5",
        "902e53a9f72be733fc0bcb005b3ebbac", top1=77.1, size_mb=29,
        weights_fix="efficientnet_stddev",
    ),
    CatalogEntry(
        "efficientnetv2b0", "EfficientNet V2 B0", "EfficientNetV2B0", "efficientnet_v2", 224,
        "builtin", "top_activation", "efficientnetv2-b0.h5",
        _GCS + "efficientnet_v2/efficientnetv2-b0.h5",
        "21ecbf6da12460d5c40bb2f29ceb2188", top1=78.7, size_mb=29,
    ),
    CatalogEntry(
        "densenet121", "DenseNet-121", "DenseNet121", "densenet", 224, "torch", "relu",
        "densenet121_weights_tf_dim_ordering_tf_kernels.h5",
        _GCS + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
        "9d60b8095a5708f2dcce2bca79d332c7", top1=75.0, size_mb=33,
    ),
    CatalogEntry(
        "vgg16", "VGG16", "VGG16", "vgg16", 224, "caffe",
        "block5_conv3",  # the last 4-D layer is a 7×7 pool; the last conv is the usual choice
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        _GCS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "64373286793e3c8b2b4e3219cbf3544b", top1=71.3, size_mb=528,
    ),
    CatalogEntry(
        "convnexttiny", "ConvNeXt Tiny", "ConvNeXtTiny", "convnext", 224, "builtin",
        # The stage-3 output is a bare `+` op (named "add_<counter>"), not a layer; the last
        # 4-D *layer* is the residual branch of the last block, which has the same gradients.
        "convnext_tiny_stage_3_block_2_identity",
        "convnext_tiny.h5", _GCS + "convnext/convnext_tiny.h5",
        "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff", top1=81.3,
        size_mb=109,
    ),
)

DEFAULT_CATALOG_ID = "inceptionv3"
"""The default model when its weights are on this machine (else the bundled offline model)."""

_BY_ID = {e.id: e for e in CATALOG}
assert len(_BY_ID) == len(CATALOG), "duplicate catalog ids"


class UnknownModelError(ValueError):
    """A model id that is neither in the catalog nor the bundled model."""


def catalog_ids() -> list[str]:
    return [e.id for e in CATALOG]


def get_entry(model_id: str) -> CatalogEntry:
    """The catalog row for ``model_id`` (case-insensitive); UnknownModelError lists the ids."""
    entry = find_entry(model_id)
    if entry is None:
        raise UnknownModelError(
            f"unknown catalog model {model_id!r}; choose one of {', '.join(catalog_ids())}"
        )
    return entry


def find_entry(model_id: str) -> CatalogEntry | None:
    """The catalog row for ``model_id`` (case-insensitive), or None."""
    return _BY_ID.get(str(model_id).strip().lower())
