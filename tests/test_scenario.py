"""Scenario validation: every mistake is one message naming the YAML path."""

import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import dump_scenario
from recarena.simulator.runner.resolve import load_scenario, parse_scenario


def _error(doc) -> str:
    with pytest.raises(RecarenaError) as info:
        parse_scenario(doc, "x.yaml")
    return str(info.value)


def test_defaults_are_filled(tiny_doc):
    scenario = parse_scenario(tiny_doc)
    assert scenario.baseline == "random"
    assert scenario.population.temperature > 0
    assert "ctr" in scenario.metrics
    assert "tick_seconds: 120" in dump_scenario(scenario)


def test_unknown_recommender_names_path_and_known_types(tiny_doc):
    tiny_doc["arms"][1]["recommender"]["type"] = "mff"
    message = _error(tiny_doc)
    assert message.startswith(
        "x.yaml: arms[1].recommender.type: unknown recommender 'mff'; did you mean 'mf'? "
        "known: random"
    )
    assert "popularity" in message and "mf" in message
    tiny_doc["arms"][1]["recommender"]["type"] = "zzz"  # nothing close: no guess
    assert "unknown recommender 'zzz'; known: random" in _error(tiny_doc)


def test_unknown_key(tiny_doc):
    tiny_doc["population"]["userz"] = 3
    assert _error(tiny_doc) == "x.yaml: population.userz: unknown key; did you mean 'users'?"
    del tiny_doc["population"]["userz"]
    tiny_doc["replicate"] = 3
    assert _error(tiny_doc) == "x.yaml: replicate: unknown key; did you mean 'replicates'?"
    del tiny_doc["replicate"]
    tiny_doc["zzz"] = 3  # nothing close: no guess
    assert _error(tiny_doc) == "x.yaml: zzz: unknown key"


def test_a_misspelt_required_key_is_named_beside_the_missing_one(tiny_doc):
    tiny_doc["arms"][0]["recomender"] = tiny_doc["arms"][0].pop("recommender")
    assert _error(tiny_doc) == (
        "x.yaml: arms[0].recommender: required key is missing "
        "('recomender' is written instead: a typo?)"
    )


def test_a_section_left_empty_by_its_indentation(tiny_doc):
    """`population:` with `users:` not indented under it reads as null."""
    tiny_doc["population"] = None
    assert _error(tiny_doc) == (
        "x.yaml: population: the section is empty (null): indent its fields under it, or "
        "leave it out for the defaults"
    )


def test_a_misspelt_surface_type_is_named(tiny_doc):
    """An unknown type names a plug-in surface, so the list's own keys were refused alone."""
    tiny_doc["surface"] = {"type": "lists", "k": 5}
    assert _error(tiny_doc) == (
        "x.yaml: surface.k: unknown key (surface type 'lists' names a plug-in surface, whose "
        "settings go under params; the built-in types are list, carousel and conversation; "
        "did you mean 'list'?)"
    )


def test_wrong_type(tiny_doc):
    tiny_doc["population"]["users"] = "many"
    assert "population.users:" in _error(tiny_doc)
    assert "'many'" in _error(tiny_doc)


def test_negative_size(tiny_doc):
    tiny_doc["catalog"]["initial_items"] = -5
    message = _error(tiny_doc)
    assert message.startswith("x.yaml: catalog.initial_items: ")
    assert "greater than or equal to 1" in message


def test_recommender_params_validated(tiny_doc):
    tiny_doc["arms"].append({"name": "mf", "recommender": {"type": "mf", "params": {"dim": 0}}})
    assert _error(tiny_doc).startswith("x.yaml: arms[2].recommender.params.dim: ")
    tiny_doc["arms"][2]["recommender"]["params"] = {"dimm": 3}
    assert _error(tiny_doc) == (
        "x.yaml: arms[2].recommender.params.dimm: unknown key; did you mean 'dim'?"
    )


def test_missing_required(tiny_doc):
    del tiny_doc["arms"]
    assert _error(tiny_doc) == "x.yaml: arms: required key is missing"


def test_duplicate_arms_and_bad_baseline(tiny_doc):
    tiny_doc["arms"][1]["name"] = "random"
    assert "duplicate arm names ['random'] (arms[0] and arms[1] are named 'random')" in _error(
        tiny_doc
    )
    tiny_doc["arms"][1]["name"] = "pop"
    tiny_doc["baseline"] = "nope"
    assert "baseline: 'nope' is not an arm" in _error(tiny_doc)
    tiny_doc["baseline"] = "rand"
    assert _error(tiny_doc).endswith("; did you mean 'random'?")


def test_arm_names_that_differ_only_in_case_are_refused(tiny_doc):
    tiny_doc["arms"][1]["name"] = "Random"
    assert "arms: 'random' and 'Random' differ only in case" in _error(tiny_doc)


def test_unknown_metric(tiny_doc):
    """Metric names are resolved where metrics live (analysis), as the CLI does before a run."""
    from recarena.analysis.metrics import check_metrics

    tiny_doc["metrics"] = ["ctr", "ctrr"]
    scenario = parse_scenario(tiny_doc, "x.yaml")
    with pytest.raises(RecarenaError, match=r"x.yaml: metrics\[1\]: unknown metric 'ctrr'"):
        check_metrics(scenario, "x.yaml")


def test_not_a_mapping():
    assert "must be a YAML mapping" in _error([1, 2])


def test_malformed_yaml(write_scenario):
    path = write_scenario("name: x\narms: [\n  - a: b\n")
    with pytest.raises(RecarenaError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and "invalid YAML at line" in str(info.value)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        # `topics:` one space in, under `initial_items:` two spaces in
        ("name: x\ncatalog:\n  initial_items: 30\n topics: 4\n", "check the indentation"),
        ("name: x\ncatalog:\n\ttopics: 4\n", "indent with spaces; YAML does not allow tabs"),
        ("name: x\nmetrics: [ctr, coverage\narms: []\n", "a '[' above is not closed"),
        ("name: x\nhorizon: {days: 3\narms: []\n", "a '{' above is not closed"),
    ],
)
def test_malformed_yaml_says_what_usually_causes_it(write_scenario, text, hint):
    """The parser speaks of block ends and tokens; the line adds the usual cause."""
    with pytest.raises(RecarenaError) as info:
        load_scenario(write_scenario(text))
    assert "invalid YAML at line" in str(info.value) and hint in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(RecarenaError, match="scenario file not found: .*nope.yaml"):
        load_scenario(tmp_path / "nope.yaml")


def test_shipped_scenarios_validate():
    from pathlib import Path

    # rglob: scenarios/papers/*.yaml are shipped scenarios too
    for path in sorted(Path(__file__).parent.parent.joinpath("scenarios").rglob("*.yaml")):
        load_scenario(path)
