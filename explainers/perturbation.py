"""The shared perturbation pass behind LIME, KernelSHAP and the trust metrics.

One ``PerturbationRun`` = image + superpixels + fill. It chooses coalitions ``Z`` (n, M) bool
(``True``: the segment shows the image, ``False``: it shows the fill), renders the masked images
in vectorised numpy batches, sends them to ``predict`` and keeps the full (n, C) output ``Y``.
Every estimator is then a cheap weighted regression on the same rows, for any label, and a run
can be extended later without redoing the first rows. The model's forward passes are the cost;
everything here is there to spend as few of them as possible and to get the most out of each.

Sampling design (shared by LIME and KernelSHAP): a stratified sample without replacement
------------------------------------------------------------------------------------------
* Row 0 is the image itself (all segments present), row 1 the fully masked image (none
  present): fixed anchors, LIME's reference row and KernelSHAP's ``f(x)`` and ``f(∅)``.
* Every other row is a coalition of size ``s`` in ``1..M−1``, and rows come in complement
  pairs ``z, 1 − z`` (paired sampling: KernelSHAP is then exact for games of order ≤ 2, and
  the Shapley value only depends on ``v(z) − v(1 − z)``). A pair belongs to the *pair
  stratum* ``j = min(s, M − s)``; stratum ``j`` holds ``P_j = C(M, j)`` pairs
  (``C(M, M/2) / 2`` for ``j = M/2``).
* **No coalition is drawn twice**: within a stratum the pairs are a seeded random order of
  distinct pairs (a permutation of all of them for small strata, seeded draws that skip
  repeats for large ones). So n rows are n distinct model calls, and a stratum is enumerated
  completely once it is exhausted, as shap's KernelExplainer does for the sizes
  1, M−1, 2, M−2, … that fit in its budget.
* **How many pairs each stratum gets** is a fixed apportionment of the pair slots, the same
  for every seed: slot after slot goes to the stratum with the largest ``a_j / (c_j + ½)``
  (Sainte-Laguë; ``c_j`` pairs taken so far; exhausted strata drop out, ties go to the smaller
  ``j``). The shares minimise a mix of the two estimators' variances. KernelSHAP: the Shapley
  value is ``φ_i = (Δ + Σ_{s=1}^{M−1} D_{s,i}) / M`` with ``D_{s,i}`` the mean of ``v`` over
  size-s coalitions with ``i`` minus without, and ``D̂_s`` from ``n_s`` rows has variance
  ∝ ``1 / (n_s s (M−s))``: ``V_K = Σ_j K_j / n_j`` with ``K_j = Σ_{s∈{j,M−j}} 1 / (s (M−s))``.
  LIME: the Horvitz–Thompson term of size ``s`` has variance ∝ ``W_s² / n_s`` with
  ``W_s = 2^−M C(M,s) k(s)`` (lime's mass of the size, ``k`` its kernel at the default width
  0.25): ``V_L = Σ_j L_j / n_j`` with ``L_j = Σ_{s∈{j,M−j}} W_s²``. Minimising
  ``λ V_K / ΣK + (1 − λ) V_L / ΣL`` for a fixed number of rows gives (Lagrange)::

      a_j ∝ √( λ K_j / Σ_k K_k  +  (1 − λ) L_j / Σ_k L_k )

  ``λ = KERNEL_SHARE`` (0.05) was chosen on ``benchmarks/sample_efficiency.py``: the largest
  share that keeps our LIME at least as accurate as the lime package at the same number of
  rows on ~35 quickshift superpixels. Larger shares make KernelSHAP more accurate and LIME
  less (the trade-off is tabulated in ``benchmarks/README.md``); a run takes ``kernel_share``.
* Because the allocation does not depend on the seed or on the number of rows asked for, the
  first n rows of a run are exactly the rows of a fresh n-row run: a run extended from N to N'
  has exactly the rows of a fresh N'-row run, and ``rows(n)`` of a longer run is a valid
  n-row design. Once every coalition is in (``n = 2^M``) the run is ``exhaustive``.
* A request for KernelSHAP alone (λ = 1) at a fixed sample count orders its first pairs
  differently (``design_sampler``; "auto" runs keep this design): greedily, from a
  pool of this design's pairs, the pair that most shrinks the posterior variance of the
  Shapley values under the kernel surrogate's prior (``explainers.quadrature``,
  ``design_sampler``); after ``QUADRATURE_PAIRS`` pairs it continues with this design. Anchors,
  complement pairs, no repeats and the prefix property are the same.

Weights. Within a size ``s`` the ``n_s`` rows of a prefix are a simple random sample without
replacement of the ``C(M, s)`` coalitions of that size, each included with probability
``n_s / C(M, s)``. Any sum over all coalitions ``Σ_z t(z) g(z)`` with a target ``t`` that
depends on the size only is therefore estimated without bias by the Horvitz–Thompson sum
``Σ_rows t(z) C(M, s) / n_s · g(z)`` over the rows (exact for completely enumerated sizes):

* KernelSHAP (target: the Shapley kernel ``π(z) = (M−1) / (C(M,s) s (M−s))``) weighs a row by
  ``π(z) C(M,s) / n_s = (M−1) / (s (M−s) n_s)``; on an exhaustive run this is ``π(z)``.
* LIME (target: lime's uniform draw, ``2^−M`` per coalition) multiplies lime's kernel by
  ``2^−M C(M,s) / n_s``, scaled so that the ratios of the sampled rows sum to ``n − 2`` (so
  that lime's ridge ``alpha`` keeps its meaning for n samples; 1 for the anchors and for every
  row of an exhaustive run). A size with no row yet has no estimate; every size has rows after
  a few rows per pair stratum (22 rows for M = 12, 74 for M = 35, 222 for M = 100).
* ``Rows.log_q`` is the log of the design's density per row, ``log(n_s / (n − 2)) − log C(M, s)``.

Duplicates cannot occur, so the run keeps no coalition → prediction map: ``n`` rows cost ``n``
model calls (the metrics module reuses rows by looking coalitions up in ``Z``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy.special import comb, gammaln

from explainers.base import Cancelled, ExplainerError, ProgressFn

KERNEL_SHARE = 0.05
"""λ: how much the allocation of rows to coalition sizes favours KernelSHAP over LIME (0..1)."""

_STREAM_KEY = 0x5EED_57A7
"""Second rng key of the within-stratum orders (seed, key, stratum[, chunk])."""

_PERMUTE_LIMIT = 1 << 16
"""Strata with at most this many pairs are ordered by a permutation of all of them."""

_CHUNK = 256
"""Coalitions per seeded draw in large strata."""

MAX_EXHAUSTIVE_SEGMENTS = 24
"""A run can enumerate all 2^M coalitions only up to this many segments."""

MAX_SEGMENTS = 1000
"""The most superpixels a perturbation run (and every segmenter) accepts.

