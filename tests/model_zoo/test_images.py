"""Image decoding (every awkward format case), resizing policies with coordinate mapping, samples."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from model_zoo.images import (
    PAD_VALUE,
    RESIZE_POLICIES,
    FittedImage,
    ImageError,
    fit_to_input,
    load_image,
    sha256_bytes,
)
from model_zoo.samples import SAMPLES, sample_image, sample_png_bytes


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, depth: int = 8, color: int = 2) -> bytes:
    """A tiny PNG whose IHDR claims any size; its pixel data is junk that would not decode."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def gradient_image(h: int = 12, w: int = 16) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 15, y * 20, (x + y) * 5], axis=-1).astype(np.uint8)


# ---------------------------------------------------------------------- formats
@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_round_trip_exactly(fmt):
    image = gradient_image()
    pil = Image.fromarray(image)
    if fmt == "GIF":  # GIF is paletted: use few colours so the palette is exact
        image = (image // 64 * 64).astype(np.uint8)
        pil = Image.fromarray(image)
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(encode(pil, fmt, **kwargs))
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out, image)


def test_jpeg_decodes_close_to_source():
    image = np.full((16, 16, 3), (200, 60, 30), np.uint8)
    out = load_image(encode(Image.fromarray(image), "JPEG", quality=95))
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - image).max() <= 3


@pytest.mark.parametrize(
    "data, words",
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>", "SVG"),
        (b"<?xml version='1.0'?>\n<svg></svg>", "SVG"),
        (b"just some text, not a picture", "not a supported image"),
        (bytes(range(256)) * 4, "not a supported image"),
        (b"%PDF-1.7 ...", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"", "empty"),
    ],
)
def test_non_images_are_refused_with_a_clear_message(data, words):
    with pytest.raises(ImageError, match=words):
        load_image(data)


def test_pillow_formats_outside_the_allow_list_are_refused():
    ppm = encode(Image.fromarray(gradient_image()), "PPM")
    assert Image.open(io.BytesIO(ppm)).format == "PPM"  # Pillow itself would decode it
    with pytest.raises(ImageError, match="PNG, JPEG, GIF, BMP, TIFF or WEBP"):
        load_image(ppm)


def test_non_bytes_input_is_refused():
    with pytest.raises(ImageError):
        load_image("picture.png")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- size guards
def _filters_snapshot():
    return list(warnings.filters)


def test_header_claiming_huge_size_is_refused_before_decoding():
    data = png_claiming(100_000, 100_000)  # 10^10 pixels in 70 bytes
    assert len(data) < 100
    before_limit, before_filters = Image.MAX_IMAGE_PIXELS, _filters_snapshot()
    with pytest.raises(ImageError, match="too large"):
        load_image(data)
    assert Image.MAX_IMAGE_PIXELS == before_limit
    assert _filters_snapshot() == before_filters


def test_pillow_bomb_warning_is_an_error_even_with_a_generous_cap():
    # 10000×10000 is between 1× and 2× Pillow's limit: Pillow alone would only warn.
    data = png_claiming(10_000, 10_000)
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    before_limit, before_filters = Image.MAX_IMAGE_PIXELS, _filters_snapshot()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        inner_filters = _filters_snapshot()
        with pytest.raises(ImageError, match="too large"):
            load_image(data, max_pixels=10**12)
        assert _filters_snapshot() == inner_filters
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == before_limit
    assert _filters_snapshot() == before_filters


def test_real_decompression_bomb_png_is_refused_quickly():
    # A genuine, fully valid 1-bit PNG of 96 M pixels: a few KiB on disk, 288 MB as RGB.
    start = time.perf_counter()
    data = encode(Image.new("1", (12_000, 8_000), 1), "PNG")
    assert len(data) < 200_000
    with pytest.raises(ImageError, match="too large"):
        load_image(data)
    assert time.perf_counter() - start < 10


def test_our_pixel_cap_applies_below_pillows_limit():
    data = encode(Image.new("1", (200, 100), 1), "PNG")
    with pytest.raises(ImageError, match=r"200×100 = 20,000 pixels; the limit is 10,000"):
        load_image(data, max_pixels=10_000)
    out = load_image(data, max_pixels=20_000)
    assert out.shape == (100, 200, 3) and (out == 255).all()


