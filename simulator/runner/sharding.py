"""Sharded cells: one cell's users split over Ray workers, with the logs of an unsharded run.

``recarena run --executor ray --shards N`` gives each cell N shard workers (Ray actors). Shard
``i`` simulates the users with ``user % N == i``; everything that does not depend on users (the
catalog, creators' uploads, the arrival draws before they are filtered) is simulated by every
shard alike. The clock is cut at every retrain time:

1. every shard advances to the retrain time and returns its new clicks (with each click's
   session start and id) and its copy of the recommender;
2. the driver merges the copies (``merge_shards``: the state one process serving every shard's
   requests would have), puts the clicks in the order one process would have logged them
   (time, then session start, then session id: the order of the active-session arrays), fits
   on the union and sends the fitted recommender back; each shard installs it at the retrain.

At the end, every shard's tables are merged in that same order and written through one
EventLog with one append per tick, so row groups, and so bytes, match an unsharded run.
Tables that do not depend on users (items, creators) are the same in every shard; counts are
summed; ``daily.mean_satisfaction`` is recomputed from every user's satisfaction.

Why it is exact: user noise is counter-based per (session, page, slot); arrivals are filtered
after the population-wide draw; a user's sessions depend only on that user and on the
recommender; and the recommender changes only at retrain times, from the same clicks in the same
order. What breaks it is refused up front with one line: recommenders that learn online or draw
per batch, surfaces with cell-wide state (carousels' trending rows), social graphs, LLM users,
adaptive or leaving creators, and other opt-in features whose state spans users.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.logschema import SCHEMAS
from recarena.simulator.core.scenario import ListSurface, Scenario
from recarena.simulator.core.types import Interactions
from recarena.simulator.engine.arrivals import DAY
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.model import SimulationModel
from recarena.simulator.runner.cell import (
    cell_manifest,
    failure_line,
    keep_traceback,
    publish_cell,
)
from recarena.simulator.runner.executors import CellEvents, CellJob
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.ray_executor import check_reachable, import_ray
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.rundir import INCOMPLETE
from recarena.simulator.runner.stopping import Interrupted, StopSignals
from recarena.simulator.runner.sweep import SweepPoint

SHARDABLE_RECOMMENDERS = ("popularity", "mf")
"""Recommenders that learn only in ``fit`` and whose ``recommend`` draws merge exactly."""

POLL_SECONDS = 0.2
SHARD_TIMEOUT_SECONDS = 3600.0
"""A shard that answers nothing for this long fails its cell (never a hang)."""

_SUMMED_DAILY = ("sessions", "impressions", "clicks")
_SAME_DAILY = ("day", "catalog_size")


# ------------------------------------------------------------------ what can be sharded
def refuse_unshardable(scenario: Scenario, arm_index: int, shards: int) -> None:
    """One-line RecarenaError naming the first thing that would make shards differ."""
    arm = scenario.arms[arm_index]
    where = f"--shards {shards}"
    users = scenario.population.users
    if shards > users:  # every shard builds the whole world: one with no users is only cost
        raise RecarenaError(
            f"{where}: more shards than the population's {users:,} users (shard i simulates "
            f"the users with user % {shards} == i, so {shards - users:,} would simulate "
            f"nobody); use at most --shards {users:,}"
        )
    kind = arm.recommender.type
    if kind not in SHARDABLE_RECOMMENDERS:
        raise RecarenaError(
            f"{where}: arm {arm.name!r} uses recommender {kind!r}, which learns online or draws "
            f"per batch; sharded cells support {', '.join(SHARDABLE_RECOMMENDERS)} "
            "(recommenders that learn only at retrain time)"
        )
    pop, creators = scenario.population, scenario.creators
    checks = [
        (scenario.uses_llm, "LLM users, creators or recommenders"),
        (not isinstance(scenario.surface_for(arm), ListSurface), "a surface other than list"),
        (pop.social is not None, "population.social (neighbours span shards)"),
        (pop.policy != "rule", f"population.policy {pop.policy!r}"),
        (pop.daily_rhythm is not None, "population.daily_rhythm"),
        (pop.instructions is not None, "population.instructions"),
        (getattr(pop, "conversation", None) is not None, "population.conversation"),
        (creators.strategy.type != "static", f"creators.strategy {creators.strategy.type!r}"),
        (creators.leave_after_periods is not None, "creators.leave_after_periods"),
        (getattr(creators, "ai", None) is not None, "creators.ai"),
    ]
    for refused, what in checks:
        if refused:
            raise RecarenaError(f"{where}: {what} is not supported in sharded cells")


def check_shards(scenario: Scenario, points: list[SweepPoint], shards: int) -> None:
    """Before anything is written: every cell of the run, at every sweep point, can be split
    into ``shards`` (:func:`refuse_unshardable`); one line naming the point otherwise."""
    worlds: list[tuple[int | None, Scenario]] = [(p.index, p.scenario) for p in points]
    for index, world in worlds or [(None, scenario)]:
        try:
            for arm_index in range(len(world.arms)):
                refuse_unshardable(world, arm_index, shards)
        except RecarenaError as exc:
            if index is None:
                raise
            raise RecarenaError(f"sweep point {index}: {exc}") from None


def retrain_times(scenario: Scenario, arm_index: int) -> list[float]:
    """Simulated times of every fit, added up the way the SimPy clock adds them."""
    period = scenario.retrain_days(scenario.arms[arm_index]) * DAY
    horizon = scenario.horizon.days * DAY
    times, now = [], 0.0
    while now < horizon:
        times.append(now)
        now = now + period
    return times


# ------------------------------------------------------------------ one shard (a Ray actor)
class ShardWorker:
    """The engine for one shard's users; advanced by the driver from retrain to retrain."""

    def __init__(
        self, scenario_doc: dict, arm_index: int, rep: int, index: int, count: int, out: str
    ) -> None:
        import torch

        torch.set_num_threads(1)
        scenario = parse_scenario(scenario_doc)
        Path(out).mkdir(parents=True, exist_ok=True)
        self.log = EventLog(Path(out), scenario.output.flush_rows)
        self.model = SimulationModel(scenario, arm_index, rep, self.log)
        if self.model.world.surface.needs_state or self.model.dialogue is not None:
            raise RecarenaError(f"--shards {count}: the arm's surface keeps cell-wide state")
        reason = getattr(self.model.world.recommender, "shardable", lambda: None)()
        if reason:
            raise RecarenaError(f"--shards {count}: {reason}")
        self.model.user_shard = (index, count)
        self.model.outcomes.keep_order_keys()
        self.model.fit_override = self._install
        self.model.day_end_hooks.append(self._snapshot)
        self.users = np.arange(index, scenario.population.users, count)
        self.satisfaction: list[np.ndarray] = []
        self.fitted: Any = None
        self.chunk = 0
        self.model.start()

    def _install(self) -> None:
        if self.fitted is None:
            raise RuntimeError("retrain reached before the driver sent a fitted recommender")
        self.model.recommender.inner = self.fitted
        self.model.world.recommender = self.fitted
        self.fitted = None

    def _snapshot(self, day: int) -> None:
        self.satisfaction.append(self.model.world.user_state.satisfaction[self.users].copy())

    def advance(self, until: float, fitted: bytes | None, want_state: bool) -> tuple:
        """Run to ``until``; returns the new clicks, their order keys and (if asked) the
        recommender as it is now."""
        if fitted is not None:
            self.fitted = pickle.loads(fitted)
        started = time.perf_counter()
        self.model.advance(until)
        busy = time.perf_counter() - started
        clicks, start, session, self.chunk = self.model.outcomes.clicks_since(self.chunk)
        state = pickle.dumps(self.model.recommender.inner) if want_state else None
        return clicks, start, session, state, busy

    def finish(self) -> dict[str, Any]:
        self.model.finish()
        self.log.close()
        return {
            "users": self.users,
            "satisfaction": np.stack(self.satisfaction) if self.satisfaction else None,
            "timings": dict(self.model.timings),
            "catalog_size": self.model.world.catalog.n,
        }


