"""Explain one batch of a source's images: the work both engines (local, Ray) share.

Speed comes from sharing model calls:

* the gradient CAMs of a whole batch come from one forward pass and k backward passes
  (``Classifier.top_k_gradients``: each image's own top-k labels), and that pass also gives the
  probabilities, so there is no separate predict call;
* each image then gets an ordinary ``ExplainContext`` pre-filled with its share of the batched
  pass, and the registered methods run through ``explainers.runner.explain`` exactly as for a
  single image: the CAMs reuse the batched pass (0 new calls) and the perturbation methods
  (LIME, KernelSHAP) share one perturbation pass per image;
* the deletion curves of every label and method of an image, and their random baseline, go to
  the model in one ``predict_coalitions`` call, reusing the perturbation rows.

Determinism: each image gets a seed derived from the run's seed and the image's *name*, so its
rows do not depend on which batch or which worker it landed in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from explainers.base import ExplainerError, get_method, make_params

DEFAULT_METHODS = ("gradcam", "kernel_shap")
"""The audit's default methods (the one place they are named): the batched Grad-CAM for where
the model looks and KernelSHAP at a moderate sample count as a black-box check of it."""
_DELETION_KEY = 0xDE1E7E


@dataclass(frozen=True)
class AuditConfig:
    """Every parameter of an audit run (recorded in the manifest; a resumed run must match)."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    samples: int = 300  # perturbation rows per image for LIME / KernelSHAP
    top_k: int = 1
    seed: int = 0
    resize: str = "crop"
    segmentation: str = "grid"  # regions of the perturbation methods and the deletion curves
    segmentation_params: Mapping[str, Any] = field(default_factory=lambda: {"rows": 8, "cols": 8})
    fill: str = "mean"
    deletion_steps: int = 8  # points of each deletion curve; 0 = no deletion metric
    random_orders: int = 2  # random deletion orders averaged for the baseline
    batch_size: int = 16  # images per batch: read together, one batched Grad-CAM call
    model_batch: int = 8  # images per model call inside a batch (on 2 CPU cores EfficientNet-Lite0
    # ran fastest at 4-16 and slower at 32; a GPU wants more)
    thumb_size: int = 96
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        from explainers.context import SamplingParams
        from explainers.segmentation import resolve_params
        from model_zoo.images import RESIZE_POLICIES

        if not self.methods:
            raise ExplainerError("choose at least one method")
        for name in self.methods:
            spec = get_method(name)
            make_params(spec.params_type, self.method_params.get(name))
        unknown = set(self.method_params) - set(self.methods)
        if unknown:
            raise ExplainerError(f"parameters given for methods not run: {', '.join(sorted(unknown))}")
        SamplingParams(samples=int(self.samples), fill=self.fill).validate()
        resolve_params(self.segmentation, dict(self.segmentation_params))
        if not 1 <= int(self.top_k) <= 20:
            raise ExplainerError(f"top-k must be between 1 and 20, not {self.top_k}")
        if self.resize not in RESIZE_POLICIES:
            raise ExplainerError(f"resize must be one of {', '.join(RESIZE_POLICIES)}")
        if not (int(self.deletion_steps) == 0 or 2 <= int(self.deletion_steps) <= 100):
            raise ExplainerError("deletion steps must be 0 (off) or between 2 and 100")
        if not 1 <= int(self.random_orders) <= 20:
            raise ExplainerError("random orders must be between 1 and 20")
        if not 1 <= int(self.batch_size) <= 512:
            raise ExplainerError("batch size must be between 1 and 512")
        if not 1 <= int(self.model_batch) <= 512:
            raise ExplainerError("model batch must be between 1 and 512")
        if not 16 <= int(self.thumb_size) <= 512:
            raise ExplainerError("thumbnail size must be between 16 and 512")

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        d["segmentation_params"] = dict(self.segmentation_params)
        d["method_params"] = {k: dict(v) for k, v in self.method_params.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AuditConfig":
        d = dict(d)
        d["methods"] = tuple(d.get("methods", DEFAULT_METHODS))
        return cls(**d)


def image_id(name: str) -> str:
    """A file-system-safe id for an item name (files are never written under a user's name)."""
    return hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def image_seed(seed: int, name: str) -> int:
    """The seed of one image: the run's seed and the image name, independent of batching."""
    digest = hashlib.sha256(f"{int(seed)}\0{name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class Outcome:
    """Everything one image produced: rows, maps (npz bytes), thumbnails, or an error."""

    name: str
    id: str
    index: int
    true_label: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    maps_npz: bytes = b""
    thumbs: dict[str, bytes] = field(default_factory=dict)
    model_calls: int = 0
    seconds: float = 0.0
    frame: int | None = None
    time: float | None = None
    shape: tuple[int, int] | None = None
    geometry: dict[str, Any] | None = None  # how the file was fitted to the model input


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _small(pixels: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    return np.asarray(Image.fromarray(pixels).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR))


class AuditWorker:
    """Holds one classifier and the run's configuration; ``process`` explains a batch.

    The Ray engine builds one per actor (the model loads once per actor); the local engine one
    per run.
    """

    def __init__(self, classifier: Any, config: AuditConfig, ground_truth: Any = None) -> None:
        from explainers.cam import GRADIENT_CAMS, resolve_layer

        config.validate()
        self.clf = classifier
        self.config = config
        self.truth = ground_truth
        self.params = {
            name: make_params(get_method(name).params_type, config.method_params.get(name))
            for name in config.methods
        }
        for name in config.methods:
            if not get_method(name).usable_with(classifier):
                raise ExplainerError(f"{name} needs gradients or feature maps, which this model does not give")
        if int(config.top_k) > classifier.num_classes:
            raise ExplainerError(f"top-k must be at most {classifier.num_classes} for this model")
        # The batched pass serves every gradient CAM asking for the default (or the same) layer.
        cams = [n for n in config.methods if n in GRADIENT_CAMS]
        self.cam_layer = resolve_layer(classifier, self.params[cams[0]].layer) if cams else None

    # ------------------------------------------------------------------ one batch
    def process(self, items: Sequence[Any], indices: Sequence[int]) -> list[Outcome]:
        """Explain ``items`` (``sources.Item``); unusable ones come back with an error."""
        return self.run(self.prepare(items, indices))

    def prepare(self, items: Sequence[Any], indices: Sequence[int]) -> tuple:
        """Read, decode and fit a batch (no model call): the part a second thread can do
        while the model works on the previous batch."""
        from explainers.audit.sources import BadItem, read_item
        from model_zoo.images import ImageError
        from model_zoo.registry import fit_mask_pixels, prepare_image

        outcomes: list[Outcome] = []
        fitted: list[Any] = []
        masks: list[np.ndarray | None] = []
        ready: list[Outcome] = []
        for item, index in zip(items, indices):
            out = Outcome(item.name, image_id(item.name), int(index), item.true_label,
                          frame=item.frame, time=item.time)
            outcomes.append(out)
            try:
                pixels = read_item(item)
                fit = prepare_image(self.clf, pixels, policy=self.config.resize)
                mask = None
                if self.truth:
                    raw = self.truth.mask_for(item, pixels.shape[:2])
                    if raw is not None:
                        m = np.repeat((raw * 255).astype(np.uint8)[..., None], 3, axis=2)
                        mask = fit_mask_pixels(self.clf, m, fit)  # the app's and CLI's mask fitting
                        if not mask.any():
                            mask = None
            except (BadItem, ImageError, ValueError) as exc:
                out.error = " ".join(str(exc).split()) or type(exc).__name__
                continue
            out.shape = tuple(int(s) for s in pixels.shape[:2])
            out.geometry = {"policy": fit.policy, "source_box": list(fit.source_box),
                            "target_box": list(fit.target_box)}
            del pixels
            fitted.append(fit)
            masks.append(mask)
            ready.append(out)
        return outcomes, ready, fitted, masks

    def run(self, prepared: tuple) -> list[Outcome]:
        """The model part of a batch prepared by ``prepare``, every outcome at once."""
        done = {id(o): o for o in self.run_iter(prepared)}
        return [done[id(o)] for o in prepared[0]]

    @property
    def forward_ahead(self) -> bool:
        """True when explaining an image after the batched pass calls the model no more (only
        gradient CAMs served by that pass, no deletion metric): the local engine may then run
        the next batch's pass in its reading thread while this one's maps are drawn and saved,
        and every image's model-call count stays exact."""
        from explainers.cam import GRADIENT_CAMS, resolve_layer

        if self.cam_layer is None or int(self.config.deletion_steps):
            return False
        return all(name in GRADIENT_CAMS and resolve_layer(self.clf, self.params[name].layer) == self.cam_layer
                   for name in self.config.methods)

    def run_iter(self, prepared: tuple) -> Iterator[Outcome]:
        """The model part of a batch prepared by ``prepare``, yielding each image as soon as it
        is finished (unusable ones first), so a viewer sees results arrive one by one."""
        yield from self.explain_iter(self.forward(prepared))

    def forward(self, prepared: tuple) -> tuple:
        """The batched model pass of a prepared batch: (prepared, pass); the pass is None when
        no image of the batch is usable."""
        outcomes, ready, fitted, masks = prepared
        if not ready:
            return prepared, None
        started = time.perf_counter()
        seen = int(self.clf.images_seen)
        batch = np.stack([f.image for f in fitted])
        k = int(self.config.top_k)
        shared = None
        if self.cam_layer is not None:
            feats, scores, classes, grads = self.clf.top_k_gradients(batch, k, self.cam_layer, chunk=int(self.config.model_batch))
            from explainers.cam import probabilities_from_scores

            probs = probabilities_from_scores(self.clf, scores)
            shared = (feats, scores, grads)
        else:
            probs = self.clf.predict(batch, batch_size=int(self.config.model_batch))
            classes = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        batch_seconds = time.perf_counter() - started
        batch_calls = int(self.clf.images_seen) - seen
        return prepared, (probs, classes, shared, batch_seconds, batch_calls)

    def explain_iter(self, forwarded: tuple, *, ahead: bool = False) -> Iterator[Outcome]:
        """Each image of a batch after its ``forward`` pass: maps, rows, thumbnails.

        ``ahead``: another thread may be running the next batch's pass meanwhile (only when
        ``forward_ahead``), so the classifier's call counter is not read here: by construction
        no image makes a call of its own."""
        (outcomes, ready, fitted, masks), fwd = forwarded
        ready_ids = {id(o) for o in ready}
        yield from (o for o in outcomes if id(o) not in ready_ids)
        if fwd is None:
            return
        probs, classes, shared, batch_seconds, batch_calls = fwd
        for j, (out, fit, mask) in enumerate(zip(ready, fitted, masks)):
            t0 = time.perf_counter()
            before = None if ahead else int(self.clf.images_seen)
            labels = [int(c) for c in classes[j]]
            pre = None
            if shared is not None:
                pre = (shared[0][j], shared[1][j], {c: shared[2][j, i] for i, c in enumerate(labels)})
            try:
                self._explain_one(out, fit, mask, probs[j], labels, pre)
            except ValueError as exc:  # ExplainerError, MetricsError…: this image only
                out.rows, out.thumbs, out.maps_npz = [], {}, b""
                out.error = "cannot be explained: " + (" ".join(str(exc).split()) or type(exc).__name__)
            own = 0 if before is None else int(self.clf.images_seen) - before
            out.model_calls = own + (batch_calls if j == 0 else 0)
            out.seconds = time.perf_counter() - t0 + batch_seconds / len(ready)
            yield out

    def _explain_one(self, out: Outcome, fit: Any, mask: np.ndarray | None, probs: np.ndarray,
                     labels: list[int], pre: tuple | None) -> None:
        from explainers.cam import LayerPass
        from explainers.context import ExplainContext, SamplingParams
        from explainers.render import overlay
        from explainers.runner import explain

        cfg = self.config
        seed = image_seed(cfg.seed, out.name)
        image = np.array(fit.image)
        ctx = ExplainContext(
            self.clf, image, seed=seed, segmentation=cfg.segmentation,
            segmentation_params=dict(cfg.segmentation_params),
            sampling=SamplingParams(samples=int(cfg.samples), fill=cfg.fill),
        )
        ctx.cache["probs"] = np.asarray(probs, dtype=np.float32)
        if pre is not None:
            feats, scores, grads = pre
            ctx.cache[("cam", self.cam_layer)] = LayerPass(
                self.cam_layer, np.asarray(feats, np.float32), np.asarray(scores, np.float32),
                {c: np.asarray(g, np.float32) for c, g in grads.items()}, calls=1,
            )
        results = explain(ctx, {n: self.params[n] for n in cfg.methods}, labels=labels)
        deletion = self._deletion(ctx, results, labels) if int(cfg.deletion_steps) else {}
        maps: dict[str, np.ndarray] = {"image_small": _small(image, cfg.thumb_size)}
        rank = {c: i for i, c in enumerate(labels)}
        for exp in results:
            key = f"{exp.method}/{exp.label}"
            heat = exp.heatmap
            maps[key] = heat.astype(np.float16)
            r, c = exp.peak()
            orow, ocol = fit.to_original(r, c)
            row: dict[str, Any] = {
                "image": out.name, "image_id": out.id, "index": out.index,
                "true_label": out.true_label, "rank": rank[exp.label], "label": int(exp.label),
                "label_name": exp.label_name, "probability": float(probs[exp.label]),
                "method": exp.method, "peak_row": int(orow), "peak_col": int(ocol),
                "peak_input_row": int(r), "peak_input_col": int(c),
                "deletion_auc": None, "random_deletion_auc": None,
                "pointing_hit": None, "mass_in_mask": None, "mask_iou": None,
                "r2": None if exp.r2 is None else float(exp.r2),
                # its thumbnail's colours, one scale per method: blue-white-red when the method
                # can give negative values, else one-sided (viridis)
                "map_signed": bool(get_method(exp.method).signed),
                "seed": seed,
                "frame": out.frame, "time": out.time,
            }
            if key in deletion:
                row["deletion_auc"], row["random_deletion_auc"] = deletion[key]
            if mask is not None:
                from explainers.metrics import mask_iou, pointing_game

                pos = np.maximum(heat.astype(np.float64), 0.0)
                total = float(pos.sum())
                row["pointing_hit"] = bool(pointing_game(heat, mask))
                row["mass_in_mask"] = float(pos[mask].sum() / total) if total > 0 else 0.0
                row["mask_iou"] = float(mask_iou(heat, mask))
            out.rows.append(row)
            limit = float(np.max(np.abs(heat))) or 1.0
            small = maps["image_small"]
            tint = overlay(small, heat, limit=limit, positive_only=not row["map_signed"])
            out.thumbs[f"{exp.method}_{exp.label}"] = _png(tint)
        if mask is not None:
            maps["mask"] = mask
        buf = io.BytesIO()
        np.savez(buf, **maps)  # float16 noise barely compresses; zlib cost ~15 ms per image
        out.maps_npz = buf.getvalue()

    def _deletion(self, ctx: Any, results: Sequence[Any], labels: list[int]) -> dict[str, tuple[float, float]]:
        """Deletion AUC of every (method, label) and the random baseline per label, from one
        ``predict_coalitions`` call per image (shared rows: the image, the empty image, the
        random orders, and every perturbation row already predicted)."""
        from explainers.metrics import auc, curve_coalitions, predict_coalitions, ranking, segment_scores, step_counts
        from explainers.perturbation import PerturbationRun

        cfg = self.config
        run = ctx.cache.get("perturbations")
        if run is None:
            run = PerturbationRun(self.clf.predict, ctx.image, ctx.segments(), fill=cfg.fill,
                                  seed=ctx.seed, batch_size=32)
        m = run.num_segments
        counts = step_counts(m, int(cfg.deletion_steps))
        blocks: list[tuple[str, np.ndarray]] = []
        for exp in results:
            order = ranking(segment_scores(exp, run.segments))
            blocks.append((f"{exp.method}/{exp.label}", curve_coalitions(order, counts, "deletion")))
        for r in range(int(cfg.random_orders)):
            order = np.random.default_rng([ctx.seed, _DELETION_KEY, r]).permutation(m)
            blocks.append((f"random {r}", curve_coalitions(order, counts, "deletion")))
        Z = np.concatenate([b for _, b in blocks])
        Y, _ = predict_coalitions(run, Z)
        fr = counts / m
        curves: dict[str, np.ndarray] = {}
        at = 0
        for name, rows in blocks:
            curves[name] = Y[at : at + len(rows)]
            at += len(rows)
        out: dict[str, tuple[float, float]] = {}
        for exp in results:
            c = int(exp.label)
            rand = float(np.mean([auc(fr, curves[f"random {r}"][:, c]) for r in range(int(cfg.random_orders))]))
            out[f"{exp.method}/{exp.label}"] = (auc(fr, curves[f"{exp.method}/{exp.label}"][:, c]), rand)
        return out


__all__ = ["AuditConfig", "AuditWorker", "Outcome", "DEFAULT_METHODS", "image_id", "image_seed"]
