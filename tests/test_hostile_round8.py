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


# ------------------------------------- a metric no sweep point can have, under any sweep
@pytest.mark.parametrize(
    ("metric", "sweep", "named"),
    [
        (
            "topic_drift_to_popular",
            {"creators.uploads_per_day": [0.5, 1.0]},
            "metrics[1]: topic_drift_to_popular scores creators' reviews, and the first comes "
            "after creators.period_days (7); horizon.days is 0.2, so no cell would have a value "
            "(at each of the sweep's 2 points)",
        ),
        (
            "retention_d7",
            {"horizon.tick_seconds": [300, 600]},
            "metrics[1]: retention_d7 needs day 7 to be simulated",
        ),
        (
            "instruction_heard",
            {"population.visits_per_day": [1.0, 2.0]},
            "metrics[1]: instruction_heard measures instructions users give, and "
            "population.instructions is not set",
        ),
        (
            "conv_success_rate",
            {"arms[popularity].recommender.type": ["popularity", "random"]},
            "metrics[1]: conv_success_rate measures conversations",
        ),
    ],
)
def test_a_metric_no_sweep_point_can_have_is_refused(tmp_path, metric, sweep, named):
    """Was: validate ok, then the run simulated every point's cells and said 'no finished cell
    has a value' and left the metric out of the A/B table (exit 0): the check that refuses such
    a metric in a plain scenario left it to the run whenever the sweep touched the section that
    could decide it (creators, horizon, population, arms), whatever field it swept. Each point
    is now judged as the plain scenario it is; a metric is refused when no point can have it."""
    doc = base_doc(tmp_path)
    doc["metrics"] = ["ctr", metric]
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, named)
    assert "(at each of the sweep's 2 points)" in cli("validate", str(tmp_path / "s.yaml"))[1]


@pytest.mark.parametrize(
    ("metric", "sweep"),
    [
        ("topic_drift_to_popular", {"creators.period_days": [0.1, 7]}),
        ("retention_d7", {"horizon.days": [0.2, 9]}),
        ("instruction_heard", {"population.instructions": [None, {"threshold": 0.4}]}),
        ("conv_success_rate", {"surface": [{"type": "list"}, {"type": "conversation"}]}),
    ],
)
def test_a_metric_some_sweep_point_can_have_still_passes(tmp_path, metric, sweep):
    doc = base_doc(tmp_path)
    doc["metrics"] = ["ctr", metric]
    doc["sweep"] = sweep
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------- a wrapper that a sweep point sets, fed by a feature none has
@pytest.mark.parametrize(
    ("arm", "sweep", "named"),
    [
        (
            {"name": "mmr", "recommender": {"type": "mmr", "params": {"base": "popularity"}}},
            {"arms[mmr].recommender.params.base": ["popularity", "social_feed"]},
            "sweep point 1 (arms[mmr].recommender.params.base='social_feed'): "
            "arms[1].recommender.params.base: social_feed would serve its base unchanged: "
            "population.social.talk is not set",
        ),
        (
            {"name": "swapped", "recommender": {"type": "popularity"}},
            {"arms[swapped].recommender.type": ["popularity", "instructable"]},
            "sweep point 1 (arms[swapped].recommender.type='instructable'): "
            "arms[1].recommender.type: instructable would serve its base unchanged: "
            "population.instructions is not set",
        ),
    ],
)
def test_a_wrapper_a_sweep_point_sets_without_its_feature_is_refused(tmp_path, arm, sweep, named):
    """Was: validate ok and a run whose swept point served the base unchanged (an A/B of two
    identical arms): the check that refuses social_feed without population.social.talk and
    instructable without population.instructions walked the scenario's own arms only, not the
    arms of each sweep point, so a wrapper the sweep put in was never seen."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = arm
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, named)


def test_a_wrapper_a_sweep_point_sets_with_its_feature_still_passes(tmp_path):
    doc = base_doc(tmp_path)
    doc["arms"][1] = {"name": "swapped", "recommender": {"type": "popularity"}}
    doc["sweep"] = {"arms[swapped].recommender.type": ["popularity", "instructable"]}
    doc["population"]["instructions"] = {"threshold": 0.4}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------ an LLM recommender as a wrapper's base
@pytest.mark.parametrize("wrapper", ["mmr", "epsilon_greedy"])
def test_an_llm_recommender_as_a_base_is_refused(tmp_path, wrapper):
    """Was: validate ok and a run without a single LLM call: the run hands an LLM client to an
    arm's own recommender only, so llm_instructable as a wrapper's base got none and served
    instructable's ranking, under an arm that read as an LLM re-ranker (validate counted no LLM
    calls and checked no model or endpoint either)."""
    doc = base_doc(tmp_path)
    doc["population"]["instructions"] = {"threshold": 0.4}
    doc["arms"][1] = {
        "name": "wrapped",
        "recommender": {"type": wrapper, "params": {"base": "llm_instructable"}},
    }
    refused_everywhere(
        tmp_path,
        doc,
        "arms[1].recommender.params.base: 'llm_instructable' calls the LLM only as an arm's "
        "own recommender.type; as a base it gets no LLM",
    )


def test_instructable_as_a_base_still_passes(tmp_path):
    doc = base_doc(tmp_path)
    doc["population"]["instructions"] = {"threshold": 0.4}
    doc["arms"][1] = {
        "name": "wrapped",
        "recommender": {"type": "mmr", "params": {"base": "instructable"}},
    }
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------- source_debias where every item is human
def test_source_debias_without_ai_content_is_refused(tmp_path):
    """Was: validate ok and an arm that served its base's top k unchanged (without creators.ai
    every item is human, and source_debias balances the AI share of a slate): an A/B of two
    identical rankings, read as "debiasing has no effect", as social_feed without talk was."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = {
        "name": "debiased",
        "recommender": {"type": "source_debias", "params": {"base": "popularity"}},
    }
    refused_everywhere(
        tmp_path,
        doc,
        "arms[1].recommender.type: source_debias would serve its base unchanged: creators.ai "
        "is not set (every item is human-made, so there is no source share to balance)",
    )


