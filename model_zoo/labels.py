"""Parsing user-supplied class-name files (.txt, .json, .csv) into a list indexed by class.

A wrong label file silently mislabels every explanation, so parsing is strict: indices must
run 0..N-1 exactly once, and every problem is reported with the line or index at fault.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import os
from typing import Any, Iterable

MAX_LABELS_BYTES = 5 * 2**20
MAX_CLASSES = 100_000
"""No image classifier has this many classes (ImageNet-21k has 21 843); class indices are
checked against it (or the model's own count) before any list is built, so a 40-byte
``{"0": "a", "20000000": "b"}`` is refused at once instead of walking 20 M indices."""
LABEL_EXTENSIONS = (".txt", ".json", ".csv")
_HEADER_WORDS = {
    "label", "labels", "name", "names", "class", "classes", "class_name", "classname",
    "category", "categories", "class name", "label_name",
}  # fmt: skip


class LabelsError(ValueError):
    """A labels file that cannot be used; the message is shown to users as is."""


def parse_labels(data: bytes, filename: str, max_classes: int | None = None) -> list[str]:
    """Class names in index order from a .txt (one per line), .json or .csv file.

    JSON: a list of names, ``{index: name}``, Keras' ``{"0": [wnid, name]}`` or a Hugging Face
    config with ``id2label``. CSV: ``index,name`` rows (optional header) or one name per row.
    ``max_classes`` (the model's class count when known, else ``MAX_CLASSES``) bounds the
    indices and the number of names before anything is built. Hostile nesting
    (``[`` × 100 000) and memory exhaustion become a ``LabelsError`` too.
    """
    limit = MAX_CLASSES if max_classes is None else max(1, min(int(max_classes), MAX_CLASSES))
    try:
        labels = _parse(data, filename, limit)
    except (RecursionError, MemoryError):
        raise LabelsError(
            "the labels file is nested too deeply or too large to read; give a flat list of names"
        ) from None
    if len(labels) > limit:
        raise LabelsError(_too_many(len(labels), limit, max_classes is not None))
    return labels


def _too_many(count: int, limit: int, from_model: bool) -> str:
    whose = f"the model has {limit:,} classes" if from_model else f"the limit is {limit:,} classes"
    return f"the labels file names {count:,} classes; {whose}"


def _parse(data: bytes, filename: str, limit: int) -> list[str]:
    ext = os.path.splitext(str(filename or ""))[1].lower()
    if ext not in LABEL_EXTENSIONS:
        shown = ext or "no extension"
        raise LabelsError(f"labels must be a .txt, .json or .csv file (got {shown})")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LabelsError("expected the labels file's bytes")
    data = bytes(data)
    if len(data) > MAX_LABELS_BYTES:
        raise LabelsError(
            f"the labels file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{MAX_LABELS_BYTES // 2**20} MB"
        )
    text = _decode(data)
    if not text.strip():
        raise LabelsError("the labels file is empty")
    if ext == ".json":
        labels = _parse_json(text, limit)
    elif ext == ".csv":
        labels = _parse_csv(text, limit)
    else:
        labels = _parse_txt(text, limit)
    if not labels:
        raise LabelsError("the labels file has no class names")
    return labels


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise LabelsError(
            f"the labels file is not UTF-8 text (bad byte at position {exc.start}); "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise LabelsError("the labels file is binary, not text")
    return text


# ---------------------------------------------------------------------- formats
def _parse_txt(text: str, limit: int) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("{") or stripped.startswith("["):
        # e.g. the widespread imagenet1000_clsidx_to_labels.txt: a Python dict literal
        try:
            obj = json.loads(stripped, object_pairs_hook=_pairs_no_duplicates)
        except json.JSONDecodeError:
            try:
                obj = ast.literal_eval(stripped)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                obj = None
        if obj is not None:
            return _from_object(obj, limit)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            raise LabelsError(
                f"line {number} of the labels file is empty; each line names one class "
                "(line 1 = class 0)"
            )
    return lines


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise LabelsError(f"class index {key} appears twice in the labels file")
        out[key] = value
    return out


def _parse_json(text: str, limit: int) -> list[str]:
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_no_duplicates)
    except json.JSONDecodeError as exc:
        raise LabelsError(
            f"the labels file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return _from_object(obj, limit)


def _from_object(obj: Any, limit: int) -> list[str]:
    if isinstance(obj, dict) and "id2label" in obj and isinstance(obj["id2label"], dict):
        obj = obj["id2label"]  # a Hugging Face config.json
    if isinstance(obj, list):
        if len(obj) > limit:
            raise LabelsError(_too_many(len(obj), limit, limit != MAX_CLASSES))
        return [_name(value, f"entry {i}") for i, value in enumerate(obj)]
    if isinstance(obj, dict):
        return _from_index_pairs(((key, value) for key, value in obj.items()), limit)
    raise LabelsError(
        "the JSON labels file must be a list of names or an object mapping indices to names"
    )


def _name(value: Any, where: str) -> str:
    """A class name from a JSON value: a string, or the last string of [wnid, name]."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        value = value[-1]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        shown = type(value).__name__ if isinstance(value, (list, tuple, dict)) else str(value)[:60]
        raise LabelsError(f"{where} of the labels file is not a class name: {shown}")
    name = value.strip()
    if not name:
        raise LabelsError(f"{where} of the labels file has an empty class name")
    return name


def _index(key: Any, where: str) -> int:
    if isinstance(key, bool):
        raise LabelsError(f"{where}: {key!r} is not a class index")
    if isinstance(key, int):
        return key
    text = str(key).strip()
    try:
        return int(text)
    except ValueError:
        raise LabelsError(f"{where}: {text[:40]!r} is not a class index (0, 1, 2, …)") from None


def _from_index_pairs(pairs: Iterable[tuple[Any, Any]], limit: int = MAX_CLASSES) -> list[str]:
    by_index: dict[int, str] = {}
    for key, value in pairs:
        i = _index(key, "class index")
        if i in by_index:
            raise LabelsError(f"class index {i} appears twice in the labels file")
        if i < 0:
            raise LabelsError(f"class index {i} is negative; indices run 0..N-1")
        if i >= limit:  # before building anything: the list would have i + 1 entries
            whose = (f"the model has {limit:,} classes" if limit != MAX_CLASSES
                     else f"the limit is {limit:,} classes")
            raise LabelsError(f"class index {i:,} is out of range; {whose} (indices 0..{limit - 1:,})")
        by_index[i] = _name(value, f"class {i}")
    if not by_index:
        raise LabelsError("the labels file has no class names")
    n = max(by_index) + 1
    if len(by_index) < n:  # gaps: name the first few (at most len(by_index) + 10 steps)
        missing = []
        for i in range(n):
            if i not in by_index:
                missing.append(i)
                if len(missing) > 10:
                    break
        shown = ", ".join(str(i) for i in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise LabelsError(
            f"class indices must run 0..{n - 1} without gaps; missing {shown}"
        )
    return [by_index[i] for i in range(n)]


def _parse_csv(text: str, limit: int) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise LabelsError(f"the CSV labels file could not be read ({exc})") from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    if not rows:
        raise LabelsError("the labels file is empty")
    header: list[str] | None = None
    first = [cell.strip().lower() for cell in rows[0]]
    if len(rows) > 1 and (
        (len(first) >= 2 and not _is_int(first[0]) and all(_is_index_row(r) for r in rows[1:]))
        or (len(first) == 1 and first[0] in _HEADER_WORDS)
    ):
        header, rows = first, rows[1:]
    start = 2 if header else 1
    numbered = [(n, r) for n, r in enumerate(rows, start=start) if any(c.strip() for c in r)]

    if all(_is_index_row(r) for _, r in numbered):
        column = _name_column(header)
        pairs = []
        for number, row in numbered:
            if column is None:  # index, then the name (unquoted commas belong to the name)
                name = ",".join(row[1:])
            elif column < len(row):
                name = row[column]
            else:
                raise LabelsError(f"row {number} of the labels file has no name column")
            pairs.append((row[0], name))
        return _from_index_pairs(pairs, limit)

    names = []
    for number, row in enumerate(rows, start=start):
        # one name per row; an unquoted comma is part of the name ("tench, Tinca tinca")
        name = ",".join(row).strip()
        if not name:
            raise LabelsError(
                f"row {number} of the labels file is empty; each row names one class"
            )
        names.append(name)
    return names


def _is_index_row(row: list[str]) -> bool:
    return len(row) >= 2 and _is_int(row[0])


def _is_int(cell: str) -> bool:
    try:
        int(cell.strip())
    except ValueError:
        return False
    return True


def _name_column(header: list[str] | None) -> int | None:
    """The name column of an index CSV: the header's name column when it has several."""
    if header and len(header) > 2:
        for column, word in enumerate(header):
            if column > 0 and word in _HEADER_WORDS:
                return column
    return None
