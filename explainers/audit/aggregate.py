"""The audit's answer: per-class mean maps, accuracy, confusion pairs, strategy clusters, flags.

*Strategy clusters* (in the spirit of Spectral Relevance Analysis, Lapuschkin et al. 2019):
within each predicted class, the first method's maps (Grad-CAM by default) are normalised
(positive part, unit sum: *where* the model looks, not how strongly), downsampled to a
``GRID``×``GRID`` grid and clustered by spectral clustering (scikit-learn) on a self-tuning
RBF affinity (each map's scale is its distance to its 7th nearest neighbour). The number of
clusters comes from the data: the largest eigengap of the normalised graph Laplacian, kept only when the clusters it gives are
separated (silhouette ≥ ``MIN_SILHOUETTE``), else one cluster. A model that predicts *horse*
from a copyright tag in a corner shows a separate "corner" cluster.

Flags per row: ``misclassified`` (the top label is not the true one), ``unfaithful`` (deleting
the map's regions first lowers the probability no faster than a random order: deletion AUC ≥
random deletion AUC), ``outside_mask`` (the map's strongest point lies outside the object
mask: a pointing-game miss; the share of the map's mass inside the mask is kept as a column but
does not decide the flag, because a coarse map's faint, wide background outweighs a small object
even when the map points right at it), ``low_fit`` (a surrogate's R² below ``LOW_FIT_R2``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

GRID = 16
MAX_CLUSTERS = 6
MIN_SILHOUETTE = 0.15
LOW_FIT_R2 = 0.3
TYPICAL = 4
NEIGHBOUR = 7
WORST_FOLDERS = 5  # folders named in the accuracy line
HOT = 0.7  # a map's "where" in words: its brightest part, at or above this share of its peak
# (what the viridis scale draws green to yellow; at 0.5 a broad mean map reads as "the centre")


@dataclass(frozen=True)
class Flag:
    """One per-image flag as a person reads it (gallery, summary, findings: this one wording)."""

    short: str  # a tag under a thumbnail
    meaning: str  # how it is decided
    finding: str  # "<n> images …" in the findings
    plain: str  # the tag in stakeholder mode (no statistics words)
    unchecked: str = ""  # what was not checked when nothing could be measured, and how to get it

    @property
    def title(self) -> str:
        return f"{self.short} ({self.meaning})"

    @property
    def plain_title(self) -> str:
        return f"{self.plain} ({self.meaning})"


FLAGS: dict[str, Flag] = {  # the one list of flags (columns, page, summary, findings), in this order
    "misclassified": Flag(
        "misclassified", "the top label is not the folder's label", "answered wrongly", "wrong answer",
        "whether the answers are right (give one folder per class, named after the model's classes)"),
    "unfaithful": Flag(
        "unfaithful", "hiding its strongest regions first lowers the answer no faster than hiding random ones",
        "with a picture that may not show what the model used", "picture may mislead",
        "whether the pictures show what the model used (the deletion curves were off)"),
    "outside_mask": Flag(
        "looks outside the mask", "the map's strongest point lies outside the object's mask",
        "answered from something outside the object", "looks away from the object",
        "whether the model looks at the object itself (give object masks or boxes)"),
    "low_fit": Flag("low fit", f"the surrogate's R² is below {LOW_FIT_R2}", "with a poorly fitting surrogate",
                    "poor fit"),
}


def normalised_map(heatmap: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Positive part, block-averaged to ``grid``×``grid`` (Pillow's box filter: each cell is
    the mean of the pixels whose centres it covers, so nothing aliases), scaled to unit sum
    (zeros stay 0). The clustering's feature per image; ~30× cheaper than the Gaussian
    anti-aliased resize used before, which was 43 % of the aggregation's time."""
    from PIL import Image

    pos = np.ascontiguousarray(np.maximum(np.asarray(heatmap, dtype=np.float32), 0.0))
    small = np.asarray(Image.fromarray(pos).resize((grid, grid), Image.Resampling.BOX), dtype=np.float64)
    total = small.sum()
    return (small / total if total > 0 else small).ravel()


