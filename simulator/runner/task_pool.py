"""``map_in_processes``: independent tasks on a few spawned worker processes, stoppable.

Why not ``multiprocessing.Pool`` (which ``recarena fidelity`` used to train its arms): a worker
that dies (the OOM killer, a segfault) loses its task and the pool waits for it forever; its
result iterator blocks the main thread in an unbounded wait, so a SIGTERM's handler did not run
until training ended; and ``terminate`` waits on workers that ignore the signal it sends.

Here each worker has its own pipe and takes one task at a time. The parent waits on every pipe
and every worker's sentinel at once, with a timeout, so a stop signal's handler runs within
:data:`POLL_SECONDS`; a sentinel that fires while its worker holds a task is one error naming
the task and how the worker died. Workers ignore the stop signals (a Ctrl-C reaches the whole
process group; the parent decides) and die with the parent (``PR_SET_PDEATHSIG``); however the
parent leaves the map (results, an error, a stop), it kills the workers it still has by PID.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from recarena.simulator.runner.process_pool import describe_exit, pool_worker_initializer

T = TypeVar("T")
R = TypeVar("R")

POLL_SECONDS = 0.2
"""Longest wait between two chances for a stop signal's handler to run."""


def _serve(conn: Connection, fn: Callable[[Any], Any]) -> None:
    """A worker's loop: ``(index, task)`` in, ``(index, ok, result or exception)`` out."""
    pool_worker_initializer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, task = message
        try:
            reply = (index, True, fn(task))
        except Exception as exc:  # the parent re-raises it
            reply = (index, False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception: say what it was
            conn.send((index, False, RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    def __init__(self, context: Any, fn: Callable[[Any], Any]) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child, fn), daemon=True)
        self.process.start()
        child.close()
        self.task: int | None = None

    def kill(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(self.process.pid or 0), signal.SIGKILL)
        self.process.join(timeout=5.0)
        self.conn.close()


def map_in_processes(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    workers: int,
    describe: Callable[[T], str] = str,
    on_result: Callable[[int, R], None] | None = None,
) -> list[R]:
    """``[fn(task) for task in tasks]`` on ``workers`` spawned processes, tasks handed out in
    order; ``on_result(index, result)`` as each one finishes. ``fn`` must be importable by
    name (spawn). A task's exception is re-raised here; a worker that dies while holding a task
    raises RuntimeError naming ``describe(task)``; either way (and on a stop signal raised in
    this thread) the other workers are killed first."""
    if not tasks:
        return []
    context = multiprocessing.get_context("spawn")
    results: dict[int, R] = {}
    pending = list(range(len(tasks)))[::-1]  # popped from the end: in order
    pool: list[_Worker] = []
    try:
        # started inside the try: a stop while the second one spawned left the first unkilled
        for _ in range(max(1, min(workers, len(tasks)))):
            pool.append(_Worker(context, fn))
        for worker in pool:
            worker.task = pending.pop()
            worker.conn.send((worker.task, tasks[worker.task]))
        while len(results) < len(tasks):
            ready = set(
                wait([w.conn for w in pool] + [w.process.sentinel for w in pool], POLL_SECONDS)
            )
            for worker in list(pool):
                reply = None
                if worker.conn in ready:
                    with contextlib.suppress(EOFError, OSError):  # EOF: the worker is gone
                        reply = worker.conn.recv()
                if reply is not None:
                    index, ok, value = reply
                    if not ok:
                        raise value
                    results[index] = value
                    if on_result is not None:
                        on_result(index, value)
                    worker.task = pending.pop() if pending else None
                    if worker.task is not None:
                        worker.conn.send((worker.task, tasks[worker.task]))
                elif worker.conn in ready or worker.process.sentinel in ready:
                    worker.process.join(timeout=5.0)  # for its exit code
                    if worker.task is not None:
                        raise RuntimeError(
                            f"the worker process for {describe(tasks[worker.task])} "
                            f"{describe_exit(worker.process.exitcode)}"
                        )
                    worker.kill()  # died idle: nothing lost, but stop waiting on it
                    pool.remove(worker)
        return [results[i] for i in range(len(tasks))]
    finally:
        for worker in pool:
            worker.kill()
