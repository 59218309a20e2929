"""The sessions that are browsing right now, as a struct of arrays, and their page ids.

One definition of the request id (``session_id * PAGE_ID_STRIDE + page``) serves pages and
conversation turns alike: it keys the counter-based noise, so arms that show the same session
the same page draw the same uniforms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from recarena.simulator.core.rng import _GOLDEN, _GOLDEN_0D, _mix64_owned, operand
from recarena.simulator.engine.arrivals import Arrivals

PAGE_ID_STRIDE = 1024
"""request_id = session_id * 1024 + page; the schema caps max_pages and max_turns below it."""

TIMING_BUCKETS = ("fit", "recommend", "respond", "update", "log", "reflect")


@dataclass
class ActiveSessions:
    """Struct of arrays over the sessions currently browsing."""

    user: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    session_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    start: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    explore: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    page: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    fatigue: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    clicks: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    value: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    _zeros: np.ndarray = field(default_factory=lambda: np.zeros(64), repr=False)
    _offsets: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def add(self, arrivals: Arrivals) -> None:
        """Append sessions that start now (fresh arrays: the previous ones may be held by the
        requests a recommender was given). Each column is one concatenate; the per-session
        counters start from a shared zero buffer instead of four allocations."""
        n = len(arrivals)
        if self._zeros.shape[0] < n:
            self._zeros = np.zeros(max(n, 2 * self._zeros.shape[0]), np.float64)
        zeros = self._zeros[:n]
        self.user = np.concatenate([self.user, arrivals.user])
        self.session_id = np.concatenate([self.session_id, arrivals.session_id])
        self.start = np.concatenate([self.start, arrivals.start])
        self.explore = np.concatenate([self.explore, arrivals.explore])
        self.page = np.concatenate([self.page, zeros], dtype=np.int32, casting="unsafe")
        self.fatigue = np.concatenate([self.fatigue, zeros], dtype=np.float32, casting="unsafe")
        self.clicks = np.concatenate([self.clicks, zeros], dtype=np.int32, casting="unsafe")
        self.value = np.concatenate([self.value, zeros])

    _COLUMNS = ("user", "session_id", "start", "explore", "page", "fatigue", "clicks", "value")

    def add_sessions(self, other: ActiveSessions) -> None:
        """Append ``other``'s sessions, mid-session state (page, fatigue, clicks) included."""
        for name in self._COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def taken(self, rows: np.ndarray) -> ActiveSessions:
        """A new struct holding the sessions ``rows`` (a mask or indices) selects."""
        out = ActiveSessions()
        for name in self._COLUMNS:
            setattr(out, name, getattr(self, name)[rows])
        return out

    def replace_with(self, other: ActiveSessions) -> None:
        """Hold ``other``'s sessions instead of these (the object stays the one others hold)."""
        for name in self._COLUMNS:
            setattr(self, name, getattr(other, name))

    def keep(self, mask: np.ndarray) -> None:
        self.user = self.user[mask]
        self.session_id = self.session_id[mask]
        self.start = self.start[mask]
        self.explore = self.explore[mask]
        self.page = self.page[mask]
        self.fatigue = self.fatigue[mask]
        self.clicks = self.clicks[mask]
        self.value = self.value[mask]

    def request_ids(self) -> np.ndarray:
        """[B] the id of the page (or turn) each session is about to see."""
        return self.session_id * PAGE_ID_STRIDE + self.page

    def noise_keys(self, hash_base: np.uint64, request_id: np.ndarray) -> np.ndarray:
        """[B] counter-based noise keys of this page: shared by every arm.

        ``combine(hash_base, request_id)``, i.e. ``mix64(hash_base + id·G + G)`` in wrapping
        arithmetic, computed in place in the one array the cast makes."""
        keys = request_id.astype(np.uint64)
        keys *= _GOLDEN_0D
        keys += self._key_offset(hash_base)
        return _mix64_owned(keys)

    def _key_offset(self, hash_base: np.uint64) -> np.ndarray:
        """``hash_base + G`` as a 0-d operand (:func:`operand`), made once per cell's key."""
        kept = self._offsets.get(int(hash_base))
        if kept is None:
            kept = operand((int(hash_base) + int(_GOLDEN)) % 2**64, np.uint64)
            self._offsets[int(hash_base)] = kept
        return kept


class Timings:
    """Wall seconds per bucket for the cell manifest (fit, recommend, respond, update, log...)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(TIMING_BUCKETS, 0.0)

    def add(self, bucket: str, seconds: float) -> None:
        self.seconds[bucket] += seconds

    def split_batch(
        self, started: float, after_recommend: float, after_respond: float, after_update: float
    ) -> None:
        """Split one batch's wall time (pages or turns) into the timing buckets."""
        finished = time.perf_counter()
        self.seconds["recommend"] += after_recommend - started
        self.seconds["respond"] += after_respond - after_recommend
        self.seconds["update"] += after_update - after_respond
        self.seconds["log"] += finished - after_update
