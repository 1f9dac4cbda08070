"""A small thread-safe least-recently-used cache bounded by bytes, not by entry count.

Why: Streamlit's caches bound entries by count, so their memory follows whatever users upload
(eight 36-megapixel photos took 1.2 GB in a 32-entry decode cache). The dashboard keeps its
fitted images, superpixel previews and similar arrays here instead, shared by all sessions.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

import numpy as np

T = TypeVar("T")


def nbytes(value: Any, _depth: int = 0) -> int:
    """Approximate memory held by ``value``: numpy buffers, bytes, and containers of them."""
    if _depth > 8:
        return sys.getsizeof(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 112
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return sys.getsizeof(value)
    if isinstance(value, (tuple, list, set, frozenset)):
        return sys.getsizeof(value) + sum(nbytes(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(
            nbytes(k, _depth + 1) + nbytes(v, _depth + 1) for k, v in value.items()
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(nbytes(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value))
    return sys.getsizeof(value)


class ByteLRU:
    """``key → value`` with at most ``max_bytes`` held; the least recently used go first.

    A value larger than ``max_bytes`` is returned to its caller but not kept. ``get_or_compute``
    computes outside the lock (a slow computation never blocks other keys); two threads that
    miss the same key at once may both compute it, and the second result replaces the first.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[Any], int] = nbytes) -> None:
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be ≥ 0, not {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._sizeof = sizeof
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def bytes(self) -> int:
        """Bytes currently held (by ``sizeof``'s count)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = int(self._sizeof(value))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


__all__ = ["ByteLRU", "nbytes"]
