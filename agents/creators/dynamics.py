"""Creator behaviour over time: periodic reviews, strategy updates, leaving and joining.

Every ``creators.period_days`` each creator reads what its items got in the period (exposure
and clicks, by the items' dominant topic) and its strategy updates its topic mix. A creator
whose exposure stayed below ``min_exposure`` for ``leave_after_periods`` consecutive periods
leaves: it stops uploading, and its items **stay** in the catalog (a platform keeps a departed
creator's back catalogue; recommenders keep seeing a dense, append-only item space). New
creators join as a Poisson number per period and start uploading at once.

Counting is vectorised: the engine hands each page batch's exposed and clicked items to
:meth:`CreatorDynamics.count`, which adds one ``bincount`` over ``creator × topic`` cells; a
review is a few array operations. Randomness (all from the ``creators`` stream):

* joins: ``(seed, replicate, "creators", 0)`` — the arm never enters, so every arm of a
  replicate gets the same newcomers at the same reviews (common random numbers);
* a joined creator's uploads: ``(…, "creators", 1, creator_id)``; every adaptive creator's
  topic draws: ``(…, "creators", 2, creator_id)`` — per creator, so arm-independent;
* strategy noise: ``(…, "creators", 3, arm_key(arm))`` — it may differ by arm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from recarena.agents.creators.agent import CreatorAgent
from recarena.agents.creators.ai_adoption import AIAdoption
from recarena.agents.creators.strategies import (
    CreatorStrategy,
    LLMStrategy,
    PeriodStats,
    Update,
    build_strategy,
)
from recarena.agents.llm.cache import CacheMiss, CallCache
from recarena.agents.llm.client import LLMClient
from recarena.agents.llm.endpoint import endpoint_for
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.errors import RecarenaError, exception_line
from recarena.simulator.core.rng import arm_key, generator
from recarena.simulator.core.types import DAY

if TYPE_CHECKING:
    import simpy

    from recarena.simulator.core.scenario import Scenario
    from recarena.simulator.engine.eventlog import EventLog


def mix_entropy(mix: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of ``mix``."""
    logs = np.log(mix, out=np.zeros_like(mix), where=mix > 0)
    return -(mix * logs).sum(axis=1)


