"""LLM conversations end to end against the real embedded endpoint (llama.cpp + SmolLM2-135M).

One tiny run records every call of the LLM CRS and the LLM users, the server is stopped by its
PID, and the replay from the cache (no server) must give identical turns and exposures. Skips
only when the ``llm`` extra is absent and ``RECARENA_REQUIRE_LOCAL_LLM`` is unset (as
tests/test_llm_local.py).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.local_llm import record_on_the_local_server, replay_identically, requires_local_llm

pytestmark = requires_local_llm

TINY = {
    "name": "local-conversation",
    "seed": 2,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 900},
    "catalog": {"initial_items": 100, "topics": 5},
    "population": {
        "users": 6,
        "visits_per_day": 0.5,
        "model": "mixed",
        "llm_panel": {"users": 2, "reflect_every_sessions": 0},
        "conversation": {"target_facets": ["genre"], "patience": 2},
    },
    "creators": {"count": 3},
    "surface": {"type": "conversation", "k": 2, "max_turns": 2},
    "llm": {"provider": "local", "max_tokens": 80},
    "arms": [{"name": "llm", "recommender": {"type": "llm_crs", "params": {"shortlist": 4}}}],
    "metrics": ["conv_success_rate"],
}
CELL = Path("arm=llm") / "rep=0"


def test_llm_conversations_on_the_real_local_server_replay_identically(tmp_path):
    recorded = record_on_the_local_server(TINY, tmp_path)
    turns = pl.read_parquet(recorded.run_dir / CELL / "turns.parquet")
    calls = pl.read_parquet(recorded.run_dir / CELL / "llm_calls.parquet")
    system = turns.filter(pl.col("speaker") == "system")
    crs = calls.filter(pl.col("purpose") == "crs")
    assert system.height > 0 and crs.height == system.height  # one call per conversation turn
    assert (calls["model"] == "SmolLM2-135M-Instruct").all()
    assert (calls["decision"] == "score").all()  # the local server returns logprobs
    assert (crs["prompt_tokens"] > 0).all() and (crs["completion_tokens"] == 1).all()
    # whatever a 135M model answered, every call has an outcome: valid, or a logged fallback
    for purpose in ("crs", "turn"):
        first = calls.filter(pl.col("purpose") == purpose)
        outcome = calls.filter(
            pl.col("purpose").is_in([purpose, f"repair:{purpose}"])
            & (pl.col("valid") | pl.col("fallback"))
        )
        assert outcome.height == first.height, purpose
    assert recorded.manifest["llm"]["accounting"]["calls"] == calls.height

    tables = ("turns", "exposures", "interactions", "sessions")
    replayed_calls = replay_identically(TINY, tmp_path, recorded, CELL, tables)
    keep = ["purpose", "session_id", "page", "prompt_tokens", "completion_tokens", "valid"]
    assert calls.select(keep).sort(keep).equals(replayed_calls.select(keep).sort(keep))
