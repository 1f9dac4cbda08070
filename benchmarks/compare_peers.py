"""Side by side, in one process: raw forward passes, XAI Lens, lime, shap Partition, shap Kernel.

Why: the model's forward passes are the physical limit of every perturbation explainer. This
script measures how close XAI Lens (LIME + KernelSHAP + Grad-CAM for the top-k labels from one
``ExplainContext``) gets to that limit, and how it compares with running the reference packages
one after the other on the same image and the same superpixels.

Contestants (same image: skimage's chelsea centre-cropped to the model input; same quickshift
superpixels for every superpixel method; same model wrapped by one timer):

a. ``forward``: ``classifier.predict`` on N copies of the image with random superpixels hidden
   (mean fill), built before the clock starts: the floor.
b. ``xai-lens``: LIME + KernelSHAP + Grad-CAM for the top-k labels from one context (one shared
   perturbation pass of N rows). ``xai-lens-lime+shap`` is the same without Grad-CAM: the
   like-for-like row for the peers' memory (they compute no Grad-CAM and keep only the top-k
   outputs, where XAI Lens keeps all C outputs of every row to explain any label later).
c. ``lime``: ``LimeImageExplainer.explain_instance(top_labels=k, num_samples=N,
   segmentation_fn=<our segments>, batch_size=32)`` (mean fill, lime's default).
d. ``shap-partition``: ``shap.Explainer(f, shap.maskers.Image("blur(128,128)"))`` with
   ``max_evals=N``, ``batch_size=32`` and the top-k outputs.
d'. ``xai-lens-partition``: our Partition SHAP on shap's hierarchy (``hierarchy="balanced"``:
   the same axis-aligned pixel-block tree), ``max_evals=N``, ``batch_size=32``, the top-k labels
   ordering the queue as shap's ``outputs`` do; our blur fill is a Gaussian (σ = side / 20)
   where shap's is a 128×128 box blur — same number of images, same traversal rules.
e. ``shap-kernel``: ``shap.KernelExplainer`` on the same superpixels (background: all hidden,
   mean fill), ``nsamples=N``, ``l1_reg=False`` (the plain estimator; the default
   ``num_features(10)`` adds a LARS fit per output), outputs restricted to the top-k labels.

Timing: ``--repeat`` rounds, round-robin over the contestants (load from other processes then
hits everyone alike); each contestant's row is its fastest run. For each: wall seconds, seconds
inside the model (``predict`` and ``gradients`` timed by a
wrapper), overhead % = (wall − model) / wall, images through the model, and peak memory = the
``tracemalloc`` peak of Python-side allocations (numpy buffers included; TensorFlow's own C++
allocations are not traced and are the same for everyone) measured in one more, untimed run so
that tracing does not slow the timed ones. Every compiled TensorFlow function is warmed up first
and shap Partition is run once on a few evaluations so that its numba code is compiled (steady
state for everyone; the one-off trace of Grad-CAM's gradient function is reported separately).

``--rss``: each contestant instead runs alone in a fresh process (model load, warm-up, one run)
and reports that process's peak resident set size (``ru_maxrss``): TensorFlow's C++ buffers, the
model and each contestant's own imports included, which tracemalloc cannot see.

Usage: ``python benchmarks/compare_peers.py --model efficientnet-lite0 --samples 1000 [--json] [--rss]``.
InceptionV3's ImageNet weights cannot be downloaded offline; without them the script builds it
with ``weights=None``: the explanations are meaningless but the timings are valid (same graph).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")  # lime's progress bar
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

MODELS = ("efficientnet-lite0", "inceptionv3")
TARGETS = {
    "ours_vs_forward": ("≤", 1.05, "XAI Lens wall / raw forward wall"),
    "ours_vs_lime_plus_shap": ("≤", 0.5, "XAI Lens wall / (lime wall + shap Kernel wall): ≥ 2× faster"),
    "ours_overhead_pct": ("≤", 3.0, "XAI Lens time outside the model, % of its wall"),
    "ours_vs_shap_partition_memory": ("<", 1.0, "XAI Lens peak memory / shap Partition's"),
    "ours_vs_shap_kernel_memory": ("<", 1.0, "XAI Lens peak memory / shap Kernel's (fed by our renderer)"),
    "ours_partition_vs_shap_partition": ("≤", 1.0, "our Partition SHAP wall / shap Partition's, same budget"),
    "ours_partition_vs_shap_partition_memory": ("<", 1.0, "our Partition SHAP peak memory / shap Partition's"),
}


# ---------------------------------------------------------------------- timing
class TimedClassifier:
    """Delegates to a Classifier, timing every ``predict`` and ``gradients`` call."""

    def __init__(self, classifier: Any) -> None:
        self._clf = classifier
        self.seconds = 0.0
        self.gradient_seconds = 0.0
        self.images = 0

    def reset(self) -> None:
        self.seconds, self.gradient_seconds, self.images = 0.0, 0.0, 0

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        out = self._clf.predict(images, batch_size=batch_size)
        self.seconds += time.perf_counter() - t0
        self.images += len(images)
        return out

    def gradients(self, images: np.ndarray, classes, layer=None):
        t0 = time.perf_counter()
        out = self._clf.gradients(images, classes, layer=layer)
        spent = time.perf_counter() - t0
        self.seconds += spent
        self.gradient_seconds += spent
        self.images += len(np.asarray(images).reshape(-1, *np.shape(images)[-3:]))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clf, name)


@dataclass
class Row:
    name: str
    wall_s: float
    model_s: float
    images: int
    overhead_pct: float
    peak_mb: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def time_once(fn: Callable[[], Any], timer: TimedClassifier) -> tuple[float, float, int, float, Any]:
    """(wall s, model s, images, seconds in ``gradients``, result) of one call."""
    gc.collect()
    timer.reset()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, timer.seconds, timer.images, timer.gradient_seconds, out


def peak_memory_mb(fn: Callable[[], Any]) -> float:
    """tracemalloc peak (MiB) of one untimed call."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure_all(
    contestants: list[tuple[str, Callable[[], Any], str]], timer: TimedClassifier, repeat: int,
    memory: bool,
) -> tuple[list[Row], dict[str, Any]]:
    """Round-robin ``repeat`` times (so that load from other processes hits everyone alike);
    each contestant's row is its fastest run. Memory is traced afterwards, once each."""
    runs: dict[str, list[tuple[float, float, int, float]]] = {name: [] for name, _, _ in contestants}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn, _ in contestants:
            wall, model, images, grads, out = time_once(fn, timer)
            runs[name].append((wall, model, images, grads))
            results[name] = out
    rows = []
    for name, fn, note in contestants:
        wall, model, images, grads = min(runs[name])
        extra = {"walls_s": [round(r[0], 3) for r in runs[name]]}
        if grads:
            extra["gradients_s"] = grads
        rows.append(Row(
            name, wall, model, images, 100.0 * (wall - model) / wall,
            peak_memory_mb(fn) if memory else None, note, extra,
        ))
    return rows, results