class CreatorDynamics:
    """Owns the period counters, the strategy and the ``creator_periods`` rows of one cell."""

    def __init__(
        self,
        scenario: Scenario,
        replicate: int,
        arm_name: str,
        catalog: Catalog,
        creators: list[CreatorAgent],
        topic_weights: np.ndarray,
        log: EventLog,
        add_creator: Callable[[CreatorAgent], None],
        llm_client: Any = None,
    ) -> None:
        self.cfg = scenario.creators
        self.catalog_cfg = scenario.catalog
        self.seed, self.replicate = scenario.seed, replicate
        self.catalog = catalog
        self.creators = list(creators)
        self.topic_weights = topic_weights
        self.log = log
        self.add_creator = add_creator
        spec = self.cfg.strategy
        self.strategy: CreatorStrategy = build_strategy(spec.type, spec.params)
        if isinstance(self.strategy, LLMStrategy):
            self.strategy.client = llm_client
        explore = getattr(self.strategy, "explore", None)
        if not (isinstance(explore, int | float) and 0 <= explore <= 1):  # a plug-in's
            raise StrategyViolation(
                f"creators.strategy {spec.type!r}: explore must be a share in [0, 1], "
                f"got {explore!r}"
            )
        self.n_topics = catalog.n_topics
        self._join_rng = generator(self.seed, replicate, "creators", 0)
        self._noise_rng = generator(self.seed, replicate, "creators", 3, arm_key(arm_name))
        self._adaptive = spec.type != "static"
        for creator in self.creators:
            self._init_mix(creator)
        self._counts = np.zeros((2, len(self.creators) * self.n_topics), np.int64)
        self._dominant = np.zeros(0, np.int64)
        self._cells = np.zeros(0, np.int64)
        """Each item's counter cell, ``creator * n_topics + dominant topic`` (fixed once the
        item is published): built with ``_dominant``, so a page batch's count is one gather
        and one bincount per row instead of five numpy calls."""
        self.period = 0
        self.joined: list[CreatorAgent] = []
        self.ai: AIAdoption | None = None
        """Creators switching to AI content (creators.ai); None = every item is human-made."""
        if self.cfg.ai is not None:
            self.ai = AIAdoption(self.cfg.ai, self.seed, replicate, catalog, log)
            self.ai.start(self.creators)

    def _init_mix(self, creator: CreatorAgent) -> None:
        creator.mix = np.zeros(self.n_topics)
        creator.mix[creator.topic] = 1.0
        if self._adaptive:
            rng = generator(self.seed, self.replicate, "creators", 2, creator.creator_id)
            creator.adapt(self.n_topics, rng, self.strategy.explore)

    def _dominant_topics(self) -> np.ndarray:
        """Dominant topic of every item, extended for items published since the last call."""
        n = self.catalog.n
        if self._dominant.shape[0] < n:
            known = self._dominant.shape[0]
            fresh = self.catalog.topics[known:n].argmax(axis=1)
            self._dominant = np.concatenate([self._dominant, fresh])
            cells = self.catalog.creator[known:n].astype(np.int64) * self.n_topics + fresh
            self._cells = np.concatenate([self._cells, cells])
        return self._dominant

    def count(self, exposed: np.ndarray, clicked: np.ndarray) -> None:
        """Add one page batch's exposed and clicked items to the period's counters."""
        if self.ai is not None:
            self.ai.count(exposed, clicked)
        self._dominant_topics()  # extends each item's (creator, topic) cell with the catalog
        cells, size = self._cells, self._counts.shape[1]
        for row, items in enumerate((exposed, clicked)):
            if items.size:
                self._counts[row] += np.bincount(cells[items], minlength=size)

    def _items_by_topic(self) -> np.ndarray:
        dominant = self._dominant_topics()
        cell = self.catalog.creator.astype(np.int64) * self.n_topics + dominant
        size = len(self.creators) * self.n_topics
        return np.bincount(cell, minlength=size).reshape(-1, self.n_topics)

    def review(self, now: float, env: simpy.Environment | None, final: bool = False) -> None:
        """Log the period, then (unless ``final``) apply strategy, leaving and joining."""
        n, topics = len(self.creators), self.n_topics
        exposure = self._counts[0].reshape(n, topics)
        clicks = self._counts[1].reshape(n, topics)
        items = self._items_by_topic()
        mixes = np.stack([c.mix for c in self.creators])
        active = np.array([c.active for c in self.creators])
        move = np.full(n, "final" if final else "gone", object)
        total = exposure.sum(axis=1)
        if not final:
            rows = np.flatnonzero(active)
            if rows.size:
                if isinstance(self.strategy, LLMStrategy):
                    self.strategy.now = now
                stats = PeriodStats(
                    exposure[rows],
                    clicks[rows],
                    items[rows],
                    platform_exposure=exposure.sum(axis=0),
                    platform_clicks=clicks.sum(axis=0),
                )
                update = _call_update(
                    self.cfg.strategy.type, self.strategy, mixes[rows], stats, self._noise_rng
                )
                _check_update(self.cfg.strategy.type, update, len(rows), self.n_topics)
                move[rows] = update.move
                for row, new_mix in zip(rows, update.mix, strict=True):
                    self.creators[row].mix = new_mix / new_mix.sum()
            self._apply_leaving(total, now)
        if self.ai is not None:
            self.ai.review(now, self.period, self.creators, final)
        self._log(now, exposure, clicks, items, mixes, total, move)
        self._counts[:] = 0
        self.period += 1
        if not final and env is not None:
            self._join(now, env)

    def _apply_leaving(self, total: np.ndarray, now: float) -> None:
        cfg = self.cfg
        for c, creator in enumerate(self.creators):
            if not creator.active:
                continue
            creator.low_periods = creator.low_periods + 1 if total[c] < cfg.min_exposure else 0
            if cfg.leave_after_periods is not None and (
                creator.low_periods >= cfg.leave_after_periods
            ):
                creator.active = False
                creator.left_day = now / DAY

    def _log(self, now, exposure, clicks, items, mixes, total, move) -> None:
        creators = self.creators
        self.log.append(
            "creator_periods",
            {
                "period": np.full(len(creators), self.period, np.int32),
                "day": np.full(len(creators), now / DAY, np.float32),
                "creator_id": np.array([c.creator_id for c in creators], np.int32),
                "exposure": total.astype(np.int64),
                "clicks": clicks.sum(axis=1).astype(np.int64),
                "items": items.sum(axis=1).astype(np.int32),
                "topic_mix": list(mixes.astype(np.float32)),
                "top_topic": mixes.argmax(axis=1).astype(np.int16),
                "mix_entropy": mix_entropy(mixes).astype(np.float32),
                "active": np.array([c.active for c in creators]),
                "low_periods": np.array([c.low_periods for c in creators], np.int16),
                "joined_day": np.array([c.joined_day for c in creators], np.float32),
                "left_day": np.array([c.left_day for c in creators], np.float32),
                "strategy": np.full(len(creators), self.cfg.strategy.type, object),
                "move": move,
            },
        )

    def _join(self, now: float, env: simpy.Environment) -> None:
        rng = self._join_rng
        count = int(rng.poisson(self.cfg.join_rate_per_period))
        if count == 0:
            return
        cat = self.catalog_cfg
        topic = rng.choice(cat.topics, size=count, p=self.topic_weights)
        quality = rng.normal(0.0, cat.creator_quality_sd, count)
        uploads = self.cfg.uploads_per_day * rng.lognormal(-0.125, 0.5, count)
        model = self.creators[0].model
        for j in range(count):
            creator_id = len(self.creators)
            creator = CreatorAgent(
                model,
                creator_id=creator_id,
                topic=int(topic[j]),
                quality=float(quality[j]),
                uploads_per_day=float(uploads[j]),
                rng=generator(self.seed, self.replicate, "creators", 1, creator_id),
            )
            creator.joined_day = now / DAY
            self._init_mix(creator)
            self.creators.append(creator)
            self.joined.append(creator)
            self.add_creator(creator)
            env.process(creator.upload_process(env, self.catalog, self.catalog_cfg))
        grown = np.zeros((2, len(self.creators) * self.n_topics), np.int64)
        grown[:, : self._counts.shape[1]] = self._counts
        self._counts = grown


