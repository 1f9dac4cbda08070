"""Where the batches run: in this process (``local``) or on Ray (``ray``).

Both engines get the *same* batches (the driver cuts the stream into batches of
``config.batch_size``), and every image's seed depends only on its name, so for fixed seeds
both write identical rows. On Ray, Ray Data's ``from_items`` holds one row per batch and
``map_batches`` runs a callable class (``_RayAuditActor``) with ``concurrency`` actors: each
actor loads the model once in ``__init__`` and explains the batches it is given (decoded video
frames go to plain actors instead: see ``ray_frame_outcomes``). Only the driver writes files,
so atomic writes and resume work the same way for both engines.

Ray ships items and results between processes with pickle: these are objects this process
built (item descriptors, our own ``Outcome``s), never bytes a user supplied.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from explainers.base import ExplainerError

ENGINES = ("local", "ray")
_REPO_ROOT = str(Path(__file__).resolve().parents[2])


def load_model(model: Mapping[str, Any]) -> Any:
    """A Classifier from a model reference (``ref`` + optional labels/preprocessing/size)."""
    from model_zoo.registry import load_classifier

    return load_classifier(
        model["ref"],
        labels_path=model.get("labels_path"),
        preprocessing=model.get("preprocessing"),
        input_size=model.get("input_size"),
        weights_path=model.get("weights_path"),
    )


def local_outcomes(worker: Any, batches: Iterable[tuple[list[Any], list[int]]]) -> Iterator[Any]:
    """Run each batch in this process; a second thread reads and decodes the next batch while
    the model works on this one (TensorFlow releases the GIL). When no image needs a model call
    of its own after the batched pass (``AuditWorker.forward_ahead``: gradient CAMs only, no
    deletion metric), that thread also runs the next batch's model pass, so the maps,
    thumbnails and files of this batch are made while TensorFlow works on the next one."""
    from concurrent.futures import ThreadPoolExecutor

    ahead = bool(worker.forward_ahead)

    def stage(items: list[Any], indices: list[int]) -> tuple:
        prepared = worker.prepare(items, indices)
        return worker.forward(prepared) if ahead else prepared

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-read") as pool:
        it = iter(batches)
        nxt = next(it, None)
        pending = pool.submit(stage, *nxt) if nxt is not None else None
        while pending is not None:
            staged = pending.result()
            nxt = next(it, None)
            pending = pool.submit(stage, *nxt) if nxt is not None else None
            if ahead:
                yield from worker.explain_iter(staged, ahead=True)
            else:
                yield from worker.run_iter(staged)


def _truth(args: Mapping[str, Any] | None):
    from explainers.audit.sources import GroundTruth

    args = args or {}
    return GroundTruth(args.get("masks_dir"), args.get("boxes_csv"))


class _RayAuditActor:
    """One Ray actor: loads the model once, then explains whole batches."""

    def __init__(self, model: Mapping[str, Any], config: Mapping[str, Any], truth: Mapping[str, Any] | None,
                 cpus: int = 1) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        # One CPU per actor: TensorFlow's default of one thread per core in every actor made
        # the actors fight over the cores.
        threads = max(1, int(cpus))
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised (an actor reused by Ray)
            pass
        from explainers.audit.process import AuditConfig, AuditWorker

        self.worker = AuditWorker(load_model(model), AuditConfig.from_dict(config), _truth(truth))

    def process(self, payload: bytes) -> bytes:
        """One pickled ``(items, indices)`` batch → its pickled outcomes (the streaming path)."""
        items, indices = pickle.loads(payload)
        return pickle.dumps(self.worker.process(items, indices))


    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for payload in batch["payload"]:
            items, indices = pickle.loads(payload)
            out.append(pickle.dumps(self.worker.process(items, indices)))
        return {"payload": np.array(out, dtype=object)}


def check_reachable(address: str, timeout: float = 5.0, join_timeout: float = 60.0) -> None:
    """Fail in seconds on an address nobody answers at (``ray.init`` retries for minutes).

    ``host:port`` and ``ray://host[:port]`` are probed with one TCP connection; ``auto`` and
    other forms are left to Ray (they fail fast when no cluster is found).
    """
    import socket

    text = address.strip()
    default_port = 10001 if text.startswith("ray://") else 6379
    hostport = text.split("://", 1)[1] if "://" in text else text
    if text == "auto" or ("://" in text and not text.startswith("ray://")):
        return
    host, _, port = hostport.rstrip("/").rpartition(":") if ":" in hostport else (hostport, "", "")
    host = host.strip("[]") or hostport
    try:
        port_no = int(port) if port else default_port
        if not 0 < port_no < 65536:
            raise ValueError
    except ValueError:
        raise ExplainerError(f"the Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379)") from None
    hint = "is `ray start --head` running there and the port open?"
    try:
        with socket.create_connection((host, port_no), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ExplainerError(f"cannot reach Ray at {address} ({reason}); {hint}") from None
    # Something answers; whether it is Ray is only known by joining, and ray.init keeps
    # retrying for minutes when it is not: join once in a child process with a time limit.
    import subprocess
    import sys

    probe = ("import ray,sys; ray.init(address=sys.argv[1], include_dashboard=False, "
             "log_to_driver=False, logging_level='ERROR'); ray.shutdown()")
    try:
        done = subprocess.run([sys.executable, "-c", probe, text], capture_output=True, text=True,
                              timeout=join_timeout)
    except subprocess.TimeoutExpired:
        raise ExplainerError(f"cannot join Ray at {address}: no answer from a Ray head within "
                             f"{join_timeout:.0f} s; {hint}") from None
    if done.returncode:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["unknown error"]
        raise ExplainerError(f"cannot join Ray at {address} ({' '.join(last[0].split())[:200]}); {hint}")


def start_ray(address: str | None, workers: int) -> bool:
    """Join ``address`` or start a local Ray (no dashboard); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": _REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}}
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env=env, logging_level="ERROR")
        else:
            ray.init(num_cpus=max(1, int(workers)), include_dashboard=False, log_to_driver=False,
                     runtime_env=env, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExplainerError(f"cannot start or join Ray ({' '.join(str(exc).split())[:300]})") from None
    return True


def ray_outcomes(
    model: Mapping[str, Any],
    config: Mapping[str, Any],
    truth: Mapping[str, Any] | None,
    batches: Iterable[tuple[list[Any], list[int]]],
    *,
    address: str | None = None,
    workers: int = 2,
    cpus_per_worker: int = 1,
) -> Iterator[Any]:
    """Run the batches on Ray Data with ``workers`` actors; yields outcomes in source order."""
    import ray
    import ray.data

    import logging

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    started = start_ray(address, workers)
    try:
        rows = [{"payload": pickle.dumps(b)} for b in batches]
        if not rows:
            return
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 8 * max(1, int(workers))))
        ds = ds.map_batches(
            _RayAuditActor,
            fn_constructor_kwargs={"model": dict(model), "config": dict(config), "truth": dict(truth or {}),
                                   "cpus": int(cpus_per_worker)},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, int(workers))),
            num_cpus=int(cpus_per_worker),
        )
        for row in ds.iter_rows():
            yield from pickle.loads(row["payload"])
    finally:
        if started:
            ray.shutdown()


