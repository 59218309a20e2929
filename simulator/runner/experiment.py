"""Experiment: every (arm, replicate) cell of a scenario, run by a pluggable executor.

This module is the run's bookkeeper; the parts it composes each have one job:

* simulator/runner/rundir.py — the run directory format (manifest, markers, lock, checks);
* simulator/runner/cell.py — one cell: simulate and publish (:func:`run_cell`);
* simulator/runner/executors.py — how cells are spread (local, process, ray; plug-ins);
* simulator/runner/stopping.py — SIGINT/SIGTERM/SIGHUP turned into a clean stop;
* simulator/runner/preflight.py — the output checked and the log size estimated up front;
* simulator/runner/fallback.py — how much "LLM" behaviour was the rule fallback.

The run manifest is rewritten atomically whenever a cell starts, finishes or fails (an event
close on the last write's heels waits for the next, see WRITE_SHARE) and when the run ends; after
kill -9 the next reader reconciles it with the cells' markers.
A failing cell (an exception, a dead worker) fails alone: the other cells run, and the run ends
with :class:`CellsFailed` listing the failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from recarena.agents.llm.client import REFUSED_PREFIX
from recarena.agents.llm.endpoint import LLMRuntime, model_name
from recarena.agents.llm.server import LocalServer, check_local_llm
from recarena.agents.users.calibrated import resolve_calibrated
from recarena.simulator.core.errors import RecarenaError, naming_file, write_problem
from recarena.simulator.core.logschema import LOG_FORMAT_VERSION
from recarena.simulator.core.names import path_component
from recarena.simulator.core.paths import RUN_DIR_ROOM, check_creatable
from recarena.simulator.core.scenario import Scenario, dump_scenario
from recarena.simulator.runner.executors import CellJob, make_executor
from recarena.simulator.runner.fallback import FallbackCheck, check_fallback
from recarena.simulator.runner.inputs import changed_input, fingerprints
from recarena.simulator.runner.llm_accounting import summarize_llm_calls
from recarena.simulator.runner.llm_cells import CellRecorder
from recarena.simulator.runner.output_check import (
    RUN_NAME_ROOM,
    check_output,
    estimate_logs,
    free_bytes,
)
from recarena.simulator.runner.plan import Cell, cell_docs, plan_cells
from recarena.simulator.runner.preflight import human_bytes
from recarena.simulator.runner.rundir import (
    CELL_RUNNING,
    COMPLETE,
    FAILED,
    INCOMPLETE,
    INTERRUPTED,
    MANIFEST,
    PENDING,
    RUNNING,
    SCENARIO_FILE,
    UNFINISHED,
    CellCheck,
    RunLock,
    cell_problem,
    cell_published,
    cell_summary,
    describe_checks,
    holder_name,
    lock_holder,
    read_cell_manifest,
    read_manifest,
    write_json,
)
from recarena.simulator.runner.stopping import Interrupted, StopSignals
from recarena.simulator.runner.sweep import expand_sweep

__all__ = [
    "INCOMPLETE",
    "Cell",
    "CellsFailed",
    "CellsRefused",
    "Interrupted",
    "RunDirTaken",
    "RunResult",
    "cell_complete",
    "new_run_dir",
    "plan_cells",
    "resumable_manifest",
    "run_experiment",
]


def __getattr__(name: str) -> Any:
    """``run_cell`` is re-exported on first use: importing the engine here would load mesa,
    pandas, scipy and torch (~2 CPU-s) in the CLI process, which only schedules cells."""
    if name == "run_cell":
        from recarena.simulator.runner.cell import run_cell

        return run_cell
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Executor = Literal["local", "process", "ray"]
PACKAGES = (
    "recarena",
    "mesa",
    "simpy",
    "numpy",
    "pandas",
    "polars",
    "pyarrow",
    "torch",
    "pydantic",
)
MAX_LISTED_FAILURES = 5

cell_complete = cell_published  # the name older callers import


class CellsFailed(Exception):
    """Some cells failed (an exception in the cell, or its worker died); the rest finished.

    ``failures`` maps each failed cell's path to one line. The CLI exits 1 (2 when every
    failure was the user's, see :class:`CellsRefused`)."""

    def __init__(
        self, run_dir: Path, failures: dict[str, str], total: int, lost: str | None = None
    ) -> None:
        self.run_dir = run_dir
        self.failures = failures
        listed = "; ".join(f"{p}: {why}" for p, why in list(failures.items())[:MAX_LISTED_FAILURES])
        more = len(failures) - MAX_LISTED_FAILURES
        super().__init__(
            f"{len(failures)} of {total} cells failed in {run_dir}: {listed}"
            + (f"; and {more} more (see manifest.json)" if more > 0 else "")
            + (f"; {lost}" if lost else "")
        )