# ------------------------------------------------------------------ the driver of one cell
def _wait(ray: Any, refs: list, stop: StopSignals) -> list:
    """``ray.get`` of every ref, polling ``stop`` and bounded by SHARD_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + SHARD_TIMEOUT_SECONDS
    pending = list(refs)
    while pending:
        stop.check()
        if time.monotonic() > deadline:
            raise RecarenaError(f"--shards: a shard answered nothing for {SHARD_TIMEOUT_SECONDS}s")
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS)
    return ray.get(refs)


def _union_in_order(parts: list[tuple]) -> tuple[Interactions, int]:
    """Shards' clicks of one segment in the order one process logs them."""
    user, item, when, rating, start, session = (
        np.concatenate(p)
        for p in zip(
            *[(c.user, c.item, c.time, c.rating, s, sid) for c, s, sid, *_ in parts], strict=True
        )
    )
    order = np.lexsort((session, start, when))
    clicks = Interactions(
        user=user[order], item=item[order], time=when[order], rating=rating[order]
    )
    return clicks, int(order.size)


def run_sharded_cell(
    ray: Any,
    scenario_doc: dict[str, Any],
    cell: Cell,
    run_dir: str,
    shards: int,
    stop: StopSignals,
    progress: Any = None,
) -> dict[str, Any]:
    """Simulate one cell over ``shards`` Ray actors and publish it as ``run_cell`` would."""
    scenario = parse_scenario(scenario_doc)
    refuse_unshardable(scenario, cell.arm_index, shards)
    cell_dir = Path(run_dir) / cell.path
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / INCOMPLETE).write_text("this cell did not finish\n", encoding="utf-8")
    scratch = cell_dir / "_shards"
    started = time.perf_counter()
    actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(ShardWorker)
    dirs = [str(scratch / f"shard={i}") for i in range(shards)]
    workers = [
        actor.remote(scenario_doc, cell.arm_index, cell.rep, i, shards, dirs[i])
        for i in range(shards)
    ]
    horizon = scenario.horizon.days * DAY
    fit_seconds, sync_seconds, busy = 0.0, 0.0, np.zeros(shards)
    history: list[Interactions] = []
    try:
        fitted: bytes | None = None
        for until in [*retrain_times(scenario, cell.arm_index), horizon]:
            last = until >= horizon
            results = _wait(ray, [w.advance.remote(until, fitted, not last) for w in workers], stop)
            busy += [r[4] for r in results]
            if progress is not None:
                progress(until / horizon)
            if last:
                break
            tick = time.perf_counter()
            copies = [pickle.loads(r[3]) for r in results]
            recommender = type(copies[0]).merge_shards(copies)
            clicks, n = _union_in_order(results)
            if n:
                history.append(clicks)
            union = (
                Interactions(*(np.concatenate([getattr(h, f) for h in history]) for f in _FIELDS))
                if history
                else Interactions.empty()
            )
            fit_started = time.perf_counter()
            recommender.fit(union)
            fit_seconds += time.perf_counter() - fit_started
            fitted = pickle.dumps(recommender)
            sync_seconds += time.perf_counter() - tick
        finals = _wait(ray, [w.finish.remote() for w in workers], stop)
    finally:
        for worker in workers:
            ray.kill(worker)
    merge_started = time.perf_counter()
    rows = merge_shard_tables(scenario, [Path(d) for d in dirs], cell_dir, finals)
    shutil.rmtree(scratch, ignore_errors=True)
    merge_seconds = time.perf_counter() - merge_started
    wall = time.perf_counter() - started
    timings = dict.fromkeys(finals[0]["timings"], 0.0)
    for final in finals:  # summed over shards: CPU-seconds of each bucket
        for key, value in final["timings"].items():
            timings[key] += value
    timings["fit"] = fit_seconds
    manifest = cell_manifest(cell, scenario, rows, finals[0]["catalog_size"], wall, timings)
    manifest["shards"] = {
        "count": shards,
        "busy_seconds": [round(float(b), 3) for b in busy],
        "sync_seconds": round(sync_seconds, 3),
        "merge_seconds": round(merge_seconds, 3),
    }
    return publish_cell(cell_dir, manifest)


