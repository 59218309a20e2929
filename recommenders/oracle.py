"""The oracle: ranks by each user's true utility at this moment. An upper bound, not a policy.

It reads the simulator's ground truth (``RecommenderContext.truth``), which no real system has,
so every report can show how far a recommender is from the best the simulated users allow.
"""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import top_k_from_scores
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class OracleRecommender:
    Params = NoParams
    surfaces = frozenset({"list"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        if ctx.truth is None:
            raise ValueError("the oracle needs the simulator's ground truth (ctx.truth)")
        self.name = "oracle"
        self.truth = ctx.truth

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        n = requests.catalog.n_items
        every_item = np.broadcast_to(np.arange(n, dtype=np.int64), (len(requests), n))
        utility = self.truth(requests, every_item)
        items, scores = top_k_from_scores(utility, requests.exclude, requests.k)
        return SlateBatch(items, scores, np.ones(items.shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None
