"""scikit-learn image models via skops: a digits MLP trained here, explained by LIME/KernelSHAP."""
from __future__ import annotations

import io
import operator
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from explainers.base import ExplainerError
from explainers.context import ExplainContext, SamplingParams
from explainers.runner import run_method
from model_zoo.classifier import ModelError
from model_zoo.sklearn_model import SklearnClassifier, load_sklearn_model

DIGIT_NAMES = [f"digit {i}" for i in range(10)]


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def skops_bytes(digits) -> bytes:
    pipe = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0)
    ).fit(digits.data, digits.target)
    return sio.dumps(pipe)


@pytest.fixture(scope="module")
def classifier(skops_bytes) -> SklearnClassifier:
    return load_sklearn_model(skops_bytes, "digits.skops", input_size=(8, 8), channels=1,
                              value_range=(0.0, 16.0), labels=DIGIT_NAMES)


def as_rgb(digit: np.ndarray) -> np.ndarray:
    """A digits image (0..16) as the RGB uint8 picture a user would upload."""
    gray = np.rint(digit * 255.0 / 16.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def test_predictions_equal_the_pipeline_on_the_dataset(classifier, digits):
    """Flattening order and scaling are right: the rows the model gets are the dataset's rows
    up to the 8-bit rounding of the pictures (half a grey level = 16/510), and so are the
    predictions."""
    images = np.stack([as_rgb(d) for d in digits.images[:200]])
    rows = classifier.features(images)
    np.testing.assert_allclose(rows, digits.data[:200], atol=16 / 510 + 1e-9)
    ours = classifier.predict(images)
    np.testing.assert_allclose(ours, classifier.estimator.predict_proba(rows), atol=1e-6)
    np.testing.assert_allclose(ours, classifier.estimator.predict_proba(digits.data[:200]), atol=2e-3)
    assert (ours.argmax(axis=1) == classifier.estimator.predict(digits.data[:200])).all()
    assert classifier.images_seen == 200
    assert classifier.labels == DIGIT_NAMES and classifier.num_classes == 10
    assert not classifier.supports_gradients and classifier.cam_layer is None


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_top_regions_lie_on_the_strokes(classifier, digits, method):
    """Every pixel is a region (8×8 grid); hiding a pixel shows black (no ink). The 5 pixels
    that most support the predicted digit must be ink, and much more inked than average."""
    for index in (0, 1, 2, 3, 7):
        digit = digits.images[index]
        ctx = ExplainContext(classifier, as_rgb(digit), seed=0, segmentation="grid",
                             segmentation_params={"rows": 8, "cols": 8},
                             sampling=SamplingParams(samples=2000, fill="black"))
        (r,) = run_method(ctx, method, {}, None)
        assert r.label == digits.target[index]
        top = [i for i, w in r.ranked_segments()[:5]]
        ink = digit.ravel()
        assert all(ink[i] >= 4 for i in top), (index, top, ink[top])
        assert ink[top].mean() > ink[ink > 0].mean()  # the strongest strokes, not faint edges


def test_gradient_methods_are_refused_with_a_reason(classifier, digits):
    ctx = ExplainContext(classifier, as_rgb(digits.images[0]))
    for method in ("gradcam", "saliency", "dff"):
        with pytest.raises(ExplainerError, match="gradients"):
            run_method(ctx, method, {}, [0])
    (occ,) = run_method(ctx, "occlusion", {"window": 2, "stride": 1}, [0])
    assert np.any(occ.heatmap != 0)


def test_rgb_model_and_value_range(digits):
    """A 3-channel model sees R, G, B in order; the declared range maps 0→low, 255→high."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 2 * 2 * 3))
    y = (X[:, 0] > 0).astype(int)  # class 1 ⇔ the red value of the top-left pixel is high
    model = LogisticRegression().fit(X, y)
    clf = SklearnClassifier(model, id="t", name="t", input_size=(2, 2), channels=3, value_range=(-1, 1))
    img = np.zeros((1, 2, 2, 3), np.uint8)
    np.testing.assert_allclose(clf.features(img), -1.0)
    img[0, 0, 0, 0] = 255
    feats = clf.features(img)
    assert feats[0, 0] == 1.0 and np.all(feats[0, 1:] == -1.0)
    assert clf.predict(img)[0, 1] > clf.predict(np.zeros_like(img))[0, 1]


def test_bad_files_and_declarations(skops_bytes, digits):
    with pytest.raises(ModelError, match="never loaded"):
        load_sklearn_model(b"\x80\x04junk", "model.pkl", input_size=(8, 8))
    with pytest.raises(ModelError, match=".skops files"):
        load_sklearn_model(skops_bytes, "model.bin", input_size=(8, 8))
    with pytest.raises(ModelError, match="not a .skops model"):
        load_sklearn_model(b"hello", "model.skops", input_size=(8, 8))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ModelError, match="no schema.json"):
        load_sklearn_model(buf.getvalue(), "model.skops", input_size=(8, 8))
    with pytest.raises(ModelError, match="64 features per image but 8×8×3 = 192"):
        load_sklearn_model(skops_bytes, "m.skops", input_size=(8, 8), channels=3)
    with pytest.raises(ModelError, match="labels file has 3 names"):
        load_sklearn_model(skops_bytes, "m.skops", input_size=(8, 8), labels=["a", "b", "c"])
    with pytest.raises(ModelError, match="value range"):
        load_sklearn_model(skops_bytes, "m.skops", input_size=(8, 8), value_range=(1, 1))
    # a function inside the pipeline is code: not trusted, refused before loading
    risky = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500)).fit(
        digits.data[:100], digits.target[:100])
    with pytest.raises(ModelError, match="does not trust: _operator.neg"):
        load_sklearn_model(sio.dumps(risky), "m.skops", input_size=(8, 8))
    no_proba = SVC().fit(digits.data[:100], digits.target[:100])
    with pytest.raises(ModelError, match="no predict_proba"):
        load_sklearn_model(sio.dumps(no_proba), "m.skops", input_size=(8, 8))


def test_cli_explains_a_skops_model(skops_bytes, digits, tmp_path, capsys):
    import json

    from PIL import Image

    from explainers.cli import main

    model = tmp_path / "digits.skops"
    model.write_bytes(skops_bytes)
    png = tmp_path / "three.png"
    Image.fromarray(as_rgb(digits.images[3])).save(png)
    common = [str(png), "--model", str(model), "--input-size", "8", "--value-range", "0,16",
              "--channels", "1", "--resize", "stretch"]
    code = main(["explain", *common, "--methods", "lime", "--segmentation", "grid",
                 "--seg-param", "rows=8", "--seg-param", "cols=8", "--fill", "black",
                 "--samples", "1000", "--top-k", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (result,) = json.loads(captured.out)["results"]
    assert result["label"] == 3 == digits.target[3]
    ink = digits.images[3].ravel()
    assert all(ink[i] >= 4 for i, _ in result["segments"][:5])

    assert main(["explain", *common, "--methods", "gradcam"]) == 2
    assert "gradients" in capsys.readouterr().err
    assert main(["explain", str(png), "--model", str(model), "--methods", "lime"]) == 2
    assert "input size" in capsys.readouterr().err
