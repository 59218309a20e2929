"""Creators: each publishes items on its own SimPy process, so the catalog grows during a run.

A creator has a main topic, a mean quality and an upload rate. Its items' topic mixes lean on
its main topic. All of a creator's draws come from its own child of the ``catalog`` stream, so
uploads are identical under every arm and independent of event ordering.

An adaptive creator (``agents/creators/strategies.py``) also has a *topic mix*: each upload's main
topic is drawn from it with one uniform from the creator's own ``creators`` stream, drawn for
every upload whatever the mix, so upload times and qualities stay paired across arms. A static
creator draws nothing extra, so its uploads are exactly those of a run without strategies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mesa
import numpy as np

from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.scenario import Catalog as CatalogConfig
from recarena.simulator.core.types import DAY

if TYPE_CHECKING:
    import simpy


def item_topics(
    main_topic: np.ndarray, n_topics: int, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """[n, T] topic mixes: (1 − spread) on the main topic, the rest Dirichlet(1) over all."""
    mix = rng.dirichlet(np.ones(n_topics), size=main_topic.shape[0]) * spread
    mix[np.arange(main_topic.shape[0]), main_topic] += 1.0 - spread
    return mix.astype(np.float32)


class CreatorAgent(mesa.Agent):
    """A content creator: quality and upload rate are fixed, the topic mix may adapt."""

    def __init__(
        self,
        model: mesa.Model,
        creator_id: int,
        topic: int,
        quality: float,
        uploads_per_day: float,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(model)
        self.creator_id = creator_id
        self.topic = topic
        self.quality = quality
        self.uploads_per_day = uploads_per_day
        self.items_published = 0
        self._rng = rng
        self.mix = np.zeros(0)
        """Topic mix new uploads are drawn around (one-hot on ``topic`` until a strategy moves)."""
        self.active = True
        self.joined_day = 0.0
        self.left_day = float("nan")
        self.low_periods = 0
        self._topic_rng: np.random.Generator | None = None
        self._explore = 0.0
        self.ai_style: Any = None
        """An AIStyle (agents/creators/ai_adoption.py) once the creator generates with AI."""

    def adapt(self, n_topics: int, topic_rng: np.random.Generator, explore: float) -> None:
        """Make uploads follow ``self.mix`` (with ``explore`` of them on a uniform topic)."""
        self._topic_rng = topic_rng
        self._explore = explore

    def main_topics(self, count: int, n_topics: int) -> np.ndarray:
        if self._topic_rng is None:
            return np.full(count, self.topic)
        u = self._topic_rng.random(count)
        p = (1.0 - self._explore) * self.mix + self._explore / n_topics
        cdf = np.cumsum(p / p.sum())
        return np.minimum(np.searchsorted(cdf, u, side="right"), n_topics - 1)

    def draw_items(self, count: int, cfg: CatalogConfig, n_topics: int) -> tuple[np.ndarray, ...]:
        main = self.main_topics(count, n_topics)
        topics = item_topics(main, n_topics, cfg.topic_spread, self._rng)
        quality = (self.quality + self._rng.normal(0.0, cfg.quality_sd, count)).astype(np.float32)
        return topics, quality

    def publish(self, catalog: Catalog, cfg: CatalogConfig, count: int, now: float) -> None:
        topics, quality = self.draw_items(count, cfg, catalog.n_topics)
        source = 0
        if self.ai_style is not None:  # AI-generated: same draws, transformed
            topics, quality = self.ai_style.apply(topics, quality)
            source = 1
        catalog.add(topics, quality, np.full(count, self.creator_id, np.int32), now, source)
        self.items_published += count

    def upload_process(self, env: simpy.Environment, catalog: Catalog, cfg: CatalogConfig):
        """SimPy process: exponential gaps between uploads, one item each."""
        if self.uploads_per_day <= 0:
            return
        while True:
            yield env.timeout(self._rng.exponential(DAY / self.uploads_per_day))
            if not self.active:  # left the platform (see agents/creators/dynamics.py)
                return
            self.publish(catalog, cfg, 1, env.now)


def creator_profiles(
    n_creators: int, cfg: CatalogConfig, uploads_per_day: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Main topics (Zipf-skewed), mean qualities, upload rates and initial catalog shares.

    ``topic_weights`` (no extra draw) is the topic distribution new creators also join with.
    """
    weights = 1.0 / np.power(np.arange(1, cfg.topics + 1, dtype=np.float64), cfg.topic_skew)
    weights = rng.permutation(weights / weights.sum())
    return {
        "topic": rng.choice(cfg.topics, size=n_creators, p=weights),
        "quality": rng.normal(0.0, cfg.creator_quality_sd, n_creators),
        "uploads_per_day": uploads_per_day * rng.lognormal(-0.125, 0.5, n_creators),
        "share": rng.lognormal(0.0, 1.0, n_creators),
        "topic_weights": weights,
    }
