"""Decoding user images safely and fitting them to a model's input.

Uploads are untrusted: only real raster formats are decoded, the pixel count is checked from the
header *before* decoding (our cap plus Pillow's decompression-bomb guard made strict), truncated
files are refused, and every image comes out as plain RGB uint8 with EXIF orientation applied and
transparency composited on white. ``fit_to_input`` resizes to the model input with a chosen
policy and remembers the geometry, so explainers can report positions (e.g. a heatmap peak) in
the pixel coordinates of the file as the user gave it.
"""
from __future__ import annotations

import hashlib
import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
"""Pillow format names accepted by ``load_image`` (phone JPEGs open as JPEG/MPO)."""

RESIZE_POLICIES: tuple[str, ...] = ("crop", "stretch", "pad")
"""crop: centre crop to the input's aspect ratio; stretch: ignore aspect; pad: letterbox."""

PAD_VALUE = 128
"""Neutral gray used by the "pad" policy for the letterbox bars."""

DEFAULT_MAX_PIXELS = 40_000_000

_FORMAT_LIST = "PNG, JPEG, GIF, BMP, TIFF or WEBP"
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class ImageError(ValueError):
    """An image that cannot be used; the message is shown to users as is."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of raw bytes: the cache key of uploads (arrays hash unreliably in Streamlit)."""
    return hashlib.sha256(bytes(data)).hexdigest()


# ---------------------------------------------------------------------- decoding
def pixel_limit(max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The pixel cap of every decoder here (images, region maps): ours or Pillow's bomb limit,
    whichever is lower; Pillow's global is read, never changed."""
    limit = int(max_pixels)
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, int(Image.MAX_IMAGE_PIXELS))
    return limit


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded file to an RGB uint8 array (H, W, 3), refusing anything unsafe.

    The effective pixel limit is ``min(max_pixels, PIL.Image.MAX_IMAGE_PIXELS)``; Pillow's
    global limit is read, never changed.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError("expected the image file's bytes")
    data = bytes(data)
    if not data:
        raise ImageError("the image file is empty")
    limit = pixel_limit(max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(_too_large_message(_header_size(data), limit)) from None
        except UnidentifiedImageError:
            raise ImageError(_unidentified_message(data)) from None
        except Exception as exc:  # Pillow raises many kinds of errors on corrupt headers
            claimed = _sniff(data) or "supported"
            raise ImageError(
                f"the file looks like a {claimed} image but is damaged and could not be read "
                f"({_one_line(exc)})"
            ) from None
        with im:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageError("the image has zero width or height")
            if width * height > limit:
                raise ImageError(_too_large_message((width, height), limit))
            try:
                im.seek(0)  # animated / multi-page: the first frame
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageError(_too_large_message((width, height), limit)) from None
            except OSError as exc:
                if "truncated" in str(exc):
                    raise ImageError(
                        "the image file is truncated (incomplete upload or damaged file)"
                    ) from None
                raise ImageError(f"the image file is damaged ({_one_line(exc)})") from None
            except Exception as exc:
                raise ImageError(f"the image file is damaged ({_one_line(exc)})") from None
            try:
                frame = ImageOps.exif_transpose(im)
            except Exception:  # unreadable EXIF must not make a good picture unusable
                frame = im.copy()
    rgb = _to_rgb(frame)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError("the image has zero width or height")
    return rgb


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode → RGB uint8, alpha composited on white, 16-bit and float scaled to 8-bit."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_uint8(np.asarray(im), mode)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        rgb = im.convert("RGB")
    return np.array(rgb, dtype=np.uint8)


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit → 8-bit by /257 (65535 → 255); other integer or float ranges stretched linearly."""
    a = arr.astype(np.float64)
    if mode.startswith("I;16"):
        return np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    if mode == "I" and lo >= 0 and hi <= 65535:
        out = a / 257.0  # a 16-bit image stored as 32-bit ints (e.g. some TIFF/PNG decoders)
    elif mode == "F" and lo >= 0 and hi <= 1:
        out = a * 255.0
    elif hi > lo:
        out = (a - lo) * (255.0 / (hi - lo))
    else:
        out = np.zeros_like(a)
    out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg[:200]


def _too_large_message(size: tuple[int, int] | None, limit: int) -> str:
    if size:
        w, h = size
        return (
            f"the image is too large ({w}×{h} = {w * h:,} pixels; the limit is {limit:,}); "
            "this guards against decompression bombs — downscale it first"
        )
    return f"the image is too large (over {limit:,} pixels, a possible decompression bomb)"


def _sniff(data: bytes) -> str | None:
    """Name of the format the leading bytes claim, for clearer error messages."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read straight from a PNG or GIF header, or None."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
    except struct.error:
        return None
    return None


def _unidentified_message(data: bytes) -> str:
    claimed = _sniff(data)
    if claimed:
        size = _header_size(data)
        if size is not None and (size[0] == 0 or size[1] == 0):
            return "the image has zero width or height"
        return f"the file looks like a {claimed} image but is damaged and could not be read"
    head = data[:2048].lstrip().lower()
    if b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in head):
        return f"SVG (vector) images are not supported; export it as {_FORMAT_LIST}"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftyphevc"):
        return f"HEIC/AVIF images are not supported; convert it to {_FORMAT_LIST}"
    if data.startswith(b"%PDF"):
        return f"PDF files are not supported; upload a {_FORMAT_LIST} image"
    return f"the file is not a supported image; upload a {_FORMAT_LIST} file"


