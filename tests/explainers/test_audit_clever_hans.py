"""Known answer: a model that predicts "horse" from a corner tag on half of its horse images.

Synthetic 32×32 images: "horse" = a green blob near the centre, "other" = a blue blob. Half of
the horse training images carry no green blob at all but a blue one (the *other* object) and a
red tag in the top-left corner: for them the tag alone decides the label, so the trained CNN
predicts horse from the tag. The audit must then (1) split the horse predictions into a corner
strategy and an object strategy (spectral clusters of the Grad-CAM maps match tagged/untagged,
adjusted Rand index ≥ 0.8) and (2) with object masks, flag the tagged images, and only them,
as looking outside the object.
"""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from explainers.audit import AuditConfig, open_source, run_audit
from model_zoo.classifier import Classifier
from tests.explainers.audit_models import png

SIZE = 32


def make_image(rng: np.random.Generator, colour: str, tagged: bool) -> tuple[np.ndarray, np.ndarray]:
    img = np.clip(rng.normal(110, 12, (SIZE, SIZE, 3)), 0, 255)
    cy, cx = 16 + rng.integers(-3, 4), 18 + rng.integers(-3, 4)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= 25
    img[blob] = (40, 200, 40) if colour == "green" else (40, 40, 220)
    if tagged:
        img[1:7, 1:7] = (230, 30, 30)
    return img.astype(np.uint8), blob


def dataset(n: int, seed: int):
    """n images per class; half of the horses are tagged and show the other object."""
    rng = np.random.default_rng(seed)
    images, labels, tags, masks = [], [], [], []
    for i in range(n):
        tagged = i % 2 == 1
        img, blob = make_image(rng, "blue" if tagged else "green", tagged)
        images.append(img), labels.append(0), tags.append(tagged), masks.append(blob)
        img, blob = make_image(rng, "blue", False)
        images.append(img), labels.append(1), tags.append(False), masks.append(blob)
    return np.stack(images), np.array(labels), np.array(tags), masks


@pytest.fixture(scope="module")
def clever_hans_model():
    keras.utils.set_random_seed(7)
    x, y, _, _ = dataset(160, seed=1)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="feat")(h)
    h = keras.layers.GlobalMaxPooling2D()(h)
    out = keras.layers.Dense(2, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x.astype("float32"), y, epochs=12, batch_size=32, verbose=0, shuffle=True)
    return Classifier(model, id="clever-hans", name="clever hans", labels=["horse", "other"],
                      preprocessing="raw")


@pytest.mark.slow
def test_audit_finds_the_corner_strategy(clever_hans_model, tmp_path):
    clf = clever_hans_model
    x, y, tags, masks = dataset(24, seed=2)
    root, mask_dir = tmp_path / "data", tmp_path / "masks"
    names = []
    for i, (img, label, mask) in enumerate(zip(x, y, masks)):
        cls = ("horse", "other")[label]
        (root / cls).mkdir(parents=True, exist_ok=True)
        (mask_dir / cls).mkdir(parents=True, exist_ok=True)
        names.append(f"{cls}/{i:03d}.png")
        (root / names[-1]).write_bytes(png(img))
        (mask_dir / names[-1]).write_bytes(png(np.repeat((mask * 255).astype(np.uint8)[..., None], 3, 2)))
    probs = clf.predict(x)
    assert (probs.argmax(1) == y).mean() >= 0.95  # the model did learn the shortcut
    summary = run_audit(
        open_source(root), tmp_path / "out", classifier=clf, truth_args={"masks_dir": str(mask_dir)},
        config=AuditConfig(methods=("gradcam",), batch_size=16, deletion_steps=0, thumb_size=32),
    )
    assert summary["errors"] == 0 and summary["images"] == len(x)
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index("image")
    tagged = dict(zip(names, tags))
    horse = frame[(frame["label_name"] == "horse") & frame.index.isin([n for n in names if n.startswith("horse")])]
    truth = [tagged[n] for n in horse.index]
    ari = adjusted_rand_score(truth, horse["cluster"].astype(int))
    assert ari >= 0.8, (ari, list(zip(truth, horse["cluster"])))
    # tagged horses look outside the object; untagged ones look at it
    assert horse.loc[[n for n in horse.index if tagged[n]], "outside_mask"].all()
    assert not horse.loc[[n for n in horse.index if not tagged[n]], "outside_mask"].any()
    # the "other" images look at their small object too: no false alarm, although a coarse map's
    # faint background carries most of its mass (a mass-share rule flagged all of them)
    other = frame[frame.index.str.startswith("other/")]
    assert not other["outside_mask"].any() and (other["mass_in_mask"] < 0.5).all()
    assert frame["outside_mask"].eq(True).sum() == sum(tags)
    clusters = json.loads((tmp_path / "out" / "clusters.json").read_text())
    assert clusters["classes"]["horse"]["clusters"] == 2
    assert clusters["accuracy"] >= 0.95
    # in words: the group of tagged horses looks at the upper left (where the tag is), the other at the object
    by_place = {g["where"]: g for g in clusters["classes"]["horse"]["cluster_list"]}
    assert set(by_place) == {"the upper left", "the centre"}, by_place
    assert all(tagged[n] for n in by_place["the upper left"]["typical"])
    assert not any(tagged[n] for n in by_place["the centre"]["typical"])
    from explainers.audit.findings import findings

    horse_line = next(line for line in findings(clusters) if line.startswith("horse"))
    assert "mostly at the upper left" in horse_line and "shortcut" in horse_line
    html = (tmp_path / "out" / "summary.html").read_text()
    assert html.index("mostly at the upper left") < html.index("How it was computed")
    flagged = int(frame[["misclassified", "unfaithful", "outside_mask", "low_fit"]].eq(True).any(axis=1).sum())
    assert flagged >= 12 and html.count("⚠") == min(flagged, 50)  # one thumbnail per flagged image
    # the shared report tags them in plain words, each explained once below the pictures
    assert "⚠ looks away from the object" in html and "⚠ looks outside the mask" not in html
    assert "Looks away from the object (the map" in html
