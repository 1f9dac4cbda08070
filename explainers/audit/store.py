"""The results directory of an audit: atomic files, resume, the final ``results.parquet``.

Layout::

    OUT/manifest.json         model, every parameter, seeds, versions, errors, counts
    OUT/results.parquet       one row per image × label × method (written at the end)
    OUT/clusters.json         per-class aggregates and strategy clusters
    OUT/summary.html          self-contained report
    OUT/parts/<id>.json       one image's rows (or its error); its presence = image done
    OUT/maps/<id>.npz         float16 maps at the model input size, a small copy of the image
    OUT/thumbs/<id>/<method>_<label>.png   overlay thumbnails

``<id>`` is a hash of the item's name, never the name itself. Every file is written to a
temporary name in the same folder and renamed into place, so an interrupted run leaves either
the whole file or none, and a rerun skips exactly the images whose part file exists.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from explainers.base import ExplainerError

RESULT_COLUMNS = (
    "image", "image_id", "index", "true_label", "rank", "label", "label_name", "probability",
    "method", "peak_row", "peak_col", "peak_input_row", "peak_input_col", "deletion_auc",
    "random_deletion_auc", "pointing_hit", "mass_in_mask", "mask_iou", "r2", "map_signed", "seed", "frame",
    "time", "cluster", "misclassified", "unfaithful", "outside_mask", "low_fit",
)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file + rename (never a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1, default=_default, allow_nan=False))


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN/inf → None so that JSON stays strict."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultStore:
    """Reads and writes one results directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ExplainerError(f"{root} exists and is not a folder")
        # parsed part files by name, with the (mtime, size) they were read at: a viewer polling
        # a running audit every second or two reads only the parts that arrived since
        self._parts: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        self._manifest: tuple[tuple[int, int], dict[str, Any]] | None = None

    # ------------------------------------------------------------------ paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def results_path(self) -> Path:
        return self.root / "results.parquet"

    def part_path(self, image_id: str) -> Path:
        return self.root / "parts" / f"{image_id}.json"

    def maps_path(self, image_id: str) -> Path:
        return self.root / "maps" / f"{image_id}.npz"

    def thumb_path(self, image_id: str, method: str, label: int) -> Path:
        return self.root / "thumbs" / image_id / f"{method}_{int(label)}.png"

    # ------------------------------------------------------------------ state
    def done_ids(self) -> set[str]:
        parts = self.root / "parts"
        if not parts.is_dir():
            return set()
        return {p.stem for p in parts.glob("*.json")}

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, parsed again only when the file changed (mtime, size): the Audit page
        asks for it in several panels on every rerun, and it lists every unusable file. Treat
        the returned dict as read-only."""
        try:
            st = self.manifest_path.stat()
            key = (st.st_mtime_ns, st.st_size)
            if self._manifest is not None and self._manifest[0] == key:
                return self._manifest[1]
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ExplainerError(f"the manifest in {self.root} is unreadable ({exc})") from None
        self._manifest = (key, manifest)
        return manifest

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        write_json(self.manifest_path, dict(manifest))

    # ------------------------------------------------------------------ one image
    def save(self, outcome: Any) -> None:
        """Maps and thumbnails first, the part file (the 'done' mark) last."""
        if outcome.error is None:
            atomic_write(self.maps_path(outcome.id), outcome.maps_npz)
            for key, png in outcome.thumbs.items():
                atomic_write(self.root / "thumbs" / outcome.id / f"{key}.png", png)
        part = {
            "image": outcome.name, "id": outcome.id, "index": outcome.index,
            "true_label": outcome.true_label, "error": outcome.error,
            "model_calls": outcome.model_calls, "seconds": round(outcome.seconds, 6),
            "frame": outcome.frame, "time": outcome.time,
            "shape": list(outcome.shape) if outcome.shape else None,
            "geometry": outcome.geometry,
            "rows": [{k: _clean(v) for k, v in r.items()} for r in outcome.rows],
        }
        write_json(self.part_path(outcome.id), part)

    def parts(self) -> Iterator[dict[str, Any]]:
        """Every finished image's part, in source order (by index, then name).

        A part is written once, atomically and last, so a file already read (same mtime and
        size) is not read again: polling a running audit costs only the new parts."""
        parts = self.root / "parts"
        if not parts.is_dir():
            return iter(())
        seen: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        for p in parts.glob("*.json"):
            try:
                st = p.stat()
            except FileNotFoundError:  # replaced between the listing and the stat
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._parts.get(p.name)
            if cached is None or cached[0] != stamp:
                d = json.loads(p.read_text(encoding="utf-8"))
                d["rows"] = d.get("rows", [])
                cached = (stamp, d)
            seen[p.name] = cached
        self._parts = seen
        loaded = sorted((d for _, d in seen.values()), key=lambda d: (d["index"], d["image"]))
        return iter(loaded)

    def rows_frame(self):
        """All rows as a pandas DataFrame with the documented columns."""
        import pandas as pd

        rows = [r for part in self.parts() for r in part["rows"]]
        frame = pd.DataFrame(rows)
        for col in RESULT_COLUMNS:
            if col not in frame.columns:
                frame[col] = None
        extra = [c for c in frame.columns if c not in RESULT_COLUMNS]
        return frame[list(RESULT_COLUMNS) + extra]

    def write_results(self, frame) -> None:
        """``results.parquet`` (atomic)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        atomic_write(self.results_path, buf.getvalue().to_pybytes())

    def load_maps(self, image_id: str):
        import numpy as np

        with np.load(self.maps_path(image_id), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def read_results(root: str | os.PathLike):
    """The ``results.parquet`` of a finished audit as a DataFrame."""
    import pandas as pd

    path = Path(root) / "results.parquet"
    if not path.exists():
        raise ExplainerError(f"{root} has no results.parquet (is the audit finished?)")
    return pd.read_parquet(path)


__all__ = ["ResultStore", "atomic_write", "write_json", "read_results", "RESULT_COLUMNS"]
