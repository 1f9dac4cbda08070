"""The registry is the one source of method facts: a method registered at test time shows up,
with its own parameters, in the CLI listing, in the contract test, in an export, in the shared
colour-scale rule and in validation, without any other file naming it."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pytest

from explainers import export
from explainers.base import (
    ExplainerError, Explanation, MethodSpec, Timer, display_order, get_method, make_params, methods, param,
    params_dict, register, unregister,
)
from explainers.render import method_limits

TOY = "toy_stripes"


@dataclass(frozen=True)
class ToyParams:
    """A method of the test's own: stripes weighted by the label's probability."""

    bands: int = param(4, low=1, high=16, help="number of stripes")
    strength: float = param(1.5, above=0.0, high=10.0, help="scale of the map")
    direction: str = param("rows", choices=("rows", "cols"), help="stripe direction")


def run_toy(ctx, params: ToyParams, labels: list[int]) -> list[Explanation]:
    with Timer() as timer:
        before = ctx.classifier.images_seen
        probs = ctx.probabilities()
        calls = ctx.classifier.images_seen - before
        h, w = ctx.image.shape[:2]
        axis = np.arange(h if params.direction == "rows" else w)
        stripes = (axis * params.bands // len(axis)).astype(np.float32) + 1.0
        grey = ctx.image.mean(axis=-1).astype(np.float32) / 255.0 + 0.1
    out = []
    for i, label in enumerate(labels):
        line = stripes * (label + 1) * params.strength
        heat = line[:, None] * np.ones((1, w), np.float32) if params.direction == "rows" else \
            np.ones((h, 1), np.float32) * line[None, :]
        out.append(Explanation(
            method=TOY, label=label, label_name=ctx.label_name(label), score=float(probs[label]),
            heatmap=heat * grey * (1 if label % 2 else -1), model_calls=calls if i == 0 else 0,
            seconds=timer.seconds, params=params_dict(params), extras={"bands": params.bands},
        ))
    return out


TOY_SPEC = MethodSpec(
    name=TOY, title="Toy stripes", family="toy", order=5, scale_group="toy units",
    params_type=ToyParams, run=run_toy, test_params={"bands": 3},
    description="A method registered by a test.",
)


@pytest.fixture
def toy():
    register(TOY_SPEC)
    yield TOY_SPEC
    unregister(TOY)


def test_the_toy_method_is_listed_with_its_parameters_and_bounds(toy, capsys):
    from explainers.cli import main

    assert main(["methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["methods"]}
    row = rows[TOY]
    assert row["title"] == "Toy stripes" and row["family"] == "toy"
    assert row["params"] == {"bands": 4, "strength": 1.5, "direction": "rows"}
    assert row["bounds"]["bands"]["low"] == 1 and row["bounds"]["bands"]["high"] == 16
    assert row["bounds"]["direction"]["choices"] == ["rows", "cols"]
    assert list(rows)[0] == TOY  # order 5: before every built-in method


def test_the_toy_method_passes_the_contract(toy):
    from tests.explainers.test_contract import check_contract, tiny_classifier, tiny_image

    check_contract(tiny_classifier(), tiny_image(), TOY)


def test_bounds_from_the_metadata_are_enforced(toy):
    assert make_params(ToyParams, {"bands": 16}).bands == 16
    with pytest.raises(ExplainerError, match="bands must be between 1 and 16, not 17"):
        make_params(ToyParams, {"bands": 17})
    with pytest.raises(ExplainerError, match="strength must be > 0"):
        make_params(ToyParams, {"strength": 0.0})
    with pytest.raises(ExplainerError, match="direction must be one of rows, cols"):
        make_params(ToyParams, {"direction": "diagonal"})
    with pytest.raises(ExplainerError, match="strength must be a finite number"):
        make_params(ToyParams, {"strength": float("nan")})


def test_the_toy_method_reaches_an_export_and_the_display_order(toy):
    from tests.models import tiny_classifier, tiny_image
    from explainers.context import ExplainContext
    from explainers.runner import run_method

    from model_zoo.registry import prepare_image

    clf = tiny_classifier()
    fitted = prepare_image(clf, tiny_image(), policy="crop")
    ctx = ExplainContext(clf, fitted.image, segmentation="grid", segmentation_params={"rows": 4, "cols": 4})
    results = run_method(ctx, "occlusion", {"window": 8, "stride": 4}, [2]) + run_method(ctx, TOY, None, [2])
    doc = export.run_document(results, fitted=fitted, model=clf, image_name="tiny", image_sha256="0", seed=0,
                              samples=64, fill="mean", segmentation="grid", methods={TOY: {"bands": 4}})
    parsed = json.loads(export.to_json(doc))
    toy_rows = [r for r in parsed["results"] if r["method"] == TOY]
    assert len(toy_rows) == 1 and toy_rows[0]["params"]["bands"] == 4 and toy_rows[0]["extras"] == {"bands": 4}
    assert parsed["methods"][TOY] == {"bands": 4}
    arrays = np.load(io.BytesIO(export.results_npz(fitted, results, doc)))
    assert list(arrays["methods"]) == ["occlusion", TOY]
    assert display_order(["occlusion", TOY]) == [TOY, "occlusion"]
    assert get_method(TOY).title == "Toy stripes"


def test_scale_groups_come_from_the_registry(toy):
    def exp(method, value):
        return Explanation(method=method, label=0, label_name="a", score=0.5, heatmap=np.full((2, 2), value))

    twin = MethodSpec(name="toy_twin", title="Toy twin", family="toy", scale_group="toy units",
                      params_type=ToyParams, run=run_toy)
    register(twin)
    try:
        limits = method_limits([exp(TOY, 2.0), exp("toy_twin", 8.0), exp("occlusion", 0.5)], percentile=100)
    finally:
        unregister("toy_twin")
    assert limits == {TOY: 8.0, "toy_twin": 8.0, "occlusion": 0.5}


def test_lime_and_kernel_shap_share_one_scale_and_cams_need_no_gradients_when_they_say_so():
    specs = methods()
    assert specs["lime"].scale_key == specs["kernel_shap"].scale_key != specs["gradcam"].scale_key
    assert not specs["scorecam"].needs_gradients and not specs["eigencam"].needs_gradients
    assert specs["scorecam"].needs_feature_maps
    assert [n for n in specs if specs[n].default] == ["lime", "kernel_shap", "gradcam"]
