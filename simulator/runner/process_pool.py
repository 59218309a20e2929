"""``--executor process``: a small pool of worker processes that notices when one dies.

Why not ``multiprocessing.Pool``: it never notices a worker that died (SIGKILL, the OOM killer,
a segfault, ``os._exit``) and waits for its result forever, and its ``join`` ignored SIGTERM.
Why not ``ProcessPoolExecutor``: one dead worker breaks the whole pool and every cell running
on the other workers is lost with it, without saying which cell's worker died.

So each worker here is a process with its own pipe; the parent sends it one cell at a
time and waits on all pipes *and* all process sentinels at once
(``multiprocessing.connection.wait``, with a timeout so signals are polled). A sentinel that
fires while its worker holds a cell fails exactly that cell, names the worker's PID and how it
died, and a fresh worker takes its place. Workers ignore SIGINT/SIGTERM/SIGHUP (a Ctrl-C or a
SIGTERM to the process group reaches them too; only the parent decides) and ask the kernel to
kill them if the parent dies (``PR_SET_PDEATHSIG``), so kill -9 of the parent leaves no
orphan writing into a run that ``--resume`` is about to redo. On stop the parent kills its
workers by PID.

Workers are forked from a ``forkserver`` that imported the engine and torch once (~3 CPU-s),
instead of each spawned process importing them again: with two workers that is one import
fewer per run, a tenth of a small run such as the quickstart. The forkserver is the workers'
parent; it is stopped and reaped when the run's cells are done, and exits with the run's
process in any case (its pipe closes), which the workers' death signal follows. It starts
with the stop signals blocked, so a signal to the process group leaves it to the run's process
to decide, as it does for the workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from typing import Any

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.machine import usable_cpus
from recarena.simulator.runner.executors import CellEvents, CellJob
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.stopping import STOP_SIGNALS, StopSignals

PRELOAD = ["recarena.simulator.runner.ignore_stops", "recarena.simulator.runner.cell", "torch"]
"""What the forkserver imports once for every worker it forks (first: ignore stop signals)."""
POLL_SECONDS = 0.2
"""Longest wait between two looks at the stop flag."""
JOIN_SECONDS = 5.0
"""How long an idle worker gets to exit after being told to, before it is killed."""
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this worker when its parent (the forkserver) dies (best effort
    elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def pool_worker_initializer() -> None:
    """For a ``multiprocessing.Pool`` the run's process owns (fidelity's training workers):
    stop signals are the parent's to act on (it terminates the pool), so a Ctrl-C sent to the
    whole process group prints no worker tracebacks; and the worker dies with its parent
    rather than training on, orphaned, after a SIGKILL."""
    parent = os.getppid()
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _die_with_parent(parent)


def _stdout_to_stderr() -> None:
    """Point this worker's file descriptor 1 at its stderr. A cell sends its answer through the
    pipe; stdout is the run's answer (the A/B table). A cell sends ``print`` to stderr already,
    but what a plug-in's C library, a subprocess it starts or an ``os.write(1, ...)`` wrote
    went to the descriptor, into the middle of the run's stdout."""
    with contextlib.suppress(OSError):  # no stderr to point at: leave it as it is
        sys.stdout.flush()
        os.dup2(2, 1)


def _worker_main(conn: Connection) -> None:
    """A worker's loop. Its parent is the forkserver, which lives exactly as long as the run's
    process (the pipe's EOF also ends this loop)."""
    parent = os.getppid()
    # the engine is imported here (already, in the forkserver), not in the run's process: the
    # parent only schedules cells and never pays for mesa, pandas, scipy and torch
    from recarena.simulator.runner.cell import (
        failure_line,
        keep_traceback,
        raised_in_cell,
        run_cell,
    )

    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _die_with_parent(parent)
    _stdout_to_stderr()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        doc, cell, run_dir, llm_runtime = task

        def report(fraction: float) -> None:
            conn.send(("progress", fraction))

        try:
            manifest = run_cell(doc, cell, run_dir, report, llm_runtime)
        except Exception as exc:  # noqa: BLE001 (the parent decides what a failure means)
            keep_traceback(run_dir, cell, exc)
            conn.send(("failed", failure_line(exc), isinstance(exc, RecarenaError)))
        except KeyboardInterrupt as exc:
            # a worker ignores the stop signals (the run's process stops it), so code in the
            # cell raised this itself: it fails the cell. It ended the worker with a traceback
            # on the terminal and "worker process ... exited with code 1"
            keep_traceback(run_dir, cell, exc)
            conn.send(("failed", failure_line(raised_in_cell(exc)), False))
        else:
            conn.send(("done", manifest))


