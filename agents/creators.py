"""Creators: each publishes items on its own SimPy process, so the catalog grows during a run.

A creator has a main topic, a mean quality and an upload rate. Its items' topic mixes lean on
its main topic. All of a creator's draws come from its own child of the ``catalog`` stream, so
uploads are identical under every arm and independent of event ordering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from simulator.catalog import Catalog
from simulator.scenario import Catalog as CatalogConfig

if TYPE_CHECKING:
    import simpy

DAY = 86_400.0


def item_topics(
    main_topic: np.ndarray, n_topics: int, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """[n, T] topic mixes: (1 − spread) on the main topic, the rest Dirichlet(1) over all."""
    mix = rng.dirichlet(np.ones(n_topics), size=main_topic.shape[0]) * spread
    mix[np.arange(main_topic.shape[0]), main_topic] += 1.0 - spread
    return mix.astype(np.float32)


class CreatorAgent(mesa.Agent):
    """A content creator (static strategy: its topic and quality do not change)."""

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

    def draw_items(self, count: int, cfg: CatalogConfig, n_topics: int) -> tuple[np.ndarray, ...]:
        topics = item_topics(np.full(count, self.topic), n_topics, cfg.topic_spread, self._rng)
        quality = (self.quality + self._rng.normal(0.0, cfg.quality_sd, count)).astype(np.float32)
        return topics, quality

    def publish(self, catalog: Catalog, cfg: CatalogConfig, count: int, now: float) -> None:
        topics, quality = self.draw_items(count, cfg, catalog.n_topics)
        catalog.add(topics, quality, np.full(count, self.creator_id, np.int32), now)
        self.items_published += count

    def upload_process(self, env: simpy.Environment, catalog: Catalog, cfg: CatalogConfig):
        """SimPy process: exponential gaps between uploads, one item each."""
        if self.uploads_per_day <= 0:
            return
        while True:
            yield env.timeout(self._rng.exponential(DAY / self.uploads_per_day))
            self.publish(catalog, cfg, 1, env.now)


def creator_profiles(
    n_creators: int, cfg: CatalogConfig, uploads_per_day: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Main topics (Zipf-skewed), mean qualities, upload rates and initial catalog shares."""
    weights = 1.0 / np.power(np.arange(1, cfg.topics + 1, dtype=np.float64), cfg.topic_skew)
    weights = rng.permutation(weights / weights.sum())
    return {
        "topic": rng.choice(cfg.topics, size=n_creators, p=weights),
        "quality": rng.normal(0.0, cfg.creator_quality_sd, n_creators),
        "uploads_per_day": uploads_per_day * rng.lognormal(-0.125, 0.5, n_creators),
        "share": rng.lognormal(0.0, 1.0, n_creators),
    }
