"""Creator strategies, leaving and joining, the creator_periods table and its metrics."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.agents.creators.strategies import (
    BoundedRational,
    BoundedRationalParams,
    ChasingParams,
    CreatorDecision,
    EngagementChasing,
    ExposureChasing,
    LLMParams,
    LLMStrategy,
    PeriodStats,
    StaticParams,
    StaticStrategy,
)
from recarena.agents.llm.client import Structured
from recarena.analysis.load import RunLogs, load
from recarena.analysis.metrics import compute_metrics
from recarena.analysis.metrics_creators import drift_decomposition
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.rng import generator
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]
BASE_COMMIT = "75797b1"  # the last commit before creator strategies existed
DAY = 86_400.0


def stats(exposure, clicks=None, items=None) -> PeriodStats:
    exposure = np.asarray(exposure, float)
    clicks = np.zeros_like(exposure) if clicks is None else np.asarray(clicks, float)
    items = np.ones_like(exposure) if items is None else np.asarray(items, float)
    return PeriodStats(exposure, clicks, items)


class ScriptedRng:
    """Hands out fixed uniforms, so the bounded-rational rule can be checked by hand."""

    def __init__(self, *draws) -> None:
        self.draws = [np.asarray(d, float) for d in draws]

    def random(self, n):
        out = self.draws.pop(0)
        assert out.shape == (n,)
        return out


# ---------------------------------------------------------------- update rules
def test_static_keeps_the_mix():
    mix = np.array([[1.0, 0.0], [0.3, 0.7]])
    update = StaticStrategy(StaticParams()).update(mix, stats([[5, 9], [1, 0]]), None)
    np.testing.assert_array_equal(update.mix, mix)
    assert list(update.move) == ["stay", "stay"]


def test_exposure_chasing_moves_toward_the_best_yield_per_item():
    mix = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    # creator 0: topic 0 has 5 items with 10 views (2/item), topic 1 one item with 30 views
    # creator 1: no exposure at all -> no signal, stays
    period = stats([[10, 30, 0], [0, 0, 0]], items=[[5, 1, 0], [2, 2, 0]])
    update = ExposureChasing(ChasingParams(rate=0.3)).update(mix, period, None)
    np.testing.assert_allclose(update.mix, [[0.7, 0.3, 0.0], [0.5, 0.5, 0.0]], atol=1e-12)
    assert list(update.move) == ["toward:1", "stay"]


def test_exposure_chasing_softmax_target():
    mix = np.array([[1.0, 0.0]])
    period = stats([[4, 4]], items=[[2, 2]])  # equal yields: softmax target is (0.5, 0.5)
    params = ChasingParams(rate=0.5, target="softmax", temperature=1.0)
    update = ExposureChasing(params).update(mix, period, None)
    np.testing.assert_allclose(update.mix, [[0.75, 0.25]], atol=1e-12)


def test_platform_scope_follows_the_platform_trend_not_the_own_yield():
    mix = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # own yields point to topic 0 (creator 0) and topic 2 (creator 1); the platform's exposure
    # is mostly on topic 1 (shares 0.1/0.8/0.1), so with a one-hot target both move toward it
    period = PeriodStats(
        np.array([[9.0, 0, 0], [0, 0, 3.0]]),
        np.zeros((2, 3)),
        np.ones((2, 3)),
        platform_exposure=np.array([10.0, 80.0, 10.0]),
        platform_clicks=np.zeros(3),
    )
    trend = ExposureChasing(ChasingParams(rate=0.5, scope="platform")).update(mix, period, None)
    np.testing.assert_allclose(trend.mix, [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]], atol=1e-12)
    assert list(trend.move) == ["toward:1", "toward:1"]
    own = ExposureChasing(ChasingParams(rate=0.5)).update(mix, period, None)
    assert list(own.move) == ["toward:0", "toward:2"]


def test_engagement_chasing_follows_clicks_not_views():
    mix = np.array([[0.5, 0.5]])
    period = stats([[100, 10]], clicks=[[1, 5]], items=[[1, 1]])
    engaged = EngagementChasing(ChasingParams(rate=0.4)).update(mix, period, None)
    exposed = ExposureChasing(ChasingParams(rate=0.4)).update(mix, period, None)
    np.testing.assert_allclose(engaged.mix, [[0.3, 0.7]], atol=1e-12)
    np.testing.assert_allclose(exposed.mix, [[0.7, 0.3]], atol=1e-12)


def test_bounded_rational_moves_with_probability_one_minus_inertia():
    mix = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    period = stats([[3, 3], [3, 3], [0, 0]])  # equal yields: logit choice (0.5, 0.5)
    params = BoundedRationalParams(inertia=0.5, step=0.5, temperature=1.0)
    # u_move: creator 0 moves, 1 keeps (0.1 < inertia), 2 has no signal;
    # u_pick 0.6 > cdf[0] = 0.5 -> topic 1 for creator 0
    rng = ScriptedRng([0.9, 0.1, 0.9], [0.6, 0.6, 0.2])
    update = BoundedRational(params).update(mix, period, rng)
    np.testing.assert_allclose(update.mix, [[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]], atol=1e-12)
    assert list(update.move) == ["pick:1", "stay", "stay"]


class StubClient:
    """Answers like LLMClient.structured/run; ``None`` entries are failed calls."""

    def __init__(self, answers) -> None:
        self.answers = list(answers)
        self.prompts = []

    async def structured(self, messages, schema, context, check=None):
        self.prompts.append(messages[-1]["content"])
        answer = self.answers.pop(0)
        if answer is not None:
            assert schema is CreatorDecision and check(answer) is None
        return Structured(answer)

    def run(self, calls):
        import asyncio

        async def gather():
            return await asyncio.gather(*calls)

        return asyncio.run(gather())


def test_llm_strategy_applies_the_answer_capped_and_falls_back_to_static():
    mix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    client = StubClient([CreatorDecision(focus_topic=2, change=0.8), None])
    strategy = LLMStrategy(LLMParams(max_change=0.5), client)
    update = strategy.update(mix, stats([[7, 0, 0], [0, 2, 0]]), None)
    np.testing.assert_allclose(update.mix, [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]], atol=1e-12)
    assert list(update.move) == ["focus:2", "fallback"]
    assert "topic 0: 1 items, 7 views" in client.prompts[0]


def test_bad_strategy_is_one_clear_error(tiny_doc):
    tiny_doc["creators"]["strategy"] = {"type": "exposure_chasing", "params": {"rate": 2}}
    with pytest.raises(RecarenaError) as info:
        parse_scenario(tiny_doc, "x.yaml")
    assert str(info.value) == (
        "x.yaml: creators.strategy.params.rate: Input should be less than or equal to 1 (got 2)"
    )
    tiny_doc["creators"]["strategy"] = {"type": "clairvoyant"}
    with pytest.raises(RecarenaError, match="unknown creator strategy 'clairvoyant'"):
        parse_scenario(tiny_doc)


@pytest.mark.parametrize("kind", ["exposure_chasing", "tests.plugin_kinds:Stubborn"])
def test_misspelt_strategy_param_gets_the_close_name(tiny_doc, kind):
    """Was: 'creators.strategy: exposure_chasing params: rat: Extra inputs are not permitted'
    (pydantic's words, no suggestion), where an arm's recommender params named the path and
    the close key."""
    key, close = ("rat", "rate") if kind == "exposure_chasing" else ("intrest", None)
    tiny_doc["creators"]["strategy"] = {"type": kind, "params": {key: 0.5}}
    with pytest.raises(RecarenaError) as info:
        parse_scenario(tiny_doc, "x.yaml")
    hint = f"; did you mean {close!r}?" if close else ""
    assert str(info.value) == f"x.yaml: creators.strategy.params.{key}: unknown key{hint}"


# ---------------------------------------------------------------- the engine
ADAPTIVE = {
    "count": 5,
    "uploads_per_day": 3.0,
    "strategy": {"type": "exposure_chasing", "params": {"rate": 0.5, "explore": 0.3}},
    "period_days": 1,
    "min_exposure": 300,
    "leave_after_periods": 2,
    "join_rate_per_period": 1.5,
}


def _run(doc: dict, out: Path) -> RunLogs:
    run_experiment(parse_scenario(doc), out, executor="local")
    return load(out)


@pytest.fixture(scope="module")
def adaptive_logs(tmp_path_factory) -> RunLogs:
    doc = copy.deepcopy(TINY)
    doc.update(replicates=1, horizon={"days": 4, "tick_seconds": 300})
    doc["population"] = {"users": 200}
    doc["creators"] = dict(ADAPTIVE)
    return _run(doc, tmp_path_factory.mktemp("adaptive") / "run")


def test_creator_periods_exposure_adds_up_to_the_exposures_table(adaptive_logs):
    periods = adaptive_logs.creator_periods.collect()
    exposures = adaptive_logs.exposures.with_columns(
        (pl.col("time") // DAY).cast(pl.Int32).alias("period")
    )
    counted = exposures.group_by("arm", "rep", "creator_id", "period").agg(pl.len().alias("n"))
    joined = (
        periods.lazy()
        .join(counted, on=["arm", "rep", "creator_id", "period"], how="full", coalesce=True)
        .collect()
    )
    assert joined["n"].fill_null(0).to_list() == joined["exposure"].to_list()
    assert periods["period"].max() == 3  # four one-day periods, the last closed by the horizon
    clicks = adaptive_logs.interactions.group_by("arm", "creator_id").agg(pl.len().alias("n"))
    per_creator = periods.group_by("arm", "creator_id").agg(pl.col("clicks").sum())
    check = per_creator.lazy().join(clicks, on=["arm", "creator_id"], how="left").collect()
    assert check["n"].fill_null(0).to_list() == check["clicks"].to_list()


def test_creators_leave_after_consecutive_low_periods_and_stop_uploading(adaptive_logs):
    periods = adaptive_logs.creator_periods.sort("arm", "creator_id", "period").collect()
    left_any = False
    for (_, _), rows in periods.group_by("arm", "creator_id", maintain_order=True):
        low = 0
        active = True
        for row in rows.iter_rows(named=True):
            if active:
                if row["period"] < 3:  # the horizon's closing period does not count
                    low = low + 1 if row["exposure"] < ADAPTIVE["min_exposure"] else 0
                    active = low < ADAPTIVE["leave_after_periods"]
            assert row["active"] == active
            assert row["low_periods"] == low
        if not active:
            left_any = True
            assert rows["left_day"].drop_nulls().unique().to_list() == [
                float(rows.filter(~pl.col("active"))["day"][0])
            ]
    assert left_any
    # a creator that left uploads nothing afterwards (its items stay in the catalog)
    left = (
        periods.filter(~pl.col("active"))
        .group_by("arm", "creator_id")
        .agg(pl.col("left_day").first())
    )
    items = adaptive_logs.items.collect().join(left, on=["arm", "creator_id"])
    assert items.height > 0
    assert (items["created_at"] <= items["left_day"] * DAY).all()


def test_joins_follow_the_seed_and_are_the_same_in_every_arm(adaptive_logs):
    periods = adaptive_logs.creator_periods.collect()
    joined = (
        periods.filter(pl.col("joined_day") > 0)
        .group_by("arm", "creator_id")
        .agg(pl.col("joined_day").first())
        .sort("arm", "creator_id")
    )
    rng = generator(TINY["seed"], 0, "creators", 0)
    expected_days = []
    for review in range(3):  # reviews at the end of days 1, 2, 3 (not at the horizon)
        count = int(rng.poisson(ADAPTIVE["join_rate_per_period"]))
        rng.choice(8, size=count)  # topic, quality and rate draws that follow
        rng.normal(size=count)
        rng.lognormal(size=count)
        expected_days += [float(review + 1)] * count
    assert len(expected_days) > 0
    for arm in ("random", "popularity"):
        mine = joined.filter(arm=arm)
        assert mine["joined_day"].to_list() == expected_days
        assert mine["creator_id"].to_list() == list(range(5, 5 + len(expected_days)))
    creators = adaptive_logs.creators.filter(pl.col("creator_id") >= 5).collect()
    by_arm = [
        creators.filter(arm=a).select("creator_id", "topic", "quality", "uploads_per_day")
        for a in ("random", "popularity")
    ]
    assert by_arm[0].equals(by_arm[1])


def test_static_default_is_byte_identical_to_before_strategies(tmp_path):
    """The pre-strategy commit and this tree must write the same bytes for every old table."""
    if shutil.which("git") is None:
        pytest.skip("git not available")
    base = tmp_path / "base"
    base.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BASE_COMMIT], capture_output=True, check=False
    )
    if archive.returncode != 0:
        pytest.skip(f"commit {BASE_COMMIT} not in this clone")
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    doc = copy.deepcopy(TINY)
    doc.update(replicates=1, horizon={"days": 2, "tick_seconds": 300}, arms=TINY["arms"][1:])
    doc["population"] = {"users": 150}
    script = (
        "import json, sys; from pathlib import Path;"
        "from simulator.scenario import parse_scenario;"  # the base commit's own layout
        "from simulator.experiment import run_experiment;"
        "run_experiment(parse_scenario(json.loads(sys.argv[2])), Path(sys.argv[1]),"
        " executor='local')"
    )
    env = {**os.environ, "PYTHONPATH": str(base)}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "old"), json.dumps(doc)],
        cwd=base,
        env=env,
        check=True,
        capture_output=True,
    )
    run_experiment(parse_scenario(doc), tmp_path / "new", executor="local")
    old_files = sorted(
        p.relative_to(tmp_path / "old") for p in (tmp_path / "old").rglob("*.parquet")
    )
    assert len(old_files) == 8  # every table of the base commit
    for rel in old_files:
        if rel.name == "llm_calls.parquet":  # log format 2 added its scoring-mode columns
            continue
        assert (tmp_path / "old" / rel).read_bytes() == (tmp_path / "new" / rel).read_bytes(), rel
    cell = Path("arm=popularity") / "rep=0" / "creator_periods.parquet"
    assert (tmp_path / "new" / cell).exists() and not (tmp_path / "old" / cell).exists()
    old = load(tmp_path / "old")  # a run from before the table existed still loads
    assert old.creator_periods.collect().height == 0


def test_llm_creators_run_against_an_endpoint_and_fall_back_when_answers_are_invalid(
    tmp_path, monkeypatch
):
    """The fake answers every prompt with a page choice, which is not a CreatorDecision: each
    creator's call is repaired once, then the creator keeps its mix; every call is logged."""
    from tests.fake_openai import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    doc = copy.deepcopy(TINY)
    doc.update(replicates=1, horizon={"days": 2, "tick_seconds": 600}, arms=TINY["arms"][:1])
    doc["population"] = {"users": 60}
    doc["creators"] = {"count": 3, "strategy": {"type": "llm"}, "period_days": 1}
    with FakeOpenAI(["ok"]) as fake:
        doc["llm"] = {
            "provider": "openai",
            "model": "fake",
            "base_url": fake.base_url,
            "decision": "generate",  # JSON answers (scoring: tests/test_llm_scoring.py)
            "max_retries": 0,
            "cache": {"path": str(tmp_path / "cache.sqlite")},
        }
        logs = _run(doc, tmp_path / "run")
    periods = logs.creator_periods.sort("period", "creator_id").collect()
    assert periods["move"].to_list() == ["fallback"] * 3 + ["final"] * 3
    assert periods["mix_entropy"].to_list() == [0.0] * 6
    calls = logs.llm_calls.collect()
    assert sorted(calls["purpose"].to_list()) == ["creator"] * 3 + ["repair:creator"] * 3
    assert sorted(calls["user_id"].unique().to_list()) == [0, 1, 2]
    assert calls["fallback"].sum() == 3


# ---------------------------------------------------------------- metrics
def _logs(**tables: pl.DataFrame) -> RunLogs:
    empty = pl.DataFrame({"arm": [], "rep": []}, schema={"arm": pl.Utf8, "rep": pl.Int32})
    frames = {
        f.name: (tables.get(f.name, empty)).lazy()
        for f in dataclasses.fields(RunLogs)
        if f.type in ("pl.LazyFrame", pl.LazyFrame)
    }
    return RunLogs(Path("."), {}, [], [], **frames)


def test_creator_metrics_by_hand():
    # one cell, 2 topics, reviews at days 1, 2, 3 (period 2 is the closing row, no decision);
    # creator 3 joins at the last review, so it never decides and is left out of the drift
    mixes = {
        0: [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]],
        1: [[0.0, 1.0], [0.0, 1.0], [0.5, 0.5]],
        2: [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]],
    }
    rows = [
        {
            "creator_id": c,
            "period": p,
            "day": float(p + 1),
            "topic_mix": mix[p],
            "active": not (c == 1 and p == 2),
        }
        for c, mix in mixes.items()
        for p in range(3)
    ] + [{"creator_id": 3, "period": 2, "day": 3.0, "topic_mix": [0.0, 1.0], "active": True}]
    periods = pl.DataFrame(rows).with_columns(
        pl.lit("a").alias("arm"), pl.lit(0, pl.Int32).alias("rep")
    )  # fmt: skip
    items = pl.DataFrame(
        {"arm": ["a", "a"], "rep": [0, 0], "item_id": [10, 11], "topic": [0, 1]},
        schema_overrides={"rep": pl.Int32},
    )
    # period 0 = [0, 1 day): 3 views of topic 0, 1 of topic 1 -> g0 = (0.75, 0.25)
    # period 1 = [1, 2 days): the view at exactly day 1 belongs here (a review runs before
    # its tick's pages): 1 view of topic 0, 3 of topic 1 -> g1 = (0.25, 0.75)
    # the view after the last review belongs to no reviewed period
    views = [(10, 0.2), (10, 0.4), (10, 0.6), (11, 0.9), (11, 1.0), (11, 1.5), (11, 1.6),
             (10, 1.7), (10, 3.5)]  # fmt: skip
    exposures = pl.DataFrame(
        {
            "arm": ["a"] * len(views),
            "rep": [0] * len(views),
            "item_id": [item for item, _ in views],
            "time": [day * DAY for _, day in views],
        },
        schema_overrides={"rep": pl.Int32},
    )
    logs = _logs(creator_periods=periods, items=items, exposures=exposures)
    values = compute_metrics(
        logs, ["creator_churn", "active_creators_end", "topic_drift_to_popular"]
    )
    got = dict(zip(values["metric"], values["value"], strict=True))
    assert got["creator_churn"] == pytest.approx(1 / 4)  # creator 1 left
    assert got["active_creators_end"] == 3
    # Σ_p Δ_p·g_p per creator:
    #   c0: (−.5, .5)·g0 = −0.25, then 0                         -> −0.25
    #   c1: 0, then (.5, −.5)·g1 = 0.125 − 0.375 = −0.25          -> −0.25
    #   c2: (.5, −.5)·g0 = +0.25, then (−1, 1)·g1 = +0.5          -> +0.75
    assert got["topic_drift_to_popular"] == pytest.approx((-0.25 - 0.25 + 0.75) / 3)
    # moved mass: c0 .5, c1 .5, c2 .5 + 1 -> 2.5 over 3 creators. Where it went: .5·g0[1] +
    # .5·g1[0] + .5·g0[0] + 1·g1[1] = .125 + .125 + .375 + .75 = 1.375 -> 1.375 / 2.5 = .55;
    # where it left: .5·.75 + .5·.75 + .5·.25 + 1·.25 = 1.125 -> .45. Drift = 2.5/3 · (.55 − .45)
    parts = drift_decomposition(logs).row(0, named=True)
    assert parts["moved"] == pytest.approx(2.5 / 3)
    assert (parts["went_share"], parts["left_share"]) == (pytest.approx(0.55), pytest.approx(0.45))
    # scored against the whole run's exposure share instead, c2's moves would cancel out:
    # g = (4/8, 4/8) over the 8 views before the last review; that is what the metric avoids
    only_c2 = periods.filter(pl.col("creator_id") == 2)
    logs = _logs(creator_periods=only_c2, items=items, exposures=exposures)
    assert compute_metrics(logs, ["topic_drift_to_popular"])["value"][0] == pytest.approx(0.75)
