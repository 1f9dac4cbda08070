"""Dataset-audit throughput and memory, as ratios measured in one run.

On N synthetic photos (random crops of skimage's chelsea and astronaut with noise, 256×256
JPEG files in a temporary folder), with Grad-CAM only, top-1, no deletion metric:

  forward   classifier.predict on the N images already decoded and fitted (batches of 16): the floor
  audit     run_audit(engine="local"): read + decode + fit + batched Grad-CAM + maps/thumbnails
            written + results.parquet + clusters + summary
  loop      a per-image loop over the single-image API (load_image, prepare_image,
            ExplainContext, runner.explain(["gradcam"])), maps kept in memory, nothing written
  ray       run_audit(engine="ray", workers=W): the *marginal* throughput, the same run on N
            and on 2N files (--ray-images, Ray started once, actors and models loaded in each
            run, no aggregates), N / (T(2N) - T(N)), so every fixed cost cancels; compared with
            the local engine's marginal throughput measured the same way
  rss       resident memory of a fresh process auditing --rss-small and --rss-large images: the
            largest value sampled after each image (the process peak, also printed, is set by
            loading the model)
  stages    (--stages) where the audit's time goes, as throughput of partial runs on the same
            images: "no aggregates" (run_audit(aggregate=False): rows, maps, thumbnails, no
            clusters or summary) and "passes only" (also without the per-image outputs: read,
            decode, fit and the batched Grad-CAM pass, as the engine runs them). Not a product
            path: the second one replaces AuditWorker._explain_one by a no-op for its run.

Targets: audit ≥ 0.5 × forward, audit ≥ 3 × loop, ray ≥ 0.85 × local, RSS(large) ≤ 1.5 × RSS(small).
Usage: python benchmarks/audit.py [--images 200] [--model efficientnet-lite0] [--workers 2]
       [--rss-small 200 --rss-large 2000] [--skip-ray] [--skip-rss] [--stages] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_photos(folder: Path, n: int, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    bases = [data.chelsea(), data.astronaut(), data.coffee()]
    for c in ("cat", "person", "cup"):
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        k = i % 3
        base = bases[k]
        h, w = base.shape[:2]
        s = int(rng.integers(int(min(h, w) * 0.6), min(h, w)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = base[y : y + s, x : x + s].astype(np.float32) + rng.normal(0, 6, (s, s, 3))
        img = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((256, 256))
        img.save(folder / ("cat", "person", "cup")[k] / f"{i:05d}.jpg", quality=90)
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_child(args: argparse.Namespace) -> None:
    """Child mode: audit a folder and print the peak RSS (MB) as JSON."""
    from explainers.audit import AuditConfig, open_source, run_audit

    cfg = AuditConfig(methods=("gradcam",), deletion_steps=0, batch_size=16)
    during = [0.0]

    def sample(_p) -> None:  # resident memory now (the process peak includes model loading)
        with open("/proc/self/statm") as f:
            during[0] = max(during[0], int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)

    summary = run_audit(open_source(args.rss_child), args.out, model={"ref": args.model}, config=cfg,
                        progress=sample)
    print(json.dumps({"rss_mb": peak_rss_mb(), "audit_rss_mb": during[0], "images": summary["images"]}))


def run_rss(model: str, n: int, work: Path) -> dict:
    folder = make_photos(work / f"rss{n}", n, seed=n)
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(folder), "--out", str(work / f"rss{n}-out"),
         "--model", model], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rss-small", type=int, default=200)
    p.add_argument("--rss-large", type=int, default=2000)
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--ray-images", type=int, default=0, metavar="N",
                   help="images per Ray/local marginal run (default: --images; more = less noise "
                        "from the per-run fixed cost)")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--stages", action="store_true",
                   help="also time the audit without aggregates and with the batched passes only")
    p.add_argument("--json", action="store_true")
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        return rss_child(args)

    import numpy as np

    from explainers.audit import AuditConfig, open_source, run_audit
    from explainers.context import ExplainContext
    from explainers.runner import explain
    from model_zoo.images import load_image
    from model_zoo.registry import load_classifier, prepare_image

    work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    folder = make_photos(work / "photos", args.images)
    files = sorted(folder.rglob("*.jpg"))
    clf = load_classifier(args.model)
    fitted = np.stack([prepare_image(clf, load_image(f.read_bytes())).image for f in files])
    cfg = AuditConfig(methods=("gradcam",), deletion_steps=0, batch_size=16)
    # warm-up, off the clock, alike for every contestant: trace the predict and batched-gradient
    # functions, and pay each path's one-time imports (the loop's explain; the audit's
    # scikit-learn clustering, pyarrow, report) with one small run of each
    clf.predict(fitted[:16], batch_size=16)
    clf.top_k_gradients(fitted[:16], 1, chunk=cfg.model_batch)  # the audit's own chunk shape
    explain(ExplainContext(clf, fitted[0]), ["gradcam"])
    run_audit(open_source([str(f) for f in files[:6]]), work / "warm-up", classifier=clf, config=cfg)

    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    clf.predict(fitted, batch_size=16)
    results["forward"] = {"seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    summary = run_audit(open_source(folder), work / "local", classifier=clf, config=cfg)
    results["audit"] = {"seconds": time.perf_counter() - t0, "model_calls": summary["model_calls"]}

    t0 = time.perf_counter()
    maps = []
    for f in files:
        fit = prepare_image(clf, load_image(f.read_bytes()))
        maps.append(explain(ExplainContext(clf, np.array(fit.image)), ["gradcam"])[0].heatmap)
    results["loop"] = {"seconds": time.perf_counter() - t0}
    del maps

    if args.stages:
        from explainers.audit import process

        t0 = time.perf_counter()
        run_audit(open_source(folder), work / "no-aggregates", classifier=clf, config=cfg, aggregate=False)
        results["no_aggregates"] = {"seconds": time.perf_counter() - t0}
        real = process.AuditWorker._explain_one
        process.AuditWorker._explain_one = lambda self, *a, **k: None
        try:
            t0 = time.perf_counter()
            run_audit(open_source(folder), work / "passes-only", classifier=clf, config=cfg, aggregate=False)
            results["passes_only"] = {"seconds": time.perf_counter() - t0}
        finally:
            process.AuditWorker._explain_one = real

    if not args.skip_ray:
        # Marginal throughput: the same engine on N and on 2N images, Ray started once
        # (start_ray below) but the actors and their models loaded in every run, so the
        # difference of the two wall times is the time of N more images with every fixed cost
        # (Ray's start, actor start, model loading, first tracing) cancelled out. (The
        # former "first result to last" window was wrong: Ray's results can arrive bunched.)
        import ray

        from explainers.audit.engines import start_ray

        n_images = args.ray_images or len(files)
        pool = sorted(make_photos(work / "photos2", 2 * n_images, seed=1).rglob("*.jpg"))
        both = [str(f) for f in pool]
        start_ray(None, args.workers)

        def timed(engine: str, paths: list[str], tag: str) -> float:
            t = time.perf_counter()
            kw = dict(model={"ref": args.model}, engine="ray", workers=args.workers) if engine == "ray" \
                else dict(classifier=clf)
            run_audit(open_source(paths), work / tag, config=cfg, aggregate=False, **kw)
            return time.perf_counter() - t

        r1, r2 = timed("ray", both[:n_images], "ray1"), timed("ray", both, "ray2")
        l1, l2 = timed("local", both[:n_images], "loc1"), timed("local", both, "loc2")
        ray.shutdown()
        results["ray"] = {"seconds_n": r1, "seconds_2n": r2, "fixed_seconds": max(0.0, 2 * r1 - r2),
                          "marginal_images_per_second": n_images / max(r2 - r1, 1e-9)}
        results["local_marginal"] = {"seconds_n": l1, "seconds_2n": l2,
                                     "marginal_images_per_second": n_images / max(l2 - l1, 1e-9)}
    if not args.skip_rss:
        results["rss_small"] = run_rss(args.model, args.rss_small, work)
        results["rss_large"] = run_rss(args.model, args.rss_large, work)

    n = len(files)
    ips = {k: n / v["seconds"] for k, v in results.items()
           if k in ("forward", "audit", "loop", "no_aggregates", "passes_only")}
    ratios = {
        "audit_vs_forward": ips["audit"] / ips["forward"],
        "audit_vs_loop": ips["audit"] / ips["loop"],
    }
    targets = {"audit_vs_forward": 0.5, "audit_vs_loop": 3.0}
    if "ray" in results:
        r, l = results["ray"], results["local_marginal"]
        ratios["ray_vs_local"] = r["marginal_images_per_second"] / l["marginal_images_per_second"]
        targets["ray_vs_local"] = 0.85
    if "rss_large" in results:
        ratios["rss_large_vs_small"] = results["rss_large"]["audit_rss_mb"] / results["rss_small"]["audit_rss_mb"]
        targets["rss_large_vs_small"] = 1.5
    met = {k: (ratios[k] <= t if k.startswith("rss") else ratios[k] >= t) for k, t in targets.items()}
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    report = {"images": n, "model": args.model, "workers": args.workers,
              "images_per_second": ips, "results": results, "ratios": ratios, "targets": targets, "met": met}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{n} images, {args.model}, Grad-CAM top-1, batches of {cfg.batch_size}")
    for k, v in ips.items():
        print(f"  {k:<13} {v:8.1f} images/s" + (f"  ({v / ips['loop']:.2f} × loop)" if k != "loop" else ""))
    if "ray" in results:
        r = results["ray"]
        print(f"  ray      {r['marginal_images_per_second']:8.1f} images/s marginal ({args.workers} actors; "
              f"fixed cost per run {r['fixed_seconds']:.1f} s); local marginal "
              f"{results['local_marginal']['marginal_images_per_second']:.1f} images/s")
    if "rss_large" in results:
        print(f"  RSS during the audit {results['rss_small']['audit_rss_mb']:.0f} MB at {args.rss_small} "
              f"images, {results['rss_large']['audit_rss_mb']:.0f} MB at {args.rss_large} (process peaks "
              f"{results['rss_small']['rss_mb']:.0f} / {results['rss_large']['rss_mb']:.0f} MB)")
    for k, v in ratios.items():
        goal = ("≤ " if k.startswith("rss") else "≥ ") + str(targets[k])
        print(f"  {k:<20} {v:6.2f}  (target {goal}: {'met' if met[k] else 'NOT met'})")


if __name__ == "__main__":
    main()
