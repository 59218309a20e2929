"""Two or three fields changed at once: scenarios validate passed and run did not finish cleanly.

Each field alone was fine (earlier reviews mutated one at a time); the combination was not.
Every case goes through the real CLI entry point in-process: validate and run refuse it in one
line and create nothing, or, where the scenario is sound, both finish.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from recarena.simulator.core.scenario import Scenario
from tests.cli_in_process import cli
from tests.test_hostile_inputs import calibrated_files  # noqa: F401 - used by population
from tests.test_validate_gate import base_doc, refused_everywhere


@pytest.fixture
def population(calibrated_files: Path) -> Path:  # noqa: F811
    """The folder of a tiny calibrated population (40 users, 30 items, 2 topics)."""
    return calibrated_files


def calibrated_doc(tmp_path: Path, folder: Path) -> dict:
    """The gate's small scenario on a calibrated population (users, items, topics, creators and
    the choice model come from the file)."""
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": str(folder / "pop.parquet")}
    doc["creators"] = {"uploads_per_day": 0.0}
    doc["surface"] = {"k": 5}
    del doc["catalog"]
    return doc


def copy_population(source: Path, target: Path) -> Path:
    """The calibrated files (parquet, items, json, interest sidecar) under another folder."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        shutil.copy(path, target / path.name)
    return target


# ------------------------------------------------------- calibrated population x sweep
@pytest.mark.parametrize(
    ("sweep", "fragment"),
    [
        (
            {"catalog.topics": [2, 4]},
            "sweep.catalog.topics: the calibrated population (population.path) sets "
            "catalog.topics for every point",
        ),
        (
            {"population.users": [5, 10]},
            "sweep.population.users: the calibrated population (population.path) sets "
            "population.users",
        ),
        ({"catalog.initial_items": [10, 20]}, "sets catalog.initial_items for every point"),
        ({"creators.count": [1, 2]}, "sets creators.count for every point"),
        ({"catalog": [{"topics": 2}, {"topics": 3}]}, "sweep.catalog: the calibrated population"),
    ],
    ids=["topics", "users", "items", "creators", "catalog_section"],
)
def test_a_calibrated_population_with_a_swept_size(tmp_path, population, sweep, fragment):
    """Was: the run took sizes from the calibrated file once, from the scenario, and then each
    point set its swept value back. validate passed; catalog.topics 4 over a 2-topic file was
    'shape mismatch' (an internal error, exit 1, a run directory left behind), population.users
    and creators.count failed every cell (an index out of bounds, operands that could not be
    broadcast), and catalog.initial_items, which the file's items replace, ran the same cells
    under two labels."""
    doc = calibrated_doc(tmp_path, population)
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, fragment)


def test_a_swept_calibrated_population_path(tmp_path, population):
    """Was: each point read its own file's users and items but kept the scenario's fitted
    temperature, no-click utility, star cut points and sizes: two populations' fits mixed
    without a word, or (files of other sizes) every cell failed on a shape mismatch."""
    other = copy_population(population, tmp_path / "other")
    doc = calibrated_doc(tmp_path, population)
    doc["sweep"] = {
        "population.path": [str(population / "pop.parquet"), str(other / "pop.parquet")]
    }
    refused_everywhere(
        tmp_path, doc, "sweep.population.path: the run reads one calibrated population"
    )


def test_a_calibrated_population_swept_in(tmp_path, population):
    """Was: a generated scenario whose sweep put a calibrated population in one point passed
    validate; the run never read that file's sizes (done once, for the scenario) and the point's
    cells failed on a shape mismatch (exit 1, half a run)."""
    doc = base_doc(tmp_path)
    doc["sweep"] = {
        "population": [
            {"users": 20},
            {"from": "calibrated", "path": str(population / "pop.parquet")},
        ]
    }
    refused_everywhere(tmp_path, doc, "sweep.population: the run reads one calibrated")


