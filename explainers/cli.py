"""``python -m explainers``: explain an image from the command line (or list the methods).

Why a CLI: it runs the same engine as the dashboard (one ``ExplainContext`` per image, so LIME
and KernelSHAP share one perturbation pass) in a scriptable way — ``--json`` for pipelines and
tests, ``--out`` for the raw maps. Positions are reported in the pixel coordinates of the image
*file as given*: the heatmap peak is mapped back through the resize/crop/letterbox with
``FittedImage.to_original``.

Every bad input ends with exit code 2 and one line on stderr starting with ``error: `` (no
traceback; ``--verbose`` shows it), as in ``python -m model_zoo``, whose argument handling for
``--model/--labels/--preprocess/--resize/--input-size`` this CLI shares. Cheap checks (image,
segmentation, sampling parameters) run before TensorFlow is imported.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any, Mapping, Sequence

from model_zoo.cli_support import (
    CLIError,
    Parser as _Parser,
    heavy_imports as _heavy_imports,
    positive_int as _positive_int,
    read_image_bytes as _read_image_bytes,
    resolve_top_k,
    run_cli,
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# ---------------------------------------------------------------------- arguments
def _value_range(text: str) -> tuple[float, float]:
    parts = str(text).split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH like 0,16, got {text!r}") from None
    return low, high


def _add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Image, model and sampling options shared by ``explain`` and ``trust``."""
    from explainers.context import FILLS, SamplingParams
    from explainers.segmentation import ALGORITHMS
    from model_zoo.images import RESIZE_POLICIES

    p.add_argument("image", metavar="IMAGE", help="PNG/JPEG/GIF/BMP/TIFF/WEBP file")
    p.add_argument("--model", metavar="ID|PATH",
                   help="catalog id, the bundled id, or a .keras/.h5 file (default: inceptionv3 "
                        "if its weights are here, else the bundled model)")
    p.add_argument("--labels", metavar="FILE", help="class names (.txt, .json or .csv)")
    p.add_argument("--preprocess", metavar="P",
                   help="override the pixel preprocessing, e.g. unit, symmetric, caffe, torch, "
                        "lite, raw, builtin")
    p.add_argument("--resize", choices=RESIZE_POLICIES, default="crop",
                   help="how to fit the image to the model input (default: crop)")
    p.add_argument("--input-size", type=_positive_int, metavar="N",
                   help="input side for your own models declared without a fixed size")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="scikit-learn (.skops) models: 1 (gray) or 3 (RGB) values per pixel")
    p.add_argument("--value-range", metavar="LOW,HIGH", default=None, type=_value_range,
                   help="scikit-learn (.skops) models: the values a black and a white pixel had "
                   "in training (e.g. 0,16 for sklearn's digits; default 0,1)")
    p.add_argument("--weights", metavar="FILE",
                   help="weights file of a catalog model outside the Keras cache")
    p.add_argument("--methods", default=None, metavar="M[,M…]",
                   help="comma-separated method names (default: the registry's default methods; "
                        "see `python -m explainers methods`)")
    p.add_argument("--samples", type=_samples, default="auto", metavar="auto|N",
                   help="perturbed images for LIME/KernelSHAP, shared by both: a number, or auto "
                        "(default): add batches until the top regions of every requested method "
                        "are stable for the label (each label stops on its own), at most --budget")
    p.add_argument("--threshold", type=float, default=SamplingParams.threshold, metavar="IOU",
                   help="auto: expected top-N overlap with the converged answer at which sampling stops "
                        f"(default {SamplingParams.threshold})")
    p.add_argument("--budget", type=_positive_int, default=SamplingParams.budget, metavar="N",
                   help=f"auto: the most perturbed images to use (default {SamplingParams.budget})")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--top-k", type=_positive_int, default=None, metavar="K",
                   help="explain the K most probable classes (default 5, or every class of a "
                        "model with fewer)")
    p.add_argument("--target", metavar="I[,I…]",
                   help="explain these class indices instead of the top-k")
    p.add_argument("--segmentation", choices=list(ALGORITHMS), default="quickshift",
                   help="superpixel algorithm for LIME/KernelSHAP (default quickshift)")
    p.add_argument("--regions", metavar="FILE",
                   help="your own region map (PNG of region ids, or one colour per region, the "
                   "size of the image); replaces the superpixels")
    p.add_argument("--seg-param", action="append", default=[], metavar="NAME=VALUE",
                   help="segmentation parameter, repeatable (e.g. n_segments=60 for slic, "
                        "rows=8 for grid)")
    p.add_argument("--fill", default="mean", metavar="F",
                   help=f"what hidden superpixels show: {', '.join(FILLS)} or #rrggbb "
                        "(default mean)")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="B",
                   help="images per model call in the perturbation pass (default 32)")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="a method parameter, repeatable (e.g. occlusion.window=16, "
                        "lime.kernel_width=0.5)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no TensorFlow imported)."""
    parser = _Parser(
        prog="python -m explainers",
        description="XAI Lens explainers: explain a Keras image classifier's prediction.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show warnings and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p_methods = sub.add_parser("methods", help="list the registered methods and their parameters")
    p_methods.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("explain", help="explain the top-k classes of an image")
    _add_common_arguments(p)
    p.add_argument("--contrast", metavar="B",
                   help="explain why each class rather than class B (an index or a label name): "
                        "the maps explain score − score of B (methods that can: see "
                        "`python -m explainers methods`)")
    p.add_argument("--out", metavar="FILE.npz", help="also write heatmaps and segments to an NPZ")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    t = sub.add_parser("trust", help="measure how far the explanations of one label can be trusted")
    _add_common_arguments(t)
    t.add_argument("--label", type=int, default=None, metavar="I",
                   help="class index to assess (default: the top-1 prediction)")
    t.add_argument("--seeds", type=_positive_int, default=3, metavar="K",
                   help="seeds for the stability reruns (and K-1 noisy copies; default 3)")
    t.add_argument("--noise", type=float, default=3.0, metavar="SIGMA",
                   help="Gaussian noise of the noisy copies, in grey levels (default 3)")
    t.add_argument("--top-n", type=_positive_int, default=5, metavar="N",
                   help="top regions compared by the IoU figures (default 5)")
    t.add_argument("--steps", type=_positive_int, default=16, metavar="S",
                   help="points per deletion/insertion curve (default 16)")
    t.add_argument("--stability-samples", type=_positive_int, default=None, metavar="N",
                   help="perturbation rows per stability rerun (default min(samples, 500))")
    t.add_argument("--mask", metavar="FILE",
                   help="ground-truth object mask (an image of the same size; white = object)")
    t.add_argument("--sanity", action="store_true",
                   help="also randomise the model's weights top-down (on a copy) and flag methods "
                        "whose map barely changes (Adebayo et al. 2018)")
    t.add_argument("--sanity-steps", type=_positive_int, default=5, metavar="K",
                   help="points along the cascade of randomised layers (default 5)")
    t.add_argument("--json", action="store_true", help="machine-readable output")

    from explainers.audit.cli import add_parser as _add_audit_parser

    _add_audit_parser(sub)
    return parser


def _samples(text: str) -> int | str:
    """``--samples``: "auto" or a whole number (its range is checked with the other settings)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number, not {text!r}") from None


def _convert(value: str, default: Any, what: str) -> Any:
    """A command-line string converted to the type of a dataclass field's default."""
    kind = type(default)
    if kind is bool:
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise CLIError(f"{what} must be true or false, not {value!r}")
    if kind in (int, float):
        try:
            number = float(value)
        except ValueError:
            raise CLIError(f"{what} must be a number, not {value!r}") from None
        if kind is int:
            if not number.is_integer():
                raise CLIError(f"{what} must be a whole number, not {value!r}")
            return int(number)
        return number
    return value


def parse_assignments(
    items: Sequence[str], params_type: type, what: str
) -> dict[str, Any]:
    """``["name=value", …]`` → ``{name: typed value}`` for the fields of ``params_type``."""
    fields = {f.name: f for f in dataclasses.fields(params_type)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CLIError(f"{what} parameters are written name=value, not {item!r}")
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise CLIError(f"unknown {what} parameter {name!r}; known: {known}")
        out[name] = _convert(value.strip(), _field_default(fields[name]), f"{what} {name}")
    return out


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return ""


def _split_names(text: str, what: str) -> list[str]:
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise CLIError(f"no {what} given")
    return list(dict.fromkeys(names))


def _parse_targets(text: str | None) -> list[int] | None:
    if text is None:
        return None
    out = []
    for item in _split_names(text, "target class"):
        try:
            out.append(int(item))
        except ValueError:
            raise CLIError(f"--target takes class indices like 281,285, not {item!r}") from None
    return out


# ---------------------------------------------------------------------- commands
def cmd_methods(args: argparse.Namespace) -> int:
    """List the registered methods with their parameters and defaults."""
    _heavy_imports(args)
    from explainers.base import bounds, methods, params_dict

    specs = methods()
    rows = []
    for name, spec in specs.items():
        defaults = params_dict(spec.params_type())
        limits = {f.name: {k: v for k, v in bounds(f).items() if v not in (None, "")}
                  for f in dataclasses.fields(spec.params_type)}
        rows.append({
            "name": name, "title": spec.title, "family": spec.family, "order": spec.order,
            "scale_group": spec.scale_group or name, "default": spec.default,
            "needs_gradients": spec.needs_gradients, "needs_feature_maps": spec.needs_feature_maps,
            "contrast": bool(spec.contrast),
            "params": defaults, "bounds": limits, "description": spec.description,
        })
    if args.json:
        print(json.dumps({"methods": rows}, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "no parameters"
        contrast = "A vs B" if r["contrast"] else ""
        print(f"{r['name']:<{width}}  {r['family']:<12}  {contrast:<6}  {params}")
    return 0


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Shared by explain and trust: check cheap inputs, load the model, fit the image, build a context."""
    import numpy as np

    from explainers.context import SamplingParams
    from explainers.segmentation import ALGORITHMS, resolve_params
    from model_zoo.images import load_image

    started = time.perf_counter()
    # Cheap checks first: the image, the segmentation and the sampling parameters.
    data = _read_image_bytes(args.image)
    original = load_image(data)
    seg_params = resolve_params(
        args.segmentation,
        parse_assignments(args.seg_param, ALGORITHMS[args.segmentation], args.segmentation),
    )
    sampling = SamplingParams(samples=args.samples, fill=args.fill, batch_size=args.batch_size,
                              threshold=args.threshold, budget=args.budget)
    sampling.validate()
    if args.methods is None:
        from explainers.base import default_methods

        args.methods = ",".join(default_methods())
    names = _split_names(args.methods, "methods")
    targets = _parse_targets(args.target)

    _heavy_imports(args)
    from explainers.base import get_method, make_params
    from explainers.context import ExplainContext
    from model_zoo.registry import default_model_id, load_classifier, prepare_image

    specs = {name: get_method(name) for name in names}
    method_params = _method_params(args.param, specs)
    params = {name: make_params(spec.params_type, method_params.get(name)) for name, spec in specs.items()}

    clf = load_classifier(
        args.model or default_model_id(),
        labels_path=args.labels,
        preprocessing=args.preprocess,
        input_size=args.input_size,
        weights_path=args.weights,
        channels=args.channels,
        value_range=args.value_range,
    )
    top_k = resolve_top_k(args.top_k, clf.num_classes) if targets is None else None
    fitted = prepare_image(clf, original, policy=args.resize)
    regions = _read_regions(args.regions, fitted) if args.regions else None
    ctx = ExplainContext(
        clf, np.array(fitted.image), seed=args.seed, segmentation=args.segmentation,
        segmentation_params=seg_params, sampling=sampling,
        regions=None if regions is None else regions.segments,
    )
    return {"data": data, "original": original, "clf": clf, "fitted": fitted, "ctx": ctx,
            "params": params, "targets": targets, "top_k": top_k, "load_seconds": time.perf_counter() - started}


def _read_regions(path: str, fitted: Any) -> Any:
    """A region map file fitted to the model input exactly like the image (``--regions``)."""
    from model_zoo.regions import load_region_map

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise CLIError(f"the region map file {path} does not exist") from None
    except OSError as e:
        raise CLIError(f"cannot read the region map file {path}: {e.strerror or e}") from None
    return load_region_map(data, fitted)


def cmd_explain(args: argparse.Namespace) -> int:
    """Load the model, fit the image, run the methods from one context, print the results."""
    from explainers.runner import explain
    from model_zoo.images import sha256_bytes

    prep = _prepare(args)
    clf, fitted, ctx = prep["clf"], prep["fitted"], prep["ctx"]
    contrast = _parse_contrast(args.contrast, clf)
    seen = clf.images_seen
    t0 = time.perf_counter()
    results = explain(ctx, prep["params"], labels=prep["targets"], top_k=prep["top_k"] or 1,
                      contrast=contrast)
    seconds = time.perf_counter() - t0
    calls = clf.images_seen - seen

    report = build_report(
        clf, fitted, results, image_path=args.image, image_sha256=sha256_bytes(prep["data"]),
        model_calls=calls, seconds=seconds, load_seconds=prep["load_seconds"], args=args, ctx=ctx,
        params=prep["params"],
    )
    if args.out:
        write_npz(args.out, fitted, results, report)
    if args.json:
        from explainers.export import to_json

        print(to_json(report, indent=2 if sys.stdout.isatty() else None))
    else:
        print(format_table(report))
    return 0


def _parse_contrast(text: str | None, clf: Any) -> int | None:
    """``--contrast``: a class index, or a label name of the model (case-insensitive)."""
    if text is None:
        return None
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    matches = [i for i, name in enumerate(clf.labels) if name.lower() == text.lower()]
    if not matches:
        raise CLIError(f"--contrast {text!r} is neither a class index nor a label of this model")
    return matches[0]


def cmd_trust(args: argparse.Namespace) -> int:
    """Explain one label, then measure faithfulness, stability, agreement and convergence."""
    from explainers.runner import explain
    from explainers.trust import badges, to_json, trust_report
    from model_zoo.registry import fit_mask

    if not 0 <= args.noise <= 255:
        raise CLIError(f"--noise must be between 0 and 255 grey levels, got {args.noise}")
    prep = _prepare(args)
    clf, ctx = prep["clf"], prep["ctx"]
    mask = fit_mask(clf, _read_image_bytes(args.mask), prep["fitted"]) if args.mask else None
    label = args.label if args.label is not None else (prep["targets"] or ctx.top_labels(1))[0]
    if not 0 <= label < clf.num_classes:
        raise CLIError(f"--label must be between 0 and {clf.num_classes - 1}, got {label}")
    results = explain(ctx, prep["params"], labels=[label])
    report = trust_report(
        ctx, results, label, seeds=args.seeds, noise_sigma=args.noise, top_n=args.top_n,
        steps=args.steps, mask=mask, stability_samples=args.stability_samples,
        sanity=args.sanity, sanity_steps=args.sanity_steps,
    )
    out = to_json(report)
    if args.json:
        print(json.dumps(out, allow_nan=False, indent=2 if sys.stdout.isatty() else None))
        return 0
    print(f"label {label} ({clf.labels[label]}): {report.model_calls} extra model calls, "
          f"{report.seconds:.1f} s")
    keys = ("deletion_auc", "random_deletion_auc", "insertion_auc", "stability_iou", "stability_rank_corr")
    print(f"{'method':<22}" + "".join(f"{k:>22}" for k in keys))
    for row in out["methods"]:
        cells = "".join(f"{row[k]:>22.3f}" if isinstance(row[k], float) else f"{str(row[k]):>22}" for k in keys)
        print(f"{row['method']:<22}{cells}")
    if report.sanity is not None:
        san = out["sanity"]
        print(f"sanity check: layers randomised top-down ({len(san['layers'])} points of "
              f"{san['total_layers']} layers): {', '.join(san['layers'])}")
        for method, row in san["methods"].items():
            rho = " ".join("–" if v is None else f"{v:.2f}" for v in row["spearman"])
            print(f"  {method:<20} Spearman {rho}  {'passes' if row['passes'] else 'FAILS'}")
    for method, text in badges(report).items():
        print(f"  {method}: {text}")
    return 0


def _method_params(items: Sequence[str], specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``--param method.name=value`` → ``{method: {name: typed value}}`` (only chosen methods)."""
    grouped: dict[str, list[str]] = {}
    for item in items:
        head, sep, _ = item.partition("=")
        method, dot, _ = head.partition(".")
        if not sep or not dot:
            raise CLIError(f"--param is written METHOD.NAME=VALUE, not {item!r}")
        method = method.strip()
        if method not in specs:
            raise CLIError(f"--param {item!r} names {method!r}, which is not in --methods")
        grouped.setdefault(method, []).append(item.partition(".")[2])
    return {
        m: parse_assignments(values, specs[m].params_type, m) for m, values in grouped.items()
    }


# ---------------------------------------------------------------------- output
def build_report(
    clf: Any, fitted: Any, results: Sequence[Any], *, image_path: str, image_sha256: str,
    model_calls: int, seconds: float, load_seconds: float, args: argparse.Namespace, ctx: Any,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``--json`` document: ``explainers.export.run_document``, the same schema as the app's download."""
    from explainers.base import params_dict
    from explainers.export import run_document

    return run_document(
        results, fitted=fitted, model=clf, image_name=image_path, image_sha256=image_sha256,
        seed=args.seed, samples=args.samples, fill=args.fill,
        segmentation=ctx.segmentation if ctx is not None else args.segmentation,
        segmentation_params=(ctx.segmentation_params if ctx is not None else None) or {},
        methods={n: params_dict(p) for n, p in (params or {}).items()},
        model_calls=model_calls, seconds=seconds, load_seconds=load_seconds,
    )


def format_table(report: Mapping[str, Any]) -> str:
    """A readable table of the results (one row per method and label)."""
    lines = [
        f"{report['model_name']} ({report['model']}); image {report['image']} "
        f"{report['image_shape'][0]}×{report['image_shape'][1]} → "
        f"{report['input_shape'][0]}×{report['input_shape'][1]} ({report['resize']})",
        f"{report['model_calls']} images through the model in {report['seconds']:.2f} s "
        f"(+ {report['load_seconds']:.1f} s loading); seed {report['seed']}"
        + (f"; {report['num_segments']} {report['segmentation']} superpixels"
           if report["num_segments"] else ""),
    ]
    from explainers.base import auto_sampling_by_label, sampling_words

    for name, sampling in auto_sampling_by_label(report["results"]):
        lines.append(f"samples auto, {name}: {sampling_words(sampling)}")
    lines.append("")
    header = ("METHOD", "CLASS", "SCORE", "PEAK (row, col)", "SECONDS", "CALLS", "R²", "TOP SEGMENTS")
    rows = [header]
    for r in report["results"]:
        top = ", ".join(f"{i}:{w:+.3f}" for i, w in r.get("segments", [])[:3])
        rows.append((
            r["method"],
            f"{r['label']} {r['label_name']}"
            + (f" rather than {r['contrast']} {r['contrast_name']}" if r.get("contrast") is not None else ""),
            f"{100 * r['score']:.1f} %" if r["score"] is not None else "",
            f"({r['peak_file_rc'][0]}, {r['peak_file_rc'][1]})",
            f"{r['seconds']:.2f}",
            str(r["model_calls"]),
            f"{r['r2']:.2f}" if r.get("r2") is not None else "",
            top,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    lines.append("")
    lines.append("Peaks are in pixels of the image file; weights are each method's own units.")
    return "\n".join(lines)


def write_npz(path: str, fitted: Any, results: Sequence[Any], report: Mapping[str, Any]) -> None:
    """``--out``: the one NPZ layout of ``explainers.export.results_npz`` (no pickle)."""
    from explainers.export import results_npz

    data = results_npz(fitted, results, report)
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CLIError(f"cannot write {path}: {e.strerror or e}") from None


# ---------------------------------------------------------------------- entry point
def cmd_audit(args: argparse.Namespace) -> int:
    """A dataset audit (explainers/audit/cli.py)."""
    from explainers.audit.cli import cmd_audit as run

    return run(args)


_COMMANDS = {"methods": cmd_methods, "explain": cmd_explain, "trust": cmd_trust, "audit": cmd_audit}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 1 internal error, 130 interrupted)."""
    return run_cli(build_parser(), _COMMANDS, argv)


__all__ = [
    "build_parser", "main", "parse_assignments", "build_report", "format_table",
    "write_npz", "cmd_explain", "cmd_methods", "cmd_trust",
]
