"""Run several registered methods on one image, sharing model calls through one context."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from explainers.base import Explanation, Timer, get_method, make_params
from explainers.context import ExplainContext, resolve_labels

# Fast methods first so that a UI can show them while the slow ones run.
_FAMILY_ORDER = {"cam": 0, "gradient": 1, "occlusion": 2, "perturbation": 3}


def order_methods(names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda n: (_FAMILY_ORDER.get(get_method(n).family, 9), list(names).index(n)))


def run_method(
    ctx: ExplainContext, name: str, params: Any = None, labels: Sequence[int] | None = None, top_k: int = 1
) -> list[Explanation]:
    """Run one registered method for the given labels (default: the top-k predicted)."""
    spec = get_method(name)
    if not isinstance(params, spec.params_type):
        params = make_params(spec.params_type, params)
    resolved = resolve_labels(ctx, labels, top_k)
    with Timer():
        return spec.run(ctx, params, resolved)


def explain(
    ctx: ExplainContext,
    methods: Mapping[str, Any] | Sequence[str],
    labels: Sequence[int] | None = None,
    top_k: int = 1,
) -> list[Explanation]:
    """Run ``methods`` ({name: params or dict} or names) for ``labels`` and return all results."""
    if not isinstance(methods, Mapping):
        methods = {name: None for name in methods}
    params = {}
    for name, value in methods.items():  # fail fast on unknown names and bad parameters
        spec = get_method(name)
        params[name] = value if isinstance(value, spec.params_type) else make_params(spec.params_type, value)
    resolved = resolve_labels(ctx, labels, top_k)
    ctx.plan(params, resolved)  # "auto" samples settle every superpixel method of the request together
    methods = params
    results: list[Explanation] = []
    for name in order_methods(list(methods)):
        results.extend(run_method(ctx, name, methods[name], resolved))
    return results
