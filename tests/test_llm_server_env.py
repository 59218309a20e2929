"""The embedded llama.cpp server's OpenMP threads spin briefly before they sleep, unless the user
says how they wait: long-spinning waiters slow llama.cpp on a shared machine
(agents/llm/server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recarena.agents.llm.server import LocalServer, server_environment


def test_the_server_environment_adds_a_short_spin_and_keeps_the_users_choice():
    assert server_environment({"PATH": "/bin"}) == {"PATH": "/bin", "GOMP_SPINCOUNT": "10000"}
    for mine in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "5"}):
        assert server_environment(mine) == mine  # the user's own setting alone
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}
    server_environment(passive)
    assert passive == {"OMP_WAIT_POLICY": "PASSIVE"}  # the caller's mapping is not changed


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


@pytest.mark.parametrize("users_choice", [None, "ACTIVE"])
def test_the_started_server_process_runs_with_it(monkeypatch, users_choice):
    pytest.importorskip("llama_cpp.server")
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    if users_choice is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", users_choice)
    server = LocalServer(context_tokens=256, threads=1).start()
    try:
        assert server.process is not None
        seen = _environ(server.process.pid)
        if users_choice is None:
            assert seen["GOMP_SPINCOUNT"] == "10000" and "OMP_WAIT_POLICY" not in seen
        else:
            assert seen["OMP_WAIT_POLICY"] == users_choice and "GOMP_SPINCOUNT" not in seen
    finally:
        server.stop()
