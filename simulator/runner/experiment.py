"""Experiment: every (arm, replicate) cell of a scenario, run in-process, in a process pool or
on Ray.

Each cell is independent and writes its own directory. A cell directory holds ``_INCOMPLETE``
until its tables are published and its ``manifest.json`` written, so after Ctrl-C or a kill the
finished cells are whole and readable and the unfinished ones are plainly marked — which is also
what lets ``resume`` skip exactly the finished cells. A scenario with a ``sweep`` has one set of
cells per grid point (``point=<i>/arm=<a>/rep=<r>``); every executor calls the same
:func:`run_cell`, so the executor never changes the logs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import queue
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from recarena.agents.llm.cache import CacheMiss
from recarena.agents.llm.endpoint import LLMRuntime
from recarena.agents.llm.server import LocalServer
from recarena.agents.users.calibrated import resolve_calibrated
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.names import path_component
from recarena.simulator.core.scenario import Scenario, dump_scenario
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.model import SimulationModel
from recarena.simulator.runner.llm_accounting import summarize_llm_calls
from recarena.simulator.runner.plan import Cell, cell_docs, plan_cells
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.sweep import expand_sweep

INCOMPLETE = "_INCOMPLETE"
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


def cell_complete(cell_dir: Path) -> bool:
    """A finished cell: its manifest is written and its ``_INCOMPLETE`` marker is gone."""
    return (cell_dir / "manifest.json").is_file() and not (cell_dir / INCOMPLETE).exists()


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


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def new_run_dir(scenario: Scenario, output: Path | None) -> Path:
    """``output`` if given (must not hold files), else ``<output.dir>/<name>-<UTC stamp>``."""
    if output is not None:
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


def run_cell(
    scenario_doc: dict[str, Any],
    cell: Cell,
    run_dir: str,
    progress: Callable[[float], None] | None = None,
    llm_runtime: LLMRuntime | None = None,
) -> dict[str, Any]:
    """Simulate one cell and publish its tables; returns the cell manifest."""
    import torch

    torch.set_num_threads(1)  # cells run in parallel; one BLAS thread each avoids oversubscription
    scenario = parse_scenario(scenario_doc)
    cell_dir = Path(run_dir) / cell.path
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / INCOMPLETE).write_text("this cell did not finish\n", encoding="utf-8")
    started = time.perf_counter()
    log = EventLog(cell_dir, scenario.output.flush_rows)
    try:
        model = SimulationModel(scenario, cell.arm_index, cell.rep, log, progress, llm_runtime)
        model.run()
    except CacheMiss as exc:
        log.abort()
        raise RecarenaError(str(exc)) from None
    except BaseException:
        log.abort()
        raise
    log.close()
    wall = time.perf_counter() - started
    manifest = {
        **({} if cell.point is None else {"point": cell.point}),
        "arm": cell.arm,
        "rep": cell.rep,
        "seed": scenario.seed,
        "recommender": scenario.arms[cell.arm_index].recommender.model_dump(mode="json"),
        "rows": dict(log.rows),
        "catalog_size": model.world.catalog.n,
        "wall_seconds": round(wall, 3),
        "timings_seconds": {k: round(v, 3) for k, v in model.timings.items()},
        "impressions_per_second": round(log.rows["exposures"] / wall, 1) if wall > 0 else None,
    }
    effect = getattr(model.recommender, "effect", None)
    if callable(effect):  # re-rankers report what they changed (diversity, creator Gini)
        manifest["recommender_effect"] = {k: round(v, 6) for k, v in effect().items()}
    _write_json(cell_dir / "manifest.json", manifest)
    (cell_dir / INCOMPLETE).unlink()
    return manifest


# ------------------------------------------------------------------ process pool plumbing
def _worker_init() -> None:
    # Ctrl-C goes to the whole process group; only the parent decides what to do about it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_cell(scenario_doc, cell: Cell, run_dir: str, messages, llm_runtime) -> dict[str, Any]:
    def report(fraction: float) -> None:
        messages.put((cell.index, fraction))

    return run_cell(scenario_doc, cell, run_dir, report, llm_runtime)


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM; finished cells are kept."""


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict[str, Any]


