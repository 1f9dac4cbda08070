"""Forward passes on three CPU backends, in one process: our tf.function path, ONNX Runtime, OpenVINO.

Why: the model's forward passes are what every perturbation explainer pays for. If another
runtime made them ≥ 1.3× cheaper with probabilities within 1e-4 of Keras, the Classifier could
use it for perturbation forwards (gradients stay on TensorFlow). This script measures it.

What is timed, per backend, on the same batches of masked-looking uint8 images (skimage's chelsea
at the model input with random quickshift-like blocks greyed out, seeded):

* ``tensorflow``: ``Classifier.predict`` (a ``tf.function`` at a fixed batch, preprocessing and
  softmax inside): the path XAI Lens uses today.
* ``onnxruntime``: the same function (preprocessing + model + softmax, float32 input) converted
  with tf2onnx (opset 17) and run by ``onnxruntime.InferenceSession`` on the CPU provider.
* ``openvino``: that ONNX graph read by OpenVINO (``openvino.Core().compile_model(..., "CPU")``)
  with its default precision (on CPUs with bf16/AMX units it computes in bfloat16), and
  ``openvino-f32`` with ``INFERENCE_PRECISION_HINT=f32`` (what the 1e-4 agreement needs).

Each backend runs ``--repeat`` rounds round-robin (co-tenant load hits everyone alike) and its
fastest round is reported; conversion and the first call (compilation) are timed apart and not
counted. Agreement: the largest absolute difference of any probability from TensorFlow's.

Usage: ``python benchmarks/forward_backends.py [--model efficientnet-lite0|inceptionv3|all]
[--batches 4] [--repeat 3] [--json]``. InceptionV3 is built with ``weights=None`` when its ImageNet
weights are absent (valid timings, same graph).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

BATCH = 32
SPEEDUP_TARGET = 1.3
AGREEMENT_TARGET = 1e-4


def load(model_id: str) -> tuple[Any, str]:
    from benchmarks.compare_peers import load_model

    return load_model(model_id)


def batches(classifier: Any, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` batches of 32 images: the photo with random 1/8-side blocks greyed out."""
    from skimage.data import chelsea

    from model_zoo.registry import prepare_image

    image = np.array(prepare_image(classifier, chelsea(), policy="crop").image)
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        b = np.repeat(image[None], BATCH, axis=0)
        hide = rng.random((BATCH, 8, 8)) < 0.5
        mask = np.kron(hide, np.ones((int(np.ceil(h / 8)), int(np.ceil(w / 8))), bool))[:, :h, :w]
        b[mask] = 128
        out.append(b)
    return out


def to_onnx(classifier: Any, path: str) -> float:
    """Convert preprocessing + model + softmax to ONNX with tf2onnx; returns the seconds taken."""
    import tensorflow as tf
    import tf2onnx

    h, w = classifier.input_size
    fn = tf.function(lambda x: classifier._probs_tf(x),
                     input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
    t0 = time.perf_counter()
    tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17, output_path=path)
    return time.perf_counter() - t0


def backends(classifier: Any, onnx_path: str) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]]:
    """name → (predict(uint8 batch) → probabilities, set-up seconds)."""
    import onnxruntime as ort
    import openvino as ov

    out: dict[str, tuple[Callable, float]] = {"tensorflow": (classifier.predict, 0.0)}
    t0 = time.perf_counter()
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out["onnxruntime"] = (lambda x: session.run(None, {name: x.astype(np.float32)})[0], time.perf_counter() - t0)
    core = ov.Core()
    for key, config in (("openvino", {}), ("openvino-f32", {"INFERENCE_PRECISION_HINT": "f32"})):
        t0 = time.perf_counter()
        compiled = core.compile_model(onnx_path, "CPU", config)
        request = compiled.create_infer_request()
        out[key] = (lambda x, r=request, c=compiled: r.infer({0: x.astype(np.float32)})[c.output(0)].copy(),
                    time.perf_counter() - t0)
    return out


def measure(model_id: str, count: int, repeat: int) -> dict[str, Any]:
    classifier, note = load(model_id)
    data = batches(classifier, count)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        convert_s = to_onnx(classifier, path)
        runners = backends(classifier, path)
        first: dict[str, float] = {}
        reference = None
        diffs: dict[str, float] = {}
        for name, (fn, _) in runners.items():  # warm-up: compile / trace, and check agreement
            t0 = time.perf_counter()
            probs = np.concatenate([np.asarray(fn(b)) for b in data])
            first[name] = time.perf_counter() - t0
            if reference is None:
                reference = probs
            diffs[name] = float(np.max(np.abs(probs - reference)))
        best = {name: float("inf") for name in runners}
        for _ in range(int(repeat)):
            for name, (fn, _) in runners.items():
                t0 = time.perf_counter()
                for b in data:
                    fn(b)
                best[name] = min(best[name], time.perf_counter() - t0)
    images = count * BATCH
    # Untrained weights give near-uniform probabilities (≈ 1/C each): an absolute difference of
    # 1e-8 there says nothing about the precision a trained model would keep. No verdict then.
    untrained = "weights=None" in note
    rows = []
    for name, (_, setup) in runners.items():
        speedup = best["tensorflow"] / best[name]
        rows.append({
            "backend": name, "seconds": best[name], "images_per_s": images / best[name],
            "speedup_vs_tf": speedup, "max_abs_diff": diffs[name], "setup_s": setup,
            "first_pass_s": first[name],
            "adopt": (None if untrained and name != "tensorflow" else
                      bool(name != "tensorflow" and speedup >= SPEEDUP_TARGET and diffs[name] <= AGREEMENT_TARGET)),
        })
    return {"model": model_id, "weights": note, "input_size": list(classifier.input_size), "batch": BATCH,
            "images": images, "repeat": int(repeat), "onnx_convert_s": convert_s, "rows": rows,
            "ratios": {f"{r['backend']}_vs_tf": r["speedup_vs_tf"] for r in rows if r["backend"] != "tensorflow"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="all", choices=["all", "efficientnet-lite0", "inceptionv3"])
    p.add_argument("--batches", type=int, default=4, help="batches of 32 per timed round (default 4)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds per backend (default 3)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    models = ["efficientnet-lite0", "inceptionv3"] if args.model == "all" else [args.model]
    results = [measure(m, args.batches, args.repeat) for m in models]
    if args.json:
        print(json.dumps({"results": results, "targets": {"speedup": SPEEDUP_TARGET,
                                                          "max_abs_diff": AGREEMENT_TARGET}}, indent=2))
        return 0
    for res in results:
        print(f"\n{res['model']} ({res['weights']}), {res['images']} images in batches of {BATCH}, "
              f"fastest of {res['repeat']} rounds; ONNX conversion {res['onnx_convert_s']:.1f} s")
        print(f"{'backend':<12} {'seconds':>8} {'img/s':>7} {'× tf':>6} {'max |Δp|':>10} {'setup s':>8}  adopt?")
        for r in res["rows"]:
            print(f"{r['backend']:<12} {r['seconds']:>8.2f} {r['images_per_s']:>7.1f} {r['speedup_vs_tf']:>6.2f} "
                  f"{r['max_abs_diff']:>10.2e} {r['setup_s']:>8.2f}  "
                  f"{'n/a (untrained weights)' if r['adopt'] is None else 'yes' if r['adopt'] else 'no'}")
    print(f"\nAdopt only at ≥ {SPEEDUP_TARGET}× with probabilities within {AGREEMENT_TARGET:g} of TensorFlow.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