def ray_frame_outcomes(
    model: Mapping[str, Any],
    config: Mapping[str, Any],
    truth: Mapping[str, Any] | None,
    batches: Iterable[tuple[list[Any], list[int]]],
    *,
    address: str | None = None,
    workers: int = 2,
    cpus_per_worker: int = 1,
    in_flight: int = 2,
) -> Iterator[Any]:
    """Video frames on Ray: the driver decodes and ships the frames in bounded chunks.

    Why the driver decodes: every-k-th / fps selection needs each frame's exact number, which
    only a sequential decode from the start gives (a seek lands on a keyframe, and numbers
    derived from time stamps are wrong for variable-rate video), and workers on other machines
    cannot open an uploaded video that lives only on this server (no shared storage is
    assumed). Why not Ray Data here: ``from_items`` needs every row up front, i.e. every decoded
    frame in the driver's memory at once. Instead ``workers`` plain Ray actors (the same
    ``_RayAuditActor``: the model loads once per actor) get the batches, with at most
    ``in_flight`` batches queued per actor, so the driver holds at most ``workers × in_flight``
    batches of frames while it decodes the next; results come back in source order (identical
    rows to the local engine).
    """
    yield from _actor_outcomes(model, config, truth, batches, address=address, workers=workers,
                               cpus_per_worker=cpus_per_worker, in_flight=in_flight)


def _actor_outcomes(
    model: Mapping[str, Any],
    config: Mapping[str, Any],
    truth: Mapping[str, Any] | None,
    batches: Iterable[tuple[list[Any], list[int]]],
    *,
    address: str | None,
    workers: int,
    cpus_per_worker: int,
    in_flight: int,
) -> Iterator[Any]:
    """``workers`` actors, each batch to the actor with the fewest queued (at most
    ``in_flight`` each), results yielded in source order as soon as the oldest is done."""
    import collections
    import logging

    import ray

    logging.getLogger("ray").setLevel(logging.ERROR)
    workers, in_flight = max(1, int(workers)), max(1, int(in_flight))
    started = start_ray(address, workers)
    try:
        actor_cls = ray.remote(num_cpus=int(cpus_per_worker))(_RayAuditActor)
        actors: list[Any] = []
        queued = [0] * workers
        pending: collections.deque = collections.deque()  # (ref, actor index), source order
        for batch in batches:
            if len(actors) < workers:  # started on demand: a short run starts no idle actor
                actors.append(actor_cls.remote(dict(model), dict(config), dict(truth or {}), int(cpus_per_worker)))
            free = min(range(len(actors)), key=lambda i: queued[i])
            pending.append((actors[free].process.remote(pickle.dumps(batch)), free))
            queued[free] += 1
            del batch  # the driver keeps no decoded frames beyond the queued batches
            while len(pending) >= workers * in_flight:
                yield from _collect(ray, pending, queued)
        while pending:
            yield from _collect(ray, pending, queued)
    except ray.exceptions.RayActorError as exc:
        raise ExplainerError(f"a Ray worker failed ({' '.join(str(exc).split())[:300]})") from None
    finally:
        if started:
            ray.shutdown()


def _collect(ray: Any, pending: Any, queued: list[int]) -> Iterator[Any]:
    """The oldest pending batch's outcomes (waits for it)."""
    ref, actor = pending.popleft()
    result = ray.get(ref)
    queued[actor] -= 1
    yield from pickle.loads(result)


__all__ = ["ENGINES", "local_outcomes", "ray_outcomes", "ray_frame_outcomes", "start_ray", "load_model",
           "check_reachable"]
