"""Most-clicked items first: the classic non-personalised baseline."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.simulator.core.types import (
    DAY,
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class PopularityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    half_life_days: float | None = Field(default=None, gt=0)
    """Weigh older clicks down exponentially; null counts every click equally."""


def top_k_ranks(rank_of: np.ndarray, exclude: np.ndarray, k: int, n_ranked: int) -> np.ndarray:
    """[B, k] the k best ranks per row that are not excluded, in rank order; -1 past the last.

    ``rank_of[item]`` is an item's rank in one global ranking (its last entry, which PAD_ITEM
    = -1 reads, is ``n_ranked``). Only the first ``k + H`` ranks can be chosen (H exclusions per
    row at most), so a request costs O(k + H) whatever the catalog size: one lookup of the
    exclusions' ranks, one [B, k + H] mask and one stable argsort that puts the free ranks
    first, in order. The same slates as :func:`top_k_from_ranking`, in fewer array passes,
    because the inverse ranking is built once per fit instead of once per call.
    """
    batch, width = exclude.shape[0], min(k + exclude.shape[1], n_ranked)
    blocked = np.zeros((batch, width + 1), bool)
    rows = np.arange(batch)[:, None]
    if exclude.shape[1]:
        blocked[rows, np.minimum(rank_of[exclude], width)] = True
    order = blocked[:, :width].argsort(axis=1, kind="stable")[:, :k]
    order[blocked[rows, order]] = -1
    if order.shape[1] < k:  # fewer ranked items than slots
        order = np.pad(order, ((0, 0), (0, k - order.shape[1])), constant_values=-1)
    return order


class PopularityRecommender:
    """Ranks items by (optionally time-decayed) click counts at the last fit.

    Ties, including every item on day 0 and items published since the last fit, are broken by a
    random key drawn once per item, so "no data" does not mean "item 0 first for everybody".
    """

    Params = PopularityParams
    rows_independent = True
    """Each request is answered from its row and the fitted state (simulator/engine/waves.py)."""
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
        """The ranking of the first ``n_items`` items, rebuilt only after a fit or new items,
        with what every request reuses: each item's rank and the scores in rank order."""
        if self._ranked_items != n_items:
            self._ensure_items(n_items)
            counts = np.zeros(n_items)
            m = min(n_items, self.counts.shape[0])
            counts[:m] = self.counts[:m]
            self._ranking = np.lexsort((self.tie_keys[:n_items], -counts))
            rank_of = np.empty(n_items + 1, np.int64)
            rank_of[self._ranking] = np.arange(n_items)
            rank_of[n_items] = n_items  # PAD_ITEM (-1) reads this last entry: never in a slate
            self._rank_of = rank_of
            self._ranked_scores = counts[self._ranking].astype(np.float32)
            self._ranked_items = n_items
        return self._ranking

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        ranking = self._ranking_for(requests.catalog.n_items)
        shape = (len(requests), requests.k)
        if ranking.size == 0:  # nothing published yet
            empty = np.full(shape, PAD_ITEM, np.int64)
            return SlateBatch(empty, np.full(shape, np.nan, np.float32), np.ones(shape, np.float32))
        ranks = top_k_ranks(self._rank_of, requests.exclude, requests.k, ranking.shape[0])
        if not ranks.size or ranks.min() >= 0:  # every slot filled (the usual case): two lookups
            return SlateBatch(
                ranking[ranks], self._ranked_scores[ranks], np.ones(shape, np.float32)
            )
        filled = ranks >= 0
        safe = np.where(filled, ranks, 0)
        items = np.where(filled, ranking[safe], PAD_ITEM)
        scores = np.where(filled, self._ranked_scores[safe], np.float32(np.nan))
        return SlateBatch(items, scores, np.ones(shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None

    @staticmethod
    def merge_shards(copies: list[PopularityRecommender]) -> PopularityRecommender:
        """After a sharded segment: the state one process serving every shard's requests would
        have. Between fits only ``recommend`` draws (tie keys, with ``random``, whose stream does
        not depend on how draws are split), so the copy that drew the most is that state."""
        return max(copies, key=lambda c: c.tie_keys.shape[0])
