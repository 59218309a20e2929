"""Hostile inputs that `validate` accepted and `run` then failed on (cells failing with a
TypeError, an internal error, a half-written run directory). Each is now refused by validate in
one line naming the field, exit 2, with nothing written; run refuses it the same way."""

from __future__ import annotations

import pytest

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
