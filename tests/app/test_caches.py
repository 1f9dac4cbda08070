"""The dashboard's image caches hold fitted images, not full-resolution pixels (issue 8 item 5)."""
from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from model_zoo.bundled import load_efficientnet_lite0
from ui import services


def jpeg(h: int, w: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 100, w // 100, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((w, h)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def test_big_photos_leave_only_their_fitted_images_in_the_cache():
    services._fitted_cache().clear()
    clf = load_efficientnet_lite0()
    prepared = []
    for seed in range(3):
        data = jpeg(3000, 4000, seed)  # 12 megapixels: 36 MB decoded
        choice = services.ImageChoice(data, f"big{seed}.jpg", "upload", hashlib.sha256(data).hexdigest())
        prepared.append(services.prepare(clf, choice, "crop"))
        again = services.prepare(clf, choice, "crop")
        assert again.fitted is prepared[-1].fitted  # a hit: the same object, no decode
    cache = services._fitted_cache()
    assert len(cache) == 3
    assert cache.bytes < 3 * (224 * 224 * 3 + 4096)  # ≈ 150 KB each, not 36 MB
    for p in prepared:
        assert p.pixels.shape == (224, 224, 3) and not p.pixels.flags.writeable
        assert p.fitted.original_shape == (3000, 4000)  # what maps peaks back to the file
    assert services.FITTED_CACHE_BYTES <= 512 * 2**20