def creator_llm_client(scenario: Scenario, runtime: Any) -> Any:
    """The LLM client of the ``llm`` strategy (None for other strategies or without a runtime).

    Built like the user panel's: the run's endpoint and its SQLite record/replay cache.
    """
    if scenario.creators.strategy.type != "llm" or runtime is None:
        return None
    from pathlib import Path

    mode = runtime.cache_mode or scenario.llm.cache.mode
    cache = CallCache(Path(runtime.cache_path), mode, runtime.run_id)
    return LLMClient(endpoint_for(scenario, runtime.base_url), cache)


class StrategyViolation(RecarenaError):
    """A creator strategy answered with an update the engine refuses to apply."""


def _call_update(kind: str, strategy: Any, mix: Any, stats: Any, rng: Any) -> Any:
    """The strategy's update. A plug-in strategy's (``module:Class``) exception, of any kind but
    a stop, an exit or a user error it words itself, is one line naming creators.strategy: it
    was the bare ``RuntimeError: ...`` (exit 1), and a GeneratorExit a traceback."""
    try:
        return strategy.update(mix, stats, rng)
    except (KeyboardInterrupt, SystemExit, RecarenaError, CacheMiss):
        raise
    except BaseException as exc:
        if ":" not in kind:  # a built-in's failure is a bug of ours, not the user's
            raise
        raise StrategyViolation(
            f"creators.strategy {kind!r}: update raised {exception_line(exc)}"
        ) from exc


def _check_update(kind: str, update: Any, rows: int, n_topics: int) -> None:
    """A strategy's update (a plug-in's is code we do not control): one ``[rows, n_topics]``
    mix per creator, finite and non-negative with a positive sum, and one move each. Was: a
    NaN or all-zero mix was applied without a word (a RuntimeWarning, then NaN topic mixes
    for the creator's uploads), negative weights were kept, and too few rows failed the cell
    with a zip() ValueError naming no strategy."""
    where = f"creators.strategy {kind!r}: update"
    if not isinstance(update, Update):
        raise StrategyViolation(f"{where} returned {type(update).__name__}, expected an Update")
    mix = np.asarray(update.mix)
    if mix.shape != (rows, n_topics) or mix.dtype.kind not in "iuf":
        raise StrategyViolation(
            f"{where} mix has shape {mix.shape} and dtype {mix.dtype}, expected real numbers "
            f"of shape {(rows, n_topics)}"
        )
    if len(update.move) != rows:
        raise StrategyViolation(f"{where} has {len(update.move)} moves for {rows} creators")
    bad = ~np.isfinite(mix).all(axis=1) | (mix < 0).any(axis=1) | ~(mix.sum(axis=1) > 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise StrategyViolation(
            f"{where} mix row {row} is {np.array2string(mix[row], precision=3, threshold=8)}; "
            "a topic mix has finite weights >= 0 that sum to more than 0"
        )
