"""The CI of a relative change (Δ as a share of the baseline mean), as compare() computes it
and the tables print it: each bootstrap draw's Δ over the same draw's baseline mean.

Was: the CI of Δ divided by the baseline's point mean, as if that mean were known. An arm at 0
for every user (Δ exactly -100 %) was printed with the CI [-108 %, -94 %], outside what a
non-negative metric allows, and the interval left out the baseline's own sampling error.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recarena.analysis.compare import compare, format_table, relative_bounds


def _per_user(clicks_b: np.ndarray, clicks_a: np.ndarray, exposures: np.ndarray) -> pl.DataFrame:
    n = exposures.shape[0]
    return pl.concat(
        [
            pl.DataFrame(
                {
                    "metric": "ctr",
                    "arm": arm,
                    "rep": pl.Series([0] * n, dtype=pl.Int32),
                    "user_id": np.arange(n),
                    "num": clicks.astype(float),
                    "den": exposures.astype(float),
                }
            )
            for arm, clicks in (("a", clicks_a), ("b", clicks_b))
        ]
    )


def _cells(per_user: pl.DataFrame) -> pl.DataFrame:
    return per_user.group_by("metric", "arm", "rep", maintain_order=True).agg(
        (pl.col("num").sum() / pl.col("den").sum()).alias("value")
    )


def test_an_arm_at_zero_everywhere_is_exactly_minus_100_percent():
    rng = np.random.default_rng(7)
    exposures = rng.poisson(20, 200) + 1
    per_user = _per_user(np.zeros(200), rng.binomial(exposures, 0.1), exposures)
    frame = compare(_cells(per_user), baseline="a", per_user=per_user, seed=1)
    row = frame.filter(pl.col("arm") == "b").row(0, named=True)
    assert row["rel_ci_low"] == row["rel_ci_high"] == -1.0
    assert relative_bounds(row, row["mean"] - row["delta"]) == (-100.0, -100.0)
    # the scaled CI of Δ, which the table printed before, leaves the possible range
    assert row["delta_ci_low"] / (row["mean"] - row["delta"]) < -1.0
    printed = format_table(frame)
    assert any("[-100%, -100%]" in str(c) for column in printed.columns for c in column.cells)


def test_the_relative_ci_brackets_each_draws_ratio_and_agrees_in_sign_with_delta():
    rng = np.random.default_rng(11)
    exposures = rng.poisson(20, 300) + 1
    propensity = rng.beta(2, 18, 300)
    base = rng.binomial(exposures, propensity)
    better = rng.binomial(exposures, np.minimum(propensity * 1.3, 1.0))
    per_user = _per_user(better, base, exposures)
    frame = compare(_cells(per_user), baseline="a", per_user=per_user, seed=2)
    row = frame.filter(pl.col("arm") == "b").row(0, named=True)
    base_mean = row["mean"] - row["delta"]
    low, high = row["rel_ci_low"], row["rel_ci_high"]
    assert low < row["delta"] / base_mean < high
    # Δ and the relative change have the same sign in every draw (the baseline is positive),
    # so the two intervals exclude zero together
    assert (row["delta_ci_low"] > 0) == (low > 0)
    # resampling the baseline too widens the interval against a fixed denominator
    fixed = (row["delta_ci_high"] - row["delta_ci_low"]) / base_mean
    assert high - low > 0.9 * fixed


def test_replicate_cis_resample_the_baseline_with_the_same_replicates():
    rng = np.random.default_rng(3)
    shared = rng.normal(1.0, 0.2, 30)
    values = {"a": shared + rng.normal(0, 0.05, 30), "b": 0.5 * shared + rng.normal(0, 0.05, 30)}
    frame = pl.DataFrame(
        [("m", arm, rep, float(v)) for arm, vs in values.items() for rep, v in enumerate(vs)],
        schema=["metric", "arm", "rep", "value"],
        orient="row",
    )
    result = compare(frame, baseline="a", seed=4)
    assert set(result["ci_over"]) == {"replicates"}
    row = result.filter(pl.col("arm") == "b").row(0, named=True)
    assert row["rel_ci_low"] < row["delta"] / (row["mean"] - row["delta"]) < row["rel_ci_high"]
    assert -1.0 < row["rel_ci_low"] < row["rel_ci_high"] < 0.0
