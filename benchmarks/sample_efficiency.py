"""How accurate is each estimator for a given number of model calls?

Why: speed per sample is half the story; the other half is how many samples an estimator needs.
XAI Lens takes its perturbations as a sample stratified by coalition size, without repeats, in
complement pairs, weighted by Horvitz–Thompson (see ``explainers.perturbation``), and its
KernelSHAP fits one intercept per coalition size (``explainers.kernel_shap``). This script
measures the error of each estimator against a reference at N = 250, 500, 1000 samples over
several seeds:

* ``xai-lens kernel_shap`` and ``shap KernelExplainer`` (``l1_reg=False``, background = every
  superpixel hidden) against the reference Shapley values;
* ``xai-lens lime`` and the ``lime`` package (``LimeImageExplainer``) against the reference
  LIME surrogate (lime's objective: its kernel-weighted ridge over uniform coalitions);
* the same two XAI Lens rows with ``[λ=1]``: the design of a request for KernelSHAP alone
  (``kernel_share=1`` and, since 2026-12-06, the Bayesian-quadrature order of
  ``explainers.quadrature``: the design follows the requested methods, ``ExplainContext.plan``
  and ``perturbation.design_sampler``), and with ``[λ=0]``: what LIME alone gets. ``[λ=1, …,
  stratified]``: KernelSHAP's default estimator on the stratified λ = 1 rows it had before.
  The plain rows are the design of a request for both (``KERNEL_SHARE``).

References: with ``--quick`` (and whenever 2^M coalitions fit in ``--reference-samples``) the
superpixels are a coarse 3×4 grid and the reference is exact: every one of the 2^12 coalitions is
evaluated (exact Shapley values; the LIME reference is lime's objective over all coalitions).
Otherwise (quickshift, about 35 superpixels) no exact value exists, and a reference built by
one of the contestants would favour it, so each reference is the mean of two independent
estimates at ``--reference-samples`` (20 000) rows, with seeds no compared run uses: Shapley
values = mean of XAI Lens KernelSHAP (``kernel_share=1``) and shap's KernelExplainer; LIME =
mean of XAI Lens LIME and the lime package itself. The report gives the distance between the
two halves of each reference (its own noise is about half of it).

All estimators see the same model on the same image with the same superpixels and the same
fill (each segment's mean colour, lime's default, byte-identical to lime's rendering). The model
is deterministic, so predictions are memoised per coalition: a coalition predicted once (by the
reference or by another estimator) is not predicted again. This changes no estimate, only the
running time. Metrics, per label then averaged over the top-k labels: relative L2 error
``‖φ − φ_ref‖ / ‖φ_ref‖`` and Spearman rank correlation with the reference; mean ± standard
deviation over seeds.

Usage: ``python benchmarks/sample_efficiency.py [--quick] [--json] [--cache predictions.npz]``
(``--cache`` keeps the memoised predictions between runs).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")  # lime's progress bar
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

REFERENCE_SEED = 10_007
VARIANT_SHARE = 1.0  # the [λ=1] rows: the design tilted fully towards KernelSHAP (KernelSHAP alone)
LIME_ALONE_SHARE = 0.0  # the [λ=0] rows: the design of a request for LIME alone


def _default_surrogate() -> str:
    """KernelShapParams.surrogate's default (the registered params are the one source): the
    target rows use it."""
    from explainers.kernel_shap import KernelShapParams

    return KernelShapParams().surrogate


DEFAULT_SURROGATE = _default_surrogate()
TARGET = "xai-lens kernel_shap at 500 samples at least as accurate as shap KernelExplainer at 1000"


class Oracle:
    """The model's probabilities of the explained labels for coalitions, memoised per coalition.

    ``predict_images`` decodes which superpixels an image shows (those whose every pixel equals
    the original), so lime and our engine can call it with images.
    """

    def __init__(self, classifier: Any, image: np.ndarray, segments: np.ndarray, labels: list[int]) -> None:
        from explainers.perturbation import fill_image

        self.clf, self.image, self.segments, self.labels = classifier, image, segments, labels
        self.m = int(segments.max()) + 1
        self.fill = fill_image(image, segments, "mean")
        self.cache: dict[bytes, np.ndarray] = {}
        self.model_calls = 0
        self.asked: set[bytes] = set()  # distinct coalitions requested since the last reset
        order = np.argsort(segments.ravel(), kind="stable")
        self._order = order
        self._starts = np.searchsorted(segments.ravel()[order], np.arange(self.m))

    def values(self, Z: np.ndarray) -> np.ndarray:
        """(n, L) probabilities of the labels for coalitions ``Z`` (n, M)."""
        from explainers.perturbation import render

        Z = np.asarray(Z) > 0.5
        keys = [k.tobytes() for k in np.packbits(Z, axis=1)]
        self.asked.update(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if missing:
            first = {}
            for i, k in enumerate(keys):
                first.setdefault(k, i)
            rows = np.array([first[k] for k in missing])
            for start in range(0, len(rows), 32):
                chunk = rows[start : start + 32]
                probs = self.clf.predict(render(self.image, self.fill, self.segments, Z[chunk]))
                self.model_calls += len(chunk)
                for i, p in zip(chunk, probs[:, self.labels]):
                    self.cache[keys[i]] = p
        return np.stack([self.cache[k] for k in keys]).astype(np.float32)

    def load(self, path: str) -> None:
        """Predictions memoised by an earlier run on the same model, image, segments and labels."""
        if not os.path.exists(path):
            return
        data = np.load(path)
        if (data["labels"].tolist() != list(self.labels) or data["m"] != self.m
                or not np.array_equal(data["segments"], self.segments)):
            return  # another setup: ignore it
        for key, value in zip(data["keys"], data["values"]):
            self.cache[key.tobytes()] = value

    def save(self, path: str) -> None:
        keys = np.array([np.frombuffer(k, dtype=np.uint8) for k in self.cache])
        values = np.array(list(self.cache.values()), dtype=np.float32)
        np.savez(path, keys=keys, values=values, labels=np.array(self.labels), m=self.m, segments=self.segments)

    def coalitions(self, images: np.ndarray) -> np.ndarray:
        same = (np.asarray(images) == self.image[None]).all(-1).reshape(len(images), -1)
        return np.logical_and.reduceat(same[:, self._order], self._starts, axis=1)

    def predict_images(self, images: np.ndarray) -> np.ndarray:
        return self.values(self.coalitions(images))


# ---------------------------------------------------------------------- estimators
def ours(oracle: Oracle, seed: int, sizes: list[int], kernel_share: float | None = None,
         surrogates: tuple[str, ...] = ("none",), sampler: str | None = None, lime: bool = True,
         ) -> dict[int, tuple[dict[str, np.ndarray], np.ndarray | None, int]]:
    """{N: ({surrogate: KernelSHAP values (L, M)}, LIME coefficients (L, M), distinct coalitions)}
    from one run and its prefixes (a run's first N rows are exactly a fresh N-row run).

    ``surrogates``: "none" = plain KernelSHAP, "kernel" / "trees" / "pairwise" = regression-adjusted
    (``explainers.shapley_adjust``; "trees:within-size" = the trees' alternative target, ``_surrogate``); ``sampler="leverage"``: Leverage SHAP's design, weighted by
    inverse inclusion probabilities."""
    from explainers.lime import fit_lime
    from explainers.perturbation import KERNEL_SHARE, PerturbationRun, design_sampler
    from explainers.shapley_adjust import fit_adjusted_shap

    share = KERNEL_SHARE if kernel_share is None else kernel_share
    sampler = design_sampler(share) if sampler is None else sampler  # as ExplainContext picks it
    run = PerturbationRun(oracle.predict_images, oracle.image, oracle.segments, fill="mean", seed=seed,
                          kernel_share=share, sampler=sampler)
    run.extend(max(sizes))
    if run.exhaustive:
        raise SystemExit("the sizes reach 2^M: every estimator would be exact; use more superpixels")
    out = {}
    for n in sizes:
        rows = run.rows(n)
        shap_v = {s: np.array([fit_adjusted_shap(rows.Z, rows.Y[:, j], rows.shapley_weight, rows.Y[0, j],
                                                 rows.Y[1, j], seed=seed, **_surrogate(s)).values
                               for j in range(len(oracle.labels))]) for s in surrogates}
        lime_v = (np.array([fit_lime(rows.Z, rows.Y[:, j], rows.lime_ratio, seed=seed).coef
                            for j in range(len(oracle.labels))]) if lime else None)
        distinct = len(np.unique(np.packbits(rows.Z, axis=1), axis=0))
        out[n] = (shap_v, lime_v, distinct)
    return out


def _surrogate(name: str) -> dict:
    """``fit_adjusted_shap`` options of a surrogate row: "kernel" (the default estimator), "trees" or
    "trees:within-size" (the trees learn the residual within each coalition size)."""
    kind, _, target = name.partition(":")
    return {"surrogate": kind, **({"target": target} if target else {})}


def lime_package(oracle: Oracle, seed: int, n: int) -> np.ndarray:
    from lime import lime_image

    k = len(oracle.labels)
    exp = lime_image.LimeImageExplainer(random_state=seed).explain_instance(
        oracle.image, oracle.predict_images, labels=tuple(range(k)), top_labels=None,
        num_samples=n, batch_size=32, segmentation_fn=lambda _: oracle.segments, hide_color=None,
        random_seed=seed,
    )
    out = np.zeros((k, oracle.m))
    for j in range(k):
        for feature, weight in exp.local_exp[j]:
            out[j, feature] = weight
    return out


def shap_kernel(oracle: Oracle, seed: int, n: int) -> np.ndarray:
    import shap

    np.random.seed(seed)  # KernelExplainer samples with numpy's global generator
    explainer = shap.KernelExplainer(oracle.values, np.zeros((1, oracle.m)))
    values = explainer.shap_values(np.ones((1, oracle.m)), nsamples=n, l1_reg=False, silent=True)
    values = np.asarray(values)
    if values.shape == (len(oracle.labels), 1, oracle.m):  # older shap: a list per output
        return values[:, 0, :]
    return values.reshape(oracle.m, len(oracle.labels)).T  # (1, M, L) → (L, M)


# ---------------------------------------------------------------------- metrics
def errors(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean over labels of the relative L2 error and of the Spearman correlation."""
    from scipy.stats import spearmanr

    rel = [np.linalg.norm(e - r) / np.linalg.norm(r) for e, r in zip(estimate, reference)]
    rho = [spearmanr(e, r).statistic for e, r in zip(estimate, reference)]
    return float(np.mean(rel)), float(np.mean(rho))


def shapley_values(rows: Any, top_k: int) -> np.ndarray:
    from explainers.kernel_shap import fit_kernel_shap

    return np.array([fit_kernel_shap(rows.Z, rows.Y[:, j], rows.shapley_weight, rows.Y[0, j], rows.Y[1, j]).values
                     for j in range(top_k)])


def lime_coefficients(rows: Any, top_k: int) -> np.ndarray:
    from explainers.lime import fit_lime

    return np.array([fit_lime(rows.Z, rows.Y[:, j], rows.lime_ratio).coef for j in range(top_k)])


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over labels of ‖a − b‖ / ‖(a + b) / 2‖."""
    return float(np.mean([np.linalg.norm(x - y) / np.linalg.norm((x + y) / 2) for x, y in zip(a, b)]))


def references(oracle: Oracle, top_k: int, reference_samples: int) -> tuple[np.ndarray, np.ndarray, str, dict]:
    """(Shapley reference (L, M), LIME reference (L, M), description, agreement of the halves)."""
    from explainers.perturbation import KERNEL_SHARE, PerturbationRun

    m = oracle.m
    if 2**m <= reference_samples:  # every coalition: exact
        run = PerturbationRun(oracle.predict_images, oracle.image, oracle.segments, fill="mean", seed=REFERENCE_SEED)
        rows = run.extend(2**m).rows()
        assert rows.exhaustive
        return shapley_values(rows, top_k), lime_coefficients(rows, top_k), f"exact: all {2**m} coalitions", {}
    n = reference_samples
    ks_run = PerturbationRun(oracle.predict_images, oracle.image, oracle.segments, fill="mean",
                             seed=REFERENCE_SEED, kernel_share=VARIANT_SHARE).extend(n)
    ours_shap = shapley_values(ks_run.rows(), top_k)
    theirs_shap = shap_kernel(oracle, REFERENCE_SEED, n)
    lime_run = PerturbationRun(oracle.predict_images, oracle.image, oracle.segments, fill="mean",
                               seed=REFERENCE_SEED, kernel_share=KERNEL_SHARE).extend(n)
    ours_lime = lime_coefficients(lime_run.rows(), top_k)
    theirs_lime = lime_package(oracle, REFERENCE_SEED, n)
    agreement = {"shapley_halves_rel_distance": distance(ours_shap, theirs_shap),
                 "lime_halves_rel_distance": distance(ours_lime, theirs_lime)}
    text = (f"mean of two independent {n}-row estimates (seed {REFERENCE_SEED}): Shapley = xai-lens "
            f"kernel_shap [λ=1] + shap KernelExplainer (they differ by "
            f"{agreement['shapley_halves_rel_distance']:.3f}); LIME = xai-lens lime + lime package "
            f"(differ by {agreement['lime_halves_rel_distance']:.3f})")
    return (ours_shap + theirs_shap) / 2, (ours_lime + theirs_lime) / 2, text, agreement


def run(quick: bool, sizes: list[int], seeds: list[int], top_k: int, reference_samples: int,
        model_id: str | None, cache: str | None = None, surrogates: tuple[str, ...] = ("trees",),
        leverage: bool = True) -> dict:
    from skimage.data import chelsea

    from explainers.segmentation import segment
    from model_zoo.registry import load_classifier, prepare_image

    started = time.perf_counter()
    clf = load_classifier(model_id or "efficientnet-lite0")
    image = np.array(prepare_image(clf, chelsea(), policy="crop").image)
    if quick:
        segments = segment(image, "grid", {"rows": 3, "cols": 4})
        segmentation = "grid 3×4"
    else:
        segments = segment(image, "quickshift")
        segmentation = "quickshift (lime's defaults)"
    labels = [int(i) for i in np.argsort(-clf.predict(image[None])[0], kind="stable")[:top_k]]
    oracle = Oracle(clf, image, segments, labels)
    if cache:
        oracle.load(cache)
    m = oracle.m

    ref_shap, ref_lime, reference, agreement = references(oracle, top_k, reference_samples)
    if cache:
        oracle.save(cache)

    table: dict[tuple[str, int], list[tuple[float, float, int]]] = {}

    def peer(fn, seed: int, n: int, reference: np.ndarray) -> tuple[float, float, int]:
        oracle.asked = set()
        return (*errors(fn(oracle, seed, n), reference), len(oracle.asked))

    every_surrogate = tuple(dict.fromkeys(("none", DEFAULT_SURROGATE, *surrogates)))  # the default always
    for seed in seeds:
        for share, tag in ((None, ""), (VARIANT_SHARE, f" [λ={VARIANT_SHARE:g}]"),
                           (LIME_ALONE_SHARE, f" [λ={LIME_ALONE_SHARE:g}]")):
            kinds = every_surrogate if share != LIME_ALONE_SHARE else ()
            for n, (s_values, l_values, distinct) in ours(oracle, seed, sizes, share, kinds).items():
                for kind, values in s_values.items():
                    label = tag if kind == "none" else (f"{tag[:-1]}, {kind}]" if tag else f" [{kind}]")
                    table.setdefault((f"xai-lens kernel_shap{label}", n), []).append(
                        (*errors(values, ref_shap), distinct))
                table.setdefault((f"xai-lens lime{tag}", n), []).append((*errors(l_values, ref_lime), distinct))
        # the stratified λ = 1 rows KernelSHAP alone got until 2026-12-06 (it now gets the quadrature order)
        for n, (s_values, _, distinct) in ours(oracle, seed, sizes, VARIANT_SHARE, (DEFAULT_SURROGATE,), "stratified",
                                               lime=False).items():
            for kind, values in s_values.items():
                table.setdefault((f"xai-lens kernel_shap [λ={VARIANT_SHARE:g}, {kind}, stratified]", n), []).append(
                    (*errors(values, ref_shap), distinct))
        if leverage:  # Leverage SHAP: its own design (nested Bernoulli order, inverse-inclusion weights)
            for n, (s_values, _, distinct) in ours(oracle, seed, sizes, 1.0, every_surrogate, "leverage",
                                                   lime=False).items():
                for kind, values in s_values.items():
                    label = " [leverage]" if kind == "none" else f" [leverage, {kind}]"
                    table.setdefault((f"xai-lens kernel_shap{label}", n), []).append(
                        (*errors(values, ref_shap), distinct))
        for n in sizes:
            table.setdefault(("shap KernelExplainer", n), []).append(peer(shap_kernel, seed, n, ref_shap))
            table.setdefault(("lime LimeImageExplainer", n), []).append(peer(lime_package, seed, n, ref_lime))
        if cache:
            oracle.save(cache)

    rows_out = []
    for (name, n), values in table.items():
        rel = np.array([v[0] for v in values])
        rho = np.array([v[1] for v in values])
        rows_out.append({
            "estimator": name, "target": "Shapley values" if "shap" in name else "LIME surrogate",
            "samples": n, "rel_l2_mean": float(rel.mean()), "rel_l2_std": float(rel.std()),
            "spearman_mean": float(rho.mean()), "seeds": len(values),
            "distinct_calls_mean": float(np.mean([v[2] for v in values])),
        })
    rows_out.sort(key=lambda r: (r["target"], r["estimator"], r["samples"]))
    def find(name: str, n: int) -> dict | None:
        return next((r for r in rows_out if r["estimator"] == name and r["samples"] == n), None)

    adopted = f", {DEFAULT_SURROGATE}]" if DEFAULT_SURROGATE != "none" else "]"
    ours500 = find("xai-lens kernel_shap" + (f" [{DEFAULT_SURROGATE}]" if DEFAULT_SURROGATE != "none" else ""), 500)
    shap1000 = find("shap KernelExplainer", 1000)
    target = None
    if ours500 and shap1000:
        variant = find(f"xai-lens kernel_shap [λ={VARIANT_SHARE:g}{adopted}", 500)
        target = {"text": TARGET, "ours_500": ours500["rel_l2_mean"], "shap_1000": shap1000["rel_l2_mean"],
                  "met": ours500["rel_l2_mean"] <= shap1000["rel_l2_mean"],
                  "ours_500_variant": variant["rel_l2_mean"] if variant else None}
    if target is not None and target["ours_500_variant"] is not None:
        target["met_kernel_shap_alone"] = target["ours_500_variant"] <= target["shap_1000"]
    if target is not None:  # the opt-in surrogates (KernelShapParams.surrogate) against the same bar
        target["surrogates"] = {}
        for kind in surrogates:
            if kind == DEFAULT_SURROGATE:
                continue
            shared, alone = find(f"xai-lens kernel_shap [{kind}]", 500), find(f"xai-lens kernel_shap [λ={VARIANT_SHARE:g}, {kind}]", 500)
            target["surrogates"][kind] = {"with_lime": shared["rel_l2_mean"] if shared else None,
                                          "alone": alone["rel_l2_mean"] if alone else None}
    lime_check = {}
    for n in sizes:
        ours_lime, theirs = find("xai-lens lime", n), find("lime LimeImageExplainer", n)
        alone = find(f"xai-lens lime [λ={LIME_ALONE_SHARE:g}]", n)
        if ours_lime and theirs:
            lime_check[n] = {"ours": ours_lime["rel_l2_mean"], "lime": theirs["rel_l2_mean"],
                             "at_least_as_good": ours_lime["rel_l2_mean"] <= theirs["rel_l2_mean"],
                             "ours_alone": alone["rel_l2_mean"] if alone else None}
    return {
        "model": clf.id, "labels": [clf.labels[i] for i in labels], "segmentation": segmentation,
        "num_segments": m, "reference": reference, "seeds": seeds, "sizes": sizes,
        "reference_agreement": agreement,
        "model_calls": oracle.model_calls, "coalitions": len(oracle.cache),
        "seconds": time.perf_counter() - started,
        "rows": rows_out, "target": target, "lime_check": lime_check,
    }


def format_report(report: dict) -> str:
    lines = [
        f"model {report['model']}; labels {', '.join(report['labels'])}; {report['num_segments']} "
        f"superpixels ({report['segmentation']}); reference: {report['reference']}",
        f"seeds {report['seeds']}; {report.get('coalitions', report['model_calls'])} distinct coalitions "
        f"predicted ({report['model_calls']} in this run, the rest from --cache) in {report['seconds']:.0f} s "
        "(predictions memoised per coalition)",
        "",
    ]
    header = ("TARGET", "ESTIMATOR", "N", "DISTINCT", "REL. L2 ERROR", "SPEARMAN")
    rows = [header]
    for r in report["rows"]:
        rows.append((r["target"], r["estimator"], str(r["samples"]), f"{r['distinct_calls_mean']:.0f}",
                     f"{r['rel_l2_mean']:.3f} ± {r['rel_l2_std']:.3f}", f"{r['spearman_mean']:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    t = report["target"]
    if t:
        lines += ["", f"Target: {t['text']} (estimator [{DEFAULT_SURROGATE}]): {t['ours_500']:.3f} vs {t['shap_1000']:.3f} "
                      f"({'met' if t['met'] else 'NOT met'})"]
        if t.get("ours_500_variant") is not None:
            lines.append(f"  KernelSHAP requested alone (design λ={VARIANT_SHARE:g}): {t['ours_500_variant']:.3f} "
                         f"({'met' if t.get('met_kernel_shap_alone') else 'NOT met'})")
        for kind, v in t.get("surrogates", {}).items():
            parts = [f"{what} {v[key]:.3f} ({'met' if v[key] <= t['shap_1000'] else 'NOT met'})"
                     for what, key in (("with LIME", "with_lime"), (f"alone (λ={VARIANT_SHARE:g})", "alone"))
                     if v.get(key) is not None]
            if parts:
                lines.append(f"  with surrogate={kind} at 500: " + "; ".join(parts))
    for n, c in report.get("lime_check", {}).items():
        alone = f"; LIME alone (λ={LIME_ALONE_SHARE:g}) {c['ours_alone']:.3f}" if c.get("ours_alone") is not None else ""
        lines.append(f"LIME at N={n}: xai-lens {c['ours']:.3f} vs lime {c['lime']:.3f} "
                     f"({'at least as good' if c['at_least_as_good'] else 'WORSE'}){alone}")
    lines.append("N: samples asked for (our rows, lime num_samples, shap nsamples). DISTINCT: distinct "
                 "coalitions among them: xai-lens never repeats one (N rows = N model calls); lime and "
                 "shap pay N calls (a memo here spares the repeats, which changes no estimate). "
                 "xai-lens kernel_shap without a surrogate in brackets: plain KernelSHAP (surrogate='none'); "
                 f"the default estimator is [{DEFAULT_SURROGATE}] (KernelShapParams.surrogate); "
                 "[kernel]: regression-adjusted by a Hamming-kernel ridge surrogate; "
                 "[trees]: by a boosted-tree surrogate (KernelShapParams.surrogate='trees'); "
                 "[trees:within-size]: the trees learn the residual within each size; "
                 "[leverage]: Leverage SHAP's design and weights; [λ=1]: KernelSHAP alone's design "
                 "(the quadrature order), [λ=1, …, stratified]: the stratified rows it had before.")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3×4 grid superpixels, exact reference, 20 seeds (the grid's 4096 predictions are memoised)")
    parser.add_argument("--sizes", default="250,500,1000", help="sample sizes N (default 250,500,1000)")
    parser.add_argument("--seeds", help="comma-separated seeds (default 0..4, or 0..19 with --quick)")
    parser.add_argument("--top-k", type=int, default=3, help="labels explained (default 3)")
    parser.add_argument("--reference-samples", type=int, default=20_000,
                        help="rows of the sampled reference (default 20000); exact when 2^M fits")
    parser.add_argument("--model", help="model id (default efficientnet-lite0, the bundled model)")
    parser.add_argument("--cache", help="npz file keeping the memoised predictions between runs")
    parser.add_argument("--surrogates", default="trees",
                        help="KernelSHAP rows besides plain and the default estimator (kernel): "
                             "trees,trees:within-size,pairwise or none (default trees; trees:within-size = the "
                             "residual within each size; pairwise equals plain on complement pairs)")
    parser.add_argument("--no-leverage", action="store_true", help="skip the Leverage SHAP rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    seeds = _ints(args.seeds) if args.seeds else list(range(20 if args.quick else 5))
    sizes = sorted(_ints(args.sizes))
    if not sizes or min(sizes) < 8 or args.top_k < 1 or not seeds:
        parser.error("sizes must be ≥ 8, --top-k ≥ 1 and at least one seed given")
    warnings.filterwarnings("ignore")
    surrogates = tuple(x for x in args.surrogates.split(",") if x.strip() and x.strip() != "none")
    report = run(args.quick, sizes, seeds, args.top_k, args.reference_samples, args.model, args.cache,
                 surrogates, not args.no_leverage)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
