"""Recommenders used by tests through the ``module:Class`` plugin path."""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import top_k_from_ranking
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class NewestFirst:
    """Deterministic: the most recently published unseen items first (uses no randomness)."""

    Params = NoParams
    surfaces = frozenset({"list"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = "newest"

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        ranking = np.arange(requests.catalog.n_items - 1, -1, -1, dtype=np.int64)
        items = top_k_from_ranking(ranking, requests.exclude, requests.k)
        shape = items.shape
        return SlateBatch(items, np.zeros(shape, np.float32), np.ones(shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None


class QualityFirst:
    """Ranks unseen items by their true quality (a simulator-only, non-personalised oracle)."""

    Params = NoParams
    surfaces = frozenset({"list"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = "quality"

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        ranking = np.argsort(-requests.catalog.quality, kind="stable").astype(np.int64)
        items = top_k_from_ranking(ranking, requests.exclude, requests.k)
        shape = items.shape
        return SlateBatch(items, np.zeros(shape, np.float32), np.ones(shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None
