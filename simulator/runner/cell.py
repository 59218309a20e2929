"""One cell, ``(point, arm, replicate)``: simulate it and publish its directory.

Every executor calls :func:`run_cell`, so the executor never changes the logs. The cell holds
``_INCOMPLETE`` until its tables are published and its manifest (with each file's size, rows and
sha256) written, so an interrupted or killed cell is plainly marked and a finished one can be
verified later (simulator/runner/rundir.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from recarena.agents.llm.cache import CacheMiss
from recarena.agents.llm.endpoint import LLMRuntime
from recarena.simulator.core.errors import (
    RecarenaError,
    exception_line,
    first_line,
    no_room,
    out_of_memory,
    with_read_only_hint,
    write_problem,
)
from recarena.simulator.core.registry import plugin_prints_to_stderr
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.model import SimulationModel
from recarena.simulator.engine.slate_guard import RecommenderFailed
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.rundir import (
    ERROR_FILE,
    INCOMPLETE,
    MANIFEST,
    file_records,
    write_json,
)
from recarena.simulator.runner.stopping import STOP_SIGNALS


class ExitInCell(RuntimeError):
    """Code run inside a cell (a plug-in's fit or recommend, say) called ``sys.exit``.

    A SystemExit is not an Exception, so it went past every executor's handler: in the run's own
    process (``--executor local``) it ended the run with the plug-in's exit code (0 for a bare
    ``sys.exit()``: a failed run that said nothing). It fails the cell like any other error."""


class BaseExceptionInCell(ExitInCell):
    """Code run inside a cell raised a BaseException that is neither an Exception, a stop nor an
    exit (GeneratorExit, a plug-in's own subclass): it passed every executor's handler and ended
    the run with a traceback. It fails the cell like any other error."""


def raised_in_cell(exc: BaseException) -> BaseExceptionInCell:
    """The failure of a cell whose code raised ``exc``, a BaseException that is not an
    Exception (nor, in the run's own process, a stop)."""
    return BaseExceptionInCell(
        f"{exception_line(exc)} was raised inside the cell (a BaseException that is not an "
        "Exception: plug-in code must raise an Exception to fail)"
    )


@contextlib.contextmanager
def _stop_handlers_kept() -> Iterator[Callable[[], None]]:
    """Within the block, ``restore()`` puts back the stop signals' handlers as they were when
    it began; it is called once the plug-ins are built, at each progress report and at the
    end. With ``--executor local`` a plug-in (or a library it loads) that set SIGINT to
    SIG_IGN, or to a handler of its own, in its constructor took Ctrl-C from the run: the run
    went on to its end. (A worker's handlers, which ignore the stops, are kept the same way.)"""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # signal handlers belong to the main thread
        return
    kept = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, handler in kept.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)

    try:
        yield restore
    finally:
        restore()


def _restoring(
    progress: Callable[[float], None] | None, restore: Callable[[], None]
) -> Callable[[float], None]:
    """``progress``, restoring the stop handlers first (a hundred times a cell)."""

    def report(fraction: float) -> None:
        restore()
        if progress is not None:
            progress(fraction)

    return report


@contextlib.contextmanager
def _os_exit_fails_the_cell() -> Iterator[None]:
    """Within the block, ``os._exit`` in this process raises :class:`ExitInCell`. Was: a plug-in's
    ``os._exit(0)`` with ``--executor local`` ended the run at once with exit 0 and no word (the
    process executor's line was "worker process exited with code 0"). A child process forked
    inside the block still exits as it means to."""
    real, pid = os._exit, os.getpid()

    def refuse(status: int) -> NoReturn:
        if os.getpid() != pid:
            real(status)
        raise ExitInCell(
            f"os._exit({status!r}) was called inside the cell (plug-in code must raise an "
            "exception to fail, not end the process)"
        )

    os._exit = refuse
    try:
        yield
    finally:
        os._exit = real


def run_cell(
    scenario_doc: dict[str, Any],
    cell: Cell,
    run_dir: str,
    progress: Callable[[float], None] | None = None,
    llm_runtime: LLMRuntime | None = None,
) -> dict[str, Any]:
    """Simulate one cell and publish its tables; returns the cell manifest. Running out of
    memory (``ulimit -v``: torch could not even be loaded) is a user error in one line."""
    try:
        return _run_cell(scenario_doc, cell, run_dir, progress, llm_runtime)
    except (MemoryError, ImportError, OSError) as exc:
        line = out_of_memory(exc)
        if line is None:
            raise
        raise RecarenaError(line) from None


def _run_cell(
    scenario_doc: dict[str, Any],
    cell: Cell,
    run_dir: str,
    progress: Callable[[float], None] | None,
    llm_runtime: LLMRuntime | None,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # cells run in parallel; one BLAS thread each avoids oversubscription
    scenario = parse_scenario(scenario_doc)
    if not Path(run_dir).is_dir():  # removed under a running run: never recreate it silently
        raise FileNotFoundError(f"the run directory {run_dir} is gone")
    cell_dir = Path(run_dir) / cell.path
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / INCOMPLETE).write_text("this cell did not finish\n", encoding="utf-8")
    started = time.perf_counter()
    log = EventLog(cell_dir, scenario.output.flush_rows)
    try:
        # what plug-in code prints goes to stderr: stdout holds the command's answer (the A/B
        # table), which a recommender's print() on every page used to bury; so does what it
        # writes to descriptor 1 (a C library, os.write) in a cell of --executor local
        with (
            plugin_prints_to_stderr(),
            _os_exit_fails_the_cell(),
            _stop_handlers_kept() as restore,
        ):
            model = SimulationModel(
                scenario, cell.arm_index, cell.rep, log, _restoring(progress, restore), llm_runtime
            )
            restore()  # before the first fit: a plug-in's constructor may have replaced them
            model.run()
    except CacheMiss as exc:
        log.abort()
        raise RecarenaError(str(exc)) from None
    except OSError as exc:
        log.abort()
        if no_room(exc):  # the output takes no more: the user's to fix, as before the run
            raise RecarenaError(write_problem(exc)) from None
        raise
    except SystemExit as exc:
        log.abort()
        raise ExitInCell(
            f"sys.exit({exc.code!r}) was called inside the cell (plug-in code must raise an "
            "exception to fail, not exit the process)"
        ) from exc
    except (Exception, KeyboardInterrupt):
        log.abort()
        raise
    except BaseException as exc:  # noqa: BLE001 - GeneratorExit or a plug-in's own kind
        log.abort()
        raise raised_in_cell(exc) from exc
    try:
        log.close()
        wall = time.perf_counter() - started
        manifest = cell_manifest(
            cell, scenario, dict(log.rows), model.world.catalog.n, wall, model.timings
        )
        effect = getattr(model.recommender, "effect", None)
        if callable(effect):  # re-rankers report what they changed (diversity, creator Gini)
            manifest["recommender_effect"] = {k: round(v, 6) for k, v in effect().items()}
        return publish_cell(cell_dir, manifest)
    except OSError as exc:
        log.abort()
        if no_room(exc):
            raise RecarenaError(write_problem(exc)) from None
        raise


def cell_manifest(
    cell: Cell,
    scenario: Scenario,
    rows: dict[str, int],
    catalog_size: int,
    wall: float,
    timings: dict[str, float],
) -> dict[str, Any]:
    """What a finished cell's manifest says first, sharded or not: where the cell sits in the
    plan, its seed and recommender, the rows of each table, the catalog size and the times."""
    return {
        **({} if cell.point is None else {"point": cell.point}),
        "arm": cell.arm,
        "rep": cell.rep,
        "seed": scenario.seed,
        "recommender": scenario.arms[cell.arm_index].recommender.model_dump(mode="json"),
        "rows": rows,
        "catalog_size": catalog_size,
        "wall_seconds": round(wall, 3),
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "impressions_per_second": round(rows["exposures"] / wall, 1) if wall > 0 else None,
    }


def publish_cell(cell_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """List the cell's files in its manifest, write the manifest and take down the cell's
    "did not finish" marker; returns the manifest."""
    manifest["files"] = file_records(cell_dir, manifest["rows"])
    write_json(cell_dir / MANIFEST, manifest)
    (cell_dir / INCOMPLETE).unlink()
    return manifest


def failure_line(exc: BaseException) -> str:
    """One line for a cell's failure: the user's own message, or the exception's type and text."""
    if isinstance(exc, RecarenaError | ExitInCell | RecommenderFailed):
        return first_line(exc)
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - a plug-in's exception whose __str__ raises
        text = "(its message could not be printed)"
    text = with_read_only_hint(exc, text)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def keep_traceback(run_dir: str, cell: Cell, exc: BaseException) -> None:
    """Leave the full traceback in the failed cell's directory (best effort: it may be gone)."""
    cell_dir = Path(run_dir) / cell.path
    if not cell_dir.is_dir():  # the cell (or the whole run directory) is gone: keep it gone
        return
    try:
        text = "".join(traceback.format_exception(exc))
        (cell_dir / ERROR_FILE).write_text(text, encoding="utf-8")
    except OSError:
        pass
