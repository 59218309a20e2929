"""Online bandits that learn after every page batch: LinUCB and two Thompson samplers.

* ``linucb``: a hybrid model in the spirit of Li et al. (2010): a shared per-item click rate
  ``μ_i`` learned from every user, plus a per-user ridge regression of the residual
  ``click − μ_i`` on item features (topic mix + bias). Items are ranked by the upper bound
  ``μ_i + θ_u·x + α·σ·(sqrt(xᵀ A_u⁻¹ x) + 1/sqrt(n_i + m))`` with σ² = μ̄(1−μ̄). Deterministic, so its
  propensities are 1. (A purely per-user topic model cannot see item quality, which in the
  default world matters as much as taste.)
* ``thompson_beta``: Beta-Bernoulli posterior of each item's click rate, one posterior draw per
  request (non-personalised).
* ``thompson_linear``: per-user Gaussian posterior over the same linear model as LinUCB.

Thompson slates are random, so their propensity (probability of that item at that slot) has no
closed form. It is estimated by Monte Carlo: ``propensity_samples`` further posterior draws, plus
the draw that was actually shown, so the estimate is unbiased and never zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.slates import top_k_from_scores
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


def item_features(topics: np.ndarray) -> np.ndarray:
    """[N, T+1] topic mix plus a constant, the features every linear bandit here uses."""
    return np.concatenate([topics, np.ones((topics.shape[0], 1), topics.dtype)], axis=1)


def monte_carlo_propensity(
    shown: np.ndarray, draw_scores: Callable[[], np.ndarray], exclude: np.ndarray, samples: int
) -> np.ndarray:
    """P(shown[b, j] at slot j) estimated from ``samples`` fresh slates plus the shown one."""
    k = shown.shape[1]
    matches = np.ones(shown.shape, np.float64)  # the shown slate is itself one draw
    for _ in range(samples):
        items, _ = top_k_from_scores(draw_scores(), exclude, k)
        matches += items == shown
    return (matches / (samples + 1)).astype(np.float32)


class _ItemRates:
    """Shrunk per-item click rates: (clicks + m·μ̄) / (shows + m), μ̄ the overall rate so far."""

    def __init__(self, prior_weight: float) -> None:
        self.m = prior_weight
        self.clicks = np.zeros(0)
        self.shows = np.zeros(0)

    def grow(self, n_items: int) -> None:
        if self.clicks.shape[0] < n_items:
            pad = n_items - self.clicks.shape[0]
            self.clicks = np.concatenate([self.clicks, np.zeros(pad)])
            self.shows = np.concatenate([self.shows, np.zeros(pad)])

    def overall(self) -> float:
        total = self.shows.sum()
        return float(self.clicks.sum() / total) if total else 0.05

    def mean_and_sd(self, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        self.grow(n_items)
        prior = self.overall()
        shows = self.shows[:n_items] + self.m
        mean = (self.clicks[:n_items] + self.m * prior) / shows
        return mean, np.sqrt(prior * (1 - prior) / shows)

    def update(self, items: np.ndarray, clicked: np.ndarray) -> None:
        np.add.at(self.shows, items, 1.0)
        np.add.at(self.clicks, items, clicked.astype(np.float64))


class _HybridLinear:
    """Shared item rates plus per-user ridge on the residual; used by LinUCB and linear TS."""

    def __init__(self, n_users: int, n_topics: int, ridge: float, prior_weight: float) -> None:
        self.items = _ItemRates(prior_weight)
        self.users = None if n_users == 0 else _PerUserRidge(n_users, n_topics + 1, ridge)

    def ridge(self) -> _PerUserRidge:
        """The per-user ridge; absent only in a world without users, where nobody asks."""
        if self.users is None:
            raise RuntimeError("a per-user bandit was asked to serve a world with no users")
        return self.users

    def update(self, feedback: FeedbackBatch) -> None:
        items = feedback.slates.items
        valid = items != PAD_ITEM
        n_items = feedback.requests.catalog.n_items
        mean, _ = self.items.mean_and_sd(n_items)
        safe = np.maximum(items, 0)
        residual = feedback.clicked.astype(np.float64) - mean[safe]
        x = item_features(feedback.requests.catalog.topics.astype(np.float64))[safe]
        self.ridge().update(feedback.requests.user, x, residual, valid.astype(np.float64))
        self.items.update(items[valid], feedback.clicked[valid])


class _PerUserRidge:
    """A_u = λI + Σ x xᵀ and b_u = Σ r x for every user, updated a batch at a time."""

    def __init__(self, n_users: int, dim: int, ridge: float) -> None:
        self.a = np.tile(np.eye(dim) * ridge, (n_users, 1, 1))
        self.a_inv = np.tile(np.eye(dim) / ridge, (n_users, 1, 1))
        self.b = np.zeros((n_users, dim))

    def theta(self, users: np.ndarray) -> np.ndarray:
        return np.einsum("bde,be->bd", self.a_inv[users], self.b[users])

    def update(self, users: np.ndarray, x: np.ndarray, reward: np.ndarray, mask: np.ndarray):
        """users [B] unique; x [B, k, d]; reward [B, k]; mask [B, k] which slots count."""
        x = x * mask[:, :, None]
        self.a[users] += np.einsum("bkd,bke->bde", x, x)
        self.b[users] += np.einsum("bkd,bk->bd", x, reward)
        self.a_inv[users] = np.linalg.inv(self.a[users])


MIN_RIDGE = 1e-6
"""The smallest ``ridge``: at 1e-12 or below, A = ridge·I + Σ x xᵀ is singular in float64 (the
topic mix and the constant feature are collinear), its inverse is not positive definite after
the first update, and a linear Thompson arm failed every cell (LinAlgError) after validate."""


class LinUCBParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(default=0.5, ge=0)
    """Width of the confidence bonus."""
    ridge: float = Field(default=1.0, ge=MIN_RIDGE)
    prior_weight: float = Field(default=20.0, gt=0)
    """Pseudo-shows that shrink a new item's rate toward the overall rate."""


