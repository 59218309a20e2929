"""``--ci-over``: the user chooses what compare() and the report's CIs resample."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from recarena.analysis.compare import compare, format_table
from recarena.analysis.report import ab_note, ab_rows, build_report
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_subprocess import recarena
from tests.conftest import TINY


def _flat_users(rep_values: dict[str, list[float]], n_users: int = 20) -> pl.DataFrame:
    """Per-user rows where every user of a replicate has the same value.

    Then a bootstrap over users cannot move the mean (its CI is the point itself), while a
    bootstrap over replicates spans the replicates' values: the two units are told apart.
    """
    rows = []
    for arm, values in rep_values.items():
        for rep, value in enumerate(values):
            for user in range(n_users):
                rows.append(
                    {"metric": "ctr", "arm": arm, "rep": rep, "user_id": user, "num": value,
                     "den": 1.0}
                )  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"rep": pl.Int32})


def _cells(per_user: pl.DataFrame) -> pl.DataFrame:
    return per_user.group_by("metric", "arm", "rep", maintain_order=True).agg(
        (pl.col("num").sum() / pl.col("den").sum()).alias("value")
    )


PER_USER = _flat_users({"a": [0.10, 0.20, 0.30], "b": [0.15, 0.35, 0.40]})


def test_auto_uses_users_below_five_replicates():
    frame = compare(_cells(PER_USER), per_user=PER_USER, ci_over="auto")
    assert set(frame["ci_over"]) == {"users"}
    a = frame.row(0, named=True)
    assert a["mean"] == pytest.approx(0.2)
    assert a["ci_low"] == pytest.approx(0.2) and a["ci_high"] == pytest.approx(0.2)


def test_replicates_is_honoured_with_three_replicates():
    frame = compare(_cells(PER_USER), per_user=PER_USER, ci_over="replicates")
    assert set(frame["ci_over"]) == {"replicates"}
    a, b = frame.row(0, named=True), frame.row(1, named=True)
    # a bootstrap mean of (0.1, 0.2, 0.3) lies in [0.1, 0.3] and is not a point
    assert 0.1 - 1e-12 <= a["ci_low"] < 0.2 < a["ci_high"] <= 0.3 + 1e-12
    # paired differences b − a: 0.05, 0.15, 0.10 -> mean 0.10, CI within [0.05, 0.15]
    assert b["delta"] == pytest.approx(0.10)
    assert 0.05 - 1e-12 <= b["delta_ci_low"] < 0.10 < b["delta_ci_high"] <= 0.15 + 1e-12


def test_users_is_honoured_with_five_replicates():
    per_user = _flat_users({"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [0.2, 0.3, 0.4, 0.5, 0.6]})
    assert set(compare(_cells(per_user), per_user=per_user)["ci_over"]) == {"replicates"}
    frame = compare(_cells(per_user), per_user=per_user, ci_over="users")
    assert set(frame["ci_over"]) == {"users"}
    b = frame.row(1, named=True)
    assert b["delta_ci_low"] == pytest.approx(0.1) and b["delta_ci_high"] == pytest.approx(0.1)


def test_replicates_with_one_replicate_is_one_clear_error():
    one = PER_USER.filter(pl.col("rep") == 0)
    # from Python the line names the keyword; the CLI's names --ci-over (test below)
    with pytest.raises(RecarenaError, match=r"ci_over='replicates': the run has 1 replicate "):
        compare(_cells(one), per_user=one, ci_over="replicates")
    with pytest.raises(RecarenaError, match=r"^ci_over: unknown 'reps'; known: auto, users"):
        compare(_cells(PER_USER), per_user=PER_USER, ci_over="reps")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    doc = {**TINY, "replicates": 2, "metrics": ["ctr", "coverage"]}
    tmp = tmp_path_factory.mktemp("ci_over")
    return run_experiment(parse_scenario(doc), tmp / "run", executor="local").run_dir


def test_report_states_the_unit(tiny_run):
    auto = build_report(tiny_run)
    assert {r.ci_over for r in auto.ab_rows} == {"users", "replicates"}  # ctr, coverage
    assert dict(auto.summary)["CIs over"] == (
        "users and replicates (chosen automatically; 2 replicates per arm)"
    )
    forced = build_report(tiny_run, ci_over="replicates")
    assert {r.ci_over for r in forced.ab_rows} == {"replicates"}
    assert dict(forced.summary)["CIs over"] == (
        "replicates (--ci-over replicates; 2 replicates per arm)"
    )
    assert "CIs over replicates: a percentile bootstrap over the 2" in forced.ab_note
    assert "CIs over users" not in forced.ab_note


def test_cli_option_on_compare_and_report(tiny_run, tmp_path):
    done = recarena("compare", str(tiny_run), "--ci-over", "replicates", "--metric", "ctr")
    assert done.returncode == 0, done.stderr
    assert "CI over 2 replicates" in " ".join(done.stdout.split())
    assert "over users" not in done.stdout
    # one replicate: a single error line, exit code 2, no table
    one = run_experiment(
        parse_scenario({**TINY, "replicates": 1, "metrics": ["ctr"]}), tmp_path / "one", "local"
    ).run_dir
    for command in (["compare", str(one)], ["report", str(one), "-o", str(tmp_path / "r.html")]):
        bad = recarena(*command, "--ci-over", "replicates")
        assert bad.returncode == 2 and bad.stdout == ""
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --ci-over replicates: the run has 1")
    assert not (tmp_path / "r.html").exists()
    report = recarena("report", str(tiny_run), "-o", str(tmp_path / "r.html"), "--ci-over", "users")
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "users and replicates (--ci-over users; 2 replicates per arm)" in html


def test_unknown_ci_over_is_rejected_by_the_cli(tiny_run):
    bad = recarena("compare", str(tiny_run), "--ci-over", "rows")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --ci-over: unknown 'rows'; known: auto, users, replicates"


def test_a_negative_baseline_mean_gets_an_absolute_delta():
    # drift −0.01 (baseline) vs −0.02: a percentage of −0.01 would print "+100%" for a drop
    per_user = _flat_users({"a": [-0.01, -0.01, -0.01], "b": [-0.02, -0.02, -0.02]})
    frame = compare(_cells(per_user), per_user=per_user, ci_over="replicates")
    row = ab_rows(frame)[1]
    assert (row.delta, row.interval) == ("-0.01*", "[-0.01, -0.01]")
    console = Console(width=200, record=True)
    console.print(format_table(frame))
    text = console.export_text()
    assert "│ -0.01* │ [-0.01, -0.01] │" in text
    assert "Holm correction over 1 delta (p_adj" in " ".join(text.split())  # was '1 deltas'
    assert "absolute where that mean is ≤ 0" in ab_note(frame)


def test_a_user_draw_without_a_denominator_is_left_out_without_a_warning():
    """Was: conv_questions_per_success over three users, one of them with questions but no
    success: a bootstrap draw of only that user was +inf in both arms, and the paired delta
    'inf - inf' printed 'warning: invalid value encountered in subtract' under the table."""
    rows = [
        {"metric": "q", "arm": arm, "rep": 0, "user_id": u, "num": num, "den": den}
        for arm, shift in (("a", 0.0), ("b", 1.0))
        for u, (num, den) in enumerate([(2.0 + shift, 0.0), (3.0 + shift, 1.0), (5.0, 1.0)])
    ]
    per_user = pl.DataFrame(rows, schema_overrides={"rep": pl.Int32})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = compare(_cells(per_user), per_user=per_user, ci_over="users")
    b = frame.filter(pl.col("arm") == "b").row(0, named=True)
    # b's numerators are a's or more, so every defined draw's delta is >= 0; the bound is
    # finite (user 0's questions count in a draw that holds a success too)
    assert 0.0 <= b["delta_ci_low"] <= b["delta"] <= b["delta_ci_high"] < float("inf")