class CellsRefused(CellsFailed, RecarenaError):
    """Every failed cell failed on a user error (a RecarenaError inside the cell)."""


class EndpointRefusedRun(RecarenaError):
    """A cell's first LLM calls were all refused (401, 403, 404: agents/llm/client.py): the
    run stops there, its finished cells kept, rather than run every cell into the same wall."""

    reason = ""
    """The cell's own refusal line, without where the run stopped (a command that runs a
    scenario of its own, such as ``recarena fidelity --llm``, names no run to resume)."""


class RunDirTaken(RecarenaError):
    """Another run took a new run's directory first: it holds the directory's lock, or has
    written its manifest there. Nothing of this run was written. Two runs of one scenario
    started in the same second are both named ``<name>-<stamp>`` by :func:`new_run_dir`; the
    CLI then names this one again (the next free name) instead of failing."""


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def git_commit() -> str | None:
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def new_run_dir(scenario: Scenario, output: Path | None) -> Path:
    """``output`` if given (must not hold files), else ``<output.dir>/<name>-<UTC stamp>``."""
    if output is not None:
        check_creatable(output, "--output", room=RUN_DIR_ROOM - RUN_NAME_ROOM)
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise RecarenaError(
                f"--output {output}: already exists and is not an empty directory "
                "(to finish an interrupted run there: --resume)"
            )
        return output
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(scenario.output.dir) / f"{path_component(scenario.name, 'name')}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict[str, Any]
    fallback: FallbackCheck | None = None
    """The LLM fallback share of the run (None without LLM decisions to count)."""


WRITE_SHARE = 0.05
"""At most about this share of a run's wall time goes to rewriting its manifest. The manifest
lists every cell, so a write costs in proportion to the cells: at 100,000 cells (what the
preflight allows) one took 2 s, and three per cell would have been 170 hours of writing."""