def describe_exit(code: int | None) -> str:
    if code is None:
        return "vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory, or by a user)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


def _forkserver_context() -> Any:
    """The forkserver context, its server started (once per process) with :data:`PRELOAD`
    imported and the stop signals blocked: the mask is inherited through its exec, so a
    SIGTERM to the process group neither kills it (its workers would die with it before the
    run's process could stop them) nor is lost here (it is pending until unblocked)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return context


def _stop_forkserver() -> None:
    """Stop the forkserver and reap it once its workers are gone: it then counts in this
    process's child CPU time, with the workers it reaped (``time recarena run`` sees the whole
    run), and no server holding this run's code outlives the run in a long-lived process. The
    next run starts a fresh one. (``_stop`` is the standard library's own way to stop it.)"""
    with contextlib.suppress(AttributeError, OSError, ChildProcessError):
        forkserver._forkserver._stop()  # type: ignore[attr-defined]


class _Worker:
    def __init__(self, context: Any) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_worker_main, args=(child,), name="recarena-cell", daemon=False
        )
        self.process.start()
        child.close()
        self.cell: Cell | None = None

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def kill(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.join(timeout=JOIN_SECONDS)
        self.conn.close()

    def dismiss(self) -> None:
        """Ask an idle worker to exit; kill it if it does not."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout=JOIN_SECONDS)
        self.kill()


class ProcessExecutor:
    """``workers`` processes (default: one per core, at most one per cell)."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        del address
        self.workers = workers

    def run(self, job: CellJob, cells: list[Cell], events: CellEvents, stop: StopSignals) -> None:
        context = _forkserver_context()
        size = max(1, min(self.workers or usable_cpus(), len(cells)))
        queue = deque(cells)
        pool: list[_Worker] = []
        with stop.polling():
            try:
                while queue or any(w.cell is not None for w in pool):
                    stop.check()
                    self._assign(context, pool, size, queue, job, events)
                    busy = [w for w in pool if w.cell is not None]
                    wait([w.conn for w in busy] + [w.process.sentinel for w in busy], POLL_SECONDS)
                    for worker in busy:
                        self._collect(worker, events)
                    for worker in [w for w in pool if not w.process.is_alive()]:
                        pool.remove(worker)
                        self._bury(worker, events)
                stop.check()
            except BaseException:
                for worker in pool:
                    worker.kill()
                raise
            else:
                for worker in pool:
                    worker.dismiss()
            finally:
                _stop_forkserver()

    @staticmethod
    def _assign(context, pool, size, queue, job: CellJob, events: CellEvents) -> None:
        while queue:
            idle = next((w for w in pool if w.cell is None), None)
            if idle is None:
                if len(pool) >= size:
                    return
                idle = _Worker(context)
                pool.append(idle)
            cell = queue.popleft()
            try:
                idle.conn.send((job.docs[cell.point], cell, job.run_dir, job.llm_runtime))
            except (OSError, ValueError):  # died before it got the cell: try a fresh worker
                queue.appendleft(cell)
                pool.remove(idle)
                idle.kill()
                continue
            idle.cell = cell
            events.started(cell, f"pid {idle.pid}")

    @staticmethod
    def _collect(worker: _Worker, events: CellEvents) -> None:
        """Every message the worker has sent so far (progress, then done or failed)."""
        while worker.cell is not None:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                return  # the pipe broke: its sentinel says why
            kind, cell = message[0], worker.cell
            if kind == "progress":
                events.progress(cell, message[1])
            elif kind == "done":
                worker.cell = None
                events.finished(cell, message[1])
            else:
                worker.cell = None
                events.failed(cell, message[1], message[2])

    @staticmethod
    def _bury(worker: _Worker, events: CellEvents) -> None:
        """A worker died: its cell (if any) fails with one line naming the worker."""
        ProcessExecutor._collect(worker, events)  # it may have finished just before dying
        worker.process.join(timeout=JOIN_SECONDS)
        if worker.cell is not None:
            cell, worker.cell = worker.cell, None
            events.failed(
                cell, f"worker process {worker.pid} {describe_exit(worker.process.exitcode)}", False
            )
        worker.conn.close()
