"""Experiment: every (arm, replicate) cell of a scenario, run in-process or in a process pool.

Each cell is independent and writes its own directory. A cell directory holds ``_INCOMPLETE``
until its tables are published and its ``manifest.json`` written, so after Ctrl-C or a kill the
finished cells are whole and readable and the unfinished ones are plainly marked.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import queue
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from agents.llm_cache import CacheMiss
from agents.llm_panel import LLMRuntime
from simulator.errors import RecarenaError
from simulator.llm_accounting import summarize_llm_calls
from simulator.scenario import Scenario, dump_scenario, parse_scenario

INCOMPLETE = "_INCOMPLETE"
Executor = Literal["local", "process"]
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


@dataclass(frozen=True)
class Cell:
    index: int
    arm_index: int
    arm: str
    rep: int

    @property
    def path(self) -> str:
        return f"arm={self.arm}/rep={self.rep}"


def plan_cells(scenario: Scenario) -> list[Cell]:
    """Replicate-major order, so the arms of replicate 0 finish together and pair early."""
    cells = []
    for rep in range(scenario.replicates):
        for arm_index, arm in enumerate(scenario.arms):
            cells.append(Cell(len(cells), arm_index, arm.name, rep))
    return cells


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
            raise RecarenaError(f"--output {output}: already exists and is not an empty directory")
        return output
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(scenario.output.dir) / f"{scenario.name}-{stamp}"
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

    from simulator.eventlog import EventLog
    from simulator.model import SimulationModel

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
        "arm": cell.arm,
        "rep": cell.rep,
        "seed": scenario.seed,
        "recommender": scenario.arms[cell.arm_index].recommender.model_dump(mode="json"),
        "rows": dict(log.rows),
        "catalog_size": model.catalog.n,
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
) -> RunResult:
    """Run every cell; raises :class:`Interrupted` after marking the run on Ctrl-C / SIGTERM.

    With LLM users, the cache and (for ``llm.provider: local``) a llama.cpp server are set up
    here once for all cells; the server is stopped by its PID however the run ends.
    """
    cells = cells if cells is not None else plan_cells(scenario)
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
    (run_dir / "scenario.resolved.yaml").write_text(dump_scenario(scenario), encoding="utf-8")
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
    _write_json(run_dir / "manifest.json", manifest)
    doc = scenario.model_dump(mode="json")
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
            from agents.llm_server import LocalServer

            server = LocalServer(scenario.llm.context_tokens).start()
            llm_runtime = LLMRuntime(
                llm_runtime.run_id, llm_runtime.cache_path, server.base_url, llm_runtime.cache_mode
            )
        if executor == "local" or len(cells) == 1:
            for cell in cells:
                report = (lambda f, c=cell: on_progress(c, f)) if on_progress else None
                done(cell, run_cell(doc, cell, str(run_dir), report, llm_runtime))
        else:
            _run_pool(doc, cells, run_dir, workers, on_progress, done, llm_runtime)
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


def _summary(cell_manifest: dict[str, Any]) -> dict[str, Any]:
    return {"wall_seconds": cell_manifest["wall_seconds"], "rows": cell_manifest["rows"]}


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise Interrupted("terminated")


def _run_pool(doc, cells, run_dir, workers, on_progress, done, llm_runtime) -> None:
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(workers or os.cpu_count() or 1, len(cells)))
    with context.Manager() as manager:
        messages = manager.Queue()
        pool = context.Pool(workers, initializer=_worker_init)
        try:
            pending = {
                cell.index: (
                    cell,
                    pool.apply_async(_pool_cell, (doc, cell, str(run_dir), messages, llm_runtime)),
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
