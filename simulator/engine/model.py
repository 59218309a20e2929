"""SimulationModel: one (arm, replicate) cell, a thin Mesa model driven by a SimPy clock.

The model owns the clock and nothing else of substance: ``build_world`` wires users, corpus,
social graph and recommender; ``Outcomes`` applies and logs what each batch changes; the
``DialogueLoop`` serves conversation turns. Processes on the SimPy timeline (simulated seconds):

* ``_day_process`` draws each day's arrivals and closes the previous day (satiation decay,
  DataCollector snapshot);
* ``_retrain_process`` refits the recommender on every click logged so far;
* one upload process per creator grows the catalog, and creators review on their period;
* ``_page_loop`` serves, at every tick, one page to every active session as ONE batch; where
  nothing couples sessions it serves a window of ticks up to the next event in waves
  (simulator/engine/waves.py), and it reports progress.

Processes that share a timestamp run in the order their timeouts were scheduled; the daily and
retrain processes schedule a whole period ahead, so at a day boundary arrivals and refits always
happen before that tick's pages are served.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import mesa
import numpy as np
import simpy

from recarena.agents.llm.endpoint import LLMRuntime
from recarena.simulator.core.rng import generator
from recarena.simulator.core.scenario import ConversationSurface, Scenario
from recarena.simulator.core.types import RequestBatch
from recarena.simulator.engine import pages
from recarena.simulator.engine.arrivals import DAY, Arrivals, draw_day
from recarena.simulator.engine.behaviour_hooks import (
    arrivals_for_day,
    behaviour_processes,
    rhythm_draw_length,
)
from recarena.simulator.engine.dialogue_loop import DialogueLoop
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.outcomes import Outcomes
from recarena.simulator.engine.sessions import ActiveSessions, Timings
from recarena.simulator.engine.slate_guard import SlateGuard
from recarena.simulator.engine.surfaces import SurfaceState
from recarena.simulator.engine.waves import PageWaves, waves_apply
from recarena.simulator.engine.world import build_world


def _empty_method(self, feedback):  # noqa: ANN001, ANN202 (the shape does_nothing compares)
    return None


def does_nothing(method: object) -> bool:
    """True for a function whose body is only ``return None`` or ``pass`` (same bytecode and
    constants as an empty method), so a call to it can be skipped with what it would be given.
    Anything else, including a docstring, a wrapper or a builtin, counts as doing something."""
    code = getattr(method, "__code__", None)
    empty = _empty_method.__code__
    return code is not None and (code.co_code, code.co_consts) == (empty.co_code, empty.co_consts)


class SimulationModel(mesa.Model):
    """Mesa's Model for its seeded RNG, agent registry (creators) and DataCollector; SimPy's
    Environment for the clock."""

    def __init__(
        self,
        scenario: Scenario,
        arm_index: int,
        replicate: int,
        log: EventLog,
        progress: Callable[[float], None] | None = None,
        llm_runtime: LLMRuntime | None = None,
    ) -> None:
        super().__init__(rng=generator(scenario.seed, replicate, "model"))
        self.scenario = scenario
        self.log = log
        self.progress = progress
        self.env = simpy.Environment()
        self.horizon_seconds = scenario.horizon.days * DAY
        self.active = ActiveSessions()
        self.pending = Arrivals.empty()
        self._next_arrival = 0
        """Index of the first arrival in ``pending`` not yet admitted: admitting moves this
        cursor instead of slicing four arrays every tick; the admitted head is dropped once a
        day, when the next day's arrivals are appended."""
        self.clock_timings = Timings()
        self.world = build_world(
            self, scenario, arm_index, replicate, log, self._true_utility, llm_runtime
        )
        self.arm = self.world.arm
        self.outcomes = Outcomes(self.world, self.active, log, self.clock_timings)
        self.guard = SlateGuard(self.world)
        self.recommender = self.guard.wrap(self.world.recommender)
        """The arm's recommender behind the slate guard: what the surfaces call."""
        self._learns_online = not does_nothing(
            getattr(type(self.world.recommender), "update", None)
        )
        """False when the recommender's ``update`` is an empty method (popularity, random, mf
        learn only in ``fit``): the page loop then builds no FeedbackBatch for it."""
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "day": lambda m: m.current_day,
                "sessions": lambda m: m.outcomes.day_counts["sessions"],
                "impressions": lambda m: m.outcomes.day_counts["impressions"],
                "clicks": lambda m: m.outcomes.day_counts["clicks"],
                "catalog_size": lambda m: m.world.catalog.n,
                "mean_satisfaction": lambda m: float(m.world.user_state.satisfaction.mean()),
            }
        )
        self.current_day = 0
        self._next_progress = self.horizon_seconds / 100
        """When the next hundredth of the horizon is crossed (:meth:`_report_progress`)."""
        self.user_shard: tuple[int, int] | None = None
        """``(index, count)``: serve only users with ``user % count == index`` (a sharded cell,
        simulator/runner/sharding.py); None serves everybody."""
        self.fit_override: Callable[[], None] | None = None
        """Called at each retrain instead of fitting on this process's clicks (a sharded cell
        installs the recommender fitted on every shard's clicks)."""
        self.day_end_hooks: list[Callable[[int], None]] = []
        """Called after each day's snapshot (a shard keeps its users' satisfaction)."""
        surface_cfg = scenario.surface_for(self.arm)  # conversations serve turns, not pages
        self.dialogue = (
            DialogueLoop(
                self.world, self.active, self.outcomes, self.guard, self.recommender, surface_cfg
            )
            if isinstance(surface_cfg, ConversationSurface)
            else None
        )

    @property
    def timings(self) -> dict[str, float]:
        return self.clock_timings.seconds

    def _true_utility(self, requests: RequestBatch, items: np.ndarray) -> np.ndarray:
        """Ground truth for oracle recommenders: the rule users' utility right now."""
        serving = self.active.session_id  # the requests hold a read-only view of it
        asked = requests.session
        same = asked.shape == serving.shape and (
            asked.__array_interface__["data"][0] == serving.__array_interface__["data"][0]
        )
        if not same:
            raise ValueError("truth() answers only for the batch being served")
        return self.world.policy.utility(requests.user, items, self.active.explore)

    # ---------------------------------------------------------------- processes
    def _day_process(self):
        n_days = math.ceil(self.scenario.horizon.days)
        world = self.world
        for day in range(n_days):
            if day > 0:
                self._end_day(day - 1)
            self.current_day = day
            length = min(DAY, self.horizon_seconds - day * DAY)
            cfg = self.scenario.population
            boost = world.social.visit_boost() if world.social is not None else None
            drawn = rhythm_draw_length(world, length)  # a rhythm draws the whole day
            arrivals = draw_day(
                day, world.user_state, cfg, self.scenario.seed, world.replicate, drawn, boost
            )
            arrivals = arrivals_for_day(world, arrivals, day, length)  # daily rhythm
            if self.user_shard is not None:
                arrivals = arrivals.for_shard(*self.user_shard)
            self.pending = self.pending.after(self._next_arrival).concat(arrivals)
            self._next_arrival = 0
            yield self.env.timeout(DAY)

    def _retrain_process(self):
        period = self.scenario.retrain_days(self.arm) * DAY
        while True:
            started = time.perf_counter()
            if self.fit_override is not None:
                self.fit_override()
            else:
                self.recommender.fit(self.outcomes.history())
            self.clock_timings.add("fit", time.perf_counter() - started)
            yield self.env.timeout(period)

    def _report_progress(self, now: float) -> None:
        """Tell ``progress`` the share of the horizon simulated, once per hundredth crossed.
        Reported by the page loop rather than by a process of its own: an event every hundredth
        of the horizon would end every page wave there (a one-day run's every 14 minutes)."""
        if self.progress is None or now < self._next_progress:
            return
        step = self.horizon_seconds / 100
        self._next_progress = (math.floor(now / step) + 1) * step
        self.progress(min(now / self.horizon_seconds, 1.0))

    def _review_process(self):
        """Creators' periodic reviews (agents/creators/dynamics.py), their LLM calls logged."""
        period = self.scenario.creators.period_days * DAY
        world = self.world
        while True:
            yield self.env.timeout(period)
            world.creator_dynamics.review(self.env.now, self.env)
            if world.creator_llm is not None:
                self.outcomes.log_llm_calls(world.creator_llm)

    def _page_loop(self):
        tick = self.scenario.horizon.tick_seconds
        waves = PageWaves(self) if waves_apply(self) else None
        n_tick = 0
        while True:
            now = n_tick * tick
            if waves is not None:  # many ticks of pages at once where nothing couples them
                stop = waves.window_end(n_tick)
                if stop - n_tick >= 2 and waves.has_work(n_tick, stop):
                    waves.serve(n_tick, stop)
                    n_tick = stop
                    self._report_progress(n_tick * tick)
                    yield self.env.timeout(n_tick * tick - now)
                    continue
            self._admit(now)
            if len(self.active) == 0:  # idle: jump to the next arrival (or midnight)
                if self._next_arrival < len(self.pending):
                    target = float(self.pending.start[self._next_arrival])
                else:
                    target = (math.floor(now / DAY) + 1) * DAY
                n_tick = max(n_tick + 1, math.ceil(target / tick))
            else:
                self._serve(now)
                n_tick += 1
            self._report_progress(n_tick * tick)
            yield self.env.timeout(n_tick * tick - now)

    # --------------------------------------------------------------- page batches
    def _admit(self, now: float) -> None:
        pending, head = self.pending, self._next_arrival
        if head >= len(pending) or pending.start[head] > now:  # nobody arrives this tick
            return
        stop = int(pending.start.searchsorted(now, "right"))
        self._next_arrival = stop
        ready = slice(head, stop)
        users = pending.user[ready]
        is_active = self.outcomes.is_active
        fresh = ~is_active[users]
        if stop - head > 1:  # a user browses one session at a time: only the first arrival counts
            order = users.argsort(kind="stable")
            ordered = users[order]
            repeat = ordered[1:] == ordered[:-1]
            if repeat.any():
                fresh[order[1:][repeat]] = False
        if fresh.all():  # the common case: no gather
            admitted = Arrivals(
                users, pending.start[ready], pending.explore[ready], pending.session_id[ready]
            )
        else:
            first = fresh.nonzero()[0]
            if first.size == 0:
                return
            admitted = Arrivals(
                users[first],
                pending.start[ready][first],
                pending.explore[ready][first],
                pending.session_id[ready][first],
            )
        is_active[admitted.user] = True
        self.active.add(admitted)
        self.outcomes.day_counts["sessions"] += len(admitted)

    def _serve(self, now: float) -> None:
        if self.dialogue is not None:  # a conversation turn instead of a page
            self.dialogue.serve(now)
            return
        world, active, outcomes = self.world, self.active, self.outcomes
        surface = world.surface
        k = surface.slots
        requests = pages.requests_for(world, active, now, k)
        started = time.perf_counter()
        state = self._surface_state(requests) if surface.needs_state else None
        slates = surface.layout(self.recommender, requests, state)
        after_recommend = time.perf_counter()

        shown = pages.show(world, active, requests, slates)  # the step Gym envs share
        after_respond = time.perf_counter()
        for client in (world.recommender_llm, world.panel.llm.client if world.panel else None):
            if client is not None:  # this page batch's LLM calls (recommender, then users)
                outcomes.log_llm_calls(client)
        if self._learns_online:
            self.recommender.update(pages.feedback(requests, shown))
        after_update = time.perf_counter()

        pages.close(world, active, outcomes, now, shown)
        self.clock_timings.split_batch(started, after_recommend, after_respond, after_update)

    def _surface_state(self, requests: RequestBatch) -> SurfaceState:
        world, outcomes = self.world, self.outcomes
        n = world.catalog.n
        if outcomes.recent_clicks.shape[0] < n:
            grown = np.zeros(n)
            grown[: outcomes.recent_clicks.shape[0]] = outcomes.recent_clicks
            outcomes.recent_clicks = grown
        last = world.consumed.last(requests.user)
        social = world.social
        friends = social.neighbour_share(requests.user) if social is not None else None
        return SurfaceState(world.catalog, outcomes.recent_clicks, last, friends)

    def _end_day(self, day: int) -> None:
        self.current_day = day
        self.outcomes.end_day()
        self.datacollector.collect(self)
        for hook in self.day_end_hooks:
            hook(day)
        self.outcomes.reset_day_counts()

    # --------------------------------------------------------------------- run
    def run(self) -> None:
        """Simulate the whole horizon and write every table through the event log."""
        self.start()
        try:
            self.advance(self.horizon_seconds)
            self._finish()
        finally:
            self.close_clients()

    def start(self) -> None:
        """Put every process on the clock (``run`` = start, advance to the horizon, finish)."""
        env, world = self.env, self.world
        env.process(self._day_process())
        for process in behaviour_processes(env, world):  # e.g. the hourly topic clock
            env.process(process)
        env.process(self._retrain_process())
        env.process(self._review_process())
        for creator in world.creators:
            env.process(creator.upload_process(env, world.catalog, self.scenario.catalog))
        env.process(self._page_loop())

    def advance(self, until: float) -> None:
        """Process every event before ``until`` (events at ``until`` itself are left)."""
        if until > self.env.now:
            self.env.run(until=min(until, self.horizon_seconds))

    def finish(self) -> None:
        """After advancing to the horizon: end open sessions, write the static tables."""
        try:
            self._finish()
        finally:
            self.close_clients()

    def close_clients(self) -> None:
        for client in self.world.llm_clients():
            client.close()

    def _finish(self) -> None:
        if len(self.active):
            n = len(self.active)
            self.outcomes.end_sessions(
                np.ones(n, bool), self.horizon_seconds, np.full(n, "horizon")
            )
        self._end_day(math.ceil(self.scenario.horizon.days) - 1)
        self.world.creator_dynamics.review(self.horizon_seconds, None, final=True)
        self.outcomes.write_static_tables(self.datacollector.get_model_vars_dataframe())
