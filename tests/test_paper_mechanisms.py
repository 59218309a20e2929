"""Hand-computed checks of the paper-reproduction mechanisms (issue: seed studies, part 2):
daily rhythm and clock profiles, instructions near disengagement, the instructable, hour-aware,
cluster-exploration and novelty-aware recommenders, and the retention metrics."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from recarena.agents.users.daily_rhythm import (
    DailyRhythm,
    circular_kernel,
    fit_clock_profiles,
    hour_of_day,
)
from recarena.agents.users.instructions import InstructingPolicy, decide_instructions
from recarena.analysis.metrics_retention import (
    _return_within,
    arm_preference,
    instruction_heard_users,
)
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.exploration import explore_slots
from recarena.recommenders.hour_aware import clock_lift
from recarena.recommenders.instructable import Instructable, InstructableParams, instruction_term
from recarena.recommenders.novelty_aware import session_propensity
from recarena.recommenders.pool_rerank import top_k_of_pool
from recarena.simulator.core.behaviour_spec import DailyRhythmSpec, InstructionSpec
from recarena.simulator.core.instructions import (
    LESS_OF_TOPIC,
    MORE_NOVEL,
    MORE_OF_TOPIC,
    NO_INSTRUCTION,
    SOMETHING_DIFFERENT,
    Instructions,
)
from recarena.simulator.core.scenario import dump_scenario
from recarena.simulator.core.types import (
    CatalogView,
    FeedbackBatch,
    PageBatch,
    RequestBatch,
    ResponseBatch,
    SlateBatch,
)
from recarena.simulator.engine.arrivals import DAY, Arrivals
from recarena.simulator.engine.behaviour_hooks import reshape_arrivals
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.model import SimulationModel
from recarena.simulator.runner.resolve import parse_scenario
from tests.catalog_view import topics_catalog

# ----------------------------------------------------------------------------- daily rhythm


def test_circular_kernel_wraps_around_midnight():
    kernel = circular_kernel(1.0)
    assert np.allclose(kernel.sum(axis=1), 1.0)
    assert kernel[0, 23] == pytest.approx(kernel[0, 1])  # 23:00 is one hour from 00:00
    assert kernel[0, 1] / kernel[0, 0] == pytest.approx(np.exp(-0.5))


def test_hour_of_day():
    assert hour_of_day(8 * 3600 + 59) == 8
    assert hour_of_day(DAY + 23.5 * 3600) == 23
    assert hour_of_day(0.0, utc_offset_hours=-1) == 23


def test_warp_is_identity_for_a_flat_profile_and_lands_in_the_hour_of_a_peaked_one():
    flat = np.linspace(0, 1, 25)[None, :]
    spike = np.zeros((1, 25))
    spike[0, 6:] = 1.0  # all mass in hour 5
    rhythm = DailyRhythm(np.vstack([flat, spike]), None, np.array([0.0, 5.0]))
    u = np.array([0.0, 0.25, 0.5, 0.99])
    assert np.allclose(rhythm.warp(np.zeros(4, np.int64), u), u)
    warped = rhythm.warp(np.ones(4, np.int64), u)
    assert np.all((warped >= 5 / 24) & (warped < 6 / 24))
    assert np.all(np.diff(warped) >= 0)  # monotone: the draw keeps its meaning


def test_fit_clock_profiles_recovers_synthetic_rhythms():
    """Users drawn with known preferred hours; the fitted start profiles peak there."""
    spec = DailyRhythmSpec(peak_hours=[7.0, 19.0], spread_hours=2.0, width_hours=1.0, floor=0.0)
    rhythm = DailyRhythm.generate(spec, 50, 4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    user = np.repeat(np.arange(50), 200)
    seconds = rhythm.warp(user, rng.random(user.size)) * DAY + rng.integers(0, 30, user.size) * DAY
    profiles = fit_clock_profiles(user, seconds, 50, width_hours=1.0, prior=0.0)
    peak = profiles.start.argmax(axis=1) + 0.5
    distance = np.abs(peak - rhythm.preferred_hour) % 24
    distance = np.minimum(distance, 24 - distance)
    assert np.median(distance) <= 1.0
    assert np.allclose(profiles.start.sum(axis=1), 1.0)


def test_fit_clock_profiles_topic_by_hour():
    # one user: topic 0 at 08:00, topic 1 at 20:00
    seconds = np.array([8, 8, 8, 20, 20, 20]) * 3600.0
    topics = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], float)
    profiles = fit_clock_profiles(np.zeros(6, np.int64), seconds, 1, 1.0, topics, prior=0.0)
    assert profiles.topic is not None
    assert profiles.topic[0, 8, 0] > 0.99 and profiles.topic[0, 20, 1] > 0.99
    assert profiles.topic[0, 14, 0] == pytest.approx(0.5)  # equidistant: even split


def test_retune_moves_taste_between_hours():
    topic = np.zeros((1, 24, 2), np.float32)
    topic[0, 8] = [1.0, -1.0]
    topic[0, 9] = [0.5, 0.0]
    rhythm = DailyRhythm(np.linspace(0, 1, 25)[None, :], topic, np.zeros(1))
    taste = np.zeros((1, 2), np.float32)
    rhythm.retune(taste, None, 8)
    assert taste.tolist() == [[1.0, -1.0]]
    rhythm.retune(taste, 8, 9)
    assert taste.tolist() == [[0.5, 0.0]]


def test_generated_topic_clock_is_zero_mean_over_the_day():
    spec = DailyRhythmSpec(topic_amplitude=1.5)
    rhythm = DailyRhythm.generate(spec, 10, 3, np.random.default_rng(2))
    assert rhythm.topic is not None and rhythm.topic.shape == (10, 24, 3)
    assert np.allclose(rhythm.topic.mean(axis=1), 0.0, atol=1e-5)
    assert rhythm.topic.max() == pytest.approx(1.5, rel=1e-5)


def test_reshape_arrivals_sorts_and_drops_past_a_partial_day():
    spike = np.zeros((2, 25))
    spike[0, 21:] = 1.0  # user 0: hour 20
    spike[1, 3:] = 1.0  # user 1: hour 2
    rhythm = DailyRhythm(spike, None, np.array([20.0, 2.0]))
    arrivals = Arrivals(
        np.array([0, 1], np.int64),
        np.array([DAY + 100.0, DAY + 200.0]),
        np.array([True, False]),
        np.array([7, 8], np.int64),
    )
    full = reshape_arrivals(rhythm, arrivals, 1, DAY)
    assert full.session_id.tolist() == [8, 7]  # the 02:00 user now comes first
    assert (full.start - DAY) // 3600 == pytest.approx([2, 20])
    half = reshape_arrivals(rhythm, arrivals, 1, DAY / 2)  # the horizon ends at noon
    assert half.session_id.tolist() == [8]


# ----------------------------------------------------------------------------- instructions

SPEC = InstructionSpec(
    threshold=0.5, satiation_cut=0.3, concentration=0.4, familiar_cut=0.5, missing_share=0.1
)


def test_decide_instructions_hand_cases():
    page = np.array(
        [
            [0.9, 0.1, 0.0],  # explore session, page looks like history -> more_novel
            [0.8, 0.2, 0.0],  # satiated with dominant topic 0 -> less_of_topic 0
            [0.5, 0.5, 0.0],  # best topic 2 absent -> more_of_topic 2
            [0.5, 0.45, 0.05],  # nothing specific -> something_different
        ]
    )
    satiation = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0, 0], [0.1, 0.1, 0.1]], float)
    taste = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0.9, 0.0]], float)
    familiarity = np.array([[5, 0, 0], [5, 0, 0], [1, 1, 0], [1, 1, 0]], float)
    explore = np.array([True, False, False, False])
    out = decide_instructions(page, satiation, taste, familiarity, explore, SPEC)
    assert out.kind.tolist() == [MORE_NOVEL, LESS_OF_TOPIC, MORE_OF_TOPIC, SOMETHING_DIFFERENT]
    assert out.topic.tolist() == [-1, 0, 2, -1]


class _FixedPolicy:
    """Answers every page with a preset fatigue, click pattern and leave flag."""

    def __init__(self) -> None:
        self.fatigue = np.zeros(1, np.float32)
        self.clicked = np.zeros((1, 2), bool)
        self.leave = np.zeros(1, bool)

    def respond(self, pages: PageBatch) -> ResponseBatch:
        return ResponseBatch(
            examined=np.ones((1, 2), bool),
            clicked=self.clicked.copy(),
            utility=np.zeros((1, 2), np.float32),
            rating=np.full(1, np.nan, np.float32),
            leave=self.leave.copy(),
            fatigue=self.fatigue.copy(),
            extra={"value": np.zeros(1)},
        )

    def utility(self, users, items, explore):
        return np.zeros(items.shape, np.float32)


def _page(session: int, page: int, catalog: CatalogView) -> PageBatch:
    requests = RequestBatch(
        0.0, np.array([0]), np.array([session]), np.array([page]), 2, catalog,
        np.full((1, 1), -1),
    )  # fmt: skip
    slates = SlateBatch(np.array([[0, 1]]), np.zeros((1, 2), np.float32), np.ones((1, 2)))
    return PageBatch(
        requests, slates, np.zeros(1, bool), np.zeros(1, np.float32), np.zeros(1, np.uint64),
        np.ones((1, 2), bool),
    )  # fmt: skip


def test_instructing_policy_speaks_once_gives_grace_and_relief():
    from recarena.agents.users.population import UserState

    users = UserState(
        taste=np.array([[1.0, 0.0]], np.float32), activity=np.ones(1), explore_prob=np.zeros(1),
        satiation=np.zeros((1, 2), np.float32), familiarity=np.zeros((1, 2), np.float32),
        satisfaction=np.zeros(1), last_topic=np.full(1, -1),
    )  # fmt: skip
    catalog = topics_catalog(np.array([[0.0, 1.0], [0.0, 1.0]]))
    catalog_wrap = SimpleNamespace(topics=catalog.topics)
    inner = _FixedPolicy()
    policy = InstructingPolicy(inner, users, catalog_wrap, SPEC)  # type: ignore[arg-type]

    inner.fatigue[:] = 0.5  # leave p = 1 - e^-0.5 = 0.39 < 0.5: silent
    quiet = policy.respond(_page(1, 0, catalog))
    assert quiet.extra["instruction_kind"].tolist() == [NO_INSTRUCTION]

    inner.fatigue[:] = 0.8  # leave p = 0.55: speaks; best topic 0 absent -> more_of_topic 0
    inner.leave[:] = True
    spoke = policy.respond(_page(1, 1, catalog))
    assert spoke.extra["instruction_kind"].tolist() == [MORE_OF_TOPIC]
    assert spoke.extra["instruction_topic"].tolist() == [0]
    assert spoke.extra["leave_probability"][0] == pytest.approx(1 - np.exp(-0.8), rel=1e-6)
    assert not spoke.leave[0]  # grace: stays for one more page

    inner.fatigue[:] = 1.0
    inner.clicked[0, 0] = True  # the next page is clicked: heard
    heard = policy.respond(_page(1, 2, catalog))
    assert not heard.leave[0]
    assert heard.fatigue[0] == pytest.approx(0.5)  # relief 0.5 off 1.0
    assert heard.extra["instruction_kind"].tolist() == [NO_INSTRUCTION]  # once per session

    inner.clicked[:] = False
    again = policy.respond(_page(2, 0, catalog))  # a new session may speak again
    assert again.extra["instruction_kind"].tolist() == [MORE_OF_TOPIC]


# ----------------------------------------------------------------------------- recommenders


def test_instruction_term_hand_values():
    candidates = np.array([[[1.0, 0.0], [0.0, 1.0]]] * 4)  # [4, 2, 2]
    kind = np.array([LESS_OF_TOPIC, MORE_OF_TOPIC, MORE_NOVEL, SOMETHING_DIFFERENT], np.int8)
    topic = np.array([0, 1, -1, -1], np.int16)
    history = np.array([[1.0, 0.0]] * 4)
    last_page = np.array([[0.0, 1.0]] * 4)
    term = instruction_term(kind, topic, candidates, history, last_page)
    assert term.tolist() == [[-1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]


def _ctx(n_users: int, n_topics: int) -> RecommenderContext:
    return RecommenderContext(np.random.default_rng(0), n_users, n_topics)


def test_instructable_follows_then_expires():
    catalog = topics_catalog(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    params = InstructableParams(base="popularity", strength=2.0, ttl_pages=1, candidates=4)
    rec = Instructable(params, _ctx(1, 2))
    from recarena.simulator.core.types import Interactions

    rec.fit(Interactions(np.zeros(3, np.int64), np.array([0, 0, 1]), np.zeros(3), np.ones(3)))
    requests = RequestBatch(
        0.0, np.array([0]), np.array([1]), np.array([0]), 2, catalog, np.full((1, 1), -1)
    )
    base = rec.recommend(requests)
    assert base.items.tolist() == [[0, 1]]  # most clicked first
    said = Instructions(np.array([LESS_OF_TOPIC], np.int8), np.array([0], np.int16))
    rec.update(FeedbackBatch(requests, base, np.zeros((1, 2), bool), instructions=said))
    followed = rec.recommend(requests)
    assert set(followed.items[0].tolist()) == {2, 3}  # topic 0 sank below topic 1
    rec.update(FeedbackBatch(requests, followed, np.zeros((1, 2), bool)))
    assert rec.recommend(requests).items.tolist() == [[0, 1]]  # ttl 1: back to the base


def test_top_k_of_pool_keeps_base_order_on_ties():
    pool = SlateBatch(np.array([[5, 3, 9, -1]]), np.zeros((1, 4), np.float32), np.ones((1, 4)))
    out = top_k_of_pool(pool, np.array([[0.5, 0.5, 0.9, 1.0]]), 3)
    assert out.items.tolist() == [[9, 5, 3]]  # padding never wins, ties keep base order


def test_explore_slots_takes_least_shown_clusters_one_each():
    cluster = np.array([[0, 0, 1, 1, 2]])
    shown = np.array([[5, 5, 0, 0, 1]])  # cluster 1 never shown, cluster 2 once
    relevance = np.array([[1.0, 0.9, 0.2, 0.3, 0.8]])
    taken = np.array([[True, False, False, False, False]])
    picks = explore_slots(cluster, shown, relevance, taken, 3)
    assert picks.tolist() == [[3, 4, 1]]  # best of cluster 1, then cluster 2, then cluster 0


def test_session_propensity_hand_values():
    # trait (1+1)/(2+2) = 0.5; session: 2 novel of 2 -> (2*0.5 + 2) / (2 + 2) = 0.75
    value = session_propensity(np.array([1.0]), np.array([2.0]), np.array([2.0]),
                               np.array([2.0]), 2.0)  # fmt: skip
    assert value.tolist() == [0.75]
    assert session_propensity(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), 2.0)[0] == 0.5


def test_clock_lift_is_zero_without_a_clock():
    """Same topic mix at every hour (and a topic never clicked): no lift anywhere. A lift that
    shrank only the hour level would favour (or punish) unclicked topics at quiet hours."""
    seconds = np.array([8, 8, 20, 20, 12]) * 3600.0
    mixed, third = [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]
    topics = np.array([mixed, mixed, mixed, mixed, third])  # user 1 clicks topic 2 at noon
    users = np.array([0, 0, 0, 0, 1])
    lift = clock_lift(users, seconds, topics, 3, 1.0, prior=3.0)  # user 2 never clicked
    assert np.abs(lift).max() < 1e-9  # topic 2 for user 0 included


def test_clock_lift_signs():
    seconds = np.array([8, 8, 20, 20]) * 3600.0
    topics = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], float)
    lift = clock_lift(np.zeros(4, np.int64), seconds, topics, 1, 1.0, prior=0.0)
    assert lift[0, 8, 0] > 0 > lift[0, 20, 0]
    assert lift[0, 20, 1] > 0 > lift[0, 8, 1]


# ----------------------------------------------------------------------------- metrics


def _logs(sessions: pl.DataFrame, days: int = 10, **tables: pl.DataFrame):
    manifest = {"scenario": {"horizon": {"days": days}}}
    frames = {name: frame.lazy() for name, frame in tables.items()}
    return SimpleNamespace(
        sessions=sessions.lazy(), manifest=manifest, scenario=manifest["scenario"], cells=[],
        point=None, **frames,
    )  # fmt: skip


def test_return_within_hand_values():
    sessions = pl.DataFrame(
        {
            "arm": ["a"] * 4, "rep": [0] * 4, "user_id": [0, 0, 0, 1],
            "start_time": [0.1 * DAY, 1.2 * DAY, 5.0 * DAY, 0.0],
            "end_time": [0.5 * DAY, 1.3 * DAY, 9.5 * DAY, 0.1 * DAY],
        }
    )  # fmt: skip
    per_user = _return_within(1.0)(_logs(sessions)).sort("user_id")  # type: ignore[arg-type]
    # user 0: 0.5 -> 1.2 (followed), 1.3 -> 5.0 (not), 9.5 (censored); user 1: not followed
    assert per_user["num"].to_list() == [1.0, 0.0]
    assert per_user["den"].to_list() == [2.0, 1.0]


def test_instruction_heard_joins_the_next_page():
    instructions = pl.DataFrame(
        {"arm": ["a", "a"], "rep": [0, 0], "user_id": [0, 1], "request_id": [1024, 2048]}
    )
    exposures = pl.DataFrame(
        {"arm": ["a"] * 3, "rep": [0] * 3, "request_id": [1025, 1025, 2049],
         "clicked": [False, True, False]}
    )  # fmt: skip
    logs = _logs(pl.DataFrame(), instructions=instructions, exposures=exposures)
    per_user = instruction_heard_users(logs).sort("user_id")  # type: ignore[arg-type]
    assert per_user["num"].to_list() == [1.0, 0.0]


def test_arm_preference_counts_long_term_users():
    rows = []
    for arm, clicks in (("x", [3, 1, 2]), ("b", [1, 1, 5])):
        for user, c in enumerate(clicks):
            for day in range(7):
                rows.append((arm, 0, user, day, c, 0.0))
    sessions = pl.DataFrame(
        rows, schema=["arm", "rep", "user_id", "day", "clicks", "satisfaction"], orient="row"
    )
    out = arm_preference(_logs(sessions), "x", "b", min_days=7)  # type: ignore[arg-type]
    # user 0 favours x, user 1 ties (0.5), user 2 favours b
    assert out["users"].to_list() == [3]
    assert out["favour_arm"].to_list() == [pytest.approx(0.5)]


# ----------------------------------------------------------------------------- engine


def _run_tables(doc: dict, out: Path, arm: int = 0) -> dict[str, bytes]:
    scenario = parse_scenario(doc)
    out.mkdir(parents=True)
    log = EventLog(out)
    SimulationModel(scenario, arm, 0, log).run()
    log.close()
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.parquet"))}


def test_features_absent_means_no_trace(tiny_doc):
    scenario = parse_scenario(tiny_doc)
    text = dump_scenario(scenario)
    assert "daily_rhythm" not in text and "instructions" not in text


def test_silent_instructions_and_zero_knobs_leave_logs_byte_identical(tmp_path, tiny_doc):
    """The wrappers change nothing until they act: a user who never speaks, and re-rankers with
    their knob at zero, produce the base run's bytes in every table."""
    doc = copy.deepcopy(tiny_doc)
    doc["horizon"]["days"] = 1
    doc["arms"] = [{"name": "p", "recommender": {"type": "popularity"}}]
    base = _run_tables(doc, tmp_path / "base")
    silent = copy.deepcopy(doc)
    silent["population"]["instructions"] = {"threshold": 0.999999, "relief": 0.0}
    assert _run_tables(silent, tmp_path / "silent") == base
    for kind, params in (
        ("instructable", {"strength": 0.0}),
        ("hour_aware", {"weight": 0.0}),
        ("cluster_explore", {"exploration": 0.0}),
        ("novelty_aware", {"mix": 0.0}),
    ):
        knob = copy.deepcopy(doc)
        knob["arms"] = [
            {"name": "p", "recommender": {"type": kind, "params": {"base": "popularity", **params}}}
        ]
        assert _run_tables(knob, tmp_path / kind) == base, kind


