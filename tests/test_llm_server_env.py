"""The embedded llama.cpp server's OpenMP threads wait passively unless the user says otherwise:
spinning waiters slow a shared machine's llama.cpp several-fold (agents/llm/server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recarena.agents.llm.server import LocalServer, server_environment


def test_the_server_environment_adds_passive_waiting_and_keeps_the_users_choice():
    assert server_environment({"PATH": "/bin"}) == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert server_environment(mine)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert mine == {"OMP_WAIT_POLICY": "ACTIVE"}  # the caller's mapping is not changed


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


@pytest.mark.parametrize("users_choice", [None, "ACTIVE"])
def test_the_started_server_process_runs_with_it(monkeypatch, users_choice):
    pytest.importorskip("llama_cpp.server")
    if users_choice is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", users_choice)
    server = LocalServer(context_tokens=256, threads=1).start()
    try:
        assert server.process is not None
        assert _environ(server.process.pid)["OMP_WAIT_POLICY"] == (users_choice or "PASSIVE")
    finally:
        server.stop()
