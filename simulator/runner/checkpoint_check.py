"""A ``type: policy`` arm's checkpoint file loaded before a run, the way the arm's cells load it.

The params model (recommenders/policy.py) looks at the file without torch: it exists and starts
like a zip archive or a pickle. A checkpoint cut short, or a ``torch.save`` of a tensor or of a
``state_dict`` rather than of a module, starts the same way, so it passed validate and every cell
of the arm failed after the run directory was written. Loading torch takes a second or two, so
it is done here, once per distinct file, and only for scenarios with such an arm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Scenario

POLICY = "policy"
_LOADER_PREFIX = "recommender.params.checkpoint: "


def checkpoint_files(scenario: Scenario) -> list[tuple[str, str]]:
    """``(field, checkpoint)`` of every policy in the arms' trees (an arm's own type, or a
    wrapper's ``base`` and that base's base) whose checkpoint is a file, not a callable."""
    found: list[tuple[str, str]] = []
    for index, arm in enumerate(scenario.arms):
        where = f"arms[{index}].recommender.params"
        type_name: Any = arm.recommender.type
        params: Any = arm.recommender.params
        while isinstance(params, dict):
            if type_name == POLICY:
                spec = params.get("checkpoint")
                if isinstance(spec, str) and Path(spec).is_file():
                    found.append((f"{where}.checkpoint", spec))
                break
            type_name, params = params.get("base"), params.get("base_params")
            where = f"{where}.base_params"
    return found


def check_checkpoints(scenario: Scenario) -> None:
    """Load each policy checkpoint file with the cell's loader; RecarenaError naming the field
    and the file when it is no callable torch module."""
    files = checkpoint_files(scenario)
    if not files:
        return
    from recarena.recommenders.policy import load_policy

    loaded: set[str] = set()
    for where, spec in files:
        if spec in loaded:
            continue
        try:
            load_policy(spec)
        except RecarenaError as exc:
            raise RecarenaError(f"{where}: {str(exc).removeprefix(_LOADER_PREFIX)}") from None
        loaded.add(spec)
