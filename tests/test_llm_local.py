"""End to end against the real embedded endpoint: llama.cpp serving SmolLM2-135M-Instruct.

The run records every call through the ``openai`` client, the server is stopped by its PID, and
the same scenario replayed from the cache (no server) must give identical logs. The test skips
only when the ``llm`` extra is absent *and* ``RECARENA_REQUIRE_LOCAL_LLM`` is unset; CI sets it
(through ``make test``), so there a missing extra fails instead of skipping silently.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.local_llm import record_on_the_local_server, replay_identically, requires_local_llm

pytestmark = requires_local_llm

TINY = {
    "name": "local-e2e",
    "seed": 3,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 600},
    "catalog": {"initial_items": 120, "topics": 6},
    "population": {
        "users": 40,
        "model": "mixed",
        "max_pages": 2,
        "llm_panel": {"users": 3, "reflect_every_sessions": 1},
    },
    "creators": {"count": 4},
    "surface": {"k": 4},
    "llm": {"provider": "local", "max_tokens": 64},
    "arms": [{"name": "popularity", "recommender": {"type": "popularity"}}],
}


def test_real_local_server_records_then_replays_identically(tmp_path):
    recorded = record_on_the_local_server(TINY, tmp_path)
    cell = Path("arm=popularity") / "rep=0"
    calls = pl.read_parquet(recorded.run_dir / cell / "llm_calls.parquet")
    pages = calls.filter(pl.col("purpose") == "page")
    assert pages.height > 0
    assert (calls["model"] == "SmolLM2-135M-Instruct").all()
    # record calls the endpoint for every new prompt; a prompt repeated within the run (same
    # persona, memories and slate) reuses its first answer and is marked cached
    live = calls.filter(~pl.col("cached"))
    assert live.height > calls.height // 2 and (live["attempts"] >= 1).all()
    assert (pages["prompt_tokens"] > 0).all() and (pages["completion_tokens"] > 0).all()
    # a 135M model does not always answer in schema; whatever it did, the run finished and
    # every page has an outcome: valid, or a logged fallback to the rule policy
    page_like = calls.filter(pl.col("purpose").is_in(["page", "repair:page"]))
    outcomes = page_like.filter(pl.col("valid") | pl.col("fallback")).height
    assert outcomes == pages.height
    accounting = recorded.manifest["llm"]["accounting"]
    assert accounting["calls"] == calls.height
    personas = pl.read_parquet(recorded.run_dir / cell / "personas.parquet")
    assert personas.height == 3 and personas["text"].str.len_chars().min() > 20

    tables = ("exposures", "interactions", "sessions", "items", "personas")
    replayed_calls = replay_identically(TINY, tmp_path, recorded, cell, tables)
    keep = ["purpose", "user_id", "prompt_tokens", "completion_tokens", "valid", "fallback"]
    assert calls.select(keep).equals(replayed_calls.select(keep))
