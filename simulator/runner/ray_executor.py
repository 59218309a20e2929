"""``--executor ray``: one Ray task per cell, on a local Ray or a cluster (``--address``).

Ray is imported only here, only when this executor is chosen. A task whose worker dies
(``WorkerCrashedError``) or raises fails only its cell. Signals only set the run's stop flag
while Ray waits (an exception raised by a handler inside Ray's C++ wait is swallowed), and the
loop polls it; on stop every pending task is cancelled with force, and a Ray started here is
shut down here, which stops its worker processes.
"""

from __future__ import annotations

import importlib
import logging
import os
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
    """An address must be ``auto``, ``local``, ``host:port`` or ``ray://host:port`` (or a Ray
    client scheme an installed module provides), and a ``host:port`` must answer a TCP
    connection, checked before the run directory exists: Ray itself finds out only after the
    run has started writing, and a mistyped address would leave a half-made run behind (an
    address without a port, a port that is not a number, ``http://...``: Ray's own error came
    after the directory was made, or was an internal error)."""
    if not address or address in ("auto", "local"):
        return
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "ray", address
    forms = "write auto, local, host:port or ray://host:port"
    if scheme != "ray":
        if not _client_scheme(scheme):
            raise RecarenaError(f"--address {address}: unknown scheme '{scheme}://'; {forms}")
        return  # a Ray client plug-in's address: its own form
    netloc = urlsplit(f"ray://{rest}").netloc if rest else ""
    host, colon, port = netloc.rpartition(":")
    if not colon or not host or "]" in port:
        raise RecarenaError(f"--address {address}: no port; {forms}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RecarenaError(f"--address {address}: port {port!r} is not a number in 1-65535")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS) as s:
            speaks_grpc = _answers_http2(s)
    except OSError as exc:
        raise RecarenaError(f"--address {address}: no Ray cluster answers there ({exc})") from None
    if not speaks_grpc:
        # Ray retried such a port for minutes (a log line every 7 s) before giving up
        raise RecarenaError(
            f"--address {address}: something answers there, but not a Ray cluster (Ray "
            "speaks gRPC; this port does not)"
        )


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS and its
client server) answers with a SETTINGS frame of its own (frame type 4)."""


def _answers_http2(sock: socket.socket) -> bool:
    if os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
        return True  # a TLS cluster answers the plain preface with an alert: not checked
    try:
        sock.sendall(HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = sock.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except OSError:
        return False
    return len(head) == 9 and head[3] == 4


def _client_scheme(scheme: str) -> bool:
    """Ray reads ``<scheme>://`` as the module whose ``ClientBuilder`` connects (ray client
    plug-ins); any other scheme fails inside Ray after the run has started."""
    if not scheme.isidentifier():
        return False
    try:
        module = importlib.import_module(scheme)
    except Exception:  # noqa: BLE001 - not importable is not a client
        return False
    return hasattr(module, "ClientBuilder")


class RayExecutor:
    """A Ray session already up (``ray.init`` by the caller) is used as it is and left
    running; one started here is shut down here."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        check_reachable(address)
        self.workers = workers
        self.address = address
        self.cells = 1
        """Cells of the run (set by ``run``): a local Ray gets no more CPUs than that."""

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
            # never more CPUs than cells to run at once (as the process executor): Ray refuses
            # past 10^14, which --workers 99999999999999999999 asked for after the run began
            cpus = max(1, min(self.workers or usable_cpus(), self.cells))
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)

    def run(self, job: CellJob, cells: list[Cell], events: CellEvents, stop: StopSignals) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        self.cells = len(cells)
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
