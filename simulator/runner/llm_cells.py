"""Which cells an LLM cache holds the calls of, so that a replay of a cache filled by another
scenario is refused before its first cell instead of failing in it.

A cell's fingerprint hashes what shapes its prompts: the cell's world (seed, replicate, its arm,
population, catalog, creators, surface, retrain, the LLM users' settings and the model name).
Left out is what no prompt reads: names, the other arms, replicates, metrics, output, how the
endpoint is reached (provider, URL, key, concurrency, timeouts, retries, prices, the cache),
the horizon's length (a shorter replay reads a prefix of the calls), and the sizes and fitted
scalars a calibrated population's file fills in (the file is part of the world).

Was: ``--llm-cache-mode replay --llm-cache OTHER.sqlite`` started the run, and every cell
stopped at its first LLM call ('no recorded answer for the page call ...'), leaving a run
directory of failed cells.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from recarena.agents.llm.cache import record_cells, unrecorded_cells
from recarena.agents.llm.endpoint import model_name
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.runner.plan import Cell, plan_cells
from recarena.simulator.runner.sweep import expand_sweep

UNREAD_FIELDS = ("name", "description", "replicates", "arms", "baseline", "metrics", "output")
UNREAD_LLM_FIELDS = (
    "provider", "model_path", "model", "base_url", "api_key_env", "threads", "concurrency",
    "timeout_seconds", "max_retries", "backoff_seconds", "price_input_per_million",
    "price_output_per_million", "cache", "max_fallback_share",
)  # fmt: skip
CALIBRATED_FILLS = {
    "population": ("users", "temperature", "no_click_utility", "rating_thresholds", "policy"),
    "catalog": ("topics", "initial_items"),
    "creators": ("count",),
}
"""What ``resolve_calibrated`` takes from the population file: validate sees the scenario
before it, the run after."""


def _world_text(world: Scenario) -> str:
    """Canonical JSON of what shapes the prompts of every cell of ``world``."""
    doc: dict[str, Any] = world.model_dump(mode="json", exclude={"sweep"})
    for name in UNREAD_FIELDS:
        doc.pop(name, None)
    doc["llm"] = {k: v for k, v in doc["llm"].items() if k not in UNREAD_LLM_FIELDS}
    doc["llm"]["model_name"] = model_name(world)
    doc["horizon"].pop("days", None)
    if world.population.source == "calibrated":
        for section, fields in CALIBRATED_FILLS.items():
            doc[section] = {k: v for k, v in doc[section].items() if k not in fields}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fingerprint(world_text: str, world: Scenario, cell: Cell) -> str:
    own = {"rep": cell.rep, "arm": world.arms[cell.arm_index].model_dump(mode="json")}
    text = json.dumps(own, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{world_text}\n{text}".encode()).hexdigest()


def cell_fingerprint(world: Scenario, cell: Cell) -> str:
    """SHA-256 of what shapes the prompts of ``cell`` in ``world`` (its point's scenario)."""
    return _fingerprint(_world_text(world), world, cell)


def _worlds(scenario: Scenario) -> tuple[list[Cell], dict[int | None, Scenario]]:
    points = expand_sweep(scenario)
    worlds: dict[int | None, Scenario] = {p.index: p.scenario for p in points}
    return plan_cells(scenario, points), worlds or {None: scenario}


def _fingerprints(scenario: Scenario) -> dict[Cell, str]:
    """Every LLM cell's fingerprint, each point's world written out once (not once a cell)."""
    cells, worlds = _worlds(scenario)
    texts = {point: _world_text(world) for point, world in worlds.items() if world.uses_llm}
    return {c: _fingerprint(texts[c.point], worlds[c.point], c) for c in cells if c.point in texts}


def check_replay_cells(scenario: Scenario, mode: str | None, path: Path | None) -> None:
    """A replayed cache must hold the calls of every cell the run replays (as far as the cache
    can tell: see :func:`unrecorded_cells`); one line naming the first that it does not hold.
    The file itself was checked before (a missing or damaged one is named there)."""
    if not scenario.uses_llm or (mode or scenario.llm.cache.mode) != "replay":
        return
    # the run's own: its cells share one cache (experiment.py, _llm_runtime)
    cache = path or (Path(scenario.llm.cache.path) if scenario.llm.cache.path else None)
    if cache is None or not cache.is_file():
        return  # named by the file checks
    wanted = {fingerprint: cell.path for cell, fingerprint in _fingerprints(scenario).items()}
    missing = unrecorded_cells(cache, wanted)
    if missing:
        what = "--llm-cache" if path is not None else "llm.cache.path"
        raise RecarenaError(
            f"{what}: {cache} holds no recorded calls of cell {missing[0]} ({len(missing)} of "
            f"{len(wanted)} cells): it was filled by runs of another scenario (the seed, the "
            "arms, the model and the simulated world shape every prompt), so the replay would "
            "stop at that cell's first LLM call; replay the cache of a run of this scenario"
        )


class CellRecorder:
    """Notes each cell a run in auto or record mode finishes in its LLM cache (nothing for a
    replay, which stores nothing, or with the cache off)."""

    def __init__(self, scenario: Scenario, cache_path: str, mode: str | None, run_id: str) -> None:
        self.path = Path(cache_path)
        self.run_id = run_id
        self.fingerprints: dict[int, str] = {}
        if mode in ("auto", "record"):
            self.fingerprints = {c.index: f for c, f in _fingerprints(scenario).items()}

    def __call__(self, cell: Cell) -> None:
        fingerprint = self.fingerprints.get(cell.index)
        if fingerprint is None or not self.path.is_file():
            return  # no call was made (the cache file is made by the first)
        # on an error the calls are stored all the same; only a later replay's check is lost
        with contextlib.suppress(sqlite3.Error, OSError):
            record_cells(self.path, self.run_id, {fingerprint: cell.path})
