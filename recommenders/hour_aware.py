"""Hour-aware re-ranking: clock features over any base recommender (Interest Clock style).

At each fit the wrapper counts every user's clicks per (hour of day, topic), smooths the hour
axis with a circular Gaussian kernel (so 23:00 and 01:00 share evidence, and sparse hours
borrow from their neighbours), and shrinks each user towards everybody's hour profile with
``prior`` pseudo-clicks. At serving time an item's clock feature is the log-lift of its topics
at the current hour over the user's all-day mix:

    clock(u, i, h) = Σ_t x_i[t] · (log P(t | u, h) − log P(t | u))

and the item's score is ``relevance + weight · clock``. ``weight: 0`` serves exactly the base,
so the pair (weight 0, weight w) isolates the clock.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recarena.agents.users.daily_rhythm import HOURS, hour_of_day, smooth_hours
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.pool_rerank import PoolParams, PoolWrapper, top_k_of_pool
from recarena.simulator.core.types import Interactions, RequestBatch, SlateBatch


class HourAwareParams(PoolParams):
    weight: float = Field(default=1.0, ge=0, le=1e6)
    """Weight of the clock feature against the base's relevance in [0, 1]; 0 = the base."""
    width_hours: float = Field(default=1.5, gt=0, le=12)
    """Width (sd) of the circular Gaussian smoothing over hours."""
    prior: float = Field(default=3.0, ge=0, le=1e6)
    """Pseudo-clicks shrinking each user's topic mix towards everybody's, and each hour's
    towards the user's all-day mix (see :func:`clock_lift`)."""


def clock_lift(
    user: np.ndarray,
    seconds: np.ndarray,
    item_topics: np.ndarray,
    n_users: int,
    width_hours: float,
    prior: float,
) -> np.ndarray:
    """[U, 24, T] log P(t | u, h) − log P(t | u) from clicks (``item_topics`` [N, T] each).

    Both levels are shrunk consistently, so a user whose topic mix is the same at every hour
    gets a lift of exactly zero, whatever they clicked and however few clicks they have:

    * all-day: c[u, t] = a[u, t] + prior · g[t] (g: everybody's topic mix), m = c / Σ_t c;
    * per hour: the user's smoothed clicks near h, plus the share of the user's activity at h
      of the same pseudo-clicks, plus ``prior`` pseudo-clicks spread as m.

    (Shrinking only the hour level would make topics the user never clicked look "more
    likely at this hour" or "less likely", just because an hour holds fewer clicks than the day.)
    """
    n_topics = item_topics.shape[1]
    hour = hour_of_day(seconds)
    counts = np.zeros((n_users, HOURS, n_topics))
    np.add.at(counts, (user, hour), item_topics)
    near = smooth_hours(counts, width_hours)  # a[u, h, t], clicks near hour h
    per_user = near.sum(axis=1)  # a[u, t]
    everybody = per_user.sum(axis=0)
    mix = everybody / max(float(everybody.sum()), 1e-12)  # g[t]
    all_day = per_user + prior * mix  # c[u, t]
    all_day_total = all_day.sum(axis=1, keepdims=True)
    user_mix = all_day / np.maximum(all_day_total, 1e-12)  # m[u, t]
    hour_total = near.sum(axis=2)  # A_h[u, h]
    day_total = hour_total.sum(axis=1, keepdims=True)
    share = np.where(day_total > 0, hour_total / np.maximum(day_total, 1e-12), 1.0 / HOURS)
    at_hour = near + (share * prior)[:, :, None] * mix + prior * user_mix[:, None, :]
    at_hour = at_hour / np.maximum(at_hour.sum(axis=2, keepdims=True), 1e-12)
    tiny = 1e-12
    return np.log(at_hour + tiny) - np.log(user_mix + tiny)[:, None, :]


class HourAware(PoolWrapper):
    """Re-ranks a base's candidates by the user's hour-of-day topic lift."""

    Params = HourAwareParams

    def __init__(self, params: HourAwareParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "hour_aware"
        self.params: HourAwareParams = params
        self.lift: np.ndarray | None = None
        self._topics = np.zeros((0, ctx.n_topics), np.float32)

    def fit(self, history: Interactions) -> None:
        super().fit(history)
        if len(history) == 0 or self.params.weight == 0:
            return
        known = history.item < self._topics.shape[0]  # every clicked item was shown, so seen
        p = self.params
        self.lift = clock_lift(
            history.user[known],
            history.time[known],
            self._topics[history.item[known]].astype(np.float64),
            self.n_users,
            p.width_hours,
            p.prior,
        ).astype(np.float32)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        self._topics = requests.catalog.topics
        if self.lift is None:
            return self.base.recommend(requests)
        pool, relevance = self.pool(requests)
        hour = int(hour_of_day(requests.time))
        lift = self.lift[requests.user, hour]  # [B, T]
        topics = requests.catalog.topics[np.maximum(pool.items, 0)]  # [B, C, T]
        clock = np.einsum("bct,bt->bc", topics, lift)
        return top_k_of_pool(pool, relevance + self.params.weight * clock, requests.k)
