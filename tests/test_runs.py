"""Runs that survive: dead workers, stop signals, the lock, kill -9 and resume, damaged cells,
unwritable output, and an LLM endpoint that is down.

Every command runs in its own process group (``start_new_session``) with a timeout, and is
killed with its group in a ``finally``, so no test can hang or leave a process behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.process_pool import describe_exit
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.rundir import LOCK, RunLock, cell_problem, lock_holder, sha256_of
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
STOP_SECONDS = 120
"""How long a stopped run, or a dead worker's notice, may take before the test calls it a hang.
A bound, not a measure: the promise is seconds, but a loaded CI machine (a slow fsync of the
manifest, a forkserver's teardown with torch loaded) stretched 10 s. Each test whose cells
could finish on their own within it asserts that cells were left unfinished."""


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "recarena.simulator.cli", *args]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", **extra}


def _start(*args: str, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        _command(*args),
        cwd=ROOT,
        env=_env(**extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killpg reaches it and its workers
    )


def _cli(
    *args: str, timeout: float = 300, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        [*prefix, *_command(*args)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=10)


def _wait_for(condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            found = condition()  # it may have come true as the run ended, after the look above
            if found:
                return found
            _, err = proc.communicate()
            raise AssertionError(f"the run ended first (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _running_cell(run_dir: Path, arm: str | None = None) -> dict | None:
    """A cell (of ``arm``, if given) the manifest says is running and that has started
    simulating (marker written)."""
    for entry in _manifest(run_dir).get("cells", []):
        if arm is not None and entry["arm"] != arm:
            continue
        if entry["status"] == "running" and (run_dir / entry["path"] / "_INCOMPLETE").exists():
            return entry
    return None


def _running_cells(run_dir: Path) -> int:
    """How many cells are running and have started simulating."""
    return sum(
        entry["status"] == "running" and (run_dir / entry["path"] / "_INCOMPLETE").exists()
        for entry in _manifest(run_dir).get("cells", [])
    )


def _finished_cells(run_dir: Path) -> int:
    """Published cells: manifest written and ``_INCOMPLETE`` gone (for an instant a cell has
    both, and a reader counts it unfinished)."""
    return sum(
        not (manifest.parent / "_INCOMPLETE").exists()
        for manifest in run_dir.glob("arm=*/rep=*/manifest.json")
    )


def _group_left(pgid: int) -> list[int]:
    """Live (non-zombie) processes still in the process group."""
    left = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return left


def _assert_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 60  # returns once they are gone; a loaded machine is slow
    while _group_left(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_left(pgid) == [], "processes of the run are still alive"


def _one_error_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def _parquet_digests(run_dir: Path) -> dict[str, str]:
    return {
        str(path.relative_to(run_dir)): sha256_of(path)
        for path in sorted(run_dir.glob("arm=*/rep=*/*.parquet"))
    }


@pytest.fixture
def slow_doc(tiny_doc):
    """Cells that take a few seconds on any machine, so there is time to hit them mid-cell:
    the popularity arm pauses a few milliseconds a page wave (tests/plugins.py)."""
    tiny_doc["horizon"]["days"] = 4
    tiny_doc["arms"][1]["recommender"] = {"type": "tests.plugins:PacedPopularity"}
    return tiny_doc


# ------------------------------------------------------------------ dead workers
def test_sigkill_of_a_worker_fails_its_cell_and_the_run_ends(tmp_path, slow_doc, write_scenario):
    slow_doc["replicates"] = 1
    # the victim is a cell of minutes: the random arm's cell lasts a fifth of a second, and
    # killed as it finished its worker died idle, failing nothing (the run then passed)
    slow_doc["arms"][1]["recommender"] = {"type": "tests.plugins:StalledPopularity"}
    out = tmp_path / "run"
    proc = _start("run", str(write_scenario(slow_doc)), "-o", str(out), "-q", "--workers", "2")
    try:
        cell = _wait_for(lambda: _running_cell(out, arm="popularity"), proc)
        pid = int(cell["worker"].removeprefix("pid "))
        os.kill(pid, signal.SIGKILL)

        def noticed():
            entry = next(c for c in _manifest(out)["cells"] if c["path"] == cell["path"])
            return entry if entry["status"] == "failed" else None

        entry = _wait_for(noticed, proc, timeout=STOP_SECONDS)  # noticed within 10 s
        assert f"worker process {pid} was killed by SIGKILL" in entry["error"]
        _, err = proc.communicate(timeout=120)  # and the run ends: no waiting on the dead
    finally:
        _kill_group(proc)
    assert proc.returncode == 1, err
    line = _one_error_line(subprocess.CompletedProcess([], 1, "", err), code=1)
    assert f"1 of 2 cells failed in {out}: {cell['path']}: worker process {pid}" in line
    manifest = _manifest(out)
    assert manifest["status"] == "failed"
    assert sorted(c["status"] for c in manifest["cells"]) == ["complete", "failed"]


def test_a_run_whose_directory_vanishes_ends_with_one_line(tmp_path, slow_doc, write_scenario):
    slow_doc["replicates"] = 1
    # both arms paced: an unpaced cell could end before a busy machine starts the other one,
    # and the two would never be seen running together
    slow_doc["arms"][0]["recommender"] = dict(slow_doc["arms"][1]["recommender"])
    out = tmp_path / "run"
    proc = _start("run", str(write_scenario(slow_doc)), "-o", str(out), "-q", "--workers", "2")
    gone = tmp_path / "gone"
    try:
        _wait_for(lambda: _running_cells(out) == 2, proc)  # both cells mid-way
        # vanishes at once: rmtree took it away file by file, and a manifest the run wrote
        # meanwhile kept the folder (rmdir: not empty), so the run went on in what was left
        out.rename(gone)
        _, err = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
        shutil.rmtree(gone, ignore_errors=True)
    line = _one_error_line(subprocess.CompletedProcess([], proc.returncode, "", err), code=1)
    assert "2 of 2 cells failed" in line and "manifest.json could not be written" in line
    assert not out.exists()  # never recreated behind the user's back
    _assert_group_gone(proc.pid)


def test_how_a_worker_died_is_said_plainly():
    assert describe_exit(-signal.SIGKILL).startswith("was killed by SIGKILL (killed: out of memory")
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert describe_exit(3) == "exited with code 3"


# ------------------------------------------------------------------ stop signals
def _interrupted_run(out: Path, scenario: Path) -> None:
    """A run stopped after its first cell (the starting point of a resume)."""
    proc = _start("run", str(scenario), "-o", str(out), "-q", "--executor", "local")
    try:
        _wait_for(lambda: _finished_cells(out) >= 1, proc)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=STOP_SECONDS)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130


@pytest.mark.parametrize(
    ("executor", "sig", "resume"),
    [
        ("process", signal.SIGTERM, False),
        ("process", signal.SIGTERM, True),
        ("local", signal.SIGHUP, False),
    ],
    ids=["process-sigterm", "resumed-process-sigterm", "local-sighup"],
)
def test_a_stop_signal_to_the_group_ends_the_run_cleanly(
    tmp_path, slow_doc, write_scenario, executor, sig, resume
):
    out = tmp_path / "run"
    scenario = write_scenario(slow_doc)
    if resume:
        _interrupted_run(out, scenario)
        args = ["run", str(scenario), "--resume", str(out)]
    else:
        args = ["run", str(scenario), "-o", str(out)]
    proc = _start(*args, "-q", "--executor", executor, "--workers", "2")
    try:
        _wait_for(lambda: _running_cell(out), proc)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=STOP_SECONDS)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    manifest = _manifest(out)
    assert manifest["status"] == "interrupted"
    statuses = {c["status"] for c in manifest["cells"]}
    assert statuses <= {"complete", "incomplete"} and "incomplete" in statuses
    _assert_group_gone(proc.pid)
    assert not (out / LOCK).exists()  # released


@pytest.mark.parametrize(
    "plugin",
    ["SwallowsErrors", "FailsWhenStopped"],
    ids=["swallowed-by-except-exception", "replaced-by-a-clean-up-error"],
)
def test_plugin_code_does_not_turn_a_stop_into_something_else(
    tmp_path, slow_doc, write_scenario, plugin
):
    """With --executor local the stop is raised inside whatever code runs. Was: as an Exception,
    a plug-in's ``try/except Exception`` swallowed it and the cell (minutes or hours) ran on to
    its end (SwallowsErrors); and clean-up code that turned it into an error of its own marked
    the cell failed, the run going on to the next cell before it stopped (FailsWhenStopped).
    Now the stop passes through ``except Exception``, and a cell that fails once a stop was
    asked for is an interrupted cell."""
    slow_doc["arms"][1]["recommender"] = {"type": f"tests.slate_plugins:{plugin}"}
    slow_doc["arms"] = slow_doc["arms"][1:]
    slow_doc["horizon"]["days"] = 30  # minutes of slow pages: only a stop ends it in time
    out = tmp_path / "run"
    proc = _start("run", str(write_scenario(slow_doc)), "-o", str(out), "-q", "--executor", "local")
    try:
        _wait_for(lambda: _running_cell(out), proc)
        time.sleep(1.0)  # inside the plug-in's pages
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=STOP_SECONDS)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130, err
    assert "interrupted (SIGINT)" in err and "Traceback" not in err
    assert {c["status"] for c in _manifest(out)["cells"]} == {"incomplete"}


# ------------------------------------------------------------------ the lock
def test_two_runs_on_one_directory_exactly_one_proceeds(tmp_path, slow_doc, write_scenario):
    out = tmp_path / "run"
    scenario = write_scenario(slow_doc)
    args = ("run", str(scenario), "-o", str(out), "-q", "--executor", "local")
    first, second = _start(*args), _start(*args)
    try:
        done = [p.communicate(timeout=300) for p in (first, second)]
    finally:
        _kill_group(first)
        _kill_group(second)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], done
    loser = done[[first.returncode, second.returncode].index(2)]
    line = _one_error_line(subprocess.CompletedProcess([], 2, "", loser[1]))
    assert "in use by" in line or "already" in line
    assert _manifest(out)["status"] == "complete"

    # while a process holds the directory, a resume of it is refused too; the holder here is
    # this test, so the check cannot race a run that finishes before the resume starts
    lock = RunLock(out).acquire()
    try:
        refused = _cli("run", str(scenario), "--resume", str(out), "-q", timeout=120)
    finally:
        lock.release()
    assert f"in use by process {os.getpid()}" in _one_error_line(refused)


def test_a_lock_taken_but_not_yet_written_names_no_pid(tmp_path, tiny_doc, write_scenario):
    """A run writes its PID just after it takes the lock. Was: a command that looked in
    between read the empty file as "-1" and refused with "in use by process -1"."""
    tiny_doc["replicates"] = 1
    out = tmp_path / "run"
    scenario = write_scenario(tiny_doc)
    run_experiment(parse_scenario(tiny_doc), out, executor="local")
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken, and (here: for ever) no PID
        assert lock_holder(out) == -1
        refused = _cli("run", str(scenario), "--resume", str(out), "-q", timeout=120)
    finally:
        os.close(fd)
        (out / LOCK).unlink()
    line = _one_error_line(refused)
    assert "in use by another process" in line and "process -1" not in line


def test_a_stale_lock_of_a_dead_process_is_reclaimed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK).write_text(f"{dead.pid}\n")
    lock = RunLock(tmp_path).acquire()
    try:
        assert lock.reclaimed == dead.pid
        with pytest.raises(RecarenaError, match=rf"in use by process {os.getpid()}"):
            RunLock(tmp_path).acquire("--resume")
    finally:
        lock.release()
    assert not (tmp_path / LOCK).exists()


# ------------------------------------------------------------------ kill -9 and resume
def test_kill_9_then_reconcile_and_resume_byte_identical(tmp_path, slow_doc, write_scenario):
    reference = tmp_path / "reference"
    run_experiment(parse_scenario(slow_doc), reference, executor="local")
    out = tmp_path / "run"
    scenario = write_scenario(slow_doc)
    proc = _start("run", str(scenario), "-o", str(out), "-q", "--workers", "1")
    try:
        _wait_for(lambda: _finished_cells(out) >= 2 and _running_cell(out), proc)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only: its worker must die with it
        proc.wait(timeout=10)
        _assert_group_gone(proc.pid)
    finally:
        _kill_group(proc)
    assert _manifest(out)["status"] == "running"  # what kill -9 leaves behind

    compared = _cli("compare", str(out), "--metric", "ctr", timeout=120)
    assert compared.returncode == 0, compared.stderr
    warned = [line for line in compared.stderr.splitlines() if "said 'running'" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: ")
    assert "no process holds it" in warned[0] and "finished" in warned[0]
    manifest = _manifest(out)
    assert manifest["status"] == "interrupted"
    assert [c["status"] for c in manifest["cells"]].count("complete") == _finished_cells(out)

    resumed = _cli("run", str(scenario), "--resume", str(out), "-q", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _manifest(out)["status"] == "complete"
    assert _parquet_digests(out) == _parquet_digests(reference)


# ------------------------------------------------------------------ damaged cells
def test_a_truncated_parquet_is_found_left_out_and_rerun(tmp_path, tiny_doc):
    out = tmp_path / "run"
    scenario = parse_scenario(tiny_doc)
    run_experiment(scenario, out, executor="local")
    original = _parquet_digests(out)
    damaged = out / "arm=popularity/rep=1/exposures.parquet"
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])

    compared = _cli("compare", str(out), "--metric", "ctr", timeout=120)
    assert compared.returncode == 0, compared.stderr
    assert "Traceback" not in compared.stderr
    warnings = [line for line in compared.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, compared.stderr
    assert "arm=popularity/rep=1 (damaged: exposures.parquet" in warnings[0]

    with pytest.warns(UserWarning, match=r"1 damaged \(arm=popularity/rep=1"):
        result = run_experiment(scenario, out, executor="local", resume=True)
    assert result.manifest["resumed_cells"] == 1
    assert _parquet_digests(out) == original


def test_a_same_size_change_is_caught_by_the_checksum(tmp_path, tiny_doc):
    tiny_doc["replicates"] = 1
    out = tmp_path / "run"
    run_experiment(parse_scenario(tiny_doc), out, executor="local")
    cell = out / "arm=random/rep=0"
    path = cell / "sessions.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, same footer: only the sha256 can tell
    path.write_bytes(bytes(data))
    assert cell_problem(cell, full=False) is None
    assert "checksum" in (cell_problem(cell, full=True) or "")


# ------------------------------------------------------------------ output checks
def _drop_root_privileges() -> tuple[str, ...]:
    """As root, permissions do not apply; setpriv drops the capabilities that bypass them."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory unwritable")
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--")