class _RunBook:
    """The run manifest kept true (CellEvents): every cell event is written atomically, except
    that one coming sooner after the last write than WRITE_SHARE allows waits for the next
    event or progress report (the cells' own markers are the truth a reader reconciles with,
    as after kill -9); the run's end is always written."""

    def __init__(
        self,
        run_dir: Path,
        manifest: dict[str, Any],
        on_progress: Callable[[Cell, float], None] | None,
    ) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self.on_progress = on_progress
        self.failures: dict[str, str] = {}
        self.user_errors: dict[str, bool] = {}
        self.t0 = time.perf_counter()
        self.started_any = False
        """Whether any cell was handed to the executor (a run that failed before is discarded)."""
        self.unsaved: str | None = None
        """Why the manifest could not be written (its directory removed or made read-only
        during the run); the run goes on and says so at the end instead of dying mid-way."""
        self.on_finished: Callable[[Cell], None] | None = None
        """Called with each cell that finished (the LLM cache notes it: llm_cells.py)."""
        self.next_save = 0.0
        """Monotonic time before which a cell event's write is deferred (see WRITE_SHARE)."""
        self.deferred = False

    def save(self, now: bool = True) -> None:
        """Write the manifest; a cell event's write (``now=False``) may be deferred."""
        began = time.monotonic()
        if not now and began < self.next_save:
            self.deferred = True
            return
        try:
            write_json(self.run_dir / MANIFEST, self.manifest)
        except OSError as exc:
            self.unsaved = self.unsaved or f"{exc.strerror or type(exc).__name__}"
        ended = time.monotonic()
        self.next_save = ended + (ended - began) / WRITE_SHARE
        self.deferred = False

    def _entry(self, cell: Cell) -> dict[str, Any]:
        return self.manifest["cells"][cell.index]

    def started(self, cell: Cell, worker: str) -> None:
        self.started_any = True
        self._entry(cell).update(
            status=CELL_RUNNING, worker=worker, started_at=datetime.now(UTC).isoformat()
        )
        self.save(now=False)

    def progress(self, cell: Cell, fraction: float) -> None:
        if self.deferred:
            self.save(now=False)
        if self.on_progress:
            self.on_progress(cell, fraction)

    def finished(self, cell: Cell, cell_manifest: dict[str, Any]) -> None:
        entry = self._entry(cell)
        entry.pop("worker", None)
        entry.update(status=COMPLETE, **cell_summary(cell_manifest))
        self.save(now=False)
        if self.on_finished is not None:
            self.on_finished(cell)
        if self.on_progress:
            self.on_progress(cell, 1.0)

    def failed(self, cell: Cell, reason: str, user_error: bool) -> None:
        self._entry(cell).update(status=FAILED, error=reason)
        self.failures[cell.path] = reason
        self.user_errors[cell.path] = user_error
        self.save(now=False)
        if reason.startswith(REFUSED_PREFIX):  # every cell would meet it: stop them all
            done = sum(e["status"] == COMPLETE for e in self.manifest["cells"])
            stop = EndpointRefusedRun(
                f"{reason}. The run stopped in cell {cell.path}: {done} finished cells are "
                f"readable in {self.run_dir}, the others are incomplete (--resume "
                f"{self.run_dir} runs them once that is fixed)"
            )
            stop.reason = reason
            raise stop

    def finish(self, status: str) -> None:
        if status != COMPLETE:  # nothing is left running once the run has ended
            for entry in self.manifest["cells"]:
                if entry["status"] in (PENDING, CELL_RUNNING):
                    entry["status"] = UNFINISHED
                    entry.pop("worker", None)
        self.manifest["status"] = status
        self.manifest["wall_seconds"] = round(time.perf_counter() - self.t0, 3)
        self.manifest["ended_at"] = datetime.now(UTC).isoformat()
        self.save()


def _llm_runtime(
    scenario: Scenario, mode: str | None, cache_path: Path | None, run_dir: Path
) -> LLMRuntime | None:
    if not scenario.uses_llm:
        return None
    path = cache_path or Path(
        scenario.llm.cache.path or run_dir / "llm_cache.sqlite"  # the cache lives with the run
    )
    mode = mode or scenario.llm.cache.mode
    if mode == "replay" and not path.is_file():
        raise RecarenaError(f"llm.cache.path: {path} does not exist; nothing to replay")
    if scenario.llm.provider == "local" and mode != "replay":
        check_local_llm(scenario.llm.model_path)  # the extra and the model file, in one line
    return LLMRuntime(
        run_id=f"{scenario.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}",
        cache_path=str(path.resolve()),
        base_url=scenario.llm.base_url or os.environ.get("OPENAI_BASE_URL"),
        cache_mode=mode,
    )


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _stop_when_server_dies(server: LocalServer) -> list[str]:
    """If the embedded LLM server dies mid-run, stop the run as a signal would (finished cells
    kept, ``--resume`` finishes it) instead of letting every later decision fall back to the
    rule policy. Returns the list the watch puts its one-line reason in. Signals reach only the
    main thread, so a run started from another thread is not watched."""
    death: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        return death

    def stop_run(line: str) -> None:
        death.append(line)
        os.kill(os.getpid(), signal.SIGTERM)

    server.watch(stop_run)
    return death


