"""SimulationModel: one (arm, replicate) cell, a Mesa model driven by a SimPy clock.

Processes on the SimPy timeline (simulated seconds):

* ``_day_process`` draws each day's arrivals and closes the previous day (satiation decay,
  DataCollector snapshot);
* ``_retrain_process`` refits the recommender on every click logged so far;
* one upload process per creator grows the catalog;
* ``_page_loop`` serves, at every tick, one page to every active session as ONE batch.

Processes that share a timestamp run in the order their timeouts were scheduled; the daily and
retrain processes schedule a whole period ahead, so at a day boundary arrivals and refits always
happen before that tick's pages are served.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mesa
import numpy as np
import simpy
from mesa.agent import AgentSet

from agents.creator_dynamics import CreatorDynamics, creator_llm_client
from agents.creators import CreatorAgent, creator_profiles
from agents.llm_panel import LLMRuntime, build_panel_policy
from agents.memory import ConsumedItems
from agents.population import generate_users
from agents.rule_user import RuleUserPolicy
from agents.social import SocialState
from agents.user_agent import UserAgent
from recommenders.base import RecommenderContext
from recommenders.llm_crs import crs_llm_resources
from recommenders.registry import build
from simulator.arrivals import DAY, Arrivals, draw_day
from simulator.calibrated import add_calibrated_items, calibrated_users
from simulator.calibration import CalibratedPopulation
from simulator.catalog import Catalog
from simulator.dialogue_loop import DialogueLoop
from simulator.eventlog import EventLog
from simulator.rng import arm_key, combine, generator, hash_base
from simulator.scenario import ConversationSurface, Scenario
from simulator.surfaces import SurfaceState, build_surface
from simulator.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    PageBatch,
    RequestBatch,
    SlateBatch,
)

PAGE_ID_STRIDE = 1024  # request_id = session_id * 1024 + page (max_pages <= 1000)


@dataclass
class ActiveSessions:
    """Struct of arrays over the sessions currently browsing."""

    user: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    session_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    start: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    explore: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    page: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    fatigue: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    clicks: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    value: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)

    def add(self, arrivals: Arrivals) -> None:
        n = len(arrivals)
        new = {
            "user": arrivals.user,
            "session_id": arrivals.session_id,
            "start": arrivals.start,
            "explore": arrivals.explore,
            "page": np.zeros(n, np.int32),
            "fatigue": np.zeros(n, np.float32),
            "clicks": np.zeros(n, np.int32),
            "value": np.zeros(n, np.float64),
        }
        for name, array in self._arrays().items():
            setattr(self, name, np.concatenate([array, new[name]]))

    def keep(self, mask: np.ndarray) -> None:
        for name, array in self._arrays().items():
            setattr(self, name, array[mask])


class SimulationModel(mesa.Model):
    def __init__(
        self,
        scenario: Scenario,
        arm_index: int,
        replicate: int,
        log: EventLog,
        progress: Callable[[float], None] | None = None,
        llm_runtime: LLMRuntime | None = None,
    ) -> None:
        seed = scenario.seed
        super().__init__(rng=generator(seed, replicate, "model"))
        self.scenario = scenario
        self.arm = scenario.arms[arm_index]
        self.replicate = replicate
        self.log = log
        self.progress = progress
        self.env = simpy.Environment()
        self.horizon_seconds = scenario.horizon.days * DAY
        self.timings = dict.fromkeys(
            ("fit", "recommend", "respond", "update", "log", "reflect"), 0.0
        )

        cfg_cat, cfg_pop = scenario.catalog, scenario.population
        self.catalog = Catalog(cfg_cat.topics, capacity=max(1024, 2 * cfg_cat.initial_items))
        self.calibrated = (  # a real population (simulator/calibrated.py); None = generated
            CalibratedPopulation.load(cfg_pop.path) if cfg_pop.source == "calibrated" else None
        )
        self.creators = self._make_creators()
        if self.calibrated is not None:
            self.user_state = calibrated_users(
                self.calibrated, cfg_pop, generator(seed, replicate, "population")
            )
        else:
            self.user_state = generate_users(
                cfg_pop, cfg_cat.topics, generator(seed, replicate, "population")
            )
        self.consumed = ConsumedItems(cfg_pop.users)
        successor = generator(seed, replicate, "catalog", 0).permutation(cfg_cat.topics)
        self.social = (  # the same graph under every arm: its own arm-independent stream
            SocialState.build(
                cfg_pop.social,
                self.user_state.taste,
                cfg_cat.topics,
                generator(seed, replicate, "social"),
            )
            if cfg_pop.social is not None
            else None
        )
        self._taste_start = self.user_state.taste.copy() if cfg_pop.taste_drift > 0 else None
        self.policy = RuleUserPolicy(
            cfg_pop, self.user_state, self.catalog, successor, social=self.social
        )
        self.panel = None
        if scenario.population.llm_users > 0:
            if llm_runtime is None:
                raise ValueError("a scenario with LLM users needs an LLMRuntime")
            self.panel = build_panel_policy(
                scenario, replicate, self.user_state, self.catalog, self.policy, llm_runtime
            )
            self.policy = self.panel
        self._hash_base = hash_base(seed, replicate)
        # an llm_crs arm gets the run's LLM client and item text (None for every other arm)
        self.recommender_llm, crs_text = crs_llm_resources(
            scenario, self.arm, self.catalog, llm_runtime
        )
        context = RecommenderContext(
            rng=generator(seed, replicate, "recommender", arm_key(self.arm.name)),
            n_users=cfg_pop.users,
            n_topics=cfg_cat.topics,
            truth=self._true_utility,
            llm_client=self.recommender_llm,
            item_text=crs_text,
        )
        self.recommender = build(self.arm.recommender.type, self.arm.recommender.params, context)
        self.surface = build_surface(scenario.surface_for(self.arm), cfg_pop.position_decay)
        self.llm_runtime = llm_runtime  # added by 5a: for conversational LLM users / CRS
        self.creator_llm = creator_llm_client(scenario, llm_runtime)
        self.creator_dynamics = CreatorDynamics(
            scenario,
            replicate,
            self.arm.name,
            self.catalog,
            list(self.creators),
            self._topic_weights,
            log,
            self.creators.add,
            self.creator_llm,
        )
        self._recent_clicks = np.zeros(0)
        self._clicks_today: list[np.ndarray] = []

        self.active = ActiveSessions()
        self.pending = Arrivals.empty()
        self._is_active = np.zeros(cfg_pop.users, bool)
        self._history: list[tuple[np.ndarray, ...]] = []
        self._day = dict.fromkeys(("sessions", "impressions", "clicks"), 0)
        self._user_handles: dict[int, UserAgent] = {}
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "day": lambda m: m._current_day,
                "sessions": lambda m: m._day["sessions"],
                "impressions": lambda m: m._day["impressions"],
                "clicks": lambda m: m._day["clicks"],
                "catalog_size": lambda m: m.catalog.n,
                "mean_satisfaction": lambda m: float(m.user_state.satisfaction.mean()),
            }
        )
        self._current_day = 0
        surface_cfg = scenario.surface_for(self.arm)  # added by 5a: conversations serve turns
        conversing = isinstance(surface_cfg, ConversationSurface)
        self.dialogue = DialogueLoop(self, surface_cfg) if conversing else None

    def _true_utility(self, requests: RequestBatch, items: np.ndarray) -> np.ndarray:
        """Ground truth for oracle recommenders: the rule users' utility right now."""
        if requests.session is not self.active.session_id:
            raise ValueError("truth() answers only for the batch being served")
        return self.policy.utility(requests.user, items, self.active.explore)

    # ----------------------------------------------------------------- set-up
    def _make_creators(self) -> AgentSet:
        scenario = self.scenario
        cfg = scenario.catalog
        n = scenario.creators.count
        profile_rng = generator(scenario.seed, self.replicate, "catalog")
        profiles = creator_profiles(n, cfg, scenario.creators.uploads_per_day, profile_rng)
        creators = [
            CreatorAgent(
                self,
                creator_id=c,
                topic=int(profiles["topic"][c]),
                quality=float(profiles["quality"][c]),
                uploads_per_day=float(profiles["uploads_per_day"][c]),
                rng=generator(scenario.seed, self.replicate, "catalog", c + 1),
            )
            for c in range(n)
        ]
        self._topic_weights = profiles["topic_weights"]
        shares = profiles["share"] / profiles["share"].sum()
        initial = profile_rng.multinomial(cfg.initial_items, shares)
        if self.calibrated is not None:  # the dataset's items instead of drawn ones
            add_calibrated_items(self.catalog, self.calibrated)
            initial[:] = 0
        for creator, count in zip(creators, initial, strict=True):
            if count:
                creator.publish(self.catalog, cfg, int(count), 0.0)
        return AgentSet(creators, random=self.random)

    def user(self, user_id: int) -> UserAgent:
        """A Mesa handle onto one user's row of state, created on first use."""
        if not 0 <= user_id < self.user_state.n_users:
            raise IndexError(f"user_id {user_id} out of range")
        handle = self._user_handles.get(user_id)
        if handle is None:
            handle = self._user_handles[user_id] = UserAgent(self, user_id)
        return handle

    @property
    def users(self) -> AgentSet:
        """Every user as a Mesa AgentSet (creates all handles: costly for huge populations)."""
        return AgentSet([self.user(u) for u in range(self.user_state.n_users)], random=self.random)

    # ---------------------------------------------------------------- processes
    def _day_process(self):
        n_days = math.ceil(self.scenario.horizon.days)
        for day in range(n_days):
            if day > 0:
                self._end_day(day - 1)
            self._current_day = day
            length = min(DAY, self.horizon_seconds - day * DAY)
            cfg = self.scenario.population
            boost = self.social.visit_boost() if self.social is not None else None
            arrivals = draw_day(
                day, self.user_state, cfg, self.scenario.seed, self.replicate, length, boost
            )
            self.pending = self.pending.concat(arrivals)
            yield self.env.timeout(DAY)

    def _retrain_process(self):
        period = self.scenario.retrain_days(self.arm) * DAY
        while True:
            started = time.perf_counter()
            self.recommender.fit(self.history())
            self.timings["fit"] += time.perf_counter() - started
            yield self.env.timeout(period)

    def _progress_process(self):
        step = self.horizon_seconds / 100
        while True:
            yield self.env.timeout(step)
            if self.progress is not None:
                self.progress(min(self.env.now / self.horizon_seconds, 1.0))

    def _page_loop(self):
        tick = self.scenario.horizon.tick_seconds
        n_tick = 0
        while True:
            now = n_tick * tick
            self._admit(now)
            if len(self.active) == 0:
                if len(self.pending):
                    target = float(self.pending.start[0])
                else:
                    target = (math.floor(now / DAY) + 1) * DAY
                n_tick = max(n_tick + 1, math.ceil(target / tick))
            else:
                self._serve(now)
                n_tick += 1
            yield self.env.timeout(n_tick * tick - now)

    # --------------------------------------------------------------- page batches
    def _admit(self, now: float) -> None:
        ready = int(np.searchsorted(self.pending.start, now, side="right"))
        if ready == 0:
            return
        arrivals = Arrivals(
            self.pending.user[:ready],
            self.pending.start[:ready],
            self.pending.explore[:ready],
            self.pending.session_id[:ready],
        )
        self.pending = self.pending.after(ready)
        # a user browses one session at a time: drop arrivals of users already browsing
        _, first = np.unique(arrivals.user, return_index=True)
        first.sort()
        first = first[~self._is_active[arrivals.user[first]]]
        if first.size == 0:
            return
        admitted = Arrivals(
            arrivals.user[first],
            arrivals.start[first],
            arrivals.explore[first],
            arrivals.session_id[first],
        )
        self._is_active[admitted.user] = True
        self.active.add(admitted)
        self._day["sessions"] += len(admitted)

    def history(self) -> Interactions:
        """Every click so far, as the training data recommenders fit on."""
        if not self._history:
            return Interactions.empty()
        user, item, when, rating = (np.concatenate(p) for p in zip(*self._history, strict=True))
        return Interactions(user=user, item=item, time=when, rating=rating)

    def _serve(self, now: float) -> None:
        if self.dialogue is not None:  # added by 5a: a conversation turn instead of a page
            self.dialogue.serve(now)
            return
        active = self.active
        k = self.surface.slots
        requests = RequestBatch(
            time=now,
            user=active.user,
            session=active.session_id,
            page=active.page,
            k=k,
            catalog=self.catalog.view(),
            exclude=self.consumed.for_users(active.user),
        )
        started = time.perf_counter()
        state = self._surface_state(requests) if self.surface.needs_state else None
        slates = self.surface.layout(self.recommender, requests, state)
        _check_slates(slates, len(active), k, self.arm.recommender.type)
        after_recommend = time.perf_counter()

        request_id = active.session_id * PAGE_ID_STRIDE + active.page
        noise_key = combine(np.uint64(self._hash_base), request_id.astype(np.uint64))
        examined = self.surface.examine(noise_key, slates.items)
        pages = PageBatch(requests, slates, active.explore, active.fatigue, noise_key, examined)
        response = self.policy.respond(pages)
        after_respond = time.perf_counter()
        if self.panel is not None:
            self._log_llm_calls()
        self.recommender.update(FeedbackBatch(requests, slates, response.clicked))
        after_update = time.perf_counter()

        day = int(now // DAY)
        self._log_exposures(now, day, request_id, slates, response)
        clicked_rows = self._consume(now, day, request_id, slates, response)

        cfg = self.scenario.population
        active.page = active.page + 1
        active.fatigue = response.fatigue
        active.clicks[clicked_rows] += 1
        active.value += response.extra["value"]
        max_pages = active.page >= cfg.max_pages
        ending = response.leave | max_pages
        if ending.any():
            reason = np.where(response.leave, "fatigue", "max_pages")[ending]
            self._end_sessions(ending, now, reason)
        self.add_timings(started, after_recommend, after_respond, after_update)

    def add_timings(
        self, started: float, after_recommend: float, after_respond: float, after_update: float
    ) -> None:
        """Split one batch's wall time (pages or turns) into the manifest's timing buckets."""
        finished = time.perf_counter()
        self.timings["recommend"] += after_recommend - started
        self.timings["respond"] += after_respond - after_recommend
        self.timings["update"] += after_update - after_respond
        self.timings["log"] += finished - after_update

    def _surface_state(self, requests: RequestBatch) -> SurfaceState:
        n = self.catalog.n
        if self._recent_clicks.shape[0] < n:
            grown = np.zeros(n)
            grown[: self._recent_clicks.shape[0]] = self._recent_clicks
            self._recent_clicks = grown
        counts = self.consumed.count[requests.user]
        last = np.where(
            counts > 0, self.consumed.matrix[requests.user, np.maximum(counts - 1, 0)], PAD_ITEM
        )
        friends = self.social.neighbour_share(requests.user) if self.social is not None else None
        return SurfaceState(self.catalog, self._recent_clicks, last, friends)

    def _log_exposures(self, now, day, request_id, slates: SlateBatch, response) -> None:
        active = self.active
        batch, k = slates.items.shape
        valid = (slates.items != PAD_ITEM).ravel()
        if valid.all():  # the common case: no masking copies

            def keep(column: np.ndarray) -> np.ndarray:
                return column.ravel()
        else:

            def keep(column: np.ndarray) -> np.ndarray:
                return column.ravel()[valid]

        items = keep(slates.items)
        n = items.shape[0]
        clicked_items = slates.items[response.clicked]
        self.creator_dynamics.count(items, clicked_items)
        self._day["impressions"] += n
        per_slot = (batch, 1)
        self.log.append(
            "exposures",
            {
                "request_id": keep(np.repeat(request_id, k)),
                "session_id": keep(np.repeat(active.session_id, k)),
                "user_id": keep(np.repeat(active.user, k)),
                "time": np.full(n, now),
                "day": np.full(n, day, np.int32),
                "page": keep(np.repeat(active.page.astype(np.int16), k)),
                "position": keep(np.tile(np.arange(k, dtype=np.int16), per_slot)),
                "row": keep(np.tile(self.surface.row, per_slot)),
                "col": keep(np.tile(self.surface.col, per_slot)),
                "item_id": items,
                "creator_id": self.catalog.creator[items],
                "score": keep(slates.scores),
                "propensity": keep(slates.propensity),
                "clicked": keep(response.clicked),
                "examined": keep(response.examined),
                "true_utility": keep(response.utility),
            },
        )

    def _consume(self, now, day, request_id, slates: SlateBatch, response) -> np.ndarray:
        rows = np.flatnonzero(response.clicked.any(axis=1))
        if rows.size == 0:
            return rows
        position = response.clicked[rows].argmax(axis=1)
        items = slates.items[rows, position]
        users = self.active.user[rows]
        self.consumed.add(users, items)
        self.user_state.consume(
            users, self.catalog.topics[items], self.scenario.population.satiation_gain
        )
        if self.social is not None:
            self.social.record(users, self.catalog.topics[items])
        if self._taste_start is not None:
            self.user_state.drift(
                users, self.catalog.topics[items], self.scenario.population.taste_drift
            )
        rating = response.rating[rows]
        self._history.append((users, items, np.full(rows.size, now), rating))
        if self.panel is not None:
            self.panel.after_page(users, items, rating, now)
        self._clicks_today.append(items)
        self._day["clicks"] += int(rows.size)
        self.log.append(
            "interactions",
            {
                "request_id": request_id[rows],
                "session_id": self.active.session_id[rows],
                "user_id": users,
                "time": np.full(rows.size, now),
                "day": np.full(rows.size, day, np.int32),
                "position": position.astype(np.int16),
                "item_id": items,
                "creator_id": self.catalog.creator[items],
                "rating": rating,
                "true_utility": response.utility[rows, position],
            },
        )
        return rows

    def _end_sessions(self, ending: np.ndarray, now: float, reason: np.ndarray) -> None:
        active = self.active
        cfg = self.scenario.population
        users = active.user[ending]
        pages = active.page[ending]
        session_value = active.value[ending] / np.maximum(pages, 1)
        state = self.user_state
        rate = cfg.satisfaction_rate
        state.satisfaction[users] = (1 - rate) * state.satisfaction[users] + rate * (
            session_value - cfg.satisfaction_reference
        )
        self.log.append(
            "sessions",
            {
                "session_id": active.session_id[ending],
                "user_id": users,
                "day": (active.start[ending] // DAY).astype(np.int32),
                "start_time": active.start[ending],
                "end_time": np.full(users.shape[0], now),
                "pages": pages.astype(np.int32),
                "clicks": active.clicks[ending],
                "exit_reason": reason,
                "explore": active.explore[ending],
                "satisfaction": state.satisfaction[users].astype(np.float32),
                "llm_user": self.panel.is_llm[users] if self.panel else np.zeros(len(users), bool),
            },
        )
        if self.panel is not None:
            started = time.perf_counter()
            self.panel.end_sessions(users, active.session_id[ending], now)
            self.timings["reflect"] += time.perf_counter() - started
            self._log_llm_calls()
        self._is_active[users] = False
        active.keep(~ending)

    def _review_process(self):
        """Creators' periodic reviews (agents/creator_dynamics.py), with their LLM calls logged."""
        period = self.scenario.creators.period_days * DAY
        while True:
            yield self.env.timeout(period)
            self.creator_dynamics.review(self.env.now, self.env)
            if self.creator_llm is not None:
                self._log_llm_calls(self.creator_llm)

    def _log_llm_calls(self, client=None) -> None:
        records = (client or self.panel.llm.client).drain_records()
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
            },
        )

    def _end_day(self, day: int) -> None:
        self._current_day = day
        # "trending" rows rank by yesterday's clicks
        clicked = np.concatenate(self._clicks_today) if self._clicks_today else np.zeros(0, int)
        self._recent_clicks = np.bincount(clicked, minlength=self.catalog.n).astype(np.float64)
        self._clicks_today = []
        self.user_state.end_of_day(self.scenario.population)
        if self.social is not None:
            self.social.end_of_day()
        self.datacollector.collect(self)
        self._day = dict.fromkeys(self._day, 0)

    # --------------------------------------------------------------------- run
    def run(self) -> None:
        """Simulate the whole horizon and write every table through the event log."""
        env = self.env
        env.process(self._day_process())
        env.process(self._retrain_process())
        env.process(self._review_process())
        for creator in self.creators:
            env.process(creator.upload_process(env, self.catalog, self.scenario.catalog))
        env.process(self._progress_process())
        env.process(self._page_loop())
        try:
            env.run(until=self.horizon_seconds)
            self._finish()
        finally:
            if self.panel is not None:
                self.panel.llm.client.close()
            if self.creator_llm is not None:
                self.creator_llm.close()
            if self.recommender_llm is not None:
                self.recommender_llm.close()

    def _finish(self) -> None:
        if len(self.active):
            n = len(self.active)
            self._end_sessions(np.ones(n, bool), self.horizon_seconds, np.full(n, "horizon"))
        self._end_day(math.ceil(self.scenario.horizon.days) - 1)
        self.creator_dynamics.review(self.horizon_seconds, None, final=True)
        self._write_static_tables()

    def _write_users_end(self) -> None:
        """How far each user's taste drifted over the run (only when taste drift is on)."""
        start, end = self._taste_start, self.user_state.taste
        if start is None:
            return
        norms = np.linalg.norm(start, axis=1) * np.linalg.norm(end, axis=1)
        cosine = (start * end).sum(axis=1) / np.maximum(norms, 1e-12)
        self.log.append(
            "users_end",
            {
                "user_id": np.arange(start.shape[0], dtype=np.int64),
                "clicks": self.consumed.count.astype(np.int64),
                "drift_distance": np.linalg.norm(end - start, axis=1).astype(np.float32),
                "drift_cosine": cosine.astype(np.float32),
                "start_topic": start.argmax(axis=1).astype(np.int16),
                "end_topic": end.argmax(axis=1).astype(np.int16),
            },
        )

    def _write_static_tables(self) -> None:
        self._write_users_end()
        catalog = self.catalog
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
        creators = list(self.creators)
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
        if self.panel is not None:
            personas = list(self.panel.llm.personas.values())
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
        frame = self.datacollector.get_model_vars_dataframe()
        self.log.append("daily", {name: frame[name].to_numpy() for name in frame.columns})


def _check_slates(slates: SlateBatch, batch: int, k: int, recommender: str) -> None:
    """Catch a broken recommender at the first bad batch, with its name in the message."""
    for name in ("items", "scores", "propensity"):
        shape = getattr(slates, name).shape
        if shape != (batch, k):
            raise ValueError(
                f"recommender {recommender!r} returned {name} of shape {shape}, "
                f"expected {(batch, k)}"
            )