def test_unwritable_output_is_one_line_before_any_work(tmp_path, tiny_doc, write_scenario):
    scenario = write_scenario(tiny_doc)
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = _cli("run", str(scenario), "-o", str(locked / "run"), prefix=_drop_root_privileges())
        assert "cannot write in" in _one_error_line(done)
        assert not (locked / "run").exists()
    finally:
        locked.chmod(0o755)
    a_file = tmp_path / "plain-file"
    a_file.write_text("not a directory")
    done = _cli("run", str(scenario), "-o", str(a_file / "run"))
    assert "is a file, not a directory" in _one_error_line(done)


def test_the_log_size_estimate_is_printed(tmp_path, tiny_doc, write_scenario):
    tiny_doc["replicates"] = 1
    out = tmp_path / "run"
    done = _cli("run", str(write_scenario(tiny_doc)), "-o", str(out), "--executor", "local")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if "estimated logs" in x)
    assert "impressions over 2 cell(s)" in line and "free:" in line


def test_the_log_size_estimate_covers_a_small_run_on_disk(tmp_path, tiny_doc, write_scenario):
    """Was: a small run's files take a block each, more than their bytes, so the estimate fell
    below what the run took on disk (162 KB vs 180 KB at 30 users): on a disk with room for the
    estimate alone the run passed the check and failed mid-way on a full disk."""
    from recarena.simulator.runner.output_check import estimate_logs
    from recarena.simulator.runner.resolve import parse_scenario

    tiny_doc.update(replicates=1, horizon={"days": 1, "tick_seconds": 300})
    tiny_doc["population"]["users"] = 30
    out = tmp_path / "run"
    done = _cli("run", str(write_scenario(tiny_doc)), "-o", str(out), "--executor", "local")
    assert done.returncode == 0, done.stderr
    on_disk = sum(p.stat().st_blocks * 512 for p in out.rglob("*") if p.is_file())
    assert estimate_logs(parse_scenario(tiny_doc)).bytes >= on_disk


