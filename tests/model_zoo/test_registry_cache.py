"""model_zoo.registry keeps the one classifier cache, bounded and least-recently-used first out."""
from __future__ import annotations

from model_zoo import registry


def test_the_classifier_cache_is_bounded_lru(monkeypatch):
    monkeypatch.setattr(registry, "MAX_CACHED_CLASSIFIERS", 2)
    registry.clear_cache()
    built = []

    def build(name):
        built.append(name)
        return object()

    a = registry._cached(("a",), lambda: build("a"))
    registry._cached(("b",), lambda: build("b"))
    assert registry._cached(("a",), lambda: build("a")) is a  # hit: a becomes the most recent
    registry._cached(("c",), lambda: build("c"))  # evicts b, the least recently used
    assert list(registry._cache) == [("a",), ("c",)]
    registry._cached(("b",), lambda: build("b"))
    assert built == ["a", "b", "c", "b"] and len(registry._cache) == 2
    registry.clear_cache()
