"""Scoring mode and unusable responses, against the scripted loopback endpoint.

Scoring mode reads each page's decision from the logprobs of the answer's first token and
draws it with the engine's counter-based uniforms; these tests check the parsing (missing
options, no mass on any option, no logprobs at all), that two arms showing the same page get
the same decision without any cache, and that a run whose endpoint answers garbage a third of
the time still finishes with every failure counted in ``llm_calls``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.agents.llm.client import (
    Unusable,
    draw_index,
    option_distribution,
    read_reply,
)
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.fake_openai import FakeOpenAI, cell_table

PANEL = {
    "name": "scoring",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 2, "tick_seconds": 120},
    "catalog": {"initial_items": 200, "topics": 8},
    "population": {
        "users": 60,
        "model": "mixed",
        "max_pages": 4,
        "llm_panel": {"users": 8, "reflect_every_sessions": 0},
    },
    "creators": {"count": 4},
    "surface": {"k": 5},
    "llm": {
        "provider": "openai",
        "model": "fake",
        # generous: a loaded CI machine once took over 0.5 s to serve an "ok" on loopback, and
        # a spurious timeout breaks the exact fault counts below
        "timeout_seconds": 2.0,
        "backoff_seconds": 0.0,
        "max_retries": 2,
    },
    "arms": [  # the same deterministic recommender under two names (common random numbers)
        {"name": "a", "recommender": {"type": "tests.plugins:NewestFirst"}},
        {"name": "b", "recommender": {"type": "tests.plugins:NewestFirst"}},
    ],
}
SIM_TABLES = ("exposures", "interactions", "sessions")


def _run(tmp: Path, base_url: str, mode: str, name: str, **llm) -> tuple[Path, dict]:
    doc = copy.deepcopy(PANEL)
    doc["llm"] |= {"base_url": base_url, **llm}
    doc["llm"]["cache"] = {"path": str(tmp / f"{name}.sqlite"), "mode": mode}
    result = run_experiment(parse_scenario(doc), tmp / name, executor="local")
    return result.run_dir, result.manifest


# ----------------------------------------------------------------------- parsing units
def test_option_distribution_renormalises_and_ignores_other_tokens():
    top = {"2": math.log(0.3), " 1": math.log(0.1), "The": math.log(0.5), "1": math.log(0.1)}
    probs, mass, entropy = option_distribution(top, ["0", "1", "2", "3"])
    assert mass == pytest.approx(0.5)
    assert probs.tolist() == pytest.approx([0.0, 0.4, 0.6, 0.0])  # " 1" and "1" are one answer
    assert entropy == pytest.approx(-(0.4 * math.log(0.4) + 0.6 * math.log(0.6)))
    none, zero, _ = option_distribution({"The": -0.1}, ["0", "1"])
    assert zero == 0.0 and not none.any()


def test_draw_index_is_the_inverse_cdf():
    probs = np.array([0.0, 0.25, 0.75])
    assert [draw_index(probs, u) for u in (0.0, 0.24, 0.25, 0.99)] == [1, 1, 2, 2]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/html", b"<html>oops</html>", "content type 'text/html'"),
        ("application/json", b"upstream error {", "body is not JSON"),
        ("application/json", b'{"choices": [\xff]}', "invalid UTF-8 at byte 13"),
        ("application/json", b'{"choices": []}', "no choices"),
        ("application/json", b'{"choices": [{"message": {}}]}', "without text content"),
    ],
)
def test_unusable_bodies_are_named(content_type, body, message):
    with pytest.raises(Unusable, match=message):
        read_reply(content_type, body, want_logprobs=False)


def test_a_reply_without_logprobs_reads_as_none():
    body = b'{"choices": [{"message": {"content": "1"}}], "usage": {"prompt_tokens": 9}}'
    reply = read_reply("application/json; charset=utf-8", body, want_logprobs=True)
    assert reply.text == "1" and reply.top is None and reply.prompt_tokens == 9


# ----------------------------------------------------------------------- runs
def test_two_arms_showing_the_same_page_get_the_same_decision_without_a_cache(tmp_path):
    with FakeOpenAI(["ok"]) as fake:
        run_dir, manifest = _run(tmp_path, fake.base_url, "off", "run")
        asked = len(fake.requests)
    assert not list(tmp_path.glob("run.sqlite"))  # mode off: nothing stored, nothing read
    for table in SIM_TABLES:
        assert cell_table(run_dir, "a", table).equals(cell_table(run_dir, "b", table)), table
    calls = pl.concat([cell_table(run_dir, arm, "llm_calls") for arm in ("a", "b")])
    assert not calls["cached"].any() and calls.height == asked  # both arms asked the endpoint
    pages = calls.filter(pl.col("purpose") == "page")
    assert (pages["decision"] == "score").all() and pages["valid"].all()
    assert (pages["options"] == 6).all()  # "0" plus five slots
    assert pages["option_mass"].is_between(0.2, 1.0).all() and (pages["entropy"] > 1.0).all()
    # the draws really are draws: the decisions vary over pages (not one argmax everywhere)
    assert pages["choice"].n_unique() >= 3
    assert (pages["completion_tokens"] <= 2).all()
    clicked = pages.filter(pl.col("choice") > 0)
    rated = calls.filter(pl.col("expected").is_not_null())
    assert rated.height == clicked.height  # every click got a rating read from logprobs
    assert rated["expected"].is_between(1.0, 5.0).all()
    assert manifest["llm"]["accounting"]["decisions"] == {"score": calls.height}


def test_scoring_replays_bit_identically(tmp_path):
    with FakeOpenAI(["ok", "invalid", "ok", "500", "ok"]) as fake:
        recorded, _ = _run(tmp_path, fake.base_url, "record", "cache")
    replay_doc = copy.deepcopy(PANEL)
    replay_doc["llm"] |= {"base_url": "http://127.0.0.1:9/v1"}  # nothing listens there
    replay_doc["llm"]["cache"] = {"path": str(tmp_path / "cache.sqlite"), "mode": "replay"}
    replayed = run_experiment(parse_scenario(replay_doc), tmp_path / "replay", executor="local")
    for arm in ("a", "b"):
        for table in SIM_TABLES:
            assert cell_table(recorded, arm, table).equals(cell_table(replayed.run_dir, arm, table))
        keep = ["purpose", "valid", "fallback", "choice", "option_mass", "expected"]
        a = cell_table(recorded, arm, "llm_calls").select(keep)
        assert a.equals(cell_table(replayed.run_dir, arm, "llm_calls").select(keep))


def test_no_mass_on_the_options_is_a_logged_fallback_and_missing_options_get_zero(tmp_path):
    with FakeOpenAI(["invalid", "sparse"]) as fake:
        run_dir, _ = _run(tmp_path, fake.base_url, "off", "run")
    calls = cell_table(run_dir, "a", "llm_calls").filter(pl.col("purpose") == "page")
    invalid = calls.filter(~pl.col("valid"))
    assert invalid.height > 0 and invalid["fallback"].all()
    assert invalid["error"].str.contains("no probability on the options").all()
    assert (invalid["option_mass"] == 0).all()
    sparse = calls.filter(pl.col("valid"))
    assert sparse.height > 0
    # only "0" and "2" had mass: every drawn choice is one of them
    assert set(sparse["choice"].to_list()) <= {0, 2}


def test_an_endpoint_without_logprobs_switches_to_json_mode(tmp_path):
    with FakeOpenAI(["ok"], logprobs=False) as fake:
        run_dir, manifest = _run(tmp_path, fake.base_url, "off", "run")
    calls = cell_table(run_dir, "a", "llm_calls")
    first = calls.row(0, named=True)
    assert first["decision"] == "score" and not first["valid"] and not first["fallback"]
    assert "no logprobs" in first["error"]
    rest = calls.slice(1)
    assert rest.height > 0 and (rest["decision"] == "generate").all() and rest["valid"].all()
    assert manifest["llm"]["accounting"]["decisions"]["generate"] > 0


UNUSABLE = {
    "html": "content type 'text/html'",
    "notjson": "body is not JSON",
    "wrongtype": "content type 'text/plain'",
    "empty": "no choices",
    "badutf8": "invalid UTF-8",
    "truncated": "connection error",
    "429": "HTTP 429",
    "500": "HTTP 500",
    "timeout": "timeout after",
}


HELD_SECONDS = 30.0
"""How long the fake holds a "timeout" answer: far past timeout_seconds (2 s). Was 2.4 s, so a
client stalled for 0.4 s on a busy machine read the answer in time, and the exact count of
fallbacks came out one short."""


def _script() -> list[str]:
    """Each fault once between two good answers: 9 faults in 27 requests (a third)."""
    return [step for fault in UNUSABLE for step in (fault, "ok", "ok")]


@pytest.mark.parametrize("decision", ["score", "generate"])
def test_every_unusable_response_is_a_counted_fallback_never_a_crash(tmp_path, decision):
    with FakeOpenAI(_script(), slow_seconds=HELD_SECONDS) as fake:
        run_dir, manifest = _run(
            tmp_path, fake.base_url, "off", "run", decision=decision, max_retries=0
        )
        calls = pl.concat([cell_table(run_dir, arm, "llm_calls") for arm in ("a", "b")])
        behaviours = fake.seen(calls["attempts"].sum())
    assert manifest["status"] == "complete"
    assert calls["attempts"].sum() == len(behaviours) == calls.height  # one attempt each
    faults = [b for b in behaviours if b != "ok"]
    failed = calls.filter(pl.col("fallback"))
    assert failed.height == len(faults) > 0 and not failed["valid"].any()
    for fault in set(faults):
        assert failed["error"].str.contains(UNUSABLE[fault], literal=True).any(), fault
    assert calls.filter(~pl.col("fallback"))["valid"].all()
    assert manifest["llm"]["accounting"]["fallbacks"] == failed.height


def test_unusable_responses_are_retried_and_every_attempt_counted(tmp_path):
    with FakeOpenAI(_script(), slow_seconds=HELD_SECONDS) as fake:
        run_dir, manifest = _run(tmp_path, fake.base_url, "off", "run")
        calls = pl.concat([cell_table(run_dir, arm, "llm_calls") for arm in ("a", "b")])
        behaviours = fake.seen(calls["attempts"].sum())
    assert manifest["status"] == "complete"
    assert set(UNUSABLE) <= set(behaviours)
    assert calls["attempts"].sum() == len(behaviours)
    assert (calls["attempts"] > 1).sum() > 0
    pages = calls.filter(pl.col("purpose") == "page")
    assert pages.filter(pl.col("valid") | pl.col("fallback")).height == pages.height


def test_rule_ratings_make_exactly_one_one_token_call_per_page(tmp_path):
    with FakeOpenAI(["ok"]) as fake:
        run_dir, manifest = _run(tmp_path, fake.base_url, "off", "run", ratings="rule")
        max_tokens = {r["max_tokens"] for r in fake.requests}
    calls = cell_table(run_dir, "a", "llm_calls")
    assert set(calls["purpose"].to_list()) == {"page"} and max_tokens == {1}
    assert manifest["llm"]["accounting"]["calls_per_page"] == 1.0
    clicked = calls.filter(pl.col("choice") > 0)
    assert clicked.height > 0 and clicked["expected"].is_null().all()
    panel = cell_table(run_dir, "a", "sessions").filter(pl.col("llm_user"))
    ratings = cell_table(run_dir, "a", "interactions").join(panel, on="session_id", how="semi")
    assert ratings.height == clicked.height and ratings["rating"].is_between(1, 5).all()


def test_gumbel_max_draws_from_the_distribution_and_never_a_zero_option():
    from recarena.agents.llm.choices import gumbel_index, key_gumbels

    # by hand: log 0.5 + 0 < log 0.5 + 1, and the zero-probability option never wins
    assert gumbel_index(np.array([0.5, 0.5, 0.0]), np.array([0.0, 1.0, 9.0])) == 1
    probs = np.array([0.2, 0.0, 0.5, 0.3])
    draws = [gumbel_index(probs, key_gumbels(k, 11, 4)) for k in range(4000)]
    shares = np.bincount(draws, minlength=4) / 4000
    assert shares[1] == 0 and np.abs(shares - probs).max() < 0.03
    # the noise is a pure function of (key, purpose, option): the same page, the same draw
    assert np.array_equal(key_gumbels(7, 11, 4), key_gumbels(7, 11, 4))
    assert not np.array_equal(key_gumbels(7, 11, 4), key_gumbels(7, 12, 4))


def test_a_steerable_endpoint_rates_the_drawn_film_in_the_same_call(tmp_path):
    """With token ids (llama.cpp's /extras/tokenize) the page call carries a logit bias of the
    click's Gumbel noise: the first generated token is the drawn slot, so the second position
    rates that film and no page needs a follow-up call; the two arms still agree."""
    with FakeOpenAI(["ok"], tokenize=True) as fake:
        run_dir, manifest = _run(tmp_path, fake.base_url, "off", "run")
        requests = list(fake.requests)
    assert all("logit_bias" in r for r in requests)  # every call was a steered page call
    calls = pl.concat([cell_table(run_dir, arm, "llm_calls") for arm in ("a", "b")])
    assert set(calls["purpose"].to_list()) == {"page"}  # no follow-up rating calls
    assert manifest["llm"]["accounting"]["calls_per_page"] == 1.0
    clicked = calls.filter(pl.col("choice") > 0)
    assert clicked.height > 0 and clicked["expected"].is_between(1.0, 5.0).all()
    assert calls["choice"].n_unique() >= 3  # still draws, not one argmax
    for table in SIM_TABLES:
        assert cell_table(run_dir, "a", table).equals(cell_table(run_dir, "b", table)), table
    # the bias is STEER_BIAS plus each option's noise; the answer's first token is the draw
    first = requests[0]["logit_bias"]
    assert len(first) == 6 and all(50.0 - 3.5 < v < 50.0 + 28.0 for v in first.values())


def test_the_live_line_extrapolates_calls_and_eta():
    from recarena.agents.llm.activity import CallStats, LiveLine

    line = LiveLine("arm=mf rep=0", horizon_seconds=1000.0, every_seconds=0.0)
    stats = CallStats()
    for i in range(40):
        stats.add(i % 4 == 0, i == 7, 300, 2, at=250.0)  # a quarter of the horizon
    text = line.line(stats, now=line.started + 20.0)
    assert text.startswith("LLM arm=mf rep=0: 40/~160 calls, 10 cached, 1 fallbacks")
    assert "12,080 tokens, 2.0 calls/s, sim 25%, ETA 1m00s" in text


def test_dry_run_prints_the_expected_llm_bill_and_creates_nothing(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from recarena.simulator.cli import app

    doc = copy.deepcopy(PANEL)
    doc["llm"] |= {"base_url": "http://127.0.0.1:9/v1", "price_input_per_million": 1.0}
    doc["output"] = {"dir": str(tmp_path / "runs")}
    path = tmp_path / "panel.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run (score mode, 2 cells; nothing was called)" in result.output
    assert f"dry run: {path}: 2 cells" in result.output.replace("\n", "")
    pages = int(result.output.split("LLM pages ")[1].split(" ")[0].replace(",", ""))
    assert pages > 0 and "estimated cost $0.0" in result.output
    assert not (tmp_path / "runs").exists()


def test_fidelity_asks_the_panel_in_scoring_mode(tmp_path):
    """One forward pass per panel user; the liked half is the items with the most probability."""
    from recarena.analysis.fidelity.llm import taste_on_endpoint
    from recarena.analysis.fidelity.report import FidelityConfig
    from tests.test_fidelity import _llm_split

    pop, split = _llm_split()
    cfg = FidelityConfig(llm={"users": 2, "cache": str(tmp_path / "c.sqlite")}, n_boot=20)
    with FakeOpenAI(["ok", "invalid"]) as fake:
        result = taste_on_endpoint(pop, split, cfg, fake.base_url, False, tmp_path)
        asked = fake.requests
    assert result["decision"] == "score" and result["calls"] == 2 == len(asked)
    assert all(r["max_tokens"] == 1 and r["logprobs"] for r in asked)
    assert "Answer with its number only." in asked[0]["messages"][1]["content"]
    assert result["failed_users"] == 1  # the "invalid" answer: no mass on the list's numbers
    entry = result["taste_discrimination"][0]
    assert entry["items"] == 6 and 0 <= entry["accuracy"]["value"] <= 1


def test_llm_creators_score_a_focus_topic_and_move_toward_it(tmp_path):
    """Scoring mode for creators: one call per creator and review, the mix moves max_change of
    the way toward the model's distribution over topics, so pure mixes spread out."""
    doc = copy.deepcopy(PANEL)
    doc.update(horizon={"days": 2, "tick_seconds": 600}, arms=PANEL["arms"][:1])
    doc["population"] = {"users": 60}
    doc["catalog"] = {"initial_items": 60, "topics": 6}
    doc["creators"] = {"count": 3, "strategy": {"type": "llm"}, "period_days": 1}
    with FakeOpenAI(["ok"]) as fake:
        doc["llm"] |= {"base_url": fake.base_url, "cache": {"mode": "off"}}
        run_dir = run_experiment(parse_scenario(doc), tmp_path / "run", executor="local").run_dir
    calls = cell_table(run_dir, "a", "llm_calls")
    assert set(calls["purpose"].to_list()) == {"creator"} and calls.height == 3
    assert (calls["decision"] == "score").all() and (calls["options"] == 6).all()
    periods = cell_table(run_dir, "a", "creator_periods").filter(pl.col("period") == 0)
    assert periods["move"].str.starts_with("focus:").all()
    final = cell_table(run_dir, "a", "creator_periods").filter(pl.col("move") == "final")
    assert final.height == 3 and (final["mix_entropy"] > 0).all()  # pure mixes spread out
