"""Time to a stable answer: XAI Lens "auto" vs lime and shap's KernelExplainer.

Why: the sample count a user must pick is a guess; "auto" stops when the top regions stop
moving. This script asks, per image, how long each contestant takes until its top-5 regions
(of the top-1 label) agree with its *own* converged answer (IoU ≥ 0.8), the converged answer
being the same contestant at ``--reference-samples`` (8 000) samples:

* ``xai-lens``: one ``ExplainContext`` with ``samples="auto"`` (LIME + KernelSHAP together, the
  default threshold 0.8 and budget 4 000): the wall time of that request. Its top-5 of each
  method is compared with our own LIME / KernelSHAP at the reference count (reported, so a run
  that stopped too early shows);
* ``lime`` (``LimeImageExplainer``) and ``shap-kernel`` (``KernelExplainer``, ``l1_reg=False``,
  mean fill rendered by our renderer as in compare_peers): run at 250, 500, 1000, 2000, 4000, …
  samples until the top-5 IoU with its own reference reaches 0.8; its time is the wall time of
  that run (a user who knew the count in advance would pay exactly that).

Same model (the bundled EfficientNet-Lite0), same quickshift superpixels per image for everyone.
Images: the bundled samples chelsea, coffee, astronaut, rocket, motorcycle (``--images``).
Printed per image, then the median of the per-image ratios ours / lime and ours / shap (``--json``:
``ratios.ours_vs_lime``, ``ratios.ours_vs_shap``). Target: ≤ 0.25.

The references cost ``3 × --reference-samples`` model calls per image (8 000 each: about 4
minutes per image on two quiet cores); ``--reference-samples 2000 --images chelsea,rocket`` is a
quick look.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

TOP = 5
IOU = 0.8
TARGET = 0.25
GRID = (250, 500, 1000, 2000, 4000, 8000)
IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle")


def load_image(name: str, classifier: Any) -> np.ndarray:
    from skimage import data

    from model_zoo.registry import prepare_image

    if hasattr(data, name):
        pixels = getattr(data, name)()
    else:
        from model_zoo.samples import sample_image

        pixels = sample_image(name)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return np.array(prepare_image(classifier, pixels[..., :3], policy="crop").image)


def top_iou(a: np.ndarray, b: np.ndarray) -> float:
    from explainers.metrics import top_n_iou

    return top_n_iou(a, b, TOP)


def ours(classifier: Any, image: np.ndarray, segments: np.ndarray, label: int, samples: int | str,
         seed: int) -> tuple[float, dict[str, np.ndarray], Any]:
    from explainers.context import ExplainContext, SamplingParams
    from explainers.runner import explain

    t0 = time.perf_counter()
    ctx = ExplainContext(classifier, image, seed=seed, sampling=SamplingParams(samples=samples))
    ctx.cache["segments"] = segments
    results = explain(ctx, ["lime", "kernel_shap"], [label])
    wall = time.perf_counter() - t0
    return wall, {r.method: np.asarray(r.segment_weights) for r in results}, results[0].sampling


def lime_weights(classifier: Any, image: np.ndarray, segments: np.ndarray, label: int, n: int, seed: int) -> np.ndarray:
    from lime import lime_image

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    exp = explainer.explain_instance(image, classifier.predict, labels=(label,), top_labels=None,
                                     num_samples=n, batch_size=32, segmentation_fn=lambda _: segments,
                                     hide_color=None, random_seed=seed)
    w = np.zeros(int(segments.max()) + 1)
    for i, v in exp.local_exp[label]:
        w[i] = v
    return w


def shap_weights(classifier: Any, image: np.ndarray, segments: np.ndarray, label: int, n: int, seed: int) -> np.ndarray:
    import shap

    from explainers.perturbation import fill_image, render

    fill = fill_image(image, segments, "mean")
    m = int(segments.max()) + 1

    def f(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z) > 0.5
        return np.concatenate([classifier.predict(render(image, fill, segments, z[i : i + 32]))[:, [label]]
                               for i in range(0, len(z), 32)])

    np.random.seed(seed)
    explainer = shap.KernelExplainer(f, np.zeros((1, m)))
    values = explainer.shap_values(np.ones((1, m)), nsamples=n, l1_reg=False, silent=True)
    return np.asarray(values).reshape(-1)[:m]


def time_until_stable(fn: Callable[[int], np.ndarray], reference: np.ndarray, grid: list[int]) -> dict:
    for n in grid:
        t0 = time.perf_counter()
        w = fn(n)
        wall = time.perf_counter() - t0
        iou = top_iou(w, reference)
        if iou >= IOU:
            return {"samples": n, "seconds": wall, "iou": iou, "reached": True}
    return {"samples": grid[-1], "seconds": wall, "iou": iou, "reached": False}


def run(images: list[str], reference_samples: int, seed: int) -> dict:
    from explainers.segmentation import segment
    from model_zoo.registry import load_classifier

    clf = load_classifier("efficientnet-lite0")
    clf.predict(np.zeros((32, *clf.input_size, 3), np.uint8))  # compile once, untimed
    grid = [n for n in GRID if n < reference_samples] + [reference_samples]
    rows = []
    for name in images:
        image = load_image(name, clf)
        segments = segment(image, "quickshift")
        label = int(np.argmax(clf.predict(image[None])[0]))
        ref_seed = seed + 10_007  # the references use seeds no timed run uses
        _, ref_ours, _ = ours(clf, image, segments, label, reference_samples, ref_seed)
        ref_lime = lime_weights(clf, image, segments, label, reference_samples, ref_seed)
        ref_shap = shap_weights(clf, image, segments, label, reference_samples, ref_seed)
        wall, got, sampling = ours(clf, image, segments, label, "auto", seed)
        lime_row = time_until_stable(lambda n: lime_weights(clf, image, segments, label, n, seed), ref_lime, grid)
        shap_row = time_until_stable(lambda n: shap_weights(clf, image, segments, label, n, seed), ref_shap, grid)
        rows.append({
            "image": name, "label": clf.labels[label], "num_segments": int(segments.max()) + 1,
            "xai_lens": {"seconds": wall, "samples": sampling.samples, "stopped": sampling.stopped,
                         "stability": sampling.stability,
                         "iou_lime": top_iou(got["lime"], ref_ours["lime"]),
                         "iou_kernel_shap": top_iou(got["kernel_shap"], ref_ours["kernel_shap"])},
            "lime": lime_row, "shap_kernel": shap_row,
            "ours_vs_lime": wall / lime_row["seconds"], "ours_vs_shap": wall / shap_row["seconds"],
        })
    ratios = {"ours_vs_lime": statistics.median(r["ours_vs_lime"] for r in rows),
              "ours_vs_shap": statistics.median(r["ours_vs_shap"] for r in rows)}
    return {"model": clf.id, "reference_samples": reference_samples, "grid": grid, "top": TOP, "iou": IOU,
            "rows": rows, "ratios": ratios,
            "targets": {k: {"value": v, "target": f"≤ {TARGET}", "met": v <= TARGET} for k, v in ratios.items()}}


def format_report(rep: dict) -> str:
    lines = [f"{rep['model']}: time until the top-{rep['top']} regions reach IoU ≥ {rep['iou']} with each "
             f"contestant's own run at {rep['reference_samples']} samples", ""]
    for r in rep["rows"]:
        o, li, sh = r["xai_lens"], r["lime"], r["shap_kernel"]
        lines.append(
            f"{r['image']:<10} {r['num_segments']:>3} seg  xai-lens auto {o['seconds']:6.1f} s ({o['samples']} samples, "
            f"{o['stopped']}; IoU vs own ref LIME {o['iou_lime']:.2f} SHAP {o['iou_kernel_shap']:.2f})  "
            f"lime {li['seconds']:6.1f} s @{li['samples']}{'' if li['reached'] else ' (not reached)'}  "
            f"shap {sh['seconds']:6.1f} s @{sh['samples']}{'' if sh['reached'] else ' (not reached)'}  "
            f"ratios {r['ours_vs_lime']:.2f} / {r['ours_vs_shap']:.2f}")
    lines.append("")
    for k, t in rep["targets"].items():
        lines.append(f"median {k} = {t['value']:.3f} (target {t['target']}: {'met' if t['met'] else 'NOT met'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=",".join(IMAGES), help=f"comma-separated (default {','.join(IMAGES)})")
    p.add_argument("--reference-samples", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    rep = run([s.strip() for s in args.images.split(",") if s.strip()], args.reference_samples, args.seed)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
