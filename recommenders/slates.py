"""Vectorised slate building that respects each user's exclusions (consumed items).

Everything works on whole batches; rows never loop in Python except to retry the rare rows a
rejection sampler could not fill.
"""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.rng import combine, uniforms
from recarena.simulator.core.types import PAD_ITEM, RequestBatch, SlateBatch


def first_k_available(candidates: np.ndarray, blocked: np.ndarray, k: int) -> np.ndarray:
    """[B, k] the first k unblocked candidates per row (PAD_ITEM where a row has fewer)."""
    available = ~blocked
    rank = np.cumsum(available, axis=1)
    take = available & (rank <= k)
    out = np.full((candidates.shape[0], k), PAD_ITEM, np.int64)
    rows, cols = np.nonzero(take)
    out[rows, rank[rows, cols] - 1] = candidates[rows, cols]
    return out


def _row_member(candidates: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """[B, C] whether each candidate is in its row of ``exclude`` [B, H]."""
    if exclude.shape[1] == 0:
        return np.zeros(candidates.shape, bool)
    return (candidates[:, :, None] == exclude[:, None, :]).any(axis=2)


def top_k_from_ranking(ranking: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """First k items of one global ``ranking`` per row, skipping that row's ``exclude``.

    Only the top ``k + h`` of the ranking can be chosen (h = most exclusions in a row), so the
    cost is O(B·(k+h)) whatever the catalog size.
    """
    batch = exclude.shape[0]
    valid_excl = exclude != PAD_ITEM
    h = int(valid_excl.sum(axis=1).max()) if exclude.size else 0
    top = np.asarray(ranking[: k + h], np.int64)
    if top.size == 0:
        return np.full((batch, k), PAD_ITEM, np.int64)
    rank_of = np.full(int(max(top.max(), exclude.max(initial=0))) + 1, -1, np.int64)
    rank_of[top] = np.arange(top.size)
    blocked = np.zeros((batch, top.size), bool)
    rows, cols = np.nonzero(valid_excl)
    ranks = rank_of[exclude[rows, cols]]
    hit = ranks >= 0
    blocked[rows[hit], ranks[hit]] = True
    return first_k_available(np.broadcast_to(top, blocked.shape), blocked, k)


def top_k_from_scores(
    scores: np.ndarray, exclude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items of each row of ``scores`` [B, N], excluded items removed.

    Ties break towards the lower item id. Rows with fewer than k finite scores are padded with
    PAD_ITEM and NaN.
    """
    batch, n = scores.shape
    work = np.empty((batch, n + 1), np.float64)
    work[:, :n] = scores
    work[:, n] = -np.inf
    padded = np.where(exclude == PAD_ITEM, n, exclude)
    work[np.arange(batch)[:, None], padded] = -np.inf
    work[:, n] = -np.inf
    kk = min(k, n)
    work = work[:, :n]
    # exact top-kk with ties broken by lower item id, in O(B·N): everything above the kk-th
    # best score, plus the lowest-id items that tie with it
    threshold = -np.partition(-work, kk - 1, axis=1)[:, kk - 1 : kk]
    above = work > threshold
    tied = work == threshold
    room = kk - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    part = np.nonzero(chosen)[1].reshape(batch, kk)
    part_scores = np.take_along_axis(work, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    items = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    items = np.where(np.isfinite(top_scores), items, PAD_ITEM).astype(np.int64)
    # float64 scores beyond float32's range are held at its largest finite value: cast, they
    # became ±inf, which the slate guard refuses on a filled slot (a thompson_linear arm with a
    # huge scale, a linucb arm with a huge alpha, legal params, failed every cell). The order
    # was decided above in float64.
    top = float(np.finfo(np.float32).max)
    top_scores = np.where(np.isfinite(top_scores), np.clip(top_scores, -top, top), np.nan)
    top_scores = top_scores.astype(np.float32)
    if kk < k:
        pad = k - kk
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=PAD_ITEM)
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=np.nan)
    return items, top_scores


def top_k_over_fallback(
    fallback: SlateBatch, rows: np.ndarray, scores: np.ndarray, requests: RequestBatch
) -> SlateBatch:
    """``fallback``'s slates, with each request ``rows[i]`` served the top-k of ``scores[i]``
    (``[len(rows), n_items]``, the request's exclusions removed) where those fill all k slots:
    a model that can rank too few items for a request leaves it the fallback's slate. Every
    slate is deterministic (propensity 1). The serving step of the model recommenders that
    answer the users they know and leave the rest to popularity."""
    items, top = top_k_from_scores(scores, requests.exclude[rows], requests.k)
    full = (items != PAD_ITEM).all(axis=1)
    out_items, out_scores = fallback.items.copy(), fallback.scores.copy()
    out_items[rows[full]] = items[full]
    out_scores[rows[full]] = top[full]
    return SlateBatch(out_items, out_scores, np.ones(out_items.shape, np.float32))


def eligible_counts(n_items: int, exclude: np.ndarray) -> np.ndarray:
    """[B] items a row may still be shown: n_items minus its distinct valid exclusions."""
    if exclude.shape[1] == 0:
        return np.full(exclude.shape[0], n_items, np.int64)
    valid = (exclude != PAD_ITEM) & (exclude < n_items)
    marked = np.where(valid, exclude, -1)
    marked.sort(axis=1)
    distinct = valid.sum(axis=1) - ((marked[:, 1:] == marked[:, :-1]) & (marked[:, 1:] >= 0)).sum(
        axis=1
    )
    return n_items - distinct


def sample_distinct_excluding(
    rng: np.random.Generator, n_items: int, exclude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """k distinct uniform items per row from ``range(n_items)`` minus the row's ``exclude``.

    Returns ``(items [B, k], eligible [B])``; the per-slot marginal probability of any eligible
    item is exactly ``1 / eligible`` (draws without replacement are exchangeable).
    """
    batch = exclude.shape[0]
    eligible = eligible_counts(n_items, exclude)
    out = np.full((batch, k), PAD_ITEM, np.int64)
    todo = np.arange(batch)
    extra = max(8, k)
    while todo.size:
        small = eligible[todo] <= 4 * (k + exclude.shape[1])
        if small.any():  # nearly exhausted rows: permute the whole catalog for them
            for row in todo[small]:
                allowed = np.setdiff1d(np.arange(n_items), exclude[row], assume_unique=False)
                pick = rng.permutation(allowed)[:k]
                out[row, : pick.size] = pick
            todo = todo[~small]
            if not todo.size:
                break
        width = k + exclude.shape[1] + extra
        cand = rng.integers(0, n_items, size=(todo.size, width))
        blocked = _row_member(cand, exclude[todo])
        # keep the first occurrence in draw order, not in sorted order
        first_seen = _first_occurrence(cand)
        blocked |= ~first_seen
        picked = first_k_available(cand, blocked, k)
        full = (picked != PAD_ITEM).all(axis=1)
        out[todo[full]] = picked[full]
        todo = todo[~full]
        extra *= 2
    return out, eligible


_PREFIX_CELLS = 4_000_000
"""Largest [B, 2k, H + 2k] comparison the keyed sampler's first pass makes in one piece."""


def _earlier_mask(h: int, width: int) -> np.ndarray:
    """[width, h + width]: candidate i is compared with every exclusion and with the candidates
    drawn before it (a repeat of an earlier draw is blocked, the first is not)."""
    mask = np.ones((width, h + width), bool)
    mask[:, h:] = np.tri(width, width, -1, bool)
    return mask


def keyed_candidates(keys: np.ndarray, n_items: int, width: int) -> np.ndarray:
    """[B, width] item ids drawn uniformly from ``range(n_items)``, candidate j of row b a
    counter-based function of ``(keys[b], j)``: a wider draw extends a narrower one."""
    column = np.arange(width, dtype=np.uint64)
    u = uniforms(combine(np.asarray(keys, np.uint64)[:, None], column[None, :]))
    return np.minimum((u * n_items).astype(np.int64), n_items - 1)


def sample_distinct_keyed(
    keys: np.ndarray, n_items: int, exclude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`sample_distinct_excluding` returns (k distinct uniform items per row outside
    its ``exclude``, and the eligible counts), with each row's draws a function of its own key
    only, so a row gets the same slate in any batch. Rows keep, in draw order, the first k
    candidates that are neither excluded nor repeats; a row with too few gets a wider draw
    (the same prefix, continued); nearly exhausted rows order what is left by keyed hashes."""
    batch = exclude.shape[0]
    eligible = eligible_counts(n_items, exclude)
    out = np.full((batch, k), PAD_ITEM, np.int64)
    small = eligible <= 4 * (k + exclude.shape[1])
    for row in np.flatnonzero(small):  # nearly exhausted: a keyed permutation of the rest
        allowed = np.setdiff1d(np.arange(n_items), exclude[row])
        pick = allowed[np.argsort(uniforms(combine(keys[row], allowed)), kind="stable")[:k]]
        out[row, : pick.size] = pick
    todo = np.flatnonzero(~small)
    width = 2 * k
    if todo.size and todo.size * width * (exclude.shape[1] + width) <= _PREFIX_CELLS:
        # the usual case, in fewer numpy calls: the first 2k candidates of every row, blocked
        # when excluded or drawn before in the row (one masked [B, 2k, H + 2k] comparison);
        # rows with k free ones are done, the rest go on below (the same draws, wider)
        cand = keyed_candidates(keys[todo], n_items, width)
        seen = np.concatenate([exclude[todo], cand], axis=1)
        blocked = (cand[:, :, None] == seen[:, None, :]) & _earlier_mask(exclude.shape[1], width)
        blocked = blocked.any(axis=2)
        order = blocked.argsort(axis=1, kind="stable")[:, :k]
        at = np.arange(todo.size)[:, None]
        full = ~blocked[at, order].any(axis=1)
        out[todo[full]] = cand[at, order][full]
        todo = todo[~full]
    while todo.size:
        cand = keyed_candidates(keys[todo], n_items, width)
        blocked = _row_member(cand, exclude[todo]) | ~_first_occurrence(cand)
        picked = first_k_available(cand, blocked, k)
        full = (picked != PAD_ITEM).all(axis=1)
        out[todo[full]] = picked[full]
        todo = todo[~full]
        width = 2 * width + exclude.shape[1]
    return out, eligible


def _first_occurrence(values: np.ndarray) -> np.ndarray:
    """[B, C] True where a value appears for the first time in its row (in column order)."""
    order = np.argsort(values, axis=1, kind="stable")
    sorted_v = np.take_along_axis(values, order, axis=1)
    first_sorted = np.ones(values.shape, bool)
    first_sorted[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first
