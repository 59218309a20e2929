"""Open a run directory as polars LazyFrames (complete cells only).

A sweep run (``point=<i>/arm=<a>/rep=<r>``) gets a ``point`` column before ``arm`` and ``rep``;
metrics and ``compare`` work per (arm, rep), so open one point at a time for them:
``load(run_dir, point=i)``. The manifest's ``sweep.points`` maps each point to its values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recarena.analysis.options import check_index
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.logschema import SCHEMAS
from recarena.simulator.core.yaml_safe import read_yaml_file
from recarena.simulator.runner.rundir import (
    RUNNING,
    SCENARIO_FILE,
    check_cells,
    holder_name,
    lock_holder,
    read_manifest,
    reconcile,
    save_reconciled,
    scenario_problem,
)


@dataclass(frozen=True)
class Cell:
    arm: str
    rep: int
    path: Path
    point: int | None = None


@dataclass(frozen=True)
class RunLogs:
    """Every log table of a run, with ``arm`` and ``rep`` columns first, scanned lazily."""

    run_dir: Path
    manifest: dict[str, Any]
    cells: list[Cell]
    incomplete: list[Cell]
    exposures: pl.LazyFrame
    interactions: pl.LazyFrame
    sessions: pl.LazyFrame
    items: pl.LazyFrame
    creators: pl.LazyFrame
    creator_periods: pl.LazyFrame
    daily: pl.LazyFrame
    llm_calls: pl.LazyFrame
    personas: pl.LazyFrame
    users_end: pl.LazyFrame
    turns: pl.LazyFrame  # conversations (simulator/core/logschema.py TURNS)
    posts: pl.LazyFrame  # talking users (simulator/core/logschema.py FEATURE_TABLES)
    messages: pl.LazyFrame
    social_clicks: pl.LazyFrame
    item_sources: pl.LazyFrame  # AI-generated content
    source_periods: pl.LazyFrame
    instructions: pl.LazyFrame  # users near leaving (population.instructions)
    point: int | None = None
    """The sweep point these logs were restricted to (``load(..., point=i)``), else None."""
    point_scenario: dict[str, Any] | None = None
    """That point's own resolved scenario (``point=<i>/scenario.resolved.yaml``), else None."""

    @property
    def scenario(self) -> dict[str, Any]:
        """The resolved scenario of the world these logs hold: a sweep point's own when they
        were opened with ``load(run_dir, point=i)``, else the run's. A point that swept the
        horizon, a surface or an arm was read with the run's values: a 9-day point of a 1-day
        run had no retention_d7, and its report showed the run's users, not the point's."""
        if self.point_scenario is not None:
            return self.point_scenario
        scenario = self.manifest.get("scenario")
        return scenario if isinstance(scenario, dict) else {}

    @property
    def points(self) -> list[dict[str, Any]]:
        """Sweep points of the run: ``{"point", "path", "params"}`` each; [] without a sweep."""
        return list(self.manifest.get("sweep", {}).get("points", []))

    @property
    def arms(self) -> list[str]:
        found = {c.arm for c in self.cells}
        return [a for a in self.manifest.get("arms", sorted(found)) if a in found]

    @property
    def unfinished_arms(self) -> list[str]:
        """Arms of the run that finished no cell (an interrupted run), in the run's order."""
        found = {c.arm for c in self.cells}
        return [a for a in self.manifest.get("arms", []) if a not in found]

    @property
    def baseline(self) -> str:
        return self.manifest.get("baseline") or self.arms[0]


def _scan_file(path: Path, table: str) -> pl.LazyFrame:
    """A cell's table; a table the cell predates (a run from an older version) reads as empty."""
    if path.exists():
        # glob=False: polars reads a path as a pattern, so a run under 'runs/exp[1]' had no
        # files ("expanded paths were empty"), and `recarena run` ended in an internal error
        return pl.scan_parquet(path, glob=False)
    return pl.DataFrame(SCHEMAS[table].empty_table()).lazy()


def _scan(cells: list[Cell], table: str) -> pl.LazyFrame:
    sweep = any(cell.point is not None for cell in cells)
    frames = [
        _scan_file(cell.path / f"{table}.parquet", table).select(
            *([pl.lit(cell.point, pl.Int32).alias("point")] if sweep else []),
            pl.lit(cell.arm, pl.Utf8).alias("arm"),
            pl.lit(cell.rep, pl.Int32).alias("rep"),
            pl.all(),
        )
        for cell in cells
    ]
    return pl.concat(frames, how="vertical")