def run_experiment(
    scenario: Scenario,
    run_dir: Path,
    executor: Executor | str = "process",
    workers: int | None = None,
    on_progress: Callable[[Cell, float], None] | None = None,
    cells: list[Cell] | None = None,
    llm_cache_mode: str | None = None,
    llm_cache_path: Path | None = None,
    address: str | None = None,
    resume: bool = False,
    on_note: Callable[[str], None] | None = None,
    max_fallback: float | None = None,
    shards: int = 1,
) -> RunResult:
    """Run every cell; raises :class:`Interrupted` after marking the run on a stop signal and
    :class:`CellsFailed` (after finishing the other cells) when cells failed.

    Before anything is written: the executor is looked up, the output checked (writable, room
    for the estimated logs: :func:`check_run_output`) and the run directory locked (a second
    run or resume on it is a one-line RecarenaError). ``on_note`` gets one-line findings (a
    reclaimed stale lock, what resume found); without it they are warnings. With LLM users
    the cache and (for ``llm.provider: local``) a llama.cpp server are set up once for all
    cells; the server is stopped by its PID however the run ends, and the share of LLM
    decisions that fell back is measured (``RunResult.fallback``; threshold ``max_fallback``
    or ``llm.max_fallback_share``).

    ``executor`` is a registered executor (local, process, ray, or a plug-in); ``"ray"`` uses the
    cluster at ``address`` or a local Ray with ``workers`` CPUs. ``resume=True`` continues the
    run in ``run_dir`` with the same scenario: finished cells that pass their checksums are
    kept untouched, the rest rerun.
    """
    note = on_note or _warn
    scenario = resolve_calibrated(scenario)  # no-op unless population.from is 'calibrated'
    points = expand_sweep(scenario)
    cells = cells if cells is not None else plan_cells(scenario, points)
    runner = make_executor(executor, workers, address)
    if shards > 1:  # one cell's users over N Ray actors (simulator/runner/sharding.py)
        from recarena.simulator.runner.sharding import ShardedRayExecutor, check_shards

        if executor != "ray":
            raise RecarenaError(f"--shards {shards}: needs --executor ray")
        check_shards(scenario, points, shards)  # a sweep point's own: a swept surface may not
        runner = ShardedRayExecutor(shards, workers, address)
    option = "--resume" if resume else "--output"
    inputs = fingerprints(scenario, points)  # the files it reads, so a resume can compare them
    previous = resumable_manifest(run_dir, scenario, inputs) if resume else None
    llm_runtime = _llm_runtime(scenario, llm_cache_mode, llm_cache_path, run_dir)
    check_run_output(scenario, run_dir, cells, resume)

    made = _missing_ancestor(run_dir)
    # the run's stop handlers cover its set-up too: a SIGTERM or SIGHUP there killed the
    # process where it stood, leaving a directory that held only its .lock (neither a run to
    # --resume nor an empty --output)
    with StopSignals(watch=True) as stop:
        stop.check()  # a stop that came during the checks: nothing is made
        lock = _make_and_lock(run_dir, option, made, resume, stop)
        try:
            if lock.reclaimed is not None:
                note(
                    f"{run_dir}: reclaimed the lock of process {lock.reclaimed}, which is no "
                    "longer running (killed?)"
                )
            return _run_locked(
                scenario,
                run_dir,
                points,
                cells,
                runner,
                previous,
                inputs,
                llm_runtime,
                on_progress,
                note,
                executor,
                max_fallback,
                stop,
            )
        except _NothingStarted as exc:
            # the executor refused to start (no Ray cluster at --address auto, a local LLM
            # server that would not come up), the run's first files could not be written, or a
            # stop came before its manifest was: nothing of a new run is left behind
            if previous is None:
                _discard_new_run(run_dir, made, lock)
            lock.release()
            raise exc.error from None
        finally:
            lock.release()


def _write_problem(exc: OSError, option: str, run_dir: Path) -> RecarenaError:
    """One line for a file of the run that could not be written (a full disk, a file size
    limit, a directory made read-only or removed): the file and the system's reason."""
    if not exc.filename:
        exc = OSError(exc.errno, exc.strerror, str(run_dir))
    return RecarenaError(f"{option} {run_dir}: {write_problem(exc)}")


def _write_text(path: Path, text: str) -> None:
    """``path.write_text``, with the file named in its error (a failed write names none)."""
    with naming_file(path):
        path.write_text(text, encoding="utf-8")


