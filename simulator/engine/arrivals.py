"""Session arrivals: per-user Poisson visit rates that depend on satisfaction, drawn per day.

Rates change with satisfaction, which differs by arm, yet arms must meet the same people at the
same moments. So candidates are drawn at each user's *maximum* rate from the arm-independent
``arrivals`` stream and then thinned (Lewis–Shedler) with uniforms from the same stream: every
arm sees the same candidates and the same uniforms, and two arms with equal satisfaction get
exactly the same sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recarena.agents.users.population import UserState
from recarena.simulator.core.rng import generator
from recarena.simulator.core.scenario import Population
from recarena.simulator.core.types import DAY


@dataclass(frozen=True)
class Arrivals:
    """Sessions that will start, sorted by start time."""

    user: np.ndarray  # int64
    start: np.ndarray  # float64 simulated seconds
    explore: np.ndarray  # bool novelty-seeking intent
    session_id: np.ndarray  # int64, the same candidate has the same id under every arm

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @staticmethod
    def empty() -> Arrivals:
        return Arrivals(
            np.empty(0, np.int64), np.empty(0), np.empty(0, bool), np.empty(0, np.int64)
        )

    def after(self, index: int) -> Arrivals:
        return Arrivals(
            self.user[index:], self.start[index:], self.explore[index:], self.session_id[index:]
        )

    def for_shard(self, index: int, count: int) -> Arrivals:
        """The arrivals of users with ``user % count == index`` (order kept)."""
        keep = self.user % count == index
        return Arrivals(
            self.user[keep], self.start[keep], self.explore[keep], self.session_id[keep]
        )

    def concat(self, other: Arrivals) -> Arrivals:
        return Arrivals(
            np.concatenate([self.user, other.user]),
            np.concatenate([self.start, other.start]),
            np.concatenate([self.explore, other.explore]),
            np.concatenate([self.session_id, other.session_id]),
        )


def draw_day(
    day: int,
    users: UserState,
    cfg: Population,
    seed: int,
    replicate: int,
    day_length: float = DAY,
    rate_boost: np.ndarray | None = None,
) -> Arrivals:
    """The day's sessions. ``rate_boost`` (word of mouth) multiplies visit rates, within the cap."""
    rng = generator(seed, replicate, "arrivals", day)
    max_rate = users.activity * cfg.max_rate_factor
    counts = rng.poisson(max_rate * day_length / DAY)
    candidate_user = np.repeat(np.arange(users.n_users, dtype=np.int64), counts)
    n = candidate_user.shape[0]
    offset = rng.random(n) * day_length
    accept_u = rng.random(n)
    explore_u = rng.random(n)
    session_id = np.int64(day) * np.int64(2**32) + np.arange(n, dtype=np.int64)

    rate = users.visit_rate(cfg)
    if rate_boost is not None:  # the ceiling bounds it, so the thinning stays valid
        rate = np.minimum(rate * rate_boost, max_rate)
    keep_probability = rate / np.maximum(max_rate, 1e-300)
    keep = accept_u < keep_probability[candidate_user]
    order = np.argsort(offset[keep], kind="stable")
    return Arrivals(
        user=candidate_user[keep][order],
        start=day * DAY + offset[keep][order],
        explore=(explore_u < users.explore_prob[candidate_user])[keep][order],
        session_id=session_id[keep][order],
    )