def run_experiment(
    scenario: Scenario,
    run_dir: Path,
    executor: Executor = "process",
    workers: int | None = None,
    on_progress: Callable[[Cell, float], None] | None = None,
    cells: list[Cell] | None = None,
    llm_cache_mode: str | None = None,
    llm_cache_path: Path | None = None,
    address: str | None = None,
    resume: bool = False,
) -> RunResult:
    """Run every cell; raises :class:`Interrupted` after marking the run on Ctrl-C / SIGTERM.

    With LLM users, the cache and (for ``llm.provider: local``) a llama.cpp server are set up
    here once for all cells; the server is stopped by its PID however the run ends.

    ``executor="ray"`` sends each cell to Ray as a task: to the cluster at ``address``
    (``"auto"`` or ``ray://host:port``), else to a local Ray instance started here with
    ``workers`` (default: all cores) CPUs. ``resume=True`` continues the run already in
    ``run_dir`` with the same scenario: finished cells are kept untouched, the rest rerun.
    """
    scenario = resolve_calibrated(scenario)  # no-op unless population.from is 'calibrated'
    points = expand_sweep(scenario)
    cells = cells if cells is not None else plan_cells(scenario, points)
    previous = resumable_manifest(run_dir, scenario) if resume else None
    llm_runtime = None
    if scenario.uses_llm:
        cache_path = llm_cache_path or Path(
            scenario.llm.cache.path or Path(scenario.output.dir) / "llm_cache.sqlite"
        )
        mode = llm_cache_mode or scenario.llm.cache.mode
        if mode == "replay" and not cache_path.is_file():
            raise RecarenaError(f"llm.cache.path: {cache_path} does not exist; nothing to replay")
        llm_runtime = LLMRuntime(
            run_id=f"{scenario.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}",
            cache_path=str(cache_path.resolve()),
            base_url=scenario.llm.base_url or os.environ.get("OPENAI_BASE_URL"),
            cache_mode=mode,
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if previous is None:
        (run_dir / "scenario.resolved.yaml").write_text(dump_scenario(scenario), encoding="utf-8")
        for point in points:  # each point's scenario, as a plain run of it would save it
            (run_dir / point.path).mkdir(exist_ok=True)
            (run_dir / point.path / "scenario.resolved.yaml").write_text(
                dump_scenario(point.scenario), encoding="utf-8"
            )
    manifest: dict[str, Any] = {
        "name": scenario.name,
        "status": "running",
        "baseline": scenario.baseline,
        "arms": [arm.name for arm in scenario.arms],
        "replicates": scenario.replicates,
        "seed": scenario.seed,
        "metrics": scenario.metrics,
        "scenario": scenario.model_dump(mode="json"),
        "started_at": datetime.now(UTC).isoformat(),
        "executor": executor,
        "versions": versions(),
        "git_commit": git_commit(),
        "cells": [{"arm": c.arm, "rep": c.rep, "path": c.path, "status": "pending"} for c in cells],
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
        manifest["cells"] = [
            {"point": cell.point, **entry}
            for entry, cell in zip(manifest["cells"], cells, strict=True)
        ]
    to_run = _prepare_cells(run_dir, cells, manifest, previous)
    _write_json(run_dir / "manifest.json", manifest)
    docs = cell_docs(scenario, points)
    started = time.perf_counter()

    def finish(status: str) -> None:
        manifest["status"] = status
        manifest["wall_seconds"] = round(time.perf_counter() - started, 3)
        _write_json(run_dir / "manifest.json", manifest)

    def done(cell: Cell, cell_manifest: dict[str, Any]) -> None:
        manifest["cells"][cell.index] |= {"status": "complete", **_summary(cell_manifest)}
        if on_progress:
            on_progress(cell, 1.0)

    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    server = None
    try:
        if llm_runtime is not None and _needs_local_server(scenario, llm_runtime):
            server = LocalServer(scenario.llm.context_tokens).start()
            manifest["llm"]["server"] = {"pid": server.process.pid, "base_url": server.base_url}
            llm_runtime = LLMRuntime(
                llm_runtime.run_id, llm_runtime.cache_path, server.base_url, llm_runtime.cache_mode
            )
        if on_progress:
            for cell in cells:
                if cell not in to_run:  # finished before a resume
                    on_progress(cell, 1.0)
        if not to_run:
            pass
        elif executor == "ray":
            _run_ray(docs, to_run, run_dir, workers, address, on_progress, done, llm_runtime)
        elif executor == "local" or len(to_run) == 1:
            for cell in to_run:
                report = (lambda f, c=cell: on_progress(c, f)) if on_progress else None
                done(cell, run_cell(docs[cell.point], cell, str(run_dir), report, llm_runtime))
        else:
            _run_pool(docs, to_run, run_dir, workers, on_progress, done, llm_runtime)
    except (KeyboardInterrupt, Interrupted):
        for entry in manifest["cells"]:
            if entry["status"] != "complete":
                entry["status"] = "incomplete"
        finish("interrupted")
        raise Interrupted(str(run_dir)) from None
    except BaseException:
        finish("failed")
        raise
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous_term)
    if llm_runtime is not None:
        manifest["llm"]["accounting"] = summarize_llm_calls(run_dir, scenario)
    finish("complete")
    return RunResult(run_dir, manifest)


def _needs_local_server(scenario: Scenario, runtime: LLMRuntime) -> bool:
    return scenario.llm.provider == "local" and runtime.cache_mode != "replay"


def resumable_manifest(run_dir: Path, scenario: Scenario) -> dict[str, Any]:
    """The manifest of the run to resume, after checking it ran this very scenario."""
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise RecarenaError(f"--resume {run_dir}: not a recarena run directory (no manifest.json)")
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecarenaError(f"{path}: unreadable manifest: {exc}") from None
    current = json.loads(json.dumps(scenario.model_dump(mode="json"), default=str))
    where = _first_difference(previous.get("scenario"), current)
    if where is not None:
        raise RecarenaError(
            f"--resume {run_dir}: the scenario differs from the one the run started with "
            f"(at {where or 'the top level'}); resume with the same file and options"
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
    run_dir: Path, cells: list[Cell], manifest: dict[str, Any], previous: dict[str, Any] | None
) -> list[Cell]:
    """Cells still to run. On resume, finished cells are marked complete (from their own
    manifests) and left alone; a half-written cell is removed so it reruns from scratch."""
    if previous is None:
        return list(cells)
    manifest["started_at"] = previous.get("started_at", manifest["started_at"])
    manifest["resumed_at"] = [*previous.get("resumed_at", []), datetime.now(UTC).isoformat()]
    to_run = []
    for cell in cells:
        cell_dir = run_dir / cell.path
        if cell_complete(cell_dir):
            cell_manifest = json.loads((cell_dir / "manifest.json").read_text(encoding="utf-8"))
            manifest["cells"][cell.index] |= {"status": "complete", **_summary(cell_manifest)}
            continue
        if cell_dir.exists():
            shutil.rmtree(cell_dir)
        to_run.append(cell)
    manifest["resumed_cells"] = len(to_run)
    return to_run


def _summary(cell_manifest: dict[str, Any]) -> dict[str, Any]:
    return {"wall_seconds": cell_manifest["wall_seconds"], "rows": cell_manifest["rows"]}


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise Interrupted("terminated")


def _run_pool(docs, cells, run_dir, workers, on_progress, done, llm_runtime) -> None:
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(workers or os.cpu_count() or 1, len(cells)))
    with context.Manager() as manager:
        messages = manager.Queue()
        pool = context.Pool(workers, initializer=_worker_init)
        try:
            pending = {
                cell.index: (
                    cell,
                    pool.apply_async(
                        _pool_cell, (docs[cell.point], cell, str(run_dir), messages, llm_runtime)
                    ),
                )
                for cell in cells
            }
            while pending:
                try:
                    index, fraction = messages.get(timeout=0.2)
                    if on_progress and index in pending:
                        on_progress(pending[index][0], fraction)
                except queue.Empty:
                    pass
                for index in [i for i, (_, res) in pending.items() if res.ready()]:
                    cell, result = pending.pop(index)
                    done(cell, result.get())  # re-raises a cell's exception here
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()