_FIELDS = ("user", "item", "time", "rating")


# ------------------------------------------------------------------ merging the shards' tables
def _read(directory: Path, table: str) -> pa.Table:
    return pq.read_table(directory / f"{table}.parquet")


def _columns(table: pa.Table) -> dict[str, Any]:
    """Arrow columns back as the engine hands them to EventLog.append."""
    out: dict[str, Any] = {}
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_list(field.type):
            out[field.name] = column.to_pylist()
        else:
            out[field.name] = np.array(column.to_numpy(zero_copy_only=False))
    return out


def _append_by_group(log: EventLog, name: str, table: pa.Table, key: np.ndarray) -> None:
    """One append per run of equal ``key`` (one per tick, as the engine appended them)."""
    if table.num_rows == 0:
        return
    cuts = np.flatnonzero(key[1:] != key[:-1]) + 1
    columns = _columns(table)
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, table.num_rows], strict=True):
        log.append(name, {k: v[lo:hi] for k, v in columns.items()})


def _sorted(table: pa.Table, keys: list[np.ndarray]) -> tuple[pa.Table, np.ndarray]:
    order = np.lexsort(keys[::-1])  # keys given most significant first
    return table.take(pa.array(order)), keys[0][order]


def merge_shard_tables(
    scenario: Scenario, dirs: list[Path], cell_dir: Path, finals: list[dict[str, Any]]
) -> dict[str, int]:
    """Write the cell's tables from its shards' tables; returns rows per table."""
    log = EventLog(cell_dir, scenario.output.flush_rows)
    merged = {"exposures", "interactions", "sessions", "creator_periods", "daily", "users_end"}
    try:
        sessions = pa.concat_tables([_read(d, "sessions") for d in dirs])
        sid = sessions.column("session_id").to_numpy()
        start = sessions.column("start_time").to_numpy()
        by_sid = np.argsort(sid)

        def start_of(session_id: np.ndarray) -> np.ndarray:
            return start[by_sid[np.searchsorted(sid, session_id, sorter=by_sid)]]

        table, key = _sorted(sessions, [sessions.column("end_time").to_numpy(), start, sid])
        _append_by_group(log, "sessions", table, key)
        for name, extra in (("interactions", []), ("exposures", ["position"])):
            part = pa.concat_tables([_read(d, name) for d in dirs])
            s = part.column("session_id").to_numpy()
            keys = [part.column("time").to_numpy(), start_of(s), s]
            keys += [part.column(c).to_numpy() for c in extra]
            table, key = _sorted(part, keys)
            _append_by_group(log, name, table, key)
        _merge_creator_periods(log, dirs)
        _merge_daily(log, dirs, finals, scenario.population.users)
        _merge_users_end(log, dirs, len(dirs))
        for name in SCHEMAS:  # the rest must not depend on users: identical in every shard
            if name in merged:
                continue
            first = (dirs[0] / f"{name}.parquet").read_bytes()
            if any((d / f"{name}.parquet").read_bytes() != first for d in dirs[1:]):
                raise RecarenaError(f"--shards: table {name} differs between shards")
    except BaseException:
        log.abort()
        raise
    log.close()
    rows = {}
    for name in SCHEMAS:
        if name not in merged:
            shutil.copyfile(dirs[0] / f"{name}.parquet", cell_dir / f"{name}.parquet")
        rows[name] = pq.ParquetFile(cell_dir / f"{name}.parquet").metadata.num_rows
    return rows


