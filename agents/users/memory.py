"""What each user has consumed, kept as a ragged matrix so whole batches are looked up at once."""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.types import PAD_ITEM


class ConsumedItems:
    """Per-user consumption history: row ``u`` holds user u's items, padded with PAD_ITEM.

    The width doubles when any user fills their row, so memory follows the heaviest user and a
    batch's exclusion matrix is one fancy-index: ``matrix[users, :max(count[users])]``.

    Ids are stored as int32 while every id fits (an int64 table is made the first time one does
    not): at a million users and a width of 64 the table is 256 MB instead of 512 MB, and the
    doubling briefly holds both tables. What callers get back is int64, as before.
    """

    def __init__(self, n_users: int, width: int = 8) -> None:
        self.matrix = np.full((n_users, width), PAD_ITEM, np.int32)
        self.count = np.zeros(n_users, np.int64)

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        """Record one item per user; ``users`` must be unique within a call."""
        if users.size == 0:
            return
        if self.matrix.dtype != np.int64 and int(items.max()) > np.iinfo(self.matrix.dtype).max:
            self.matrix = self.matrix.astype(np.int64)
        slots = self.count[users]
        needed = int(slots.max()) + 1
        width = self.matrix.shape[1]
        if needed > width:
            new_width = max(needed, 2 * width)
            grown = np.full((self.matrix.shape[0], new_width), PAD_ITEM, self.matrix.dtype)
            grown[:, :width] = self.matrix
            self.matrix = grown
        self.matrix[users, slots] = items
        self.count[users] = slots + 1

    def last(self, users: np.ndarray) -> np.ndarray:
        """[B] each user's most recently consumed item, PAD_ITEM for users with none."""
        counts = self.count[users]
        found = self.matrix[users, np.maximum(counts - 1, 0)].astype(np.int64)
        return np.where(counts > 0, found, PAD_ITEM)

    def for_users(self, users: np.ndarray) -> np.ndarray:
        """[B, H] int64 consumed items of each user, H = the batch's longest history."""
        width = int(self.count[users].max()) if users.size else 0
        return self.matrix[users, :width].astype(np.int64)

    def at(self, users: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """int64 ``matrix[users, slots]`` (fancy-indexed: any broadcastable shapes)."""
        return self.matrix[users, slots].astype(np.int64)
