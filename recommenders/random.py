"""Uniform random recommendations: the floor every arm should beat, with exact propensities."""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import (
    eligible_counts,
    first_occurrence,
    sample_distinct_excluding,
)
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch

_BROADCAST_WIDTH = 80
"""Up to this many candidates + exclusions per row, one [B, C, H + C] comparison finds the
blocked candidates; for wider rows a sort finds the repeats (the broadcast grows as C·(H + C),
and measured slower past ~30 exclusions at k = 10)."""


_PREFIX = 2
"""The first draw is first checked on its first ``_PREFIX * k`` candidates (see ``_sample``)."""


class RandomRecommender:
    """k distinct items drawn uniformly from the published items the user has not consumed.

    The marginal probability of any eligible item at any slot is ``1/eligible``, which is what
    is logged as the propensity (so IPS estimators can use random logs directly).
    """

    Params = NoParams
    surfaces = frozenset({"list"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = "random"
        self.rng = ctx.rng
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items, eligible = self._sample(requests.catalog.n_items, requests.exclude, requests.k)
        propensity = np.where(items >= 0, 1.0 / np.maximum(eligible, 1)[:, None], 0.0)
        scores = np.full(items.shape, np.nan, np.float32)
        return SlateBatch(items, scores, propensity.astype(np.float32))

    def _sample(self, n_items: int, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`sample_distinct_excluding`, the same draws from the stream and the same
        slates, in fewer numpy calls (at a few requests a tick its cost is the call count).

        Both draw ``k + H + extra`` candidates per unfilled row, keep in draw order the first k
        that are neither excluded nor repeats of an earlier draw, and draw again (twice as many
        extra) for rows that got fewer than k. Here one comparison of each candidate with the
        row's exclusions and the candidates drawn before it marks the blocked ones, and a
        stable argsort puts the first k free ones first. Nearly exhausted rows (which the
        general sampler permutes whole) are left to it, from the same stream state."""
        batch, h = exclude.shape
        eligible = eligible_counts(n_items, exclude)
        if batch == 0 or eligible.min() <= 4 * (k + h):
            return sample_distinct_excluding(self.rng, n_items, exclude, k)
        out: np.ndarray | None = None
        todo = np.arange(batch)
        extra = max(8, k)
        while True:
            width = k + h + extra
            rows_exclude = exclude if out is None else exclude[todo]
            cand = self.rng.integers(0, n_items, size=(todo.size, width))
            if out is None and width > _PREFIX * k:
                # whether a candidate is blocked depends only on the exclusions and the draws
                # before it, so when the first columns already hold k free candidates in every
                # row, they are the answer the whole width would give (the rest of the draw is
                # still taken from the stream); few of 2,000 items are blocked, so this is the
                # usual case, and it compares [B, 2k, H + 2k] cells instead of [B, W, H + W]
                prefix = _PREFIX * k
                blocked = (
                    cand[:, :prefix, None]
                    == np.concatenate([exclude, cand[:, :prefix]], axis=1)[:, None]
                )
                blocked &= self._mask(h, prefix)
                blocked = blocked.any(axis=2)
                order = blocked.argsort(axis=1, kind="stable")[:, :k]
                at = np.arange(batch)[:, None]
                if not blocked[at, order].any():
                    return cand[at, order], eligible
            if width + h <= _BROADCAST_WIDTH:
                blocked = cand[:, :, None] == np.concatenate([rows_exclude, cand], axis=1)[:, None]
                blocked &= self._mask(h, width)
                blocked = blocked.any(axis=2)
            else:  # a retry wider than the broadcast bound: first occurrences by sorting
                blocked = _in_rows(cand, rows_exclude) | ~first_occurrence(cand)
            order = blocked.argsort(axis=1, kind="stable")[:, :k]
            at = np.arange(todo.size)[:, None]
            short = blocked[at, order].any(axis=1)  # rows with fewer than k free candidates
            picked = cand[at, order]
            if out is None:
                if not short.any():
                    return picked, eligible
                out = np.empty((batch, k), np.int64)
            full = ~short
            out[todo[full]] = picked[full]
            todo = todo[short]
            if not todo.size:
                return out, eligible
            extra *= 2

    def _mask(self, h: int, width: int) -> np.ndarray:
        """[width, h + width]: candidate i is compared with every exclusion and with the
        candidates drawn before it (a repeat of an earlier draw is blocked, the first is not)."""
        mask = self._masks.get((h, width))
        if mask is None:
            mask = np.ones((width, h + width), bool)
            mask[:, h:] = np.tri(width, width, -1, bool)
            self._masks[(h, width)] = mask
        return mask

    def update(self, feedback: FeedbackBatch) -> None:
        return None


def _in_rows(candidates: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """[B, C] whether each candidate is in its row of ``exclude`` [B, H]."""
    if exclude.shape[1] == 0:
        return np.zeros(candidates.shape, bool)
    return (candidates[:, :, None] == exclude[:, None, :]).any(axis=2)
