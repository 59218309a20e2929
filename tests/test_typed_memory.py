"""Typed memory (agents/users/typed_memory.py): consolidation, routing and per-type retrieval,
checked by hand; and the scenario switch that selects it."""

from __future__ import annotations

from recarena.agents.users.llm_memory import UserMemory
from recarena.agents.users.typed_memory import TypedMemory, make_memory, parse_episode
from recarena.simulator.core.scenario import LLMPanel


def test_parse_episode():
    assert parse_episode("watched Heat (1995) (Action/Crime), rated 4/5") == (
        ["Action", "Crime"],
        4.0,
    )
    assert parse_episode("a reflection without a rating") is None


def test_semantic_records_consolidate_every_episode_and_outlive_the_episodes():
    memory = TypedMemory(capacity=2)
    memory.add_interaction("watched A (Drama), rated 5/5", 0.0)
    memory.add_interaction("watched B (Drama/Comedy), rated 3/5", 1.0)
    memory.add_interaction("watched C (Horror), rated 1/5", 2.0)
    assert len(memory.episodic) == 2  # the oldest episode is forgotten...
    drama = memory.semantic["Drama"]  # ...but what it taught is kept
    assert (drama.rating_sum, drama.count) == (8.0, 2)
    assert drama.line("Drama") == "Drama: liked, 4.0/5 over 2 films"  # mean 4 counts as liked
    assert memory.semantic["Horror"].line("Horror") == "Horror: disliked, 1.0/5 over 1 film"
    assert memory.end_session() == [
        "watched A (Drama), rated 5/5",
        "watched B (Drama/Comedy), rated 3/5",
        "watched C (Horror), rated 1/5",
    ]


def test_router_and_retrieval_order():
    memory = TypedMemory(capacity=10)
    memory.add_interaction("watched A (Drama), rated 5/5", 0.0)
    memory.add_interaction("watched B (Horror), rated 1/5", 1.0)
    memory.add_reflection("I pick short films late at night", 2.0)
    query = "1. The Long Night (Horror) 2. Quiet Lake (Drama) 3. Zoo (Animation)"
    assert memory.route(query) == ["Horror", "Drama"]  # in order of first mention
    assert memory.retrieve(query, 3) == [
        "Horror: disliked, 1.0/5 over 1 film",
        "Drama: liked, 5.0/5 over 1 film",
        "I pick short films late at night",
    ]
    # one more slot: the episode most similar to the slate follows
    assert memory.retrieve(query, 4)[3] in {
        "watched A (Drama), rated 5/5",
        "watched B (Horror), rated 1/5",
    }
    # the token budget keeps whole lines, most useful first (about 4 characters a token)
    assert memory.retrieve(query, 3, max_tokens=10) == ["Horror: disliked, 1.0/5 over 1 film"]


def test_switch_selects_the_store_and_defaults_stay_out_of_dumps():
    assert isinstance(make_memory("tfidf", 5), UserMemory)
    assert isinstance(make_memory("typed", 5), TypedMemory)
    assert "memory" not in LLMPanel().model_dump()
    assert LLMPanel(memory="typed").model_dump()["memory"] == "typed"
