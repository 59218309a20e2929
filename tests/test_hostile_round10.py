"""Hostile round ten: gaps the earlier rounds left, each closed by a general check.

1. ``daily_rhythm.start_hours_from`` with millisecond timestamps (or any past the year 5000)
   is refused as the dataset readers refuse them, naming the file and the line.
2. ``population.model: llm`` with an ``llm_panel.users`` other than the population's: every user
   asks the LLM, so the written panel size would be ignored; it is refused.
3. A plug-in metric that returns a value for a cell the run does not have (another arm, a
   replicate past the run's) is one line naming it, not a metric left out without a word.
4. An sbm social graph that cannot be drawn as written: a mean degree a user cannot reach
   (at most users - 1 friends), or a homophily below 1 with a single block (every pair is
   within it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_in_process import cli, cli_out
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario


def base_doc(tmp_path: Path) -> dict:
    doc = gate_doc(tmp_path, name="round10h", days=1)
    doc["retrain"] = {"every_days": 0.5}  # a learner that learns: no note of its own
    return doc


def _passes(tmp_path: Path, doc: dict) -> None:
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------------- 1. start hours read in milliseconds
def _rhythm(tmp_path: Path, text: str) -> dict:
    csv = tmp_path / "clock.csv"
    csv.write_text(text, encoding="utf-8")
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {"start_hours_from": str(csv)}
    return doc


def test_start_hours_in_milliseconds_are_refused(tmp_path):
    """Was: 1700000000000 (ms) read as seconds gave hours of the year 55,000; the profile
    users start sessions from was noise, without a word."""
    doc = _rhythm(tmp_path, "userId,timestamp\n1,1700000000\n2,1700000360000\n")
    refused_everywhere(
        tmp_path,
        doc,
        f"population.daily_rhythm.start_hours_from: {tmp_path / 'clock.csv'}: timestamp "
        "1700000360000 (data row 2) is after the year 5000 read as seconds: milliseconds?",
    )


def test_start_hours_in_milliseconds_deep_in_a_large_file_are_refused(tmp_path, monkeypatch):
    """validate streams a large file's column: the check holds there too."""
    from recarena.simulator.runner import input_file_checks

    monkeypatch.setattr(input_file_checks, "SMALL_FILE_BYTES", 10)
    doc = _rhythm(tmp_path, "timestamp\n" + "1700000000\n" * 50 + "1700000000000\n")
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "is after the year 5000 read as seconds: milliseconds?" in stderr


def test_start_hours_in_seconds_still_pass(tmp_path):
    _passes(tmp_path, _rhythm(tmp_path, "userId,timestamp\n1,1700000000\n2,-86400\n"))


# ----------------------------------------------------- 2. a panel size every user overrides
def test_an_llm_population_with_a_smaller_panel_is_refused(tmp_path):
    """Was: model llm with llm_panel {users: 5} over 20 users ran 20 LLM users (four times the
    calls) without a word."""
    doc = base_doc(tmp_path)
    doc["population"] = {"users": 20, "model": "llm", "llm_panel": {"users": 5}}
    refused_everywhere(
        tmp_path,
        doc,
        "population.llm_panel.users: 5, but model 'llm' makes every one of the 20 users an "
        "LLM user; write model: mixed for a panel of 5, or leave llm_panel.users out",
    )


def test_an_llm_population_with_its_own_size_as_panel_still_validates_the_schema(tmp_path):
    """The resolved scenario writes the panel as large as the population: still taken."""
    from recarena.simulator.core.scenario import validate_document

    doc = base_doc(tmp_path)
    doc["population"] = {"users": 20, "model": "llm", "llm_panel": {"users": 20, "retrieve": 2}}
    assert validate_document(doc).population.llm_panel.users == 20
    doc["population"]["llm_panel"] = {"retrieve": 2}
    assert validate_document(doc).population.llm_panel.users == 20


# --------------------------------------------------- 3. a plug-in metric of cells not in the run
GHOST_METRICS = """
import polars as pl
from recarena.analysis.metrics_base import Metric

def _cells(logs):
    return logs.sessions.select("arm", "rep").unique().collect()

def _ghost(logs):
    return pl.DataFrame({"arm": ["ghost"], "rep": [0], "value": [1.0]})

def _late(logs):
    return _cells(logs).with_columns(rep=pl.lit(7), value=pl.lit(1.0))

def _fine(logs):
    return _cells(logs).with_columns(value=pl.lit(1.0))

GHOST = Metric("ghost", "d", "f", True, _ghost)
LATE = Metric("late", "d", "f", True, _late)
FINE = Metric("fine", "d", "f", True, _fine)
"""


