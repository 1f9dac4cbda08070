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


@pytest.mark.slow
def test_video_on_ray_streams_bounded_chunks_and_matches_local(tmp_path):
    import ray

    from explainers.audit.engines import ray_frame_outcomes, start_ray
    from tests.explainers.audit_models import write_video

    model = {"ref": save_model(tiny_cnn(size=32), tmp_path / "tiny.keras")}
    video = write_video(tmp_path / "clip.mp4", frames=24)
    cfg = AuditConfig(methods=("gradcam",), batch_size=2, deletion_steps=0, thumb_size=32, seed=1)
    local = run_audit(open_source(video, every=2), tmp_path / "local", model=model, config=cfg)
    started = start_ray(None, 2)  # one Ray for both checks below
    try:
        ray_run = run_audit(open_source(video, every=2), tmp_path / "ray", model=model, config=cfg,
                            engine="ray", workers=2)
        assert local["images"] == ray_run["images"] == 12
        a = pd.read_parquet(tmp_path / "local" / "results.parquet")
        b = pd.read_parquet(tmp_path / "ray" / "results.parquet")
        pd.testing.assert_frame_equal(a, b)
        # the driver never runs more than workers × in_flight batches ahead of the results
        source = open_source(video, every=2)
        pulled, ahead = [0], []

        def batches():
            items = list(source.items())
            for i in range(0, len(items), 2):
                pulled[0] += 1
                yield items[i:i + 2], list(range(i, i + 2))

        done = 0
        for _ in ray_frame_outcomes(model, cfg.as_dict(), None, batches(), workers=2, in_flight=2):
            done += 1
            ahead.append(pulled[0] - done / 2)
        assert done == 12 and max(ahead) <= 2 * 2
    finally:
        if started:
            ray.shutdown()