@pytest.mark.parametrize(
    "where",
    [
        {"creators": {"count": 2, "ai": {"initial_share": 0.5}}},
        {"sweep": {"creators.ai": [None, {"initial_share": 0.5}]}},
    ],
)
def test_source_debias_with_ai_content_somewhere_still_passes(tmp_path, where):
    doc = base_doc(tmp_path) | where
    doc["arms"][1] = {
        "name": "debiased",
        "recommender": {"type": "source_debias", "params": {"base": "popularity"}},
    }
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------- cluster_explore's per-user knob where no user seeks novelty
def test_cluster_explore_by_user_without_novelty_seeking_is_refused(tmp_path):
    """Was (beyond_relevance with population.explore_prob 0): validate ok and an arm that
    served its base unchanged. knob 'user' scales each user's share of explored slots by its
    novelty-seeking rate, which explore_prob 0 makes 0 for every user, and a page with no
    explored slot is the base's page."""
    doc = base_doc(tmp_path)
    doc["population"]["explore_prob"] = 0.0
    doc["arms"][1] = {
        "name": "explore_user",
        "recommender": {
            "type": "cluster_explore",
            "params": {"base": "popularity", "clusters": 4, "knob": "user"},
        },
    }
    refused_everywhere(
        tmp_path,
        doc,
        "arms[1].recommender.type: cluster_explore would serve its base unchanged: "
        "population.explore_prob is 0 (no user ever seeks novelty",
    )


@pytest.mark.parametrize(("explore_prob", "knob"), [(0.0, "arm"), (0.05, "user")])
def test_cluster_explore_with_a_share_to_explore_still_passes(tmp_path, explore_prob, knob):
    doc = base_doc(tmp_path)
    doc["population"]["explore_prob"] = explore_prob
    doc["arms"][1] = {
        "name": "explore",
        "recommender": {
            "type": "cluster_explore",
            "params": {"base": "popularity", "clusters": 4, "knob": knob},
        },
    }
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# --------------------------------------------------- a feature section that can never act
@pytest.mark.parametrize(
    ("section", "named"),
    [
        (
            {
                "population": {
                    "users": 20,
                    "social": {
                        "graph": {"type": "barabasi_albert", "m": 2},
                        "talk": {"post_rate": 0, "message_rate": 0},
                    },
                }
            },
            "population.social.talk: post_rate and message_rate are both 0, so no user would "
            "ever post or message",
        ),
        (
            {"creators": {"count": 2, "ai": {"initial_share": 0.2, "base_rate": 0}}},
            "creators.ai: initial_share 0.2 puts no creator on AI at the start and base_rate "
            "is 0, so no creator would ever adopt AI",
        ),
    ],
)
def test_a_feature_set_to_never_act_is_refused(tmp_path, section, named):
    """Was (recagent with both talk rates at 0, source_echo_chamber with initial_share and
    base_rate at 0): validate ok and a run as if the section were absent, its social_feed or
    source_debias arm serving the base unchanged and its cascade or AI-source metrics without a
    value in any cell. round(0.2 x 2 creators) is 0 AI creators, and with none (and no AI item)
    payoff and imitation have nothing to start from."""
    doc = base_doc(tmp_path) | section
    refused_everywhere(tmp_path, doc, named)


@pytest.mark.parametrize(
    "section",
    [
        {
            "population": {
                "users": 20,
                "social": {
                    "graph": {"type": "barabasi_albert", "m": 2},
                    "talk": {"post_rate": 0, "message_rate": 0.1},
                },
            }
        },
        {"creators": {"count": 2, "ai": {"initial_share": 0.5, "base_rate": 0}}},
        {
            "creators": {
                "count": 2,
                "period_days": 0.1,
                "ai": {"initial_share": 0, "base_rate": 0.01},
            }
        },
        {
            "creators": {
                "count": 2,
                "period_days": 0.1,
                "ai": {"initial_share": 0, "base_rate": 0},
            },
            "sweep": {"creators.ai.base_rate": [0.0, 0.1]},
        },
    ],
)
def test_a_feature_that_can_act_still_passes(tmp_path, section):
    doc = base_doc(tmp_path) | section
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
