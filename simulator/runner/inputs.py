"""The files a run reads besides its scenario, fingerprinted so ``--resume`` can tell they changed.

A resumed run keeps its finished cells and reruns the others; it promises the logs of an
uninterrupted run. The scenario itself is compared field by field, but a scenario names files:
a calibrated population, an edge list, a start-hours CSV, personas, a policy checkpoint, a local
model. One edited (or a relative path read from another working directory) between the run and
its resume gave cells of two different worlds in one run, compared as if paired, without a word.
So the run manifest keeps a fingerprint of each (``inputs``) and ``--resume`` refuses a change.

A fingerprint is the size and the sha256 of the file; of a file past :data:`WHOLE_BYTES` (a
local model of gigabytes) the sha256 covers its size, first and last MiB, read in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from recarena.simulator.core.scenario import Scenario
from recarena.simulator.runner.checkpoint_check import policies
from recarena.simulator.runner.sweep import SweepPoint

WHOLE_BYTES = 64 * 2**20
"""Files up to this size are hashed whole."""
SAMPLE_BYTES = 2**20


def input_files(scenario: Scenario, points: list[SweepPoint]) -> dict[str, str]:
    """``{path as written: field}`` of every file the scenario, or one of its sweep points,
    reads (a field of a point is named ``sweep point i: field``)."""
    found: dict[str, str] = {}
    worlds = [(scenario, "")] + [(p.scenario, f"sweep point {p.index}: ") for p in points]
    for world, where in worlds:
        for field, path in _fields(world):
            found.setdefault(path, where + field)
    return found


def _fields(scenario: Scenario) -> list[tuple[str, str]]:
    pop = scenario.population
    fields: list[tuple[str, str | None]] = []
    if pop.source == "calibrated" and pop.path is not None:
        base = Path(pop.path)
        fields += [
            ("population.path", str(base)),
            ("population.path (its items)", str(base.with_suffix(".items.parquet"))),
            ("population.path (its user model)", str(base.with_suffix(".interest.npz"))),
        ]
    if pop.social is not None:
        fields.append(("population.social.graph.path", pop.social.graph.path))
    if pop.daily_rhythm is not None:
        fields.append(
            ("population.daily_rhythm.start_hours_from", pop.daily_rhythm.start_hours_from)
        )
    if pop.llm_panel is not None:
        fields.append(("population.llm_panel.personas.path", pop.llm_panel.personas.path))
    if scenario.uses_llm and scenario.llm.provider == "local":
        fields.append(("llm.model_path", scenario.llm.model_path))
    fields += [(field, spec) for field, spec, _, _ in policies(scenario)]  # files, not module:name
    return [(field, str(path)) for field, path in fields if path and os.path.isfile(path)]


def fingerprint(path: str) -> dict[str, Any]:
    """``{"bytes": size, "sha256": digest}`` of the file at ``path`` (see the module's note);
    ``{"unreadable": reason}`` when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.sha256()
            if size <= WHOLE_BYTES:
                for block in iter(lambda: handle.read(SAMPLE_BYTES), b""):
                    digest.update(block)
            else:
                digest.update(str(size).encode())
                digest.update(handle.read(SAMPLE_BYTES))
                handle.seek(size - SAMPLE_BYTES)
                digest.update(handle.read(SAMPLE_BYTES))
    except OSError as exc:
        return {"unreadable": exc.strerror or type(exc).__name__}
    return {"bytes": size, "sha256": digest.hexdigest()}


def fingerprints(scenario: Scenario, points: list[SweepPoint]) -> dict[str, dict[str, Any]]:
    """What the run manifest keeps under ``inputs``: per file as written, its field and
    fingerprint."""
    return {
        path: {"field": field, **fingerprint(path)}
        for path, field in input_files(scenario, points).items()
    }


def changed_input(previous: Any, current: dict[str, dict[str, Any]]) -> str | None:
    """How the input files differ now from the run's (``previous``: its manifest's
    ``inputs``), or None. A run written before inputs were kept has none to compare."""
    if not isinstance(previous, dict):
        return None
    for path, then in previous.items():
        if not isinstance(then, dict):
            continue
        field = then.get("field", "a file the scenario reads")
        now = current.get(path)
        if now is None and not os.path.exists(path):
            return f"{field} {path} no longer exists"
        now = now if now is not None else fingerprint(path)
        if "unreadable" in now:
            return f"{field} {path} cannot be read ({now['unreadable']})"
        if (now.get("bytes"), now.get("sha256")) != (then.get("bytes"), then.get("sha256")):
            return f"{field} {path} changed since the run started"
    for path, now in current.items():
        if path not in previous:  # written since (a user model beside a calibrated population)
            return f"{now['field']} {path} did not exist when the run started"
    return None
