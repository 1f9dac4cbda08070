"""Where an audit's images come from: a folder, a list of files, a .zip or a video.

Every source is a *stream* of small ``Item`` descriptors (a name, where to read the bytes, the
true label when the folder layout gives one); pixels are decoded only when a batch needs them,
so a 10 000-file folder is never held in memory. Items are plain picklable records, so the Ray
engine ships them to workers that read the bytes themselves (video frames carry their pixels:
a decoded frame cannot be re-read by name cheaply).

Untrusted input: files are decoded by ``model_zoo.images.load_image`` (format allow-list,
decompression-bomb guard, truncation check). Zip members are read into memory, never extracted,
so a name cannot write anywhere; names that try to leave the archive (absolute, ``..``), links,
members larger than ``MAX_MEMBER_BYTES`` or compressed more than ``MAX_ZIP_RATIO``:1 are refused
with a reason. Folder walks do not follow symbolic links.
"""
from __future__ import annotations

import csv
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import numpy as np

from explainers.base import ExplainerError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_ZIP_RATIO = 200
MAX_FILE_BYTES = 256 * 1024 * 1024


class SourceError(ExplainerError):
    """A source that cannot be opened at all (the run cannot start); shown as one line."""


class BadItem(ValueError):
    """One item that cannot be used (the run goes on; the reason is listed in the manifest)."""


@dataclass(frozen=True, eq=False)
class Item:
    """One image of a source: a name unique within the source and how to get its pixels."""

    name: str  # relative path, zip member or "frame 000012"
    kind: str  # "file" | "zip" | "frame" | "bad"
    path: str = ""  # the file, the zip or the video
    member: str = ""  # zip member name
    true_label: str | None = None
    frame: int | None = None  # video frame index
    time: float | None = None  # video time in seconds
    pixels: np.ndarray | None = field(default=None, repr=False)  # decoded frame (video)
    reason: str = ""  # why a "bad" item cannot be used (known before reading)


# ---------------------------------------------------------------------- reading
def read_item(item: Item) -> np.ndarray:
    """The item's RGB uint8 pixels (H, W, 3); ``BadItem`` with a reason otherwise."""
    from model_zoo.images import ImageError, as_rgb_array, load_image

    if item.kind == "bad":
        raise BadItem(item.reason)
    if item.kind == "frame":
        if item.pixels is None:
            raise BadItem("the frame has no pixels")
        return as_rgb_array(np.asarray(item.pixels))
    try:
        data = _read_file(item.path) if item.kind == "file" else _read_member(item.path, item.member)
        return load_image(data)
    except ImageError as exc:
        raise BadItem(str(exc)) from None


