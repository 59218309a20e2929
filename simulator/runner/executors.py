"""Executors: how the cells of a run are spread over the machine (or a cluster).

An executor only schedules: every cell is simulated by ``run_cell`` (simulator/runner/cell.py), so
the executor never changes the logs. The run (simulator/runner/experiment.py) owns the manifest,
the lock, the signals and the LLM server; an executor reports what happens to each cell through
:class:`CellEvents` and must:

* report every cell it was given exactly once as finished or failed, unless the run is stopped;
* turn a cell's exception or a dead worker into ``failed(cell, one_line)`` and go on with the
  other cells: a failing cell never hangs or ends the run on its own;
* poll ``stop.check()`` at least every fraction of a second if it waits on anything
  (``StopSignals.polling``), and leave no process behind when it returns or raises.

Executors are plug-ins of the one registry kind ``executor`` (simulator/core/registry.py): the
built-ins below, or an installed package's entry point in the group ``recarena.executors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from recarena.agents.llm.endpoint import LLMRuntime
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import Registry
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.stopping import Interrupted, StopSignals


@dataclass(frozen=True)
class CellJob:
    """What every cell of a run needs besides the cell itself (picklable: sent to workers)."""

    docs: dict[int | None, dict[str, Any]]
    """The scenario document per sweep point (None without a sweep)."""
    run_dir: str
    llm_runtime: LLMRuntime | None = None


class CellEvents(Protocol):
    """How an executor tells the run what happened; the run turns it into manifest updates."""

    def started(self, cell: Cell, worker: str) -> None: ...

    def progress(self, cell: Cell, fraction: float) -> None: ...

    def finished(self, cell: Cell, cell_manifest: dict[str, Any]) -> None: ...

    def failed(self, cell: Cell, reason: str, user_error: bool) -> None: ...


@runtime_checkable
class CellExecutor(Protocol):
    """Runs cells. Built with ``(workers=..., address=...)``; both may be ignored."""

    def run(self, job: CellJob, cells: list[Cell], events: CellEvents, stop: StopSignals) -> None:
        """Run ``cells``; raise :class:`Interrupted` when ``stop`` asks, after cleaning up."""
        ...


class LocalExecutor:
    """In this process, one cell after another (debugging, notebooks, tiny runs).

    A signal raises :class:`Interrupted` straight out of the simulation (``stop.raising``)."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        del workers, address

    def run(self, job: CellJob, cells: list[Cell], events: CellEvents, stop: StopSignals) -> None:
        # the engine (mesa, pandas, scipy, torch) is imported only by the process that runs
        # cells: with ``--executor process`` the CLI process never loads it
        from recarena.simulator.runner.cell import (
            failure_line,
            keep_traceback,
            raised_in_cell,
            run_cell,
        )

        for cell in cells:
            stop.check()
            events.started(cell, "main process")

            def report(fraction: float, cell: Cell = cell) -> None:
                events.progress(cell, fraction)

            try:
                manifest = run_cell(
                    job.docs[cell.point], cell, job.run_dir, report, job.llm_runtime
                )
            except Interrupted:
                raise
            except KeyboardInterrupt as exc:
                if stop.requested:  # a stop signal, re-raised as a plain one on its way
                    raise
                # no stop signal arrived: code in the cell raised it, and it fails that cell
                # as in a process worker. It stopped the run (exit 130) and pointed to
                # --resume, which only ran into it again
                keep_traceback(job.run_dir, cell, exc)
                events.failed(cell, failure_line(raised_in_cell(exc)), False)
                continue
            except Exception as exc:  # noqa: BLE001 (a cell's failure is data for the run)
                # a stop that landed in the cell's clean-up (closing its log files) can come
                # out as that clean-up's own error: the cell was stopped, it did not fail
                stop.check()
                keep_traceback(job.run_dir, cell, exc)
                events.failed(cell, failure_line(exc), isinstance(exc, RecarenaError))
                continue
            events.finished(cell, manifest)


def _check_executor(obj: Any, name: str) -> None:
    if not (isinstance(obj, type) and callable(getattr(obj, "run", None))):
        raise LookupError(f"executor {name!r} is not a class with a run(job, cells, events, stop)")


EXECUTORS = Registry(
    "executor",
    {
        "local": (
            "recarena.simulator.runner.executors:LocalExecutor",
            "in this process, one cell after another",
        ),
        "process": (
            "recarena.simulator.runner.process_pool:ProcessExecutor",
            "one worker process per core; a dead worker fails only its cell",
        ),
        "ray": (
            "recarena.simulator.runner.ray_executor:RayExecutor",
            "one Ray task per cell, on a local Ray or a cluster (--address)",
        ),
    },
    check=_check_executor,
)


def make_executor(name: str, workers: int | None, address: str | None) -> CellExecutor:
    """The executor registered as ``name``; one-line RecarenaError for an unknown name."""
    try:
        cls = EXECUTORS.load(name)
    except LookupError as exc:
        raise RecarenaError(f"--executor: {exc}") from None
    return cls(workers=workers, address=address)
