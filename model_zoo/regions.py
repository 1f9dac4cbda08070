"""Your own regions: an uploaded region map that replaces the superpixels.

A region map is an image the size of the photo in which each region has one value: a PNG of
integer ids (8-bit gray, 16-bit gray or palette indices) or a colour picture where each colour
is one region. It is fitted to the model input *exactly like the photo* (the same crop, stretch
or letterbox geometry as ``model_zoo.images.fit_to_input``) but with nearest-neighbour sampling,
so ids are never blended; the letterbox bars of "pad" become one more region ("padding"). After
fitting, the ids are renumbered 0..M−1 in order of first appearance (row-major) — what the
perturbation engine needs — and ``names`` keeps the value each came from.

The file is untrusted like any upload: only raster formats are decoded, the pixel count is
checked before decoding (Pillow's decompression-bomb guard made strict), and every problem is
one ``RegionError`` with a message for the user.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from model_zoo.images import DEFAULT_MAX_PIXELS, FittedImage, ImageError, pixel_limit

REGION_FORMATS: tuple[str, ...] = ("PNG", "BMP", "TIFF", "GIF")
"""Lossless formats only: JPEG would smear region borders into new colours."""

MIN_REGIONS = 2
MAX_REGIONS = 512


class RegionError(ImageError):
    """A region map that cannot be used; the message is shown to users as is."""


@dataclass(frozen=True)
class RegionMap:
    """Region ids at the model input (H, W) int32 0..M−1 and what each id was in the file."""

    segments: np.ndarray
    names: tuple[str, ...]  # per id: "id 7", "#ff0000" or "padding"
    dropped: int = 0  # regions of the file that the crop removed

    @property
    def count(self) -> int:
        return len(self.names)


# ---------------------------------------------------------------------- decoding
def decode_region_map(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """File bytes → (ids (h, w) int64, the name of each id value) at the file's own size.

    Integer images (gray, 16-bit, palette) keep their values as ids; colour images give one id
    per distinct colour (alpha included, so a transparent background is a region too).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or not bytes(data):
        raise RegionError("the region map file is empty")
    data = bytes(data)
    limit = pixel_limit(max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=list(REGION_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise RegionError(f"the region map is too large (over {limit:,} pixels)") from None
        except UnidentifiedImageError:
            if data.startswith(b"\xff\xd8"):
                raise RegionError(
                    "the region map is a JPEG; JPEG blurs region borders into new colours — save "
                    "it as PNG"
                ) from None
            raise RegionError(
                "the region map is not an image; upload a PNG of region ids (or one colour per "
                "region)"
            ) from None
        except Exception:
            raise RegionError("the region map file is damaged and could not be read") from None
        with im:
            w, h = im.size
            if w * h > limit:
                raise RegionError(f"the region map is too large ({w}×{h}; the limit is {limit:,} pixels)")
            try:
                im.seek(0)
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise RegionError(f"the region map is too large ({w}×{h})") from None
            except Exception:
                raise RegionError("the region map file is damaged or truncated") from None
            return _to_ids(im)


def _to_ids(im: Image.Image) -> tuple[np.ndarray, list[str]]:
    mode = im.mode
    if mode in ("P", "L", "I", "1") or mode.startswith("I;16"):
        values = np.asarray(im).astype(np.int64)
        return values, _value_names(values, "id")
    if mode == "LA":
        values = np.asarray(im.getchannel("L")).astype(np.int64)
        return values, _value_names(values, "id")
    rgba = np.asarray(im.convert("RGBA")).astype(np.int64)
    packed = (rgba[..., 0] << 24) | (rgba[..., 1] << 16) | (rgba[..., 2] << 8) | rgba[..., 3]
    return packed, _value_names(packed, "colour")


def _value_names(values: np.ndarray, kind: str) -> list[str]:
    """Names by value, aligned with ``np.unique(values)``."""
    uniq = np.unique(values)
    if kind == "id":
        return [f"id {int(v)}" for v in uniq]
    names = []
    for v in uniq:
        v = int(v)
        r, g, b, a = (v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255
        names.append(f"#{r:02x}{g:02x}{b:02x}" + ("" if a == 255 else f" (alpha {a})"))
    return names


# ---------------------------------------------------------------------- fitting
def fit_region_map(values: np.ndarray, names_by_value: list[str], fitted: FittedImage) -> RegionMap:
    """Fit a region map (h, w) to the model input on the photo's own geometry.

    ``fitted`` is the photo fitted by ``fit_to_input`` (or ``registry.prepare_image``): its
    ``source_box`` is cut from the map and resized nearest-neighbour onto its ``target_box``, so
    every region pixel lands exactly where the photo's pixel does. The map must have the photo's
    size — or already be at the model input size, in which case it is used as is.
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.size == 0:
        raise RegionError(f"a region map is a 2-D image, got shape {values.shape}")
    th, tw = fitted.image.shape[:2]
    uniq, codes = np.unique(values, return_inverse=True)
    codes = codes.reshape(values.shape).astype(np.int32)
    names = list(names_by_value)
    if len(names) != len(uniq):
        names = [f"id {int(v)}" for v in uniq]
    h, w = values.shape
    if (h, w) == tuple(fitted.original_shape):
        out = _resample(codes, fitted, pad_id=len(uniq))
        if (out == len(uniq)).any():
            names.append("padding")
    elif (h, w) == (th, tw):
        out = codes
    else:
        ih, iw = fitted.original_shape
        raise RegionError(
            f"the region map is {w}×{h} but the image is {iw}×{ih} (and the model input "
            f"{tw}×{th}); draw the regions on a copy of the image so that the sizes match"
        )
    return finish(out, names, total=len(uniq))


def _resample(codes: np.ndarray, fitted: FittedImage, pad_id: int) -> np.ndarray:
    """Nearest-neighbour resampling of ``codes`` on ``fitted``'s geometry (Pillow, mode I)."""
    th, tw = fitted.image.shape[:2]
    st, sl, sb, sr = fitted.source_box
    tt, tl, tb, tr = fitted.target_box
    pil = Image.fromarray(np.ascontiguousarray(codes, dtype=np.int32))  # mode "I"
    part = pil.resize((tr - tl, tb - tt), Image.Resampling.NEAREST, box=(sl, st, sr, sb))
    canvas = np.full((th, tw), pad_id, np.int32)
    canvas[tt:tb, tl:tr] = np.asarray(part, dtype=np.int32)
    return canvas


def finish(fitted: np.ndarray, names: list[str], total: int | None = None) -> RegionMap:
    """Renumber to 0..M−1 (first appearance, row-major) and check the region count."""
    fitted = np.asarray(fitted)
    flat = fitted.ravel()
    _, first = np.unique(flat, return_index=True)
    order = np.unique(flat)[np.argsort(first)]  # values in order of first appearance
    lut = np.empty(int(order.max()) + 1, np.int32)
    lut[order] = np.arange(len(order), dtype=np.int32)
    segments = lut[fitted].astype(np.int32)
    m = len(order)
    if m < MIN_REGIONS:
        raise RegionError(
            "the region map has only one region at the model input; draw at least two regions "
            "(e.g. the object and the background)"
        )
    if m > MAX_REGIONS:
        raise RegionError(
            f"the region map has {m} regions at the model input; the limit is {MAX_REGIONS} "
            "(merge small regions, or use superpixels)"
        )
    kept_names = tuple(names[int(v)] if int(v) < len(names) else f"region {int(v)}" for v in order)
    dropped = 0 if total is None else max(0, total - sum(1 for n in kept_names if n != "padding"))
    segments.setflags(write=False)
    return RegionMap(segments=segments, names=kept_names, dropped=dropped)


def load_region_map(data: bytes, fitted: FittedImage) -> RegionMap:
    """Decode an uploaded region map and fit it to the model input like the photo."""
    values, names = decode_region_map(data)
    return fit_region_map(values, names, fitted)


__all__ = [
    "RegionMap", "RegionError", "decode_region_map", "fit_region_map", "load_region_map",
    "finish", "MIN_REGIONS", "MAX_REGIONS", "REGION_FORMATS",
]