def test_rhythm_and_instructions_run_end_to_end(tmp_path, tiny_doc):
    doc = copy.deepcopy(tiny_doc)
    doc["horizon"]["days"] = 1
    doc["population"]["daily_rhythm"] = {"peak_hours": [9.0], "spread_hours": 0.5,
                                         "width_hours": 1.0, "floor": 0.0,
                                         "topic_amplitude": 1.0}  # fmt: skip
    doc["population"]["instructions"] = {}
    doc["arms"] = [
        {"name": "i", "recommender": {"type": "instructable", "params": {"base": "popularity"}}}
    ]
    _run_tables(doc, tmp_path / "run")
    sessions = pl.read_parquet(tmp_path / "run" / "sessions.parquet")
    hours = (sessions["start_time"] % DAY) // 3600
    assert ((hours >= 6) & (hours <= 12)).mean() > 0.9  # everyone keeps morning hours
    said = pl.read_parquet(tmp_path / "run" / "instructions.parquet")
    assert said.height > 0
    assert set(said["kind"]) <= {"more_novel", "less_of_topic", "more_of_topic",
                                 "something_different"}  # fmt: skip
    assert (said["leave_probability"] >= 0.5).all()


def test_start_hours_from_a_csv_draws_users_around_the_data_peak(tmp_path):
    """Calibration path: every event at 21:xx UTC, so users' preferred hours land at 21."""
    csv = tmp_path / "ratings.csv"
    stamps = 21 * 3600 + np.arange(0, 86_400 * 30, 86_400) + 600
    csv.write_text("userId,timestamp\n" + "\n".join(f"1,{s}" for s in stamps))
    spec = DailyRhythmSpec(start_hours_from=str(csv), width_hours=0.2, utc_offset_hours=1.0)
    rhythm = DailyRhythm.generate(spec, 40, 2, np.random.default_rng(3))
    assert np.all(np.floor(rhythm.preferred_hour) == 22)  # 21 UTC + 1 h offset


