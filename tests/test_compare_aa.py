"""A/A calibration of compare(): CI coverage of a true zero difference and family-wise errors.

Full simulations would be far too slow to repeat hundreds of times, so these tests feed
synthetic values from a known distribution through the same ``compare`` code path: per-replicate
metric values for the replicate bootstrap, per-user (num, den) for the user bootstrap. In every
draw both arms come from one distribution, so the true difference is 0.

Binomial tolerance: with N draws and true coverage c the estimate has sd √(c(1 − c)/N); for
N = 500, c = 0.95 that is 0.0097, so [0.92, 0.98] is about ±3 sd.
"""

from __future__ import annotations

import importlib

import numpy as np
import polars as pl
import pytest

from recarena.analysis.compare import bootstrap_p_value, compare, holm

N_REPS = 50
"""Replicates per A/A draw: the percentile bootstrap of a mean of n values covers about
P(|t_{n−1}| ≤ 1.96 √((n−1)/n)), 94.2% at n = 50 (92.9% at n = 20, under 85% at n = 5)."""


FWER_REPS = 100
"""Replicates per experiment in the family-wise test (see there why more than N_REPS)."""


def _long(values: dict[tuple[str, str], np.ndarray]) -> pl.DataFrame:
    rows = [(m, a, rep, float(v)) for (m, a), vs in values.items() for rep, v in enumerate(vs)]
    return pl.DataFrame(rows, schema=["metric", "arm", "rep", "value"], orient="row")


def _covered(frame: pl.DataFrame) -> np.ndarray:
    deltas = frame.filter(pl.col("delta").is_not_null())
    return ((deltas["delta_ci_low"] <= 0) & (deltas["delta_ci_high"] >= 0)).to_numpy()


def test_replicate_bootstrap_covers_zero_about_95_percent():
    # 10 compare calls × 50 independent A/A metrics = 500 draws, each with 50 paired replicates
    # (a shared replicate effect plus independent arm noise, as under common random numbers)
    covered = []
    for call in range(10):
        rng = np.random.default_rng(1000 + call)
        values = {}
        for m in range(50):
            shared = rng.normal(0.1, 0.02, N_REPS)
            values[(f"m{m}", "a")] = shared + rng.normal(0, 0.01, N_REPS)
            values[(f"m{m}", "b")] = shared + rng.normal(0, 0.01, N_REPS)
        frame = compare(_long(values), seed=call)
        assert set(frame["ci_over"]) == {"replicates"}
        covered.extend(_covered(frame))
    assert len(covered) == 500
    print(f"coverage {np.mean(covered):.3f}")
    assert 0.92 <= np.mean(covered) <= 0.98


def _users(rng: np.random.Generator, metrics: int, n_users: int) -> pl.DataFrame:
    """Per-user CTR-like data: each user's exposures and click propensity are shared by the
    arms (the same simulated user), their clicks are drawn independently per arm."""
    frames = []
    for m in range(metrics):
        exposures = rng.poisson(20, n_users) + 1
        propensity = rng.beta(2, 18, n_users)
        for arm in ("a", "b"):
            clicks = rng.binomial(exposures, propensity)
            frames.append(
                pl.DataFrame(
                    {
                        "metric": f"m{m}",
                        "arm": arm,
                        "rep": pl.Series([0] * n_users, dtype=pl.Int32),
                        "user_id": np.arange(n_users),
                        "num": clicks.astype(float),
                        "den": exposures.astype(float),
                    }
                )
            )
    return pl.concat(frames)


def _cell_values(per_user: pl.DataFrame) -> pl.DataFrame:
    return per_user.group_by("metric", "arm", "rep", maintain_order=True).agg(
        (pl.col("num").sum() / pl.col("den").sum()).alias("value")
    )


def test_user_bootstrap_covers_zero_about_95_percent():
    # one replicate (no replicate CI is possible): 8 calls × 50 metrics = 400 A/A draws, each
    # resampling 300 users; users are paired across arms (tolerance ±2.7 sd at N = 400)
    covered = []
    for call in range(8):
        per_user = _users(np.random.default_rng(2000 + call), 50, 300)
        frame = compare(_cell_values(per_user), per_user=per_user, seed=call)
        assert set(frame["ci_over"]) == {"users"}
        covered.extend(_covered(frame))
    assert len(covered) == 400
    print(f"coverage {np.mean(covered):.3f}")
    assert 0.92 <= np.mean(covered) <= 0.98