def _merge_creator_periods(log: EventLog, dirs: list[Path]) -> None:
    tables = [_read(d, "creator_periods") for d in dirs]
    base = tables[0]
    if base.num_rows == 0:
        return
    columns = _columns(base)
    for other in tables[1:]:
        if not other.column("creator_id").equals(base.column("creator_id")):
            raise RecarenaError("--shards: creator_periods rows differ between shards")
        for name in ("exposure", "clicks"):
            columns[name] = columns[name] + other.column(name).to_numpy()
    period = columns["period"]
    cuts = np.flatnonzero(period[1:] != period[:-1]) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, base.num_rows], strict=True):
        log.append("creator_periods", {k: v[lo:hi] for k, v in columns.items()})


def _merge_daily(log: EventLog, dirs: list[Path], finals: list[dict], n_users: int) -> None:
    tables = [_read(d, "daily") for d in dirs]
    columns = _columns(tables[0])
    known = {*_SUMMED_DAILY, *_SAME_DAILY, "mean_satisfaction"}
    if set(columns) - known:
        raise RecarenaError(f"--shards: cannot merge daily columns {sorted(set(columns) - known)}")
    for name in _SUMMED_DAILY:
        columns[name] = np.sum([t.column(name).to_numpy() for t in tables], axis=0)
    days = len(columns["day"])
    snapshots = [f["satisfaction"] for f in finals]
    if any(s is None or s.shape[0] != days for s in snapshots):
        raise RecarenaError("--shards: shards kept a different number of daily snapshots")
    dtype = snapshots[0].dtype
    mean = np.empty(days)
    for day in range(days):
        everyone = np.empty(n_users, dtype)
        for final, snap in zip(finals, snapshots, strict=True):
            everyone[final["users"]] = snap[day]
        mean[day] = float(everyone.mean())
    columns["mean_satisfaction"] = mean
    log.append("daily", columns)


