"""Open a run directory as polars LazyFrames (complete cells only)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from simulator.errors import RecarenaError
from simulator.logschema import TABLES

INCOMPLETE = "_INCOMPLETE"


@dataclass(frozen=True)
class Cell:
    arm: str
    rep: int
    path: Path


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
    daily: pl.LazyFrame
    llm_calls: pl.LazyFrame
    personas: pl.LazyFrame

    @property
    def arms(self) -> list[str]:
        found = {c.arm for c in self.cells}
        return [a for a in self.manifest.get("arms", sorted(found)) if a in found]

    @property
    def baseline(self) -> str:
        return self.manifest.get("baseline") or self.arms[0]


def _scan(cells: list[Cell], table: str) -> pl.LazyFrame:
    frames = [
        pl.scan_parquet(cell.path / f"{table}.parquet").select(
            pl.lit(cell.arm, pl.Utf8).alias("arm"),
            pl.lit(cell.rep, pl.Int32).alias("rep"),
            pl.all(),
        )
        for cell in cells
    ]
    return pl.concat(frames, how="vertical")


def load(run_dir: str | Path) -> RunLogs:
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
    complete, incomplete = [], []
    for entry in manifest.get("cells", []):
        cell = Cell(entry["arm"], int(entry["rep"]), run_dir / entry["path"])
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
    return RunLogs(run_dir, manifest, complete, incomplete, **tables)
