"""Every recommender answer passes the slate guard: a plug-in that breaks a rule is stopped with
one line naming the arm and the recommender type, and honest recommenders run unchanged."""

from __future__ import annotations

import copy

import pytest

from recarena.simulator.engine.slate_guard import SlateViolation
from recarena.simulator.runner.cell import run_cell
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.resolve import parse_scenario

PLUGINS = "tests.slate_plugins"

SMALL = {
    "name": "guard",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 300},
    "catalog": {"initial_items": 60, "topics": 4},
    "population": {"users": 80, "visits_per_day": 3.0, "max_pages": 6},
    "creators": {"count": 3, "uploads_per_day": 1.0},
    "surface": {"k": 5},
    "arms": [{"name": "honest", "recommender": {"type": f"{PLUGINS}:Honest"}}],
}


def _run_arm(tmp_path, kind: str, arm: str = "suspect"):
    doc = copy.deepcopy(SMALL)
    doc["arms"].append({"name": arm, "recommender": {"type": f"{PLUGINS}:{kind}"}})
    scenario = parse_scenario(doc)
    index = len(scenario.arms) - 1
    return run_cell(scenario.model_dump(mode="json"), Cell(0, index, arm, 0), str(tmp_path))


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("SameItemEverywhere", "appears twice in a slate"),
        ("IgnoresExclude", "already consumed by this user"),
        ("OutOfRange", "is not a published item"),
        ("FloatIds", "dtype float64"),
        ("WrongShape", "has shape"),
        ("BadPropensity", "propensity 0.0"),
    ],
)
def test_each_slate_rule_stops_the_cell_naming_arm_and_type(tmp_path, kind, fragment):
    with pytest.raises(SlateViolation) as caught:
        _run_arm(tmp_path, kind)
    message = str(caught.value)
    assert "\n" not in message
    assert "arm 'suspect'" in message
    assert f"{PLUGINS}:{kind}" in message
    assert fragment in message
    if kind not in ("FloatIds", "WrongShape"):  # whole-batch faults name no single request
        assert "request user=" in message and "page=" in message


def test_honest_plugin_and_builtins_pass(tmp_path):
    manifest = _run_arm(tmp_path, "Honest", arm="honest_too")
    assert manifest["rows"]["exposures"] > 0
    doc = copy.deepcopy(SMALL)
    doc["arms"] = [
        {"name": name, "recommender": {"type": name}}
        for name in ("random", "popularity", "epsilon_greedy", "oracle")
    ]
    scenario = parse_scenario(doc)
    for index, arm in enumerate(scenario.arms):
        out = tmp_path / arm.name
        cell = Cell(index, index, arm.name, 0)
        assert run_cell(scenario.model_dump(mode="json"), cell, str(out))["rows"]["exposures"] > 0