def test_active_days_instructions_per_session_and_novelty_ctr_hand_values():
    from recarena.analysis.metrics_retention import (
        _ctr_sessions,
        active_days_users,
        instructions_per_session_users,
    )

    sessions = pl.DataFrame(
        {
            "arm": ["a"] * 4, "rep": [0] * 4, "user_id": [0, 0, 0, 1], "day": [0, 0, 3, 1],
            "explore": [True, False, True, False], "clicks": [2, 1, 0, 3], "pages": [4, 2, 2, 3],
        }
    )  # fmt: skip
    instructions = pl.DataFrame({"arm": ["a"] * 3, "rep": [0] * 3, "user_id": [0, 0, 1]})
    logs = _logs(sessions, instructions=instructions)
    days = active_days_users(logs).sort("user_id")  # type: ignore[arg-type]
    assert days["num"].to_list() == [2.0, 1.0]  # user 0: days 0 and 3; user 1: day 1
    said = instructions_per_session_users(logs).sort("user_id")  # type: ignore[arg-type]
    assert said["num"].to_list() == [2.0, 1.0] and said["den"].to_list() == [3.0, 1.0]
    novel = _ctr_sessions(True)(logs).sort("user_id")  # type: ignore[arg-type]
    assert novel["num"].to_list() == [2.0] and novel["den"].to_list() == [6.0]
    routine = _ctr_sessions(False)(logs).sort("user_id")  # type: ignore[arg-type]
    assert routine["num"].to_list() == [1.0, 3.0] and routine["den"].to_list() == [2.0, 3.0]