# ------------------------------------------------------------------ LLM endpoint down
PANEL = {
    "name": "panel",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 120},
    "catalog": {"initial_items": 200, "topics": 8},
    "population": {"users": 60, "model": "mixed", "max_pages": 3, "llm_panel": {"users": 2}},
    "creators": {"count": 4},
    "surface": {"k": 5},
    "llm": {"provider": "openai", "model": "fake", "timeout_seconds": 1, "max_retries": 0},
    "arms": [
        {"name": "random", "recommender": {"type": "random"}},
        {"name": "popularity", "recommender": {"type": "popularity"}},
    ],
}


def test_an_endpoint_that_is_down_is_a_warning_and_exit_3(tmp_path, write_scenario):
    """An endpoint that refuses connections is refused before the run (one line, exit 2); with
    --allow-fallback the run goes ahead as a run of rule users, with the warning."""
    with FakeOpenAI() as fake:  # started and stopped: its port now refuses connections
        base_url = fake.base_url
    doc = json.loads(json.dumps(PANEL))
    doc["llm"]["base_url"] = base_url
    doc["llm"]["cache"] = {"path": str(tmp_path / "cache.sqlite"), "mode": "record"}
    refused = _cli(
        "run", str(write_scenario(doc)), "-o", str(tmp_path / "refused"), "--executor",
        "local", "-q",
    )  # fmt: skip
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert f"llm.base_url {base_url}: nothing answers" in refused.stderr
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "run"
    done = _cli(
        "run", str(write_scenario(doc)), "-o", str(out), "--executor", "local", "-q",
        "--max-fallback", "0.99",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr  # a threshold below 1 still needs the endpoint
    with FakeOpenAI(["500"]) as fake:  # up, but every call fails
        doc["llm"]["base_url"] = fake.base_url
        done = _cli("run", str(write_scenario(doc)), "-o", str(out), "--executor", "local", "-q")
    doc["llm"]["base_url"] = base_url
    assert done.returncode == 3, done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "fell back to the rule policy" in warning[0]
    assert "(100%)" in warning[0] and "--allow-fallback" in warning[0]
    assert "LLM fallback share" in done.stdout and "random 100.0%" in done.stdout
    fallback = _manifest(out)["llm"]["fallback"]
    assert fallback["exceeded"] and fallback["share"] == 1.0 and fallback["decisions"] > 0

    report = _cli("report", str(out), timeout=120)
    assert report.returncode == 0, report.stderr
    html = (out / "report.html").read_text()
    assert 'id="llm-fallback"' in html and "100.0%" in html and "fell back" in html

    accepted = _cli(
        "run", str(write_scenario(doc)), "-o", str(tmp_path / "accepted"), "--executor",
        "local", "-q", "--allow-fallback",
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert "fell back" in accepted.stderr
    relaxed = _cli(
        "run", str(write_scenario(doc)), "-o", str(tmp_path / "relaxed"), "--executor",
        "local", "-q", "--max-fallback", "1",
    )  # fmt: skip
    assert relaxed.returncode == 0 and "fell back to the rule policy" not in relaxed.stderr