def _make_and_lock(
    run_dir: Path, option: str, made: Path | None, resume: bool, stop: StopSignals
) -> RunLock:
    """Create the run directory and take its lock, a stop signal held off until both are done
    (one between them left a directory no command would take); one line when the system
    refuses either. A stop that came meanwhile is raised once both are undone."""
    with stop.polling():
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = RunLock(run_dir).acquire(option)
        except OSError as exc:
            if not resume:
                _discard_new_run(run_dir, made)
            raise _write_problem(exc, option, run_dir) from None
        except RecarenaError as exc:  # held by another process: it is that run's, untouched
            raise exc if resume else RunDirTaken(str(exc)) from None
    try:
        stop.check()
    except Interrupted:
        if not resume:
            _discard_new_run(run_dir, made, lock)
        lock.release()
        raise
    return lock


class _NothingStarted(Exception):
    """A run ended before any cell started: its executor failed with a RecarenaError, its first
    files could not be written, or (a new run) a stop came before its manifest was written."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _missing_ancestor(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _discard_new_run(run_dir: Path, made: Path | None, lock: RunLock | None = None) -> None:
    """Remove what a new run wrote into ``run_dir`` (empty or new when it started; the lock
    kept other runs out) and the folders made for it. Its files go while ``lock`` is held,
    the lock last: released first, another run could take the directory and have its own new
    files removed with this run's."""
    if run_dir.is_dir():
        for entry in run_dir.iterdir():
            if lock is not None and entry == lock.path:
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    if lock is not None:
        lock.release()
    if made is None:
        return
    for folder in (run_dir, *run_dir.parents):
        try:
            folder.rmdir()  # only empty folders: whatever else appeared there stays
        except OSError:
            return
        if folder == made:
            return


def check_run_output(
    scenario: Scenario,
    run_dir: Path,
    cells: list[Cell],
    resume: bool,
    option: str | None = None,
) -> str:
    """Before any work: the output is writable, not in use, and the disk holds the estimated
    logs of the cells still to run; returns the estimate as one line (the CLI prints it).
    ``option`` names where the directory came from in error lines (default: --resume or
    --output; the CLI passes output.dir when the scenario chose it)."""
    option = option or ("--resume" if resume else "--output")
    holder = lock_holder(run_dir)
    if holder is not None:
        taken = RecarenaError if resume else RunDirTaken
        raise taken(f"{option} {run_dir}: the run directory is in use by {holder_name(holder)}")
    waiting = [c for c in cells if not cell_published(run_dir / c.path)] if resume else cells
    estimate = estimate_logs(scenario, len(waiting))
    check_output(run_dir, estimate.bytes, option)
    if resume:  # a file where a cell's directory belongs failed that cell (NotADirectoryError)
        for cell in waiting:
            check_creatable(run_dir / cell.path, option)
    return f"{estimate.line()}; free: {human_bytes(free_bytes(run_dir))}"


