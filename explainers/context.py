"""What one explanation request shares between methods: the image, its prediction, its
superpixels and the perturbation pass.

LIME and KernelSHAP (and the trust metrics) ask the context for ``perturbations()`` and get the
same ``PerturbationRun``, so running both costs one set of model calls. CAM methods share one
forward/backward through ``cache``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from explainers.base import Cancelled, ExplainerError, ProgressFn

FILLS = ("mean", "blur", "gray", "black")


@dataclass(frozen=True)
class SamplingParams:
    """Parameters of the shared perturbation pass (LIME, KernelSHAP, trust metrics)."""

    samples: int = 1000
    fill: str = "mean"  # mean | blur | gray | black | #rrggbb
    batch_size: int = 32

    def validate(self) -> None:
        if not 8 <= int(self.samples) <= 100_000:
            raise ExplainerError("samples must be between 8 and 100000")
        if self.fill not in FILLS and not _is_hex_colour(self.fill):
            raise ExplainerError(
                f"fill must be one of {', '.join(FILLS)} or a colour like #808080, not {self.fill!r}"
            )
        if not 1 <= int(self.batch_size) <= 1024:
            raise ExplainerError("batch size must be between 1 and 1024")


def _is_hex_colour(value: str) -> bool:
    value = str(value)
    if len(value) != 7 or not value.startswith("#"):
        return False
    try:
        int(value[1:], 16)
    except ValueError:
        return False
    return True


class ExplainContext:
    """One image + one classifier + shared intermediate results for any number of methods."""

    def __init__(
        self,
        classifier: Any,
        image: np.ndarray,
        *,
        seed: int = 0,
        segmentation: str = "quickshift",
        segmentation_params: Any = None,
        sampling: SamplingParams | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ExplainerError(f"expected an RGB uint8 image (H, W, 3), got {image.shape} {image.dtype}")
        if classifier.input_size is not None and tuple(image.shape[:2]) != tuple(classifier.input_size):
            raise ExplainerError(
                f"the image is {image.shape[0]}×{image.shape[1]}; resize it to the model input "
                f"{classifier.input_size[0]}×{classifier.input_size[1]} first"
            )
        self.classifier = classifier
        self.image = image
        self.seed = int(seed)
        self.segmentation = segmentation
        self.segmentation_params = segmentation_params
        self.sampling = sampling or SamplingParams()
        self.sampling.validate()
        self.progress = progress
        self.cache: dict[Any, Any] = {}

    # -------------------------------------------------------------- shared results
    def probabilities(self) -> np.ndarray:
        """The model's probabilities for the unperturbed image (C,)."""
        if "probs" not in self.cache:
            self.cache["probs"] = self.classifier.predict(self.image[None])[0]
        return self.cache["probs"]

    def top_labels(self, k: int) -> list[int]:
        probs = self.probabilities()
        return [int(i) for i in np.argsort(-probs, kind="stable")[: max(1, int(k))]]

    def label_name(self, label: int) -> str:
        labels = self.classifier.labels
        return labels[label] if 0 <= label < len(labels) else f"class {label}"

    def segments(self) -> np.ndarray:
        """Superpixels of the image (H, W) int32, ids 0..M-1."""
        if "segments" not in self.cache:
            from explainers.segmentation import segment

            self.report(0, 1, "segmentation")  # skimage cannot report inside; cancel before it
            self.cache["segments"] = segment(
                self.image, self.segmentation, self.segmentation_params
            )
            self.report(1, 1, "segmentation")
        return self.cache["segments"]

    def perturbations(self, samples: int | None = None):
        """The shared ``PerturbationRun``, extended to ``samples`` rows (default: sampling.samples)."""
        from explainers.perturbation import PerturbationRun

        run = self.cache.get("perturbations")
        if run is None:
            run = PerturbationRun(
                self.classifier.predict,
                self.image,
                self.segments(),
                fill=self.sampling.fill,
                seed=self.seed,
                batch_size=self.sampling.batch_size,
            )
            self.cache["perturbations"] = run
        run.extend(int(samples or self.sampling.samples), progress=self.progress)
        if run.n and "probs" not in self.cache:
            self.cache["probs"] = run.Y[0]  # row 0 is the unperturbed image: no extra call
        return run

    def perturbation_rows(self):
        """(run, rows, new_calls) for LIME / KernelSHAP: the shared run extended to the requested
        samples, exactly those first rows (a run extended earlier, e.g. by "more samples" or the
        trust metrics, must not change a result cached under a smaller N; the first N rows of a
        run are a fresh N-row run), and the model calls this request added."""
        before = self.perturbation_calls()
        run = self.perturbations()
        return run, run.rows(int(self.sampling.samples)), int(run.model_calls) - before

    def perturbation_calls(self) -> int:
        """Images the shared perturbation run has sent to the model so far (0 before it exists)."""
        run = self.cache.get("perturbations")
        return int(run.model_calls) if run is not None else 0

    def report(self, done: int, total: int, stage: str) -> None:
        """Forward progress to the caller's callback (which may raise ``Cancelled``)."""
        if self.progress is not None:
            self.progress(done, total, stage)


def resolve_labels(ctx: ExplainContext, labels: Sequence[int] | None, top_k: int = 1) -> list[int]:
    """Explicit labels (validated) or the top-k predicted ones."""
    if labels is None:
        return ctx.top_labels(top_k)
    out = []
    for label in labels:
        label = int(label)
        if not 0 <= label < ctx.classifier.num_classes:
            raise ExplainerError(
                f"label {label} is out of range; the model has {ctx.classifier.num_classes} classes"
            )
        out.append(label)
    return out


__all__ = ["ExplainContext", "SamplingParams", "resolve_labels", "Cancelled", "FILLS"]