def choose_clusters(x: np.ndarray, seed: int = 0, max_clusters: int = MAX_CLUSTERS) -> tuple[np.ndarray, float | None]:
    """Spectral clusters of the rows of ``x``: (labels numbered by size, silhouette or None)."""
    from scipy.spatial.distance import pdist, squareform
    from sklearn.cluster import SpectralClustering
    from sklearn.metrics import silhouette_score

    n = len(x)
    if n < 4:
        return np.zeros(n, dtype=int), None
    d = squareform(pdist(x))
    # Self-tuning affinity (Zelnik-Manor & Perona 2004): each map's scale is its distance to its
    # NEIGHBOUR-th nearest map, so tight groups stay apart even when one global scale would
    # connect them (a global median scale joined two clean halves of a class here).
    knn = min(NEIGHBOUR, n - 1)
    sigma = np.sort(d, axis=1)[:, knn]
    sigma = np.where(sigma > 0, sigma, max(float(d.max()), 1e-12) * 1e-3)
    affinity = np.exp(-(d ** 2) / (sigma[:, None] * sigma[None, :]))
    if not np.any(d > 0):
        return np.zeros(n, dtype=int), None
    deg = affinity.sum(axis=1)
    inv = 1.0 / np.sqrt(deg)
    lap = np.eye(n) - inv[:, None] * affinity * inv[None, :]
    kmax = min(int(max_clusters), n - 1)
    vals = np.linalg.eigvalsh(lap)[: kmax + 1]
    gaps = np.diff(vals)
    k = int(np.argmax(gaps)) + 1  # eigengap: k small eigenvalues, then a jump
    if k < 2:
        return np.zeros(n, dtype=int), None
    labels = SpectralClustering(
        n_clusters=k, affinity="precomputed", random_state=int(seed), assign_labels="cluster_qr"
    ).fit_predict(affinity)
    if len(set(labels)) < 2:
        return np.zeros(n, dtype=int), None
    sil = float(silhouette_score(x, labels))
    if sil < MIN_SILHOUETTE:
        return np.zeros(n, dtype=int), sil
    sizes = np.bincount(labels)
    order = np.argsort(-sizes, kind="stable")
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    return remap[labels], sil


def _norm(value: Any) -> str:
    return str(value).strip().lower()


def _is_wrong(true_label: Any, label: int, index: Mapping[str, int]) -> bool | None:
    """True / False against the true label; None without one, or when the true label names no
    class of the model at all (``index``: ``label_index``) — a folder named "cat" for a model
    whose classes are "tabby cat" and "tiger cat" says nothing about its accuracy."""
    if true_label is None or (isinstance(true_label, float) and np.isnan(true_label)):
        return None
    t = _norm(true_label)
    if t not in index:
        return None
    return index[t] != int(label)


def label_index(frame, manifest: Mapping[str, Any]) -> dict[str, int]:
    """Every name a folder may carry for a class of the model → its index: the class names (from
    the manifest; older manifests: the names predicted) and indices, and for an ImageNet-1k model
    its WordNet ids and unambiguous synonyms too (``model_zoo.imagenet.imagenet_aliases``)."""
    model = manifest.get("model", {})
    names = model.get("labels")
    index: dict[str, int] = {}
    if names:
        for i, n in enumerate(names):
            index.setdefault(_norm(n), i)
    else:
        for label, n in zip(frame["label"], frame["label_name"]):
            index.setdefault(_norm(n), int(label))
    index.update({str(i): i for i in range(int(model.get("classes") or 0))})
    if names and len(names) == 1000:
        from model_zoo.imagenet import ImageNetLabelsError, imagenet_aliases, imagenet_labels

        try:
            if list(names) == imagenet_labels():
                for alias, i in imagenet_aliases().items():
                    index.setdefault(alias, i)
        except ImageNetLabelsError:
            pass  # no synonyms without the package: the class names still match
    return index