def _run_locked(
    scenario: Scenario,
    run_dir: Path,
    points,
    cells: list[Cell],
    runner,
    previous: dict[str, Any] | None,
    inputs: dict[str, Any],
    llm_runtime: LLMRuntime | None,
    on_progress,
    note: Callable[[str], None],
    executor_name: str,
    max_fallback: float | None,
    stop: StopSignals,
) -> RunResult:
    if previous is None and (run_dir / MANIFEST).exists():  # lost a race for this directory
        raise RunDirTaken(
            f"--output {run_dir}: already holds a run (to finish it: --resume {run_dir})"
        )
    option = "--output" if previous is None else "--resume"
    manifest = _new_manifest(scenario, points, cells, executor_name, llm_runtime)
    manifest["inputs"] = inputs
    book = _RunBook(run_dir, manifest, on_progress)
    if llm_runtime is not None:
        book.on_finished = CellRecorder(
            scenario, llm_runtime.cache_path, llm_runtime.cache_mode, llm_runtime.run_id
        )
    try:
        if previous is None:
            _write_text(run_dir / SCENARIO_FILE, dump_scenario(scenario))
            for point in points:  # each point's scenario, as a plain run of it would save it
                (run_dir / point.path).mkdir(exist_ok=True)
                _write_text(run_dir / point.path / SCENARIO_FILE, dump_scenario(point.scenario))
        to_run = _prepare_cells(run_dir, cells, manifest, previous, note)
        # the first manifest must be on disk before any cell runs: was, on a full disk or under
        # a file size limit, every cell ran and failed, leaving a directory without a manifest
        write_json(run_dir / MANIFEST, manifest)
    except OSError as exc:
        raise _NothingStarted(_write_problem(exc, option, run_dir)) from None
    except (KeyboardInterrupt, Interrupted) as exc:  # before the run existed: nothing to keep
        if previous is not None:
            raise
        raise _NothingStarted(Interrupted(str(exc) or "SIGINT")) from None
    job = CellJob(cell_docs(scenario, points), str(run_dir), llm_runtime)

    server = None
    server_death: list[str] = []
    try:
        stop.check()  # a stop during the set-up: the run is kept, every cell unfinished
        if llm_runtime is not None and _needs_local_server(scenario, llm_runtime):
            server = LocalServer(
                scenario.llm.context_tokens,
                scenario.llm.threads,
                scenario.llm.model_path,
                model_name(scenario),
            )
            server.start()  # assigned first: a signal during start still stops it
            assert server.process is not None
            server_death = _stop_when_server_dies(server)
            manifest["llm"]["server"] = {"pid": server.process.pid, "base_url": server.base_url}
            job = CellJob(
                job.docs,
                job.run_dir,
                LLMRuntime(
                    llm_runtime.run_id,
                    llm_runtime.cache_path,
                    server.base_url,
                    llm_runtime.cache_mode,
                ),
            )
        if on_progress:
            for cell in cells:
                if cell not in to_run:  # finished before a resume
                    on_progress(cell, 1.0)
        if to_run:
            runner.run(job, to_run, book, stop)
        stop.check()
    except (KeyboardInterrupt, Interrupted) as exc:
        book.finish(INTERRUPTED)
        if server_death:  # the stop was the watch's, not the user's: say why
            raise Interrupted(server_death[0]) from None
        raise Interrupted(str(exc) or "interrupted") from None
    except BaseException:
        if stop.requested:  # an error caused by the stop itself (Ray's processes got it too)
            book.finish(INTERRUPTED)
            raise Interrupted(server_death[0] if server_death else stop.name) from None
        error = sys.exc_info()[1]
        if previous is None and not book.started_any and isinstance(error, RecarenaError):
            raise _NothingStarted(error) from None
        book.finish(FAILED)
        raise
    finally:
        if server is not None:
            server.stop()
    fallback = None
    if llm_runtime is not None:
        manifest["llm"]["accounting"] = summarize_llm_calls(run_dir, scenario)
        threshold = scenario.llm.max_fallback_share if max_fallback is None else max_fallback
        finished = [
            (c.arm, run_dir / c.path)
            for c in cells
            if manifest["cells"][c.index]["status"] == COMPLETE
        ]
        fallback = check_fallback(finished, threshold)
        manifest["llm"]["fallback"] = fallback.to_json()
    book.save()  # a directory removed after the last cell event shows here, not never
    lost = None
    if book.unsaved is not None:
        # "removed?" only when it was: a full disk leaves the directory where it was
        hint = "" if run_dir.is_dir() else f": was {run_dir} removed?"
        lost = f"manifest.json could not be written ({book.unsaved}){hint}"
    if book.failures or lost:
        book.finish(FAILED)
        refused = not lost and all(book.user_errors.values())
        raise (CellsRefused if refused else CellsFailed)(run_dir, book.failures, len(cells), lost)
    book.finish(COMPLETE)
    return RunResult(run_dir, manifest, fallback)


def _new_manifest(scenario, points, cells, executor_name, llm_runtime) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": scenario.name,
        "status": RUNNING,
        "pid": os.getpid(),
        "baseline": scenario.baseline,
        "arms": [arm.name for arm in scenario.arms],
        "replicates": scenario.replicates,
        "seed": scenario.seed,
        "metrics": scenario.metrics,
        "scenario": scenario.model_dump(mode="json"),
        "started_at": datetime.now(UTC).isoformat(),
        "executor": executor_name,
        "log_format": LOG_FORMAT_VERSION,
        "versions": versions(),
        "git_commit": git_commit(),
        "cells": [
            {
                **({} if c.point is None else {"point": c.point}),
                "arm": c.arm,
                "rep": c.rep,
                "path": c.path,
                "status": PENDING,
            }
            for c in cells
        ],
    }
    if llm_runtime is not None:  # never the API key: only the name of its variable
        manifest["llm"] = {
            "run_id": llm_runtime.run_id,
            "cache_path": llm_runtime.cache_path,
            "cache_mode": llm_runtime.cache_mode,
        }
    if points:
        manifest["sweep"] = {
            "paths": list(scenario.sweep or {}),
            "points": [{"point": p.index, "path": p.path, "params": p.params} for p in points],
        }
    return manifest