def test_holm_keeps_family_wise_false_positives_near_5_percent():
    # 400 A/A experiments, each with 3 arms × 4 independent metrics = 8 deltas vs the baseline.
    # Without correction some delta is "significant" in about 1 − 0.95^8 ≈ 34% of experiments.
    # Holm's strictest threshold is 0.05/8, far in the tail, where the percentile bootstrap of
    # n values is too thin (as a z-interval with sd shrunk by √((n−1)/n) instead of a t): at
    # n = 20 the family-wise rate measured 11.5%; at n = 100 it is close to nominal.
    any_raw = any_adjusted = 0
    experiments = 400
    for seed in range(experiments):
        rng = np.random.default_rng(seed)
        values = {}
        for m in range(4):
            shared = rng.normal(0.1, 0.02, FWER_REPS)
            for arm in ("a", "b", "c"):
                values[(f"m{m}", arm)] = shared + rng.normal(0, 0.01, FWER_REPS)
        frame = compare(_long(values), seed=seed, n_boot=1000)
        frame = frame.filter(pl.col("p_value").is_not_null())
        assert frame.height == 8
        any_raw += bool((frame["p_value"] < 0.05).any())
        any_adjusted += bool(frame["significant"].any())
    print(f"FWER raw {any_raw / experiments:.3f}, Holm {any_adjusted / experiments:.3f}")
    assert any_raw / experiments > 0.2
    # FWER ≤ 5% + 3 binomial sd (sd = 0.011 at 400 experiments)
    assert any_adjusted / experiments <= 0.05 + 0.033


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).size == 0


def test_bootstrap_p_value_by_hand():
    # 9 draws, 2 at or below 0, 7 above: 2 · (2 + 1) / 10
    assert bootstrap_p_value(np.array([-1, 0, 1, 2, 3, 4, 5, 6, 7.0])) == pytest.approx(0.6)
    # all draws positive: the floor 2 / (B + 1)
    assert bootstrap_p_value(np.ones(99)) == pytest.approx(0.02)
    # identical arms: every draw is exactly 0
    assert bootstrap_p_value(np.zeros(50)) == 1.0


def test_ci_over_switches_at_five_replicates_and_needs_per_user_values():
    rng = np.random.default_rng(0)
    per_user = pl.concat(
        [_users(rng, 1, 50).with_columns(pl.lit(rep, pl.Int32).alias("rep")) for rep in range(5)]
    )
    few = per_user.filter(pl.col("rep") < 4)
    assert set(compare(_cell_values(few), per_user=few)["ci_over"]) == {"users"}
    # five replicates: back to the replicate bootstrap even with per-user values
    assert set(compare(_cell_values(per_user), per_user=per_user)["ci_over"]) == {"replicates"}
    # without per-user values: replicates, and with one replicate no CI at all
    one = _cell_values(per_user.filter(pl.col("rep") == 0))
    frame = compare(one)
    assert set(frame["ci_over"]) == {"replicates"} and frame["delta_ci_low"].is_null().all()
    assert frame["p_value"].is_null().all() and not frame["significant"].any()


def test_user_bootstrap_pairs_users_across_arms():
    # arm b = arm a + 1 click for every user: the paired CI of the delta is exactly the shift
    rng = np.random.default_rng(1)
    exposures = rng.poisson(20, 200) + 1
    clicks = rng.binomial(exposures, 0.1)
    rows = [("ctr", arm, 0, u, float(c + shift), float(e))
            for arm, shift in (("a", 0), ("b", 1))
            for u, (c, e) in enumerate(zip(clicks, exposures, strict=True))]  # fmt: skip
    per_user = pl.DataFrame(
        rows, schema=["metric", "arm", "rep", "user_id", "num", "den"], orient="row"
    ).with_columns(pl.col("rep").cast(pl.Int32))
    b = compare(_cell_values(per_user), per_user=per_user).row(1, named=True)
    # Σ(c + 1)/Σe − Σc/Σe = n/Σe in the sample; resamples vary it only through Σe
    assert b["delta"] == pytest.approx(200 / exposures.sum())
    assert b["delta_ci_high"] - b["delta_ci_low"] < 0.2 * b["delta"]
    assert b["ci_high"] - b["ci_low"] > b["delta_ci_high"] - b["delta_ci_low"]
    assert b["significant"] and b["ci_over"] == "users"


def test_bucketed_user_bootstrap_matches_the_plain_one(monkeypatch):
    # 6,000 users: above MAX_BUCKETS, users are resampled in 2,000 random buckets; the CI
    # width must agree with resampling the 6,000 users one by one
    compare_module = importlib.import_module("recarena.analysis.compare")  # the package shadows it
    per_user = _users(np.random.default_rng(5), 1, 6000)
    values = _cell_values(per_user)
    bucketed = compare(values, per_user=per_user).row(1, named=True)
    monkeypatch.setattr(compare_module, "MAX_BUCKETS", 10**6)
    plain = compare(values, per_user=per_user).row(1, named=True)
    assert bucketed["delta"] == plain["delta"]

    def width(row: dict) -> float:
        return row["delta_ci_high"] - row["delta_ci_low"]

    assert width(bucketed) == pytest.approx(width(plain), rel=0.15)


def test_null_values_are_left_out():
    # retention_d7 is null in runs shorter than 8 days: such a metric drops out of the table
    frame = _long({("m", "a"): np.array([1.0, 2.0]), ("m", "b"): np.array([2.0, 3.0])})
    empty = pl.DataFrame(
        {"metric": ["r", "r"], "arm": ["a", "b"], "rep": [0, 0], "value": [None, None]},
        schema=frame.schema,
    )
    result = compare(pl.concat([frame, empty]))
    assert result["metric"].to_list() == ["m", "m"]