def aggregate_results(store: Any, frame, manifest: Mapping[str, Any]):
    """Add ``cluster`` and the flags to ``frame``; write clusters.json and the class pictures.

    Returns (frame, clusters dict)."""
    import pandas as pd

    from explainers.audit.store import write_json
    from explainers.render import overlay

    params = manifest["params"]
    primary = params["methods"][0]
    seed = int(params["seed"])
    frame = frame.copy()
    top = frame[(frame["rank"] == 0) & (frame["method"] == primary)]
    index = label_index(frame, manifest)
    wrong = {r.image_id: _is_wrong(r.true_label, int(r.label), index) for r in top.itertuples()}
    frame["misclassified"] = frame["image_id"].map(wrong).astype(object)
    dele = pd.to_numeric(frame["deletion_auc"], errors="coerce")
    rand = pd.to_numeric(frame["random_deletion_auc"], errors="coerce")
    frame["unfaithful"] = np.where(dele.notna() & rand.notna(), dele >= rand, None).astype(object)
    hit = frame["pointing_hit"]
    frame["outside_mask"] = np.where(hit.notna(), hit.eq(False), None).astype(object)
    r2 = pd.to_numeric(frame["r2"], errors="coerce")
    frame["low_fit"] = np.where(r2.notna(), r2 < LOW_FIT_R2, None).astype(object)

    classes: dict[str, Any] = {}
    cluster_of: dict[str, int] = {}
    pictures = store.root / "aggregates"
    for label, group in top.groupby("label", sort=True):
        ids = list(group["image_id"])
        names = list(group["image"])
        feats, means, images = [], None, None
        for iid in ids:
            maps = store.load_maps(iid)
            heat = maps[f"{primary}/{int(label)}"].astype(np.float32)
            feats.append(normalised_map(heat))
            pos = np.maximum(heat, 0)
            pos = pos / pos.max() if pos.max() > 0 else pos
            means = pos if means is None else means + pos
            small = maps["image_small"].astype(np.float64)
            images = small if images is None else images + small
        x = np.stack(feats)
        labels, sil = choose_clusters(x, seed)
        mean_map = means / len(ids)
        mean_image = np.clip(np.round(images / len(ids)), 0, 255).astype(np.uint8)
        name = str(group["label_name"].iloc[0])
        from explainers.audit.process import _png, _small

        def picture(heat: np.ndarray, fname: str) -> str:
            from skimage.transform import resize

            up = resize(heat, mean_image.shape[:2], order=1, preserve_range=True)
            from explainers.audit.store import atomic_write

            atomic_write(pictures / fname, _png(overlay(mean_image, up, positive_only=True,
                                                         limit=float(up.max()) or 1.0)))
            return f"aggregates/{fname}"

        entry: dict[str, Any] = {
            "label": int(label), "name": name, "images": len(ids), "clusters": int(labels.max()) + 1,
            "silhouette": sil, "mean_map": picture(mean_map, f"class_{int(label)}_mean.png"),
            "where": where_words(mean_map),
            "mean_image": f"aggregates/class_{int(label)}_image.png", "cluster_list": [],
        }
        from explainers.audit.store import atomic_write

        atomic_write(pictures / f"class_{int(label)}_image.png", _png(mean_image))
        for c in range(int(labels.max()) + 1):
            members = np.flatnonzero(labels == c)
            centre = x[members].mean(axis=0)
            dist = np.linalg.norm(x[members] - centre, axis=1)
            typical = [names[members[i]] for i in np.argsort(dist, kind="stable")[:TYPICAL]]
            cmap = centre.reshape(GRID, GRID)
            entry["cluster_list"].append({
                "id": c, "size": int(len(members)), "share": round(len(members) / len(ids), 4),
                "typical": typical, "typical_ids": [ids[members[i]] for i in np.argsort(dist, kind="stable")[:TYPICAL]],
                "mean_map": picture(cmap, f"class_{int(label)}_cluster_{c}.png"),
                "where": where_words(cmap),
            })
            for i in members:
                cluster_of[ids[i]] = c
        classes[name] = entry
    frame["cluster"] = frame["image_id"].map(cluster_of).astype("Int64")

    labelled = top[top["true_label"].notna()]
    matched = labelled["true_label"].map(lambda t: _norm(t) in index).astype(bool)
    truth_rows = labelled[matched]
    unmatched = sorted({str(t) for t in labelled.loc[~matched, "true_label"]})
    accuracy = None
    confusion: list[dict[str, Any]] = []
    per_class: dict[str, float] = {}
    per_class_images: dict[str, int] = {}
    if len(truth_rows):
        ok = [not _is_wrong(r.true_label, int(r.label), index) for r in truth_rows.itertuples()]
        accuracy = float(np.mean(ok))
        tr = truth_rows.assign(ok=ok)
        per_class = {str(k): float(v) for k, v in tr.groupby("true_label")["ok"].mean().items()}
        per_class_images = {str(k): int(v) for k, v in tr.groupby("true_label")["ok"].size().items()}
        bad = tr[~tr["ok"]]
        for (t, p), n in bad.groupby(["true_label", "label_name"]).size().sort_values(ascending=False).items():
            confusion.append({"true": str(t), "predicted": str(p), "count": int(n)})
    shown = frame[(frame["rank"] == 0) & (frame["method"] == primary)]
    flags = {
        "misclassified": int(sum(1 for v in wrong.values() if v)),
        "unfaithful": int(shown["unfaithful"].eq(True).sum()),
        "outside_mask": int(shown["outside_mask"].eq(True).sum()),
        "low_fit": int(frame.loc[frame["rank"] == 0, "low_fit"].eq(True).sum()),
    }
    # a flag counted 0 because nothing could be measured (no masks, no deletion curves, no
    # folder labels, no surrogate) must not read as "none found"
    checked = {"misclassified": bool(len(truth_rows)), "unfaithful": bool(shown["unfaithful"].notna().any()),
               "outside_mask": bool(shown["outside_mask"].notna().any()),
               "low_fit": bool(frame.loc[frame["rank"] == 0, "low_fit"].notna().any())}
    result = {"method": primary, "grid": GRID, "accuracy": accuracy, "accuracy_per_class": per_class,
              "accuracy_per_class_images": per_class_images,
              "accuracy_images": int(len(truth_rows)),
              "unmatched_true_labels": unmatched, "unmatched_images": int((~matched).sum()),
              "confusion": confusion, "flags": flags, "flags_checked": checked, "images": int(len(top)),
              "classes": classes}
    write_json(store.root / "clusters.json", result)
    return frame, result


