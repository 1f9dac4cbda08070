"""Deep Feature Factorization: a model whose features are built so that the concepts are known."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from explainers import dff
from explainers.base import ExplainerError, make_params
from explainers.context import ExplainContext
from explainers.runner import run_method
from model_zoo.classifier import Classifier

SIZE = 24
CLASSES = ["red thing", "green thing", "blue thing"]


@pytest.fixture(scope="module")
def stripes_model() -> Classifier:
    """1×1 conv (6 channels: R, 2R, G, G/2, B, B — so each colour is one 2-channel concept)
    → global average pool → dense mapping each colour's channels to its class."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 1, use_bias=False, activation="relu", name="feat")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    kernel = np.zeros((1, 1, 3, 6), np.float32)
    kernel[0, 0, 0, 0], kernel[0, 0, 0, 1] = 1.0, 2.0
    kernel[0, 0, 1, 2], kernel[0, 0, 1, 3] = 1.0, 0.5
    kernel[0, 0, 2, 4], kernel[0, 0, 2, 5] = 1.0, 1.0
    dense = np.zeros((6, 3), np.float32)
    dense[[0, 1], 0] = 3.0
    dense[[2, 3], 1] = 3.0
    dense[[4, 5], 2] = 3.0
    model.get_layer("feat").set_weights([kernel])
    model.get_layer("head").set_weights([dense, np.zeros(3, np.float32)])
    return Classifier(model, id="stripes", name="stripes", labels=CLASSES, preprocessing="unit")