def _read_file(path: str) -> bytes:
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise BadItem("not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise BadItem(f"the file is {st.st_size // 2**20} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadItem(f"cannot read the file ({exc.strerror or exc})") from None


def _read_member(zip_path: str, member: str) -> bytes:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = zf.getinfo(member)
            problem = _member_problem(info)
            if problem:
                raise BadItem(problem)
            with zf.open(info) as f:
                data = f.read(MAX_MEMBER_BYTES + 1)  # the header may lie about the size
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError, NotImplementedError) as exc:
        raise BadItem(f"cannot read the zip member ({exc})") from None
    if len(data) > MAX_MEMBER_BYTES:
        raise BadItem("the member inflates past the size limit (a zip bomb?)")
    return data


def _member_problem(info: zipfile.ZipInfo) -> str:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        return "unsafe name (it points outside the archive)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link, not a file"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"{info.file_size // 2**20} MB uncompressed; the limit is {MAX_MEMBER_BYTES // 2**20} MB"
    if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
        return f"compressed {info.file_size // max(info.compress_size, 1)}:1 (a zip bomb?)"
    return ""


# ---------------------------------------------------------------------- sources
def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def folder_items(root: str | os.PathLike) -> Iterator[Item]:
    """Every file under ``root`` (recursive, sorted, links not followed). With sub-folders, the
    first folder level is the true label (``DIR/<class>/...``, as Keras'
    ``image_dataset_from_directory`` reads a dataset); files at the top level get none."""
    root = Path(root)
    has_classes = any(
        e.is_dir(follow_symlinks=False) and not _hidden(e.name) for e in os.scandir(root)
    )
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            if _hidden(name):
                continue
            rel = (rel_dir / name).as_posix()
            label = rel_dir.parts[0] if has_classes and rel_dir.parts else None
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                yield Item(rel, "bad", full, true_label=label, reason="a symbolic link, not a file")
            else:
                yield Item(rel, "file", full, true_label=label)


def file_items(paths: Sequence[str | os.PathLike]) -> Iterator[Item]:
    """The given files, in order; names are the paths as given (duplicates are refused)."""
    seen: set[str] = set()
    for p in paths:
        name = str(p)
        if name in seen:
            yield Item(name + " (again)", "bad", name, reason="listed twice")
            continue
        seen.add(name)
        yield Item(name, "file", name)


def zip_items(zip_path: str | os.PathLike) -> Iterator[Item]:
    """Members of a .zip (directories skipped); ``<class>/...`` members get that true label when
    the archive has class folders (a single wrapping folder is looked through)."""
    zip_path = str(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceError(f"{zip_path} is not a readable .zip ({exc})") from None
    # hidden entries (.DS_Store, __MACOSX) are skipped; ".." is not hidden: it is refused below
    infos = [i for i in infos
             if not any(_hidden(p) and p != ".." for p in PurePosixPath(i.filename).parts)]
    parts = [PurePosixPath(i.filename.replace("\\", "/")).parts for i in infos]
    skip = 0
    tops = {p[0] for p in parts if len(p) > 1}
    if len(tops) == 1 and all(len(p) > 1 for p in parts):  # one wrapping folder
        skip = 1
    has_classes = any(len(p) > skip + 1 for p in parts)
    for info, p in sorted(zip(infos, parts), key=lambda t: t[0].filename):
        label = p[skip] if has_classes and len(p) > skip + 1 else None
        problem = _member_problem(info)
        if problem:
            yield Item(info.filename, "bad", zip_path, info.filename, label, reason=problem)
        else:
            yield Item(info.filename, "zip", zip_path, info.filename, label)


def video_items(path: str | os.PathLike, every: int | None = None, fps: float | None = None) -> Iterator[Item]:
    """Decoded frames of a video (PyAV): every ``every``-th frame, or about ``fps`` per second
    (by time stamp), or every frame. Frames carry their pixels (RGB uint8)."""
    import av

    if every is not None and fps is not None:
        raise SourceError("give either every-k frames or frames per second, not both")
    if every is not None and int(every) < 1:
        raise SourceError(f"every must be at least 1, not {every}")
    if fps is not None and not float(fps) > 0:
        raise SourceError(f"fps must be positive, not {fps}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"{path} is not a readable video ({exc})") from None
    with container:
        if not container.streams.video:
            raise SourceError(f"{path} has no video stream")
        stream = container.streams.video[0]
        next_time = 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                if every is not None and index % int(every):
                    continue
                if fps is not None:
                    if t + 1e-9 < next_time:
                        continue
                    next_time += 1.0 / float(fps)
                    while next_time <= t:
                        next_time += 1.0 / float(fps)
                yield Item(f"frame {index:06d}", "frame", str(path), frame=index, time=round(t, 6),
                           pixels=frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as exc:
            yield Item("frame (decode error)", "bad", str(path), reason=f"the video stops decoding here ({exc})")


def video_info(path: str | os.PathLike) -> dict:
    """Frame rate, frame count (estimated when the container does not say) and size."""
    import av

    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            rate = float(s.average_rate or 25)
            frames = int(s.frames or 0)
            if not frames and s.duration and s.time_base:
                frames = int(round(float(s.duration * s.time_base) * rate))
            return {"fps": rate, "frames": frames, "width": s.width, "height": s.height}
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise SourceError(f"{path} is not a readable video ({exc})") from None


@dataclass(frozen=True)
class Source:
    """A described source: what it is and how to stream its items (again, e.g. to resume)."""

    kind: str  # "folder" | "files" | "zip" | "video"
    location: str | tuple[str, ...]
    every: int | None = None
    fps: float | None = None

    def items(self) -> Iterator[Item]:
        if self.kind == "folder":
            return folder_items(self.location)
        if self.kind == "files":
            return file_items(self.location)
        if self.kind == "zip":
            return zip_items(self.location)
        return video_items(self.location, self.every, self.fps)

    def count(self) -> int:
        """How many items (names only, no decoding): for progress and ETA."""
        if self.kind == "video":
            info = video_info(self.location)
            n = info["frames"]
            if self.every:
                return -(-n // int(self.every))
            if self.fps:
                return max(1, int(n / info["fps"] * float(self.fps)))
            return n
        return sum(1 for _ in self.items())

    def describe(self) -> dict:
        return {"kind": self.kind, "location": self.location if isinstance(self.location, str)
                else list(self.location), "every": self.every, "fps": self.fps}


def open_source(spec: str | os.PathLike | Sequence[str], every: int | None = None, fps: float | None = None) -> Source:
    """A Source from a folder, a .zip, a video file, a single image or a list of files."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise SourceError("the list of files is empty")
        return Source("files", tuple(str(p) for p in spec))
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"{spec} does not exist")
    if (every is not None or fps is not None) and path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SourceError("--every and --fps apply to a video source only")
    if path.is_dir():
        return Source("folder", str(path))
    if path.suffix.lower() == ".zip":
        return Source("zip", str(path))
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if every is not None and fps is not None:
            raise SourceError("give either --every or --fps, not both")
        video_info(path)  # fail now on a broken video
        return Source("video", str(path), every, fps)
    return Source("files", (str(path),))


# ---------------------------------------------------------------------- ground truth
class GroundTruth:
    """Object masks per image: masks with the same names (a folder, or a .zip read in memory,
    never extracted), or a CSV of boxes (``image,x0,y0,x1,y1`` in the file's pixels, several
    rows per image allowed).

    A mask matches an image by the longest common tail of their paths without suffix
    (``set/cats/0.png`` ↔ ``masks/cats/0.png`` via ``cats/0``); a tail shared by several masks
    (``cats/0`` and ``dogs/0`` both end in ``0``) is ambiguous and never used.
    """

    def __init__(self, masks_dir: str | None = None, boxes_csv: str | None = None) -> None:
        if masks_dir and boxes_csv:
            raise SourceError("give either masks (a folder or a .zip) or a boxes CSV, not both")
        self.masks: dict[str, str | None] = {}  # tail -> folder file or zip member; None: ambiguous
        self.masks_zip: str | None = None
        self.bad_masks: dict[str, str] = {}  # zip member -> why it cannot be used
        self.boxes: dict[str, list[tuple[float, float, float, float]]] = {}
        self.kind = "none"
        self._count = 0
        if masks_dir:
            root = Path(masks_dir)
            if root.is_file() and root.suffix.lower() == ".zip":
                self._index_zip(str(root))
            elif root.is_dir():
                for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                    dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
                    for name in sorted(filenames):
                        if not _hidden(name):
                            rel = (Path(dirpath).relative_to(root) / name).as_posix()
                            self._add(rel, os.path.join(dirpath, name))
            else:
                raise SourceError(f"the masks {masks_dir} are neither a folder nor a .zip")
            self.kind = "masks"
        elif boxes_csv:
            self.boxes = _read_boxes(boxes_csv)
            self.kind = "boxes"

    def _index_zip(self, zip_path: str) -> None:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
        except (OSError, zipfile.BadZipFile) as exc:
            raise SourceError(f"the masks .zip is not readable ({exc})") from None
        self.masks_zip = zip_path
        for info in infos:
            if any(_hidden(p) and p != ".." for p in PurePosixPath(info.filename).parts):
                continue
            problem = _member_problem(info)
            if problem:
                self.bad_masks[info.filename] = problem
            self._add(info.filename.replace("\\", "/"), info.filename)

    def _add(self, rel: str, ref: str) -> None:
        self._count += 1
        for tail in _tails(rel):
            if tail in self.masks and self.masks[tail] != ref:
                self.masks[tail] = None
            else:
                self.masks[tail] = ref

    def __bool__(self) -> bool:
        return self.kind != "none"

    def describe(self) -> dict:
        return {"kind": self.kind, "entries": len(self.boxes) if self.kind == "boxes" else self._count}

    def _keys(self, name: str) -> list[str]:
        p = PurePosixPath(name.replace("\\", "/"))
        return [*_tails(name), p.name, name]

    def mask_for(self, item: Item, shape: tuple[int, int]) -> np.ndarray | None:
        """The object mask (H, W) bool in the file's pixels, None when this image has none;
        ``BadItem`` (this image only) when its mask is unreadable or of another size."""
        from model_zoo.images import ImageError, load_image
        from model_zoo.registry import MASK_THRESHOLD

        if self.kind == "masks":
            for key in self._keys(item.name):
                ref = self.masks.get(key)
                if ref is None:
                    continue
                if ref in self.bad_masks:
                    raise BadItem(f"its mask cannot be used ({self.bad_masks[ref]})")
                try:
                    data = _read_member(self.masks_zip, ref) if self.masks_zip else _read_file(ref)
                    pixels = load_image(data)
                except (ImageError, BadItem) as exc:
                    raise BadItem(f"its mask cannot be read ({exc})") from None
                if pixels.shape[:2] != tuple(shape):
                    raise BadItem(f"its mask is {pixels.shape[1]}×{pixels.shape[0]} but the "
                                  f"image is {shape[1]}×{shape[0]}")
                return pixels.mean(axis=-1) >= MASK_THRESHOLD
            return None
        if self.kind == "boxes":
            for key in self._keys(item.name):
                if key in self.boxes:
                    mask = np.zeros(shape, dtype=bool)
                    for x0, y0, x1, y1 in self.boxes[key]:
                        r0, r1 = max(0, int(round(y0))), min(shape[0], int(round(y1)))
                        c0, c1 = max(0, int(round(x0))), min(shape[1], int(round(x1)))
                        mask[r0:r1, c0:c1] = True
                    return mask
        return None


def _tails(name: str) -> list[str]:
    """``a/b/c.png`` → ``["a/b/c", "b/c", "c"]`` (longest first)."""
    parts = PurePosixPath(name.replace("\\", "/")).with_suffix("").parts
    return ["/".join(parts[i:]) for i in range(len(parts))]


def _read_boxes(path: str) -> dict[str, list[tuple[float, float, float, float]]]:
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"image", "x0", "y0", "x1", "y1"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise SourceError(f"the boxes CSV needs the columns {', '.join(sorted(need))}")
            for line, row in enumerate(reader, start=2):
                try:
                    box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
                except (TypeError, ValueError):
                    raise SourceError(f"the boxes CSV line {line} has a non-numeric coordinate") from None
                if not (box[2] > box[0] and box[3] > box[1]):
                    raise SourceError(f"the boxes CSV line {line}: x1 > x0 and y1 > y0 are needed")
                out.setdefault(row["image"].strip(), []).append(box)  # type: ignore[arg-type]
    except OSError as exc:
        raise SourceError(f"cannot read the boxes CSV {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SourceError(f"the boxes CSV {path} is not UTF-8 text") from None
    return out


__all__ = [
    "Item", "Source", "SourceError", "BadItem", "GroundTruth", "open_source", "read_item",
    "folder_items", "file_items", "zip_items", "video_items", "video_info", "VIDEO_SUFFIXES",
]
