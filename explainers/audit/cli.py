"""``python -m explainers audit``: audit a folder, files, a .zip or a video from the command line.

Same error contract as the other commands (bad input: exit 2 and one ``error:`` line). Progress
with an ETA goes to stderr (one updating line on a terminal, a line every few seconds
otherwise); ``--json`` prints the summary on stdout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Any

from model_zoo.cli_support import CLIError, heavy_imports, positive_int

from explainers.audit.process import DEFAULT_METHODS
from explainers.text import count

DEFAULT_AUDIT_METHODS = ",".join(DEFAULT_METHODS)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``audit`` sub-command on ``sub`` (argparse sub-parsers)."""
    a = sub.add_parser("audit", help="explain a whole folder, file list, .zip or video and find "
                                     "where the model looks across each class")
    a.add_argument("source", nargs="+", metavar="SOURCE",
                   help="a folder (DIR/<class>/* gives true labels), a .zip, a video, or image files")
    a.add_argument("--model", metavar="ID|PATH",
                   help="catalog id, the bundled id, or a .keras/.h5 file (default as for explain)")
    a.add_argument("--labels", metavar="FILE", help="class names (.txt, .json or .csv)")
    a.add_argument("--preprocess", metavar="P", help="override the pixel preprocessing")
    a.add_argument("--input-size", type=positive_int, metavar="N",
                   help="input side for your own models declared without a fixed size")
    a.add_argument("--methods", default=DEFAULT_AUDIT_METHODS, metavar="M[,M…]",
                   help=f"methods (default {DEFAULT_AUDIT_METHODS}); the first one drives the clusters")
    a.add_argument("--samples", type=positive_int, default=300, metavar="N",
                   help="perturbation rows per image for LIME/KernelSHAP (default 300)")
    a.add_argument("--top-k", type=positive_int, default=1, metavar="K",
                   help="explain each image's K most probable classes (default 1)")
    a.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    truth = a.add_mutually_exclusive_group()
    truth.add_argument("--masks", metavar="DIR|ZIP", help="object masks named like the images (a folder or a .zip)")
    truth.add_argument("--boxes", metavar="CSV", help="object boxes: image,x0,y0,x1,y1 in file pixels")
    frames = a.add_mutually_exclusive_group()
    frames.add_argument("--every", type=positive_int, metavar="K", help="video: every K-th frame")
    frames.add_argument("--fps", type=float, metavar="F", help="video: about F frames per second")
    a.add_argument("--out", required=True, metavar="DIR", help="results folder (a rerun resumes)")
    a.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray (Ray Data actors)")
    a.add_argument("--ray-address", metavar="ADDR",
                   help="join this Ray cluster (e.g. ray://head:10001 or auto); default: start a local Ray")
    a.add_argument("--workers", type=positive_int, default=2, metavar="N",
                   help="Ray actors, each with its own copy of the model (default 2)")
    a.add_argument("--batch-size", type=positive_int, default=16, metavar="B",
                   help="images per batch (one batched Grad-CAM pass; default 16)")
    a.add_argument("--model-batch", type=positive_int, default=8, metavar="M",
                   help="images per model call inside a batch (default 8; raise it on a GPU)")
    a.add_argument("--deletion-steps", type=int, default=8, metavar="S",
                   help="points per deletion curve, 0 = no deletion metric (default 8)")
    a.add_argument("--resize", choices=("crop", "stretch", "pad"), default="crop",
                   help="how images are fitted to the model input (default crop)")
    a.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a.add_argument("--json", action="store_true", help="print the summary as JSON")
    return a


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class _Progress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        final = p.done + p.skipped >= p.total
        if now - self.last < (0.5 if self.tty else 5.0) and not final:
            return
        self.last = now
        rate = p.done / p.seconds if p.seconds > 0 else 0.0
        line = (f"audit: {p.done + p.skipped}/{p.total} images ({p.skipped} already done), "
                f"{p.errors} unusable, {rate:.2g} img/s, ETA {_format_eta(p.eta_seconds)}")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and self.last:
            print(file=sys.stderr)


def cmd_audit(args: argparse.Namespace) -> int:
    from explainers.audit.process import AuditConfig
    from explainers.audit.sources import GroundTruth, open_source

    if args.fps is not None and not args.fps > 0:
        raise CLIError(f"--fps must be positive, got {args.fps}")
    if args.engine == "local" and (args.ray_address or args.workers != 2):
        raise CLIError("--ray-address and --workers need --engine ray")
    spec = args.source[0] if len(args.source) == 1 else list(args.source)
    source = open_source(spec, every=args.every, fps=args.fps)
    truth_args = {"masks_dir": args.masks, "boxes_csv": args.boxes}
    GroundTruth(args.masks, args.boxes)  # fail now on a missing folder or a bad CSV
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    config = AuditConfig(methods=methods, samples=args.samples, top_k=args.top_k, seed=args.seed,
                         resize=args.resize, deletion_steps=args.deletion_steps,
                         batch_size=args.batch_size, model_batch=args.model_batch)
    heavy_imports(args)  # the method registry imports TensorFlow: quietly, before validating
    config.validate()
    from explainers.audit.run import run_audit
    from model_zoo.registry import default_model_id

    model = {"ref": args.model or default_model_id(), "labels_path": args.labels,
             "preprocessing": args.preprocess, "input_size": args.input_size}
    progress = None if args.quiet else _Progress()
    try:
        summary = run_audit(source, args.out, model=model, config=config, truth_args=truth_args,
                            engine=args.engine, ray_address=args.ray_address, workers=args.workers,
                            progress=progress)
    finally:
        if progress is not None:
            progress.close()
    if source.kind == "video" and summary["images"]:
        from explainers.audit.video import write_overlay_video

        summary["overlay_video"] = str(write_overlay_video(args.out, source))
    summary["out"] = str(args.out)
    if args.json:
        print(json.dumps(summary, indent=2 if sys.stdout.isatty() else None))
    else:
        print(f"{count(summary['images'], 'image')}, {count(summary['rows'], 'row')}, "
              f"{count(summary['errors'], 'unusable file')}, {count(summary['model_calls'], 'model call')} "
              f"in {summary['seconds']:.1f} s → {args.out}")
        clusters = Path(args.out) / "clusters.json"
        if clusters.is_file():  # the audit's answer in words, as at the top of summary.html
            from explainers.audit.findings import findings

            unit = "frame" if source.kind == "video" else "image"
            for line in findings(json.loads(clusters.read_text(encoding="utf-8")), int(summary["errors"]), unit=unit):
                print(f"  - {line}")
        print(f"  Pictures and every flagged image: {Path(args.out) / 'summary.html'}")
    return 0


__all__ = ["add_parser", "cmd_audit"]
