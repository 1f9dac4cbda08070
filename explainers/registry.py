"""Imports the built-in method modules; each registers its methods with ``explainers.base.register``.

Adding an explainer: write ``explainers/<name>.py`` ending with one ``register(MethodSpec(...))``
call per method (see the module docstring of ``explainers/base.py``) and add its module name
here. The contract test, the CLI, the Explain form and the Guide pick it up from the registry.
Importing this module imports neither TensorFlow nor Streamlit (tested).
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
