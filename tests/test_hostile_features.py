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


def conversation_doc() -> dict:
    """base_doc on a conversation surface (three-item turns, agenda users)."""
    doc = base_doc()
    doc["surface"] = {"type": "conversation", "k": 3, "max_turns": 4}
    doc["population"]["conversation"] = {"target_facets": ["genre"]}
    doc["arms"] = [
        {"name": "info_gain", "recommender": {"type": "info_gain", "params": {"candidates": 20}}},
        {"name": "popularity", "recommender": {"type": "popularity"}},
    ]
    return doc


@pytest.mark.parametrize(
    ("facets", "fragment"),
    [
        (["genre", "era", "era"], "target_facets: era written more than once"),
        (["mood", "mood"], "target_facets: mood written more than once"),
        (["genre", "genre"], "target_facets: genre written more than once"),
    ],
    ids=["era_twice", "mood_twice", "genre_twice"],
)
def test_a_target_facet_written_twice_is_refused(tmp_path, facets, fragment):
    """Was: validate accepted target_facets [genre, era, era], and every cell of the run then
    failed as the targets were drawn (ValueError: 1 is not in list, exit 1): the second 'era'
    looked for an axis the first had already narrowed away. [genre, genre] ran, as [genre]."""
    doc = conversation_doc()
    doc["population"]["conversation"]["target_facets"] = facets
    path = write_case(Case(dump(doc)), tmp_path)
    assert_refused(*cli("validate", str(path)), "population.conversation." + fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)), fragment)
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_each_target_facet_once_still_runs(tmp_path):
    doc = conversation_doc()
    doc["population"]["conversation"]["target_facets"] = ["mood", "genre", "era"]
    path = write_case(Case(dump(doc)), tmp_path)
    assert cli("validate", str(path))[0] == 0
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(tmp_path / "o"))
    assert code == 0, stderr
