"""Observation and action spaces of the recarena environments (one slot; vector envs batch them).

The observation is what a platform's recommender could log about a request, RecSim-style:

* ``user_id``: the user (recommenders see ids);
* ``topic_mix``: the topic mix of everything the user consumed, normalised (a logged profile);
* ``history``: the last ``history`` consumed items, oldest first, ``-1`` padded;
* ``slate``, ``clicks``, ``ratings``: the previous page of this session, per slot (``-1`` /
  0 before the first page), surface-shaped (``[k]`` for a list, ``[rows, cols]`` for a carousel);
* ``session``: pages and clicks so far in the session, the session's number in the episode, and
  days since the episode began.

Hidden truth (taste, fatigue, novelty intent, utilities, examination) is never observed; the
environments put it in ``info`` for analysis only.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from recarena.gym.driver import SessionDriver
from recarena.simulator.core.types import DAY


class SlateSpace(spaces.MultiDiscrete):
    """Slates of distinct item ids: a MultiDiscrete whose samples (and members) never repeat an
    item within a slate. The trailing ``slate_shape`` dims are one slate; leading dims batch."""

    def __init__(
        self, n_items: int, slate_shape: tuple[int, ...], batch: tuple[int, ...] = ()
    ) -> None:
        super().__init__(np.full((*batch, *slate_shape), n_items, np.int64))
        self.n_items = n_items
        self.slate_shape = slate_shape

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A slate of distinct items; with ``mask`` (int8 0/1 per slot and item, gymnasium's
        nested-tuple layout) only allowed items, with ``probability`` slot by slot without
        replacement (an item already in the slate is dropped and the rest renormalised). A mask
        that leaves a slot no item is a ValueError naming it (MultiDiscrete's draw repeated
        items, a slate outside the space that step refuses)."""
        if mask is not None and probability is not None:
            raise ValueError("mask, probability: give one of them, not both")
        if mask is not None:
            return self._sample_weighted("mask", mask)
        if probability is not None:
            return self._sample_weighted("probability", probability)
        k, n = int(np.prod(self.slate_shape)), self.n_items
        rows = int(np.prod(self.shape[: len(self.shape) - len(self.slate_shape)]))
        rng = self.np_random
        if 4 * k >= n:  # a slate near the catalog's size: random keys over the catalog
            keys = rng.random((rows, n))
            picks = np.argpartition(keys, k - 1, axis=1)[:, :k]
            order = np.argsort(np.take_along_axis(keys, picks, axis=1), axis=1)
            return np.take_along_axis(picks, order, axis=1).reshape(self.shape).astype(self.dtype)
        # Floyd's k-subset, rows at once, then a shuffle: memory rows x k (keys over the catalog
        # were rows x items floats, 30 GB for 20,000 envs over 200,000 items)
        picks = np.empty((rows, k), np.int64)
        for j in range(k):
            top = n - k + j  # picks[:, j] is uniform over 0..top among items not yet picked
            draw = rng.integers(0, top + 1, size=rows)
            taken = (picks[:, :j] == draw[:, None]).any(axis=1)
            picks[:, j] = np.where(taken, top, draw)
        order = np.argsort(rng.random((rows, k)), axis=1)
        return np.take_along_axis(picks, order, axis=1).reshape(self.shape).astype(self.dtype)

    def _sample_weighted(self, name: str, given: Any) -> np.ndarray:
        weights = np.stack(self._slot_weights(name, given, ()))
        k = int(np.prod(self.slate_shape))
        out = np.empty(weights.shape[0], np.int64)
        for start in range(0, weights.shape[0], k):
            for j in range(start, start + k):
                w = weights[j].copy()
                w[out[start:j]] = 0.0
                total = float(w.sum())
                if not total > 0.0:
                    where = ",".join(str(int(i)) for i in np.unravel_index(j, self.shape))
                    raise ValueError(
                        f"{name}: slot [{where}] has no allowed item left that is not already "
                        "in the slate"
                    )
                cumulative = np.cumsum(w)
                pick = int(np.searchsorted(cumulative, self.np_random.random() * total, "right"))
                out[j] = min(pick, int(np.flatnonzero(w)[-1]))
        return out.reshape(self.shape).astype(self.dtype)

    def _slot_weights(self, name: str, given: Any, path: tuple[int, ...]) -> list[np.ndarray]:
        """The per-slot arrays of a nested mask/probability tuple, in slot order, checked."""
        where = name + "".join(f"[{i}]" for i in path)
        depth = len(path)
        if depth < len(self.shape):
            want = self.shape[depth]
            if not isinstance(given, tuple) or len(given) != want:
                got = len(given) if isinstance(given, tuple) else type(given).__name__
                raise ValueError(f"{where}: expected {want} per-slot arrays, got {got}")
            return [
                w for i, sub in enumerate(given) for w in self._slot_weights(name, sub, (*path, i))
            ]
        array = np.asarray(given)
        if array.shape != (self.n_items,):
            raise ValueError(f"{where}: shape {array.shape}, expected ({self.n_items},)")
        if name == "mask":
            if array.dtype != np.int8 or not np.isin(array, (0, 1)).all():
                raise ValueError(f"{where}: expected dtype int8 of 0s and 1s, got {array.dtype}")
            return [array.astype(np.float64)]
        ok = np.issubdtype(array.dtype, np.floating) and bool(
            np.all(np.isfinite(array) & (array >= 0) & (array <= 1))
        )
        if not ok or not np.isclose(array.sum(), 1.0):
            raise ValueError(f"{where}: expected probabilities in [0, 1] summing to 1")
        return [array.astype(np.float64)]

    def contains(self, x: Any) -> bool:
        if not super().contains(x):
            return False
        flat = np.sort(np.asarray(x).reshape(-1, int(np.prod(self.slate_shape))), axis=1)
        return not bool((flat[:, 1:] == flat[:, :-1]).any())


