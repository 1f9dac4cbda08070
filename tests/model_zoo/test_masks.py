"""The one mask fitting (model_zoo.registry.fit_mask) used by the Trust page, the CLI and audits."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model_zoo.images import ImageError
from model_zoo.registry import fit_mask, prepare_image
from tests.explainers.test_contract import tiny_classifier


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clf():
    return tiny_classifier()  # 32×32 input


@pytest.mark.parametrize("policy, expected", [
    ("stretch", (slice(8, 24), slice(0, 16))),  # 64×128 → 32×32: rows ÷ 2, cols ÷ 4
    ("pad", (slice(12, 20), slice(0, 16))),  # letterbox: 128 wide → 32, rows 64 → 16 centred
])
def test_mask_is_fitted_like_the_image(clf, policy, expected):
    photo = np.zeros((64, 128, 3), np.uint8)
    mask = np.zeros((64, 128), np.uint8)
    mask[16:48, 0:64] = 255  # left half, middle rows
    fitted = prepare_image(clf, photo, policy=policy)
    got = fit_mask(clf, png(mask), fitted)
    assert got.shape == (32, 32) and got.dtype == bool
    want = np.zeros((32, 32), bool)
    want[expected] = True
    assert (got != want).sum() <= 2 * 32, (policy, np.argwhere(got != want)[:5])  # a one-pixel rim at most
    assert got[expected].mean() > 0.9 and not got[:, 20:].any()


def test_a_mask_of_another_size_is_refused_with_both_sizes(clf):
    fitted = prepare_image(clf, np.zeros((64, 128, 3), np.uint8), policy="stretch")
    with pytest.raises(ImageError, match="the mask is 10×20 but the image is 128×64"):
        fit_mask(clf, png(np.zeros((20, 10), np.uint8)), fitted)