def test_cluster_explore_with_each_users_own_knob():
    """Items 0-7 in four one-hot clusters {0,1} {2,3} {4,5} {6,7}, popularity order 0..7.
    Settings 0.1 and 0.3 (mean 0.2) with exploration 0.5 give shares 0.25 and 0.75: one and
    three exploratory slots on a page of 4."""
    from recarena.recommenders.exploration import ClusterExplore, ClusterExploreParams
    from recarena.simulator.core.types import Interactions

    catalog = topics_catalog(np.repeat(np.eye(4), 2, axis=0))
    ctx = RecommenderContext(
        np.random.default_rng(0), 2, 4, exploration_setting=np.array([0.1, 0.3])
    )

    def build(knob: str) -> ClusterExplore:
        params = ClusterExploreParams(base="popularity", exploration=0.5, clusters=4,
                                      candidates=8, knob=knob)  # fmt: skip
        rec = ClusterExplore(params, ctx)
        item = np.repeat(np.arange(8), np.arange(8, 0, -1))
        rec.fit(Interactions(item * 0, item, np.zeros(item.size), np.ones(item.size)))
        return rec

    requests = RequestBatch(
        0.0, np.array([0, 1]), np.array([1, 2]), np.array([0, 0]), 4, catalog,
        np.full((2, 1), -1),
    )  # fmt: skip
    for knob in ("user", "arm"):
        rec = build(knob)
        rec.recommend(requests)  # clusters the catalog
        shown = SlateBatch(np.array([[0, 1, 2, 3]] * 2), np.zeros((2, 4), np.float32),
                           np.ones((2, 4)))  # fmt: skip
        rec.update(FeedbackBatch(requests, shown, np.zeros((2, 4), bool)))
        page = rec.recommend(requests).items.tolist()
        if knob == "user":
            # user 0 keeps the base's best 3 and explores cluster {4,5}; user 1 keeps 1 and
            # explores {4,5}, {6,7}, then the more relevant of the clusters shown twice ({0,1})
            assert page == [[0, 1, 2, 4], [0, 4, 6, 1]]
            assert rec.share.tolist() == [0.25, 0.75]
        else:
            assert page == [[0, 1, 4, 6], [0, 1, 4, 6]]  # everyone: 2 exploratory slots
    with pytest.raises(ValueError, match="knob: user needs"):
        ClusterExplore(ClusterExploreParams(base="popularity", knob="user"), _ctx(2, 4))
