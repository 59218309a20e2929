"""Plug-in recommenders that break one slate rule each (tests/test_slate_guard.py).

Each is referenced from a scenario as ``tests.slate_plugins:<Class>``, exactly as a user's own
recommender would be, so the test goes through the registry, the engine and the guard.
"""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import top_k_from_ranking
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class Honest:
    """Newest unseen items first: a legitimate slate on every call."""

    Params = NoParams
    surfaces = frozenset({"list"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = type(self).__name__

    def fit(self, history: Interactions) -> None:
        return None

    def update(self, feedback: FeedbackBatch) -> None:
        return None

    def items(self, requests: RequestBatch) -> np.ndarray:
        ranking = np.arange(requests.catalog.n_items - 1, -1, -1, dtype=np.int64)
        return top_k_from_ranking(ranking, requests.exclude, requests.k)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items = self.items(requests)
        shape = items.shape
        return SlateBatch(items, np.zeros(shape, np.float32), np.ones(shape, np.float32))


class SameItemEverywhere(Honest):
    """Item 0 in every slot (the recommender that "won" +21.7% before the guard)."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        return np.zeros((len(requests), requests.k), np.int64)


class IgnoresExclude(Honest):
    """Puts the user's first consumed item (when there is one) in slot 0."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        if requests.exclude.size:
            first = requests.exclude[:, 0]
            seen = first != PAD_ITEM
            items[seen, 0] = first[seen]
            # keep the slate free of duplicates so only the exclude rule is broken
            for row in np.flatnonzero(seen):
                dupes = np.flatnonzero(items[row, 1:] == first[row]) + 1
                items[row, dupes] = PAD_ITEM
        return items


class OutOfRange(Honest):
    """An id one past the catalog in the last slot."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        items[:, -1] = requests.catalog.n_items
        return items


class FloatIds(Honest):
    def items(self, requests: RequestBatch) -> np.ndarray:
        return super().items(requests).astype(np.float64)


class WrongShape(Honest):
    """One slot too many."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        return np.concatenate([items, np.full((len(requests), 1), PAD_ITEM, np.int64)], axis=1)


class BadPropensity(Honest):
    """Propensity 0 for a shown item (IPS would divide by it)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        slates.propensity[:, 0] = 0.0
        return slates