# ---------------------------------------------------------------------- setup
def load_model(model_id: str) -> tuple[Any, str]:
    """The classifier and a note on its weights."""
    from model_zoo.catalog import find_entry
    from model_zoo.registry import load_catalog_structure, load_classifier
    from model_zoo.weights import weights_status

    if model_id == "inceptionv3":
        entry = find_entry("inceptionv3")
        if weights_status(entry).present:
            return load_classifier("inceptionv3"), "ImageNet weights"
        return load_catalog_structure(entry), (
            "weights=None (ImageNet weights are not available offline): timings are valid, "
            "the explanations are not"
        )
    return load_classifier(model_id), "ImageNet weights (bundled)"


def chelsea_at_input(classifier: Any) -> np.ndarray:
    from skimage.data import chelsea

    from model_zoo.registry import prepare_image

    return np.array(prepare_image(classifier, chelsea(), policy="crop").image)


def warm_up(clf: Any, image: np.ndarray, top: list[int], shap_partition: bool,
            want: Callable[[str], bool] = lambda name: True) -> float:
    """Compile every TensorFlow function the contestants use and shap's numba code, untimed.

    Returns the seconds of Grad-CAM's first gradient call (TensorFlow trace), reported apart.
    Only the packages of the wanted contestants are imported (their memory counts in --rss).
    """
    if want("lime"):
        import lime.lime_image  # noqa: F401  (one-off imports are nobody's running time)
        import sklearn.linear_model  # noqa: F401
    if want("shap-partition") or want("shap-kernel"):
        import shap  # noqa: F401

    import explainers.registry  # noqa: F401

    np.linalg.lstsq(np.random.rand(64, 8), np.random.rand(64), rcond=None)  # BLAS threads start

    clf.predict(np.repeat(image[None], clf.batch_size, axis=0))  # fixed-batch function
    clf.predict(image[None])  # ragged function
    t0 = time.perf_counter()
    clf.gradients(image[None], top, layer=clf.cam_layer)
    trace = time.perf_counter() - t0
    if shap_partition:  # its first call JIT-compiles the partition tree code
        run_shap_partition(TimedClassifier(clf), image, 16, 1)
        run_ours_partition(TimedClassifier(clf), image, 16, 1, 0)  # builds the pixel tree once per size
    return trace


