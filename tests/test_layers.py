"""The layers stay apart: the library's registry imports neither Streamlit nor TensorFlow, the
model registry not Streamlit (fresh interpreters, so nothing imported by other tests counts)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_after(statement: str) -> set[str]:
    code = (f"import sys, json; {statement}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('streamlit', 'tensorflow', 'keras', 'torch', 'ray'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("statement, forbidden", [
    ("import explainers.registry; from explainers.base import methods; methods()",
     {"streamlit", "tensorflow", "keras"}),
    ("import explainers.protocol, explainers.export, explainers.store, explainers.render",
     {"streamlit", "tensorflow", "keras"}),
    ("import model_zoo.registry", {"streamlit"}),
])
def test_importing_the_library_leaves_the_ui_and_backends_out(statement, forbidden):
    assert not imported_after(statement) & forbidden


def test_no_python_module_at_the_top_level_but_app():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["app.py"]


def test_the_library_never_imports_streamlit_or_the_ui():
    offenders = [str(p.relative_to(ROOT)) for folder in ("explainers", "model_zoo")
                 for p in (ROOT / folder).rglob("*.py")
                 if any(line.lstrip().startswith(("import streamlit", "from streamlit", "from ui", "import ui"))
                        for line in p.read_text().splitlines())]
    assert not offenders
