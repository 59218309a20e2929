"""The item catalog: a growing struct of arrays (ids are dense, 0..n-1, in publication order)."""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.types import CatalogView, read_only


class Catalog:
    """Items with a topic mixture, a true quality, a creator and a publication time.

    Capacity doubles as creators publish, so adding an item is amortised O(1) and views handed to
    recommenders stay plain numpy slices.
    """

    def __init__(self, n_topics: int, capacity: int = 1024) -> None:
        self.n_topics = n_topics
        self.n = 0
        self._topics = np.zeros((capacity, n_topics), np.float32)
        self._quality = np.zeros(capacity, np.float32)
        self._creator = np.zeros(capacity, np.int32)
        self._created_at = np.zeros(capacity, np.float64)
        self._source = np.zeros(capacity, np.int8)
        """0 human-made, 1 AI-generated (set only by agents/creators/ai_adoption.py)."""

    def _grow(self, needed: int) -> None:
        capacity = self._quality.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity)
        for name in ("_topics", "_quality", "_creator", "_created_at", "_source"):
            old = getattr(self, name)
            new = np.zeros((new_capacity, *old.shape[1:]), old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def add(
        self,
        topics: np.ndarray,
        quality: np.ndarray,
        creator: np.ndarray,
        created_at: float,
        source: int = 0,
    ) -> np.ndarray:
        """Publish items (``source`` 1 = AI-generated); returns their new ids."""
        count = int(quality.shape[0])
        self._grow(self.n + count)
        ids = np.arange(self.n, self.n + count, dtype=np.int64)
        self._topics[ids] = topics
        self._quality[ids] = quality
        self._creator[ids] = creator
        self._created_at[ids] = created_at
        self._source[ids] = source
        self.n += count
        return ids

    @property
    def topics(self) -> np.ndarray:
        return self._topics[: self.n]

    @property
    def quality(self) -> np.ndarray:
        return self._quality[: self.n]

    @property
    def creator(self) -> np.ndarray:
        return self._creator[: self.n]

    @property
    def created_at(self) -> np.ndarray:
        return self._created_at[: self.n]

    @property
    def source(self) -> np.ndarray:
        return self._source[: self.n]

    def view(self) -> CatalogView:
        """What recommenders see: read-only views (a plug-in cannot rewrite the catalog)."""
        return CatalogView(
            n_items=self.n,
            topics=read_only(self.topics),
            quality=read_only(self.quality),
            creator=read_only(self.creator),
            created_at=read_only(self.created_at),
            source=read_only(self.source),
        )