Why: each row is a (M,) coalition and the regressions build an M × M Gram matrix; past ~1 000
segments a run needs far more rows than anyone can afford for a meaningful estimate (10 000
grid cells took 457 s and 4 GB of server memory for a noisy answer). Users get fewer segments
with bigger grid cells, a larger quickshift kernel / max_dist, a larger Felzenszwalb scale or
min_size, fewer SLIC segments or watershed markers.
"""

SEGMENT_ADVICE = (
    "use fewer, bigger superpixels (a coarser grid, a larger quickshift kernel_size or max_dist, "
    "a larger Felzenszwalb scale or min_size, fewer SLIC segments or watershed markers)"
)

FILLS = ("mean", "blur", "gray", "black")

SAMPLERS = ("stratified", "leverage", "quadrature")
"""How a run orders its complement pairs: the fixed size-stratified allocation (default),
Leverage SHAP's nested Bernoulli order (``explainers.leverage``), or the Bayesian-quadrature order
for KernelSHAP's kernel-surrogate estimate (``explainers.quadrature``; ``design_sampler``)."""


def design_sampler(kernel_share: float, auto: bool = False) -> str:
    """The sampler of a design tilted by ``kernel_share``: KernelSHAP alone (λ = 1) with a fixed
    sample count gets the quadrature order, which its default estimate needs fewest rows with
    (benchmarks README, 2026-12-06). Any design that also serves LIME keeps the stratified
    allocation LIME's importance weights assume, and so do "auto" runs: their stopping rule reads
    plain KernelSHAP's standard errors, which assume random rows (on quadrature rows it once
    stopped at 128 rows with 2 of the top 5 regions right)."""
    return "quadrature" if float(kernel_share) >= 1.0 and not auto else "stratified"