@batch_space.register(SlateSpace)
def _batch_slates(space: SlateSpace, n: int = 1) -> SlateSpace:
    """gymnasium's vector envs (make_vec "sync"/"async") batch the single slate space: without
    this, gymnasium's MultiDiscrete rule made it a Box whose samples repeated items in a slate."""
    leading = space.shape[: len(space.shape) - len(space.slate_shape)]
    batched = SlateSpace(space.n_items, space.slate_shape, (n, *leading))
    batched._np_random = deepcopy(space.np_random)
    return batched


def action_space(driver: SessionDriver, batch: tuple[int, ...] = ()) -> SlateSpace:
    """A slate of distinct item ids, surface-shaped (``[k]`` or ``[rows, cols]``)."""
    return SlateSpace(driver.n_items, driver.slate_shape, batch)


def observation_space(driver: SessionDriver) -> spaces.Dict:
    n, shape = driver.n_items, driver.slate_shape
    item_or_none = np.full(shape, n + 1, np.int64)
    history = np.full(driver.history, n + 1, np.int64)
    pages = float(driver.cfg.max_pages)
    days = driver.lifetime_seconds / DAY + 365.0
    session_high = np.array([pages, pages, 1e6, days], np.float32)
    return spaces.Dict(
        {
            "user_id": spaces.Discrete(driver.cfg.users),
            "topic_mix": spaces.Box(0.0, 1.0, (driver.n_topics,), np.float32),
            "history": spaces.MultiDiscrete(history, start=np.full(driver.history, -1)),
            "slate": spaces.MultiDiscrete(item_or_none, start=np.full(shape, -1)),
            "clicks": spaces.MultiBinary(shape),
            "ratings": spaces.Box(0.0, 5.0, shape, np.float32),
            "session": spaces.Box(0.0, session_high, (4,), np.float32),
        }
    )
