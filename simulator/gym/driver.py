"""The engine under the Gym environments: B episodes stepped as ONE page batch.

A Gym step is one page per episode. The slates come from the agent's action instead of a
recommender; everything after them is the engine's own page step (simulator/engine/pages.py:
examination, the user policy, logging, consumption, session ends), over a World built by
``build_world`` exactly as a run builds it. So a policy trained here meets the same users, noise
and dynamics it meets as an arm of a scenario.

Each of the B *slots* runs its episodes on its own clock: a slot whose session ended jumps
straight to the next session, so no step is ever spent waiting. Users are split between slots
(user ``u`` belongs to slot ``u % B``), so one batch never holds a user twice.

Common random numbers: which user the e-th episode of slot b serves, its sessions' ids (and so
every examination, choice and leave uniform, keyed by session and page), their novelty intent
and every candidate visit time are counter-based hashes of (environment seed, slot, episode,
user, visit number), never draws from a shared sequential stream. Two policies stepped from the
same seed meet the same users with the same noise; only what the policies change (satisfaction,
satiation, consumption) makes them differ.

Between sessions the engine's day-level dynamics are applied lazily per user: satiation decays
by one day's factor per midnight passed (exactly what the engine's midnight process does to
every user), and the next visit is drawn from the user's satisfaction-dependent rate by thinning
candidates at the maximum rate (the engine's arrivals idea, per user instead of per day).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mesa
import numpy as np

from recarena.agents.users.social import read_edge_list
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.logschema import SCHEMAS
from recarena.simulator.core.paths import check_creatable
from recarena.simulator.core.rng import combine, generator, uniforms
from recarena.simulator.core.scenario import (
    SEED_MAX,
    CarouselSurface,
    ConversationSurface,
    Scenario,
)
from recarena.simulator.core.types import PAD_ITEM, RequestBatch, SlateBatch
from recarena.simulator.engine import pages
from recarena.simulator.engine.arrivals import DAY
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.outcomes import Outcomes
from recarena.simulator.engine.sessions import ActiveSessions, Timings
from recarena.simulator.engine.world import World, build_world
from recarena.simulator.runner.preflight import EdgeReader, preflight, uses_edge_list

REWARDS = (*pages.PAGE_REWARDS, "return")
"""``return``: 1 on a session's last page when the user comes back within ``return_days``."""
MODES = ("session", "lifetime")

_USER, _SESSION, _EXPLORE, _GAP, _ACCEPT = 1, 2, 3, 4, 5
_MAX_THINNING = 64
_CANDIDATES = 8


