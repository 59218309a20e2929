"""The cells of a run: arms x replicates (x sweep points), planned without importing the engine.

``recarena validate`` plans cells to report their number; keeping the plan apart from the
executors means validating never loads the engine, pyarrow or the LLM client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recarena.simulator.core.names import path_component
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.runner.sweep import SweepPoint, expand_sweep


@dataclass(frozen=True)
class Cell:
    index: int
    arm_index: int
    arm: str
    rep: int
    point: int | None = None
    """Sweep point, or None for a scenario without a sweep."""

    @property
    def path(self) -> str:
        cell = f"arm={path_component(self.arm, 'arm name')}/rep={self.rep}"
        return cell if self.point is None else f"point={self.point}/{cell}"


def plan_cells(scenario: Scenario, points: list[SweepPoint] | None = None) -> list[Cell]:
    """Point-major, then replicate-major, so the arms of a replicate finish together and pair
    early. ``points`` saves re-expanding a sweep the caller already expanded."""
    points = expand_sweep(scenario) if points is None else points
    cells: list[Cell] = []
    cell_points: list[SweepPoint | None] = [*points] if points else [None]
    for point in cell_points:
        for rep in range(scenario.replicates):
            for arm_index, arm in enumerate(scenario.arms):
                index = None if point is None else point.index
                cells.append(Cell(len(cells), arm_index, arm.name, rep, index))
    return cells


def cell_docs(scenario: Scenario, points: list[SweepPoint]) -> dict[int | None, dict[str, Any]]:
    """The scenario document each cell runs, by sweep point (``None`` without a sweep)."""
    if not points:
        return {None: scenario.model_dump(mode="json")}
    return {point.index: point.doc() for point in points}
