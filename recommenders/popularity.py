"""Most-clicked items first: the classic non-personalised baseline."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.slates import top_k_from_ranking
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch

DAY = 86_400.0


class PopularityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    half_life_days: float | None = Field(default=None, gt=0)
    """Weigh older clicks down exponentially; null counts every click equally."""


class PopularityRecommender:
    """Ranks items by (optionally time-decayed) click counts at the last fit.

    Ties, including every item on day 0 and items published since the last fit, are broken by a
    random key drawn once per item, so "no data" does not mean "item 0 first for everybody".
    """

    Params = PopularityParams
    surfaces = frozenset({"list"})

    def __init__(self, params: PopularityParams, ctx: RecommenderContext) -> None:
        self.name = "popularity"
        self.params = params
        self.rng = ctx.rng
        self.counts = np.zeros(0)
        self.tie_keys = np.zeros(0)
        self._ranking = np.zeros(0, np.int64)
        self._ranked_items = -1

    def _ensure_items(self, n_items: int) -> None:
        if self.tie_keys.shape[0] < n_items:
            new = self.rng.random(n_items - self.tie_keys.shape[0])
            self.tie_keys = np.concatenate([self.tie_keys, new])

    def fit(self, history: Interactions) -> None:
        weights = None
        if self.params.half_life_days and len(history):
            age_days = (history.time.max() - history.time) / DAY
            weights = np.power(0.5, age_days / self.params.half_life_days)
        n = int(history.item.max()) + 1 if len(history) else 0
        self.counts = np.bincount(history.item, weights=weights, minlength=n).astype(np.float64)
        self._ranked_items = -1  # rebuild the ranking at the next request

    def _ranking_for(self, n_items: int) -> np.ndarray:
        if self._ranked_items != n_items:
            self._ensure_items(n_items)
            counts = np.zeros(n_items)
            m = min(n_items, self.counts.shape[0])
            counts[:m] = self.counts[:m]
            self._ranking = np.lexsort((self.tie_keys[:n_items], -counts))
            self._scores = counts
            self._ranked_items = n_items
        return self._ranking

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        ranking = self._ranking_for(requests.catalog.n_items)
        items = top_k_from_ranking(ranking, requests.exclude, requests.k)
        scores = np.where(items >= 0, self._scores[np.maximum(items, 0)], np.nan)
        return SlateBatch(items, scores.astype(np.float32), np.ones(items.shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None

    @staticmethod
    def merge_shards(copies: list[PopularityRecommender]) -> PopularityRecommender:
        """After a sharded segment: the state one process serving every shard's requests would
        have. Between fits only ``recommend`` draws (tie keys, with ``random``, whose stream does
        not depend on how draws are split), so the copy that drew the most is that state."""
        return max(copies, key=lambda c: c.tie_keys.shape[0])
