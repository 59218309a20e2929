"""Conversational LLM users and the LLM CRS in scoring mode, against the fake endpoint.

The fake's logprobs are set per test, so every decision can be worked out by hand: an option
that holds all the probability is chosen whatever the uniform; with two options the tests
check what both possible draws have in common, and that two clients draw alike.
"""

from __future__ import annotations

import copy

import polars as pl

from recarena.simulator.core.dialogue import ACCEPT, ASK, INFORM, RECOMMEND, REJECT, UNKNOWN
from recarena.simulator.core.types import PAD_ITEM
from tests.fake_openai import (
    FakeOpenAI,
    cell_table,
    differing_tables,
    record_and_replay,
    scoring_fake,
)
from tests.test_llm_conversation import CONVERSATION, _client, _crs, _state, _turn, _user


def test_scored_crs_recommends_the_drawn_candidate_first(tmp_path):
    # shortlist 5, 4, 3, 2 (labels 1-4), then "ask genre" (5) and "ask era" (6)
    with scoring_fake({"3": 0.7, "1": 0.3}) as fake:
        client = _client(tmp_path, fake.base_url, decision="score")
        acts = _crs(client, shortlist=4).act(_state(k=3))
        prompt = fake.requests[0]["messages"][1]["content"]
        bodies = list(fake.requests)
        records = client.drain_records()
        client.close()
    assert acts.act.tolist() == [RECOMMEND, RECOMMEND]
    for row in acts.slates.items.tolist():
        # the drawn candidate, then the other one with probability, then the belief's order
        assert row in ([3, 5, 4], [5, 3, 4])
    assert "1. The Secret Carnival #5 (genre: Drama, era: 1990s)" in prompt
    assert "5. ask about genre\n6. ask about era" in prompt
    assert all(b["max_tokens"] == 1 and "response_format" not in b for b in bodies)
    assert [r.decision for r in records] == ["score", "score"]
    assert all(r.options == 6 and r.choice in (0, 2) and r.valid for r in records)


def test_scored_crs_asks_when_the_mass_is_on_a_facet_and_not_on_the_last_turn(tmp_path):
    with scoring_fake({"6": 1.0}) as fake:
        client = _client(tmp_path, fake.base_url, decision="score")
        asks = _crs(client, shortlist=4).act(_state())
        last = _crs(client, shortlist=4).act(_state(turn=3))  # no asking: "6" is no option
        client.close()
    assert asks.act.tolist() == [ASK, ASK] and asks.facet.tolist() == [1, 1]  # era
    # on the last turn the options are the candidates only; no mass on them -> rule fallback
    assert last.act.tolist() == [RECOMMEND, RECOMMEND]
    assert last.slates.items.tolist() == [[5, 4], [5, 4]]


def test_scored_crs_draws_alike_in_two_clients_without_a_cache(tmp_path):
    with scoring_fake({"1": 0.25, "2": 0.25, "3": 0.25, "5": 0.25}) as fake:
        runs = []
        for name in ("a", "b"):
            client = _client(tmp_path / name, fake.base_url, mode="off", decision="score")
            acts = _crs(client, shortlist=4).act(_state(k=2))
            runs.append((acts.act.tolist(), acts.facet.tolist(), acts.slates.items.tolist()))
            client.close()
    assert runs[0] == runs[1]


def test_scored_user_answers_a_question_with_the_option_or_no_preference(tmp_path):
    # era has options 1980s (label 1) and 1990s (label 2); 0 means "no preference"
    with scoring_fake({"2": 1.0}) as fake:
        client = _client(tmp_path, fake.base_url, decision="score")
        acts = _user(client).respond(_turn(ASK, 1, [[PAD_ITEM] * 2] * 2))
        prompt = fake.requests[0]["messages"][1]["content"]
        client.close()
    assert acts.act.tolist() == [REJECT, INFORM]  # row 0 is the stub (not on the panel)
    assert (acts.facet[1], acts.value[1]) == (1, 1)
    assert "which era would you like?\n1. 1980s\n2. 1990s\nAnswer with its number" in prompt
    with scoring_fake({"0": 1.0}) as fake:
        client = _client(tmp_path / "any", fake.base_url, decision="score")
        acts = _user(client).respond(_turn(ASK, 1, [[PAD_ITEM] * 2] * 2))
        client.close()
    assert acts.act[1] == INFORM and (acts.facet[1], acts.value[1]) == (1, UNKNOWN)


def test_scored_user_accepts_and_rates_from_the_second_token(tmp_path):
    # row 1 examined slot 1 only (item 5); "1" accepts it, the second token rates it 4
    with scoring_fake({"1": 1.0}, {"4": 1.0}) as fake:
        client = _client(tmp_path, fake.base_url, decision="score")
        acts = _user(client).respond(_turn(RECOMMEND, UNKNOWN, [[2, 5], [5, 2]]))
        bodies = list(fake.requests)
        client.close()
    assert len(bodies) == 1 and bodies[0]["max_tokens"] == 2  # choice and rating in one pass
    assert acts.act.tolist() == [REJECT, ACCEPT]
    assert acts.accepted[1] == 5 and acts.rating[1] == 4.0
    assert acts.patience.tolist() == [3.5, 4.0]  # an accept costs the turn only


def test_scored_none_of_them_is_the_rule_users_objection(tmp_path):
    with scoring_fake({"0": 1.0}) as fake:
        client = _client(tmp_path, fake.base_url, decision="score")
        acts = _user(client).respond(_turn(RECOMMEND, UNKNOWN, [[2, 5], [5, 2]]))
        client.close()
    assert acts.act.tolist() == [REJECT, REJECT]  # the stub rejects, so "none" is a reject
    assert acts.accepted[1] == PAD_ITEM and acts.patience.tolist() == [3.5, 3.5]


def test_scored_user_with_rule_ratings_rates_as_the_agenda_user(tmp_path):
    with scoring_fake({"1": 1.0}) as fake:
        client = _client(tmp_path, fake.base_url, decision="score")
        user = _user(client)
        user.llm.ratings = "rule"
        user.rule.no_click_utility = -1.0  # the stub's utilities are 0: 3 + 1.5 * 1 -> rint 4
        acts = user.respond(_turn(RECOMMEND, UNKNOWN, [[2, 5], [5, 2]]))
        bodies = list(fake.requests)
        client.close()
    assert len(bodies) == 1 and bodies[0]["max_tokens"] == 1
    assert acts.act[1] == ACCEPT and acts.rating[1] == 4.0


def test_scored_conversations_run_end_to_end_and_replay_identically(tmp_path):
    doc = copy.deepcopy(CONVERSATION)
    doc["llm"] = {**doc["llm"], "decision": "score"}
    # the fake's prompt-seeded digits: some accepts, some objections
    recorded, replayed = record_and_replay(doc, tmp_path, FakeOpenAI())
    calls = cell_table(recorded, "llm_crs", "llm_calls")
    assert calls.height > 0 and (calls["decision"] == "score").all()
    assert set(calls["purpose"]) >= {"crs", "turn"}
    assert (calls.filter(pl.col("purpose") != "rating")["completion_tokens"] <= 2).all()
    tables = ("turns", "exposures", "interactions", "sessions")
    assert differing_tables(recorded, replayed, ("info_gain", "llm_crs"), tables) == []
