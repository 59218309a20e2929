"""Creators who switch to AI-generated content (AIGC), and the spread of that switch.

The Source Echo Chamber study asks what happens when creators move from human-generated
content (HGC) to AIGC while recommenders retrain on the clicks. Here:

* **What AI generation changes.** An AI creator uploads ``speedup`` times as often (generating is
  cheap), and each of its items is drawn as the creator's human item would be, then its topic mix
  is pulled toward the initial catalog's mean mix, ``x ← (1 − c)·x + c·x̄`` (AIGC is more
  "central": more alike and more average), and its quality shifts by ``quality_shift``. The
  transform draws nothing, so a creator's upload stream is the same under every arm.
* **Who switches.** At each creators' review (agents/creators/dynamics.py) every active human
  creator switches with probability ``min(1, base_rate + payoff · max(0, r − 1) + imitation ·
  a)``: ``r`` is the exposure per AI item over the exposure per human item in the period just
  ended (what a creator sees of the platform: which kind of content gets shown), ``a`` the share
  of active creators already on AI (they see their peers switch). When a recommender hands AI
  items more exposure per item, ``r > 1`` and switching spreads; the switch is permanent.
* **Randomness.** Initial adopters (a fixed count): ``(seed, replicate, "creators", 5)``; one
  uniform per creator at every review from ``(seed, replicate, "creators", 4)`` whatever
  happens, so the draws pair across arms (common random numbers); only probabilities differ.

Logs: ``source_periods`` (one row per review) and ``item_sources`` (every item at the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recarena.agents.creators.agent import CreatorAgent
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.rng import generator
from recarena.simulator.core.scenario_features import AIContent
from recarena.simulator.core.types import DAY

SOURCES = np.array(["human", "ai"], dtype=object)


class TableSink(Protocol):
    def append(self, table: str, columns: dict) -> None: ...


@dataclass(frozen=True)
class AIStyle:
    """How AI generation changes an item: a pull toward the centre and a quality shift."""

    centroid: np.ndarray  # [T] the initial catalog's mean topic mix
    centrality: float
    quality_shift: float

    def apply(self, topics: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.float32(self.centrality)
        pulled = (1 - c) * topics + c * self.centroid.astype(np.float32)
        return pulled.astype(np.float32), (quality + np.float32(self.quality_shift)).astype(
            np.float32
        )


def exposure_ratio(exposure: np.ndarray, items: np.ndarray) -> float:
    """Exposure per AI item / exposure per human item ([human, ai] arrays); NaN if undefined."""
    if items[0] == 0 or items[1] == 0 or exposure[0] == 0:
        return math.nan
    return float((exposure[1] / items[1]) / (exposure[0] / items[0]))


def adoption_probability(cfg: AIContent, ratio: float, ai_share: float) -> float:
    """min(1, base_rate + payoff · max(0, ratio − 1) + imitation · ai_share); NaN ratio = no
    payoff signal."""
    gain = 0.0 if math.isnan(ratio) else max(0.0, ratio - 1.0)
    return min(1.0, cfg.base_rate + cfg.payoff * gain + cfg.imitation * ai_share)


class AIAdoption:
    """Per cell: counts exposure by source, switches creators at reviews, logs both tables."""

    def __init__(
        self, cfg: AIContent, seed: int, replicate: int, catalog: Catalog, log: TableSink
    ) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.log = log
        centroid = catalog.topics.mean(axis=0) if catalog.n else np.zeros(catalog.n_topics)
        self.style = AIStyle(np.asarray(centroid, np.float32), cfg.centrality, cfg.quality_shift)
        self._start_rng = generator(seed, replicate, "creators", 5)
        self._rng = generator(seed, replicate, "creators", 4)
        self._counts = np.zeros((2, 2), np.int64)  # [exposure|clicks, human|ai]

    def start(self, creators: list[CreatorAgent]) -> None:
        """Put round(initial_share · creators) of the initial creators, drawn at random, on AI.

        A fixed count rather than a coin per creator: with few creators a coin flip leaves some
        replicates without any AI creator, and then nothing can ever spread.
        """
        count = int(np.floor(self.cfg.initial_share * len(creators) + 0.5))
        for index in self._start_rng.permutation(len(creators))[:count]:
            self.switch(creators[index])

    def switch(self, creator: CreatorAgent) -> None:
        creator.ai_style = self.style
        creator.uploads_per_day *= self.cfg.speedup

    def count(self, exposed: np.ndarray, clicked: np.ndarray) -> None:
        source = self.catalog.source
        for row, items in enumerate((exposed, clicked)):
            if items.size:
                self._counts[row] += np.bincount(source[items], minlength=2)

    def review(
        self, now: float, period: int, creators: list[CreatorAgent], final: bool = False
    ) -> None:
        """Switch creators on what the period showed (unless ``final``), then log the period."""
        exposure, clicks = self._counts
        items = np.bincount(self.catalog.source, minlength=2)
        ratio = exposure_ratio(exposure, items)
        active = np.array([c.active for c in creators])
        on_ai = np.array([c.ai_style is not None for c in creators])
        adopted = 0
        if not final:
            u = self._rng.random(len(creators))
            share = float((active & on_ai).sum() / max(active.sum(), 1))
            p = adoption_probability(self.cfg, ratio, share)
            switching = np.flatnonzero(active & ~on_ai & (u < p))
            for index in switching:
                self.switch(creators[index])
            adopted = int(switching.size)
        self.log.append(
            "source_periods",
            {
                "period": np.array([period], np.int32),
                "day": np.array([now / DAY], np.float32),
                "active_creators": np.array([active.sum()], np.int32),
                "ai_creators": np.array([(active & on_ai).sum() + adopted], np.int32),
                "adopted": np.array([adopted], np.int32),
                "items": np.array([items.sum()], np.int64),
                "ai_items": np.array([items[1]], np.int64),
                "exposure": np.array([exposure.sum()], np.int64),
                "ai_exposure": np.array([exposure[1]], np.int64),
                "clicks": np.array([clicks.sum()], np.int64),
                "ai_clicks": np.array([clicks[1]], np.int64),
                "exposure_ratio": np.array([ratio], np.float32),
            },
        )
        self._counts[:] = 0
        if final:
            self._log_items()

    def _log_items(self) -> None:
        catalog = self.catalog
        self.log.append(
            "item_sources",
            {
                "item_id": np.arange(catalog.n, dtype=np.int64),
                "creator_id": catalog.creator,
                "created_at": catalog.created_at,
                "source": SOURCES[catalog.source],
            },
        )
