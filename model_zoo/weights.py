"""Finding, checking and (only when asked) downloading Keras Applications ImageNet weights.

Why not let Keras do it: ``keras.utils.get_file`` re-downloads a cached file whose hash does not
match and deletes it when that fails, and it downloads silently on first use. XAI Lens must work
offline and never destroy a user's file, so we look the file up ourselves, check its hash, report
a wrong file (expected hash, found hash, path) and leave it where it is, and hand the verified
path to Keras as ``weights=<path>``. Downloads happen only in ``download_weights``.

No Keras/TensorFlow import here: checking weights must stay cheap (``python -m model_zoo list``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from model_zoo.catalog import CatalogEntry

Progress = Callable[[int, "int | None"], None]
"""Download progress callback: (bytes done, total bytes or None when the server does not say)."""

_CHUNK = 1 << 20
_hash_cache: dict[tuple, str] = {}
_hash_lock = threading.Lock()


class WeightsError(ValueError):
    """Weights that are missing, damaged or cannot be downloaded; the message says what to do."""


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a model's weights are usable here, and a one-line message for users."""

    present: bool  # a file with the right hash (or, without a published hash, any file) exists
    path: Path  # the verified file when present, else where the file should be placed
    message: str
    found_hash: str | None = None  # the hash of a wrong file, when one is in the way


# ---------------------------------------------------------------------- locations
def keras_home() -> Path:
    """Keras's cache folder: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when ``~`` is
    not writable), the same rule as ``keras.src.backend.config``."""
    env = os.environ.get("KERAS_HOME")
    if env:
        return Path(env).expanduser()
    home = Path("~").expanduser()
    if not os.access(home, os.W_OK):
        return Path("/tmp") / ".keras"
    return home / ".keras"


def models_dir() -> Path:
    """``<KERAS_HOME>/models``, where Keras caches application weights."""
    return keras_home() / "models"


def default_path(entry: CatalogEntry) -> Path:
    """Where Keras (and ``download_weights``) keep this model's weights file."""
    return models_dir() / entry.weights_file


def _candidates(entry: CatalogEntry) -> list[Path]:
    paths = [default_path(entry)]
    # keras.utils.get_file falls back to /tmp/.keras when the cache folder is not writable
    fallback = Path("/tmp") / ".keras" / "models" / entry.weights_file
    if fallback not in paths and not os.access(keras_home(), os.W_OK):
        paths.append(fallback)
    return paths


# ---------------------------------------------------------------------- hashing
def file_hash(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file, cached per (path, size, mtime) so repeated status checks are free."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, algorithm)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def _where_to_get(entry: CatalogEntry, path: Path) -> str:
    return (
        f"download {entry.weights_url} and save it as {path} "
        f"(or run: python -m model_zoo download {entry.id})"
    )


def _check_file(entry: CatalogEntry, path: Path) -> WeightsStatus:
    """Status of an existing file against the entry's published hash (never modifies it)."""
    if not path.is_file():
        return WeightsStatus(False, path, f"{path} is not a file")
    if entry.file_hash is None:
        return WeightsStatus(
            True, path, f"weights found at {path} (Keras publishes no checksum for this file)"
        )
    algo = entry.hash_algorithm
    try:
        found = file_hash(path, algo)
    except OSError as e:
        return WeightsStatus(False, path, f"cannot read {path}: {e.strerror or e}")
    if found != entry.file_hash:
        return WeightsStatus(
            False,
            path,
            f"the weights file {path} for {entry.name} has {algo} {found}, expected "
            f"{entry.file_hash}; it was left untouched: move it away and "
            f"{_where_to_get(entry, default_path(entry))}",
            found_hash=found,
        )
    return WeightsStatus(True, path, f"weights found at {path} ({algo} verified)")


def weights_status(entry: CatalogEntry, path: str | os.PathLike | None = None) -> WeightsStatus:
    """Look for the weights (``path`` if given, else the Keras cache) and check their hash.

    A wrong file is reported in the message and left alone; a missing one gets a message naming
    the file, the folder to put it in and the URL to get it from.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            return WeightsStatus(False, p, f"the weights file {p} does not exist")
        return _check_file(entry, p)
    wrong: WeightsStatus | None = None
    for p in _candidates(entry):
        if p.exists():
            status = _check_file(entry, p)
            if status.present:
                return status
            wrong = wrong or status
    if wrong is not None:
        return wrong
    target = default_path(entry)
    return WeightsStatus(
        False,
        target,
        f"the ImageNet weights of {entry.name} are not on this machine: "
        f"{_where_to_get(entry, target)}",
    )


def require_weights(entry: CatalogEntry, path: str | os.PathLike | None = None) -> Path:
    """The verified weights file, or WeightsError with the status message."""
    status = weights_status(entry, path)
    if not status.present:
        raise WeightsError(status.message)
    return status.path


# ---------------------------------------------------------------------- download
MIRROR_ENV = "XAI_LENS_WEIGHTS_MIRROR"
"""An HTTP(S) folder holding the weights files under their Keras names (a company mirror, or
a local server in tests); unset means the Keras servers."""


def weights_url(entry: CatalogEntry) -> str:
    """Where ``download_weights`` fetches from: ``$XAI_LENS_WEIGHTS_MIRROR/<file>`` or Keras's URL."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{entry.weights_file}" if mirror else entry.weights_url


def download_weights(
    entry: CatalogEntry,
    progress: Progress | None = None,
    *,
    url: str | None = None,
    dest: str | os.PathLike | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the weights into the Keras cache (only ever on explicit request).

    Streams to a temporary file next to the destination, checks the hash, then renames it into
    place atomically, so a half-finished or corrupt download never looks like a valid file. A
    different file already at the destination is not overwritten. ``url`` and ``dest`` override
    the entry's URL (or ``$XAI_LENS_WEIGHTS_MIRROR``) and the Keras cache path.
    """
    url = url or weights_url(entry)
    target = Path(dest).expanduser() if dest is not None else default_path(entry)
    if target.exists():
        status = _check_file(entry, target)
        if status.present:
            return target
        raise WeightsError(
            f"a different file is already at {target} ({entry.hash_algorithm} "
            f"{status.found_hash}, expected {entry.file_hash}); it was left untouched: move it "
            "away and download again"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(f"cannot create the folder {target.parent}: {e.strerror or e}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    h = hashlib.new(entry.hash_algorithm) if entry.file_hash else None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise WeightsError(
                    f"cannot download {url} ({reason}); without internet, download it on "
                    f"another machine and place it at {target}"
                ) from None
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                if progress is not None:
                    progress(0, total)
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except OSError as e:
                        raise WeightsError(
                            f"the download of {url} broke off after {done} bytes ({e}); try "
                            f"again, or download it on another machine and place it at {target}"
                        ) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    if h is not None:
                        h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        if h is not None and h.hexdigest() != entry.file_hash:
            raise WeightsError(
                f"the file downloaded from {url} has {entry.hash_algorithm} {h.hexdigest()}, "
                f"expected {entry.file_hash}; it was discarded and {target} was not changed"
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():  # our own partial or rejected download, never a user's file
            tmp.unlink()
    return target