class _NoLog(EventLog):
    """The engine's log interface with nothing kept: environments log only when asked to."""

    def __init__(self) -> None:
        super().__init__(Path("."))

    def append(self, table: str, columns: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class StepResult:
    """One batched step: rewards and episode ends per slot, and the simulator's truth."""

    reward: np.ndarray  # [B] float32
    terminated: np.ndarray  # [B] bool the user left (session mode)
    truncated: np.ndarray  # [B] bool max_pages (session mode) or the lifetime's end
    final_obs: dict[str, np.ndarray] | None  # observation of the ended episodes' last page
    truth: dict[str, np.ndarray]  # simulator-only: utilities, examination, fatigue, intent


def _check_scenario(scenario: Scenario, arm: int) -> None:
    surface = scenario.surface_for(scenario.arms[arm])
    if isinstance(surface, ConversationSurface):
        raise RecarenaError(
            f"arms[{arm}].surface: the Gym environments serve list and carousel pages, "
            "not conversations"
        )
    if scenario.uses_llm:
        raise RecarenaError(
            "population.model: the Gym environments need rule users (no LLM panel or LLM agents)"
        )
    if scenario.sweep:  # was: the base values built, a world none of the sweep's cells runs
        raise RecarenaError(
            "sweep: the Gym environments build one world, not a sweep over "
            f"{', '.join(scenario.sweep)}; remove sweep and set the point to train on"
        )
    # what validate checks of a world, before it is built: a slate larger than the catalog was
    # numpy's "kth out of bounds" at the first step, 10^10 users a MemoryError in the build
    # as validate: a bad edge list named the file, not the field
    read_edges: EdgeReader | None = read_edge_list if uses_edge_list(scenario) else None
    preflight(scenario, "scenario", workers=1, probe_llm=False, read_edge_list=read_edges)


MAX_HISTORY = 100_000
"""Most consumed items an observation holds (an int64 each, per env slot)."""
MAX_OBSERVED = 100_000_000
"""Most consumed items a batch observes at once (num_envs x history, an int64 each, in a few
temporaries per step: 10^8 is under a few GB)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_options(
    num_slots: Any,
    replicate: Any,
    return_days: Any,
    lifetime_days: Any,
    history: Any,
    log_dir: Any,
) -> None:
    """The environment's own arguments, each refused by name (RecarenaError) before the world
    is built: a float index, a negative or non-finite number of days, a log_dir that is a file
    were TypeErrors, numpy errors or environments whose episodes never end."""
    for name, value in (("num_envs", num_slots), ("replicate", replicate), ("history", history)):
        if not _is_int(value):
            raise RecarenaError(f"{name}: expected an integer, got {value!r}")
    if replicate < 0:
        raise RecarenaError(f"replicate: {replicate} is negative")
    if history < 0:
        raise RecarenaError(f"history: {history} is negative (the number of items observed)")
    if history > MAX_HISTORY:  # an int64 per item and env slot: 10^9 was a MemoryError
        raise RecarenaError(
            f"history: {history:,} items observed exceed the maximum of {MAX_HISTORY:,}"
        )
    if history * num_slots > MAX_OBSERVED:  # was numpy's MemoryError ("224. GiB") in the build
        raise RecarenaError(
            f"history: {history:,} items observed by each of {num_slots:,} envs "
            f"({history * num_slots:.0e} in all) exceed the maximum of {MAX_OBSERVED:,} per "
            "batch; lower history or num_envs"
        )
    for name, days in (("return_days", return_days), ("lifetime_days", lifetime_days)):
        if days is None and name == "lifetime_days":
            continue
        number = isinstance(days, int | float | np.integer | np.floating)
        if not number or isinstance(days, bool) or not np.isfinite(days) or days <= 0:
            raise RecarenaError(f"{name}: expected a positive finite number of days, got {days!r}")
    if log_dir is not None:
        if not isinstance(log_dir, str | Path) or not str(log_dir):
            raise RecarenaError(f"log_dir: expected a directory path, got {log_dir!r}")
        if Path(log_dir).exists() and not Path(log_dir).is_dir():
            raise RecarenaError(f"log_dir: {log_dir} exists and is not a directory")
        check_creatable(Path(log_dir), "log_dir")  # under a file: was NotADirectoryError


def check_reset_options(options: Any) -> None:
    """reset's ``options``: the environments take none, so a non-empty mapping (an option meant
    for another environment, or a misspelt seed) is refused rather than ignored."""
    if options:
        raise RecarenaError(
            f"options: the recarena environments take no reset options, got {options!r} "
            "(pass the seed as reset(seed=...), settings to the constructor)"
        )


def check_render_mode(render_mode: Any) -> None:
    """gymnasium's ``render_mode``: None (no rendering, what training libraries pass) is taken;
    the environments draw nothing, so a mode is refused by name (was a TypeError naming no
    argument's value, with the whole scenario in the message)."""
    if render_mode is not None:
        raise RecarenaError(
            f"render_mode: {render_mode!r} is not a render mode of the recarena environments "
            "(they render nothing; leave it out or pass None)"
        )


def _arm_index(scenario: Scenario, arm: int | str) -> int:
    names = [a.name for a in scenario.arms]
    if not isinstance(arm, str) and not _is_int(arm):
        raise RecarenaError(f"arm: expected an arm's index or name, got {arm!r}")
    if isinstance(arm, str):
        if arm not in names:
            raise RecarenaError(f"arm: {arm!r} is not an arm; arms: {', '.join(names)}")
        return names.index(arm)
    if not 0 <= arm < len(names):
        arms = f"{len(names)} arm{'s' if len(names) != 1 else ''}"
        raise RecarenaError(f"arm: index {arm} out of range (the scenario has {arms})")
    return arm


class SessionDriver:
    """B independent episodes over one simulated world, stepped one page batch at a time."""

    def __init__(
        self,
        scenario: Scenario,
        num_slots: int = 1,
        *,
        arm: int | str = 0,
        replicate: int = 0,
        mode: str = "session",
        reward: str = "clicks",
        return_days: float = 7.0,
        lifetime_days: float | None = None,
        history: int = 10,
        log_dir: str | Path | None = None,
    ) -> None:
        _check_options(num_slots, replicate, return_days, lifetime_days, history, log_dir)
        if mode not in MODES:
            raise RecarenaError(f"mode: {mode!r} is not a mode; known: {', '.join(MODES)}")
        if reward not in REWARDS:
            raise RecarenaError(f"reward: {reward!r} is not a reward; known: {', '.join(REWARDS)}")
        arm_index = _arm_index(scenario, arm)
        _check_scenario(scenario, arm_index)
        users = scenario.population.users
        if num_slots < 1 or num_slots > users:
            raise RecarenaError(
                f"num_envs: {num_slots} must be between 1 and population.users ({users}); "
                "a batch never holds a user twice"
            )
        self.scenario = scenario
        self.num_slots = num_slots
        self.mode = mode
        self.reward_kind = reward
        self.return_seconds = return_days * DAY
        self.lifetime_seconds = (lifetime_days or scenario.horizon.days) * DAY
        self.history = history
        self._history_offsets = np.arange(-history, 0)[None, :]
        self.tick = scenario.horizon.tick_seconds
        self.log: EventLog = EventLog(Path(log_dir)) if log_dir is not None else _NoLog()
        if log_dir is not None:
            try:
                Path(log_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a read-only place, no permission: was the raw OSError
                reason = exc.strerror or type(exc).__name__
                raise RecarenaError(f"log_dir: {log_dir} cannot be created ({reason})") from None
        self._claim = _claim_log_dir(Path(log_dir)) if log_dir is not None else None
        try:
            self._setup(scenario, arm_index, replicate)
        except BaseException:
            self._release_log_dir()
            raise

    def _setup(self, scenario: Scenario, arm_index: int, replicate: int) -> None:
        self.world = self._build(scenario, arm_index, replicate)
        self.cfg = scenario.population
        surface = scenario.surface_for(self.world.arm)
        self.slate_shape: tuple[int, ...] = (
            (len(surface.rows), surface.cols)
            if isinstance(surface, CarouselSurface)
            else (self.world.surface.slots,)
        )
        self.k = self.world.surface.slots
        self.n_items = self.world.catalog.n
        """The catalog is fixed inside an environment (creators do not upload), so the action
        space over item ids keeps its size."""
        self.n_topics = self.world.catalog.n_topics
        self._pristine = self._snapshot()
        self.key = np.zeros(1, np.uint64)
        self.reset(0)

    # ------------------------------------------------------------------ world
    def _build(self, scenario: Scenario, arm: int, replicate: int) -> World:
        model = mesa.Model(rng=generator(scenario.seed, replicate, "model"))
        self._model = model  # owns the creators' Mesa agents
        world = build_world(model, scenario, arm, replicate, self.log, self._truth, None)
        self.active = ActiveSessions()
        self.outcomes = Outcomes(world, self.active, self.log, Timings())
        return world

    def _truth(self, requests: RequestBatch, items: np.ndarray) -> np.ndarray:
        return self.world.policy.utility(requests.user, items, self.active.explore)

    def _snapshot(self) -> dict[str, dict[str, Any]]:
        world = self.world
        states = {"users": world.user_state, "consumed": world.consumed}
        if world.social is not None:
            states["social"] = world.social
        return {name: copy.deepcopy(vars(obj)) for name, obj in states.items()}

    def _restore(self) -> None:
        world = self.world
        objects = {"users": world.user_state, "consumed": world.consumed, "social": world.social}
        for name, saved in self._pristine.items():
            vars(objects[name]).update(copy.deepcopy(saved))
        self.active = ActiveSessions()
        self.outcomes = Outcomes(world, self.active, self.log, Timings())

    # ------------------------------------------------------------------ episodes
    def reset(self, seed: int) -> dict[str, np.ndarray]:
        """Every slot starts its first episode from the world as it was built."""
        if seed > SEED_MAX:  # was: taken modulo 2^64, so seed 2^64 replayed seed 0's users
            raise RecarenaError(f"seed: {seed} is past 2^64-1, the largest seed a run takes")
        self._restore()
        n_users, b = self.cfg.users, self.num_slots
        # a [1] array, not a scalar: numpy warns on wrapping scalar arithmetic
        base = np.array([self.world.hash_base], np.uint64)
        self.key = combine(base, np.array(seed & 0xFFFFFFFFFFFFFFFF, np.uint64))
        self.visits = np.zeros(n_users, np.int64)  # candidate visits drawn per user
        self.last_seen = np.zeros(n_users)  # end of the user's last session (satiation clock)
        self.slot = np.arange(b)
        self.episode = np.zeros(b, np.int64)
        self.session_index = np.zeros(b, np.int64)
        self.episode_start = np.zeros(b)
        self.clock = np.zeros(b)
        self.next_visit = self._next_visits(np.arange(n_users), np.zeros(n_users))
        users = self._episode_users(self.slot, self.episode)
        self.episode_start = self.next_visit[users].copy()
        self._start_sessions(self.slot, users, self.episode_start.copy(), fresh=True)
        self._last_page = self._empty_page(b)
        return self.observe()

    def _episode_users(self, slots: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        """The user of each (slot, episode): a hash-chosen member of the slot's share."""
        n_users, b = self.cfg.users, self.num_slots
        share = (n_users - slots + b - 1) // b  # users u with u % b == slot
        h = combine(combine(combine(self.key, _USER), slots), episodes)
        pick = (h % share.astype(np.uint64)).astype(np.int64)
        return slots + pick * b

    def _next_visits(self, users: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Each user's next session start after ``after``: candidates at the maximum rate,
        kept with probability rate/max (thinning), all uniforms keyed by (user, visit n)."""
        state, cfg = self.world.user_state, self.cfg
        rate = state.visit_rate(cfg)[users]
        max_rate = state.activity[users] * cfg.max_rate_factor
        keep_p = rate / np.maximum(max_rate, 1e-300)
        when = after.astype(np.float64).copy()
        pending = np.arange(users.shape[0])
        tries = np.arange(_CANDIDATES)
        for _ in range(_MAX_THINNING):  # _CANDIDATES candidates per user and pass, not one
            u = users[pending]
            key = combine(combine(self.key, u)[:, None], self.visits[u][:, None] + tries)
            gaps = -np.log1p(-uniforms(combine(key, _GAP)))
            gaps /= np.maximum(max_rate[pending], 1e-12)[:, None]
            accepted = uniforms(combine(key, _ACCEPT)) < keep_p[pending][:, None]
            found = accepted.any(axis=1)
            first = np.where(found, accepted.argmax(axis=1), _CANDIDATES - 1)
            when[pending] += np.cumsum(gaps, axis=1)[np.arange(u.size), first] * DAY
            self.visits[u] += first + 1  # candidate n of a user is always keyed by n
            pending = pending[~found]
            if pending.size == 0:
                break
        return when

    def _start_sessions(
        self, slots: np.ndarray, users: np.ndarray, starts: np.ndarray, fresh: bool = False
    ) -> None:
        """Open a session per slot in ``slots``: satiation decays for the midnights since the
        user's last session, and the session's id and intent are counter-based."""
        state, cfg = self.world.user_state, self.cfg
        nights = np.floor(starts / DAY) - np.floor(self.last_seen[users] / DAY)
        decay = np.exp(-cfg.satiation_decay_per_day * np.maximum(nights, 0)).astype(np.float32)
        state.satiation[users] *= decay[:, None]
        key = combine(
            combine(combine(self.key, _SESSION), slots),
            self.episode[slots] * np.int64(1 << 20) + self.session_index[slots],
        )
        session_id = (key >> np.uint64(12)).astype(np.int64)  # request ids stay below 2**62
        explore = uniforms(combine(key, _EXPLORE)) < state.explore_prob[users]
        new = {
            "user": users,
            "session_id": session_id,
            "start": starts,
            "explore": explore,
            "page": np.zeros(slots.size, np.int32),
            "fatigue": np.zeros(slots.size, np.float32),
            "clicks": np.zeros(slots.size, np.int32),
            "value": np.zeros(slots.size, np.float64),
        }
        self.clock[slots] = starts
        self.outcomes.is_active[users] = True
        active = self.active
        if fresh:
            for name, values in new.items():
                setattr(active, name, values)
            return
        for name, values in new.items():  # refill the ended rows in slot order
            column = getattr(active, name)
            full = np.empty(self.num_slots, column.dtype)
            full[self._surviving] = column
            full[slots] = values
            setattr(active, name, full)

    def restart(self) -> dict[str, np.ndarray]:
        """Abandon every slot's episode and start the next one (``reset()`` mid-episode).

        Sessions that saw a page end as at the horizon (exit reason ``horizon``); sessions that
        saw none are dropped unlogged, as if the user had not come yet."""
        b, active = self.num_slots, self.active
        users, now = active.user.copy(), self.clock.copy()
        started = active.page > 0
        if started.any():
            self.outcomes.end_sessions(started, now, np.full(int(started.sum()), "horizon"))
        self.outcomes.is_active[users] = False
        active.keep(np.zeros(len(active), bool))
        self.last_seen[users[started]] = now[started]
        self.next_visit[users[started]] = self._next_visits(users[started], now[started])
        slots = np.arange(b)
        self.episode += 1
        self.session_index[:] = 0
        next_users = self._episode_users(slots, self.episode)
        self.episode_start = self.next_visit[next_users].copy()
        self._surviving = np.zeros(b, bool)
        self._start_sessions(slots, next_users, self.episode_start.copy())
        self._last_page = self._empty_page(b)
        return self.observe()

    # ------------------------------------------------------------------ a step
    def check_action(self, action: Any) -> np.ndarray:
        """[B, k] int64 item ids from an action; RecarenaError naming the action otherwise."""
        want = (self.num_slots, *self.slate_shape)
        try:
            array = np.asarray(action)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise RecarenaError(f"action: not an array of item ids ({exc})") from None
        if array.shape != want:
            raise RecarenaError(f"action: shape {array.shape}, expected {want} (item ids)")
        masked = np.ma.getmaskarray(action) if isinstance(action, np.ma.MaskedArray) else None
        if masked is not None and masked.any():  # np.asarray drops the mask: was shown as items
            row, col = np.argwhere(masked.reshape(self.num_slots, self.k))[0]
            raise RecarenaError(
                f"action: a masked array ({_where(row, col, self)} is masked); give item ids "
                "(consumed items are blanked by the environment)"
            )
        if array.dtype.kind not in "iu":  # not issubdtype(integer): timedelta64 is one
            whole = np.issubdtype(array.dtype, np.floating) and bool(
                np.all(np.isfinite(array) & (array == np.round(array)))
            )
            if not whole:
                raise RecarenaError(f"action: item ids must be integers, got dtype {array.dtype}")
        # the range is checked on the values as given: casting first wrapped 2**64 - 1 (uint64)
        # to -1 and 1e30 (float) to -2**63 in the message
        flat = array.reshape(self.num_slots, self.k)
        bad = (flat < 0) | (flat >= self.n_items)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            value = flat[row, col]
            shown = int(value) if array.dtype.kind in "iu" else f"{value:g}"
            raise RecarenaError(
                f"action: item id {shown} at {_where(row, col, self)} is not an "
                f"item (ids are 0..{self.n_items - 1})"
            )
        items = flat.astype(np.int64)
        ordered = np.sort(items, axis=1)
        repeated = ordered[:, 1:] == ordered[:, :-1]
        if repeated.any():
            row, col = np.argwhere(repeated)[0]
            raise RecarenaError(
                f"action: item {int(ordered[row, col])} appears twice in the slate"
                + (f" of env {int(row)}" if self.num_slots > 1 else "")
            )
        return items

    def step(self, action: Any) -> StepResult:
        items = self.check_action(action)
        world, active, outcomes = self.world, self.active, self.outcomes
        b = self.num_slots
        requests = pages.requests_for(world, active, float(self.clock.min()), self.k)
        # items the user already consumed are shown as empty slots (the engine never re-shows)
        exclude = requests.exclude
        if exclude.shape[1]:
            blanked = (items[:, :, None] == exclude[:, None, :]).any(axis=2)
            items = np.where(blanked, PAD_ITEM, items)
        else:
            blanked = np.zeros(items.shape, bool)
        slates = SlateBatch(
            items, np.full(items.shape, np.nan, np.float32), np.ones(items.shape, np.float32)
        )
        shown = pages.show(world, active, requests, slates)
        response = shown.response
        if self.reward_kind == "return":
            reward = np.zeros(b, np.float32)
        else:
            reward = pages.page_reward(self.reward_kind, response)
        clicked_any = response.clicked.any(axis=1)
        truth = {
            "utility": response.utility,  # -inf on empty slots
            "examined": response.examined,
            "fatigue": response.fatigue,
            "explore": active.explore,
            "session_id": active.session_id,
            "blanked": blanked.sum(axis=1),
            "return_days": np.full(b, -1.0),  # -1: the session goes on
        }
        self._last_page = {
            "slate": items,
            "clicks": response.clicked,
            "ratings": np.where(
                response.clicked, np.nan_to_num(response.rating)[:, None], 0.0
            ).astype(np.float32),
        }
        ending = shown.ending
        if ending.any():  # the ended sessions' features after their last page
            session_after = self._session_features(active.page + 1, active.clicks + clicked_any)
        users = active.user  # replaced, never written in place
        now = self.clock.copy()
        pages.close(world, active, outcomes, now, shown)
        self.clock += self.tick
        truth["satisfaction"] = world.user_state.satisfaction[users].astype(np.float32)
        terminated = np.zeros(b, bool)
        truncated = np.zeros(b, bool)
        final_obs = None
        if ending.any():
            slots = np.flatnonzero(ending)
            ended = users[slots]
            self.last_seen[ended] = now[slots]
            nxt = self._next_visits(ended, now[slots])
            self.next_visit[ended] = nxt
            gap_days = (nxt - now[slots]) / DAY
            truth["return_days"][slots] = gap_days
            if self.reward_kind == "return":
                reward[slots] = (gap_days * DAY <= self.return_seconds).astype(np.float32)
            if self.mode == "session":
                terminated[slots] = response.leave[slots]
                truncated[slots] = ~response.leave[slots]
                over = np.ones(slots.size, bool)
            else:
                over = nxt > self.episode_start[slots] + self.lifetime_seconds
                truncated[slots] = over
            done = slots[over]
            if done.size:  # the ended episodes' last observation, before their slots refill
                final_obs = self._observe(done, ended[over], session_after[done])
            self.episode[done] += 1
            self.session_index[done] = 0
            self.session_index[slots[~over]] += 1
            next_users = ended.copy()
            next_users[over] = self._episode_users(done, self.episode[done])
            self.episode_start[done] = self.next_visit[next_users[over]]
            self._surviving = ~ending
            self._start_sessions(slots, next_users, self.next_visit[next_users])
            for name, column in self._last_page.items():
                column[slots] = _EMPTY[name]
        # copies: explore, session_id and fatigue were the engine's own arrays, so a caller
        # writing into info changed the sessions' intent, noise keys and fatigue
        truth = {name: np.array(value) for name, value in truth.items()}
        return StepResult(reward, terminated, truncated, final_obs, truth)

    # ------------------------------------------------------------------ observations
    def _empty_page(self, b: int) -> dict[str, np.ndarray]:
        return {
            "slate": np.full((b, self.k), PAD_ITEM, np.int64),
            "clicks": np.zeros((b, self.k), bool),
            "ratings": np.zeros((b, self.k), np.float32),
        }

    def _session_features(self, page: np.ndarray, clicks: np.ndarray) -> np.ndarray:
        """[B, 4] pages and clicks so far in the session, session number in the episode and
        days since the episode began."""
        return np.stack(
            [
                page.astype(np.float32),
                clicks.astype(np.float32),
                self.session_index.astype(np.float32),
                np.maximum((self.clock - self.episode_start) / DAY, 0.0).astype(np.float32),
            ],
            axis=1,
        )

    def observe(self) -> dict[str, np.ndarray]:
        """The batched observation of every slot (what a recommender may see)."""
        active = self.active
        features = self._session_features(active.page, active.clicks)
        return self._observe(None, active.user, features)

    def _observe(
        self, rows: np.ndarray | None, users: np.ndarray, session: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Observations of ``users`` (slots ``rows``; None = every slot, in order)."""
        world = self.world
        familiarity = world.user_state.familiarity[users]
        mix = familiarity / np.maximum(familiarity.sum(axis=1, keepdims=True), 1e-12)
        consumed = world.consumed
        offsets = self._history_offsets + consumed.count[users][:, None]
        history = consumed.at(users[:, None], np.maximum(offsets, 0))  # offsets < width
        history[offsets < 0] = PAD_ITEM
        page = self._last_page
        slate, clicks, ratings = page["slate"], page["clicks"], page["ratings"]
        if rows is not None:
            slate, clicks, ratings = slate[rows], clicks[rows], ratings[rows]
        shape = (users.size, *self.slate_shape)
        return {
            "user_id": users.astype(np.int64),  # a copy: was the engine's active.user
            "topic_mix": mix.astype(np.float32, copy=False),
            "history": history,
            "slate": slate.reshape(shape),
            "clicks": clicks.reshape(shape).astype(np.int8),
            "ratings": ratings.reshape(shape),
            "session": session,
        }

    def valid_items(self) -> np.ndarray:
        """[B, n_items] bool: items each slot's user has not consumed (a mask for policies)."""
        mask = np.ones((self.num_slots, self.n_items), bool)
        exclude = self.world.consumed.for_users(self.active.user)
        rows, cols = np.nonzero(exclude != PAD_ITEM)
        mask[rows, exclude[rows, cols]] = False
        return mask

    def close(self) -> None:
        """End the open sessions (exit reason ``horizon``) and publish the logs, if any."""
        n = len(self.active)
        try:
            if n:
                now = self.clock.copy()
                self.outcomes.end_sessions(np.ones(n, bool), now, np.full(n, "horizon"))
            self.log.close()
        finally:
            self._release_log_dir()

    def _release_log_dir(self) -> None:
        if self._claim is not None:
            self._claim.unlink(missing_ok=True)
            self._claim = None


_EMPTY = {"slate": PAD_ITEM, "clicks": False, "ratings": 0.0}

LOG_DIR_CLAIM = "_ENV_WRITING"
"""Marks a log_dir an environment writes to, from its construction until its close."""


def _claim_log_dir(directory: Path) -> Path:
    """Claim ``directory`` for one environment's logs. Two environments on one folder (each env
    of a gymnasium SyncVectorEnv given the same log_dir, or a second env on a finished one)
    wrote the same table files, and the last to close replaced the others' rows without a word."""
    held = sorted(
        file
        for name in SCHEMAS
        for file in (f"{name}.parquet", f"{name}.parquet.tmp")
        if (directory / file).exists()
    )
    if held:
        raise RecarenaError(
            f"log_dir: {directory} already holds logs ({held[0]}, ...); give a new or empty folder"
        )
    claim = directory / LOG_DIR_CLAIM
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        raise RecarenaError(
            f"log_dir: {directory} is being written by another environment (one log_dir per "
            f"environment; RecarenaVectorEnv logs all its envs in one; delete {claim} if that "
            "environment is gone)"
        ) from None
    return claim


def _where(row: Any, col: Any, driver: SessionDriver) -> str:
    """Where in the action a bad id sits: 'slot [2]' or 'env 1 slot [4]'."""
    index = np.unravel_index(int(col), driver.slate_shape)
    slot = ",".join(str(int(i)) for i in index)
    return f"env {int(row)} slot [{slot}]" if driver.num_slots > 1 else f"slot [{slot}]"