def test_zero_size_image_is_refused():
    with pytest.raises(ImageError, match="zero width or height"):
        load_image(png_claiming(0, 10))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_refused(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(ImageError, match="truncated|damaged"):
        load_image(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_damaged_png_with_valid_signature_is_named():
    with pytest.raises(ImageError, match="looks like a PNG"):
        load_image(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)


# ---------------------------------------------------------------------- modes and metadata
@pytest.mark.parametrize(
    "orientation, bright_corner",
    [(1, "top_left"), (3, "bottom_right"), (6, "top_right"), (8, "bottom_left")],
)
def test_exif_orientation_is_applied(orientation, bright_corner):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = 255  # bright block at the stored top-left corner
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    exif[0x0112] = orientation
    out = load_image(encode(pil, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == ((60, 40, 3) if orientation in (6, 8) else (40, 60, 3))
    corners = {
        "top_left": out[:8, :8],
        "top_right": out[:8, -8:],
        "bottom_left": out[-8:, :8],
        "bottom_right": out[-8:, -8:],
    }
    for name, block in corners.items():
        if name == bright_corner:
            assert block.mean() > 250, name
        else:
            assert block.mean() < 5, name


def test_rgba_is_composited_on_white():
    out = load_image(encode(Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "PNG"))
    # 255·(128/255) + 255·(1 − 128/255) for red, 0·a + 255·(1 − 128/255) = 127 for G and B
    np.testing.assert_array_equal(out[0, 0], [255, 127, 127])
    opaque_transparent = np.zeros((2, 2, 4), np.uint8)
    opaque_transparent[0, 0] = (10, 20, 30, 255)
    out = load_image(encode(Image.fromarray(opaque_transparent, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[1, 1], [255, 255, 255])


def test_gray_with_alpha_is_composited_on_white():
    out = load_image(encode(Image.new("LA", (3, 3), (0, 128)), "PNG"))
    np.testing.assert_array_equal(out[1, 1], [127, 127, 127])


def test_palette_with_transparency():
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    pal.putpixel((1, 2), 1)  # (x, y)
    for fmt in ("PNG", "GIF"):
        out = load_image(encode(pal, fmt, transparency=0))
        np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # transparent index → white
        np.testing.assert_array_equal(out[2, 1], [200, 100, 50])  # opaque palette colour


def test_palette_without_transparency():
    pal = Image.new("P", (2, 2), 1)
    pal.putpalette([0, 0, 0, 12, 34, 56] + [0] * (256 * 3 - 6))
    out = load_image(encode(pal, "PNG"))
    np.testing.assert_array_equal(out[1, 1], [12, 34, 56])


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_gray_is_scaled_to_8_bit(fmt):
    values = np.array([[65535, 32896, 25700, 0]], np.uint16)  # = 257 × (255, 128, 100, 0)
    pil = Image.fromarray(values)
    assert pil.mode.startswith("I;16")
    out = load_image(encode(pil, fmt))
    np.testing.assert_array_equal(out[0, :, 0], [255, 128, 100, 0])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_32_bit_integer_and_float_tiffs_are_scaled():
    ints = load_image(encode(Image.fromarray(np.array([[0, 32896, 65535]], np.int32)), "TIFF"))
    np.testing.assert_array_equal(ints[0, :, 0], [0, 128, 255])
    floats = load_image(encode(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)), "TIFF"))
    np.testing.assert_array_equal(floats[0, :, 0], [0, 128, 255])


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = load_image(data)
    assert out.shape == (16, 16, 3)
    assert np.abs(out[8, 8].astype(int) - [255, 0, 0]).max() <= 3


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_image_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (8, 6), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, **extra)
    assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 3
    out = load_image(buf.getvalue())
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out[3, 4], [255, 0, 0])


def test_grayscale_and_bilevel_become_rgb():
    gray = load_image(encode(Image.new("L", (5, 4), 77), "PNG"))
    assert gray.shape == (4, 5, 3) and (gray == 77).all()
    bilevel = load_image(encode(Image.new("1", (3, 3), 1), "BMP"))
    assert (bilevel == 255).all()


def test_sha256_bytes_known_answer():
    assert sha256_bytes(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# ---------------------------------------------------------------------- fit_to_input
def bright_pixel(shape, row, col):
    image = np.zeros(shape + (3,), np.uint8)
    image[row, col] = 255
    return image


def peak(image: np.ndarray) -> tuple[int, int]:
    gray = image.astype(float).sum(axis=2)
    return tuple(int(v) for v in np.unravel_index(np.argmax(gray), gray.shape))


def test_crop_known_answer():
    # 150×300 → largest centred square is columns 75..225; 150 px → 50 px: 3 px per pixel.
    fitted = fit_to_input(bright_pixel((150, 300), 70, 130), (50, 50), "crop")
    assert fitted.image.shape == (50, 50, 3) and fitted.image.dtype == np.uint8
    assert fitted.original_shape == (150, 300)
    assert fitted.source_box == (0.0, 75.0, 150.0, 225.0)
    assert fitted.scale == (3.0, 3.0)
    assert peak(fitted.image) == (23, 18)  # 70 = 3·23 + 1, 130 − 75 = 55 = 3·18 + 1
    assert fitted.to_original(23, 18) == (70, 130)
    assert fitted.to_input(70, 130) == (23, 18)


def test_crop_fraction_known_answer():
    # 300×300 with crop_fraction 0.5: box 75..225 on both axes, 3 px per pixel at 50×50.
    fitted = fit_to_input(bright_pixel((300, 300), 106, 136), (50, 50), "crop", crop_fraction=0.5)
    assert fitted.source_box == (75.0, 75.0, 225.0, 225.0)
    assert peak(fitted.image) == (10, 20)
    assert fitted.to_original(10, 20) == (106, 136)


def test_crop_keeps_aspect_ratio_of_non_square_inputs():
    fitted = fit_to_input(np.zeros((100, 100, 3), np.uint8), (20, 40), "crop")
    assert fitted.image.shape == (20, 40, 3)
    assert fitted.source_box == (25.0, 0.0, 75.0, 100.0)  # a 2:1 band through the middle


def test_stretch_known_answer():
    # 150×300 → 50×50: 3 rows and 6 columns per pixel.
    fitted = fit_to_input(bright_pixel((150, 300), 70, 135), (50, 50), "stretch")
    assert fitted.scale == (3.0, 6.0)
    assert peak(fitted.image) == (23, 22)
    assert fitted.to_original(23, 22) == (70, 135)
    assert fitted.to_input(70, 135) == (23, 22)


def test_pad_known_answer():
    # 150×300 → 50×50 at 1/6 scale: 25×50 content, 12 gray rows above, 13 below.
    image = np.zeros((150, 300, 3), np.uint8)
    image[60:66, 132:138] = 255  # exactly the 6×6 block behind content pixel (10, 22)
    fitted = fit_to_input(image, (50, 50), "pad")
    assert fitted.target_box == (12, 0, 37, 50)
    assert (fitted.image[:12] == PAD_VALUE).all() and (fitted.image[37:] == PAD_VALUE).all()
    assert peak(fitted.image) == (22, 22)  # content row 10 + 12 rows of bar
    assert fitted.to_original(22, 22) == (63, 135)
    assert fitted.to_input(63, 135) == (22, 22)
    assert fitted.to_original(0, 0) == (0, 3)  # row 0 is gray bar: clamped to the edge
    assert fitted.to_original(49, 49) == (149, 297)


@pytest.mark.parametrize("policy", RESIZE_POLICIES)
@pytest.mark.parametrize("shape", [(97, 203), (211, 64), (120, 120), (30, 41)])
def test_round_trip_of_a_bright_blob_lands_on_it(policy, shape):
    """Any size, any policy: the resized peak maps back onto the blob in the original."""
    rng = np.random.default_rng(sum(shape))
    size = (37, 53)
    probe = fit_to_input(np.zeros(shape + (3,), np.uint8), size, policy, crop_fraction=0.875)
    top, left, bottom, right = probe.source_box
    row = int(rng.integers(int(np.ceil(top)) + 9, int(bottom) - 9))
    col = int(rng.integers(int(np.ceil(left)) + 9, int(right) - 9))
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    blob = 255 * np.exp(-((y - row) ** 2 + (x - col) ** 2) / (2 * 3.0**2))  # one clear peak
    image = np.repeat(np.rint(blob).astype(np.uint8)[:, :, None], 3, axis=2)
    fitted = fit_to_input(image, size, policy, crop_fraction=0.875)
    t, l, b, r_ = fitted.target_box  # look inside the picture, not at the gray bars
    inner = peak(fitted.image[t:b, l:r_])
    found = (inner[0] + t, inner[1] + l)
    back = fitted.to_original(*found)
    sy, sx = fitted.scale
    assert abs(back[0] - row) <= sy + 1 and abs(back[1] - col) <= sx + 1
    r, c = fitted.to_input(row, col)
    assert abs(r - found[0]) <= 1 and abs(c - found[1]) <= 1


def test_map_to_original_projects_a_heatmap_back():
    fitted = fit_to_input(np.zeros((150, 300, 3), np.uint8), (50, 50), "crop")
    heat = np.zeros((50, 50), np.float32)
    heat[23, 18] = 1.0
    back = fitted.map_to_original(heat, order=0)
    assert back.shape == (150, 300) and back.dtype == np.float32
    assert np.isnan(back[:, :75]).all() and np.isnan(back[:, 225:]).all()  # cropped away
    hot = np.argwhere(back == 1.0)
    assert hot.min(axis=0).tolist() == [69, 129] and hot.max(axis=0).tolist() == [71, 131]
    stretched = fit_to_input(np.zeros((150, 300, 3), np.uint8), (50, 50), "stretch")
    assert not np.isnan(stretched.map_to_original(heat)).any()
    with pytest.raises(ImageError):
        fitted.map_to_original(np.zeros((10, 10)))


def test_fitted_image_is_immutable():
    fitted = fit_to_input(gradient_image(), (8, 8))
    assert isinstance(fitted, FittedImage)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted.policy = "pad"  # type: ignore[misc]
    with pytest.raises(ValueError):
        fitted.image[0, 0, 0] = 1


def test_fit_accepts_grayscale_arrays():
    fitted = fit_to_input(np.full((10, 10), 90, np.uint8), (5, 5), "stretch")
    assert (fitted.image == 90).all()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"policy": "zoom"}, "resize policy"),
        ({"crop_fraction": 0.0}, "crop fraction"),
        ({"crop_fraction": 1.5}, "crop fraction"),
        ({"size": (0, 10)}, "positive"),
        ({"size": "big"}, "height, width"),
        ({"image": np.zeros((4, 4, 3), np.float32)}, "uint8"),
        ({"image": np.zeros((4, 4, 4), np.uint8)}, "RGB"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, words):
    args = {"image": gradient_image(), "size": (8, 8)}
    args.update(kwargs)
    with pytest.raises(ImageError, match=words):
        fit_to_input(**args)


# ---------------------------------------------------------------------- samples
def test_samples_load_offline_as_uploads():
    assert {"chelsea", "coffee", "astronaut", "rocket", "camera"} <= set(SAMPLES)
    for name, title in SAMPLES.items():
        assert title
        data = sample_png_bytes(name)
        assert data.startswith(b"\x89PNG")
        image = sample_image(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        np.testing.assert_array_equal(image, load_image(data))


def test_sample_known_facts():
    from skimage import data

    np.testing.assert_array_equal(sample_image("chelsea"), data.chelsea())
    camera = sample_image("camera")
    assert Image.open(io.BytesIO(sample_png_bytes("camera"))).mode == "L"
    np.testing.assert_array_equal(camera[..., 0], data.camera())
    np.testing.assert_array_equal(camera[..., 0], camera[..., 2])
    # stable bytes → stable cache key
    assert sha256_bytes(sample_png_bytes("coffee")) == hashlib.sha256(
        sample_png_bytes("coffee")
    ).hexdigest()
    first = sample_image("coffee")
    first[:] = 0  # callers get their own copy
    assert sample_image("coffee").any()


def test_unknown_sample_is_an_image_error():
    with pytest.raises(ImageError, match="unknown sample"):
        sample_image("unicorn")
    with pytest.raises(ImageError, match="unknown sample"):
        sample_png_bytes("unicorn")
