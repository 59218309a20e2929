"""Uniform random recommendations: the floor every arm should beat, with exact propensities."""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import eligible_counts, sample_distinct_excluding
from recarena.simulator.core.types import (
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)

_BROADCAST_WIDTH = 128
"""Up to this many candidates (+ exclusions) per row, one [B, C, H + C] comparison finds the
blocked candidates; wider rows use the general sampler."""


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
        sampled = self._first_draw(requests.catalog.n_items, requests.exclude, requests.k)
        if sampled is None:
            sampled = sample_distinct_excluding(
                self.rng, requests.catalog.n_items, requests.exclude, requests.k
            )
        items, eligible = sampled
        propensity = np.where(items >= 0, 1.0 / np.maximum(eligible, 1)[:, None], 0.0)
        scores = np.full(items.shape, np.nan, np.float32)
        return SlateBatch(items, scores, propensity.astype(np.float32))

    def _first_draw(
        self, n_items: int, exclude: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:func:`sample_distinct_excluding` when its first round of draws fills every row (the
        usual case), in fewer numpy calls: at a few requests a tick the sampler's cost is its
        call count. Same draws from the stream, same slates; None (nothing drawn) whenever the
        general sampler would take another path, which then runs from the same stream state.

        The general sampler draws ``k + H + max(8, k)`` candidates per row and keeps, in draw
        order, the first k that are neither excluded nor repeated. Here one comparison of each
        candidate with the row's exclusions and the candidates drawn before it marks the
        blocked ones, and a stable argsort puts the first k free ones first."""
        batch, h = exclude.shape
        width = k + h + max(8, k)
        if batch == 0 or width + h > _BROADCAST_WIDTH:
            return None
        eligible = eligible_counts(n_items, exclude)
        if eligible.min() <= 4 * (k + h):  # nearly exhausted rows: the general path
            return None
        state = self.rng.bit_generator.state
        cand = self.rng.integers(0, n_items, size=(batch, width))
        seen = np.concatenate([exclude, cand], axis=1)
        blocked = cand[:, :, None] == seen[:, None, :]
        blocked &= self._mask(h, width)
        blocked = blocked.any(axis=2)
        order = blocked.argsort(axis=1, kind="stable")[:, :k]
        rows = np.arange(batch)[:, None]
        if blocked[rows, order].any():  # a row without k free candidates: draw it again
            self.rng.bit_generator.state = state
            return None
        return cand[rows, order], eligible

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
