"""The embedded LLM server's watch: a server that dies mid-run stops the run with one line.

A stand-in process (``sleep``) plays the server, so no model is needed: what is tested is the
watch's reading of how a process ended and that it fires once, only when the death was not
our own stop."""

from __future__ import annotations

import os
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


# ------------------------------------------------------------------ a run killed outright
ORPHAN_AFTER_SECONDS = 30


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody has reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return True


def _pid_after_its_parent_is_killed(child_code: str, parent_code: str) -> int:
    """Start ``parent_code`` (which starts the child and prints its pid), SIGKILL the parent
    as kill -9 would, and return the child's pid."""
    import sys

    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, child_code],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), line
    parent.kill()
    parent.wait(10)
    return int(line)


def _wait_gone(pid: int) -> bool:
    import time

    deadline = time.monotonic() + ORPHAN_AFTER_SECONDS
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


WATCHED_CHILD = (
    "import time\n"
    "from recarena.agents.llm.llama_main import exit_with_parent\n"
    "assert exit_with_parent(every=0.05) is not None\n"
    "time.sleep(120)\n"
)

STARTS_A_CHILD = (
    "import os, subprocess, sys, time\n"
    "from recarena.agents.llm.llama_main import PARENT_ENV\n"
    "env = dict(os.environ) | {PARENT_ENV: str(os.getpid())}\n"
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]], env=env,\n"
    "                         start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def test_a_server_whose_run_is_killed_outright_exits_too():
    """Was: the server runs in a session of its own (so that Ctrl-C reaches the run first), and
    a run killed with kill -9 could not stop it: it lived on with its model and port until the
    machine restarted (two such SmolLM2 servers were found an hour after a timed-out run)."""
    pid = _pid_after_its_parent_is_killed(WATCHED_CHILD, STARTS_A_CHILD)
    try:
        assert _wait_gone(pid), "the server outlived the process that started it"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_without_a_parent_named_nothing_is_watched():
    from recarena.agents.llm.llama_main import exit_with_parent

    env_before = os.environ.pop("RECARENA_SERVER_PARENT", None)
    try:
        assert exit_with_parent() is None  # started by hand: lives as long as its user wants
    finally:
        if env_before is not None:
            os.environ["RECARENA_SERVER_PARENT"] = env_before
