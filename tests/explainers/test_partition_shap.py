"""Partition SHAP: Owen = Shapley on additive games, brute-force Owen values on a small hierarchy,
agreement with shap.PartitionExplainer on the same hierarchy and budget, and the shared
coalition cache (coalitions another method evaluated cost no model call)."""
import itertools

import keras
import numpy as np
import pytest

from explainers.base import ExplainerError, make_params
from explainers.context import ExplainContext, SamplingParams
from explainers.partition_shap import (
    PartitionShapParams,
    balanced_linkage,
    colour_linkage,
    make_tree,
    owen_values,
)
from explainers.perturbation import CoalitionCache, inpaint_fill
from explainers.runner import run_method
from explainers.segmentation import segment
from model_zoo.classifier import Classifier

SIZE = 16


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    """A tiny real CNN with fixed seeded weights (unsaturated softmax over 3 classes)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(0, {4: 0.3, 2: 0.05, 1: 0.0}[w.ndim], w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return Classifier(model, id="tiny", name="tiny", labels=["a", "b", "c"], preprocessing="unit", batch_size=16)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    img = np.random.default_rng(5).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    img[2:8, 3:9] = (250, 240, 60)
    return img


def random_linkage(m: int, seed: int) -> np.ndarray:
    """A random binary hierarchy over m leaves (random pairs merged), in scipy's format."""
    rng = np.random.default_rng(seed)
    alive, sizes, rows = list(range(m)), {i: 1 for i in range(m)}, []
    while len(alive) > 1:
        a, b = rng.choice(len(alive), 2, replace=False)
        na, nb = alive[a], alive[b]
        new = m + len(rows)
        sizes[new] = sizes[na] + sizes[nb]
        rows.append((na, nb, 1.0, sizes[new]))
        alive = [x for x in alive if x not in (na, nb)] + [new]
    return np.asarray(rows, dtype=np.float64)


def game_evaluate(game):
    return lambda Z: np.asarray(game(np.asarray(Z, bool)), dtype=np.float64)[:, None]


def nonadditive_game(m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=m)
    A = rng.normal(scale=0.5, size=(m, m))
    return lambda z: 1 / (1 + np.exp(-(0.5 * z @ c + np.einsum("ni,ij,nj->n", 1.0 * z, A, 1.0 * z) * 0.3)))


def brute_force_owen(game, linkage: np.ndarray) -> np.ndarray:
    """The Owen value by its definition: the mean marginal contribution over every player order
    that keeps each cluster of the hierarchy together (one L/R choice per internal node)."""
    tree = make_tree(linkage)
    m = tree.m
    internal = list(range(m, 2 * m - 1))
    phi = np.zeros(m)
    orders = 0
    for flips in itertools.product((False, True), repeat=len(internal)):
        flip = dict(zip(internal, flips))

        def walk(node):
            if node < m:
                return [node]
            left, right = tree.children(node)
            first, second = (right, left) if flip[node] else (left, right)
            return walk(first) + walk(second)

        z = np.zeros(m, bool)
        prev = game(z[None])[0]
        for player in walk(tree.root):
            z[player] = True
            now = game(z[None])[0]
            phi[player] += now - prev
            prev = now
        orders += 1
    return phi / orders


def test_owen_equals_shapley_on_an_additive_game():
    m = 9
    coef = np.random.default_rng(1).normal(size=m)
    evaluate = game_evaluate(lambda z: z @ coef + 0.3)
    for linkage in (random_linkage(m, 0), balanced_linkage(3, 3)[0]):
        res = owen_values(evaluate, make_tree(linkage), 100_000, [0])
        assert res.complete
        np.testing.assert_allclose(res.values[:, 0], coef, atol=1e-12)  # Shapley of an additive game


def test_equals_brute_force_owen_values_on_a_small_hierarchy():
    m = 7
    game = nonadditive_game(m, seed=4)
    linkage = random_linkage(m, 2)
    res = owen_values(game_evaluate(game), make_tree(linkage), 100_000, [0])
    assert res.complete
    np.testing.assert_allclose(res.values[:, 0], brute_force_owen(game, linkage), atol=1e-12)
    # a hierarchy matters for a non-additive game: another tree gives other values
    other = owen_values(game_evaluate(game), make_tree(random_linkage(m, 9)), 100_000, [0])
    assert np.abs(other.values[:, 0] - res.values[:, 0]).max() > 1e-3