# ------------------------------------------------------------------ Ray plumbing
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


def _import_ray():
    import warnings

    # importing ray replaces the SIGTERM handler with sys.exit; keep ours (mark "interrupted")
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


def _run_ray(docs, cells, run_dir, workers, address, on_progress, done, llm_runtime) -> None:
    """One Ray task per cell. A Ray session that is already up (``ray.init`` by the caller) is
    used as it is and left running; one started here is shut down here."""
    import logging

    ray = _import_ray()
    # An exception raised by a signal handler while Ray's C++ code is waiting is swallowed
    # ("Exception ignored in check_signals"), so here Ctrl-C / SIGTERM only set a flag, and
    # the loop below raises Interrupted from plain Python.
    stop: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum, frame) -> None:  # noqa: ARG001
        stop.append(signum)

    for sig in previous:
        signal.signal(sig, request_stop)
    started_here = not ray.is_initialized()
    pending: dict[Any, Cell] = {}
    try:
        if started_here:
            options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if address:
                try:
                    ray.init(address=address, **options)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise RecarenaError(
                        f"--address {address}: no Ray cluster there: {exc}"
                    ) from None
            else:
                cpus = workers or os.cpu_count() or 1
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)
            for sig in previous:  # in case ray.init installed its own
                signal.signal(sig, request_stop)
        sink = ray.remote(num_cpus=0)(_ProgressSink).remote() if on_progress else None
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        # the run directory must be on storage the workers share; an absolute path finds it
        where = str(Path(run_dir).resolve())
        for cell in cells:
            pending[task.remote(docs[cell.point], cell, where, sink, llm_runtime)] = cell
        while pending:
            if stop:
                raise Interrupted("interrupted by signal")
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            if sink is not None:
                running = {cell.index: cell for cell in pending.values()}
                for index, fraction in ray.get(sink.drain.remote()):
                    if index in running:
                        on_progress(running[index], fraction)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # re-raise the cell's own error
                    cause = getattr(exc, "cause", None)
                    raise (cause if isinstance(cause, Exception) else exc) from None
                done(cell, result)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
