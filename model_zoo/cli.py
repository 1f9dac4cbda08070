"""``python -m model_zoo``: list the models, classify an image, fetch catalog weights.

Why a CLI: it is the quickest way to check that a model file, a labels file and an image work
together before opening the dashboard, and it is scriptable (``--json``). Every bad input ends
with exit code 2 and one line on stderr starting with ``error: `` (no traceback; ``--verbose``
shows it). TensorFlow is imported only by commands that run a model.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Sequence

from model_zoo.cli_support import (
    CLIError,
    Parser as _Parser,
    heavy_imports as _heavy_imports,
    positive_int as _positive_int,
    read_image_bytes as _read_image_bytes,
    resolve_top_k,
    run_cli,
)


def build_parser() -> argparse.ArgumentParser:
    from model_zoo.images import RESIZE_POLICIES  # light (Pillow); no TensorFlow here

    parser = _Parser(
        prog="python -m model_zoo",
        description="XAI Lens model zoo: list models, classify an image, download weights.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show warnings and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p_list = sub.add_parser("list", help="the bundled model and the Keras Applications catalog")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")

    p_pred = sub.add_parser("predict", help="top-k ImageNet (or your labels) classes of an image")
    p_pred.add_argument("image", metavar="IMAGE", help="PNG/JPEG/GIF/BMP/TIFF/WEBP file")
    p_pred.add_argument("--model", metavar="ID|PATH",
                        help="catalog id, the bundled id, or a .keras/.h5 file "
                             "(default: inceptionv3 if its weights are here, else the bundled "
                             "model)")
    p_pred.add_argument("--labels", metavar="FILE", help="class names (.txt, .json or .csv)")
    # Checked by load_classifier (model_zoo.preprocessing imports TensorFlow); an unknown name
    # gets an error listing the valid ones.
    p_pred.add_argument("--preprocess", metavar="P",
                        help="override the pixel preprocessing, e.g. unit, symmetric, caffe, "
                             "torch, lite, raw, builtin")
    p_pred.add_argument("--resize", choices=RESIZE_POLICIES, default="crop",
                        help="how to fit the image to the model input (default: crop)")
    p_pred.add_argument("--input-size", type=_positive_int, metavar="N",
                        help="input side for your own models declared without a fixed size")
    p_pred.add_argument("--weights", metavar="FILE",
                        help="weights file of a catalog model outside the Keras cache")
    p_pred.add_argument("--top-k", type=_positive_int, default=None, metavar="K",
                        help="how many classes to print (default 5, or every class of a "
                             "model with fewer)")
    p_pred.add_argument("--json", action="store_true", help="machine-readable output")

    p_dl = sub.add_parser("download", help="download a catalog model's ImageNet weights")
    p_dl.add_argument("model", metavar="ID", help="catalog id, e.g. inceptionv3")
    return parser


# ---------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    _heavy_imports(args)
    from model_zoo.registry import available_models
    from model_zoo.weights import models_dir

    choices = available_models()
    default = next((c.id for c in choices if c.default), None)
    if args.json:
        out = {
            "default": default,
            "keras_models_dir": str(models_dir()),
            "models": [
                {**asdict(c), "input_size": list(c.input_size)} for c in choices
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    rows = [("ID", "NAME", "INPUT", "PREPROCESSING", "TOP-1", "WEIGHTS")]
    for c in choices:
        rows.append((
            ("* " if c.default else "  ") + c.id,
            c.name,
            f"{c.input_size[0]}×{c.input_size[1]}",
            c.preprocessing,
            f"{c.top1:.1f} %" if c.top1 else "",
            c.weights.upper() if c.weights == "wrong file" else c.weights,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    print(f"\n* default model. Keras weights folder: {models_dir()}")
    for c in choices:
        if c.weights == "wrong file":
            print(f"{c.id}: {c.message}")
    if any(not c.available for c in choices if c.kind == "catalog"):
        print("Missing weights: run `python -m model_zoo download ID`, or download the file from "
              "the URL in `list --json` and put it in that folder.")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from model_zoo.images import load_image
    from model_zoo.registry import default_model_id, load_classifier, prepare_image

    data = _read_image_bytes(args.image)
    image = load_image(data)  # bad images fail here, before the slow TensorFlow import
    _heavy_imports(args)
    ref = args.model or default_model_id()
    clf = load_classifier(
        ref,
        labels_path=args.labels,
        preprocessing=args.preprocess,
        input_size=args.input_size,
        weights_path=args.weights,
    )
    top_k = resolve_top_k(args.top_k, clf.num_classes)
    fitted = prepare_image(clf, image, policy=args.resize)
    probs = clf.predict(fitted.image[None])[0]
    order = np.argsort(-probs, kind="stable")[:top_k]
    preds = [
        {"index": int(i), "label": clf.labels[int(i)], "probability": float(probs[i])}
        for i in order
    ]
    if args.json:
        print(json.dumps({"model": clf.id, "predictions": preds}))
        return 0
    print(f"{clf.name} ({clf.id}), input {clf.input_size[0]}×{clf.input_size[1]}, "
          f"resize {args.resize}")
    width = max(len(p["label"]) for p in preds)
    for rank, p in enumerate(preds, start=1):
        print(f"{rank:>3}. {p['label']:<{width}}  {100 * p['probability']:6.2f} %  "
              f"(class {p['index']})")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from model_zoo.catalog import get_entry
    from model_zoo.weights import download_weights, weights_status

    entry = get_entry(args.model)
    status = weights_status(entry)
    if status.present:
        print(status.message)
        return 0
    last = [-1]

    def progress(done: int, total: int | None) -> None:
        mb = done / 2**20
        step = int(mb)
        if step == last[0] and done != total:
            return
        last[0] = step
        tail = f"/{total / 2**20:.1f}" if total else ""
        print(f"\rdownloading {entry.weights_file}: {mb:.1f}{tail} MB", end="", file=sys.stderr,
              flush=True)

    path = download_weights(entry, progress)
    print(file=sys.stderr)
    print(f"saved {path}")
    return 0


_COMMANDS = {"list": cmd_list, "predict": cmd_predict, "download": cmd_download}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 1 internal error)."""
    return run_cli(build_parser(), _COMMANDS, argv)
