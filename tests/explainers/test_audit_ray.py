"""The Ray engine (a real local Ray, 2 actors) writes the same rows as the local engine."""
from __future__ import annotations

import pandas as pd
import pytest

from explainers.audit import AuditConfig, open_source, run_audit
from tests.explainers.audit_models import noise_folder, save_model, tiny_cnn


@pytest.mark.slow
def test_ray_and_local_write_identical_rows(tmp_path):
    model = {"ref": save_model(tiny_cnn(), tmp_path / "tiny.keras")}
    root = noise_folder(tmp_path / "data", per_class=5)
    (root / "a" / "broken.png").write_bytes(b"garbage")
    cfg = AuditConfig(samples=32, batch_size=3, deletion_steps=4, random_orders=1, thumb_size=32, seed=5)
    local = run_audit(open_source(root), tmp_path / "local", model=model, config=cfg)
    ray = run_audit(open_source(root), tmp_path / "ray", model=model, config=cfg, engine="ray", workers=2)
    assert local["images"] == ray["images"] == 10 and local["errors"] == ray["errors"] == 1
    assert local["model_calls"] == ray["model_calls"]
    a = pd.read_parquet(tmp_path / "local" / "results.parquet")
    b = pd.read_parquet(tmp_path / "ray" / "results.parquet")
    pd.testing.assert_frame_equal(a, b)  # exactly: same batches, per-image seeds
    assert (tmp_path / "ray" / "summary.html").exists()
