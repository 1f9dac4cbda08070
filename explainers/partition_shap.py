"""Partition SHAP: Owen values of the superpixels (or pixel blocks) over a hierarchy, on a budget.

The game is KernelSHAP's, ``v(S) = f(image with the leaves outside S filled)``, but the players
sit in a binary hierarchy (a linkage matrix in scipy's format, ``(M−1, 4)``: left, right,
distance, leaves below). The Owen value splits ``v(all) − v(∅)`` between the two children of the
root as a two-player Shapley game, then recursively inside each child, in both contexts (the
sibling absent / present): a node with children L, R and context values ``f00`` (outside only),
``f11`` (outside + node) costs two evaluations ``f10 = v(outside + L)``, ``f01 = v(outside + R)``
and passes on four sub-problems, each with half the weight::

    L: (f00 → f10) and (f01 → f11)        R: (f00 → f01) and (f10 → f11)

A leaf keeps ``(f11 − f00) × weight``. For an additive game every context gives the same
difference, so Owen = Shapley; for a balanced tree all of it costs O(M²) evaluations.

The budget (``max_evals``, counting ``v(∅)`` and ``v(all)``) is spent the way
``shap.PartitionExplainer`` spends it (shap 0.51, ``owen`` with ``fixed_context=None``), so
that on the same hierarchy and budget the values agree to float rounding (tested): sub-problems
wait in a priority queue keyed by ``−max|Δ| × weight`` over the explained labels (ties broken
by a seeded normal draw, as shap does with ``np.random.randn``), are taken ``batch_size``
evaluations at a time, and when the budget is spent each waiting sub-problem leaves its
``(f11 − f00) × weight`` on its node, which is then shared among the node's leaves in
proportion to their number (shap's ``lower_credit``). Efficiency holds exactly at any budget:
the values sum to ``v(all) − v(∅)``.

Every evaluation goes through the context's ``CoalitionCache``: a coalition that LIME or
KernelSHAP (same superpixels and fill), an earlier Partition run or the trust curves already
evaluated costs no model call, and the traversal keeps all C outputs, so every label and any
contrast "A rather than B" (Owen values are linear in the game) come from the same rows.

Hierarchies: ``colour`` merges adjacent superpixels by the distance of their mean colours
(CIELAB), closest pair first (agglomerative, on the region adjacency graph); ``balanced`` is
shap's image partition — axis-aligned halvings of pixel blocks down to single pixels (the
larger side first) — whose leaves are pixels; its result is reported on the blocks the budget
resolved (a block's weight is the sum of its pixels' values).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from explainers.base import ExplainerError, Explanation, MethodSpec, Timer, param, params_dict, register
from explainers.perturbation import FILLS, parse_hex

HIERARCHIES = ("colour", "balanced")
PARTITION_FILLS = ("blur", "mean", "inpaint") + tuple(f for f in FILLS if f not in ("blur", "mean"))


@dataclass(frozen=True)
class PartitionShapParams:
    """Budget, hierarchy and fill of Partition SHAP (shap's defaults: 500 evaluations, blur)."""

    max_evals: int = param(500, low=4, high=100_000,
                           help="model evaluations, v(∅) and v(all) included (shap's count)")
    hierarchy: str = param("colour", choices=HIERARCHIES,
                           help="colour: adjacent superpixels merged by mean colour; balanced: shap's pixel blocks")
    fill: str = param("blur", help=f"what hidden regions show: {', '.join(PARTITION_FILLS)} or #rrggbb")
    batch_size: int = param(10, low=2, high=1024,
                            help="evaluations taken from the queue at a time (shap's default: 10)")

    def validate(self) -> None:
        if self.fill not in PARTITION_FILLS:
            try:
                parse_hex(self.fill)
            except ExplainerError:
                raise ExplainerError(
                    f"fill must be one of {', '.join(PARTITION_FILLS)} or a colour like #808080, "
                    f"not {self.fill!r}"
                ) from None


# ---------------------------------------------------------------------- hierarchies
@dataclass(frozen=True)
class Tree:
    """A binary hierarchy over M leaves in scipy's linkage format, with each node's leaves.

    Node ``i < M`` is leaf i; node ``M + r`` is row r of ``linkage`` (children, distance, leaf
    count); the root is the last row. ``order[start[n]:stop[n]]`` are the leaves of node n.
    """

    linkage: np.ndarray  # (M−1, 4) float64
    order: np.ndarray  # (M,) leaves in depth-first order
    start: np.ndarray  # (2M−1,)
    stop: np.ndarray  # (2M−1,)

    @property
    def m(self) -> int:
        return len(self.order)

    @property
    def root(self) -> int:
        return 2 * self.m - 2

    def children(self, node: int) -> tuple[int, int]:
        row = self.linkage[node - self.m]
        return int(row[0]), int(row[1])

    def leaves(self, node: int) -> np.ndarray:
        return self.order[self.start[node] : self.stop[node]]


def make_tree(linkage: np.ndarray) -> Tree:
    """Check a linkage matrix (every node used once, root last) and index its leaves."""
    linkage = np.asarray(linkage, dtype=np.float64)
    if linkage.ndim != 2 or linkage.shape[1] != 4:
        raise ExplainerError(f"a hierarchy is an (M−1, 4) linkage matrix, got shape {linkage.shape}")
    m = len(linkage) + 1
    kids = linkage[:, :2].astype(np.int64)
    if sorted(kids.ravel().tolist()) != list(range(2 * m - 2)) or np.any(kids >= m + np.arange(m - 1)[:, None]):
        raise ExplainerError("the hierarchy must use every node once, children before parents")
    order = np.empty(m, dtype=np.int64)
    start = np.zeros(2 * m - 1, dtype=np.int64)
    stop = np.zeros(2 * m - 1, dtype=np.int64)
    pos = 0
    stack = [(2 * m - 2, False)]
    while stack:  # iterative depth-first walk: left subtree, then right
        node, done = stack.pop()
        if node < m:
            order[pos] = node
            start[node], stop[node] = pos, pos + 1
            pos += 1
            continue
        left, right = int(kids[node - m, 0]), int(kids[node - m, 1])
        if done:
            start[node], stop[node] = start[left], stop[right]
            continue
        stack.append((node, True))
        stack.append((right, False))
        stack.append((left, False))
    sizes = stop[m:] - start[m:]
    if not np.array_equal(sizes, linkage[:, 3].astype(np.int64)):
        raise ExplainerError("the hierarchy's leaf counts (column 4) do not match its children")
    return Tree(linkage, order, start, stop)


def colour_linkage(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Agglomerative hierarchy of the segments: the adjacent pair whose mean colours (CIELAB,
    pixel-weighted) are closest merges first; ties go to the smaller ids. Regions that touch no
    other (cannot happen for a segmentation of a whole image) merge by colour alone at the end."""
    from skimage.color import rgb2lab

    segments = np.asarray(segments, dtype=np.int64)
    m = int(segments.max()) + 1
    if m < 2:
        raise ExplainerError("Partition SHAP needs at least two superpixels")
    lab = rgb2lab(np.asarray(image, dtype=np.uint8)).reshape(-1, 3)
    flat = segments.ravel()
    count = np.bincount(flat, minlength=m).astype(np.float64)
    mean = np.stack([np.bincount(flat, weights=lab[:, c], minlength=m) for c in range(3)], 1) / count[:, None]
    pairs = set()
    for a, b in ((segments[:, :-1], segments[:, 1:]), (segments[:-1, :], segments[1:, :])):
        diff = a != b
        lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
        pairs.update(zip(lo.tolist(), hi.tolist()))
    neighbours: dict[int, set[int]] = {i: set() for i in range(m)}
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    means = {i: mean[i] for i in range(m)}
    pixels = {i: count[i] for i in range(m)}
    leaves = {i: 1 for i in range(m)}

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(means[a] - means[b]))

    heap = [(dist(a, b), a, b) for a, b in sorted(pairs)]
    heapq.heapify(heap)
    alive = set(range(m))
    rows = []
    nxt = m
    while len(alive) > 1:
        if not heap:  # disconnected regions: allow every pair
            live = sorted(alive)
            heap = [(dist(a, b), a, b) for i, a in enumerate(live) for b in live[i + 1 :]]
            heapq.heapify(heap)
        d, a, b = heapq.heappop(heap)
        if a not in alive or b not in alive:
            continue
        alive -= {a, b}
        pixels[nxt] = pixels[a] + pixels[b]
        means[nxt] = (means[a] * pixels[a] + means[b] * pixels[b]) / pixels[nxt]
        leaves[nxt] = leaves[a] + leaves[b]
        rows.append((a, b, d, leaves[nxt]))
        neighbours[nxt] = (neighbours.pop(a) | neighbours.pop(b)) - {a, b}
        for c in neighbours[nxt]:
            neighbours[c] -= {a, b}
            neighbours[c].add(nxt)
            heapq.heappush(heap, (dist(c, nxt), min(c, nxt), max(c, nxt)))
        alive.add(nxt)
        nxt += 1
    return np.asarray(rows, dtype=np.float64)


@lru_cache(maxsize=8)
def balanced_linkage(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """shap's image partition (``shap.maskers.Image.build_partition_tree``) of an (h, w) image
    with the colour channels kept together: (linkage, pixel of each leaf).

    Blocks are halved along their larger side (rows first on ties), larger blocks numbered
    first. As in shap, leaf ``j`` is the flat pixel ``M − 1 − j`` (shap's numbering runs
    backwards), so the tree is the same as shap's on every block of whole pixels.
    """
    m = int(h) * int(w)
    if m < 2:
        raise ExplainerError("Partition SHAP needs an image of at least two pixels")
    linkage = np.zeros((m - 1, 4))
    queue = [(0, 0, h, 0, w, -1, False)]
    ind = m - 2
    while queue:
        _, x0, x1, y0, y1, parent, is_left = heapq.heappop(queue)
        if parent >= 0:
            linkage[parent, 0 if is_left else 1] = ind + m
        xw, yw = x1 - x0, y1 - y0
        if xw > 1 or yw > 1:
            linkage[ind, 3] = xw * yw
            if xw >= yw:
                mid = x0 + xw // 2
                left, right = (x0, mid, y0, y1), (mid, x1, y0, y1)
            else:
                mid = y0 + yw // 2
                left, right = (x0, x1, y0, mid), (x0, x1, mid, y1)
            for box, flag in ((left, True), (right, False)):
                size = (box[1] - box[0]) * (box[3] - box[2])
                heapq.heappush(queue, (-size, *box, ind, flag))
        ind -= 1
    pixel_of_leaf = m - 1 - np.arange(m)
    return linkage, pixel_of_leaf


@lru_cache(maxsize=8)
def balanced_tree(h: int, w: int) -> tuple[Tree, np.ndarray]:
    """``balanced_linkage`` indexed as a ``Tree`` (built once per image size)."""
    linkage, pixel_of_leaf = balanced_linkage(h, w)
    return make_tree(linkage), pixel_of_leaf


# ---------------------------------------------------------------------- the Owen recursion
@dataclass(frozen=True)
class OwenResult:
    """Owen values of every output, kept sparse: the (few) nodes that hold value and their
    values per output, before they are lowered to the leaves — (2M − 1) × C would be 800 MB for
    a 224² pixel tree and 1000 classes. ``leaf_values(w)`` lowers one output or any linear
    combination of outputs (a contrast) to the M leaves."""

    tree: Tree
    held: np.ndarray  # (K,) node ids that hold value
    held_values: np.ndarray  # (K, C) their values per output
    expanded: np.ndarray  # (2M−1,) bool: node split at least once
    f_empty: np.ndarray  # (C,)
    f_full: np.ndarray  # (C,)
    evals: int  # evaluations counted against the budget (cached ones included)
    complete: bool  # every node was split in every context (the values are the exact Owen values)

    def leaf_values(self, weights: Any) -> np.ndarray:
        """(M,) values of the output ``weights`` (a column index or a (C,) vector of weights)."""
        if np.ndim(weights) == 0:
            column = self.held_values[:, int(weights)]
        else:
            column = self.held_values @ np.asarray(weights, dtype=np.float64)
        return lower_credit(self.tree, self.held, column)

    @property
    def values(self) -> np.ndarray:
        """(M, C) values of every output (small games only: it is dense)."""
        return np.stack([self.leaf_values(c) for c in range(self.held_values.shape[1])], axis=1)


def lower_credit(tree: Tree, held: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share each node's value among its children in proportion to their leaf counts (shap's
    ``lower_credit``), down to the leaves: (M,) from the values of the nodes ``held``.

    Shared that way, a node's value reaches each of its leaves in equal parts, so a leaf gets
    ``Σ value(a) / leaves(a)`` over its ancestors a: one slice addition per node that holds
    value (few: at most the sub-problems the budget left waiting), not a walk over the tree.
    """
    ordered = np.zeros(tree.m)  # leaves in depth-first order: every node is a slice
    for node, value in zip(np.asarray(held, dtype=np.int64), np.asarray(values, dtype=np.float64)):
        a, b = tree.start[node], tree.stop[node]
        ordered[a:b] += value / (b - a)
    out = np.empty(tree.m)
    out[tree.order] = ordered
    return out


def owen_values(
    evaluate: Callable[[np.ndarray], np.ndarray],
    tree: Tree,
    max_evals: int,
    outputs: Sequence[int],
    *,
    batch_size: int = 10,
    seed: int = 0,
) -> OwenResult:
    """Owen values of the game ``evaluate(Z) -> (k, C)`` over ``tree`` with shap's budgeted,
    prioritised recursion (see the module docstring). ``outputs`` are the columns whose largest
    change orders the queue; every column gets its values."""
    m = tree.m
    outputs = np.asarray(list(outputs), dtype=np.int64)
    empty = np.zeros(m, dtype=bool)
    ends = np.asarray(evaluate(np.stack([empty, ~empty])), dtype=np.float64)  # shap averages in float64
    f00, f11 = ends[0], ends[1]
    dvalues: dict[int, np.ndarray] = {}  # sparse: only the nodes that end up holding value

    def hold(node: int, value: np.ndarray) -> None:
        if node in dvalues:
            dvalues[node] += value
        else:
            dvalues[node] = np.array(value, dtype=np.float64)

    expanded = np.zeros(2 * m - 1, dtype=bool)
    tiebreak = np.random.RandomState(int(seed) % (2**32))  # shap draws np.random.randn()
    queue: list[tuple[Any, float, int]] = []
    items: dict[int, tuple] = {}
    counter = 0

    def put(priority: Any, item: tuple) -> None:
        nonlocal counter
        heapq.heappush(queue, (priority, tiebreak.randn(), counter))
        items[counter] = item
        counter += 1

    def get() -> tuple:
        return items.pop(heapq.heappop(queue)[2])

    budget = int(max_evals) - 2
    put(0, (empty, f00, f11, tree.root, 1.0))
    evals = 0
    complete = True
    while queue:
        if evals >= budget:  # out of budget: waiting sub-problems stay on their nodes
            complete = False
            while queue:
                _, a, b, node, weight = get()
                hold(node, (b - a) * weight)
            break
        batch, masks = [], []
        while queue and len(masks) < batch_size and evals + len(masks) < budget:
            m00, a, b, node, weight = get()
            if node < m:
                hold(node, (b - a) * weight)
                continue
            left, right = tree.children(node)
            m10 = m00.copy()
            m10[tree.leaves(left)] = True
            m01 = m00.copy()
            m01[tree.leaves(right)] = True
            expanded[node] = True
            batch.append((m00, m10, m01, a, b, left, right, weight))
            masks += [m10, m01]
        if not batch:
            continue
        out = np.asarray(evaluate(np.stack(masks)), dtype=np.float64)
        evals += len(masks)
        for i, (m00, m10, m01, a, b, left, right, weight) in enumerate(batch):
            f10, f01 = out[2 * i], out[2 * i + 1]
            w = weight / 2
            put(-np.max(np.abs(f10[outputs] - a[outputs])) * w, (m00, a, f10, left, w))
            put(-np.max(np.abs(f01[outputs] - a[outputs])) * w, (m00, a, f01, right, w))
            put(-np.max(np.abs(b[outputs] - f01[outputs])) * w, (m01, f01, b, left, w))
            put(-np.max(np.abs(b[outputs] - f10[outputs])) * w, (m10, f10, b, right, w))
    held = np.fromiter(dvalues, dtype=np.int64, count=len(dvalues))
    held_values = np.stack([dvalues[n] for n in held]) if len(held) else np.zeros((0, ends.shape[1]))
    return OwenResult(tree, held, held_values, expanded, np.asarray(f00), np.asarray(f11), evals + 2, complete)


def blocks_of(tree: Tree, expanded: np.ndarray) -> np.ndarray:
    """Block id of every leaf: the nodes never split whose parent was (the resolution the budget
    reached), numbered in depth-first order."""
    block = np.empty(tree.m, dtype=np.int64)
    stack, next_id = [tree.root], 0
    found = []
    while stack:
        node = stack.pop()
        if node >= tree.m and expanded[node]:
            left, right = tree.children(node)
            stack += [right, left]
        else:
            found.append(node)
    for next_id, node in enumerate(found):
        block[tree.leaves(node)] = next_id
    return block


# ---------------------------------------------------------------------- the method
@dataclass
class PartitionRun:
    """One traversal (cached per context): all outputs' Owen values and how to paint them."""

    result: OwenResult
    segments: np.ndarray  # (H, W) what the weights are painted on
    leaf_to_segment: np.ndarray  # (M,) segment of each leaf
    calls: int
    tree_leaves: int


def partition_run(ctx: Any, params: PartitionShapParams, labels: Sequence[int],
                  reuse: bool = False) -> tuple[PartitionRun, int]:
    """The cached traversal for (params, labels); returns (run, new model calls). With ``reuse``
    a cached traversal whose labels include these serves too (contrasts: the rows already there)."""
    prefix = ("partition_shap", int(params.max_evals), params.hierarchy, params.fill, int(params.batch_size))
    key = prefix + (tuple(int(c) for c in labels),)
    cached = ctx.cache.get(key)
    if cached is not None:
        return cached, 0
    if reuse:  # a traversal for more labels holds these labels' values (and any contrast) too
        wanted = {int(c) for c in labels}
        for k, v in list(ctx.cache.items()):
            if isinstance(k, tuple) and k[:5] == prefix and len(k) == 6 and wanted <= set(k[5]):
                return v, 0
    h, w = ctx.image.shape[:2]
    if params.hierarchy == "colour":
        segments = ctx.segments()
        tree = make_tree(colour_linkage(ctx.image, segments))
        cache = ctx.coalition_cache(params.fill)
        leaf_map = None
    else:
        tree, pixel_of_leaf = balanced_tree(h, w)
        leaf_map = np.empty(h * w, dtype=np.int32)
        leaf_map[pixel_of_leaf] = np.arange(h * w, dtype=np.int32)
        leaf_map = leaf_map.reshape(h, w)  # leaf id of every pixel
        cache = ctx.coalition_cache(params.fill, leaf_map, key=("pixels", h, w))
    before = cache.model_calls
    done = [0]
    total = int(params.max_evals)

    def evaluate(Z: np.ndarray) -> np.ndarray:
        out, _ = cache.outputs(Z)
        done[0] += len(Z)
        ctx.report(min(done[0], total), total, "Partition SHAP: masked images")
        return out

    ctx.report(0, total, "Partition SHAP: masked images")
    result = owen_values(evaluate, tree, int(params.max_evals), labels,
                         batch_size=int(params.batch_size), seed=ctx.seed)
    if "probs" not in ctx.cache:
        ctx.cache["probs"] = np.asarray(result.f_full, dtype=np.float32)
    if leaf_map is None:
        painted, leaf_to_segment = segments, np.arange(tree.m)
    else:
        leaf_to_segment = blocks_of(tree, result.expanded)
        painted = leaf_to_segment[leaf_map].astype(np.int32)
    run = PartitionRun(result, painted, leaf_to_segment, cache.model_calls - before, tree.m)
    ctx.cache[key] = run
    return run, run.calls


def segment_values(run: PartitionRun, column: np.ndarray) -> np.ndarray:
    """Per painted segment: the sum of its leaves' values of one output (or a difference)."""
    return np.bincount(run.leaf_to_segment, weights=column, minlength=int(run.leaf_to_segment.max()) + 1)


def run_partition_shap(ctx: Any, params: PartitionShapParams, labels: list[int],
                       contrast: int | None = None) -> list[Explanation]:
    """Owen values for each label from one budgeted traversal (ordered by the labels' changes)."""
    with Timer() as timer:
        run, calls = partition_run(ctx, params, labels, reuse=contrast is not None)
        res = run.result
    out = []
    for i, label in enumerate(labels):
        weights_c = np.zeros(len(res.f_full))
        weights_c[label] = 1.0
        base, full = float(res.f_empty[label]), float(res.f_full[label])
        extras: dict[str, Any] = {}
        if contrast is not None:
            weights_c[int(contrast)] = -1.0
            base -= float(res.f_empty[contrast])
            full -= float(res.f_full[contrast])
            extras.update(contrast_name=ctx.label_name(contrast), contrast_score=float(res.f_full[contrast]))
        weights = segment_values(run, res.leaf_values(weights_c))
        out.append(Explanation(
            method="partition_shap",
            label=int(label),
            label_name=ctx.label_name(int(label)),
            score=float(res.f_full[label]),
            heatmap=weights.astype(np.float32)[run.segments],
            segments=run.segments,
            segment_weights=weights,
            base_value=base,
            local_prediction=base + float(weights.sum()),
            model_calls=calls if i == 0 else 0,
            seconds=timer.seconds,
            params={**params_dict(params), "seed": ctx.seed, "segmentation": ctx.segmentation
                    if params.hierarchy == "colour" else "pixels"},
            extras={
                "evals": int(res.evals),
                "exact": bool(res.complete),
                "leaves": int(run.tree_leaves),
                "blocks": int(len(weights)),
                "efficiency_gap": float(abs(weights.sum() - (full - base))),
                "shared_calls": int(run.calls),
                **extras,
            },
            contrast=contrast,
        ))
    return out


# ---------------------------------------------------------------------- registration
register(MethodSpec(
    name="partition_shap", title="Partition SHAP", family="perturbation", order=25,
    scale_group="probability per superpixel", additive=True,
    params_type=PartitionShapParams, run=run_partition_shap, contrast=True,
    test_params={"max_evals": 64},
    description="Owen values over a hierarchy of regions (shap's PartitionExplainer): the score is "
    "split between the two halves of the image, then within each half, as far as the "
    "evaluation budget reaches.",
))

__all__ = [
    "PartitionShapParams", "Tree", "make_tree", "colour_linkage", "balanced_linkage", "owen_values",
    "OwenResult", "lower_credit", "blocks_of", "partition_run", "run_partition_shap",
    "HIERARCHIES", "PARTITION_FILLS",
]