@pytest.mark.parametrize(
    ("metric", "named"),
    [
        ("GHOST", "returned a value for arm 'ghost' rep 0, which is not a finished cell"),
        ("LATE", "returned a value for arm 'popularity' rep 7, which is not a finished cell"),
    ],
)
def test_a_plugin_metric_of_cells_the_run_does_not_have_is_named(
    tmp_path, monkeypatch, metric, named
):
    """Was: the metric's rows matched no cell, so it was left out of the A/B table with no
    word and exit 0."""
    module = f"ghost_metrics_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(GHOST_METRICS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base_doc(tmp_path)
    doc["arms"] = doc["arms"][1:]
    doc["metrics"] = ["ctr", f"{module}:{metric}", f"{module}:FINE"]
    path = write_scenario(tmp_path, doc)
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert f"metric '{module}:{metric}' failed (ValueError: {named}" in stderr
    code, stdout, stderr = cli_out("compare", str(out), "-m", f"{module}:FINE")
    assert code == 0, stderr  # the run's logs are complete: other metrics still compare
    assert "A/B vs baseline 'popularity'" in stdout


# ------------------------------------------------------------ 4. an sbm graph not drawn as asked
@pytest.mark.parametrize(
    ("graph", "named"),
    [
        (
            {"type": "sbm", "mean_degree": 30},
            "population.social.graph.mean_degree: a mean degree of 30 (sbm) needs more than "
            "30 users (a user has at most users - 1 friends); population.users is 20",
        ),
        (
            {"type": "sbm", "blocks": 1, "homophily": 0.5},
            "population.social.graph.homophily: 0.5 asks for 50% of edges between blocks, "
            "and the sbm graph has a single block",
        ),
    ],
)
def test_an_sbm_graph_that_cannot_be_drawn_as_written_is_refused(tmp_path, graph, named):
    """Was: edge probabilities were capped at 1 (a mean degree of 30 over 20 users drew 19)
    and a single block has no pair between blocks (homophily 0 drew no edge at all)."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": graph}
    refused_everywhere(tmp_path, doc, named)


def test_an_sbm_graph_of_one_topic_with_blocks_by_taste_is_refused(tmp_path):
    doc = base_doc(tmp_path)
    doc["catalog"]["topics"] = 1
    doc["population"]["social"] = {"graph": {"type": "sbm"}}
    refused_everywhere(
        tmp_path,
        doc,
        "population.social.graph.homophily: 0.8 asks for 20% of edges between blocks, and the "
        "sbm graph has a single block",
    )


@pytest.mark.parametrize(
    "graph",
    [
        {"type": "sbm", "mean_degree": 19},
        {"type": "sbm", "blocks": 1, "homophily": 1.0},
        {"type": "sbm", "blocks": 2, "homophily": 0.0},
        {"type": "sbm"},
    ],
)
def test_an_sbm_graph_that_can_be_drawn_still_passes(tmp_path, graph):
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": graph}
    _passes(tmp_path, doc)


# ------------------------------------------------- 5. page settings under conversations alone
def _conversations(tmp_path: Path, **population) -> dict:
    doc = base_doc(tmp_path)
    doc["population"].update(population)
    doc["surface"] = {"type": "conversation", "k": 3}
    doc["arms"] = [{"name": "ask", "recommender": {"type": "info_gain"}}]
    return doc


@pytest.mark.parametrize(
    "setting", [{"max_pages": 1}, {"fatigue_per_page": 5.0}, {"fatigue_no_click": 0.0}]
)
def test_a_page_setting_with_every_arm_in_conversation_is_refused(tmp_path, setting):
    """Was: max_pages 1 (or any fatigue) with every arm on a conversation surface ran
    conversations of max_turns turns, logs identical to a run without it."""
    (name,) = setting
    refused_everywhere(
        tmp_path,
        _conversations(tmp_path, **setting),
        f"population.{name}: every arm is on a conversation surface, whose length is "
        "surface.max_turns and population.conversation's patience, so this page setting would "
        "be read by nothing",
    )


def test_a_page_setting_some_arm_or_sweep_point_reads_still_passes(tmp_path):
    doc = _conversations(tmp_path, max_pages=5)
    doc["arms"].append(
        {"name": "pop", "recommender": {"type": "popularity"}, "surface": {"type": "list"}}
    )
    _passes(tmp_path, doc)
    doc = _conversations(tmp_path, max_pages=5, fatigue_per_page=0.12)
    doc["arms"][0]["recommender"] = {"type": "popularity"}
    doc["sweep"] = {"surface": [{"type": "conversation", "k": 3}, {"type": "list", "k": 3}]}
    _passes(tmp_path, doc)


# ------------------------------------------ 6. a population decay every surface replaces
@pytest.mark.parametrize(
    "surfaces",
    [
        [{"type": "carousel", "rows": [{"theme": "personalized"}], "cols": 4, "candidates": 8}],
        [{"type": "list", "k": 4, "position_decay": 0.5}],
        [
            {"type": "list", "k": 4, "position_decay": 0.5},
            {"type": "carousel", "rows": [{"theme": "new"}], "cols": 4, "candidates": 8},
        ],
    ],
    ids=["carousel", "list_with_its_own", "both"],
)
def test_a_population_position_decay_no_surface_reads_is_refused(tmp_path, surfaces):
    """Was: population.position_decay 2 over carousels (row_decay and col_decay) or lists
    with a position_decay of their own ran with the surfaces' decays, logs identical to a run
    without it."""
    doc = base_doc(tmp_path)
    doc["population"]["position_decay"] = 2.0
    doc["arms"] = [
        {"name": f"a{i}", "recommender": {"type": "popularity"}, "surface": surface}
        for i, surface in enumerate(surfaces)
    ]
    refused_everywhere(
        tmp_path,
        doc,
        "population.position_decay: every arm's surface examines its slots by a decay of its "
        "own (a carousel's row_decay and col_decay, a surface's position_decay), so it would "
        "be read by nothing",
    )


def test_a_population_position_decay_some_surface_reads_still_passes(tmp_path):
    doc = base_doc(tmp_path)
    doc["population"]["position_decay"] = 2.0
    doc["arms"][0]["surface"] = {"type": "carousel", "rows": [{"theme": "new"}], "cols": 4}
    doc["arms"][0]["surface"]["candidates"] = 8
    _passes(tmp_path, doc)  # the popularity arm's list reads it
    doc["surface"] = {"type": "list", "k": 4, "position_decay": 0.5}
    doc["sweep"] = {"surface.position_decay": [0.5, None]}
    _passes(tmp_path, doc)  # the second point's list reads it


# ------------------------------------------------- 7. a population knob another one switches off
@pytest.mark.parametrize(
    ("population", "named"),
    [
        (
            {"explore_prob": 0.0, "novelty_weight": 5.0},
            "population.novelty_weight: explore_prob is 0, so no session is novelty-seeking and "
            "the novelty bonus would be read by nothing",
        ),
        (
            {"satiation_gain": 0.0, "satiation_decay_per_day": 5.0},
            "population.satiation_decay_per_day: satiation_gain is 0, so there is no satiation "
            "to wear off and this would be read by nothing",
        ),
    ],
)
def test_a_knob_its_switch_turns_off_is_refused(tmp_path, population, named):
    """Was: novelty_weight 5 with explore_prob 0 (or a satiation decay with no satiation) ran
    with logs identical to a run without it."""
    doc = base_doc(tmp_path)
    doc["population"].update(population)
    refused_everywhere(tmp_path, doc, named)


def test_a_knob_its_switch_turns_on_at_some_point_still_passes(tmp_path):
    doc = base_doc(tmp_path)
    doc["population"].update(explore_prob=0.0, novelty_weight=5.0)
    doc["sweep"] = {"population.explore_prob": [0.0, 0.3]}
    _passes(tmp_path, doc)
    doc = base_doc(tmp_path)
    doc["population"].update(explore_prob=0.0, satiation_gain=0.0)  # the knobs left at defaults
    _passes(tmp_path, doc)


def test_a_swept_page_setting_with_every_arm_in_conversation_names_the_sweep(tmp_path):
    doc = _conversations(tmp_path)
    doc["sweep"] = {"population.max_pages": [1, 3]}
    refused_everywhere(
        tmp_path, doc, "sweep.population.max_pages: every arm is on a conversation surface"
    )


# ------------------------------------------------ 8. params of a type no sweep point has
def test_params_of_a_type_no_sweep_point_has_are_refused(tmp_path):
    """Was: an mf arm with dim 4 whose type was swept over itemknn and random ran neither
    point with mf; dim 4 was dropped without a word (each point starts from its type's
    defaults)."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "mf", "params": {"dim": 4}}
    doc["sweep"] = {"arms[1].recommender.type": ["itemknn", "random"]}
    refused_everywhere(
        tmp_path,
        doc,
        "sweep.arms[1].recommender.type: no point has the type the params were written for "
        "('mf'), so arms[1].recommender.params would be read by nothing",
    )


