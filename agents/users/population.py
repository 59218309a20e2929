"""Rule-based users: all numeric state in arrays (struct of arrays), one row per user.

Mesa ``UserAgent`` handles (agents/user_agent.py) read and write these rows; the engine itself
only ever touches whole arrays, so a batch of pages costs a few numpy calls however many users
it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recarena.simulator.core.scenario import Population


@dataclass
class UserState:
    taste: np.ndarray  # [U, T] float32 preference per topic
    activity: np.ndarray  # [U] float64 base visits per day
    explore_prob: np.ndarray  # [U] float64 chance a session is novelty-seeking
    satiation: np.ndarray  # [U, T] float32 boredom per topic, decays daily
    familiarity: np.ndarray  # [U, T] float32 cumulative topic mix consumed
    satisfaction: np.ndarray  # [U] float64 moving average of session value
    last_topic: np.ndarray  # [U] int64 main topic of the last item consumed, -1 before any

    @classmethod
    def new(cls, taste: np.ndarray, activity: np.ndarray, explore_prob: np.ndarray) -> UserState:
        """Users with these traits who have consumed nothing yet: no satiation, familiarity or
        satisfaction, and no last topic."""
        n, n_topics = taste.shape
        return cls(
            taste=taste,
            activity=activity,
            explore_prob=explore_prob,
            satiation=np.zeros((n, n_topics), np.float32),
            familiarity=np.zeros((n, n_topics), np.float32),
            satisfaction=np.zeros(n, np.float64),
            last_topic=np.full(n, -1, np.int64),
        )

    @property
    def n_users(self) -> int:
        return int(self.activity.shape[0])

    def visit_rate(self, cfg: Population) -> np.ndarray:
        """Visits per day: activity scaled by satisfaction, capped so thinning stays valid."""
        with np.errstate(over="ignore"):  # past the cap exp may overflow to inf: capped below
            factor = np.exp(cfg.return_sensitivity * self.satisfaction)
        return self.activity * np.minimum(factor, cfg.max_rate_factor)

    def consume(self, users: np.ndarray, topics: np.ndarray, gain: float) -> None:
        """Users (unique) consumed items with topic mixes ``topics``: satiate and familiarise."""
        self.satiation[users] += gain * topics
        self.familiarity[users] += topics
        self.last_topic[users] = topics.argmax(axis=1)

    def drift(self, users: np.ndarray, topics: np.ndarray, rate: float) -> None:
        """Users (unique) move their taste towards what they consumed: t ← t + rate·(x − t)."""
        taste = self.taste[users]
        self.taste[users] = taste + np.float32(rate) * (topics - taste)

    def end_of_day(self, cfg: Population) -> None:
        self.satiation *= np.float32(np.exp(-cfg.satiation_decay_per_day))


def draw_explore_prob(cfg: Population, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-user chance that a session is novelty-seeking: Beta around ``explore_prob``."""
    if 0 < cfg.explore_prob < 1:
        concentration = 10.0
        return rng.beta(cfg.explore_prob * concentration, (1 - cfg.explore_prob) * concentration, n)
    return np.full(n, cfg.explore_prob)


def generate_users(cfg: Population, n_topics: int, rng: np.random.Generator) -> UserState:
    """Draw a population from the ``population`` stream (identical under every arm)."""
    n = cfg.users
    taste = (rng.standard_normal((n, n_topics)) * cfg.taste_scale).astype(np.float32)
    sigma = cfg.activity_sd
    activity = rng.lognormal(np.log(cfg.visits_per_day) - sigma**2 / 2, sigma, n)
    explore = draw_explore_prob(cfg, n, rng)
    return UserState.new(taste, activity, explore)
