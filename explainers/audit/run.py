"""The audit driver: stream a source, explain it in batches on an engine, write the results.

``run_audit`` is what the CLI and the dashboard call. It checks the results directory (a rerun
with the same parameters resumes: finished images are skipped before they are read, so they
cost no model call; other parameters are refused), cuts the stream into batches, hands them to
the engine, saves each image as it arrives, and at the end (also after a cancel) writes
``results.parquet``, ``clusters.json``, ``summary.html`` and the final manifest.
"""
from __future__ import annotations

import importlib.metadata
import platform
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from explainers.audit.process import AuditConfig, AuditWorker, image_id
from explainers.audit.sources import GroundTruth, Source
from explainers.audit.store import ResultStore
from explainers.base import Cancelled, ExplainerError

MANIFEST_VERSION = 1
_PACKAGES = ("numpy", "tensorflow-cpu", "tensorflow", "keras", "scikit-learn", "scikit-image",
             "pillow", "pandas", "pyarrow", "ray", "av")


@dataclass
class AuditProgress:
    """What a progress callback gets after each image."""

    done: int  # images finished in this run (skipped ones not counted)
    skipped: int  # finished in an earlier run
    total: int  # images in the source (estimate for videos)
    errors: int
    seconds: float
    eta_seconds: float | None
    last: str = ""


ProgressCallback = Callable[[AuditProgress], None]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _fingerprint(model_id: str, config: AuditConfig, source: Source, truth: GroundTruth) -> dict:
    return {"model": model_id, "config": config.as_dict(), "source": source.describe(),
            "truth": truth.describe()}


def _batches(source: Source, done: set[str], size: int, counter: dict) -> Iterator[tuple[list, list]]:
    items, indices = [], []
    for index, item in enumerate(source.items()):
        if image_id(item.name) in done:
            counter["skipped"] += 1
            continue
        items.append(item)
        indices.append(index)
        if len(items) == size:
            yield items, indices
            items, indices = [], []
    if items:
        yield items, indices


def run_audit(
    source: Source,
    out_dir: str,
    *,
    model: Mapping[str, Any] | None = None,
    classifier: Any = None,
    config: AuditConfig | None = None,
    truth: GroundTruth | None = None,
    truth_args: Mapping[str, Any] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int = 2,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    aggregate: bool = True,
) -> dict[str, Any]:
    """Audit ``source`` into ``out_dir``; returns the summary (also in the manifest).

    ``model`` is a reference the engines can load (``{"ref": id or path, "labels_path": ...}``);
    the local engine may instead get a loaded ``classifier``. ``truth_args`` (``masks_dir`` or
    ``boxes_csv``) builds the ground truth on every worker.
    """
    from explainers.audit.engines import ENGINES, load_model, local_outcomes, ray_frame_outcomes, ray_outcomes

    config = config or AuditConfig()
    config.validate()
    if engine not in ENGINES:
        raise ExplainerError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "ray" and model is None:
        raise ExplainerError("the Ray engine needs a model reference (an id or a file path)")
    if not 1 <= int(workers) <= 1024:
        raise ExplainerError("workers must be between 1 and 1024")
    truth_args = dict(truth_args or {})
    truth = truth if truth is not None else GroundTruth(truth_args.get("masks_dir"), truth_args.get("boxes_csv"))
    clf = classifier if classifier is not None else load_model(model)
    worker = AuditWorker(clf, config, truth)  # validates methods vs the model in the driver too

    store = ResultStore(out_dir)
    fingerprint = _fingerprint(clf.id, config, source, truth)
    previous = store.read_manifest()
    if previous is not None and previous.get("fingerprint") != fingerprint:
        raise ExplainerError(
            f"{out_dir} holds an audit with other parameters (model, methods, source or seeds); "
            "choose another output folder"
        )
    done = store.done_ids()
    total = source.count()
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "fingerprint": fingerprint,
        "model": {"id": clf.id, "name": clf.name, "input_size": list(clf.input_size or ()),
                  "classes": clf.num_classes, "preprocessing": clf.preprocessing,
                  "cam_layer": clf.cam_layer, "ref": dict(model) if model else None,
                  "labels": list(clf.labels) if getattr(clf, "labels", None) else None},
        "params": config.as_dict(),
        "seeds": {"seed": config.seed,
                  "per_image": "first 31 bits of sha256('<seed>\\0<image name>'), little-endian"},
        "source": source.describe(),
        "truth": truth.describe(),
        "engine": engine, "workers": int(workers) if engine == "ray" else 1,
        "packages": package_versions(),
        "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    store.root.mkdir(parents=True, exist_ok=True)
    store.write_manifest(manifest)

    counter = {"skipped": 0}
    batches = _batches(source, done, int(config.batch_size), counter)
    if engine == "local":
        outcomes = local_outcomes(worker, batches)
    elif source.kind == "video":  # decoded frames: streamed in bounded chunks (see the docstring)
        outcomes = ray_frame_outcomes(model, config.as_dict(), truth_args, batches,
                                      address=ray_address, workers=workers)
    else:  # file descriptors: the actors read, decode and fit the files themselves
        outcomes = ray_outcomes(model, config.as_dict(), truth_args, batches,
                                address=ray_address, workers=workers)
    started = time.perf_counter()
    finished = errors = calls = 0
    status = "complete"
    try:
        for outcome in outcomes:
            store.save(outcome)
            finished += 1
            calls += outcome.model_calls
            errors += outcome.error is not None
            if progress is not None:
                elapsed = time.perf_counter() - started
                left = max(0, total - counter["skipped"] - finished)
                eta = elapsed / finished * left if finished else None
                progress(AuditProgress(finished, counter["skipped"], total, errors, elapsed, eta, outcome.name))
            if cancel is not None and cancel.is_set():
                status = "cancelled"
                break
    except Cancelled:
        status = "cancelled"
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
    seconds = time.perf_counter() - started
    return finish(store, manifest, status=status, seconds=seconds, model_calls=calls,
                  new_images=finished, aggregate=aggregate)


def finish(store: ResultStore, manifest: dict[str, Any], *, status: str, seconds: float,
           model_calls: int, new_images: int, aggregate: bool = True) -> dict[str, Any]:
    """Write results.parquet (+ aggregates and summary) and the final manifest."""
    frame = store.rows_frame()
    parts = list(store.parts())
    errors = [{"image": p["image"], "reason": p["error"]} for p in parts if p.get("error")]
    clusters: dict[str, Any] = {}
    if aggregate and len(frame):
        from explainers.audit.aggregate import aggregate_results

        frame, clusters = aggregate_results(store, frame, manifest)
    store.write_results(frame)
    images = sum(1 for p in parts if not p.get("error"))
    summary = {
        "images": images, "rows": int(len(frame)), "errors": len(errors),
        "model_calls": int(model_calls), "new_images": int(new_images),
        "seconds": round(float(seconds), 3), "status": status,
        "clusters": {c: v["clusters"] for c, v in clusters.get("classes", {}).items()},
    }
    manifest = dict(manifest)
    manifest.update({"status": status, "errors": errors, "summary": summary,
                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    store.write_manifest(manifest)
    if aggregate and len(frame):
        from explainers.audit.summary_html import write_summary

        write_summary(store, frame, clusters, manifest)
    return summary


__all__ = ["run_audit", "AuditProgress", "package_versions", "finish"]
