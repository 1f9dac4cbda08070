"""Region maps: decoding ids or colours, fitting exactly like the photo, clear refusals."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model_zoo.images import fit_to_input
from model_zoo.regions import RegionError, decode_region_map, fit_region_map, load_region_map


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    im.save(buf, format="PNG")
    return buf.getvalue()


def photo(h: int = 40, w: int = 60) -> np.ndarray:
    return np.full((h, w, 3), 90, np.uint8)


def test_integer_ids_cropped_like_the_photo():
    """Columns of 10 pixels carry ids 0, 7, 14, …; the centre crop of a 60×40 photo keeps
    columns 10..49 → four ids, each 5 columns wide at 20×20, renumbered in reading order."""
    ids = (np.arange(60)[None, :] // 10 * 7).repeat(40, axis=0).astype(np.uint8)
    fitted = fit_to_input(photo(), (20, 20), policy="crop")
    rm = load_region_map(png(ids), fitted)
    expected = (np.arange(20)[None, :] // 5).repeat(20, axis=0)
    np.testing.assert_array_equal(rm.segments, expected)
    assert rm.names == ("id 7", "id 14", "id 21", "id 28")
    assert rm.dropped == 2 and rm.count == 4
    assert rm.segments.dtype == np.int32


@pytest.mark.parametrize("policy", ["crop", "stretch", "pad"])
def test_regions_land_where_the_photo_pixels_land(policy):
    """A red square in the photo and the same square as region 1: after fitting, the region
    covers exactly the pixels that came out red (nearest vs bicubic: up to the border)."""
    img = photo(50, 80)
    img[10:30, 30:60] = (255, 0, 0)
    mask = np.zeros((50, 80), np.uint8)
    mask[10:30, 30:60] = 1
    fitted = fit_to_input(img, (32, 32), policy=policy)
    rm = load_region_map(png(mask), fitted)
    square = rm.segments == rm.names.index("id 1")
    red = (fitted.image[..., 0] > 200) & (fitted.image[..., 1] < 40)
    assert red.sum() > 20
    assert (red & ~square).sum() == 0  # every clearly red pixel is in the region
    inner_gray = (np.abs(fitted.image.astype(int) - 90).max(axis=-1) < 3) & square
    assert inner_gray.sum() == 0  # and the region has no clearly gray pixel
    if policy == "pad":
        assert rm.names[-1] == "padding" or "padding" in rm.names
        assert (rm.segments == rm.names.index("padding")).sum() == 32 * 32 - 32 * 20


def test_colours_become_regions():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)
    rgb[:, 10:] = (0, 0, 255)
    rgb[:5, :5] = (0, 255, 0)
    fitted = fit_to_input(photo(20, 20), (20, 20))
    rm = load_region_map(png(rgb), fitted)
    assert rm.names == ("#00ff00", "#ff0000", "#0000ff")
    assert rm.segments[0, 0] == 0 and rm.segments[10, 0] == 1 and rm.segments[0, 19] == 2


def test_sixteen_bit_and_palette_ids():
    ids = np.zeros((16, 16), np.uint16)
    ids[8:] = 3000
    values, names = decode_region_map(png(ids))
    assert set(np.unique(values)) == {0, 3000} and names == ["id 0", "id 3000"]
    pal = Image.fromarray(np.repeat(np.arange(4, dtype=np.uint8), 4)[None].repeat(4, axis=0), "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    values, _ = decode_region_map(buf.getvalue())
    assert set(np.unique(values)) == {0, 1, 2, 3}


def test_a_map_at_the_model_input_size_is_used_as_is():
    ids = np.zeros((16, 16), np.uint8)
    ids[:, 8:] = 4
    fitted = fit_to_input(photo(40, 60), (16, 16))
    rm = load_region_map(png(ids), fitted)
    assert rm.segments[:, :8].max() == 0 and rm.segments[:, 8:].min() == 1


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, not an image", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 64, "JPEG"),
        (png(np.zeros((40, 60), np.uint8)), "only one region"),
        (png(np.zeros((41, 60), np.uint8)), "60×41 but the image is 60×40"),
        (png((np.arange(40 * 60) % 65000).reshape(40, 60).astype(np.uint16)), "limit is 512"),
    ],
)
def test_bad_maps_get_clear_messages(data, message):
    fitted = fit_to_input(photo(40, 60), (40, 60), policy="stretch")
    with pytest.raises(RegionError, match=message):
        load_region_map(data, fitted)


def test_one_region_after_cropping_is_refused():
    ids = np.zeros((40, 60), np.uint8)
    ids[:, :5] = 1  # only in the part the centre crop removes
    fitted = fit_to_input(photo(), (20, 20), policy="crop")
    with pytest.raises(RegionError, match="only one region at the model input"):
        fit_region_map(*decode_region_map(png(ids)), fitted)
