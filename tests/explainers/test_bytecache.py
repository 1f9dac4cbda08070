"""The byte-bounded LRU behind the dashboard's image caches."""
import threading

import numpy as np
import pytest

from explainers.bytecache import ByteLRU, nbytes


def test_bounded_by_bytes_and_evicts_the_least_recently_used():
    cache = ByteLRU(max_bytes=3000, sizeof=lambda v: v.nbytes)
    a, b, c = (np.zeros(1000, np.uint8) for _ in range(3))
    cache.put("a", a)
    cache.put("b", b)
    cache.put("c", c)
    assert cache.bytes == 3000 and len(cache) == 3
    assert cache.get("a") is a  # "a" is now the most recent
    cache.put("d", np.zeros(1500, np.uint8))  # 4500 > 3000: "b" then "c" go
    assert "b" not in cache and "c" not in cache and "a" in cache and "d" in cache
    assert cache.bytes == 2500
    cache.put("a", np.zeros(10, np.uint8))  # replacing a key frees its old bytes
    assert cache.bytes == 1510


def test_a_value_larger_than_the_bound_is_returned_but_not_kept():
    cache = ByteLRU(max_bytes=100, sizeof=lambda v: v.nbytes)
    big = np.zeros(101, np.uint8)
    assert cache.get_or_compute("big", lambda: big) is big
    assert len(cache) == 0 and cache.bytes == 0


def test_get_or_compute_computes_once_per_key():
    cache = ByteLRU(max_bytes=10_000)
    calls = []
    for _ in range(3):
        assert cache.get_or_compute(("k", 1), lambda: calls.append(1) or np.ones(10)).sum() == 10
    assert len(calls) == 1 and cache.hits == 2 and cache.misses == 1


def test_nbytes_counts_arrays_inside_dataclasses_and_tuples():
    from model_zoo.images import FittedImage

    fitted = FittedImage(np.zeros((224, 224, 3), np.uint8), (6000, 6000), "crop", (0, 0, 6000, 6000), (0, 0, 224, 224))
    assert 224 * 224 * 3 <= nbytes(fitted) < 224 * 224 * 3 + 2000  # not the 6000² original
    assert nbytes((np.zeros(100, np.float64), b"x" * 50)) >= 850


def test_threads_never_push_it_past_its_bound():
    cache = ByteLRU(max_bytes=50_000, sizeof=lambda v: v.nbytes)
    errors = []

    def work(t):
        try:
            for i in range(300):
                cache.put((t, i % 40), np.zeros(1000 + 10 * (i % 7), np.uint8))
                cache.get((t, (i * 7) % 40))
                assert cache.bytes <= 50_000
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.bytes == sum(v.nbytes for v in (cache.get(k) for k in list(cache._items)))


def test_negative_bound_is_refused():
    with pytest.raises(ValueError):
        ByteLRU(-1)
