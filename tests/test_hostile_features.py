"""Each feature's own settings at valid-looking but odd values: validate refuses what would
mislead or fail a run, in one line naming the field, and run does what validate accepted."""

from __future__ import annotations

import pytest

from tests.cli_in_process import assert_refused, cli
from tests.test_hostile_scenarios import Case, base_doc, dump, write_case


@pytest.mark.parametrize("kind", ["thompson_beta", "thompson_linear"])
def test_thompson_with_no_propensity_samples_is_refused(tmp_path, kind):
    """Was: propensity_samples 0 passed validate, and the Monte Carlo estimate then counted only
    the shown draw, so every slot of a random Thompson slate was logged with propensity 1.0, as
    if the arm were deterministic; IPS over its log then weighed every match as certain."""
    doc = base_doc()
    doc["arms"][1] = {
        "name": "ts",
        "recommender": {"type": kind, "params": {"propensity_samples": 0}},
    }
    path = write_case(Case(dump(doc)), tmp_path)
    assert_refused(*cli("validate", str(path)), "arms[1].recommender.params.propensity_samples: ")
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)))
    assert not out.exists() and not (tmp_path / "runs").exists()