def where_words(heat: np.ndarray) -> str:
    """Where a map looks, in words ("the upper left", "the centre"): its part ≥ ``HOT`` × peak,
    each pixel weighted by how far it rises above that level, so the brightest part names the
    place (a mean map is broad: the middle of its extent is often not where it is strongest)."""
    from explainers.summary import where

    heat = np.maximum(np.asarray(heat, dtype=np.float64), 0.0)
    if not heat.max() > 0:
        return where(np.zeros(heat.shape, bool))
    level = HOT * heat.max()
    return where(heat >= level, weights=heat - level)


def accuracy_words(clusters: Mapping[str, Any]) -> str:
    """The accuracy line of the page and the summary report (one wording); "" without labels."""
    acc, unmatched = clusters.get("accuracy"), list(clusters.get("unmatched_true_labels") or [])
    shown = ", ".join(unmatched[:6]) + (", …" if len(unmatched) > 6 else "")
    if acc is None and unmatched:
        return (f"Accuracy not measured: the folder names ({shown}) are not class names of this model, "
                "so no image is flagged as a wrong answer.")
    if acc is None:
        return ""
    text = f"Accuracy against the folder labels: {acc:.1%} of {int(clusters.get('accuracy_images') or 0)} images."
    per, sizes = dict(clusters.get("accuracy_per_class") or {}), dict(clusters.get("accuracy_per_class_images") or {})
    if len(per) > 1 and sizes:  # where it goes wrong: the weakest folders first
        worst = sorted(per, key=lambda k: (per[k], k))[:WORST_FOLDERS]
        text += (" By folder, lowest first: "
                 + ", ".join(f"{k} {per[k]:.0%} of {sizes.get(k, 0)}" for k in worst)
                 + (f"; the other {len(per) - WORST_FOLDERS} folders do at least as well" if len(per) > WORST_FOLDERS
                    else "") + ".")
    if unmatched:
        text += (f" {int(clusters.get('unmatched_images') or 0)} images in folders that are not class "
                 f"names of this model ({shown}) are not counted.")
    return text


__all__ = ["FLAGS", "aggregate_results", "choose_clusters", "normalised_map", "accuracy_words", "where_words"]
