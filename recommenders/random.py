"""Uniform random recommendations: the floor every arm should beat, with exact propensities."""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import sample_distinct_keyed
from recarena.simulator.core.rng import combine
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class RandomRecommender:
    """k distinct items drawn uniformly from the published items the user has not consumed.

    The marginal probability of any eligible item at any slot is ``1/eligible``, which is what
    is logged as the propensity (so IPS estimators can use random logs directly).

    Each request's draws are counter-based, keyed by the arm's stream, the session and the page
    (draws version 2; version 1 drew from the arm's stream in request order). So a request gets
    the same slate whatever else shares its batch, and random arms take part in page waves
    (simulator/engine/waves.py).
    """

    Params = NoParams
    surfaces = frozenset({"list"})
    rows_independent = True
    """Each request is answered from its row and the arm's key (simulator/engine/waves.py)."""

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = "random"
        self.key = np.uint64(int(ctx.rng.integers(0, 2**63)))
        """The arm's key: every draw is a hash of it, the session, the page and the slot."""

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        keys = combine(combine(self.key, requests.session), requests.page)
        items, eligible = sample_distinct_keyed(
            keys, requests.catalog.n_items, requests.exclude, requests.k
        )
        propensity = np.where(items >= 0, 1.0 / np.maximum(eligible, 1)[:, None], 0.0)
        scores = np.full(items.shape, np.nan, np.float32)
        return SlateBatch(items, scores, propensity.astype(np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None
