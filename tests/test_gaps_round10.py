"""Round ten: gaps left by round nine, each closed as a demanding user expects.

1. A calibrated population replaces catalog.topics and creators.count with its file's: a value
   other than the default and the file's own is refused in one line naming both.
2. An llm section that nothing reads (no LLM user, creator or recommender) gets one note line.
3. A daily rhythm over a horizon that ends before its peaks: a partial day keeps the sessions
   the users' hours put before the horizon; a horizon before every session is refused, one
   before the peaks is noted in one line after the last check.
4. compare(ci_over=...) names its keyword argument; the CLI names --ci-over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_in_process import cli
from tests.test_hostile_inputs import calibrated_files  # noqa: F401 - used by population
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario


def base_doc(tmp_path: Path) -> dict:
    doc = gate_doc(tmp_path, name="round10", days=1)
    doc["retrain"] = {"every_days": 0.5}  # a learner that learns: no note of its own
    return doc


# ------------------------------------------- 1. topics and creators a calibrated file replaces
@pytest.fixture
def population(calibrated_files: Path) -> Path:  # noqa: F811
    """A tiny calibrated population: 40 users, 30 items, 2 topics, 3 creators (first genres
    Drama, Comedy, Action); its dataset is the folder ``ml`` beside it."""
    return calibrated_files


def _calibrated(tmp_path: Path, files: Path, **population) -> dict:
    doc = base_doc(tmp_path)
    doc.pop("catalog")
    doc.pop("creators")
    doc["population"] = {"from": "calibrated", "path": str(files / "pop.parquet"), **population}
    doc["surface"] = {"k": 2}
    return doc


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"catalog": {"topics": 8}},
            "catalog.topics: 8 would be replaced by the calibrated population's 2 topics "
            "(population.path sets them); leave it out",
        ),
        (
            {"creators": {"count": 5}},
            "creators.count: 5 would be replaced by the calibrated population's 3 creators "
            "(population.path sets them); leave it out",
        ),
    ],
    ids=["topics", "creators"],  # a sweep over either is refused already (the file sets both)
)
def test_topics_or_creators_a_calibrated_population_replaces_are_refused(
    population, tmp_path, change, named
):
    """Was: validate ok, and the run simulated the file's 2 topics and 3 creators (one per first
    genre) while the YAML said 8 topics or 5 creators."""
    doc = _calibrated(tmp_path, population)
    doc.update(change)
    refused_everywhere(tmp_path, doc, named)


def test_topics_or_creators_of_a_dataset_to_calibrate_are_refused(population, tmp_path):
    """With population.dataset and no file yet, the sizes are those the calibration will have:
    16 topics (the calibration's default) and one creator per first genre (3 here)."""
    doc = _calibrated(tmp_path, population)
    doc["population"] = {
        "from": "calibrated",
        "path": str(tmp_path / "fresh" / "pop.parquet"),
        "dataset": str(population.parent / "ml"),
    }
    doc["catalog"] = {"topics": 4}
    refused_everywhere(
        tmp_path,
        doc,
        "catalog.topics: 4 would be replaced by the calibrated population's 16 topics",
    )
    doc["catalog"] = {"topics": 16}
    doc["creators"] = {"count": 2}
    refused_everywhere(
        tmp_path,
        doc,
        "creators.count: 2 would be replaced by the calibrated population's 3 creators",
    )
    doc["creators"] = {"count": 3}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


def test_a_calibrated_population_with_its_own_topics_and_creators_passes(population, tmp_path):
    """What a resolved scenario writes (the file's own values) and the defaults pass."""
    doc = _calibrated(tmp_path, population)
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
    doc["catalog"] = {"topics": 2, "initial_items": 30}
    doc["creators"] = {"count": 3, "uploads_per_day": 0.0}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
    doc["catalog"] = {"topics": 16}  # the default: a resolve replaces it, as before
    doc["creators"] = {"count": 20}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
