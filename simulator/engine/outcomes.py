"""What a served page (or turn) changes, and the log rows that record it.

The page loop and the dialogue loop both end a batch the same way: log exposures, consume the
clicked items (memory, satiation, drift, social signal, training history), end sessions (their
satisfaction update and row), and account LLM calls. Keeping that here gives both loops one
public interface instead of reaching into the model.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from recarena.agents.llm.client import LLMClient
from recarena.simulator.core.types import PAD_ITEM, Interactions, ResponseBatch, SlateBatch
from recarena.simulator.engine.arrivals import DAY
from recarena.simulator.engine.eventlog import EventLog, fixed_dtypes
from recarena.simulator.engine.sessions import ActiveSessions, Timings
from recarena.simulator.engine.world import World

_min = np.minimum.reduce


def _per_row(value: object) -> bool:
    """Whether a batch's time (or day) is one value per row (Gym environments, whose sessions
    run on their own clocks) rather than the tick's scalar. ``np.ndim`` answers the same but
    goes through an exception for a Python float, several microseconds every tick."""
    return isinstance(value, np.ndarray) and value.ndim > 0


class Outcomes:
    """Applies each batch's response to the world's state and appends it to the logs."""

    def __init__(
        self, world: World, active: ActiveSessions, log: EventLog, timings: Timings
    ) -> None:
        self.world = world
        self.active = active
        self.log = log
        self.timings = timings
        self.is_active = np.zeros(world.scenario.population.users, bool)
        self.day_counts = dict.fromkeys(("sessions", "impressions", "clicks"), 0)
        self.recent_clicks = np.zeros(0)
        """Clicks per item yesterday ("trending" rows rank by them)."""
        self._clicks_today: list[np.ndarray] = []
        self._history: list[tuple[np.ndarray, ...]] = []
        self._joined: tuple[int, Interactions] = (0, Interactions.empty())
        """How many history chunks :meth:`history` has joined, and the result."""
        self._order_keys: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._position_ids = np.arange(0, dtype=np.int16)

    def history(self) -> Interactions:
        """Every click so far, as the training data recommenders fit on.

        The clicks are kept as one small chunk per tick; the chunks already joined at the last
        call are kept joined, so a retrain joins only what came since (and a long run does
        not walk tens of thousands of chunks at every retrain). The arrays are shared with
        later calls: recommenders read them and do not modify them."""
        done, joined = self._joined
        if done == len(self._history):
            return joined
        parts = self._history[done:]
        if done:
            parts = [(joined.user, joined.item, joined.time, joined.rating), *parts]
        user, item, when, rating = (np.concatenate(p) for p in zip(*parts, strict=True))
        for column in (user, item, when, rating):  # shared with later fits: nobody writes them
            column.flags.writeable = False
        self._joined = (len(self._history), Interactions(user, item, when, rating))
        return self._joined[1]

    def keep_order_keys(self) -> None:
        """Remember each click's session start and id, so clicks of several shards can be put
        back in the order one process would have logged them (see :meth:`clicks_since`)."""
        if self._order_keys is None:
            self._order_keys = [(np.empty(0), np.empty(0, np.int64))] * len(self._history)

    def clicks_since(self, chunk: int) -> tuple[Interactions, np.ndarray, np.ndarray, int]:
        """Clicks logged from history chunk ``chunk`` on, with each click's session start and
        session id (call :meth:`keep_order_keys` first); and the next chunk to ask from."""
        if self._order_keys is None:
            raise RuntimeError("clicks_since needs keep_order_keys() before the run")
        chunks, keys = self._history[chunk:], self._order_keys[chunk:]
        end = len(self._history)
        if not chunks:
            return Interactions.empty(), np.empty(0), np.empty(0, np.int64), end
        user, item, when, rating = (np.concatenate(p) for p in zip(*chunks, strict=True))
        start, session = (np.concatenate(p) for p in zip(*keys, strict=True))
        return Interactions(user=user, item=item, time=when, rating=rating), start, session, end

    # ------------------------------------------------------------------ a batch
    def log_exposures(
        self,
        now: float | np.ndarray,
        day: int | np.ndarray,
        request_id: np.ndarray,
        slates: SlateBatch,
        response: ResponseBatch,
        row: np.ndarray,
        col: np.ndarray,
    ) -> None:
        batch, k = slates.items.shape
        full, valid, n = self._count_exposures(slates, response)
        if n == 0:
            return
        if full:  # the common case: every slot filled, written straight into the log buffers
            columns = self.log.columns("exposures", n, (batch, k))
            self._fill_exposures(columns, now, day, request_id, slates, response, row, col)
            self.log.commit("exposures", n)
            return
        assert valid is not None
        grid = self._new_grid(now, day, request_id, slates, response, row, col)
        self.log.append("exposures", {name: column[valid] for name, column in grid.items()})

    def _count_exposures(
        self, slates: SlateBatch, response: ResponseBatch
    ) -> tuple[bool, np.ndarray | None, int]:
        """Count a page batch's impressions (creators' counters, the day's count); returns
        whether every slot is filled, the filled-slot mask when not, and the impressions."""
        # ids are PAD_ITEM (-1) or published (>= 0): every slot is filled when the least is
        full = slates.items.size == 0 or _min(slates.items, axis=None) >= 0
        valid = None if full else slates.items != PAD_ITEM
        items = slates.items.ravel() if valid is None else slates.items[valid]
        self.world.creator_dynamics.count(items, slates.items[response.clicked])
        n = items.shape[0]
        self.day_counts["impressions"] += n
        return bool(full), valid, int(n)

    def exposure_grid(
        self,
        now: float | np.ndarray,
        day: int | np.ndarray,
        request_id: np.ndarray,
        slates: SlateBatch,
        response: ResponseBatch,
        row: np.ndarray,
        col: np.ndarray,
    ) -> dict[str, np.ndarray] | None:
        """What :meth:`log_exposures` logs, as ``[batch, k]`` grids (empty slots included)
        instead of log rows, with the same counting; None when no slot is filled. Page waves
        (simulator/engine/waves.py) keep the grids and log them in the tick loop's order."""
        _, _, n = self._count_exposures(slates, response)
        if n == 0:
            return None
        return self._new_grid(now, day, request_id, slates, response, row, col)

    def _new_grid(self, now, day, request_id, slates, response, row, col) -> dict[str, np.ndarray]:  # noqa: ANN001
        """Fresh ``[batch, k]`` exposure columns, filled (empty slots included)."""
        shape = slates.items.shape
        grid = {name: np.empty(shape, dtype) for name, dtype in fixed_dtypes("exposures")}
        self._fill_exposures(grid, now, day, request_id, slates, response, row, col)
        return grid

    def _fill_exposures(
        self,
        out: dict[str, np.ndarray],
        now: float | np.ndarray,
        day: int | np.ndarray,
        request_id: np.ndarray,
        slates: SlateBatch,
        response: ResponseBatch,
        row: np.ndarray,
        col: np.ndarray,
    ) -> None:
        """Write one exposure row per slot (``batch * k`` rows, slot-major within a page) into
        ``out``, whose columns are ``[batch, k]`` grids. Per-page values are broadcast over
        their k slots in place: no np.repeat, no per-tick tiles, no temporary column that is
        then copied again."""
        active = self.active
        out["request_id"][:] = request_id[:, None]
        out["session_id"][:] = active.session_id[:, None]
        out["user_id"][:] = active.user[:, None]
        for name, value in (("time", now), ("day", day)):
            if not _per_row(value):
                out[name][:] = value
            else:  # sessions on their own clocks (Gym environments): one value per page
                out[name][:] = np.asarray(value)[:, None]
        out["page"][:] = active.page[:, None]
        out["position"][:] = self._positions(slates.items.shape[1])
        out["row"][:] = row
        out["col"][:] = col
        out["item_id"][:] = slates.items
        np.take(self.world.catalog.creator, slates.items, out=out["creator_id"])
        if slates.scores.dtype == np.float32:
            out["score"][:] = slates.scores
        else:  # logged as float32: a float64 score beyond its range is ±inf, not a warning
            with np.errstate(over="ignore"):
                out["score"][:] = slates.scores
        out["propensity"][:] = slates.propensity
        out["clicked"][:] = response.clicked
        out["examined"][:] = response.examined
        out["true_utility"][:] = response.utility

    def _positions(self, k: int) -> np.ndarray:
        """[k] int16 slot positions 0..k-1, built once per page size."""
        if self._position_ids.shape[0] != k:
            self._position_ids = np.arange(k, dtype=np.int16)
        return self._position_ids

    def consume(
        self,
        now: float | np.ndarray,
        day: int | np.ndarray,
        request_id: np.ndarray,
        slates: SlateBatch,
        response: ResponseBatch,
    ) -> np.ndarray:
        """Apply the clicks; returns the rows (sessions) that clicked."""
        world = self.world
        # at most one click per row (the ResponseBatch contract): then the clicked cells, in
        # row order, are the clicking rows and their positions, in one call
        rows, position = response.clicked.nonzero()
        if rows.size == 0:
            return rows
        if rows.size > 1 and _min(rows[1:] - rows[:-1], axis=None) == 0:
            rows = np.flatnonzero(response.clicked.any(axis=1))  # a row with two: the first
            position = response.clicked[rows].argmax(axis=1)
        cfg = world.scenario.population
        items = slates.items[rows, position]
        users = self.active.user[rows]
        topics = world.catalog.topics[items]
        world.consumed.add(users, items)
        world.user_state.consume(users, topics, cfg.satiation_gain)
        if world.social is not None:
            world.social.record(users, topics)
        if world.taste_start is not None:
            world.user_state.drift(users, topics, cfg.taste_drift)
        rating = response.rating[rows]
        when = np.asarray(now)[rows] if _per_row(now) else np.full(rows.size, now)
        self._history.append((users, items, when, rating))
        if self._order_keys is not None:  # a shard: where these rows sit in the whole cell
            self._order_keys.append((self.active.start[rows], self.active.session_id[rows]))
        if world.social is not None and world.social.talk is not None:  # users who talk
            talk_day = np.asarray(day)[rows] if _per_row(day) else day
            world.social.talk.after_consume(when, talk_day, request_id[rows], users, items, rating)
        if world.panel is not None:
            world.panel.after_page(users, items, rating, float(now))  # panels: one clock
        self._clicks_today.append(items)
        self.day_counts["clicks"] += int(rows.size)
        # fixed-width columns are cast on their way into the log's buffers, and a scalar
        # (this tick's day) is broadcast there: no per-tick np.full or astype
        self.log.append(
            "interactions",
            {
                "request_id": request_id[rows],
                "session_id": self.active.session_id[rows],
                "user_id": users,
                "time": when,
                "day": np.asarray(day, np.int32)[rows] if _per_row(day) else day,
                "position": position,
                "item_id": items,
                "creator_id": world.catalog.creator[items],
                "rating": rating,
                "true_utility": response.utility[rows, position],
            },
        )
        return rows

    def end_sessions(self, ending: np.ndarray, now: float | np.ndarray, reason: np.ndarray) -> None:
        """Close the sessions in ``ending``: satisfaction update, session rows, LLM reflections."""
        active, world = self.active, self.world
        cfg = world.scenario.population
        users = active.user[ending]
        pages = active.page[ending]
        session_value = active.value[ending] / np.maximum(pages, 1)
        state = world.user_state
        rate = cfg.satisfaction_rate
        state.satisfaction[users] = (1 - rate) * state.satisfaction[users] + rate * (
            session_value - cfg.satisfaction_reference
        )
        panel = world.panel
        start = active.start[ending]
        self.log.append(
            "sessions",
            {
                "session_id": active.session_id[ending],
                "user_id": users,
                "day": start // DAY,  # cast to the column types in the log's buffers
                "start_time": start,
                "end_time": np.asarray(now, np.float64)[ending] if _per_row(now) else now,
                "pages": pages,
                "clicks": active.clicks[ending],
                "exit_reason": reason,
                "explore": active.explore[ending],
                "satisfaction": state.satisfaction[users],
                "llm_user": panel.is_llm[users] if panel else False,
            },
        )
        if panel is not None:
            started = time.perf_counter()
            panel.end_sessions(users, active.session_id[ending], float(now))
            self.timings.add("reflect", time.perf_counter() - started)
            self.log_llm_calls(panel.llm.client)
        self.is_active[users] = False
        active.keep(~ending)

    def log_llm_calls(self, client: LLMClient) -> None:
        """Drain a client's finished calls into the llm_calls table."""
        records = client.drain_records()
        if not records:
            return
        contexts = [r.context for r in records]
        self.log.append(
            "llm_calls",
            {
                "time": np.array([c.time for c in contexts], np.float64),
                "day": np.array([int(c.time // DAY) for c in contexts], np.int32),
                "user_id": np.array([c.user_id for c in contexts], np.int64),
                "session_id": np.array([c.session_id for c in contexts], np.int64),
                "page": np.array([c.page for c in contexts], np.int16),
                "purpose": np.array([c.purpose for c in contexts], object),
                "model": np.array([r.model for r in records], object),
                "prompt_tokens": np.array([r.prompt_tokens for r in records], np.int32),
                "completion_tokens": np.array([r.completion_tokens for r in records], np.int32),
                "latency_s": np.array([r.latency_s for r in records], np.float32),
                "attempts": np.array([r.attempts for r in records], np.int8),
                "cached": np.array([r.cached for r in records], bool),
                "valid": np.array([r.valid for r in records], bool),
                "fallback": np.array([r.fallback for r in records], bool),
                "error": np.array([r.error for r in records], object),
                "decision": np.array([r.decision for r in records], object),
                "options": np.array([r.options for r in records], np.int16),
                "option_mass": np.array([r.option_mass for r in records], np.float32),
                "entropy": np.array([r.entropy for r in records], np.float32),
                "choice": np.array([r.choice for r in records], np.int16),
                "expected": np.array([r.expected for r in records], np.float32),
            },
        )

    # ------------------------------------------------------------------ a day
    def end_day(self) -> None:
        """Yesterday's clicks become "trending"; satiation decays; the social signal fades."""
        world = self.world
        clicked = np.concatenate(self._clicks_today) if self._clicks_today else np.zeros(0, int)
        self.recent_clicks = np.bincount(clicked, minlength=world.catalog.n).astype(np.float64)
        self._clicks_today = []
        world.user_state.end_of_day(world.scenario.population)
        if world.social is not None:
            world.social.end_of_day()

    def reset_day_counts(self) -> None:
        self.day_counts = dict.fromkeys(self.day_counts, 0)

    # ------------------------------------------------------------------ at the end
    def write_static_tables(self, daily: Any) -> None:
        """users_end, items, creators, personas and the daily series (a pandas frame)."""
        self._write_users_end()
        world = self.world
        catalog = world.catalog
        self.log.append(
            "items",
            {
                "item_id": np.arange(catalog.n, dtype=np.int64),
                "creator_id": catalog.creator,
                "created_at": catalog.created_at,
                "topic": catalog.topics.argmax(axis=1).astype(np.int16),
                "quality": catalog.quality,
                "topics": list(catalog.topics),
            },
        )
        creators = list(world.creators)
        counts = np.bincount(catalog.creator, minlength=len(creators))
        self.log.append(
            "creators",
            {
                "creator_id": np.array([c.creator_id for c in creators], np.int32),
                "topic": np.array([c.topic for c in creators], np.int16),
                "quality": np.array([c.quality for c in creators], np.float32),
                "uploads_per_day": np.array([c.uploads_per_day for c in creators], np.float32),
                "items": counts[[c.creator_id for c in creators]].astype(np.int32),
            },
        )
        if world.panel is not None:
            personas = list(world.panel.llm.personas.values())
            self.log.append(
                "personas",
                {
                    "user_id": np.array([p.user_id for p in personas], np.int64),
                    "source": np.array([p.source for p in personas], object),
                    "text": np.array([p.text for p in personas], object),
                    "traits": np.array(
                        [json.dumps(p.traits, sort_keys=True) for p in personas], object
                    ),
                },
            )
        self.log.append("daily", {name: daily[name].to_numpy() for name in daily.columns})

    def _write_users_end(self) -> None:
        """How far each user's taste drifted over the run (only when taste drift is on)."""
        world = self.world
        start, end = world.taste_start, world.user_state.taste
        if start is None:
            return
        norms = np.linalg.norm(start, axis=1) * np.linalg.norm(end, axis=1)
        cosine = (start * end).sum(axis=1) / np.maximum(norms, 1e-12)
        self.log.append(
            "users_end",
            {
                "user_id": np.arange(start.shape[0], dtype=np.int64),
                "clicks": world.consumed.count.astype(np.int64),
                "drift_distance": np.linalg.norm(end - start, axis=1).astype(np.float32),
                "drift_cosine": cosine.astype(np.float32),
                "start_topic": start.argmax(axis=1).astype(np.int16),
                "end_topic": end.argmax(axis=1).astype(np.int16),
            },
        )
