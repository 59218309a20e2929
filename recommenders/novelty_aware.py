"""Novelty-aware re-ranking that reads the session (after hierarchical-RL novelty intent).

Novelty seeking has a static part (a user's trait) and a session part (today they want
something new). recarena's users have both: a per-user chance that a session is
novelty-seeking, and the session's switch. This recommender estimates both from clicks only:

* a click is *novel* when the item's topics are far from what the user clicked before
  (cosine with the user's clicked-topic mix below ``novel_cut``);
* the trait estimate is the user's share of novel clicks so far, Beta(1, 1)-smoothed;
* the session propensity is a Beta posterior: the trait estimate as prior mean with
  ``prior_strength`` pseudo-clicks, updated by this session's novel and familiar clicks.

The score mixes relevance and novelty, ``(1 − ρ) · relevance + ρ · (1 − cos(x_i, p_u))``, with
``ρ = mix · p̂_session`` when ``adaptive`` and ``ρ = mix`` otherwise (the fixed-mix comparator).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.pool_rerank import (
    PoolParams,
    PoolWrapper,
    cosine_rows,
    top_k_of_pool,
)
from recarena.simulator.core.types import FeedbackBatch, RequestBatch, SlateBatch


class NoveltyAwareParams(PoolParams):
    mix: float = Field(default=1.0, ge=0, le=1)
    """Largest novelty weight ρ (adaptive), or the fixed ρ (adaptive: false)."""
    adaptive: bool = True
    novel_cut: float = Field(default=0.5, ge=0, le=1)
    """A click is novel when cos(item topics, user's clicked-topic mix) is below this."""
    prior_strength: float = Field(default=2.0, gt=0)
    """Pseudo-clicks behind the trait estimate in the session posterior."""


def session_propensity(
    trait_novel: np.ndarray,
    trait_total: np.ndarray,
    session_novel: np.ndarray,
    session_total: np.ndarray,
    prior_strength: float,
) -> np.ndarray:
    """[B] posterior mean novelty propensity of the session.

    trait = (novel + 1) / (total + 2); p̂ = (s · trait + session_novel) / (s + session_total).
    """
    trait = (trait_novel + 1.0) / (trait_total + 2.0)
    return (prior_strength * trait + session_novel) / (prior_strength + session_total)


class NoveltyAware(PoolWrapper):
    """Mixes relevance with topic novelty by the session's estimated novelty propensity."""

    Params = NoveltyAwareParams

    def __init__(self, params: NoveltyAwareParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "novelty_aware"
        self.params: NoveltyAwareParams = params
        n = ctx.n_users
        self.clicked_mix = np.zeros((n, ctx.n_topics), np.float64)
        self.novel = np.zeros(n)
        self.clicks = np.zeros(n)
        self.session = np.full(n, -1, np.int64)
        self.session_novel = np.zeros(n)
        self.session_clicks = np.zeros(n)

    def rho(self, users: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        """[B] the novelty weight of each request."""
        p = self.params
        if not p.adaptive:
            return np.full(users.shape[0], p.mix)
        current = self.session[users] == sessions
        propensity = session_propensity(
            self.novel[users],
            self.clicks[users],
            np.where(current, self.session_novel[users], 0.0),
            np.where(current, self.session_clicks[users], 0.0),
            p.prior_strength,
        )
        return p.mix * propensity

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        if self.params.mix == 0:
            return self.base.recommend(requests)
        pool, relevance = self.pool(requests)
        topics = requests.catalog.topics[np.maximum(pool.items, 0)].astype(np.float64)
        novelty = 1.0 - cosine_rows(self.clicked_mix[requests.user], topics)
        rho = self.rho(requests.user, requests.session)[:, None]
        # a pool's padding (relevance -inf) stays as it is: at rho 1 (mix 1, a session of only
        # novel clicks, a tiny prior_strength) 0 x -inf printed a RuntimeWarning mid-run
        finite = np.isfinite(relevance)
        blend = (1.0 - rho) * np.where(finite, relevance, 0.0) + rho * novelty
        return top_k_of_pool(pool, np.where(finite, blend, relevance), requests.k)

    def update(self, feedback: FeedbackBatch) -> None:
        super().update(feedback)
        users = feedback.requests.user
        sessions = feedback.requests.session
        fresh = self.session[users] != sessions
        self.session_novel[users[fresh]] = 0.0
        self.session_clicks[users[fresh]] = 0.0
        self.session[users] = sessions
        rows, slots = np.nonzero(feedback.clicked)
        if rows.size == 0:
            return
        clicked_users = users[rows]
        x = feedback.requests.catalog.topics[feedback.slates.items[rows, slots]].astype(np.float64)
        history = self.clicked_mix[clicked_users]
        similarity = (history * x).sum(axis=1) / np.maximum(
            np.linalg.norm(history, axis=1) * np.linalg.norm(x, axis=1), 1e-12
        )
        is_novel = (similarity < self.params.novel_cut).astype(np.float64)
        self.novel[clicked_users] += is_novel
        self.clicks[clicked_users] += 1.0
        self.session_novel[clicked_users] += is_novel
        self.session_clicks[clicked_users] += 1.0
        self.clicked_mix[clicked_users] += x
