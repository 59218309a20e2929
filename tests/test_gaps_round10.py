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

from tests.cli_in_process import cli, cli_out
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


# ------------------------------------------- 2. an llm section that nothing reads
UNUSED_LLM = (
    "note: llm: read by nothing, no user, creator or recommender of this scenario is "
    "LLM-driven (population.model: mixed with an llm_panel, or llm, makes LLM users)"
)


def test_an_llm_section_without_llm_users_is_noted_after_the_last_check(tmp_path):
    """Was: validate and run said nothing, and a user who wrote an llm section to get LLM
    users read rule users' logs as the LLM's."""
    doc = base_doc(tmp_path)
    doc["llm"] = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "temperature": 0.7}
    path = write_scenario(tmp_path, doc)
    code, stdout, stderr = cli_out("validate", str(path))
    assert code == 0, stderr
    assert stderr.strip() == UNUSED_LLM
    assert stdout.startswith("ok: ")
    code, stdout, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o",
                                   str(tmp_path / "out"))  # fmt: skip
    assert code == 0, stderr
    assert stderr.strip() == UNUSED_LLM  # after the results, once
    assert "run directory:" in stdout
    code, stdout, stderr = cli_out("run", str(path), "--dry-run")
    assert code == 0 and stderr.strip() == UNUSED_LLM, stderr
    assert "this scenario makes no LLM calls" in stdout


def test_a_refusal_beside_an_unused_llm_section_stays_one_line(tmp_path):
    doc = base_doc(tmp_path)
    doc["llm"] = {"temperature": 0.7}
    doc["surface"] = {"k": 400}  # larger than the 40 items
    refused_everywhere(tmp_path, doc, "surface.k")


def test_no_llm_note_with_llm_users_or_a_resolved_default_section(tmp_path):
    """LLM users read the section: no note. A resolved scenario (scenario.resolved.yaml writes
    every default, llm included) of a scenario without one: no note either."""
    from recarena.agents.llm.cache import CachedCall, CallCache
    from recarena.simulator.core.scenario import LLM

    cache = tmp_path / "cache.sqlite"
    db = CallCache(cache, "auto", "r")
    db.store("0" * 64, "fake", {}, CachedCall("1", True, None, 1, 1, 0.1, "r"))
    db.close()
    doc = base_doc(tmp_path)
    doc["population"].update(model="mixed", llm_panel={"users": 2})
    doc["llm"] = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}
    options = ["--llm-cache-mode", "replay", "--llm-cache", str(cache)]
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)), *options)
    assert code == 0 and "llm: read by nothing" not in stderr, stderr
    plain = base_doc(tmp_path)
    plain["llm"] = LLM().model_dump(mode="json")
    code, stderr = cli("validate", str(write_scenario(tmp_path, plain)))
    assert code == 0 and stderr == "", stderr


# ------------------------------------------- 3. a daily rhythm over a horizon before its peaks
def _sessions(run_dir: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(run_dir / "arm=random" / "rep=0" / "sessions.parquet").num_rows


def _rhythm_doc(tmp_path: Path, days: float, **rhythm) -> dict:
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = days
    doc["retrain"] = {"every_days": days / 2}
    doc["population"] = {"users": 1000, "daily_rhythm": rhythm}
    return doc


def test_a_partial_day_keeps_the_sessions_users_hours_put_before_the_horizon(tmp_path):
    """Was: a horizon ending inside a day drew that part's candidates, spread them over the
    whole clock and cut them at the horizon again, so a rhythm with every session spread evenly
    (floor 1) kept half of a half-day's sessions: 0.5 x 0.5 of a day's, where users' hours put
    0.5. Now the partial day keeps what the same rhythm over a whole day puts before noon, as
    many as without a rhythm."""
    with_rhythm = _rhythm_doc(tmp_path, 0.5, floor=1.0)
    without = _rhythm_doc(tmp_path, 0.5)
    del without["population"]["daily_rhythm"]
    counts = []
    for name, doc in (("rhythm", with_rhythm), ("plain", without)):
        out = tmp_path / name
        code, stderr = cli("run", str(write_scenario(tmp_path, doc)), "--executor", "local",
                           "-q", "-o", str(out))  # fmt: skip
        assert code == 0, stderr
        counts.append(_sessions(out))
    rhythm, plain = counts
    assert plain > 300  # ~500 expected: 1000 users, one visit a day, half a day
    assert 0.8 < rhythm / plain < 1.25, counts


def test_a_horizon_before_any_session_of_the_rhythm_is_refused(tmp_path):
    """Peaks at 20:00, no floor and users who keep their hour exactly: over a 6-hour horizon
    (midnight to 06:00) no user starts a session, and validate said ok to a run of empty logs."""
    doc = _rhythm_doc(tmp_path, 0.25, peak_hours=[20.0], spread_hours=0.0, floor=0.0,
                      width_hours=0.05)  # fmt: skip
    refused_everywhere(
        tmp_path,
        doc,
        "population.daily_rhythm.peak_hours: horizon.days 0.25 ends at hour 6 of the first "
        "day, before every peak hour (20), and with floor 0 no user's hours start a session "
        "before it, so no page would be served; lengthen horizon.days past a peak or give "
        "daily_rhythm a floor",
    )


def test_a_horizon_before_the_rhythms_peaks_is_one_note_after_the_last_check(tmp_path):
    """A legitimate setup (a night's browsing, the floor's few sessions), but odd: one note on
    stderr after validate's last check and after run's results; a refusal stays one line."""
    doc = _rhythm_doc(tmp_path, 0.25, peak_hours=[20.0])
    path = write_scenario(tmp_path, doc)
    code, stdout, stderr = cli_out("validate", str(path))
    assert code == 0, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(
        "note: population.daily_rhythm: horizon.days 0.25 ends at hour 6 of the first day, "
        "before every peak hour (20), so users start only the sessions their hours put before "
        "it, about "
    ), stderr
    assert lines[0].endswith(
        "of a day's (25% without a rhythm); lengthen horizon.days past the peaks to simulate them"
    ), stderr
    code, stdout, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o",
                                   str(tmp_path / "out"))  # fmt: skip
    assert code == 0 and stderr.strip() == lines[0], stderr
    assert "run directory:" in stdout
    doc["surface"] = {"k": 400}  # and a refusal: the refusal alone
    refused = tmp_path / "refused"
    refused.mkdir()
    doc["output"] = {"dir": str(refused / "runs")}
    refused_everywhere(refused, doc, "surface.k")


