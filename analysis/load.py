"""Open a run directory as polars LazyFrames (complete cells only).

A sweep run (``point=<i>/arm=<a>/rep=<r>``) gets a ``point`` column before ``arm`` and ``rep``;
metrics and ``compare`` work per (arm, rep), so open one point at a time for them:
``load(run_dir, point=i)``. The manifest's ``sweep.points`` maps each point to its values.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.logschema import SCHEMAS, TABLES

INCOMPLETE = "_INCOMPLETE"


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
    turns: pl.LazyFrame  # conversations (simulator/logschema.py TURNS)
    point: int | None = None
    """The sweep point these logs were restricted to (``load(..., point=i)``), else None."""

    @property
    def points(self) -> list[dict[str, Any]]:
        """Sweep points of the run: ``{"point", "path", "params"}`` each; [] without a sweep."""
        return list(self.manifest.get("sweep", {}).get("points", []))

    @property
    def arms(self) -> list[str]:
        found = {c.arm for c in self.cells}
        return [a for a in self.manifest.get("arms", sorted(found)) if a in found]

    @property
    def baseline(self) -> str:
        return self.manifest.get("baseline") or self.arms[0]


def _scan_file(path: Path, table: str) -> pl.LazyFrame:
    """A cell's table; a table the cell predates (a run from an older version) reads as empty."""
    if path.exists():
        return pl.scan_parquet(path)
    return pl.from_arrow(SCHEMAS[table].empty_table()).lazy()


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
    """All finished cells of a run, or of one sweep point when ``point`` is given."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not run_dir.is_dir():
        raise RecarenaError(f"run directory not found: {run_dir}")
    if not manifest_path.exists():
        raise RecarenaError(f"not a recarena run directory: {run_dir} (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecarenaError(f"{manifest_path}: unreadable manifest: {exc}") from None
    entries = manifest.get("cells", [])
    if point is not None:
        known = [p["point"] for p in manifest.get("sweep", {}).get("points", [])]
        if point not in known:
            raise RecarenaError(
                f"{run_dir}: no sweep point {point}"
                + (f"; points: {', '.join(map(str, known))}" if known else " (not a sweep run)")
            )
        entries = [entry for entry in entries if entry.get("point") == point]
    complete, incomplete = [], []
    for entry in entries:
        cell = Cell(entry["arm"], int(entry["rep"]), run_dir / entry["path"], entry.get("point"))
        done = (cell.path / "manifest.json").exists() and not (cell.path / INCOMPLETE).exists()
        (complete if done else incomplete).append(cell)
    if incomplete:
        warnings.warn(
            f"{run_dir}: {len(incomplete)} unfinished cell(s) left out: "
            + ", ".join(f"{c.arm}/rep={c.rep}" for c in incomplete),
            stacklevel=2,
        )
    if not complete:
        raise RecarenaError(f"{run_dir}: no finished cells to read")
    tables = {name: _scan(complete, name) for name in TABLES}
    return RunLogs(run_dir, manifest, complete, incomplete, **tables, point=point)


def load_one_world(run_dir: str | Path, point: int | None = None) -> RunLogs:
    """Like :func:`load`, but a sweep run needs a point: metrics group by (arm, rep), so mixing
    the points of a sweep would average different worlds together."""
    logs = load(run_dir, point)
    if point is None and logs.points:
        known = ", ".join(str(p["point"]) for p in logs.points)
        raise RecarenaError(f"{logs.run_dir} is a sweep: pass --point (one of {known})")
    return logs
