"""Hostile inputs that `validate` accepted and `run` then failed on (cells failing with a
TypeError, an internal error, a half-written run directory). Each is now refused by validate in
one line naming the field, exit 2, with nothing written; run refuses it the same way."""

from __future__ import annotations

import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.test_validate_gate import base_doc, refused_everywhere

P = "tests.unbuildable_plugins"


# ------------------------------------------------------------- plug-ins that cannot be built
@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        (
            "recommender",
            "recarena.recommenders.base:Recommender",
            "is not a recommender: it is a Protocol",
        ),
        ("recommender", f"{P}:NoArguments", "it is called as Class(params, ctx), but too many"),
        ("recommender", f"{P}:AN_INSTANCE", "expected a class, got an instance of NoArguments"),
        ("recommender", f"{P}:AbstractFit", "it is abstract (no fit)"),
        ("recommender", f"{P}:ParamsIsADict", "its Params must be a pydantic model class"),
        ("recommender", f"{P}:SurfacesIsNone", "its surfaces must be a non-empty set"),
        ("policy", f"{P}:PolicyWithoutSocial", "unexpected keyword argument 'social'"),
        ("strategy", f"{P}:StrategyWithoutParams", "it is called as Class(params), but"),
        ("surface", f"{P}:surface_of_params_only", "Factory(params, position_decay), but"),
    ],
)
def test_plugins_that_cannot_be_built_are_refused(tmp_path, where, value, fragment):
    """Was: validate checked only that the methods exist, so a contract's Protocol, an abstract
    class, an instance, a constructor of another signature passed and every cell of the arm
    failed with a TypeError (exit 1); a Params that is not a pydantic model or surfaces = None
    was an internal error of validate itself."""
    doc = base_doc(tmp_path)
    if where == "recommender":
        doc["arms"][1]["recommender"] = {"type": value}
        field = "arms[1].recommender.type"
    elif where == "policy":
        doc["population"]["policy"] = value
        field = "population.policy"
    elif where == "strategy":
        doc["creators"]["strategy"] = {"type": value}
        field = "creators.strategy"
    else:
        doc["surface"] = {"type": value}
        field = "surface.type"
    refused_everywhere(tmp_path, doc, f"{field}: ")
    refused_everywhere(tmp_path, doc, fragment)


# ------------------------------------------------------------ sweeps the run cannot honour
@pytest.mark.parametrize(
    ("population", "llm", "sweep", "fragment"),
    [
        (
            {"users": 20},
            None,
            {"population.model": ["rule", "llm"]},
            "point 1 {'population.model': 'llm'}: this point uses an LLM but the scenario",
        ),
        (
            {"users": 20, "model": "llm"},
            {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
            {"llm.cache.mode": ["auto", "off"]},
            "point 1 {'llm.cache.mode': 'off'}: llm.cache differs",
        ),
        (
            {"users": 20, "model": "llm"},
            {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
            {"llm.base_url": ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]},
            "llm.base_url differs from the scenario's",
        ),
    ],
    ids=["llm_users_in_one_point", "cache", "endpoint"],
)
def test_sweeps_over_what_the_run_sets_up_once(tmp_path, population, llm, sweep, fragment):
    """Was: a point that turned LLM users on (the scenario had none) passed validate and its
    cells failed ("a scenario with LLM users needs an LLMRuntime", exit 1, half a run); a
    swept endpoint, cache or local-server setting was silently replaced by the scenario's."""
    doc = base_doc(tmp_path)
    doc["population"] = population
    if llm is not None:
        doc["llm"] = llm
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, fragment)


def test_sharded_run_checks_each_sweep_point(tmp_path):
    """Was: --shards checked only the scenario itself, so a point that swept in what shards
    cannot split (here a plug-in user policy) started Ray and wrote the run, and that point's
    cells were refused one by one (half a run). Now refused before anything is written."""
    doc = base_doc(tmp_path)
    doc["arms"] = [{"name": "pop", "recommender": {"type": "popularity"}}]
    doc["sweep"] = {"population.policy": ["rule", "tests.plugin_kinds:ClickFirstSlot"]}
    with pytest.raises(RecarenaError, match=r"^sweep point 1: --shards 2: population.policy"):
        run_experiment(parse_scenario(doc), tmp_path / "run", executor="ray", shards=2)
    assert not (tmp_path / "run").exists()