@pytest.mark.parametrize(
    ("days", "rhythm"),
    [
        (0.5, {"peak_hours": [8.0, 20.0]}),
        (2, {"peak_hours": [20.0]}),
        (0.25, {"peak_hours": [3.0]}),
    ],
    ids=["a_peak_inside", "whole_days", "early_peak"],
)
def test_a_horizon_that_reaches_a_peak_gets_no_note(tmp_path, days, rhythm):
    path = write_scenario(tmp_path, _rhythm_doc(tmp_path, days, **rhythm))
    code, stderr = cli("validate", str(path))
    assert code == 0 and stderr == "", stderr


# ------------------------------------------- 4. compare(ci_over=...) names its keyword
def _one_replicate():
    import polars as pl

    rows = [
        {"metric": "ctr", "arm": arm, "rep": 0, "user_id": user, "num": value, "den": 1.0}
        for arm, value in (("a", 0.1), ("b", 0.2))
        for user in range(5)
    ]
    per_user = pl.DataFrame(rows, schema_overrides={"rep": pl.Int32})
    cells = per_user.group_by("metric", "arm", "rep", maintain_order=True).agg(
        (pl.col("num").sum() / pl.col("den").sum()).alias("value")
    )
    return cells, per_user


def test_the_python_api_names_its_keyword_argument_not_the_cli_flag():
    """Was: compare(..., ci_over="user") from a notebook said '--ci-over: unknown', an option
    the caller never wrote."""
    from recarena.analysis.compare import compare
    from recarena.simulator.core.errors import RecarenaError

    cells, per_user = _one_replicate()
    with pytest.raises(RecarenaError) as caught:
        compare(cells, per_user=per_user, ci_over="user")
    assert str(caught.value) == "ci_over: unknown 'user'; known: auto, users, replicates"
    with pytest.raises(RecarenaError) as caught:
        compare(cells, per_user=per_user, ci_over="replicates")
    assert str(caught.value) == (
        "ci_over='replicates': the run has 1 replicate per arm and a CI over replicates needs "
        "at least 2; rerun with --replicates 2 or more, or use ci_over='users'"
    )
    assert "--ci-over" not in str(caught.value)


def test_the_cli_names_its_flag(tmp_path):
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 0.2
    doc["retrain"] = {"every_days": 0.1}
    run_dir = tmp_path / "run"
    code, stderr = cli("run", str(write_scenario(tmp_path, doc)), "--executor", "local", "-q",
                       "-o", str(run_dir))  # fmt: skip
    assert code == 0, stderr
    for command in (("compare", str(run_dir)), ("report", str(run_dir), "-o",
                                                str(tmp_path / "r.html"))):  # fmt: skip
        code, stderr = cli(*command, "--ci-over", "user")
        assert code == 2 and stderr.strip() == (
            "error: --ci-over: unknown 'user'; known: auto, users, replicates"
        ), stderr
        code, stderr = cli(*command, "--ci-over", "replicates")
        assert code == 2 and stderr.strip() == (
            "error: --ci-over replicates: the run has 1 replicate per arm and a CI over "
            "replicates needs at least 2; rerun with --replicates 2 or more, or use "
            "--ci-over users"
        ), stderr
    assert not (tmp_path / "r.html").exists()


def test_a_refused_output_dir_beside_unused_llm_options_stays_one_line(tmp_path):
    """Was: validate printed its notes on --llm-cache and llm.threads before checking
    output.dir, so that refusal came as a second line after a note."""
    doc = base_doc(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    doc["output"] = {"dir": str(blocker / "runs")}
    path = write_scenario(tmp_path, doc)
    code, stdout, stderr = cli_out("validate", str(path), "--llm-cache", str(tmp_path / "c.db"))
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "output.dir" in lines[0]
