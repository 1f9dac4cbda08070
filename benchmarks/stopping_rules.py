"""Where each "auto" stopping rule stops, on the same rows, and how close it then is to the answer.

Why: ``time_to_stable.py`` times whole runs and needs three 8 000-sample references per image;
this script isolates the stopping rule. Per image (the bundled samples, quickshift superpixels,
top-1 label, LIME + KernelSHAP sharing one design as in the app):

* one fixed run of ``--budget`` rows (seed S): its first n rows are exactly what an "auto" run
  with the same seed has at its check n (every prefix of a run is a fresh run of that size);
* at each check of the auto schedule (first max(128, 4M), then +max(step, n/4)), both rules are
  evaluated: ``expected`` (the default: expected top-5 IoU with the converged answer, from the
  standard errors) and ``split-half`` (the rule before 2026-12-03: top-5 IoU of two half-size fits);
* the sample count where each first reaches the threshold (0.8), and the top-5 IoU of LIME and
  KernelSHAP at that count with a ``--reference-samples`` run of another seed (S + 10 007).

Sample counts do not depend on the machine's load. Usage:
  python benchmarks/stopping_rules.py [--images chelsea,coffee,...] [--budget 4000]
         [--reference-samples 4000] [--seed 0] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle")
METHODS = ("lime", "kernel_shap")


def schedule(budget: int, num_segments: int, batch_size: int = 32) -> list[int]:
    """The auto run's check points (ExplainContext._settle's schedule)."""
    step = max(4 * batch_size, 4 * num_segments)
    n, out = min(budget, step), []
    while True:
        out.append(n)
        if n >= budget:
            return out
        n = min(budget, n + max(step, n // 4))


def measure(clf, name: str, budget: int, reference_samples: int, seed: int, threshold: float = 0.8) -> dict:
    from benchmarks.time_to_stable import load_image
    from explainers.context import ExplainContext, SamplingParams, TIE_TOL
    from explainers.metrics import fit_weights, top_n_iou
    from explainers.runner import explain
    from explainers.segmentation import segment

    image = load_image(name, clf)
    segments = segment(image, "quickshift")
    label = int(np.argmax(clf.predict(image[None])[0]))

    def fixed(n: int, s: int):
        ctx = ExplainContext(clf, image, seed=s, sampling=SamplingParams(samples=n))
        ctx.cache["segments"] = segments
        results = explain(ctx, list(METHODS), [label])
        return ctx, {r.method: np.asarray(r.segment_weights) for r in results}

    _, ref = fixed(reference_samples, seed + 10_007)
    ctx, _ = fixed(budget, seed)
    run = ctx.cache["perturbations"]
    checks = []
    for n in schedule(budget, run.num_segments):
        expected, _, _ = ctx.stability(run, n)
        split, _ = ctx.split_half_stability(run, n)
        rows = run.rows(n)
        iou = {m: top_n_iou(fit_weights(rows, m, label, None, seed), ref[m], 5, tie_tol=TIE_TOL) for m in METHODS}
        checks.append({"samples": n, "expected": expected, "split_half": split, "iou": iou})

    def stop(rule: str) -> dict:
        for c in checks:
            if c[rule] >= threshold:
                return {"samples": c["samples"], "stopped": "stable", **{f"iou_{m}": c["iou"][m] for m in METHODS}}
        last = checks[-1]
        return {"samples": last["samples"], "stopped": "budget", **{f"iou_{m}": last["iou"][m] for m in METHODS}}

    return {"image": name, "label": clf.labels[label], "num_segments": int(run.num_segments),
            "budget": budget, "reference_samples": reference_samples,
            "expected": stop("expected"), "split_half": stop("split_half"), "checks": checks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=",".join(IMAGES))
    p.add_argument("--budget", type=int, default=4000)
    p.add_argument("--reference-samples", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from model_zoo.registry import load_classifier

    clf = load_classifier("efficientnet-lite0")
    rows = []
    for name in [s.strip() for s in args.images.split(",") if s.strip()]:
        rows.append(measure(clf, name, args.budget, args.reference_samples, args.seed))
        r = rows[-1]
        if not args.json:
            for rule in ("expected", "split_half"):
                s = r[rule]
                print(f"{r['image']:<11} M={r['num_segments']:<3} {rule:<10} stops at {s['samples']:>5} "
                      f"({s['stopped']}); top-5 IoU vs the {args.reference_samples}-sample reference: "
                      f"LIME {s['iou_lime']:.2f}, KernelSHAP {s['iou_kernel_shap']:.2f}", flush=True)
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
