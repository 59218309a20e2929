"""A ``type: policy`` arm's policy loaded and asked once before a run, as the arm's cells do.

The params model (recommenders/policy.py) looks at the file without torch: it exists and starts
like a zip archive or a pickle. A checkpoint cut short, or a ``torch.save`` of a tensor or of a
``state_dict`` rather than of a module, starts the same way, so it passed validate and every cell
of the arm failed after the run directory was written. So did a module or callable that cannot
take the observation dict (a forward of other inputs) or answers scores of another shape. Each
policy is loaded here once (torch takes a second or two, and only such scenarios pay it) and
asked for the scores of a first page, once per distinct history and slate size.
"""

from __future__ import annotations

from typing import Any

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import plugin_prints_to_stderr
from recarena.simulator.core.scenario import Scenario

POLICY = "policy"
_LOADER_PREFIX = "recommender.params.checkpoint: "


def policies(scenario: Scenario) -> list[tuple[str, str, int, int]]:
    """``(field, checkpoint, history, k)`` of every policy in the arms' trees (an arm's own
    type, or a wrapper's ``base`` and that base's base)."""
    found: list[tuple[str, str, int, int]] = []
    for index, arm in enumerate(scenario.arms):
        where = f"arms[{index}].recommender.params"
        type_name: Any = arm.recommender.type
        params: Any = arm.recommender.params
        while isinstance(params, dict):
            if type_name == POLICY:
                spec, history = params.get("checkpoint"), params.get("history", 10)
                k = getattr(scenario.surface_for(arm), "k", None)
                if isinstance(spec, str) and isinstance(history, int):
                    found.append((f"{where}.checkpoint", spec, history, k or 10))
                break
            type_name, params = params.get("base"), params.get("base_params")
            where = f"{where}.base_params"
    return found


def check_checkpoints(scenario: Scenario, topics: int | None = None) -> None:
    """Load each policy (a checkpoint file or a callable) with the cell's loader and ask it for
    the scores of a first page; RecarenaError naming the field and the checkpoint when it is no
    callable torch module, or cannot score the observation its arm gives it (a forward of
    another signature, scores of another shape). ``topics``: the cells' topics when they are
    not the written ``catalog.topics`` (a calibrated population's own)."""
    found = policies(scenario)
    if not found:
        return
    with plugin_prints_to_stderr():  # the policy is plug-in code; stdout is validate's answer
        _ask_policies(found, topics if topics is not None else scenario.catalog.topics)


def _ask_policies(found: list[tuple[str, str, int, int]], mix: int) -> None:
    from recarena.recommenders.policy import first_page, load_policy, policy_scores

    loaded: dict[str, Any] = {}
    asked: set[tuple[str, int, int]] = set()
    for where, spec, history, k in found:
        try:
            if spec not in loaded:
                loaded[spec] = load_policy(spec)
            if (spec, history, k) not in asked:
                policy, is_torch = loaded[spec]
                policy_scores(policy, is_torch, first_page(mix, history, k))
                asked.add((spec, history, k))
        except RecarenaError as exc:
            raise RecarenaError(f"{where}: {str(exc).removeprefix(_LOADER_PREFIX)}") from None