# ---------------------------------------------------------------------- contestants
def run_ours(timer: TimedClassifier, image: np.ndarray, segments: np.ndarray, n: int, k: int, seed: int,
             methods: tuple[str, ...] = ("lime", "kernel_shap", "gradcam")):
    from explainers.context import ExplainContext, SamplingParams
    from explainers.runner import explain

    ctx = ExplainContext(timer, image, seed=seed, sampling=SamplingParams(samples=n, fill="mean", batch_size=32))
    ctx.cache["segments"] = segments  # the shared quickshift segments (as given to the peers)
    return explain(ctx, list(methods), top_k=k)


def run_ours_partition(timer: TimedClassifier, image: np.ndarray, n: int, k: int, seed: int):
    from explainers.context import ExplainContext, SamplingParams
    from explainers.runner import run_method

    ctx = ExplainContext(timer, image, seed=seed, sampling=SamplingParams(batch_size=32))
    params = {"max_evals": n, "hierarchy": "balanced", "fill": "blur", "batch_size": 32}
    return run_method(ctx, "partition_shap", params, top_k=k)


def run_lime(timer: TimedClassifier, image: np.ndarray, segments: np.ndarray, n: int, k: int, seed: int):
    from lime import lime_image

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    return explainer.explain_instance(
        image, timer.predict, top_labels=k, num_samples=n, batch_size=32,
        segmentation_fn=lambda _: segments, hide_color=None, random_seed=seed,
    )


def run_shap_partition(timer: TimedClassifier, image: np.ndarray, n: int, k: int):
    import shap

    def f(x: np.ndarray) -> np.ndarray:
        return timer.predict(np.clip(np.rint(x), 0, 255).astype(np.uint8))

    masker = shap.maskers.Image("blur(128,128)", image.shape)
    explainer = shap.Explainer(f, masker, output_names=list(timer.labels))
    return explainer(
        image[None].astype(np.float32), max_evals=n, batch_size=32,
        outputs=shap.Explanation.argsort.flip[:k], silent=True,
    )


def run_shap_kernel(timer: TimedClassifier, image: np.ndarray, segments: np.ndarray, n: int, k: int, seed: int):
    import shap

    from explainers.perturbation import fill_image, render

    top = np.argsort(-timer.predict(image[None])[0], kind="stable")[:k]
    fill = fill_image(image, segments, "mean")
    m = int(segments.max()) + 1

    def f(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z) > 0.5
        out = [timer.predict(render(image, fill, segments, z[i : i + 32]))[:, top]
               for i in range(0, len(z), 32)]
        return np.concatenate(out)

    np.random.seed(seed)  # KernelExplainer samples with numpy's global generator
    explainer = shap.KernelExplainer(f, np.zeros((1, m)))
    return explainer.shap_values(np.ones((1, m)), nsamples=n, l1_reg=False, silent=True)