def test_params_of_a_strategy_type_no_sweep_point_has_are_refused(tmp_path):
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 3
    doc["creators"].update(
        period_days=1, strategy={"type": "exposure_chasing", "params": {"rate": 0.9}}
    )
    doc["sweep"] = {"creators.strategy.type": ["static", "engagement_chasing"]}
    refused_everywhere(
        tmp_path,
        doc,
        "sweep.creators.strategy.type: no point has the type the params were written for "
        "('exposure_chasing'), so creators.strategy.params would be read by nothing",
    )


def test_params_of_a_type_some_point_has_or_left_at_defaults_still_pass(tmp_path):
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "mf", "params": {"dim": 4}}
    doc["sweep"] = {"arms[1].recommender.type": ["mf", "random"]}
    _passes(tmp_path, doc)
    doc["arms"][1]["recommender"] = {"type": "mf"}
    doc["sweep"] = {"arms[1].recommender.type": ["itemknn", "random"]}
    _passes(tmp_path, doc)


def test_base_params_no_swept_base_takes_are_refused(tmp_path):
    """Was: an mmr arm over popularity with half_life_days 2, its base swept over itemknn and
    mf, dropped half_life_days at both points without a word."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {
        "type": "mmr",
        "params": {"base": "popularity", "base_params": {"half_life_days": 2.0}},
    }
    doc["sweep"] = {"arms[1].recommender.params.base": ["itemknn", "mf"]}
    refused_everywhere(
        tmp_path,
        doc,
        "sweep.arms[1].recommender.params.base: no point has the base the base_params were "
        "written for ('popularity'), nor one they fit, so arms[1].recommender.params.base_params "
        "would be read by nothing",
    )
    doc["sweep"] = {"arms[1].recommender.params.base": ["popularity", "mf"]}
    _passes(tmp_path, doc)


# ----------------------------------------- 9. a scenario section every arm replaces with its own
@pytest.mark.parametrize(
    ("section", "value", "arm_field", "arm_value", "named"),
    [
        (
            "surface",
            {"type": "list", "k": 3},
            "surface",
            {"type": "list", "k": 5},
            "surface: every arm sets its own surface (arms[i].surface), so the scenario's "
            "surface would be read by nothing",
        ),
        (
            "retrain",
            {"every_days": 0.25},
            "retrain_every_days",
            0.5,
            "retrain: every arm sets its own retrain schedule (arms[i].retrain_every_days), so "
            "the scenario's retrain would be read by nothing",
        ),
    ],
)
def test_a_section_every_arm_replaces_is_refused(
    tmp_path, section, value, arm_field, arm_value, named
):
    """Was: the scenario's surface (or retrain) with every arm's own was ignored without a word;
    a sweep over it was already refused so."""
    doc = base_doc(tmp_path)
    doc[section] = value
    for arm in doc["arms"]:
        arm[arm_field] = arm_value
    refused_everywhere(tmp_path, doc, named)
    doc["arms"][0].pop(arm_field)  # an arm that reads it
    _passes(tmp_path, doc)


# ---------------------------------------------- 10. an edge list saved with a byte-order mark
def test_an_edge_list_with_a_byte_order_mark_reads_as_without(tmp_path):
    """Was: a UTF-8 BOM (Notepad's 'UTF-8 with BOM') was refused as "'\\ufeff0' is not an
    integer user id", while the scenario and a start-hours CSV with one were read."""
    from recarena.agents.users.social import read_edge_list

    edges = tmp_path / "edges.txt"
    edges.write_bytes(b"\xef\xbb\xbf0 1\n1 2\n")
    assert read_edge_list(edges, 20).tolist() == [[0, 1], [1, 2]]
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": {"type": "edge_list", "path": str(edges)}}
    _passes(tmp_path, doc)
    edges.write_bytes(b"\xef\xbb\xbf0 x\n")  # a bad line is still named, by its own line
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 2 and "line 1: 'x' is not an integer user id" in stderr, stderr
