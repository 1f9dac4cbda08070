"""Imports the built-in method modules; each registers itself with ``explainers.base.register``.

Adding an explainer: write ``explainers/<name>.py`` ending with a ``register(MethodSpec(...))``
call and add its module name here. The contract test picks it up automatically.
"""
import importlib

BUILTIN_MODULES = (
    "explainers.lime",
    "explainers.kernel_shap",
    "explainers.cam",
    "explainers.occlusion",
    "explainers.gradients",
    "explainers.dff",
    "explainers.feature_ablation",
    "explainers.partition_shap",
    "explainers.rise",
)

for _module in BUILTIN_MODULES:
    importlib.import_module(_module)
