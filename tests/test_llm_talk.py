"""LLM users who talk (RecAgent): one call per consumption decides post / message / nothing.

The fake endpoint's logprobs are set per test so each decision is worked out by hand; the rule
model's rates are 0 so that anything posted or sent was the LLM's decision.
"""

from __future__ import annotations

import copy

import numpy as np
import polars as pl

from recarena.agents.llm.item_text import SyntheticItemText
from recarena.agents.users.llm_talk import LLMTalk
from recarena.agents.users.llm_user import LLMUsers
from recarena.agents.users.personas import Persona
from recarena.agents.users.talk import TalkState
from recarena.simulator.core.scenario import LLMPanel
from recarena.simulator.core.scenario_features import Talk
from recarena.simulator.runner.llm_estimate import estimate_llm_calls
from recarena.simulator.runner.resolve import parse_scenario
from tests.catalog_view import topics_catalog
from tests.fake_openai import (
    FakeOpenAI,
    differing_tables,
    fake_client,
    record_and_replay,
    scoring_fake,
)
from tests.test_talk_and_sources import Sink, line_graph


def _talk(tmp_path, base_url, decision="score", panel=(1,), rates=0.0):
    client = fake_client(tmp_path, base_url, decision=decision)
    catalog = topics_catalog(np.eye(3, dtype=np.float32)[np.arange(20) % 3])
    personas = [Persona(u, "yaml", f"User {u}, who likes films.", {}) for u in panel]
    llm = LLMUsers(LLMPanel(users=len(panel)), personas, SyntheticItemText(catalog, 3), client)
    sink = Sink()
    cfg = Talk(post_rate=rates, message_rate=rates, reach=1.0)
    state = TalkState(cfg, line_graph(), np.ones(4), np.zeros(4), hash_base=7, log=sink)
    graph = line_graph()
    state.speaker = LLMTalk(llm, np.diff(graph.indptr))
    return state, sink, client, llm


def _consume(state, users, items, rating):
    n = len(users)
    state.after_consume(60.0, 0, np.arange(100, 100 + n), np.array(users), np.array(items),
                        np.array(rating, float))  # fmt: skip


def test_a_scored_post_reaches_every_friend_with_the_llms_sentiment(tmp_path):
    # option 2 = "post to all your friends: warn them off it", although the rating is 5
    with scoring_fake({"2": 1.0}) as fake:
        state, sink, client, llm = _talk(tmp_path, fake.base_url)
        _consume(state, [1, 3], [9, 4], [5.0, 5.0])  # user 3 is not on the panel
        prompt = fake.requests[0]["messages"][1]["content"]
        records = client.drain_records()
        client.close()
    assert len(fake.requests) == 1  # one call: the panel user's consumption only
    assert sink.column("posts", "user_id").tolist() == [1]
    assert sink.column("posts", "sentiment").tolist() == [-1]
    assert sink.column("posts", "reached").tolist() == [2]
    assert sink.column("messages", "sender_id").tolist() == []  # the rule model's rates are 0
    assert "rated it 5/5. You have 2 friends" in prompt and "2. post to all your friends" in prompt
    assert [(r.context.purpose, r.decision, r.choice, r.options) for r in records] == [
        ("talk", "score", 2, 5)
    ]


def test_a_scored_message_goes_to_one_friend_and_a_panel_hearer_remembers_it(tmp_path):
    # users 0-2 are on the panel; user 1 messages (option 3: recommend) one of its friends
    with scoring_fake({"3": 1.0}) as fake:
        state, sink, client, llm = _talk(tmp_path, fake.base_url, panel=(0, 1, 2))
        _consume(state, [1], [9], [4.0])
        client.close()
    receiver = sink.column("messages", "receiver_id").tolist()
    assert sink.column("messages", "sender_id").tolist() == [1] and receiver[0] in (0, 2)
    assert sink.column("messages", "sentiment").tolist() == [1]
    title = llm.item_text.titles(np.array([9]))[0]
    other = 2 if receiver[0] == 0 else 0
    assert [m.text for m in llm.memory[receiver[0]].entries] == [
        f"a friend recommended {title} in a message"
    ]
    assert not llm.memory[other].entries and not llm.memory[1].entries


