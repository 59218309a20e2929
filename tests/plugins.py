"""Recommenders used by tests through the ``module:Class`` plugin path."""

from __future__ import annotations

import time

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.popularity import PopularityRecommender
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


class PacedPopularity(PopularityRecommender):
    """The built-in popularity recommender, pausing ``PACE_SECONDS`` on every page wave.

    Why: tests that stop, kill or resume a run mid-cell need a cell that lasts a while on any
    machine; a small scenario's cells take a fraction of a second on a fast one, and a signal
    aimed at a running cell found every cell finished. The pause changes no row of the logs
    (same slates as ``popularity``), so byte-identity checks still hold."""

    PACE_SECONDS = 0.001

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        time.sleep(self.PACE_SECONDS)
        return super().recommend(requests)


class StalledPopularity(PacedPopularity):
    """``PacedPopularity`` at a crawl: its cell lasts minutes. For a test that kills or stops
    that very cell: a cell of seconds (a random arm's lasts a fifth of one) could finish
    between the test seeing it run and its signal landing, and the signal hit nothing."""

    PACE_SECONDS = 0.05