Predict = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- fills
def parse_hex(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' → (r, g, b); ExplainerError otherwise."""
    value = str(colour)
    if len(value) == 7 and value.startswith("#"):
        try:
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        except ValueError:
            pass
    raise ExplainerError(
        f"fill must be one of {', '.join(FILLS)} or a colour like #808080, not {colour!r}"
    )


def fill_image(
    image: np.ndarray, segments: np.ndarray, fill: str = "mean", blur_sigma: float | None = None
) -> np.ndarray:
    """What a hidden segment shows: its mean colour (lime's default), a blur, gray, black or a colour.

    The mean is truncated to uint8 as lime_image does (it assigns float means into a uint8
    copy), so that our masked images are byte-identical to lime's.
    """
    image = np.asarray(image)
    if fill == "mean":
        m = int(segments.max()) + 1
        flat = segments.ravel()
        counts = np.bincount(flat, minlength=m).astype(np.float64)
        means = np.stack(
            [np.bincount(flat, weights=image[..., c].ravel().astype(np.float64), minlength=m)
             for c in range(3)],
            axis=-1,
        ) / np.maximum(counts, 1)[:, None]
        return means.astype(np.uint8)[segments]
    if fill == "blur":
        from skimage.filters import gaussian

        sigma = float(blur_sigma) if blur_sigma is not None else max(image.shape[:2]) / 20.0
        if not sigma > 0:
            raise ExplainerError(f"blur sigma must be > 0, not {blur_sigma}")
        blurred = gaussian(image.astype(np.float64), sigma=sigma, channel_axis=-1, preserve_range=True)
        return np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    if fill == "gray":
        return np.full_like(image, 128)
    if fill == "black":
        return np.zeros_like(image)
    colour = parse_hex(fill)
    return np.broadcast_to(np.asarray(colour, dtype=np.uint8), image.shape).copy()


def render_index(segments: np.ndarray) -> np.ndarray:
    """The gather index of ``render`` (segment id of every byte of an (H, W, 3) image), int32."""
    return np.repeat(np.asarray(segments, dtype=np.int32).reshape(-1), 3)


def render(
    image: np.ndarray,
    fill: np.ndarray,
    segments: np.ndarray,
    Z: np.ndarray,
    out: np.ndarray | None = None,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """Masked images (k, H, W, 3) uint8 for coalitions ``Z`` (k, M), vectorised over the batch.

    The same as ``np.where(Z[:, segments][..., None], image, fill)``, written as a bitwise
    select ``fill ^ ((image ^ fill) & mask)`` on a 0/255 byte mask gathered per byte: ≈ 2.4 ms
    for 32 images of 224² here, about 5× faster than ``np.copyto(..., where=mask)`` and 9×
    faster than the broadcasting ``np.where``. ``out`` (a reusable (≥k, H, W, 3) uint8 buffer)
    and ``index`` (``render_index(segments)``) save the allocations when called per batch.
    """
    Z = np.asarray(Z, dtype=bool)
    h, w = segments.shape
    k = len(Z)
    if index is None:
        index = render_index(segments)
    lut = Z.view(np.uint8) * np.uint8(255)  # (k, M): 0 hidden, 255 shown
    flat = np.empty((k, h * w * 3), dtype=np.uint8) if out is None else out[:k].reshape(k, -1)
    np.take(lut, index, axis=1, out=flat, mode="clip")  # "clip": no bounds-check buffering
    np.bitwise_and(flat, (image ^ fill).reshape(-1), out=flat)
    np.bitwise_xor(flat, fill.reshape(-1), out=flat)
    return flat.reshape(k, h, w, 3)


# ----------------------------------------------------------------------------- sampling
def _log_comb(m: int, s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    return gammaln(m + 1.0) - gammaln(s + 1.0) - gammaln(m - s + 1.0)


@dataclass(frozen=True)
class Strata:
    """The pair strata j = 1..⌊M/2⌋ of M segments: pairs in each and their allocation shares."""

    m: int
    pairs: np.ndarray  # (J,) int64 pairs in stratum j (capped at 2^62 for huge M)
    shares: np.ndarray  # (J,) float64 allocation shares a_j, summing to 1

    @property
    def total_pairs(self) -> int:
        return int(min(self.pairs.sum(dtype=np.float64), 2.0**62))


def lime_size_kernel(m: int, s: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """lime's kernel for a coalition of size s: its cosine distance to the image is 1 − √(s/M)."""
    d = 1.0 - np.sqrt(np.asarray(s, dtype=np.float64) / m)
    return np.sqrt(np.exp(-(d**2) / kernel_width**2))


_PAIR_CAP = 1 << 62
"""Pair counts are capped here (int64); a stratum that large is never exhausted anyway."""


def _exact_comb(m: int, k: int) -> int:
    """C(m, k) as an exact integer (only called where the result is below ``_PAIR_CAP``)."""
    return math.comb(m, k)


def pair_counts(m: int) -> np.ndarray:
    """C(M, j) for j = 1..⌊M/2⌋ (halved for j = M/2), capped at 2^62, as int64.

    Log-binomials decide which counts are below the cap; only those (the few smallest j) are
    computed exactly, so M = 50 000 costs a handful of small integer binomials, not 25 000
    big-integer ones (the exact version took 20 s at M = 10 000).
    """
    j = np.arange(1, m // 2 + 1)
    out = np.full(len(j), _PAIR_CAP, dtype=np.int64)
    if len(j) == 0:
        return out
    small = _log_comb(m, j) < math.log(_PAIR_CAP) + 1.0  # margin: gammaln's rounding
    for k in j[small]:
        out[k - 1] = min(_exact_comb(m, int(k)), _PAIR_CAP)
    if m % 2 == 0:  # the middle stratum: a coalition and its complement are one pair
        out[-1] //= 2
    return out


@lru_cache(maxsize=64)
def strata(m: int, kernel_share: float = KERNEL_SHARE) -> Strata:
    """Pair strata and their allocation shares (see the module docstring)."""
    j = np.arange(1, m // 2 + 1)
    if len(j) == 0:
        return Strata(m, np.zeros(0, np.int64), np.zeros(0))
    middle = 2 * j == m
    pairs = pair_counts(m)
    sizes = np.stack([j, m - j]).astype(np.float64)  # the two sizes of a pair (equal in the middle)
    counted = np.stack([np.ones(len(j)), np.where(middle, 0.0, 1.0)])  # the middle size once
    # KernelSHAP: Var(D̂_s) ∝ 1 / (n_s s (M−s))
    kernel = (counted / (sizes * (m - sizes))).sum(axis=0)
    # LIME: a size's Horvitz–Thompson term has variance ∝ W_s² / n_s, W_s = 2^−M C(M,s) k(s)
    log_w = _log_comb(m, sizes) + np.log(lime_size_kernel(m, sizes))
    lime = (counted * np.exp(2.0 * (log_w - log_w.max()))).sum(axis=0)
    lam = float(kernel_share)
    shares = np.sqrt(lam * kernel / kernel.sum() + (1.0 - lam) * lime / lime.sum())
    shares = np.maximum(shares / shares.sum(), 1e-9)  # every stratum gets rows eventually
    return Strata(m, pairs, shares / shares.sum())


def pair_schedule(m: int, count: int, kernel_share: float = KERNEL_SHARE) -> np.ndarray:
    """Stratum index (0-based: pair stratum j − 1) of each of the first ``count`` pair slots.

    Sainte-Laguë apportionment: slot c of stratum j has priority key ``(c + ½) / a_j`` and the
    slots are taken in increasing key order (ties: smaller j first); a stratum has ``P_j``
    slots. The order depends on M only, so every prefix is the allocation of its own size.
    """
    st = strata(m, kernel_share)
    count = int(min(max(count, 0), st.total_pairs))
    if count == 0:
        return np.zeros(0, dtype=np.intp)
    a, caps = st.shares, st.pairs.astype(np.float64)

    def taken(t: float) -> np.ndarray:  # slots with key ≤ t in each stratum
        return np.minimum(caps, np.floor(np.maximum(t * a + 0.5, 0.0)))

    lo, hi = 0.0, (count + 1.0) / a.min()
    for _ in range(200):  # bisection: the smallest t with count keys ≤ t
        mid = 0.5 * (lo + hi)
        if taken(mid).sum() >= count:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    per = taken(hi).astype(np.int64)
    strata_idx = np.repeat(np.arange(len(a)), per)
    slot = np.concatenate([np.arange(p) for p in per]) if len(per) else np.zeros(0, np.int64)
    keys = (slot + 0.5) / a[strata_idx]
    order = np.lexsort((strata_idx, keys))[:count]
    return strata_idx[order].astype(np.intp)


def _unrank(ranks: np.ndarray, n: int, k: int) -> np.ndarray:
    """k-subsets of ``range(n)`` (as (len, n) bool) with the given colexicographic ranks."""
    out = np.zeros((len(ranks), n), dtype=bool)
    r = np.asarray(ranks, dtype=np.int64).copy()
    rows = np.arange(len(r))
    for i in range(k, 0, -1):
        table = np.array([comb(c, i, exact=True) for c in range(n)], dtype=np.int64)
        c = np.searchsorted(table, r, side="right") - 1
        out[rows, c] = True
        r -= table[c]
    return out


def stratum_pairs(m: int, j: int, seed: int, count: int) -> np.ndarray:
    """The first ``count`` pairs of pair stratum ``j`` (their size-j members, (count, M) bool).

    Distinct pairs in a seeded random order that depends only on (M, j, seed): a permutation of
    all pairs when there are at most ``_PERMUTE_LIMIT``, otherwise seeded draws of
    ``_CHUNK`` uniform j-subsets, repeats skipped. For ``j = M/2`` a pair is represented by its
    member that contains segment 0.
    """
    middle = 2 * j == m
    total = int(strata(m).pairs[j - 1])  # C(M, j), halved in the middle, capped at 2^62
    count = int(min(count, total))
    if count <= 0:
        return np.zeros((0, m), dtype=bool)
    if total <= _PERMUTE_LIMIT:
        rng = np.random.default_rng([int(seed), _STREAM_KEY, int(j)])
        ranks = rng.permutation(total)[:count]
        if middle:  # segment 0 plus a (j−1)-subset of segments 1..M−1
            rest = _unrank(ranks, m - 1, j - 1)
            return np.concatenate([np.ones((count, 1), dtype=bool), rest], axis=1)
        return _unrank(ranks, m, j)
    out = np.empty((count, m), dtype=bool)
    seen: set[bytes] = set()
    filled, chunk = 0, 0
    while filled < count:
        rng = np.random.default_rng([int(seed), _STREAM_KEY, int(j), chunk])
        chunk += 1
        # the j smallest of M uniforms: the same set as argsort()[:, :j], in O(M) per row
        picks = np.argpartition(rng.random((_CHUNK, m)), j - 1, axis=1)[:, :j]
        draw = np.zeros((_CHUNK, m), dtype=bool)
        np.put_along_axis(draw, picks, True, axis=1)
        if middle:
            draw = np.where(draw[:, :1], draw, ~draw)
        for z, key in zip(draw, np.packbits(draw, axis=1)):
            b = key.tobytes()
            if b not in seen:
                seen.add(b)
                out[filled] = z
                filled += 1
                if filled == count:
                    break
    return out


def design(
    m: int, seed: int, start: int, stop: int, kernel_share: float = KERNEL_SHARE,
    progress: ProgressFn | None = None, sampler: str = "stratified",
) -> np.ndarray:
    """Rows ``start..stop-1`` (capped at 2^M) of the design of M segments for ``seed``.

    ``sampler``: "stratified" (the fixed Sainte-Laguë allocation above), "leverage" (pairs in
    the nested leverage-score order of ``explainers.leverage``) or "quadrature" (the greedy
    Bayesian-quadrature order of ``explainers.quadrature``); ``kernel_share`` only matters to
    the first.

    ``progress(done, total, "sampling")`` is called per coalition size (drawing takes seconds
    for hundreds of segments) and may raise ``Cancelled``.
    """
    st = strata(m, kernel_share)
    stop = int(min(stop, 2 + 2 * st.total_pairs))
    start = int(min(max(start, 0), stop))
    out = np.empty((stop - start, m), dtype=bool)
    rows = np.arange(start, stop)
    out[rows == 0] = True
    out[rows == 1] = False
    if stop <= 2:
        return out
    slots = (stop - 2 + 1) // 2
    if sampler == "quadrature":  # its own order of pairs (explainers.quadrature)
        from explainers.quadrature import quadrature_pairs

        if progress is not None:
            progress(0, 1, "sampling")
        first = quadrature_pairs(m, int(seed), slots)
        if progress is not None:
            progress(1, 1, "sampling")
    elif sampler in ("leverage", "stratified"):
        if sampler == "leverage":
            from explainers.leverage import leverage_order

            schedule = leverage_order(m, int(seed), slots)[0]
        else:
            schedule = pair_schedule(m, slots, kernel_share)
        first = np.empty((slots, m), dtype=bool)
        used = np.unique(schedule)
        for done, s_idx in enumerate(used):
            if progress is not None:
                progress(done, len(used), "sampling")
            sel = schedule == s_idx
            first[sel] = stratum_pairs(m, int(s_idx) + 1, seed, int(sel.sum()))
        if progress is not None:
            progress(len(used), len(used), "sampling")
    else:
        raise ExplainerError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    sampled = rows >= 2
    slot_of_row = (rows[sampled] - 2) // 2
    member = first[slot_of_row]
    second = (rows[sampled] - 2) % 2 == 1
    member[second] = ~member[second]
    out[sampled] = member
    return out


def log_shapley_kernel(Z: np.ndarray) -> np.ndarray:
    """log π(z) = log((M−1) / (C(M,s) s (M−s))); −inf for the empty and the full coalition."""
    Z = np.asarray(Z, dtype=bool)
    m = Z.shape[1]
    s = Z.sum(axis=1).astype(np.float64)
    out = np.full(len(Z), -np.inf)
    if m < 2:
        return out
    inner = (s > 0) & (s < m)
    si = s[inner]
    out[inner] = np.log(m - 1.0) - _log_comb(m, si) - np.log(si) - np.log(m - si)
    return out


def design_weights(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lime_ratio, shapley_weight, log_q) of design rows ``Z`` (row 0 full, row 1 empty).

    Horvitz–Thompson weights of a sample stratified by size (see the module docstring):
    KernelSHAP ``(M−1) / (s (M−s) n_s)``, LIME ``2^−M C(M,s) / n_s`` scaled to sum to
    ``n − 2``; anchors 1 (LIME) and 0 (KernelSHAP).
    """
    Z = np.asarray(Z, dtype=bool)
    n, m = Z.shape
    lime_ratio = np.ones(n)
    shapley = np.zeros(n)
    log_q = np.full(n, np.nan)
    if n <= 2:
        return lime_ratio, shapley, log_q
    s = Z[2:].sum(axis=1)
    counts = np.bincount(s, minlength=m + 1).astype(np.float64)
    ns = counts[s]
    sf = s.astype(np.float64)
    inner = (s > 0) & (s < m)
    shapley[2:][inner] = (m - 1.0) / (sf[inner] * (m - sf[inner]) * ns[inner])
    log_size = _log_comb(m, np.arange(m + 1)) - m * np.log(2.0)  # log P_uniform(size)
    present = counts > 0
    log_mass = np.logaddexp.reduce(log_size[present])
    lime_ratio[2:] = np.exp(log_size[s] - np.log(ns) + np.log(n - 2.0) - log_mass)
    log_q[2:] = np.log(ns / (n - 2.0)) - _log_comb(m, sf)
    return lime_ratio, shapley, log_q


def check_segment_count(m: int, what: str = "the segmentation") -> None:
    """ExplainerError (saying how to get fewer) when ``m`` exceeds ``MAX_SEGMENTS``."""
    if int(m) > MAX_SEGMENTS:
        raise ExplainerError(
            f"{what} has {int(m):,} superpixels; LIME, KernelSHAP and the trust metrics take at "
            f"most {MAX_SEGMENTS:,}: {SEGMENT_ADVICE}"
        )


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Rows:
    """The first ``n`` rows of a run with the importance weights each estimator needs."""

    Z: np.ndarray  # (n, M) bool
    Y: np.ndarray  # (n, C) float32
    lime_ratio: np.ndarray  # (n,) HT ratio 2^−M C(M,s)/n_s scaled to sum n−2; 1 for anchors / exhaustive
    shapley_weight: np.ndarray  # (n,) (M−1)/(s(M−s) n_s) = π(z) C(M,s)/n_s; 0 for the anchors
    exhaustive: bool  # these rows are all 2^M coalitions (the estimates are exact)
    log_q: np.ndarray  # (n,) log design density log(n_s/(n−2)) − log C(M,s); NaN for the anchors

    @property
    def n(self) -> int:
        return len(self.Z)

    @property
    def num_segments(self) -> int:
        return self.Z.shape[1]


def make_rows(Z: np.ndarray, Y: np.ndarray, exhaustive: bool = False) -> Rows:
    """``Rows`` for design rows ``Z`` (row 0 full, row 1 empty, then complement pairs) and outputs ``Y``.

    ``exhaustive``: the rows are every coalition (exact targets instead of Horvitz–Thompson).
    """
    n = len(Z)
    if exhaustive:  # the exact targets (avoids rounding in the Horvitz–Thompson form)
        lime_ratio = np.ones(n)
        shapley = np.exp(log_shapley_kernel(Z))
        log_q = np.full(n, -np.log(max(n - 2.0, 1.0)))
        log_q[:2] = np.nan
    else:
        lime_ratio, shapley, log_q = design_weights(Z)
    return Rows(Z=Z, Y=Y, lime_ratio=lime_ratio, shapley_weight=shapley, exhaustive=exhaustive, log_q=log_q)


def pair_ids(n: int) -> np.ndarray:
    """Complement-pair id of each design row (rows 2 + 2p and 3 + 2p are pair p); −1 for the anchors."""
    idx = np.arange(int(n))
    return np.where(idx >= 2, (idx - 2) // 2, -1)


def unsampled_fraction(Z: np.ndarray) -> np.ndarray:
    """Per row, 1 − the fraction of its pair stratum's pairs among the rows (0 for the anchors).

    The finite-population correction of a sample without replacement: a stratum enumerated
    completely contributes no sampling variance.
    """
    Z = np.asarray(Z, dtype=bool)
    n, m = Z.shape
    out = np.zeros(n)
    if n <= 2 or m < 2:
        return out
    s = Z[2:].sum(axis=1)
    j = np.minimum(s, m - s)
    taken = np.bincount(j, minlength=m // 2 + 1) / 2.0  # pairs (two rows each)
    total = np.array([comb(m, int(k), exact=False) for k in range(m // 2 + 1)], dtype=np.float64)
    if m % 2 == 0:
        total[m // 2] /= 2.0
    total[0] = 1.0
    out[2:] = np.clip(1.0 - taken[j] / total[j], 0.0, 1.0)
    return out


class PerturbationRun:
    """Coalitions, masked images and model outputs for one image, extendable and cancellable.

    ``predict`` gets a batch that the run reuses for the next one: it must not keep a
    reference to its input (copy it if it needs to).
    """

    def __init__(
        self,
        predict: Predict,
        image: np.ndarray,
        segments: np.ndarray,
        fill: str = "mean",
        seed: int = 0,
        batch_size: int = 32,
        blur_sigma: float | None = None,
        kernel_share: float = KERNEL_SHARE,
        sampler: str = "stratified",
    ) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ExplainerError(f"expected an RGB uint8 image (H, W, 3), got {image.shape} {image.dtype}")
        segments = np.asarray(segments)
        if segments.shape != image.shape[:2] or not np.issubdtype(segments.dtype, np.integer):
            raise ExplainerError(
                f"segments must be an integer map {image.shape[:2]}, got {segments.shape} {segments.dtype}"
            )
        m = int(segments.max()) + 1 if segments.size else 0
        check_segment_count(m)
        if segments.min() != 0 or len(np.unique(segments)) != m:
            raise ExplainerError("segment ids must be exactly 0..M-1 (use explainers.segmentation.segment)")
        if not 1 <= int(batch_size) <= 4096:
            raise ExplainerError(f"batch size must be between 1 and 4096, not {batch_size}")
        if not 0.0 <= float(kernel_share) <= 1.0:
            raise ExplainerError(f"kernel share must be between 0 and 1, not {kernel_share}")
        if sampler not in SAMPLERS:
            raise ExplainerError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        self.kernel_share = float(kernel_share)
        self.sampler = sampler
        self.predict = predict
        self.image = image
        self.segments = np.asarray(segments, dtype=np.int32)  # no copy when already int32
        self.num_segments = m
        self.fill = fill
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.fill_image = fill_image(image, self.segments, fill, blur_sigma)
        self.model_calls = 0
        self.seconds_in_model = 0.0
        self.eta_seconds: float | None = None
        self.requested = 0
        self._n = 0
        self._Z = np.empty((0, m), dtype=bool)
        self._Y: np.ndarray | None = None

    # ------------------------------------------------------------------ state
    @property
    def n(self) -> int:
        return self._n

    @property
    def Z(self) -> np.ndarray:
        return self._Z[: self._n]

    @property
    def Y(self) -> np.ndarray:
        if self._Y is None:
            return np.empty((0, 0), dtype=np.float32)
        return self._Y[: self._n]

    @property
    def enumeration_size(self) -> int | None:
        """2^M when all coalitions can be enumerated, else None."""
        return 2**self.num_segments if self.num_segments <= MAX_EXHAUSTIVE_SEGMENTS else None

    @property
    def max_rows(self) -> int:
        """Rows the design has: 2^M (every coalition once), capped for large M."""
        return 2 + 2 * strata(self.num_segments, self.kernel_share).total_pairs

    @property
    def exhaustive(self) -> bool:
        """Whether the run holds every coalition (its estimates are exact)."""
        return self._n > 0 and self._n == self.max_rows

    def render(self, Z: np.ndarray) -> np.ndarray:
        """Masked images (k, H, W, 3) uint8 for coalitions ``Z`` (k, M)."""
        Z = np.asarray(Z, dtype=bool)
        if Z.ndim != 2 or Z.shape[1] != self.num_segments:
            raise ExplainerError(f"coalitions must have shape (k, {self.num_segments}), got {Z.shape}")
        return render(self.image, self.fill_image, self.segments, Z)

    def coalitions(self, start: int, stop: int, progress: ProgressFn | None = None) -> np.ndarray:
        """Rows ``start..stop-1`` of the design (independent of what was computed)."""
        return design(self.num_segments, self.seed, start, stop, self.kernel_share, progress, self.sampler)

    # ------------------------------------------------------------------ weights
    def rows(self, n: int | None = None) -> Rows:
        """The first ``n`` rows (default all) with their importance weights."""
        n = self._n if n is None else max(0, min(int(n), self._n))
        rows = make_rows(self.Z[:n], self.Y[:n], exhaustive=n > 0 and n == self.max_rows)
        if self.sampler == "leverage" and not rows.exhaustive:
            from dataclasses import replace

            from explainers.leverage import leverage_shapley_weights

            rows = replace(rows, shapley_weight=leverage_shapley_weights(rows.Z, self.seed))
        return rows

    def halves(self, n: int | None = None) -> tuple[Rows, Rows]:
        """The first ``n`` rows dealt into two designs: both anchors, and alternate complement pairs.

        Pair p (rows 2 + 2p and 3 + 2p) goes to half p mod 2; as the pairs of every stratum come in
        a seeded random order, each half is a size-stratified sample without repeats of its own,
        weighted by its own counts (``make_rows``). Used for split-half stability.
        """
        n = self._n if n is None else max(0, min(int(n), self._n))
        idx = np.arange(2, n)
        half = ((idx - 2) // 2) % 2
        out = []
        for k in (0, 1):
            sel = np.concatenate([np.arange(min(n, 2)), idx[half == k]])
            out.append(make_rows(self.Z[sel], self.Y[sel], exhaustive=False))
        return out[0], out[1]

    def lime_weights(self, n: int | None = None) -> np.ndarray:
        """Importance ratio per row (multiplies lime's kernel)."""
        return self.rows(n).lime_ratio

    def shapley_weights(self, n: int | None = None) -> np.ndarray:
        """KernelSHAP weight per row (0 for the anchors)."""
        return self.rows(n).shapley_weight

    # ------------------------------------------------------------------ computing
    def extend(self, total: int, progress: ProgressFn | None = None) -> "PerturbationRun":
        """Compute rows up to ``total`` (only the missing ones; at most 2^M); may raise ``Cancelled``.

        ``progress(done, todo, "perturbation")`` counts this call's rows. After a cancellation the
        run holds every row finished so far, in order (a valid prefix of the design).
        """
        total = int(total)
        if total < 1:
            raise ExplainerError(f"the number of samples must be ≥ 1, not {total}")
        self.requested = max(self.requested, total)
        total = min(total, self.max_rows)
        if total <= self._n:
            return self
        start = self._n
        target = self.coalitions(start, total, progress)  # a cancellation here changes nothing
        self._reserve(total)
        self._Z[start:total] = target
        k = len(target)
        bs = self.batch_size
        h, w = self.segments.shape
        buffer = np.empty((min(bs, k), h, w, 3), dtype=np.uint8)  # reused for every batch
        done = 0
        started = time.perf_counter()
        self.eta_seconds = None
        while done < k:
            stop = min(done + bs, k)
            # the gather index is rebuilt per batch (≈0.2 ms): it is not held during the model call
            images = render(self.image, self.fill_image, self.segments, target[done:stop], buffer)
            self._store(start + done, self._call_model(images))
            self._n = start + stop
            done = stop
            self.eta_seconds = (time.perf_counter() - started) / done * (k - done)
            if progress is not None:
                progress(done, k, "perturbation")
        return self

    def _reserve(self, total: int) -> None:
        """Room for exactly ``total`` rows (one copy of the old rows per extension, no doubling)."""
        if len(self._Z) >= total:
            return
        Z = np.empty((total, self.num_segments), dtype=bool)
        Z[: self._n] = self._Z[: self._n]
        self._Z = Z
        if self._Y is not None:
            Y = np.empty((total, self._Y.shape[1]), dtype=np.float32)
            Y[: self._n] = self._Y[: self._n]
            self._Y = Y

    def _store(self, at: int, out: np.ndarray) -> None:
        if self._Y is None:
            self._Y = np.empty((len(self._Z), out.shape[1]), dtype=np.float32)
        elif out.shape[1] != self._Y.shape[1]:
            raise ExplainerError("the model returned a different number of classes than before")
        self._Y[at : at + len(out)] = out

    def _call_model(self, images: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.predict(images)
        self.seconds_in_model += time.perf_counter() - t0
        self.model_calls += len(images)
        out = np.asarray(out)
        if out.ndim != 2 or len(out) != len(images):
            raise ExplainerError(
                f"the model returned shape {out.shape} for {len(images)} images; expected (N, classes)"
            )
        if not np.all(np.isfinite(out)):
            raise ExplainerError("the model returned NaN or infinite scores for a masked image")
        return out


# ----------------------------------------------------------------------------- coalition cache
INPAINT_SIDE = 48
"""Inpainting runs at most at this side (then is upsampled): biharmonic inpainting of a 224² image
takes seconds, at 48² about 15 ms, and a fill needs no fine detail."""


def inpaint_fill(image: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """What the hidden pixels (H, W) bool show when inpainted from the visible ones (uint8 image).

    ``skimage.restoration.inpaint_biharmonic`` on a copy reduced to at most ``INPAINT_SIDE``
    pixels a side, upsampled back; the visible pixels keep their values. Everything hidden: the
    image's mean colour (what shap's inpainting masker does).
    """
    from skimage.restoration import inpaint_biharmonic
    from skimage.transform import resize

    hidden = np.asarray(hidden, dtype=bool)
    if not hidden.any():
        return np.array(image, copy=True)
    if hidden.all():
        mean = image.reshape(-1, 3).mean(axis=0)
        return np.broadcast_to(np.rint(mean).astype(np.uint8), image.shape).copy()
    h, w = hidden.shape
    scale = min(1.0, INPAINT_SIDE / max(h, w))
    small_shape = (max(2, round(h * scale)), max(2, round(w * scale)))
    small = resize(image.astype(np.float64) / 255.0, small_shape, order=1, anti_aliasing=True)
    small_hidden = resize(hidden.astype(np.float64), small_shape, order=1, anti_aliasing=False) > 0.01
    if small_hidden.all():  # what is visible vanished at low resolution: its mean colour
        mean = image[~hidden].reshape(-1, 3).mean(axis=0)
        return np.where(hidden[..., None], np.rint(mean).astype(np.uint8), image)
    filled = inpaint_biharmonic(small, small_hidden, channel_axis=-1)
    big = resize(filled, (h, w), order=1, anti_aliasing=False)
    big = np.clip(np.rint(big * 255.0), 0, 255).astype(np.uint8)
    return np.where(hidden[..., None], big, image)


def coalition_keys(Z: np.ndarray) -> list[bytes]:
    """One hashable key per coalition row (its bits packed)."""
    return [row.tobytes() for row in np.packbits(np.asarray(Z, dtype=bool), axis=1)]


class CoalitionCache:
    """Model outputs of coalitions of one (segments, fill) rendering; each coalition is predicted once.

    Methods that evaluate arbitrary coalitions (Partition SHAP, the trust curves) ask it for
    ``outputs(Z)``: rows already known — from an earlier call of any method, from the shared
    ``PerturbationRun`` when it renders with the same segments and fill (``shared_run``), the
    unperturbed image's prediction (``full``) — cost nothing; the others are rendered and sent to
    the model in batches of ``batch_size``, with progress and cancellation.
    """

    def __init__(
        self,
        predict: Predict,
        image: np.ndarray,
        segments: np.ndarray,
        fill: str,
        batch_size: int = 32,
        shared_run: "PerturbationRun | None" = None,
        full: np.ndarray | None = None,
    ) -> None:
        self.predict = predict
        self.image = np.asarray(image)
        self.segments = np.asarray(segments, dtype=np.int32)
        self.num_segments = int(self.segments.max()) + 1
        self.fill = fill
        self.batch_size = int(batch_size)
        self.fill_image = None if fill == "inpaint" else fill_image(self.image, self.segments, fill)
        self.shared_run = shared_run
        self.known: dict[bytes, np.ndarray] = {}
        self._run_indexed = 0
        self.model_calls = 0
        self.hits = 0
        if full is not None:
            self.known[coalition_keys(np.ones((1, self.num_segments), bool))[0]] = np.asarray(full, np.float32)

    def render(self, Z: np.ndarray) -> np.ndarray:
        """Masked images (k, H, W, 3) uint8 for coalitions ``Z`` (k, M)."""
        Z = np.asarray(Z, dtype=bool)
        if self.fill_image is not None:
            return render(self.image, self.fill_image, self.segments, Z)
        return np.stack([inpaint_fill(self.image, ~z[self.segments]) for z in Z])

    def _index_run(self) -> None:
        run = self.shared_run
        if run is None or run.n <= self._run_indexed:
            return
        Y = run.Y
        start = self._run_indexed
        for key, row in zip(coalition_keys(run.Z[start:]), Y[start:]):
            self.known.setdefault(key, row)
        self._run_indexed = run.n

    def outputs(
        self, Z: np.ndarray, progress: ProgressFn | None = None, stage: str = "coalitions"
    ) -> tuple[np.ndarray, int]:
        """Outputs (k, C) float32 for coalitions ``Z`` and the model calls this request added."""
        Z = np.asarray(Z, dtype=bool)
        if Z.ndim != 2 or Z.shape[1] != self.num_segments:
            raise ExplainerError(f"coalitions must have shape (k, {self.num_segments}), got {Z.shape}")
        self._index_run()
        keys = coalition_keys(Z)
        fresh: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self.known and key not in fresh:
                fresh[key] = i
        todo = list(fresh.items())
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            out = np.asarray(self.predict(self.render(Z[[i for _, i in chunk]])), dtype=np.float32)
            if out.ndim != 2 or len(out) != len(chunk) or not np.all(np.isfinite(out)):
                raise ExplainerError(
                    f"the model returned shape {out.shape} (or non-finite scores) for {len(chunk)} images"
                )
            for (key, _), row in zip(chunk, out):
                self.known[key] = row
            self.model_calls += len(chunk)
            if progress is not None:
                progress(min(start + len(chunk), len(todo)), len(todo), stage)
        self.hits += len(keys) - len(todo)
        return np.stack([self.known[k] for k in keys]).astype(np.float32, copy=False), len(todo)


__all__ = [
    "PerturbationRun", "Rows", "SAMPLERS", "make_rows", "pair_ids", "unsampled_fraction", "FILLS", "KERNEL_SHARE", "fill_image", "render", "render_index",
    "strata", "pair_schedule", "stratum_pairs", "design", "design_weights", "log_shapley_kernel",
    "lime_size_kernel", "pair_counts", "check_segment_count", "MAX_SEGMENTS",
    "parse_hex", "Cancelled", "CoalitionCache", "coalition_keys", "inpaint_fill", "INPAINT_SIDE",
]
