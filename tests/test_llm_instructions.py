"""LLM users' instructions near leaving, and the LLM recommender that reads instructions.

The fake endpoint's logprobs put all probability on one label, so every decision is known by
hand: option "1" is "more <topic 0>", and for the re-ranker label "3" is the third candidate.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recarena.agents.users.llm_instructions import (
    DIFFERENT_TEXT,
    instruction_options,
    instruction_text,
)
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.llm_instructable import LLMInstructable, LLMInstructableParams
from recarena.simulator.core.instructions import (
    LESS_OF_TOPIC,
    MORE_NOVEL,
    MORE_OF_TOPIC,
    SOMETHING_DIFFERENT,
    Instructions,
)
from recarena.simulator.core.types import (
    FeedbackBatch,
    Interactions,
    RequestBatch,
)
from tests.catalog_view import topics_catalog
from tests.fake_openai import differing_tables, fake_client, record_and_replay, scoring_fake


def test_instruction_words_and_options():
    names = ["Action", "Comedy", "Drama"]
    assert instruction_text(MORE_OF_TOPIC, 1, names) == "more Comedy"
    assert instruction_text(LESS_OF_TOPIC, 2, names) == "less Drama"
    assert instruction_text(SOMETHING_DIFFERENT, -1, names) == DIFFERENT_TEXT
    assert instruction_options(dominant=2, n_topics=3) == [
        (MORE_OF_TOPIC, 0), (MORE_OF_TOPIC, 1), (MORE_OF_TOPIC, 2), (LESS_OF_TOPIC, 2),
        (MORE_NOVEL, -1), (SOMETHING_DIFFERENT, -1),
    ]  # fmt: skip


def _reranker(client) -> LLMInstructable:
    ctx = RecommenderContext(np.random.default_rng(0), 2, 2, llm_client=client)
    params = LLMInstructableParams(base="popularity", strength=1.0, ttl_pages=2, candidates=6)
    rec = LLMInstructable(params, ctx)
    # popularity: items 0..5 clicked 6..1 times, so the base order is 0, 1, 2, 3, 4, 5
    item = np.repeat(np.arange(6), np.arange(6, 0, -1))
    rec.fit(Interactions(item * 0, item, np.zeros(item.size), np.ones(item.size, np.float32)))
    return rec


def _requests(users=(0, 1), page=1) -> RequestBatch:
    topics = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], np.float32)
    catalog = topics_catalog(topics)
    users = np.array(users, np.int64)
    return RequestBatch(60.0, users, users + 10, np.full(users.size, page, np.int32), 4,
                        catalog, np.full((users.size, 1), -1, np.int64))  # fmt: skip


def test_llm_instructable_reads_the_instruction_and_puts_its_pick_first(tmp_path):
    with scoring_fake({"4": 1.0}) as fake:
        client = fake_client(tmp_path, fake.base_url)
        rec = _reranker(client)
        requests = _requests()
        before = rec.recommend(requests)
        assert len(fake.requests) == 0  # no live instruction: no call
        # user 1 said "less Action" (topic 0); user 0 said nothing
        said = Instructions(np.array([-1, LESS_OF_TOPIC], np.int8),
                            np.array([-1, 0], np.int16))  # fmt: skip
        rec.update(FeedbackBatch(requests, before, np.zeros((2, 4), bool), instructions=said))
        after = rec.recommend(requests)
        prompt = fake.requests[0]["messages"][1]["content"]
        records = client.drain_records()
        client.close()
    assert before.items.tolist() == [[0, 1, 2, 3]] * 2
    # user 1: topic 0 sinks by 1 (relevance in [0, 1]), so the instructable order is 3, 4, 0,
    # 5 (the no-client test below); the LLM picks #4 (item 5) and the others keep their order
    assert after.items.tolist() == [[0, 1, 2, 3], [5, 3, 4, 0]]
    assert 'told you: "less Action"' in prompt and "4. The" in prompt
    assert [(r.context.purpose, r.context.user_id, r.choice) for r in records] == [("rerank", 1, 3)]


def test_llm_instructable_without_a_client_is_the_instructable():
    rec = _reranker(None)
    requests = _requests()
    said = Instructions(np.array([-1, LESS_OF_TOPIC], np.int8), np.array([-1, 0], np.int16))
    rec.update(FeedbackBatch(requests, rec.recommend(requests), np.zeros((2, 4), bool),
                             instructions=said))  # fmt: skip
    assert rec.recommend(requests).items.tolist() == [[0, 1, 2, 3], [3, 4, 0, 5]]


RECOWORLD_LLM = {
    "name": "recoworld-llm",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 600},
    "catalog": {"initial_items": 120, "topics": 4},
    "population": {
        "users": 30,
        "model": "mixed",
        "max_pages": 6,
        "llm_panel": {"users": 5, "reflect_every_sessions": 0},
        "instructions": {"threshold": 0.3},
    },
    "creators": {"count": 4},
    "surface": {"type": "list", "k": 4},
    "llm": {
        "provider": "openai",
        "model": "fake",
        "max_retries": 0,
        "backoff_seconds": 0.0,
        "ratings": "rule",
    },  # fmt: skip
    "arms": [
        {
            "name": "instructable",
            "recommender": {"type": "instructable", "params": {"base": "popularity"}},
        },
        {
            "name": "llm",
            "recommender": {
                "type": "llm_instructable",
                "params": {"base": "popularity", "shortlist": 4},
            },
        },
    ],  # fmt: skip
    "metrics": ["instruction_heard", "session_length"],
}


def test_llm_users_instruct_and_the_llm_recommender_reads_end_to_end(tmp_path):
    # pages: click slot 1; instructions: "more <topic 0>"; re-ranking: the first candidate
    recorded, replayed = record_and_replay(RECOWORLD_LLM, tmp_path, scoring_fake({"1": 1.0}))
    cell = recorded / "arm=llm" / "rep=0"
    said = pl.read_parquet(cell / "instructions.parquet")
    sessions = pl.read_parquet(cell / "sessions.parquet").filter(pl.col("llm_user"))
    llm_said = said.join(sessions.select("session_id"), on="session_id", how="semi")
    calls = pl.read_parquet(cell / "llm_calls.parquet")
    assert llm_said.height > 0  # the panel's users spoke up, and asked what the LLM chose
    assert (llm_said["kind"] == "more_of_topic").all() and (llm_said["topic"] == 0).all()
    assert calls.filter(pl.col("purpose") == "instruction").height == llm_said.height
    assert calls.filter(pl.col("purpose") == "rerank").height > 0
    assert not calls["fallback"].any()
    tables = ("instructions", "exposures", "interactions", "sessions")
    assert differing_tables(recorded, replayed, ("instructable", "llm"), tables) == []
