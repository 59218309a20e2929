"""A run's life under hostile conditions: stop signals before the run has its directory or
while it makes it, a stop Python swallowed, and an output that takes no more (the file size
limit, as a full disk would) at each file a run writes.

Every command runs as the real ``recarena`` process (``python -m``), in its own process group,
with a timeout, and is killed with its group in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY
from tests.runtime_plugins import SIGNAL_VARIABLE

ROOT = Path(__file__).resolve().parent.parent


def _scenario(tmp_path: Path, plugin: str | None = None) -> Path:
    doc = json.loads(json.dumps(TINY))
    doc["output"] = {"dir": str(tmp_path / "runs")}
    if plugin is not None:
        doc["replicates"] = 1
        doc["arms"][1]["recommender"] = {"type": f"tests.runtime_plugins:{plugin}"}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _recarena(
    *args: str, env: dict[str, str] | None = None, file_limit: int | None = None
) -> subprocess.CompletedProcess:
    def limit() -> None:
        # a terminal's dispositions: under nohup or a shell's '&' (a CI job, say) the stops
        # arrive ignored, and the command rightly keeps them ignored, so the stops these tests
        # send would do nothing
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    proc = subprocess.Popen(
        [sys.executable, "-m", "recarena.simulator.cli", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=limit,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.strip().splitlines() if not line.startswith("note: ")]


# ------------------------------------------------------------------ stops before the run
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_stop_while_the_scenario_is_checked_is_one_line(tmp_path, sig, command):
    """Was: SIGTERM or SIGHUP while validate or run checked the scenario (here: while the
    preflight builds a plug-in) killed the process without a word (exit -15, -1); the run's
    own handlers came later. Now the command's first act installs handlers: one line, 130."""
    out = tmp_path / "out"
    args = ("-o", str(out), "-q", "--executor", "local") if command == "run" else ()
    done = _recarena(
        command, str(_scenario(tmp_path, "SignalsWhenBuilt")), *args, env={SIGNAL_VARIABLE: sig}
    )
    assert done.returncode == 130, done.stderr
    assert _lines(done) == [f"interrupted ({sig}): recarena {command} stopped before it finished"]
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_stop_python_swallowed_still_stops_the_command(tmp_path, command):
    """A KeyboardInterrupt raised inside a ``__del__`` or an import's clean-up callback is
    printed by Python as "Exception ignored" and lost. Was: a Ctrl-C landing there while run
    checked the scenario was ignored; the whole run went on and ended with exit 0 (seen with a
    Ctrl-C a second into ``recarena run``). Now the signal is remembered: run stops before it
    makes anything, validate says so after its answer, both exit 130 with no traceback."""
    out = tmp_path / "out"
    args = ("-o", str(out), "-q", "--executor", "local") if command == "run" else ()
    done = _recarena(
        command,
        str(_scenario(tmp_path, "StopSwallowedWhenBuilt")),
        *args,
        env={SIGNAL_VARIABLE: "SIGINT"},
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "ignored" not in done.stderr
    [line] = _lines(done)
    if command == "run":
        assert line == f"interrupted (SIGINT): the run had not started; nothing was left in {out}"
    else:
        assert line == "interrupted (SIGINT): recarena validate stopped before it finished"
    assert not out.exists()


STOP_AT = {
    # just after the lock is taken: the directory holds only .lock
    "lock": (
        "recarena.simulator.runner.rundir:RunLock.acquire",
        "the run had not started; nothing was left in",
    ),
    # as the scenario file is about to be written, before the manifest
    "scenario-file": (
        "recarena.simulator.runner.experiment:dump_scenario",
        "the run had not started; nothing was left in",
    ),
}


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("where", list(STOP_AT))
def test_a_stop_while_the_run_directory_is_made_leaves_nothing(tmp_path, where, sig):
    """Was: the run's handlers were installed only after its directory, lock and scenario
    file were made, so a SIGTERM or SIGHUP there killed the process where it stood, leaving a
    directory that held a .lock (or a scenario file) and no manifest: ``-o`` refused it as not
    empty, ``--resume`` as not a run. Now the stop is one line, exit 130, and nothing is left.
    The signal is sent from inside the step (the step is wrapped), which no timing can hit."""
    target, said = STOP_AT[where]
    module, qualname = target.split(":")
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import functools, importlib, os, signal, sys
        owner = importlib.import_module({module!r})
        names = {qualname!r}.split(".")
        for name in names[:-1]:
            owner = getattr(owner, name)
        real = getattr(owner, names[-1])

        @functools.wraps(real)
        def step(*args, **kwargs):
            found = real(*args, **kwargs)
            os.kill(os.getpid(), signal.{sig})
            return found

        setattr(owner, names[-1], step)
        from recarena.simulator.cli import main
        main(["run", sys.argv[1], "-o", sys.argv[2], "-q", "--executor", "local"])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(_scenario(tmp_path)), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert proc.returncode == 130, proc.stderr
    assert f"interrupted ({sig}): {said} {out}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------ no room for the output
@pytest.mark.parametrize(
    ("limit", "file"),
    [(0, ".lock"), (1000, "scenario.resolved.yaml"), (2048, "manifest.json")],
)
def test_a_run_whose_first_files_cannot_be_written(tmp_path, limit, file):
    """Under a file size limit (``ulimit -f``; a full disk fails the same writes): was an
    internal error (exit 1) leaving a directory with a half-written scenario.resolved.yaml or
    a bare .lock; and when only the manifest did not fit, every cell ran and failed, leaving
    a directory without a manifest. Now one line names the file, exit 2, nothing is left."""
    out = tmp_path / "out"
    done = _recarena(
        "run", str(_scenario(tmp_path)), "-o", str(out), "-q", "--executor", "local",
        file_limit=limit,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert _lines(done) == [
        f"error: --output {out}: cannot write {out / file}: File too large "
        "(the file size limit, ulimit -f)"
    ]
    assert not out.exists()


@pytest.mark.parametrize("executor", ["local", "process"])
def test_cells_whose_logs_cannot_be_written_name_the_file(tmp_path, executor):
    """Was: each cell failed with "OSError: [Errno 27] Error writing bytes to file. Detail:
    [errno 27] File too large" (which file?) and the run exited 1, the code of a bug. Now each
    cell's line names its table file and the limit, the run exits 2 (an output that takes no
    more is the user's to fix, as before the run), and no table is published."""
    out = tmp_path / "out"
    done = _recarena(
        "run", str(_scenario(tmp_path)), "-o", str(out), "-q", "--executor", executor,
        file_limit=30_000,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = _lines(done)
    assert line.startswith(f"error: 4 of 4 cells failed in {out}: ")
    assert line.count(".parquet.tmp: File too large (the file size limit, ulimit -f)") == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert not list(out.glob("**/*.parquet"))  # only .tmp files, beside _INCOMPLETE markers
    assert len(list(out.glob("arm=*/rep=*/_INCOMPLETE"))) == 4


# ------------------------------------------------------------------ no memory
@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        ImportError("libtorch_cpu.so: failed to map segment from shared object"),
        OSError(12, "Cannot allocate memory"),
    ],
    ids=["memory-error", "library-not-mapped", "enomem"],
)
def test_out_of_memory_is_said_plainly(exc):
    from recarena.simulator.core.errors import out_of_memory

    line = out_of_memory(exc)
    assert line is not None and line.startswith("out of memory (")
    assert type(exc).__name__ in line


@pytest.mark.parametrize(
    "exc", [ImportError("No module named 'x'"), OSError(2, "No such file"), ValueError("memory")]
)
def test_other_errors_are_not_called_out_of_memory(exc):
    from recarena.simulator.core.errors import out_of_memory

    assert out_of_memory(exc) is None


def _address_space_limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def test_a_command_out_of_memory_is_one_line_exit_2(tmp_path):
    """Under ``ulimit -v`` too small to load the libraries the command needs: was "error:
    internal error ImportError: libarrow_compute.so...: failed to map segment" (exit 1, "rerun
    with --debug", as for a bug). Now it says out of memory and the limit, exit 2."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "recarena.simulator.cli", "run", str(_scenario(tmp_path)),
         "-o", str(out), "-q", "--executor", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        preexec_fn=_address_space_limited(600_000_000),
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and errors[0].startswith("error: out of memory (this process may ")
    assert "ulimit -v" in errors[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cells_out_of_memory_are_the_users_to_fix(tmp_path):
    """A limit the command's checks fit in but a cell does not (it loads torch): each cell
    failed with the bare ImportError and the run exited 1, the code of a bug. Now each cell
    says out of memory and the limit, and the run exits 2."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "recarena.simulator.cli", "run", str(_scenario(tmp_path)),
         "-o", str(out), "-q", "--executor", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        preexec_fn=_address_space_limited(1_200_000_000),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: 4 of 4 cells failed in {out}: ")
    assert line.count("out of memory (this process may use 1.1 GiB of address space") == 4
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------ the forkserver
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_the_forkserver_ignores_a_stop_while_it_imports_the_engine(sig):
    """The process executor's forkserver imports the engine and torch (seconds) before it
    sets its own handlers. Was: a Ctrl-C to the process group in those seconds printed the
    forkserver's KeyboardInterrupt traceback beside the run's one line (seen with SIGINT 1.6 s
    into ``recarena run``), and a SIGTERM killed it. Now it ignores them: the run's process
    alone decides what a stop means. The signal is sent once it has begun importing the engine
    (numpy is loaded), seconds before torch is."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        import psutil
        from recarena.simulator.runner.process_pool import _forkserver_context, _stop_forkserver

        _forkserver_context()
        [server] = [
            child for child in psutil.Process().children()
            if "forkserver" in " ".join(child.cmdline())
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # it is importing the engine once numpy is loaded
            if "_multiarray_umath" in open(f"/proc/{{server.pid}}/maps").read():
                break
            time.sleep(0.01)
        server.send_signal(signal.{sig})
        time.sleep(4)
        print("alive" if server.is_running() and server.status() != "zombie" else "dead")
        _stop_forkserver()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT, capture_output=True, text=True, timeout=120, start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "alive", proc.stderr
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
