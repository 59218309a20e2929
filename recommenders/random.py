"""Uniform random recommendations: the floor every arm should beat, with exact propensities."""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import sample_distinct_excluding
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


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

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items, eligible = sample_distinct_excluding(
            self.rng, requests.catalog.n_items, requests.exclude, requests.k
        )
        propensity = np.where(items >= 0, 1.0 / np.maximum(eligible, 1)[:, None], 0.0)
        scores = np.full(items.shape, np.nan, np.float32)
        return SlateBatch(items, scores, propensity.astype(np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None
