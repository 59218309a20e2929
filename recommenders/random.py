"""Uniform random recommendations: the floor every arm should beat, with exact propensities."""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import eligible_counts, sample_distinct_excluding
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch

_PREFIX = 2
"""The first draw is checked on its first ``_PREFIX * k`` candidates (see ``_sample``)."""


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

        The general sampler draws ``k + H + max(8, k)`` candidates per row and keeps, in draw
        order, the first k that are neither excluded nor repeats of an earlier draw. Whether a
        candidate is blocked depends only on the exclusions and the draws before it, so when
        the first ``_PREFIX * k`` columns already hold k free candidates in every row (nearly
        always: few of a catalogue's items are blocked) they are the whole width's answer; one
        [B, 2k, H + 2k] comparison marks them and a stable argsort puts the free ones first.
        Otherwise (or for nearly exhausted rows) the general sampler runs from the same
        stream state."""
        batch, h = exclude.shape
        eligible = eligible_counts(n_items, exclude)
        if batch and eligible.min() > 4 * (k + h):
            state = self.rng.bit_generator.state
            width = k + h + max(8, k)
            cand = self.rng.integers(0, n_items, size=(batch, width))
            prefix = min(width, _PREFIX * k)
            seen = np.concatenate([exclude, cand[:, :prefix]], axis=1)
            blocked = cand[:, :prefix, None] == seen[:, None, :]
            blocked &= self._mask(h, prefix)
            blocked = blocked.any(axis=2)
            order = blocked.argsort(axis=1, kind="stable")[:, :k]
            at = np.arange(batch)[:, None]
            if not blocked[at, order].any():
                return cand[at, order], eligible
            self.rng.bit_generator.state = state
        return sample_distinct_excluding(self.rng, n_items, exclude, k)

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