# ---------------------------------------------------------------------- main
def run(model_id: str, samples: int, top_k: int, seed: int, memory: bool,
        only: set[str] | None = None, repeat: int = 3) -> dict:
    import keras  # noqa: F401  (import TensorFlow before timing anything)

    from explainers.perturbation import fill_image, render
    from explainers.segmentation import segment

    clf, weights_note = load_model(model_id)
    timer = TimedClassifier(clf)
    image = chelsea_at_input(clf)
    segments = segment(image, "quickshift")
    m = int(segments.max()) + 1
    top = [int(i) for i in np.argsort(-clf.predict(image[None])[0], kind="stable")[:top_k]]
    want = (lambda name: only is None or name in only)
    trace_s = warm_up(clf, image, top, want("shap-partition") or want("xai-lens-partition"), want)

    contestants: list[tuple[str, Callable[[], Any], str]] = []
    if want("forward"):
        rng = np.random.default_rng(seed)
        batch = render(image, fill_image(image, segments, "mean"), segments, rng.random((samples, m)) < 0.5)
        contestants.append(("forward", lambda: timer.predict(batch),
                            f"predict on {samples} masked copies (built beforehand)"))
    if want("xai-lens"):
        contestants.append(("xai-lens", lambda: run_ours(timer, image, segments, samples, top_k, seed),
                            f"LIME + KernelSHAP + Grad-CAM, top-{top_k}, one context"))
    if want("xai-lens-lime+shap"):
        contestants.append(("xai-lens-lime+shap",
                            lambda: run_ours(timer, image, segments, samples, top_k, seed, ("lime", "kernel_shap")),
                            f"LIME + KernelSHAP, top-{top_k}, one context (no Grad-CAM)"))
    if want("lime"):
        contestants.append(("lime", lambda: run_lime(timer, image, segments, samples, top_k, seed),
                            f"LimeImageExplainer, top_labels={top_k}, same segments"))
    if want("shap-partition"):
        contestants.append(("shap-partition", lambda: run_shap_partition(timer, image, samples, top_k),
                            f"Partition, blur(128,128), max_evals={samples}, top-{top_k}"))
    if want("xai-lens-partition"):
        contestants.append(("xai-lens-partition", lambda: run_ours_partition(timer, image, samples, top_k, seed),
                            f"our Partition SHAP, shap's pixel-block tree, blur, max_evals={samples}, top-{top_k}"))
    if want("shap-kernel"):
        contestants.append(("shap-kernel", lambda: run_shap_kernel(timer, image, segments, samples, top_k, seed),
                            f"KernelExplainer on {m} superpixels, nsamples={samples}, l1_reg=False"))
    rows, _ = measure_all(contestants, timer, repeat, memory)

    by = {r.name: r for r in rows}
    ratios: dict[str, float | None] = {}
    if "xai-lens" in by:
        ours = by["xai-lens"]
        ratios["ours_overhead_pct"] = ours.overhead_pct
        if "forward" in by:
            ratios["ours_vs_forward"] = ours.wall_s / by["forward"].wall_s
        if "lime" in by and "shap-kernel" in by:
            ratios["ours_vs_lime_plus_shap"] = ours.wall_s / (by["lime"].wall_s + by["shap-kernel"].wall_s)
        for peer in ("shap-partition", "shap-kernel"):
            if ours.peak_mb and peer in by and by[peer].peak_mb:
                key = f"ours_vs_{peer.replace('-', '_')}_memory"
                ratios[key] = ours.peak_mb / by[peer].peak_mb
        if "gradients_s" in ours.extra:
            ratios["ours_gradcam_pct"] = 100.0 * ours.extra["gradients_s"] / ours.wall_s
    if "xai-lens-partition" in by and "shap-partition" in by:
        ours_p, theirs_p = by["xai-lens-partition"], by["shap-partition"]
        ratios["ours_partition_vs_shap_partition"] = ours_p.wall_s / theirs_p.wall_s
        ratios["ours_partition_overhead_pct"] = ours_p.overhead_pct
        if ours_p.peak_mb and theirs_p.peak_mb:
            ratios["ours_partition_vs_shap_partition_memory"] = ours_p.peak_mb / theirs_p.peak_mb
    if "xai-lens-lime+shap" in by and "shap-kernel" in by and by["shap-kernel"].peak_mb:
        if by["xai-lens-lime+shap"].peak_mb:
            ratios["ours_lime_shap_vs_shap_kernel_memory"] = (
                by["xai-lens-lime+shap"].peak_mb / by["shap-kernel"].peak_mb)
    checks = {}
    for name, (op, bound, text) in TARGETS.items():
        value = ratios.get(name)
        if value is not None:
            checks[name] = {"value": value, "target": f"{op} {bound}", "met": bool(value <= bound if op == "≤" else value < bound), "meaning": text}
    return {
        "model": clf.id,
        "weights": weights_note,
        "samples": samples,
        "top_k": top_k,
        "seed": seed,
        "repeat": repeat,
        "num_segments": m,
        "gradcam_first_call_s": trace_s,
        "memory": "tracemalloc peak (Python/numpy allocations; TensorFlow C++ not traced)" if memory else None,
        "ratios": ratios,
        "targets": checks,
        "rows": [asdict(r) for r in rows],
    }


