"""``--executor ray``: one Ray task per cell, on a local Ray or a cluster (``--address``).

Ray is imported only here, only when this executor is chosen. A task whose worker dies
(``WorkerCrashedError``) or raises fails only its cell. Signals only set the run's stop flag
while Ray waits (an exception raised by a handler inside Ray's C++ wait is swallowed), and the
loop polls it; on stop every pending task is cancelled with force, and a Ray started here is
shut down here, which stops its worker processes.
"""

from __future__ import annotations

import logging
import signal
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.machine import usable_cpus
from recarena.simulator.runner.cell import failure_line, run_cell
from recarena.simulator.runner.executors import CellEvents, CellJob
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.stopping import StopSignals

POLL_SECONDS = 0.2


class _ProgressSink:
    """A Ray actor holding cells' progress reports until the driver collects them."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def put(self, index: int, fraction: float) -> None:
        self.reports.append((index, fraction))

    def drain(self) -> list[tuple[int, float]]:
        reports, self.reports = self.reports, []
        return reports


def _ray_cell(scenario_doc, cell: Cell, run_dir: str, sink, llm_runtime) -> dict[str, Any]:
    def report(fraction: float) -> None:
        sink.put.remote(cell.index, fraction)

    return run_cell(scenario_doc, cell, run_dir, report if sink is not None else None, llm_runtime)


def import_ray():
    """``import ray`` without losing our SIGTERM handler (ray replaces it with sys.exit)."""
    handler = signal.getsignal(signal.SIGTERM)
    with warnings.catch_warnings():  # ray 2.6 imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        try:
            import ray
        except ImportError:
            raise RecarenaError("--executor ray: ray is not installed (pip install ray)") from None
        finally:
            if handler is not None:
                signal.signal(signal.SIGTERM, handler)
    return ray


PROBE_SECONDS = 3.0


def check_reachable(address: str | None) -> None:
    """A ``host:port`` or ``ray://host:port`` address must answer a TCP connection, checked
    before the run directory exists: Ray itself finds out only after the run has started
    writing, and a mistyped address would leave a half-made run behind. ``auto``, ``local``
    and addresses without a port are left to Ray."""
    if not address or address in ("auto", "local"):
        return
    netloc = urlsplit(address).netloc if "://" in address else address
    host, _, port = netloc.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as exc:
        raise RecarenaError(f"--address {address}: no Ray cluster answers there ({exc})") from None


class RayExecutor:
    """A Ray session already up (``ray.init`` by the caller) is used as it is and left
    running; one started here is shut down here."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        check_reachable(address)
        self.workers = workers
        self.address = address

    def _init(self, ray) -> None:
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address:
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RecarenaError(
                    f"--address {self.address}: no Ray cluster there: {exc}"
                ) from None
        else:
            cpus = self.workers or usable_cpus()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)

    def run(self, job: CellJob, cells: list[Cell], events: CellEvents, stop: StopSignals) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        pending: dict[Any, Cell] = {}
        with stop.polling():
            try:
                if started_here:
                    self._init(ray)
                    stop.install()  # ray.init may have installed its own handlers
                stop.check()
                sink = ray.remote(num_cpus=0)(_ProgressSink).remote()
                task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
                # the run directory must be on storage the workers share; an absolute path finds it
                where = str(Path(job.run_dir).resolve())
                for cell in cells:
                    ref = task.remote(job.docs[cell.point], cell, where, sink, job.llm_runtime)
                    pending[ref] = cell
                    events.started(cell, "ray task")
                while pending:
                    stop.check()
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                    stop.check()  # a group signal also reaches Ray's processes: stop first
                    running = {cell.index: cell for cell in pending.values()}
                    try:
                        reports = ray.get(sink.drain.remote())
                    except ray.exceptions.RayError:
                        stop.check()
                        reports = []  # progress is lost, cells are not
                    for index, fraction in reports:
                        if index in running:
                            events.progress(running[index], fraction)
                    for ref in ready:
                        self._settle(ray, ref, pending.pop(ref), events)
                stop.check()
            except BaseException:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
            finally:
                if started_here:
                    ray.shutdown()

    @staticmethod
    def _settle(ray, ref, cell: Cell, events: CellEvents) -> None:
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the cell's own error
            cause = getattr(exc, "cause", None)
            error = cause if isinstance(cause, BaseException) else exc
            events.failed(cell, failure_line(error), isinstance(error, RecarenaError))
        except ray.exceptions.RayError as exc:  # the worker died (killed, OOM, node lost)
            events.failed(cell, f"ray worker died: {type(exc).__name__}", False)
        else:
            events.finished(cell, result)
