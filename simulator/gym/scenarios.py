"""Where an environment's scenario comes from: a file, a parsed document, a Scenario, or none.

``None`` gives a small default world (2,000 users, 1,000 items, a list of 10), so
``gymnasium.make("recarena/Session-v0")`` works without a file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.runner.resolve import load_scenario, parse_scenario, resolve

DEFAULT_SCENARIO: dict[str, Any] = {
    "name": "gym_default",
    "seed": 0,
    "catalog": {"initial_items": 1000, "topics": 16},
    "population": {"users": 2000},
    "surface": {"type": "list", "k": 10},
    "arms": [{"name": "env", "recommender": {"type": "random"}}],
}


def as_scenario(scenario: str | Path | dict[str, Any] | Scenario | None) -> Scenario:
    """A resolved Scenario; every user mistake is one RecarenaError naming the file or field."""
    if scenario is None:
        return parse_scenario(copy.deepcopy(DEFAULT_SCENARIO), "<default gym scenario>")
    if isinstance(scenario, Scenario):
        return resolve(scenario.model_copy(deep=True), f"<scenario {scenario.name}>")
    if isinstance(scenario, dict):
        return parse_scenario(copy.deepcopy(scenario), "<scenario>")
    if not isinstance(scenario, str | Path):
        raise RecarenaError(
            "scenario: expected a YAML file path, a mapping or a Scenario, got "
            f"{type(scenario).__name__}"
        )
    return load_scenario(scenario)
