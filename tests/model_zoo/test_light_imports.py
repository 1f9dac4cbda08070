"""The sidebar's first draw (the model list) and a scikit-learn model need no TensorFlow.

Why it matters: importing TensorFlow takes ~6 s on these machines; while the model list waited for
it, a first visitor saw a blank page with no title and no spinner. Each check runs in a fresh
interpreter, because this test process has long imported TensorFlow.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    return set(out.stdout.split())


def test_listing_the_models_does_not_import_tensorflow():
    loaded = _modules_after(
        "from model_zoo.registry import available_models\n"
        "choices = available_models()\n"
        "assert choices[0].id == 'efficientnet-lite0' and choices[0].available, choices[0]\n"
        "assert len(choices) > 1"
    )
    assert "tensorflow" not in loaded and "keras" not in loaded


def test_the_sklearn_path_and_the_model_error_need_no_tensorflow():
    loaded = _modules_after(
        "from model_zoo.sklearn_model import ModelError as A\n"
        "from model_zoo.bundled import BundledModelError\n"
        "from model_zoo.errors import ModelError\n"
        "assert A is ModelError and issubclass(BundledModelError, ModelError)"
    )
    assert "tensorflow" not in loaded
    # ...and the classifier module still names the same class (callers import it from there)
    from model_zoo.classifier import ModelError as FromClassifier
    from model_zoo.errors import ModelError

    assert FromClassifier is ModelError