def format_report(report: dict) -> str:
    lines = [
        f"model {report['model']} ({report['weights']}); {report['samples']} samples, "
        f"top-{report['top_k']}, {report['num_segments']} quickshift superpixels, seed {report['seed']}; "
        f"fastest of {report['repeat']} round-robin runs each",
        "",
    ]
    header = ("CONTESTANT", "WALL s", "MODEL s", "OVERHEAD", "IMAGES", "PEAK MB", "WHAT")
    rows = [header]
    for r in report["rows"]:
        rows.append((
            r["name"], f"{r['wall_s']:.2f}", f"{r['model_s']:.2f}", f"{r['overhead_pct']:.1f} %",
            str(r["images"]), "" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}", r["note"],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.append("")
    for name, check in report["targets"].items():
        mark = "met" if check["met"] else "NOT met"
        lines.append(f"{name:<30} {check['value']:.3f}  (target {check['target']}: {mark}) — {check['meaning']}")
    extra = report["ratios"]
    if "ours_gradcam_pct" in extra:
        lines.append(f"Grad-CAM's gradients inside xai-lens: {extra['ours_gradcam_pct']:.1f} % of its wall")
    if "ours_lime_shap_vs_shap_kernel_memory" in extra:
        lines.append("xai-lens-lime+shap peak / shap-kernel peak (no Grad-CAM, informational): "
                     f"{extra['ours_lime_shap_vs_shap_kernel_memory']:.3f}")
    lines.append(f"Grad-CAM's first call (TensorFlow trace, excluded above): {report['gradcam_first_call_s']:.2f} s")
    if report["memory"]:
        lines.append(f"Peak memory: {report['memory']}, measured in an extra untimed run.")
    return "\n".join(lines)


RSS_CONTESTANTS = ("forward", "xai-lens", "xai-lens-lime+shap", "lime", "shap-partition", "shap-kernel")


def max_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB), TensorFlow included."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_report(model_id: str, samples: int, top_k: int, seed: int, only: set[str] | None) -> dict:
    """Each contestant alone in a fresh process (model load, warm-up, one run): its peak RSS.

    tracemalloc sees only Python allocations; the peak RSS includes TensorFlow's C++ buffers,
    the model and every imported package, so the processes differ only by what each contestant
    imports and allocates. ``forward`` is the floor (the model and N masked images).
    """
    import subprocess

    rows = {}
    for name in RSS_CONTESTANTS:
        if only is not None and name not in only:
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "--model", model_id, "--samples", str(samples),
               "--top-k", str(top_k), "--seed", str(seed), "--only", name, "--repeat", "1", "--no-memory",
               "--child-rss"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: {proc.stderr.strip().splitlines()[-1:]}")
        rows[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    ratios = {}
    ours = rows.get("xai-lens", {}).get("peak_rss_mb")
    if ours:
        for peer in ("forward", "lime", "shap-partition", "shap-kernel"):
            if peer in rows:
                ratios[f"ours_vs_{peer.replace('-', '_').replace('+', '_')}_rss"] = ours / rows[peer]["peak_rss_mb"]
    return {"model": model_id, "samples": samples, "top_k": top_k, "rows": rows, "ratios": ratios,
            "targets": {k: {"value": v, "target": "≤ 1.05" if k == "ours_vs_forward_rss" else "≤ 1.0",
                            "met": v <= (1.05 if k == "ours_vs_forward_rss" else 1.0)} for k, v in ratios.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="efficientnet-lite0")
    parser.add_argument("--samples", type=int, default=1000, help="N: perturbed images per method")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed rounds (round-robin); each contestant's fastest is reported")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--only", help="comma-separated contestants: forward,xai-lens,xai-lens-lime+shap,lime,"
                                        "shap-partition,xai-lens-partition,shap-kernel")
    parser.add_argument("--rss", action="store_true",
                        help="instead: peak RSS of each contestant in its own process (TensorFlow included)")
    parser.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.samples < 8 or args.top_k < 1:
        parser.error("--samples must be ≥ 8 and --top-k ≥ 1")
    warnings.filterwarnings("ignore")
    only = set(args.only.split(",")) if args.only else None
    if args.repeat < 1:
        parser.error("--repeat must be ≥ 1")
    if args.rss:
        report = rss_report(args.model, args.samples, args.top_k, args.seed, only)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for name, row in report["rows"].items():
                print(f"{name:<20} peak RSS {row['peak_rss_mb']:8.1f} MB  wall {row['wall_s']:.2f} s")
            for name, t in report["targets"].items():
                print(f"{name:<32} {t['value']:.3f}  (target {t['target']}: {'met' if t['met'] else 'NOT met'})")
        return 0
    report = run(args.model, args.samples, args.top_k, args.seed, not args.no_memory, only, args.repeat)
    if args.child_rss:
        (row,) = report["rows"]
        print(json.dumps({"peak_rss_mb": max_rss_mb(), "wall_s": row["wall_s"], "images": row["images"]}))
        return 0
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