def test_a_calibrated_population_may_sweep_its_choice_model(tmp_path, population):
    """The check refuses only what the file sets: a swept temperature is each point's own."""
    doc = calibrated_doc(tmp_path, population)
    doc["sweep"] = {"population.temperature": [0.5, 1.0]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr


# ----------------------------------------------------------- a wrapper's base x sweep
def test_a_swept_base_of_a_wrapper_starts_from_its_own_defaults(tmp_path):
    """Was: sweeping mmr's base over popularity and mf was refused by validate ('base_params.
    half_life_days: unknown key'): popularity's defaults, filled in by the resolve step, were
    carried to the mf point. Now a point whose carried base_params do not fit its base starts
    from that base's defaults, as a swept type does; the run finishes."""
    from recarena.simulator.runner.sweep import expand_sweep

    doc = base_doc(tmp_path)
    doc["arms"][1] = {
        "name": "mmr",
        "recommender": {"type": "mmr", "params": {"base": "popularity"}},
    }
    doc["sweep"] = {"arms[mmr].recommender.params.base": ["popularity", "mf"]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    code, stderr = cli("run", str(path), "--executor", "local", "-o", str(tmp_path / "out"), "-q")
    assert code == 0, stderr
    from recarena.simulator.runner.resolve import load_scenario

    points = expand_sweep(load_scenario(path))
    bases = [point.scenario.arms[1].recommender.params for point in points]
    assert [b["base"] for b in bases] == ["popularity", "mf"]
    assert "half_life_days" in bases[0]["base_params"]
    assert "dim" in bases[1]["base_params"] and "half_life_days" not in bases[1]["base_params"]
    assert isinstance(points[1].scenario, Scenario)


def test_a_swept_base_keeps_base_params_that_fit(tmp_path):
    """Written base_params that fit the swept base are kept (points of such sweeps always
    ran with them), and a swept base_params field is set after the base."""
    from recarena.simulator.runner.resolve import load_scenario
    from recarena.simulator.runner.sweep import expand_sweep

    doc = base_doc(tmp_path)
    doc["arms"][1] = {
        "name": "eps",
        "recommender": {
            "type": "epsilon_greedy",
            "params": {"base": "mf", "base_params": {"dim": 8}},
        },
    }
    doc["sweep"] = {
        "arms[eps].recommender.params.base": ["mf", "sasrec_native"],
        "arms[eps].recommender.params.base_params.epochs": [1],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    params = [p.scenario.arms[1].recommender.params for p in expand_sweep(load_scenario(path))]
    assert params[0]["base_params"]["dim"] == 8 and params[0]["base_params"]["epochs"] == 1
    assert params[1]["base"] == "sasrec_native" and params[1]["base_params"]["epochs"] == 1


# ------------------------------------------- calibrated population x plug-in user policy
def _with_policy(doc: dict) -> dict:
    doc["population"]["policy"] = "tests.plugin_kinds:ClickFirstSlot"
    return doc


def test_a_plugin_policy_over_a_calibrated_population(tmp_path, population):
    """Was: validate built the plug-in policy over the scenario as written (catalog.topics 16 by
    default) instead of the file's 2 topics: 'internal error ValueError: shape mismatch' (exit 1)
    from validate and from run. Now validate builds it as a cell does, and the run finishes."""
    path = tmp_path / "s.yaml"
    doc = _with_policy(calibrated_doc(tmp_path, population))
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    code, stderr = cli("run", str(path), "--executor", "local", "-o", str(tmp_path / "out"), "-q")
    assert code == 0, stderr


def test_a_plugin_policy_over_a_population_yet_to_calibrate(tmp_path):
    """Was: validate refused it ('calibrated population file not found') though run calibrates
    population.dataset into population.path before its first cell, as validate says for any
    other policy. The policy is then built by the cells alone; nothing is calibrated here."""
    doc = _with_policy(base_doc(tmp_path))
    target = tmp_path / "later" / "pop.parquet"
    doc["population"].update({"from": "calibrated", "path": str(target), "dataset": "ml-100k"})
    doc["population"].pop("users")  # the calibrated population's own
    doc.pop("catalog")
    doc.pop("creators")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    assert not target.exists()


# ------------------------------------------- calibrated population x policy checkpoint
POLICY_MODULE = """
import numpy as np


def scorer(topics):
    weights = np.ones((topics, 30))

    def score(obs):
        return obs["topic_mix"] @ weights  # a linear head trained on `topics` topics

    return score


two_topics = scorer(2)
sixteen_topics = scorer(16)
"""


@pytest.mark.parametrize("trained_on", [2, 16])
def test_a_policy_arm_over_a_calibrated_population(tmp_path, monkeypatch, population, trained_on):
    """Was: validate asked a policy about a first page of the written catalog.topics (16 by
    default), the cells of the calibrated population's own (2 here): a policy trained on this
    population was refused ('cannot score an observation'), one trained on 16 topics passed
    validate and failed every cell of its arm (exit 1). Now validate asks with the cells'
    topics: the first runs, the second is one line."""
    module = f"combo_policy_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(POLICY_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = calibrated_doc(tmp_path, population)
    name = "two_topics" if trained_on == 2 else "sixteen_topics"
    doc["arms"][1] = {
        "name": "policy",
        "recommender": {"type": "policy", "params": {"checkpoint": f"{module}:{name}"}},
    }
    if trained_on == 16:
        refused_everywhere(tmp_path, doc, "arms[1].recommender.params.checkpoint: ")
        return
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    code, stderr = cli("run", str(path), "--executor", "local", "-o", str(tmp_path / "out"), "-q")
    assert code == 0, stderr


# ------------------------------------------------------- calibrated population x social graph
@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        (
            {"type": "watts_strogatz", "k": 40},
            "population.social.graph.k: 40 neighbours per user (watts_strogatz) need more "
            "than 40 users; the calibrated population (population.path) has 40",
        ),
        (
            {"type": "barabasi_albert", "m": 50},
            "population.social.graph.m: 50 edges per new user (barabasi_albert) need more "
            "than 50 users; the calibrated population (population.path) has 40",
        ),
    ],
    ids=["ws_k", "ba_m"],
)
def test_a_social_graph_wider_than_a_calibrated_population(tmp_path, population, graph, fragment):
    """Was: validate passed and the run finished (exit 0) over another graph: the builder cut
    k and m to the file's users - 1 without a word. Refused as on a generated population."""
    doc = calibrated_doc(tmp_path, population)
    doc["population"]["social"] = {"graph": graph}
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({"type": "watts_strogatz", "k": 20}, "graph.k: 20 neighbours per user (watts_strogatz)"),
        ({"type": "barabasi_albert", "m": 25}, "graph.m: 25 edges per new user (barabasi_albert)"),
    ],
    ids=["ws_k", "ba_m"],
)
def test_a_social_graph_wider_than_a_generated_population(tmp_path, graph, fragment):
    """The same on a generated population (was: passed, and the graph was cut to 19)."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": graph}
    refused_everywhere(tmp_path, doc, f"population.social.{fragment} need more than ")
    doc["population"]["social"] = {"graph": {"type": "watts_strogatz", "k": 18}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert code == 0, stderr
    doc["sweep"] = {"population.users": [20, 10]}  # a point's users, as a written one
    refused_everywhere(
        tmp_path, doc, "sweep point 1 (population.users=10): population.social.graph.k: 18 "
    )
