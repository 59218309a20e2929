"""The embedded LLM server's watch: a server that dies mid-run stops the run with one line.

A stand-in process (``sleep``) plays the server, so no model is needed: what is tested is the
watch's reading of how a process ended and that it fires once, only when the death was not
our own stop."""

from __future__ import annotations

import signal
import subprocess
import threading

from recarena.agents.llm.server import LocalServer


def _server_running(command: list[str]) -> LocalServer:
    server = LocalServer()
    server.process = subprocess.Popen(command, start_new_session=True)
    return server


def test_a_server_killed_by_a_signal_is_reported_once_with_the_signal():
    server = _server_running(["sleep", "30"])
    seen: list[str] = []
    fired = threading.Event()
    server.watch(lambda line: (seen.append(line), fired.set()), every=0.05)
    assert server.death() is None
    server.process.send_signal(signal.SIGSEGV)
    assert fired.wait(10)
    assert len(seen) == 1
    assert f"(pid {server.process.pid}) was killed by SIGSEGV during the run" in seen[0]
    assert "docs/install.md" in seen[0]
    server.stop()


def test_a_server_that_exits_reports_its_status():
    server = _server_running(["sh", "-c", "exit 3"])
    server.process.wait()
    assert "exited with status 3" in (server.death() or "")
    server.stop()


def test_stopping_the_server_ourselves_is_not_a_death():
    server = _server_running(["sleep", "30"])
    seen: list[str] = []
    watch = server.watch(seen.append, every=0.05)
    server.stop()
    watch.join(5)
    assert not watch.is_alive()
    assert seen == []
