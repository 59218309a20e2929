"""Off-policy evaluation: hand-computed estimators, IPS unbiasedness, and a simulated run."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.analysis.load import load
from recarena.analysis.ope import (
    NO_ITEM,
    PositionModel,
    estimate_policy_value,
    off_policy_evaluation,
)
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_subprocess import recarena
from tests.conftest import TINY

# Three sessions of two slots. Matches: (s1, slot 0), (s1, slot 1), (s3, slot 0).
HAND = pl.DataFrame(
    {
        "cluster": [1, 1, 2, 2, 3, 3],
        "position": [0, 1, 0, 1, 0, 1],
        "item_id": [10, 11, 12, 10, 10, 13],
        "propensity": [0.5, 0.25, 0.5, 0.25, 0.5, 0.5],
        "clicked": [True, False, False, True, False, True],
        "target_item": [10, 11, 10, 13, 10, NO_ITEM],
    }
)


def _by_name(estimates):
    return {e.estimator: e for e in estimates}


def test_estimators_match_hand_computation():
    # q̂(i, j) = slot_rate[j] * effect[i]: q(10,0)=.4, q(11,1)=.1, q(12,0)=.1, q(10,1)=.2, q(13,1)=.1
    model = PositionModel(
        slot_rate=np.array([0.2, 0.1]),
        overall_rate=0.15,
        items=np.array([10, 11, 12, 13]),
        item_effect=np.array([2.0, 1.0, 0.5, 1.0]),
    )
    est = _by_name(
        estimate_policy_value(
            HAND,
            ["ips", "snips", "dr", "naive"],
            n_boot=0,
            rng=np.random.default_rng(1),
            model=model,
        )
    )
    # weights 2, 4, 2 on the matches; Σ w·click = 2; Σ w = 8; n = 6
    assert est["ips"].estimate == pytest.approx(2 / 6)
    assert est["snips"].estimate == pytest.approx(2 / 8)
    assert est["naive"].estimate == pytest.approx(1 / 3)
    # DR terms: .4+2(1−.4), .1+4(0−.1), .4, .1, .4+2(0−.4), 0  → sum 1.4
    assert est["dr"].estimate == pytest.approx(1.4 / 6)
    assert est["ips"].n == 6 and est["ips"].matches == 3
    assert est["ips"].ess == pytest.approx(64 / 24)
    assert est["ips"].ci_low is None  # no bootstrap asked for


def test_position_model_fit_by_hand():
    model = PositionModel.fit(
        HAND["item_id"].to_numpy(),
        HAND["position"].to_numpy(),
        HAND["clicked"].to_numpy(),
        prior_clicks=2.0,
    )
    np.testing.assert_allclose(model.slot_rate, [1 / 3, 2 / 3])
    # item 10: clicks 2, expected 1/3 + 2/3 + 1/3 = 4/3 → effect (2+2)/(4/3+2) = 1.2
    # item 13: clicks 1, expected 2/3 → effect 3/(8/3) = 9/8; unknown item 99 → effect 1
    q = model.predict(np.array([10, 13, 99, NO_ITEM]), np.array([0, 1, 1, 0]))
    np.testing.assert_allclose(q, [0.4, 0.75, 2 / 3, 0.0])


def test_bootstrap_interval_brackets_estimate_and_is_seeded():
    big = pl.concat(
        [HAND.with_columns(pl.col("cluster") + 10 * i) for i in range(30)], how="vertical"
    )
    a = _by_name(estimate_policy_value(big, n_boot=500, rng=np.random.default_rng(3)))
    b = _by_name(estimate_policy_value(big, n_boot=500, rng=np.random.default_rng(3)))
    for name in ("ips", "snips", "dr"):
        assert a[name].ci_low < a[name].estimate < a[name].ci_high
        assert (a[name].ci_low, a[name].ci_high) == (b[name].ci_low, b[name].ci_high)


# A contextual bandit with k = 1: 3 equally likely contexts, 4 items, known click probabilities.
CLICK = np.array([[0.10, 0.30, 0.60, 0.20], [0.50, 0.05, 0.20, 0.40], [0.30, 0.30, 0.10, 0.70]])
TARGET = np.array([2, 0, 3])  # deterministic target: context → item
TRUE_VALUE = float(CLICK[np.arange(3), TARGET].mean())  # (0.6 + 0.5 + 0.7) / 3 = 0.6


def _bandit_log(rng: np.random.Generator, logging: np.ndarray, rounds: int) -> pl.DataFrame:
    """One log of ``rounds`` rounds; ``logging[x]`` is the logging distribution over items."""
    context = rng.integers(0, 3, rounds)
    cum = logging.cumsum(axis=1)[context]
    item = (rng.random(rounds)[:, None] > cum).sum(axis=1)
    clicked = rng.random(rounds) < CLICK[context, item]
    return pl.DataFrame(
        {
            "cluster": np.arange(rounds),
            "position": np.zeros(rounds, np.int64),
            "item_id": item,
            "propensity": logging[context, item],
            "clicked": clicked,
            "target_item": TARGET[context],
        }
    )


def _over_seeds(logging: np.ndarray, seeds: int = 200, rounds: int = 1000) -> dict[str, np.ndarray]:
    values: dict[str, list[float]] = {"ips": [], "snips": [], "dr": [], "naive": []}
    for seed in range(seeds):
        log = _bandit_log(np.random.default_rng(seed), logging, rounds)
        for e in estimate_policy_value(log, list(values), n_boot=0):
            values[e.estimator].append(e.estimate)
    return {k: np.array(v) for k, v in values.items()}


def test_ips_is_unbiased_under_uniform_logging():
    assert pytest.approx(0.6) == TRUE_VALUE
    values = _over_seeds(np.full((3, 4), 0.25))
    ips = values["ips"]
    se = ips.std(ddof=1) / np.sqrt(ips.size)
    assert abs(ips.mean() - TRUE_VALUE) < 4 * se
    assert se < 0.005  # the test has the power to see a bias of ~0.02


def test_ips_stays_unbiased_where_naive_matching_is_biased():
    # The logging policy shows the target's item with probability .7 in context 0, .3 in 1 and
    # .05 in 2, so matched rounds over-represent context 0 (value .6) and miss context 2 (.7).
    logging = np.array([[0.1, 0.1, 0.7, 0.1], [0.3, 0.3, 0.2, 0.2], [0.3, 0.3, 0.35, 0.05]])
    values = _over_seeds(logging)
    ips, naive = values["ips"], values["naive"]
    se_ips = ips.std(ddof=1) / np.sqrt(ips.size)
    assert abs(ips.mean() - TRUE_VALUE) < 4 * se_ips
    # naive = Σ_x P(match|x) r(x) / Σ_x P(match|x) = (.7·.6 + .3·.5 + .05·.7) / 1.05
    expected_naive = (0.7 * 0.6 + 0.3 * 0.5 + 0.05 * 0.7) / 1.05
    se_naive = naive.std(ddof=1) / np.sqrt(naive.size)
    assert abs(naive.mean() - expected_naive) < 4 * se_naive
    assert TRUE_VALUE - naive.mean() > 10 * se_naive  # clearly biased low


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    doc = copy.deepcopy(TINY)
    doc |= {"horizon": {"days": 1, "tick_seconds": 120}, "population": {"users": 200}}
    doc["catalog"]["initial_items"] = 60
    run_dir = tmp_path_factory.mktemp("ope") / "run"
    run_experiment(parse_scenario(doc), run_dir, executor="local")
    return run_dir


def test_truth_is_the_target_arms_page0_ctr(tiny_run):
    logs = load(tiny_run)
    frame = off_policy_evaluation(logs, "popularity", "random", n_boot=200)
    page0 = (
        logs.exposures.filter((pl.col("arm") == "popularity") & (pl.col("page") == 0))
        .group_by("rep")
        .agg(pl.col("clicked").cast(pl.Float64).mean().alias("ctr"))
        .collect()
    )
    truth = dict(page0.iter_rows())
    for row in frame.filter(pl.col("rep").is_not_null()).iter_rows(named=True):
        assert row["truth"] == pytest.approx(truth[row["rep"]])
        assert row["error"] == pytest.approx(row["estimate"] - row["truth"])
    pooled = frame.filter(pl.col("rep").is_null())
    assert pooled.height == 3 and set(pooled["estimator"]) == {"ips", "snips", "dr"}
    assert pooled["matches"][0] > 0 and 0 <= pooled["dropped"][0] < 1


def test_cli_prints_the_table(tiny_run):
    frame = off_policy_evaluation(load(tiny_run), "popularity", "random")
    done = recarena("ope", str(tiny_run), "--target", "popularity", "--logging", "random")
    assert done.returncode == 0, done.stderr
    assert "OPE: target 'popularity' from the log of 'random'" in done.stdout
    pooled_truth = frame.filter(pl.col("rep").is_null())["truth"][0]
    assert f"{pooled_truth:.4f}" in done.stdout
    assert done.stdout.count("pooled") == 3
    # at a pipe's default 80 columns the ten columns were cut to "0.09…"; now printed whole
    narrow = recarena(
        "ope",
        str(tiny_run),
        "--target",
        "popularity",
        "--logging",
        "random",
        env={"COLUMNS": "80"},
    )
    assert narrow.returncode == 0, narrow.stderr
    assert f"{pooled_truth:.4f}" in narrow.stdout and "…" not in narrow.stdout


def test_cli_errors_are_one_line(tiny_run):
    done = recarena("ope", str(tiny_run), "--target", "nope")
    assert done.returncode == 2 and done.stderr.startswith("error: --target: unknown arm 'nope'")
    done = recarena("ope", str(tiny_run), "--target", "popularity", "--estimators", "ips,magic")
    assert done.returncode == 2 and "--estimators: unknown ope estimator 'magic'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = recarena("ope", str(tiny_run), "--target", "random", "--logging", "random")
    assert done.returncode == 2 and "--target and --logging are both 'random'" in done.stderr
    done = recarena("ope", str(tiny_run), "--target", "popularity", "--estimators", "ips,dr,ips")
    assert done.returncode == 2, done.stderr  # was: the ips rows printed twice, exit 0
    assert done.stderr.strip() == "error: --estimators: 'ips' is named twice; name each one once"
    done = recarena("ope", str(tiny_run), "--target", "popularity", "--estimators", "ips,,dr")
    assert done.returncode == 2, done.stderr  # was: read as 'ips,dr', exit 0
    assert done.stderr.strip() == (
        "error: --estimators: 'ips,,dr' has an empty name (two commas in a row, or one at an end)"
    )


def test_zero_propensity_and_no_overlap_are_refused(tiny_run):
    logs = load(tiny_run)
    is_random = pl.col("arm") == "random"
    zeroed = dataclasses.replace(
        logs,
        exposures=logs.exposures.with_columns(
            pl.when(is_random).then(0.0).otherwise(pl.col("propensity")).alias("propensity")
        ),
    )
    with pytest.raises(RecarenaError, match="--logging: arm 'random' logged a missing or zero"):
        off_policy_evaluation(zeroed, "popularity", "random")
    disjoint = dataclasses.replace(
        logs,
        exposures=logs.exposures.with_columns(
            pl.when(is_random).then(-7).otherwise(pl.col("item_id")).alias("item_id")
        ),
    )
    # a logging arm that explores (random) has only too short a log; one that does not
    # (popularity, propensity 1) is the wrong logging arm
    with pytest.raises(RecarenaError, match="no overlap.*too few for a match: log more"):
        off_policy_evaluation(disjoint, "popularity", "random")
    with pytest.raises(RecarenaError, match="no overlap.*use a logging arm that explores"):
        off_policy_evaluation(disjoint, "random", "popularity")
