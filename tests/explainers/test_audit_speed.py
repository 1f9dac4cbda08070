"""The audit's fast paths give exactly what the plain paths give (issue 11, speed).

* ``bilinear_resize`` / ``upsample`` = skimage's ``resize(order=1, mode="edge")`` bit for bit;
* ``normalised_map`` = the block means of the map's positive part (known answers);
* the local engine's forward-ahead pipeline (the next batch's model pass in the reading
  thread) writes the same rows, maps, thumbnails and call counts as the serial order, and an
  error in that thread reaches the caller.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from skimage.transform import resize

from explainers.audit import AuditConfig, open_source, run_audit
from explainers.audit.aggregate import normalised_map
from explainers.audit.process import AuditWorker
from explainers.base import bilinear_resize, upsample
from model_zoo.registry import load_classifier
from tests.explainers.audit_models import noise_folder, save_model, tiny_cnn

SHAPES = [(7, 7, 224, 224), (224, 224, 96, 96), (7, 7, 96, 96), (5, 9, 100, 37), (1, 1, 5, 5),
          (3, 3, 3, 8), (13, 17, 299, 299), (224, 224, 16, 16)]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("h,w,H,W", SHAPES)
def test_bilinear_resize_is_skimage_bit_for_bit(h, w, H, W):
    rng = np.random.default_rng(h * 1000 + W)
    for trial in range(12):
        dtype = np.float32 if trial % 2 else np.float64
        a = (rng.standard_normal((h, w)) * 10 ** rng.uniform(-6, 6)).astype(dtype)
        if trial % 3 == 0:
            a = np.maximum(a, 0)  # Grad-CAM maps after the ReLU: many exact zeros
        ref = resize(a, (H, W), order=1, mode="edge", anti_aliasing=False, preserve_range=True)
        assert _same_bits(bilinear_resize(a, (H, W)), ref)
        if dtype == np.float32:  # upsample takes the fast path for finite float maps
            assert _same_bits(upsample(a, (H, W)), ref.astype(np.float32))
    # a constant map stays exactly constant (the clip to the input's range)
    flat = np.full((7, 7), 0.3, np.float32)
    assert np.all(upsample(flat, (224, 224)) == np.float32(0.3))


def test_upsample_falls_back_for_what_the_fast_path_does_not_cover():
    a = np.arange(49, dtype=np.float32).reshape(7, 7)
    a[3, 3] = np.nan
    ref = resize(a, (20, 20), order=1, mode="edge", anti_aliasing=False, preserve_range=True).astype(np.float32)
    np.testing.assert_array_equal(upsample(a, (20, 20)), ref)  # NaN → skimage, NaNs where it puts them
    b = np.arange(49, dtype=np.float32).reshape(7, 7)
    for method, order in (("nearest", 0), ("bicubic", 3)):
        ref = resize(b, (20, 20), order=order, mode="edge", anti_aliasing=False, preserve_range=True)
        assert _same_bits(upsample(b, (20, 20), method), ref.astype(np.float32))


@pytest.mark.parametrize("H,W,grid", [(224, 224, 16), (64, 48, 8)])
def test_normalised_map_is_the_block_mean_of_the_positive_part(H, W, grid):
    rng = np.random.default_rng(H + W)
    heat = rng.standard_normal((H, W)).astype(np.float16).astype(np.float32)  # as the audit stores it
    pos = np.maximum(heat.astype(np.float64), 0.0)
    blocks = pos.reshape(grid, H // grid, grid, W // grid).mean(axis=(1, 3))
    np.testing.assert_allclose(normalised_map(heat, grid), (blocks / blocks.sum()).ravel(), rtol=1e-5)
    assert not normalised_map(np.zeros((H, W)), grid).any()  # nothing positive: all zero, not NaN


@pytest.mark.parametrize("H,W", [(299, 299), (100, 37), (7, 7)])
def test_normalised_map_keeps_the_mass_where_it_is_when_cells_straddle_pixels(H, W):
    """Sizes that do not divide: a map positive only on its left third keeps all its mass in
    the cells over that third (the cell at the edge included), spread evenly over the cells
    wholly inside it; a map smaller than the grid is spread, not dropped."""
    heat = np.zeros((H, W), np.float32)
    heat[:, : max(1, W // 3)] = 1.0
    cols = normalised_map(heat, 16).reshape(16, 16).sum(axis=0)
    assert abs(cols.sum() - 1.0) < 1e-9
    edge = max(1, W // 3) / W * 16  # where the positive part ends, in cells
    assert cols[int(np.ceil(edge)):].sum() < 1e-9  # nothing beyond the cell holding the edge
    inside = cols[: max(1, int(np.floor(edge)) - 1)]
    np.testing.assert_allclose(inside, inside[0], rtol=1e-5)  # cells wholly inside are equal


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_model(tiny_cnn(), tmp_path_factory.mktemp("model") / "tiny.keras")


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.parts[-2:][0] != "" and p.suffix in (".npz", ".png", ".json", ".parquet")}


def test_forward_ahead_writes_what_the_serial_order_writes(model_path, tmp_path, monkeypatch):
    root = noise_folder(tmp_path / "data", per_class=7)  # 14 images: batches of 4, 4, 4, 2
    (root / "a" / "broken.png").write_bytes(b"garbage")
    cfg = AuditConfig(methods=("gradcam", "hirescam"), top_k=2, batch_size=4, model_batch=3,
                      deletion_steps=0, thumb_size=32, seed=3)
    clf = load_classifier(model_path)
    worker = AuditWorker(clf, cfg)
    assert worker.forward_ahead  # gradient CAMs of the batched pass, no deletion metric
    assert not AuditWorker(clf, AuditConfig(methods=("gradcam",), deletion_steps=4)).forward_ahead
    assert not AuditWorker(clf, AuditConfig(methods=("gradcam", "kernel_shap"), deletion_steps=0)).forward_ahead

    seen = clf.images_seen
    ahead = run_audit(open_source(root), tmp_path / "ahead", classifier=clf, config=cfg)
    assert clf.images_seen - seen == ahead["model_calls"] == 14  # one batched pass per image
    monkeypatch.setattr(AuditWorker, "forward_ahead", property(lambda self: False))
    serial = run_audit(open_source(root), tmp_path / "serial", classifier=clf, config=cfg)
    assert serial["model_calls"] == 14 and ahead["images"] == serial["images"] == 14
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ahead" / "results.parquet"),
                                  pd.read_parquet(tmp_path / "serial" / "results.parquet"))
    a, b = _files(tmp_path / "ahead"), _files(tmp_path / "serial")
    assert set(a) == set(b)
    for name in a:
        if name.startswith("parts/"):  # identical but for the measured seconds
            pa, pb = json.loads(a[name]), json.loads(b[name])
            pa.pop("seconds"), pb.pop("seconds")
            assert pa == pb, name
        elif name.startswith(("maps/", "thumbs/", "aggregates/")) or name == "clusters.json":
            assert a[name] == b[name], name


def test_an_error_in_the_forward_ahead_thread_reaches_the_caller(model_path, tmp_path, monkeypatch):
    root = noise_folder(tmp_path / "data", per_class=4)  # 8 images: batches of 2
    cfg = AuditConfig(methods=("gradcam",), batch_size=2, deletion_steps=0, thumb_size=32)
    clf = load_classifier(model_path)
    calls = []
    real = AuditWorker.forward

    def failing(self, prepared):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("model pass failed")
        return real(self, prepared)

    monkeypatch.setattr(AuditWorker, "forward", failing)
    with pytest.raises(RuntimeError, match="model pass failed"):
        run_audit(open_source(root), tmp_path / "out", classifier=clf, config=cfg)
    parts = sorted((tmp_path / "out" / "parts").glob("*.json"))
    assert len(parts) == 4  # the two batches before the failure are saved, nothing after it
    monkeypatch.setattr(AuditWorker, "forward", real)  # a rerun resumes with the rest
    again = run_audit(open_source(root), tmp_path / "out", classifier=clf, config=cfg)
    assert again["new_images"] == 4 and again["images"] == 8
