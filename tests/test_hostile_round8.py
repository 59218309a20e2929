"""Round eight of the hostile user: the shipped scenarios, shrunk, with one to three fields
changed within each scenario's own features (recommenders swapped, surfaces changed, sweeps,
metrics, values at their edges), and run options and compare/report on their run directories.

Each case is one line, exit code 2, naming the field, and validate says it before run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_in_process import assert_refused, cli
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round8", days=0.2)


# ------------------------------------------- a yes/no value for a param written by its alias
@pytest.mark.parametrize(
    ("recommender", "named"),
    [
        (
            {"type": "mmr", "params": {"base": "popularity", "lambda": True}},
            "arms[1].recommender.params.lambda: expected a number, got a yes/no value",
        ),
        (
            {
                "type": "epsilon_greedy",
                "params": {"base": "calibrated", "base_params": {"lambda": False}},
            },
            "arms[1].recommender.params.base_params.lambda: expected a number, got a yes/no value",
        ),
    ],
)
def test_a_yes_no_value_for_an_aliased_param_is_refused(tmp_path, recommender, named):
    """Was: validate ok and a run with mmr's (or calibrated's) lambda at 1.0 or 0.0: the check
    that refuses `dim: true` compared the YAML's keys with the params' field names, and lambda is
    the alias of the field lambda_, so `lambda: true` was never compared (in an arm's params or
    in a wrapper's base_params)."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = {"name": "reranked", "recommender": recommender}
    refused_everywhere(tmp_path, doc, named)


def test_a_number_for_an_aliased_param_still_passes(tmp_path):
    doc = base_doc(tmp_path)
    doc["arms"][1] = {
        "name": "reranked",
        "recommender": {"type": "mmr", "params": {"base": "popularity", "lambda": 1}},
    }
    doc["arms"].append(
        {
            "name": "wrapped",
            "recommender": {
                "type": "epsilon_greedy",
                "params": {"base": "calibrated", "base_params": {"lambda": 0.0}},
            },
        }
    )
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


def test_a_yes_no_value_under_the_field_name_is_still_refused(tmp_path):
    doc = base_doc(tmp_path)
    doc["arms"][1] = {
        "name": "reranked",
        "recommender": {"type": "mmr", "params": {"base": "popularity", "lambda_": True}},
    }
    assert_refused(
        *cli("validate", str(write_scenario(tmp_path, doc))),
        "arms[1].recommender.params.lambda_: expected a number, got a yes/no value",
    )