def test_budget_keeps_efficiency_and_counts_like_shap():
    m = 12
    game = nonadditive_game(m, seed=1)
    tree = make_tree(random_linkage(m, 3))
    for budget in (4, 11, 40):
        res = owen_values(game_evaluate(game), tree, budget, [0], batch_size=10)
        assert not res.complete and res.evals <= budget + 1
        full, empty = game(np.ones((1, m), bool))[0], game(np.zeros((1, m), bool))[0]
        assert abs(res.values[:, 0].sum() - (full - empty)) < 1e-12


def test_balanced_hierarchy_is_shaps_image_partition():
    import shap

    for h, w in ((5, 7), (8, 8), (3, 10)):
        linkage, pixel_of_leaf = balanced_linkage(h, w)
        np.testing.assert_array_equal(linkage, shap.maskers.Image(np.zeros((h, w, 1))).clustering)
        np.testing.assert_array_equal(np.sort(pixel_of_leaf), np.arange(h * w))


def test_colour_hierarchy_merges_adjacent_similar_regions_first():
    img = np.zeros((8, 12, 3), np.uint8)
    img[:, :4] = (200, 30, 30)
    img[:, 4:8] = (210, 35, 30)  # nearly the same red
    img[:, 8:] = (20, 30, 220)
    seg = np.repeat(np.arange(3, dtype=np.int32)[None], 8, 0).repeat(4, 1)
    linkage = colour_linkage(img, seg)
    assert sorted(linkage[0, :2]) == [0, 1]  # the two reds first
    assert linkage[-1, 3] == 3 and make_tree(linkage).m == 3
    # not adjacent → not merged first even when similar: red | blue | red
    img2 = img.copy()
    img2[:, 4:8], img2[:, 8:] = (20, 30, 220), (205, 30, 30)
    assert sorted(colour_linkage(img2, seg)[0, :2]) != [0, 2]


@pytest.mark.parametrize("budget", [10, 36, 200])
def test_agrees_with_shap_partition_explainer_on_the_same_hierarchy(classifier, image, budget):
    """Our superpixel hierarchy fed to shap as its clustering; same masked images, same budget."""
    import shap

    seg = segment(image, "grid", {"rows": 4, "cols": 4})
    cache = CoalitionCache(classifier.predict, image, seg, "blur")
    tree = make_tree(colour_linkage(image, seg))

    class SegmentMasker(shap.maskers.Masker):
        shape = (1, tree.m)
        clustering = tree.linkage

        def __call__(self, mask, x):
            return (cache.render(np.asarray(mask, bool)[None]),)

    label = 1
    ours = owen_values(lambda Z: cache.outputs(Z)[0], tree, budget, [label], batch_size=10, seed=0)
    np.random.seed(0)  # shap breaks priority ties with np.random.randn(); ours with RandomState(seed)
    explainer = shap.PartitionExplainer(classifier.predict, SegmentMasker())
    theirs = explainer(np.ones((1, tree.m)), max_evals=budget, outputs=np.array([label]), silent=True)
    assert explainer.last_eval_count + 2 == ours.evals
    np.testing.assert_allclose(ours.values[:, label], theirs.values[0][:, 0], atol=1e-6)


@pytest.mark.parametrize("budget", [20, 120])
def test_agrees_with_shap_image_masker_on_its_own_partition(classifier, image, budget):
    """shap's own Image masker and pixel partition vs our balanced hierarchy, gray fill."""
    import shap

    ctx = ExplainContext(classifier, image, seed=0)
    ours = run_method(ctx, "partition_shap", {"max_evals": budget, "hierarchy": "balanced", "fill": "gray"}, [1])[0]
    np.random.seed(0)
    masker = shap.maskers.Image(np.full(image.shape, 128.0), image.shape)
    explainer = shap.PartitionExplainer(lambda x: classifier.predict(np.asarray(x).astype(np.uint8)), masker)
    theirs = explainer(image[None], max_evals=budget, outputs=np.array([1]), silent=True)
    per_pixel = theirs.values[0][..., 0].sum(-1)  # their values per pixel and channel
    per_block = np.bincount(ours.segments.ravel(), per_pixel.ravel())
    np.testing.assert_allclose(ours.segment_weights, per_block, atol=1e-6)
    assert ours.extras["blocks"] > 1 and not ours.extras["exact"]


