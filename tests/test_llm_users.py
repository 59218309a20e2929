"""LLM users against a scripted local fake endpoint: faults, cache modes, replay, accounting."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.agents.llm.cache import CachedCall, CacheMiss, CallCache, call_key
from recarena.agents.users.llm_memory import UserMemory
from recarena.agents.users.personas import data_traits, tertiles
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.fake_openai import PAGE_OK, FakeOpenAI, cell_table

SIM_TABLES = ("exposures", "interactions", "sessions", "items", "personas")

PANEL = {
    "name": "panel",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 120},
    "catalog": {"initial_items": 200, "topics": 8},
    "population": {
        "users": 80,
        "model": "mixed",
        "max_pages": 4,
        "llm_panel": {"users": 3, "reflect_every_sessions": 1},
    },
    "creators": {"count": 4},
    "surface": {"k": 5},
    "llm": {
        "provider": "openai",
        "model": "fake",
        "decision": "generate",  # the JSON mode; scoring has its own tests (test_llm_scoring.py)
        "timeout_seconds": 1.0,  # a loaded CI machine has taken over 0.5 s for an "ok" on loopback
        "backoff_seconds": 0.01,
        "max_retries": 2,
    },
    "arms": [
        {"name": "random", "recommender": {"type": "random"}},
        {"name": "popularity", "recommender": {"type": "popularity"}},
    ],
}


def _run(tmp: Path, base_url: str | None, mode: str, name: str, **changes):
    doc = copy.deepcopy(PANEL)
    doc["llm"]["base_url"] = base_url
    doc["llm"]["cache"] = {"path": str(tmp / "cache.sqlite"), "mode": mode}
    for key, value in changes.items():
        doc[key] = value
    return run_experiment(parse_scenario(doc), tmp / name, executor="local")


def _table(run_dir: Path, table: str) -> pl.DataFrame:
    return cell_table(run_dir, "random", table)


def test_panel_users_follow_the_llm_and_are_logged(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-log")
    with FakeOpenAI(["ok"]) as fake:
        result = _run(tmp_path, fake.base_url, "auto", "run")
    run_dir = result.run_dir
    sessions = _table(run_dir, "sessions")
    panel = sessions.filter(pl.col("llm_user"))
    assert panel["user_id"].n_unique() <= 3 and panel.height > 0
    # the fake always clicks slot 2 and never leaves: every panel page has exactly that click
    exposures = _table(run_dir, "exposures").join(
        panel.select("session_id"), on="session_id", how="semi"
    )
    clicks = exposures.filter(pl.col("clicked"))
    assert clicks.height == exposures["request_id"].n_unique()
    assert set(clicks["position"].to_list()) == {PAGE_OK["click"] - 1}
    examined = exposures.filter(pl.col("examined"))["position"].unique().sort().to_list()
    assert examined == [p - 1 for p in PAGE_OK["examined"]]
    assert set(panel["exit_reason"].to_list()) <= {"max_pages", "horizon"}
    ratings = _table(run_dir, "interactions").join(
        panel.select("session_id"), on="session_id", how="semi"
    )["rating"]
    assert set(ratings.to_list()) == {float(PAGE_OK["rating"])}

    calls = _table(run_dir, "llm_calls")
    pages = calls.filter(pl.col("purpose") == "page")
    assert pages.height == exposures["request_id"].n_unique()  # one call per page
    reflections = calls.filter(pl.col("purpose") == "reflection")
    assert reflections.height == panel.height  # reflect_every_sessions: 1
    assert calls["valid"].all() and not calls["fallback"].any()
    personas = _table(run_dir, "personas")
    assert personas.height == 3 and personas["text"].str.contains("Favourite genres").all()
    accounting = result.manifest["llm"]["accounting"]
    assert accounting["calls"] == sum(
        cell_table(run_dir, arm, "llm_calls").height for arm in ("random", "popularity")
    )
    assert accounting["calls_per_page"] == pytest.approx(
        accounting["calls"] / accounting["llm_pages"], abs=1e-3
    )
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(b"sk-secret-do-not-log" in data for data in written)


def test_faults_are_retried_repaired_and_counted(tmp_path):
    script = ["429", "ok", "500", "ok", "timeout", "ok", "malformed", "ok", "bad", "ok"]
    with FakeOpenAI(script, slow_seconds=1.5) as fake:
        result = _run(tmp_path, fake.base_url, "record", "run")
        calls = pl.concat(
            [cell_table(result.run_dir, arm, "llm_calls") for arm in ("random", "popularity")]
        )
        behaviours = fake.seen(calls["attempts"].sum())
    assert result.manifest["status"] == "complete"
    assert {"429", "500", "timeout", "malformed", "bad"} <= set(behaviours)
    # transport faults cost extra attempts; bad answers cost a repair call
    assert (calls["attempts"] > 1).sum() > 0
    assert calls.filter(pl.col("purpose").str.starts_with("repair:")).height > 0
    invalid = calls.filter(~pl.col("valid"))
    assert invalid["error"].str.contains("not JSON").any()
    assert invalid["error"].str.contains("click|rating|Field required").any()  # schema broken
    assert calls["attempts"].sum() == len(behaviours)  # every request the endpoint saw


def test_persistent_failure_falls_back_to_rules_and_never_fails_the_run(tmp_path):
    with FakeOpenAI(["500"]) as fake:
        result = _run(tmp_path, fake.base_url, "auto", "run")
    calls = _table(result.run_dir, "llm_calls")
    assert result.manifest["status"] == "complete"
    assert calls["fallback"].all() and not calls["valid"].any()
    assert calls["error"].str.contains("HTTP 500").all()
    assert (calls["attempts"] == 3).all()  # 1 + max_retries
    # the fallback pages were answered by the rule policy, so the panel still browsed
    assert _table(result.run_dir, "sessions").filter(pl.col("llm_user")).height > 0
    both = sum(cell_table(result.run_dir, a, "llm_calls").height for a in ("random", "popularity"))
    assert result.manifest["llm"]["accounting"]["fallbacks"] == both > calls.height


def test_replay_is_bit_identical_without_an_endpoint(tmp_path):
    with FakeOpenAI(["ok", "ok", "malformed", "ok"]) as fake:
        recorded = _run(tmp_path, fake.base_url, "record", "recorded")
    replayed = _run(tmp_path, "http://127.0.0.1:9/v1", "replay", "replayed")  # nothing listens
    for arm in ("random", "popularity"):
        for table in SIM_TABLES:
            a = cell_table(recorded.run_dir, arm, table)
            b = cell_table(replayed.run_dir, arm, table)
            assert a.equals(b), (arm, table)
        calls_a = cell_table(recorded.run_dir, arm, "llm_calls").drop("latency_s", "cached")
        calls_b = cell_table(replayed.run_dir, arm, "llm_calls")
        assert calls_b["cached"].all()
        assert calls_a.drop("attempts").equals(calls_b.drop("latency_s", "cached", "attempts"))


def test_replay_miss_names_the_call(tmp_path):
    with FakeOpenAI(["ok"]) as fake:
        _run(tmp_path, fake.base_url, "record", "recorded")
    with pytest.raises(RecarenaError, match=r"no recorded answer for the page call for user \d+"):
        _run(tmp_path, None, "replay", "other-seed", seed=99)


def test_replay_without_a_cache_file_is_a_clear_error(tmp_path):
    doc = copy.deepcopy(PANEL)
    doc["llm"]["cache"] = {"path": str(tmp_path / "missing.sqlite"), "mode": "replay"}
    with pytest.raises(RecarenaError, match="missing.sqlite does not exist"):
        run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------- units
def test_cache_modes(tmp_path):
    key = call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0})
    assert key == call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0})
    assert key != call_key("m", [{"role": "user", "content": "hi!"}], {"temperature": 0})
    good = CachedCall('{"a": 1}', True, None, 10, 2, 0.5, "run-1")
    bad = CachedCall(None, False, "HTTP 500", 0, 0, 0.5, "run-1")
    path = tmp_path / "c.sqlite"
    recorder = CallCache(path, "record", "run-1")
    recorder.store(key, "m", {}, good)
    recorder.store("k2", "m", {}, bad)
    assert recorder.lookup(key) == good  # same run: reuse its own answer
    assert CallCache(path, "record", "run-2").lookup(key) is None  # a new recording calls again
    auto = CallCache(path, "auto", "run-3")
    assert auto.lookup(key) == good and auto.lookup("k2") is None  # failures are retried
    replay = CallCache(path, "replay", "run-4")
    assert replay.lookup("k2") == bad  # failures replay as failures
    replay.store("k3", "m", {}, good)
    assert replay.lookup("k3") is None  # replay never writes
    with pytest.raises(CacheMiss):
        CallCache(tmp_path / "none.sqlite", "replay", "x")


def test_memory_retrieves_what_matches_the_slate():
    memory = UserMemory(capacity=3)
    memory.add_interaction("watched The Silent Harbor #1 (Horror), rated 2/5", 0)
    memory.add_interaction("watched The Golden Garden #2 (Comedy/Romance), rated 5/5", 1)
    memory.add_interaction("watched The Iron Road #3 (Western), rated 3/5", 2)
    top = memory.retrieve("The Velvet Echo #9 (Romance) rated ★★★☆☆", 1)
    assert top == ["watched The Golden Garden #2 (Comedy/Romance), rated 5/5"]
    memory.add_reflection("I want more westerns.", 3)  # capacity 3: the oldest is forgotten
    assert len(memory.entries) == 3 and "Silent Harbor" not in " ".join(memory.retrieve("x", 3))
    assert memory.retrieve("Romance", 2)[0] == "I want more westerns."  # latest reflection first
    session = memory.end_session()  # the session keeps all its interactions for reflection
    assert len(session) == 3 and session[0].startswith("watched The Silent Harbor")
    assert memory.end_session() == []


def test_tertiles():
    assert tertiles(np.array([1, 2, 3, 4, 5, 6])) == ["low"] * 2 + ["medium"] * 2 + ["high"] * 2


def test_data_personas_traits_by_hand(tmp_path):
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,A (1990),Comedy\n2,B (1991),Drama|Romance\n3,C (1992),Horror\n"
    )
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,1,5,0\n1,2,4,0\n1,3,1,0\n"  # user 1: 3 ratings, likes Comedy/Drama/Romance
        "2,1,3,0\n"  # user 2: 1 rating
        "3,1,4,0\n3,2,4,0\n"  # user 3: 2 ratings
    )
    traits = data_traits(tmp_path / "ratings.csv")
    assert [t["data_user"] for t in traits] == [1, 2, 3]
    assert [t["ratings"] for t in traits] == [3, 1, 2]
    assert [t["activity"] for t in traits] == ["high", "low", "medium"]
    # item means: movie1 (5+3+4)/3=4, movie2 4, movie3 1 -> user 2 deviates |3-4|=1 (least
    # conformist), user 3 deviates 0 (most), user 1 (1+0+0)/3
    assert [t["conformity"] for t in traits] == ["medium", "low", "high"]
    assert traits[0]["favourites"] == ["Comedy", "Drama"]  # liked (>=4), ties by name
    assert traits[0]["disliked"] == "Horror"
    with pytest.raises(RecarenaError, match="grouplens.org"):
        data_traits(tmp_path / "nope" / "ratings.csv")


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small" / "ratings.csv"


@pytest.mark.skipif(not REAL.exists(), reason="MovieLens latest-small not present")
def test_data_personas_on_movielens_latest_small():
    traits = data_traits(REAL)
    assert len(traits) == 610  # users in ml-latest-small
    counts = {level: sum(t["activity"] == level for t in traits) for level in ("low", "high")}
    assert abs(counts["low"] - 610 / 3) < 15 and abs(counts["high"] - 610 / 3) < 15
    assert all(len(t["favourites"]) >= 1 for t in traits)


def test_panel_scenario_errors_name_the_field():
    doc = copy.deepcopy(PANEL)
    doc["population"]["llm_panel"]["users"] = 500
    with pytest.raises(RecarenaError, match=r"population\.llm_panel\.users: 500 exceeds"):
        parse_scenario(doc)
    doc = copy.deepcopy(PANEL)
    doc["population"]["llm_panel"]["personas"] = {"source": "data"}
    with pytest.raises(RecarenaError, match=r"llm_panel\.personas\.path: source 'data' needs"):
        parse_scenario(doc)