def load(run_dir: str | Path, point: int | None = None) -> RunLogs:
    """All finished cells of a run, or of one sweep point when ``point`` is given.

    Cells are checked cheaply against their recorded files (size and Parquet row count,
    simulator/runner/rundir.py); an unfinished or damaged cell is left out with one warning
    line. A manifest left saying ``running`` by a killed run is reconciled with the cell markers
    (and saved, when nobody holds the run), with one warning line saying what was found.
    """
    check_index(point, "point")
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    checks = check_cells(run_dir, manifest)
    holder = lock_holder(run_dir)
    if manifest.get("status") == RUNNING and holder is not None:
        warnings.warn(
            f"{run_dir}: the run is still going ({holder_name(holder)}); reading the "
            f"{sum(c.finished for c in checks)} of {len(checks)} cells finished so far",
            stacklevel=2,
        )
    else:
        manifest, changed, found = reconcile(run_dir, manifest, checks)
        saved = changed and save_reconciled(run_dir, manifest)
        if found is not None:
            warnings.warn(found + ("" if saved else " (not saved: read-only)"), stacklevel=2)
    problems = {check.index: check.problem for check in checks}
    entries = list(enumerate(manifest.get("cells", [])))
    if point is not None:
        known = [p["point"] for p in manifest.get("sweep", {}).get("points", [])]
        if point not in known:
            raise RecarenaError(
                f"{run_dir}: no sweep point {point}"
                + (f"; points: {', '.join(map(str, known))}" if known else " (not a sweep run)")
            )
        entries = [(i, entry) for i, entry in entries if entry.get("point") == point]
    complete: list[Cell] = []
    incomplete: list[Cell] = []
    why: list[str] = []
    for i, entry in entries:
        cell = Cell(entry["arm"], int(entry["rep"]), run_dir / entry["path"], entry.get("point"))
        problem = problems.get(i)
        (complete if problem is None else incomplete).append(cell)
        if problem is not None:
            kind = "unfinished" if problem in ("unfinished", "missing") else f"damaged: {problem}"
            why.append(f"{entry['path']} ({kind})")
    if not complete:  # the reasons in the one error line, not in a warning line before it
        found = f" ({len(why)} cell(s): {', '.join(why[:3])}{', ...' if len(why) > 3 else ''})"
        raise RecarenaError(f"{run_dir}: no finished cells to read{found if why else ''}")
    if incomplete:
        warnings.warn(
            f"{run_dir}: {len(incomplete)} cell(s) left out: " + ", ".join(why), stacklevel=2
        )
    tables = {name: _scan(complete, name) for name in SCHEMAS}
    own = None if point is None else _point_scenario(run_dir, manifest, point)
    return RunLogs(
        run_dir, manifest, complete, incomplete, **tables, point=point, point_scenario=own
    )


def _point_scenario(run_dir: Path, manifest: dict[str, Any], point: int) -> dict[str, Any]:
    """The resolved scenario the runner saved for sweep ``point``; one line naming the file
    when it cannot be used."""
    entry = next(p for p in manifest["sweep"]["points"] if p["point"] == point)
    path = run_dir / entry.get("path", f"point={point}") / SCENARIO_FILE
    try:
        scenario = read_yaml_file(path)
    except RecarenaError as exc:
        raise RecarenaError(f"sweep point {point}: {exc}") from None
    problem = scenario_problem(scenario)
    if problem is not None:
        raise RecarenaError(f"{path}: {problem}")
    return scenario


def load_one_world(run_dir: str | Path, point: int | None = None) -> RunLogs:
    """Like :func:`load`, but a sweep run needs a point: metrics group by (arm, rep), so mixing
    the points of a sweep would average different worlds together. A sweep of one point is one
    world, and is opened without ``--point``."""
    logs = load(run_dir, point)
    if point is None and len(logs.points) == 1:
        return load(run_dir, logs.points[0]["point"])
    if point is None and logs.points:
        known = ", ".join(str(p["point"]) for p in logs.points)
        raise RecarenaError(f"{logs.run_dir} is a sweep: pass --point (one of {known})")
    return logs


def require_one_world(logs: RunLogs, what: str) -> None:
    """Refuse logs that hold the cells of several sweep points: ``what`` groups by (arm, rep)
    and would pool the points' different worlds into one cell without a word."""
    points = sorted({c.point for c in logs.cells if c.point is not None})
    if logs.point is None and len(points) > 1:
        known = ", ".join(map(str, points))
        raise RecarenaError(
            f"{logs.run_dir} is a sweep of {len(points)} points and {what} would pool their "
            f"worlds into one cell per arm and replicate; open one with load(run_dir, point=i) "
            f"(points: {known})"
        )
