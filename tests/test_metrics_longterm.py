"""Long-term metrics (analysis/metrics_longterm.py) against hand computations on hand-built logs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recarena.analysis import metrics_longterm as lt
from recarena.analysis.compare import compare
from recarena.analysis.metrics import compute_metrics
from tests.test_metrics_library import make_logs, make_run

DAY = 86_400.0


def value(logs, name: str, arm: str = "a") -> float:
    frame = compute_metrics(logs, [name]).filter(arm=arm)
    return frame["value"].item()


def test_sample_pairs_are_seeded_and_never_self_pairs():
    users = np.array([5, 3, 9, 3])
    first, second = lt.sample_pairs(users, 50, seed=4), lt.sample_pairs(users, 50, seed=4)
    np.testing.assert_array_equal(first, second)
    assert (first[:, 0] != first[:, 1]).all()
    assert set(first.ravel()) <= {3, 5, 9}
    assert lt.sample_pairs(np.array([1]), 10).shape == (0, 2)


def test_jaccard_pairs_by_hand():
    # u0 {1, 2, 3} (item 2 twice), u1 {2, 3, 4}, u2 {}
    user = np.array([0, 0, 0, 0, 1, 1, 1])
    item = np.array([1, 2, 2, 3, 2, 3, 4])
    inter, union = lt.jaccard_pairs(user, item, np.array([[0, 1], [0, 2], [2, 2]]))
    np.testing.assert_array_equal(inter, [2, 0, 0])  # {2, 3}; nothing; nothing
    np.testing.assert_array_equal(union, [4, 3, 0])  # {1, 2, 3, 4}; {1, 2, 3}; empty


def _clicks(pairs: list[tuple[int, int]]) -> dict:
    return {"interactions": {"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs],
                             "day": [0] * len(pairs)}}  # fmt: skip


def test_homogenization_and_relative_to_a_reference_arm():
    # every sampled pair is (0, 1) or (1, 0). arm a: {1, 2} vs {2, 5} → 1/3. oracle: {1} vs {1}
    # → 1. arm c: {7} vs {} → 0 (union non-empty, so the pair counts)
    logs = make_run({
        ("a", 0): _clicks([(0, 1), (0, 2), (0, 2), (1, 2), (1, 5)]),
        ("oracle", 0): _clicks([(0, 1), (1, 1)]),
        ("c", 0): _clicks([(0, 7)]),
    })  # fmt: skip
    assert value(logs, "homogenization") == pytest.approx(1 / 3)
    assert value(logs, "homogenization", "oracle") == pytest.approx(1.0)
    assert value(logs, "homogenization", "c") == 0.0
    relative = lt.homogenization_relative(logs, "oracle").sort("arm")
    assert relative["value"].to_list() == pytest.approx([1 / 3, 0.0, 1.0])
    with pytest.raises(ValueError, match="no arm 'ideal'"):
        lt.homogenization_relative(logs, "ideal")


def test_homogenization_over_time_uses_clicks_up_to_each_day():
    # day 0: {1} vs {1} → 1; by day 1 user 1 also has item 2: {1} vs {1, 2} → 1/2
    clicks = {"user_id": [0, 1, 1], "item_id": [1, 1, 2], "day": [0, 0, 1]}
    series = lt.homogenization_over_time(make_logs({"interactions": clicks}))
    assert series["day"].to_list() == [0, 1]
    assert series["value"].to_list() == pytest.approx([1.0, 0.5])


def test_homogenization_compares_with_a_paired_ci():
    # 3 users; arm a: everyone consumed {1} → J = 1; arm b: disjoint → J = 0; every pair moves
    # by exactly −1, so the paired bootstrap CI of the delta is the point [−1, −1]
    same = _clicks([(0, 1), (1, 1), (2, 1)])
    apart = _clicks([(0, 1), (1, 2), (2, 3)])
    frame = compare(make_run({("a", 0): same, ("b", 0): apart}), metrics=["homogenization"])
    row = frame.filter(arm="b").row(0, named=True)
    assert row["ci_over"] == "users" and row["delta"] == pytest.approx(-1.0)
    assert (row["delta_ci_low"], row["delta_ci_high"]) == (pytest.approx(-1), pytest.approx(-1))


def test_entropy_trend_by_hand():
    # user 0: day 0 one item of topic 0 → H = 0; day 1 one half/half item → ln 2; day 2 one item
    # of each topic → ln 2. Slope = Σ(d − 1)·H / Σ(d − 1)² = (0 + 0 + ln 2) / 2.
    # user 1 has clicks on only 2 days → left out.
    items = {"item_id": [0, 1, 2], "topics": [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]}
    clicks = {"user_id": [0, 0, 0, 0, 1, 1], "item_id": [0, 1, 0, 2, 0, 2],
              "day": [0, 1, 2, 2, 0, 1]}  # fmt: skip
    logs = make_logs({"items": items, "interactions": clicks})
    daily = lt.entropy_by_user_day(logs).filter(user_id=0)
    assert daily["entropy"].to_list() == pytest.approx([0.0, math.log(2), math.log(2)])
    assert value(logs, "entropy_trend") == pytest.approx(math.log(2) / 2)


def test_taste_drift_is_the_mean_distance():
    users_end = {"user_id": [0, 1], "drift_distance": [0.5, 1.5]}
    assert value(make_logs({"users_end": users_end}), "taste_drift") == pytest.approx(1.0)


def test_creator_time_to_first_exposure_with_censoring():
    # creator 0: first item at 0, first impression at day 0.5 → 0.5 days. creator 1: first item
    # at day 1, never shown, horizon (last session end) day 3 → censored at 2 days. mean 1.25
    items = {"item_id": [0, 1, 2], "creator_id": [0, 1, 1], "created_at": [0.0, DAY, 2 * DAY]}
    exposures = {"item_id": [0, 0], "creator_id": [0, 0], "time": [0.5 * DAY, 2 * DAY]}
    sessions = {"user_id": [0], "end_time": [3 * DAY]}
    logs = make_logs({"items": items, "exposures": exposures, "sessions": sessions})
    first = lt.creator_first_exposure(logs)
    assert first["days"].to_list() == pytest.approx([0.5, 2.0])
    assert first["censored"].to_list() == [False, True]
    assert value(logs, "creator_time_to_exposure") == pytest.approx(1.25)


def _merit_logs():
    # merits exp(q): items 1, 3, 1 (shares .2 .6 .2); impressions 3, 1, 0 (.75 .25 0)
    items = {"item_id": [0, 1, 2], "creator_id": [0, 1, 1], "quality": [0.0, math.log(3), 0.0]}
    exposures = {"item_id": [0, 0, 0, 1], "creator_id": [0, 0, 0, 1]}
    return make_logs({"items": items, "exposures": exposures})


def test_exposure_vs_merit_total_variation_by_hand():
    logs = _merit_logs()
    # items: ½(|.75 − .2| + |.25 − .6| + |0 − .2|) = ½(.55 + .35 + .2) = .55
    assert value(logs, "item_exposure_unfairness") == pytest.approx(0.55)
    # creators: merit c0 1 (.2), c1 4 (.8); impressions .75, .25 → ½(.55 + .55) = .55
    assert value(logs, "creator_exposure_unfairness") == pytest.approx(0.55)


def test_creator_envy_by_hand():
    # per item: c0 merit 1, exposure 3; c1 merit 2, exposure 0.5 → c1 envies c0: 1 of 2 pairs
    assert value(_merit_logs(), "creator_envy") == pytest.approx(0.5)
    # three creators ordered by merit, exposure reversed: every higher-merit one envies → 3/6
    assert lt.envy_share(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(0.5)
    assert lt.envy_share(np.array([1, 2, 3]), np.array([1, 2, 3])) == 0.0


def test_creator_gini_and_survival_over_time_by_hand():
    # 1-day periods. creator 1 publishes on day 1, so period 0 has only creator 0.
    # period 0: [2] → Gini 0, survival 1/1; period 1: c0 4, c1 0 → Gini (−0 + 4)/(2·4) = 0.5,
    # survival 1/2
    items = {"item_id": [0, 1], "creator_id": [0, 1], "created_at": [0.0, 1.5 * DAY]}
    exposures = {"creator_id": [0] * 6, "time": [10.0, 20.0, DAY, DAY + 1, DAY + 2, DAY + 3]}
    logs = make_logs({"items": items, "exposures": exposures})
    gini = lt.creator_gini_over_time(logs, period_days=1.0)
    assert gini["period"].to_list() == [0, 1]
    assert gini["value"].to_list() == pytest.approx([0.0, 0.5])
    survival = lt.creator_survival(logs, period_days=1.0)
    assert survival["value"].to_list() == pytest.approx([1.0, 0.5])


def test_creator_survival_reads_creator_periods_when_present():
    periods = {"period": [0, 0, 1, 1], "creator_id": [0, 1, 0, 1],
               "active": [True, True, True, False]}  # fmt: skip
    survival = lt.creator_survival(make_logs({"creator_periods": periods}))
    assert survival["value"].to_list() == pytest.approx([1.0, 0.5])


def test_first_k_items_remove_the_volume_effect():
    # in time order u0: 1, 2, 2, 3 and u1: 1, 4, 2. All: {1, 2, 3} vs {1, 2, 4} → 2/4.
    # first 2 distinct items: {1, 2} vs {1, 4} → 1/3
    clicks = {"user_id": [0, 0, 0, 0, 1, 1, 1], "item_id": [1, 2, 2, 3, 1, 4, 2],
              "time": [1.0, 2, 3, 4, 1, 2, 3], "day": [0] * 7}  # fmt: skip
    logs = make_logs({"interactions": clicks})
    assert value(logs, "homogenization") == pytest.approx(0.5)
    first2 = lt.homogenization_pairs(logs, first_k=2)
    assert (first2["num"].sum() / first2["den"].sum()) == pytest.approx(1 / 3)
