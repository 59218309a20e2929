"""Two or three fields changed at once: scenarios validate passed and run did not finish cleanly.

Each field alone was fine (earlier reviews mutated one at a time); the combination was not.
Every case goes through the real CLI entry point in-process: validate and run refuse it in one
line and create nothing, or, where the scenario is sound, both finish.
"""

from __future__ import annotations

import yaml

from recarena.simulator.core.scenario import Scenario
from tests.cli_in_process import cli
from tests.test_validate_gate import base_doc


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
