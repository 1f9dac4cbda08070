"""Video audit: frames every k-th or at a rate, per-frame rows, overlay video round trip."""
from __future__ import annotations

import av
import numpy as np
import pandas as pd
import pytest

from explainers.audit import AuditConfig, open_source, run_audit
from explainers.audit.sources import SourceError
from explainers.audit.video import BAND, write_overlay_video
from model_zoo.registry import load_classifier
from tests.explainers.audit_models import save_model, tiny_cnn, write_video

FRAMES, H, W, FPS = 12, 48, 64, 6


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", FRAMES, H, W, FPS)


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return load_classifier(save_model(tiny_cnn(), tmp_path_factory.mktemp("m") / "tiny.keras"))


def decode(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_frames_every_k_and_at_a_rate(video):
    every = [i.frame for i in open_source(video, every=4).items()]
    assert every == [0, 4, 8]
    at = [i.frame for i in open_source(video, fps=2).items()]  # 6 fps source → every 3rd frame
    assert at == [0, 3, 6, 9]
    assert open_source(video, every=4).count() == 3
    with pytest.raises(SourceError, match="not both"):
        open_source(video, every=2, fps=1)


def test_video_audit_rows_and_overlay_round_trip(video, clf, tmp_path):
    source = open_source(video, every=2)
    summary = run_audit(source, tmp_path / "out", classifier=clf,
                        config=AuditConfig(methods=("gradcam",), deletion_steps=0, batch_size=4, thumb_size=32))
    assert summary["images"] == FRAMES // 2 and summary["errors"] == 0
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(frame["frame"]) == list(range(0, FRAMES, 2))
    np.testing.assert_allclose(frame["time"], np.arange(0, FRAMES, 2) / FPS, atol=1e-6)
    assert frame["peak_row"].max() < H and frame["peak_col"].max() < W
    # the summary counts frames, and says nothing about folder labels or masks a video cannot have
    html = (tmp_path / "out" / "summary.html").read_text()
    assert f"{FRAMES // 2} frames explained" in html and f"looked at {FRAMES // 2} frames" in html
    assert "images explained" not in html and "Accuracy" not in html and "Not checked" not in html
    out = write_overlay_video(tmp_path / "out", source)
    frames = decode(out)
    assert len(frames) == FRAMES // 2
    assert frames[0].shape == (H + BAND, W, 3)
    with av.open(str(out)) as c:
        assert float(c.streams.video[0].average_rate) == pytest.approx(FPS / 2)