class LinUCB:
    Params = LinUCBParams
    surfaces = frozenset({"list"})

    def __init__(self, params: LinUCBParams, ctx: RecommenderContext) -> None:
        self.name = "linucb"
        self.params = params
        self.model = _HybridLinear(ctx.n_users, ctx.n_topics, params.ridge, params.prior_weight)

    def fit(self, history: Interactions) -> None:
        return None  # learns online in update()

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        x = item_features(requests.catalog.topics.astype(np.float64))
        users = requests.user
        item_mean, item_sd = self.model.items.mean_and_sd(requests.catalog.n_items)
        ridge = self.model.ridge()
        mean = item_mean + ridge.theta(users) @ x.T
        spread = np.einsum("nd,bde,ne->bn", x, ridge.a_inv[users], x, optimize=True)
        noise_sd = np.sqrt(max(self.model.items.overall() * (1 - self.model.items.overall()), 1e-6))
        bonus = noise_sd * np.sqrt(np.maximum(spread, 0.0)) + item_sd
        ucb = mean + self.params.alpha * bonus
        items, scores = top_k_from_scores(ucb, requests.exclude, requests.k)
        return SlateBatch(items, scores, np.ones(items.shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        self.model.update(feedback)


class ThompsonBetaParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prior_clicks: float = Field(default=1.0, gt=0)
    prior_skips: float = Field(default=20.0, gt=0)
    """Prior Beta(prior_clicks, prior_skips): a prior click rate near 5%."""
    propensity_samples: int = Field(default=31, ge=1, le=10_000)
    """Posterior draws, besides the shown one, that estimate each slot's propensity; at least
    1 (with none, every logged propensity was 1.0, a random slate logged as deterministic)."""


class ThompsonBeta:
    Params = ThompsonBetaParams
    surfaces = frozenset({"list"})

    def __init__(self, params: ThompsonBetaParams, ctx: RecommenderContext) -> None:
        self.name = "thompson_beta"
        self.params = params
        self.rng = ctx.rng
        self.clicks = np.zeros(0)
        self.shows = np.zeros(0)

    def _grow(self, n_items: int) -> None:
        if self.clicks.shape[0] < n_items:
            pad = n_items - self.clicks.shape[0]
            self.clicks = np.concatenate([self.clicks, np.zeros(pad)])
            self.shows = np.concatenate([self.shows, np.zeros(pad)])

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        n = requests.catalog.n_items
        self._grow(n)
        alpha = self.params.prior_clicks + self.clicks[:n]
        # skips first: prior + shows - clicks rounded a tiny prior (1e-300) away to a 0
        beta = self.params.prior_skips + (self.shows[:n] - self.clicks[:n])

        def draw() -> np.ndarray:
            return self.rng.beta(alpha, beta, size=(len(requests), n))

        items, scores = top_k_from_scores(draw(), requests.exclude, requests.k)
        propensity = monte_carlo_propensity(
            items, draw, requests.exclude, self.params.propensity_samples
        )
        return SlateBatch(items, scores, propensity)

    def update(self, feedback: FeedbackBatch) -> None:
        items = feedback.slates.items
        valid = items != PAD_ITEM
        self._grow(feedback.requests.catalog.n_items)
        np.add.at(self.shows, items[valid], 1.0)
        np.add.at(self.clicks, items[valid], feedback.clicked[valid].astype(np.float64))


class ThompsonLinearParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = Field(default=0.1, gt=0)
    """Posterior scale v of the per-user part: θ̃_u ~ N(θ_u, v² A_u⁻¹)."""
    ridge: float = Field(default=1.0, ge=MIN_RIDGE)
    prior_weight: float = Field(default=20.0, gt=0)
    propensity_samples: int = Field(default=31, ge=1, le=10_000)
    """Posterior draws, besides the shown one, that estimate each slot's propensity; at least
    1 (with none, every logged propensity was 1.0, a random slate logged as deterministic)."""


class ThompsonLinear:
    Params = ThompsonLinearParams
    surfaces = frozenset({"list"})

    def __init__(self, params: ThompsonLinearParams, ctx: RecommenderContext) -> None:
        self.name = "thompson_linear"
        self.params = params
        self.rng = ctx.rng
        self.model = _HybridLinear(ctx.n_users, ctx.n_topics, params.ridge, params.prior_weight)

    def fit(self, history: Interactions) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        x = item_features(requests.catalog.topics.astype(np.float64))
        users = requests.user
        item_mean, item_sd = self.model.items.mean_and_sd(requests.catalog.n_items)
        ridge = self.model.ridge()
        mean = ridge.theta(users)
        chol = np.linalg.cholesky(ridge.a_inv[users]) * self.params.scale

        def draw() -> np.ndarray:
            noise = self.rng.standard_normal(mean.shape)
            theta = mean + np.einsum("bde,be->bd", chol, noise)
            item = item_mean + item_sd * self.rng.standard_normal((len(users), item_mean.size))
            return item + theta @ x.T

        items, scores = top_k_from_scores(draw(), requests.exclude, requests.k)
        propensity = monte_carlo_propensity(
            items, draw, requests.exclude, self.params.propensity_samples
        )
        return SlateBatch(items, scores, propensity)

    def update(self, feedback: FeedbackBatch) -> None:
        self.model.update(feedback)
