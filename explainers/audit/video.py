"""The overlay video of a video audit: each audited frame with its map and a label track.

The frames are decoded again from the source (the results hold only small copies), the
frame's map (saved at the model input size) is mapped back onto the frame's own pixels through
the fit geometry stored with its rows, and a band on top names the predicted label and its
probability, with a strip showing the label of every audited frame so far (the *track*: a
change of colour is a change of prediction). Written with PyAV (H.264, even sizes, yuv420p) to a
temporary file and renamed into place.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from explainers.base import ExplainerError

BAND = 18
_PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
], dtype=np.uint8)


def _original_map(heat: np.ndarray, geometry: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    from model_zoo.images import FittedImage

    fit = FittedImage(
        image=np.zeros((*heat.shape, 3), np.uint8), original_shape=tuple(shape),
        policy=geometry["policy"], source_box=tuple(geometry["source_box"]),
        target_box=tuple(geometry["target_box"]),
    )
    return np.nan_to_num(fit.map_to_original(heat.astype(np.float64)), nan=0.0)


def _band(width: int, text: str, colour: np.ndarray, track: list[int]) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (width, BAND), (20, 20, 20))
    draw = ImageDraw.Draw(band)
    draw.rectangle([0, 0, 5, BAND - 5], fill=tuple(int(c) for c in colour))
    draw.text((9, 1), text, fill=(255, 255, 255))
    out = np.asarray(band).copy()
    if track:  # the label of every frame so far, squeezed into the band's bottom 4 rows
        cols = np.linspace(0, len(track), width, endpoint=False).astype(int)
        cols = np.minimum(cols, len(track) - 1)
        strip = _PALETTE[np.array(track)[cols] % len(_PALETTE)]
        upto = int(round(width * len(track) / max(len(track), 1)))
        out[BAND - 4 :, :upto] = strip[:upto]
    return out


def write_overlay_video(results_dir: str | os.PathLike, source: Any, out_path: str | os.PathLike | None = None,
                        method: str | None = None) -> Path:
    """Write ``overlay.mp4`` (or ``out_path``) for a finished video audit; returns its path."""
    import av

    from explainers.audit.process import image_id
    from explainers.audit.sources import video_info
    from explainers.audit.store import ResultStore
    from explainers.render import overlay

    store = ResultStore(results_dir)
    manifest = store.read_manifest()
    if manifest is None or manifest["source"]["kind"] != "video":
        raise ExplainerError(f"{results_dir} does not hold a video audit")
    method = method or manifest["params"]["methods"][0]
    info = video_info(source.location)
    rate = float(source.fps) if source.fps else info["fps"] / float(source.every or 1)
    out_path = Path(out_path) if out_path else store.root / "overlay.mp4"
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".tmp-", suffix=".mp4")
    os.close(fd)
    track: list[int] = []
    written = 0
    try:
        with av.open(tmp, mode="w") as container:
            stream = None
            for item in source.items():
                if item.kind != "frame":
                    continue
                frame = item.pixels
                h, w = frame.shape[:2]
                if stream is None:
                    from fractions import Fraction

                    stream = container.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
                    stream.width, stream.height = w + (w % 2), h + BAND + ((h + BAND) % 2)
                    stream.pix_fmt = "yuv420p"
                part_path = store.part_path(image_id(item.name))
                picture = frame
                text = "not audited"
                colour = np.array((90, 90, 90), np.uint8)
                if part_path.exists():
                    import json

                    part = json.loads(part_path.read_text(encoding="utf-8"))
                    rows = [r for r in part["rows"] if r["method"] == method and r["rank"] == 0]
                    if rows and part.get("geometry"):
                        row = rows[0]
                        heat = store.load_maps(part["id"])[f"{method}/{row['label']}"].astype(np.float32)
                        big = _original_map(heat, part["geometry"], (h, w))
                        limit = float(np.max(np.abs(big))) or 1.0
                        picture = overlay(frame, big, limit=limit, positive_only=bool(big.min() >= 0))
                        text = f"{row['label_name']}  {row['probability']:.0%}"
                        track.append(int(row["label"]))
                        colour = _PALETTE[int(row["label"]) % len(_PALETTE)]
                    elif part.get("error"):
                        text = "unreadable frame"
                canvas = np.zeros((stream.height, stream.width, 3), np.uint8)
                canvas[:BAND, :w] = _band(w, text, colour, track)
                canvas[BAND : BAND + h, :w] = picture
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    container.mux(packet)
                written += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        if not written:
            raise ExplainerError("the video has no frames to write")
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


__all__ = ["write_overlay_video", "BAND"]
