"""Run several registered methods on one image, sharing model calls through one context."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from explainers.base import ExplainerError, Explanation, Timer, get_method, make_params, methods
from explainers.context import ExplainContext, resolve_labels

# Fast methods first so that a UI can show them while the slow ones run.
_FAMILY_ORDER = {"cam": 0, "gradient": 1, "occlusion": 2, "perturbation": 3}


def order_methods(names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda n: (_FAMILY_ORDER.get(get_method(n).family, 9), list(names).index(n)))


def check_contrast(ctx: ExplainContext, name: str, contrast: int | None) -> int | None:
    """The contrast label B validated for method ``name`` (None: plain explanations)."""
    if contrast is None:
        return None
    spec = get_method(name)
    if not spec.contrast:
        raise ExplainerError(
            f"{spec.title} cannot explain one label rather than another; methods that can: "
            + ", ".join(n for n, s in methods().items() if s.contrast)
        )
    return resolve_labels(ctx, [contrast])[0]


def run_method(
    ctx: ExplainContext, name: str, params: Any = None, labels: Sequence[int] | None = None,
    top_k: int = 1, contrast: int | None = None,
) -> list[Explanation]:
    """Run one registered method for the given labels (default: the top-k predicted); with
    ``contrast`` B, each map explains "why the label rather than B" (score − score of B)."""
    spec = get_method(name)
    if not isinstance(params, spec.params_type):
        params = make_params(spec.params_type, params)
    resolved = resolve_labels(ctx, labels, top_k)
    contrast = check_contrast(ctx, name, contrast)
    if contrast is not None and contrast in resolved:
        raise ExplainerError(
            f"label {contrast} ({ctx.label_name(contrast)}) cannot be explained rather than itself; "
            "pick two different labels"
        )
    with Timer():
        if contrast is None:
            return spec.run(ctx, params, resolved)
        return spec.run(ctx, params, resolved, contrast=contrast)


def explain(
    ctx: ExplainContext,
    methods: Mapping[str, Any] | Sequence[str],
    labels: Sequence[int] | None = None,
    top_k: int = 1,
    contrast: int | None = None,
) -> list[Explanation]:
    """Run ``methods`` ({name: params or dict} or names) for ``labels`` and return all results
    (with ``contrast`` B: why each label rather than B)."""
    if not isinstance(methods, Mapping):
        methods = {name: None for name in methods}
    params = {}
    for name, value in methods.items():  # fail fast on unknown names, bad parameters, impossible contrasts
        spec = get_method(name)
        params[name] = value if isinstance(value, spec.params_type) else make_params(spec.params_type, value)
        check_contrast(ctx, name, contrast)
    resolved = resolve_labels(ctx, labels, top_k)
    ctx.plan(params, resolved)  # "auto" samples settle every superpixel method of the request together
    methods = params
    results: list[Explanation] = []
    for name in order_methods(list(methods)):
        results.extend(run_method(ctx, name, methods[name], resolved, contrast=contrast))
    return results