def test_coalitions_another_method_evaluated_cost_nothing(classifier, image):
    ctx = ExplainContext(classifier, image, seed=0, segmentation="grid",
                         segmentation_params={"rows": 2, "cols": 3},
                         sampling=SamplingParams(samples=64, fill="blur"))
    run_method(ctx, "lime", None, [0])  # 64 rows = every coalition of 6 superpixels
    assert ctx.perturbations().exhaustive
    before = classifier.images_seen
    out = run_method(ctx, "partition_shap", {"max_evals": 300, "fill": "blur"}, [0, 2])
    assert classifier.images_seen == before  # every coalition came from LIME's rows
    assert [r.model_calls for r in out] == [0, 0] and out[0].extras["exact"] and out[0].extras["evals"] > 10

    # another fill: nothing shared with LIME, but a second budget reuses the first traversal
    ctx2 = ExplainContext(classifier, image, seed=0, segmentation="grid", segmentation_params={"rows": 4, "cols": 4})
    before = classifier.images_seen
    first = run_method(ctx2, "partition_shap", {"max_evals": 100, "fill": "gray"}, [1])[0]
    assert classifier.images_seen - before == first.model_calls <= 101
    before = classifier.images_seen
    more = run_method(ctx2, "partition_shap", {"max_evals": 200, "fill": "gray"}, [1])[0]
    assert classifier.images_seen - before == more.model_calls <= 200 - 80
    before = classifier.images_seen
    again = run_method(ctx2, "partition_shap", {"max_evals": 200, "fill": "gray"}, [1, 0])
    assert classifier.images_seen - before == sum(r.model_calls for r in again)
    np.testing.assert_allclose(again[0].local_prediction, again[0].score, atol=1e-5)  # efficiency


def test_fills_including_inpaint(classifier, image):
    for fill in ("blur", "mean", "inpaint", "black", "#336699"):
        ctx = ExplainContext(classifier, image, seed=0, segmentation="grid", segmentation_params={"rows": 3, "cols": 3})
        r = run_method(ctx, "partition_shap", {"max_evals": 40, "fill": fill}, [1])[0]
        assert np.isfinite(r.segment_weights).all() and np.any(r.segment_weights != 0)
        assert abs(r.local_prediction - r.score) < 1e-5


def test_inpaint_fill_continues_the_surroundings():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:, :20] = (200, 0, 0)
    img[:, 20:] = (0, 0, 200)
    hidden = np.zeros((40, 40), bool)
    hidden[:, 15:25] = True
    out = inpaint_fill(img, hidden)
    np.testing.assert_array_equal(out[~hidden], img[~hidden])  # visible pixels untouched
    band = out[:, 15:25].astype(float)
    assert band[:, 0, 0] .mean() > band[:, -1, 0].mean() + 50  # red fades towards blue
    assert band[:, -1, 2].mean() > band[:, 0, 2].mean() + 50
    assert (inpaint_fill(img, np.ones((40, 40), bool)) == np.rint(img.reshape(-1, 3).mean(0))).all()


def test_bad_parameters_are_clear():
    for bad in ({"max_evals": 3}, {"hierarchy": "kmeans"}, {"fill": "purple"}, {"batch_size": 1},
                {"max_evals": "many"}):
        with pytest.raises(ExplainerError):
            make_params(PartitionShapParams, bad)
    with pytest.raises(ExplainerError):
        make_tree(np.array([[0, 0, 1.0, 2]]))
    with pytest.raises(ExplainerError):
        colour_linkage(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int32))


def test_progress_cancel_and_resume_without_paying_twice(classifier, image):
    from explainers.base import Cancelled

    stages = []

    def stop_early(done, total, stage):
        stages.append((done, total, stage))
        if done >= 40:
            raise Cancelled()

    ctx = ExplainContext(classifier, image, seed=0, segmentation="grid",
                         segmentation_params={"rows": 4, "cols": 4}, progress=stop_early)
    before = classifier.images_seen
    with pytest.raises(Cancelled):
        run_method(ctx, "partition_shap", {"max_evals": 120, "fill": "gray"}, [1])
    paid = classifier.images_seen - before
    own = [s for s in stages if "Partition SHAP" in s[2]]  # segmentation reports its own stage first
    assert own[0][:2] == (0, 120) and own[-1] == stages[-1] and paid >= 40
    ctx.progress = None
    before = classifier.images_seen
    out = run_method(ctx, "partition_shap", {"max_evals": 120, "fill": "gray"}, [1])[0]
    assert classifier.images_seen - before == out.model_calls <= 120 + 1 - paid  # the cancelled rows are kept
