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

from tests.cli_in_process import cli
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