def _merge_users_end(log: EventLog, dirs: list[Path], shards: int) -> None:
    tables = [_read(d, "users_end") for d in dirs]
    if tables[0].num_rows == 0:
        return
    owner = np.arange(tables[0].num_rows) % shards
    columns = _columns(tables[0])
    for shard in range(1, shards):
        rows = owner == shard
        for name, values in _columns(tables[shard]).items():
            columns[name][rows] = values[rows]
    log.append("users_end", columns)


# ------------------------------------------------------------------ the executor
class ShardedRayExecutor:
    """``--executor ray --shards N``: cells one after another, each over N Ray actors."""

    def __init__(self, shards: int, workers: int | None = None, address: str | None = None):
        check_reachable(address)
        self.shards = shards
        self.workers = workers
        self.address = address

    def run(self, job: CellJob, cells: list[Cell], events: CellEvents, stop: StopSignals) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        with stop.polling():
            try:
                if started_here:
                    options: dict[str, Any] = {
                        "logging_level": logging.WARNING,
                        "log_to_driver": False,
                    }
                    if self.address:
                        ray.init(address=self.address, **options)
                    else:  # cells run one after another, each on exactly `shards` actors
                        cpus = self.shards
                        ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)
                    stop.install()
                where = str(Path(job.run_dir).resolve())
                for cell in cells:
                    stop.check()
                    events.started(cell, f"{self.shards} ray shards")
                    try:
                        manifest = run_sharded_cell(
                            ray,
                            job.docs[cell.point],
                            cell,
                            where,
                            self.shards,
                            stop,
                            lambda f, c=cell: events.progress(c, f),
                        )
                    except (Interrupted, KeyboardInterrupt):
                        raise
                    except Exception as exc:  # noqa: BLE001 (a cell's failure is data)
                        cause = getattr(exc, "cause", None)
                        error = cause if isinstance(cause, BaseException) else exc
                        keep_traceback(job.run_dir, cell, error)
                        events.failed(cell, failure_line(error), isinstance(error, RecarenaError))
                        continue
                    events.finished(cell, manifest)
            finally:
                if started_here:
                    ray.shutdown()


def shard_overhead_note(manifest: dict[str, Any]) -> str:
    """One line on where a sharded cell's wall time went (for benchmarks and reports)."""
    shards = manifest["shards"]
    busy = shards["busy_seconds"]
    return (
        f"{shards['count']} shards: busy {min(busy):.1f}-{max(busy):.1f} s, driver sync "
        f"{shards['sync_seconds']:.1f} s, merge {shards['merge_seconds']:.1f} s, "
        f"wall {manifest['wall_seconds']:.1f} s"
    )