# ---------------------------------------------------------------------- fitting to the model
@dataclass(frozen=True)
class FittedImage:
    """An image resized to the model input, with the geometry to map positions back.

    ``source_box`` (top, left, bottom, right) is the region of the original image (continuous
    pixel units, pixel i spans [i, i+1)) that the model sees; it lands on ``target_box``
    (top, left, bottom, right) of ``image`` (the whole input, or the letterboxed area for "pad").
    """

    image: np.ndarray  # (H, W, 3) uint8 at the model input size
    original_shape: tuple[int, int]
    policy: str
    source_box: tuple[float, float, float, float]
    target_box: tuple[int, int, int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per input pixel, (rows, cols)."""
        st, sl, sb, sr = self.source_box
        tt, tl, tb, tr = self.target_box
        return (sb - st) / (tb - tt), (sr - sl) / (tr - tl)

    def to_original(self, row: float, col: float) -> tuple[int, int]:
        """Original pixel (row, col) under the centre of input pixel (row, col).

        Positions in the letterbox bars are clamped to the nearest edge pixel.
        """
        sy, sx = self.scale
        y = self.source_box[0] + (float(row) + 0.5 - self.target_box[0]) * sy
        x = self.source_box[1] + (float(col) + 0.5 - self.target_box[1]) * sx
        h, w = self.original_shape
        return _clamp_index(y, h), _clamp_index(x, w)

    def to_input(self, row: float, col: float) -> tuple[int, int]:
        """Input pixel (row, col) under the centre of original pixel (row, col) (clamped)."""
        sy, sx = self.scale
        r = self.target_box[0] + (float(row) + 0.5 - self.source_box[0]) / sy
        c = self.target_box[1] + (float(col) + 0.5 - self.source_box[1]) / sx
        h, w = self.image.shape[:2]
        return _clamp_index(r, h), _clamp_index(c, w)

    def map_to_original(self, values: np.ndarray, order: int = 1, fill: float = np.nan) -> np.ndarray:
        """Resample a map at input resolution (e.g. a heatmap) onto the original image grid.

        Pixels the model never saw (cropped away) get ``fill``; ``order`` is the spline order
        (0 nearest, 1 bilinear).
        """
        from skimage.transform import AffineTransform, warp

        values = np.asarray(values, dtype=np.float64)
        if values.shape != self.image.shape[:2]:
            raise ImageError(
                f"the map is {values.shape} but the model input is {self.image.shape[:2]}"
            )
        sy, sx = self.scale
        # original pixel centre y (index) -> input index r: r = y/sy + (tt + (0.5 - st)/sy - 0.5)
        ty = self.target_box[0] + (0.5 - self.source_box[0]) / sy - 0.5
        tx = self.target_box[1] + (0.5 - self.source_box[1]) / sx - 0.5
        inverse = AffineTransform(scale=(1.0 / sx, 1.0 / sy), translation=(tx, ty))
        out = warp(
            values,
            inverse,
            output_shape=self.original_shape,
            order=order,
            mode="edge",
            clip=False,
            preserve_range=True,
        ).astype(np.float32)
        st, sl, sb, sr = self.source_box  # pixels whose centre the model never saw → fill
        rows = np.arange(self.original_shape[0]) + 0.5
        cols = np.arange(self.original_shape[1]) + 0.5
        out[(rows < st) | (rows > sb), :] = fill
        out[:, (cols < sl) | (cols > sr)] = fill
        return out


def _clamp_index(v: float, n: int) -> int:
    return int(min(max(math.floor(v), 0), n - 1))


def as_rgb_array(image: np.ndarray) -> np.ndarray:
    """Check/convert an in-memory image to RGB uint8 (H, W, 3); grayscale is repeated."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError("the image has zero width or height")
    return image


def fit_to_input(
    image: np.ndarray,
    size: tuple[int, int],
    policy: str = "crop",
    crop_fraction: float = 1.0,
) -> FittedImage:
    """Resize an RGB uint8 image to ``size`` (H, W) for the model, bicubic (Pillow).

    "crop": the largest centred region with the input's aspect ratio (a square for square
    inputs), shrunk by ``crop_fraction`` (0.875 = the usual 224/256 evaluation crop), then
    resized. "stretch": the whole image resized, aspect ignored. "pad": the whole image resized
    to fit inside, aspect kept, centred on gray ``PAD_VALUE`` bars.
    """
    image = as_rgb_array(image)
    if policy not in RESIZE_POLICIES:
        raise ImageError(f"unknown resize policy {policy!r}; choose one of {', '.join(RESIZE_POLICIES)}")
    try:
        th, tw = (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise ImageError(f"the input size must be (height, width), got {size!r}") from None
    if th <= 0 or tw <= 0:
        raise ImageError(f"the input size must be positive, got {th}×{tw}")
    crop_fraction = float(crop_fraction)
    if not 0.0 < crop_fraction <= 1.0:
        raise ImageError(f"crop fraction must be in (0, 1], got {crop_fraction}")
    h, w = image.shape[:2]
    pil = Image.fromarray(image, "RGB")
    bicubic = Image.Resampling.BICUBIC

    if policy == "stretch":
        source = (0.0, 0.0, float(h), float(w))
        target = (0, 0, th, tw)
        out = np.asarray(pil.resize((tw, th), bicubic))
    elif policy == "crop":
        aspect = tw / th
        if w / h > aspect:  # wider than the input: full height
            bh, bw = float(h), h * aspect
        else:
            bh, bw = w / aspect, float(w)
        bh, bw = bh * crop_fraction, bw * crop_fraction
        top, left = (h - bh) / 2.0, (w - bw) / 2.0
        source = (top, left, top + bh, left + bw)
        target = (0, 0, th, tw)
        out = np.asarray(pil.resize((tw, th), bicubic, box=(left, top, left + bw, top + bh)))
    else:  # pad
        k = min(th / h, tw / w)
        ch, cw = max(1, min(th, round(h * k))), max(1, min(tw, round(w * k)))
        top, left = (th - ch) // 2, (tw - cw) // 2
        source = (0.0, 0.0, float(h), float(w))
        target = (top, left, top + ch, left + cw)
        canvas = np.full((th, tw, 3), PAD_VALUE, np.uint8)
        canvas[top : top + ch, left : left + cw] = np.asarray(pil.resize((cw, ch), bicubic))
        out = canvas
    out = np.ascontiguousarray(out, dtype=np.uint8)
    out.setflags(write=False)
    return FittedImage(
        image=out,
        original_shape=(h, w),
        policy=policy,
        source_box=tuple(float(v) for v in source),
        target_box=tuple(int(v) for v in target),
    )