def test_saying_nothing_overrides_the_rule_model_and_failures_keep_it(tmp_path):
    with scoring_fake({"0": 1.0}) as fake:  # rule rates 1: everybody would post and message
        state, sink, client, _ = _talk(tmp_path, fake.base_url, rates=1.0)
        _consume(state, [1, 0], [9, 9], [5.0, 5.0])
        client.close()
    assert sink.column("posts", "user_id").tolist() == [0]  # user 1 (the LLM) said nothing
    assert sink.column("messages", "sender_id").tolist() == [0]
    with FakeOpenAI(script=["invalid"]) as fake:  # no probability on any option: fallback
        state, sink, client, _ = _talk(tmp_path / "f", fake.base_url, rates=1.0)
        _consume(state, [1], [9], [5.0])
        records = client.drain_records()
        client.close()
    assert sink.column("posts", "user_id").tolist() == [1]  # the rule model's post
    assert [(r.context.purpose, r.fallback) for r in records] == [("talk", True)]


def test_generate_mode_answers_in_json(tmp_path):
    class JsonFake(FakeOpenAI):
        def _completion(self, body, behaviour):
            response = super()._completion(body, behaviour)
            content = '{"action": "message", "opinion": "warn"}'
            response["choices"][0]["message"]["content"] = content
            return response

    with JsonFake() as fake:
        state, sink, client, _ = _talk(tmp_path, fake.base_url, decision="generate")
        _consume(state, [1], [9], [1.0])
        schema = fake.requests[0]["response_format"]["schema"]
        client.close()
    assert sink.column("messages", "sender_id").tolist() == [1]
    assert sink.column("messages", "sentiment").tolist() == [-1]
    assert schema["properties"]["action"]["enum"] == ["post", "message", "none"]


RECAGENT_LLM = {
    "name": "recagent-llm",
    "seed": 3,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 900},
    "catalog": {"initial_items": 120, "topics": 5},
    "population": {
        "users": 30,
        "model": "mixed",
        "llm_panel": {"users": 4, "reflect_every_sessions": 0},
        "social": {
            "graph": {"type": "sbm", "mean_degree": 6, "homophily": 0.7},
            "talk": {"post_rate": 0.3, "message_rate": 0.2, "reach": 0.8},
        },
    },
    "creators": {"count": 4},
    "surface": {"type": "list", "k": 5},
    "llm": {
        "provider": "openai",
        "model": "fake",
        "max_retries": 0,
        "backoff_seconds": 0.0,
        "ratings": "rule",
    },  # fmt: skip
    "arms": [
        {"name": "popularity", "recommender": {"type": "popularity"}},
        {
            "name": "feed",
            "recommender": {"type": "social_feed", "params": {"base": "popularity", "slots": 2}},
        },
    ],  # fmt: skip
    "metrics": ["social_consumption_share", "talk_per_user"],
}


def test_llm_users_talk_end_to_end_and_replay_identically(tmp_path):
    recorded, replayed = record_and_replay(RECAGENT_LLM, tmp_path, FakeOpenAI())
    cell = recorded / "arm=popularity" / "rep=0"
    calls = pl.read_parquet(cell / "llm_calls.parquet")
    talk = calls.filter(pl.col("purpose") == "talk")
    sessions = pl.read_parquet(cell / "sessions.parquet")
    clicks = pl.read_parquet(cell / "interactions.parquet").join(
        sessions.filter(pl.col("llm_user")).select("session_id"), on="session_id", how="semi"
    )
    assert clicks.height > 0 and talk.height == clicks.height  # one talk call per LLM click
    assert (talk["decision"] == "score").all() and (talk["valid"]).all()
    tables = ("posts", "messages", "exposures", "interactions", "sessions")
    assert differing_tables(recorded, replayed, ("popularity", "feed"), tables) == []


def test_the_dry_run_counts_one_talk_call_per_llm_consumption():
    doc = copy.deepcopy(RECAGENT_LLM)
    doc["llm"] |= {"base_url": "http://127.0.0.1:9/v1"}
    talking = estimate_llm_calls(parse_scenario(doc), cells=2)["per_cell"]
    # ratings: rule, no reflections: every call beyond the pages is a talk call
    assert talking["pages"] > 0 and talking["calls"] > talking["pages"]
    del doc["population"]["social"]["talk"]
    silent = estimate_llm_calls(parse_scenario(doc), cells=2)["per_cell"]
    assert silent["calls"] == silent["pages"]
