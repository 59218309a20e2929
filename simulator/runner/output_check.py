"""The output checked before any work: the run directory can be written and the disk can hold
the logs.

A run that dies after an hour because its directory sits under a file, on a read-only mount or
on a full disk wastes the hour; these checks cost milliseconds and give one line instead.
(simulator/runner/preflight.py checks the scenario and the machine's memory; this module only
the place the logs go.)

The log size is an estimate from the scenario alone (no engine): expected impressions per arm
are ``users x visits/day x days x pages/session x slots``; pages per session follow the fatigue
model (a session ends after page p with probability ``1 - exp(-fatigue_p)``), and
``BYTES_PER_IMPRESSION`` covers every table per exposure row (measured, see docs/runs.md).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.logschema import SCHEMAS
from recarena.simulator.core.paths import RUN_DIR_ROOM, check_creatable, existing_ancestor
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.core.types import DAY
from recarena.simulator.runner.preflight import human_bytes
from recarena.simulator.runner.rundir import run_holding
from recarena.simulator.runner.sweep import expand_sweep

BYTES_PER_IMPRESSION = 24.0
"""All log tables' bytes per exposure row (zstd Parquet), rounded up from measured runs."""
RUN_NAME_ROOM = 81
"""The run directory's own name, ``<name>-<stamp>``, already part of the path checked here."""
BLOCK_BYTES = 4096
"""What the smallest file takes on disk (ext4, xfs, tmpfs: a 4 KiB block or page)."""
FIXED_BYTES_PER_CELL = 64_000 + (len(SCHEMAS) + 1) * BLOCK_BYTES
"""Schema-only files, manifests and the small tables (items, creators, daily) of one cell, and
a block for each of its files: at 64 KB alone, a 30-user run needing 180 KB on disk was
estimated at 162 KB, passed the free-space check on a small disk and filled it mid-run."""
RUN_FILES_BYTES = 3 * BLOCK_BYTES
"""The run's own files (manifest.json, its temporary copy, scenario.resolved.yaml)."""


@dataclass(frozen=True)
class LogEstimate:
    impressions: float
    bytes: float
    cells: int

    def line(self) -> str:
        return (
            f"estimated logs: ~{human_bytes(self.bytes)} "
            f"(~{self.impressions:,.0f} impressions over {self.cells} cell(s))"
        )


def expected_pages(fatigue_per_page: float, fatigue_no_click: float, max_pages: int) -> float:
    """Mean pages per session when fatigue grows by about ``per_page + no_click/2`` a page."""
    step = fatigue_per_page + 0.5 * fatigue_no_click
    pages = np.arange(max_pages)
    survive = np.exp(-step * pages * (pages + 1) / 2)  # P(still browsing at page p)
    return float(survive.sum())


def _slots(surface: object) -> int:
    """Items shown on a page: a carousel's rows x cols (was 10 a row whatever its columns, so
    2 rows of 60 columns logged ten times the impressions the disk check asked room for)."""
    rows = getattr(surface, "rows", None)
    if rows:
        return len(rows) * int(getattr(surface, "cols", 10))
    return int(getattr(surface, "k", 10))


def estimate_logs(scenario: Scenario, cells_to_run: int | None = None) -> LogEstimate:
    """Estimated impressions and bytes of a run (or of ``cells_to_run`` of its cells)."""
    worlds = [point.scenario for point in expand_sweep(scenario)] or [scenario]
    impressions, cells = 0.0, 0
    for world in worlds:
        pop = world.population
        pages = expected_pages(pop.fatigue_per_page, pop.fatigue_no_click, pop.max_pages)
        per_user = pop.visits_per_day * world.horizon.days * pages
        # a user sees at most a page a tick: 10^6 visits a day over 20 users and 57 ticks
        # logged 11,400 impressions, and the disk check asked room for 209 million (4.7 GB)
        per_user = min(per_user, world.horizon.days * DAY / world.horizon.tick_seconds)
        for arm in world.arms:
            impressions += pop.users * per_user * _slots(world.surface_for(arm)) * world.replicates
        cells += len(world.arms) * world.replicates
    if cells_to_run is not None and cells:
        impressions *= cells_to_run / cells
        cells = cells_to_run
    size = impressions * BYTES_PER_IMPRESSION + cells * FIXED_BYTES_PER_CELL + RUN_FILES_BYTES
    return LogEstimate(impressions, size, cells)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(existing_ancestor(path)).free


def check_output(
    run_dir: Path, needed_bytes: float, option: str = "--output", *, parent: bool = False
) -> None:
    """One-line RecarenaError unless ``run_dir`` can be created/written and the disk holds
    ``needed_bytes``. Writability is tested by writing: ``os.access`` says yes to root even on
    a read-only directory and knows nothing of read-only mounts. ``parent``: ``run_dir`` is
    where run directories are made (``output.dir``), so it may not be a run either."""
    # a NUL byte, an over-long name or a symlink loop: os calls fail on them before any write
    where = check_creatable(run_dir, option, room=RUN_DIR_ROOM - RUN_NAME_ROOM)
    run = run_holding(Path(os.path.abspath(run_dir)), itself=parent)
    if run is not None:
        # was: made there, and a resume of the outer run deleted it with the cell's folder
        # it sat in (or compare and report read it among that run's files)
        verb = "is" if run == Path(os.path.abspath(run_dir)) else "is inside"
        raise RecarenaError(
            f"{option} {run_dir}: {verb} the run directory {run}, whose folders are that "
            "run's (a resume rewrites an unfinished cell's folder with all it holds); choose "
            "a path outside it"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".recarena-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RecarenaError(f"{option} {run_dir}: cannot write in {where} ({reason})") from None
    free = shutil.disk_usage(where).free
    if math.isfinite(needed_bytes) and needed_bytes > free:
        raise RecarenaError(
            f"{option} {run_dir}: the logs need about {human_bytes(needed_bytes)} but {where} "
            f"has {human_bytes(free)} free"
        )