def stripes_image(order=(0, 1, 2)) -> np.ndarray:
    """Three vertical 8-pixel stripes of pure colours (channel order[0] on the left, …)."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    for i, channel in enumerate(order):
        img[:, 8 * i : 8 * (i + 1), channel] = 255
    return img


def test_concepts_are_the_stripes_with_their_categories(stripes_model):
    img = stripes_image((0, 1, 2))
    ctx = ExplainContext(stripes_model, img, seed=0)
    before = stripes_model.images_seen
    results = run_method(ctx, "dff", {"concepts": 3, "top_categories": 2}, [0, 1, 2])
    # one layer pass + K concept head evaluations
    assert stripes_model.images_seen - before == 1 + 3
    assert sum(r.model_calls for r in results) == 4

    maps = results[0].extras["concept_maps"]
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    regions = results[0].extras["concept_regions"]
    # each stripe is exactly one concept, and the three stripes are three different concepts
    stripe_concepts = []
    for i in range(3):
        ids = np.unique(regions[:, 8 * i : 8 * (i + 1)])
        assert len(ids) == 1
        stripe_concepts.append(int(ids[0]))
    assert sorted(stripe_concepts) == [0, 1, 2]
    # each concept map is (up to NMF's tolerance) the indicator of its stripe, peaking at 1
    for i, k in enumerate(stripe_concepts):
        inside = maps[k][:, 8 * i : 8 * (i + 1)]
        outside = np.delete(maps[k], np.s_[8 * i : 8 * (i + 1)], axis=1)
        np.testing.assert_allclose(inside, 1.0, atol=1e-3)
        assert np.abs(outside).max() < 1e-3
    assert results[0].extras["reconstruction_error"] < 1e-3

    # the concept of stripe i names colour i first, with the probability the head gives its
    # embedding: logits 3·(1+2)=9 (red), 3·(1+0.5)=4.5 (green), 3·2=6 (blue) vs 0 for the others
    top = results[0].extras["concept_top"]
    for colour, k, logit in zip(range(3), stripe_concepts, (9.0, 4.5, 6.0)):
        assert top[k][0][0] == colour and top[k][0][1] == CLASSES[colour]
        assert len(top[k]) == 2
        expected = np.exp(logit) / (np.exp(logit) + 2.0)
        assert top[k][0][2] == pytest.approx(expected, rel=1e-3)

    # the heatmap of each label is its colour's stripe (times the concept's probability)
    for r in results:
        k = stripe_concepts[r.label]
        assert r.extras["concept"] == k
        cols = r.heatmap.mean(axis=0)
        assert np.argmax(cols) // 8 == r.label
        assert r.heatmap[:, 8 * r.label : 8 * (r.label + 1)].min() > 0.5
        np.testing.assert_allclose(
            r.heatmap, maps[k] * r.extras["concept_label_probability"][k], rtol=1e-6
        )


def test_moving_the_stripes_moves_the_concepts(stripes_model):
    """Known answer is about the image, not about concept numbering: blue on the left now."""
    ctx = ExplainContext(stripes_model, stripes_image((2, 0, 1)), seed=0)
    (blue,) = run_method(ctx, "dff", {"concepts": 3}, [2])
    assert np.argmax(blue.heatmap.mean(axis=0)) < 8
    assert blue.heatmap[:, 8:].max() < 1e-3


def test_head_scores_equals_dense_on_the_embedding(stripes_model):
    """A tiled embedding through GAP → dense is the dense layer on the embedding."""
    emb = np.array([0.3, 1.2, 0.0, 2.0, 0.5, 0.1], np.float32)
    feats = np.broadcast_to(emb, (1, SIZE, SIZE, 6))
    scores = stripes_model.head_scores(stripes_image()[None], feats, layer="feat")
    dense = stripes_model.model.get_layer("head").get_weights()[0]
    np.testing.assert_allclose(scores[0], emb @ dense, rtol=1e-5, atol=1e-5)


def test_shares_the_layer_pass_with_gradcam(stripes_model):
    ctx = ExplainContext(stripes_model, stripes_image(), seed=0)
    run_method(ctx, "gradcam", {}, [0])
    before = stripes_model.images_seen
    (r,) = run_method(ctx, "dff", {"concepts": 2}, [0])
    assert stripes_model.images_seen - before == 2 == r.model_calls  # only the K head images
    before = stripes_model.images_seen
    run_method(ctx, "dff", {"concepts": 2}, [1])  # another label: cached
    assert stripes_model.images_seen == before


def test_factorize_is_seeded_and_handles_negative_activations():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 5, 8)).astype(np.float32)  # a layer without ReLU
    a = dff.factorize(feats, 3, seed=4)
    b = dff.factorize(feats, 3, seed=4)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert (a.offset <= 0).all() and a.offset.min() < 0
    assert a.maps.min() >= 0 and np.allclose(a.maps.reshape(3, -1).max(axis=1), 1.0)


def test_bad_parameters_get_clear_messages(stripes_model):
    with pytest.raises(ExplainerError, match="concepts must be between 2 and 16"):
        make_params(dff.DffParams, {"concepts": 1})
    with pytest.raises(ExplainerError, match="top categories"):
        make_params(dff.DffParams, {"top_categories": 0})
    with pytest.raises(ExplainerError, match="positions"):
        dff.factorize(np.ones((2, 2, 4)), 5)
    with pytest.raises(ExplainerError, match="all zero"):
        dff.factorize(np.zeros((4, 4, 4)), 2)


def test_concepts_render_as_coloured_regions(stripes_model):
    from explainers.render import CONCEPT_COLOURS, concept_legend, render_concepts

    img = stripes_image()
    ctx = ExplainContext(stripes_model, img, seed=0)
    (r,) = run_method(ctx, "dff", {"concepts": 3}, [0])
    gray = np.full_like(img, 100)
    picture = render_concepts(gray, r.extras["concept_maps"], opacity=1.0)
    for i in range(3):  # full strength, full opacity: each stripe is exactly its concept's colour
        k = int(r.extras["concept_regions"][0, 8 * i])
        assert (picture[:, 8 * i : 8 * (i + 1)] == CONCEPT_COLOURS[k]).all()
    legend = concept_legend(r.extras["concept_top"])
    k_red = r.extras["concept"]
    assert legend[k_red][0] == CONCEPT_COLOURS[k_red] and legend[k_red][1].startswith("red thing")


def test_cli_writes_the_concepts(stripes_model, tmp_path, capsys):
    import json

    from PIL import Image

    from explainers.cli import main

    model_path = tmp_path / "stripes.keras"
    stripes_model.model.save(model_path)
    png = tmp_path / "stripes.png"
    Image.fromarray(stripes_image()).save(png)
    npz = tmp_path / "out.npz"
    code = main(["explain", str(png), "--model", str(model_path), "--preprocess", "unit",
                 "--labels", str(_labels(tmp_path)), "--methods", "dff", "--param", "dff.concepts=3",
                 "--target", "2", "--json", "--out", str(npz)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (result,) = json.loads(captured.out)["results"]
    k = result["extras"]["concept"]
    assert result["extras"]["concept_top"][k][0][1] == "blue thing"
    saved = np.load(npz)
    assert saved["concept_maps"].shape == (3, SIZE, SIZE)
    assert (saved["concept_regions"][:, 16:] == k).all()  # the blue stripe is the label's concept


def _labels(folder):
    path = folder / "labels.txt"
    path.write_text("\n".join(CLASSES) + "\n")
    return path
