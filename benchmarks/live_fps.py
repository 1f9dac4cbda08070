"""Frames per second of the live Grad-CAM view (explainers/live.py) on the bundled model.

Feeds camera-sized frames (640×480 by default, a moving bright square over skimage's chelsea so
the class and map change) through ``LiveGradCam.process`` — centre crop + resize, one forward
and one backward pass, the overlay on the full frame — after a warm-up that traces the graph.
Reports frames per second and per-frame time percentiles, and the same for the bare
``top_k_gradients`` call (the model's share), so the overhead of drawing is visible.
Target: ≥ 5 frames/s on a laptop CPU.

    .venv/bin/python benchmarks/live_fps.py --frames 60 [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frames(n: int, h: int, w: int) -> list[np.ndarray]:
    from PIL import Image
    from skimage.data import chelsea

    base = np.asarray(Image.fromarray(chelsea()).resize((w, h)))
    out = []
    for i in range(n):
        f = base.copy()
        x = int((w - 60) * (0.5 + 0.5 * np.sin(i / 7)))
        f[h // 3 : h // 3 + 60, x : x + 60] = 255
        out.append(f)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from explainers.live import LiveGradCam, crop_box
    from model_zoo.registry import default_model_id, load_classifier

    clf = load_classifier(default_model_id())
    live = LiveGradCam(clf)
    stream = frames(args.frames, args.height, args.width)
    for f in stream[:3]:  # warm-up: traces the gradient function
        live.process(f)

    per_frame = []
    t0 = time.perf_counter()
    for f in stream:
        s = time.perf_counter()
        live.process(f)
        per_frame.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0

    th, tw = clf.input_size
    top, left, bh, bw = crop_box(args.height, args.width, th, tw)
    from PIL import Image

    smalls = [np.asarray(Image.fromarray(f[top:top + bh, left:left + bw]).resize((tw, th))) for f in stream]
    model_only = []
    for s_img in smalls:
        s = time.perf_counter()
        clf.top_k_gradients(s_img[None], 1)
        model_only.append(time.perf_counter() - s)

    pf = np.array(per_frame) * 1000
    mo = np.array(model_only) * 1000
    report = {
        "model": clf.id, "frames": args.frames, "frame_size": [args.height, args.width],
        "fps": args.frames / wall,
        "ms_per_frame": {"p50": float(np.percentile(pf, 50)), "p90": float(np.percentile(pf, 90))},
        "model_ms_per_frame": {"p50": float(np.percentile(mo, 50)), "p90": float(np.percentile(mo, 90))},
        "drawing_share": float(1 - mo.sum() / pf.sum()),
        "target_fps": 5.0,
    }
    report["target_met"] = report["fps"] >= 5.0
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{clf.id}: {report['fps']:.1f} frames/s on {args.height}×{args.width} frames "
              f"(p50 {report['ms_per_frame']['p50']:.0f} ms, p90 {report['ms_per_frame']['p90']:.0f} ms; "
              f"model p50 {report['model_ms_per_frame']['p50']:.0f} ms, drawing "
              f"{report['drawing_share']:.0%}); target ≥ 5 frames/s "
              f"{'met' if report['target_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