def _needs_local_server(scenario: Scenario, runtime: LLMRuntime) -> bool:
    return scenario.llm.provider == "local" and runtime.cache_mode != "replay"


def resumable_manifest(
    run_dir: Path, scenario: Scenario, inputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest of the run to resume, after checking it ran this very scenario on the
    same input files (``inputs``: their fingerprints now, simulator/runner/inputs.py)."""
    previous = read_manifest(run_dir, "--resume")
    written = previous.get("log_format", 1)
    if written != LOG_FORMAT_VERSION:  # its finished cells would sit beside another format's
        raise RecarenaError(
            f"--resume {run_dir}: the run was written in log format {written} and this "
            f"recarena writes {LOG_FORMAT_VERSION}; start a new run (or resume with the "
            "version that started it)"
        )
    current = json.loads(json.dumps(scenario.model_dump(mode="json"), default=str))
    where = _first_difference(previous.get("scenario"), current)
    if where is not None:
        raise RecarenaError(
            f"--resume {run_dir}: the scenario differs from the one the run started with "
            f"(at {where or 'the top level'}); resume with the same file and options"
        )
    if inputs is None:
        inputs = fingerprints(scenario, expand_sweep(scenario))
    changed = changed_input(previous.get("inputs"), inputs)
    if changed is not None:  # its finished cells were simulated from other data
        raise RecarenaError(
            f"--resume {run_dir}: {changed}; its finished cells were simulated from the file "
            "as it was: resume with the files the run started with, or start a new run"
        )
    return previous


def _first_difference(old: Any, new: Any, where: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in old or key not in new:
                return f"{where}.{key}".lstrip(".")
            found = _first_difference(old[key], new[key], f"{where}.{key}")
            if found is not None:
                return found.lstrip(".")
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = _first_difference(a, b, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return None if old == new else where.lstrip(".")


def _prepare_cells(
    run_dir: Path,
    cells: list[Cell],
    manifest: dict[str, Any],
    previous: dict[str, Any] | None,
    note: Callable[[str], None],
) -> list[Cell]:
    """Cells still to run. On resume, finished cells whose files pass their checksums are
    marked complete and left alone; a damaged or half-written cell is removed and reruns."""
    if previous is None:
        return list(cells)
    manifest["started_at"] = previous.get("started_at", manifest["started_at"])
    manifest["resumed_at"] = [*previous.get("resumed_at", []), datetime.now(UTC).isoformat()]
    to_run, checks = [], []
    # the rows the run recorded for each finished cell: the same cell of another run (another
    # seed), copied or linked in, names the same arm and replicate and was kept as this run's
    recorded = {e.get("path"): e.get("rows") for e in previous.get("cells", [])}
    for cell in cells:
        cell_dir = run_dir / cell.path
        expected = {"arm": cell.arm, "rep": cell.rep, "point": cell.point}
        problem = cell_problem(
            cell_dir, full=True, expected={**expected, "rows": recorded.get(cell.path)}
        )
        checks.append(CellCheck(cell.index, cell.path, PENDING, problem))
        if problem is None:
            entry = manifest["cells"][cell.index]
            entry.update(status=COMPLETE, **cell_summary(read_cell_manifest(cell_dir)))
            continue
        if cell_dir.is_symlink():  # a link to a cell elsewhere: rmtree refuses links
            cell_dir.unlink()
        elif cell_dir.exists():
            shutil.rmtree(cell_dir)
        to_run.append(cell)
    manifest["resumed_cells"] = len(to_run)
    said = previous.get("status")
    stale = " (the manifest said 'running': its process is gone)" if said == RUNNING else ""
    note(f"resume {run_dir}{stale}: {describe_checks(checks)}; rerunning {len(to_run)}")
    return to_run
