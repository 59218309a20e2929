"""Round six of the hostile user: scenarios mutated from the shipped ones (shrunk, pushed to
boundary values, features of different scenarios combined), each validated and then run.

Each case is one line, exit code 2, naming the field, and validate says it before run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_in_process import assert_refused, cli
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import write_scenario


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round6", days=0.2)  # round 5's short horizon


# ------------------------------------------------------------- a wrapper's base, by name
@pytest.mark.parametrize(
    ("wrapper", "surface"),
    [("mmr", None), ("epsilon_greedy", None), ("info_gain", {"type": "conversation"})],
)
@pytest.mark.parametrize(
    ("base", "named"),
    [
        ("builtins:object", "base: 'builtins:object' is not a recommender"),
        ("nope_module_r6:X", "base: cannot import recommender 'nope_module_r6:X'"),
    ],
)
def test_a_base_that_is_not_a_recommender_is_named_with_both_quotes(
    tmp_path, wrapper, surface, base, named
):
    # the quotes of a KeyError's str() were stripped off the message's ends, and with them
    # the first quote of "'builtins:object' is not a recommender" and the last of
    # "No module named 'nope_module_r6'"
    doc = base_doc(tmp_path)
    doc["arms"] = [{"name": "w", "recommender": {"type": wrapper, "params": {"base": base}}}]
    if surface:
        doc["surface"] = surface
    code, err = cli("validate", str(write_scenario(tmp_path, doc)))
    assert_refused(code, err, f"arms[0].recommender.params.{named}")
    assert err.count("'") % 2 == 0, err


# ------------------------------------------------------- sweeps of a strategy's defaults
def test_a_creator_strategy_param_left_at_its_default_can_be_swept(tmp_path):
    # params not written out were refused as "creators.strategy.params has no key 'rate';
    # known: none", though rate is a field of the strategy's Params (the point checks it)
    doc = base_doc(tmp_path)
    doc["creators"]["strategy"] = {"type": "exposure_chasing"}
    doc["creators"]["period_days"] = 0.1  # a review before the horizon: creators adapt
    doc["sweep"] = {"creators.strategy.params.rate": [0.1, 0.5]}
    code, err = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, err
    doc["sweep"] = {"creators.strategy.params.rate": [0.1, 7]}
    assert_refused(
        *cli("validate", str(write_scenario(tmp_path, doc))),
        "sweep.creators.strategy.params.rate: value 7 is invalid: "
        "creators.strategy.params.rate: Input should be less than or equal to 1 (got 7)",
    )
    doc["sweep"] = {"creators.strategy.params.rat": [0.1, 0.5]}
    assert_refused(
        *cli("validate", str(write_scenario(tmp_path, doc))),
        "sweep.creators.strategy.params.rat: creators.strategy.params has no key 'rat'; "
        "did you mean 'rate'? known: rate, target, temperature, explore, scope",
    )


# ----------------------------------------------------------------- RecBole's own config
@pytest.mark.parametrize(
    ("params", "named"),
    [
        (
            {"params": {"epochs": 100000}},
            "params.params: epochs: recarena sets this RecBole key itself (set epochs instead)",
        ),
        (
            {"params": {"train_batch_size": 0}},
            "params.params: train_batch_size: recarena sets this RecBole key itself",
        ),
        ({"params": {"device": "cuda"}}, "params.params: device: recarena sets this RecBole key"),
        ({"params": {"data_path": "/etc"}}, "params.params: data_path: recarena sets this"),
        ({"model": "NeuMF"}, "params.model: RecBole model 'NeuMF' cannot rank the whole catalog"),
    ],
)
def test_recbole_config_that_the_adapter_owns_is_refused_by_validate(tmp_path, params, named):
    # passed to RecBole's config over the adapter's own: epochs past their bound ran on for
    # hours, a batch size of 0, another data path or a missing GPU failed every cell (exit 1);
    # NeuMF has no whole-catalog ranking and failed every cell at its first page after a fit
    doc = base_doc(tmp_path)
    doc["arms"] = [
        {"name": "rb", "recommender": {"type": "recbole", "params": {"epochs": 1, **params}}}
    ]
    path = write_scenario(tmp_path, doc)
    assert_refused(*cli("validate", str(path)), f"arms[0].recommender.{named}")
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), named)
    assert not out.exists()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (
            {"model": "SASRec", "params": {"hidden_size": 3, "n_heads": 2}},
            "RecBole model 'SASRec' cannot be trained with them: ValueError: The hidden size (3)",
        ),
        (
            {"model": "BPR", "params": {"learning_rate": -1}},
            "RecBole model 'BPR' cannot be trained with them: ValueError: Invalid learning rate",
        ),
        ({"model": "FPMC"}, "RecBole model 'FPMC' cannot be trained with them: "),
    ],
)
def test_recbole_hyper_parameters_are_tried_by_validate(tmp_path, params, named):
    # RecBole checks them only when it trains, at the first refit of every cell (exit 1)
    doc = base_doc(tmp_path)
    doc["arms"] = [
        {"name": "rb", "recommender": {"type": "recbole", "params": {"epochs": 1, **params}}},
        {"name": "mmr", "recommender": {"type": "mmr", "params": {"base": "popularity"}}},
    ]
    path = write_scenario(tmp_path, doc)
    assert_refused(*cli("validate", str(path)), f"arms[0].recommender.params (arm 'rb'): {named}")
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), named)
    assert not out.exists()


def test_recbole_as_a_wrappers_base_is_tried_too(tmp_path):
    doc = base_doc(tmp_path)
    rb = {"model": "BPR", "epochs": 1, "params": {"learning_rate": -1}}
    doc["arms"] = [
        {
            "name": "m",
            "recommender": {"type": "mmr", "params": {"base": "recbole", "base_params": rb}},
        }
    ]
    assert_refused(
        *cli("validate", str(write_scenario(tmp_path, doc))),
        "arms[0].recommender.params.base_params.params (arm 'm'): RecBole model 'BPR' cannot",
    )
