"""Every registered metric against a hand computation on tiny hand-built logs.

The logs are built as LazyFrames directly (no simulation), with only the columns a metric reads
filled in; every expected value below is worked out in the comment beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from recarena.analysis.compare import compare
from recarena.analysis.load import Cell, RunLogs
from recarena.analysis.metrics import (
    METRICS,
    compute_metrics,
    compute_user_metrics,
    retention_curve,
)
from recarena.simulator.core.logschema import SCHEMAS


def _frame(table: str, rows: dict, arm: str, rep: int) -> pl.LazyFrame:
    schema = SCHEMAS[table]
    n = len(next(iter(rows.values()))) if rows else 0
    columns = {f.name: rows.get(f.name, [None] * n) for f in schema}
    frame = pl.from_arrow(pa.table(columns, schema=schema))
    assert isinstance(frame, pl.DataFrame)
    return frame.lazy().select(
        pl.lit(arm, pl.Utf8).alias("arm"), pl.lit(rep, pl.Int32).alias("rep"), pl.all()
    )


def make_run(cells: dict[tuple[str, int], dict[str, dict]], days: int | None = None) -> RunLogs:
    """RunLogs over hand-written cells: (arm, rep) -> table -> columns; missing tables empty."""
    frames = {
        name: pl.concat(
            [_frame(name, t.get(name, {}), arm, rep) for (arm, rep), t in cells.items()]
        )
        for name in SCHEMAS
    }
    manifest: dict = {"arms": list(dict.fromkeys(arm for arm, _ in cells))}
    if days is not None:
        manifest["scenario"] = {"horizon": {"days": days}}
    cell_list = [Cell(arm, rep, Path(".")) for arm, rep in cells]
    return RunLogs(Path("."), manifest, cell_list, [], **frames)


def make_logs(tables: dict[str, dict], days: int | None = None) -> RunLogs:
    """One cell (arm 'a', rep 0) holding ``tables``."""
    return make_run({("a", 0): tables}, days)


def value(logs: RunLogs, name: str) -> float | None:
    return compute_metrics(logs, [name])["value"].item()


def one_hot(topic: int, n: int) -> list[float]:
    return [1.0 if t == topic else 0.0 for t in range(n)]


def check_per_user(logs: RunLogs, name: str) -> None:
    """Σnum/Σden over users reproduces the cell value (what compare's user bootstrap relies on)."""
    users = compute_user_metrics(logs, [name])
    assert users["num"].sum() / users["den"].sum() == pytest.approx(value(logs, name))


# --- engagement -------------------------------------------------------------------------------

SESSIONS = {
    # user 0: days 0 and 7; user 1: days 0 and 3; user 2: day 7 only (not in the day-0 cohort)
    "session_id": [0, 1, 2, 3, 4],
    "user_id": [0, 0, 1, 1, 2],
    "day": [0, 7, 0, 3, 7],
    "pages": [1, 2, 3, 4, 5],
    "clicks": [1, 0, 2, 3, 4],
    "satisfaction": [0.5, 0.1, -0.2, 0.3, 0.0],
}


def test_engagement_metrics_by_hand():
    logs = make_logs(
        {"sessions": SESSIONS, "interactions": {"user_id": [0, 1, 1], "rating": [5.0, 2.0, 3.0]}},
        days=9,
    )
    assert value(logs, "clicks_per_user") == pytest.approx(10 / 3)  # 10 clicks, 3 users
    assert value(logs, "mean_rating") == pytest.approx(10 / 3)  # (5 + 2 + 3) / 3 clicks
    assert value(logs, "satisfaction") == pytest.approx(0.7 / 5)  # mean over 5 sessions
    assert value(logs, "retention_d7") == pytest.approx(1 / 2)  # of users {0, 1}, 0 is back
    assert value(logs, "return_rate") == pytest.approx(2 / 3)  # 0 and 1 came back; 2 did not
    for name in ["clicks_per_user", "mean_rating", "satisfaction", "retention_d7"]:
        check_per_user(logs, name)


def test_retention_curve_and_short_runs():
    curve = retention_curve(make_logs({"sessions": SESSIONS}, days=9))
    assert curve["day"].to_list() == list(range(9))
    assert curve["cohort"].unique().to_list() == [2]
    # day 0: both; day 3: user 1; day 7: user 0; other days: nobody
    assert curve["retained"].to_list() == [2, 0, 0, 1, 0, 0, 0, 1, 0]
    assert curve["value"][7] == pytest.approx(0.5)
    # a 5-day run has no day 7: the value is null rather than a misleading 0
    assert value(make_logs({"sessions": SESSIONS}, days=5), "retention_d7") is None


# --- beyond accuracy --------------------------------------------------------------------------

ITEMS_2 = {
    # topic mixtures over 2 topics
    "item_id": [0, 1, 2, 3],
    "creator_id": [0, 0, 1, 1],
    "topic": [0, 1, 0, 0],
    "topics": [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]],
}


def test_intra_list_diversity_by_hand():
    # page 10 (user 0): items 0, 1 -> orthogonal -> ILD 1
    # page 20 (user 1): items 0, 2, 3 -> cos 1, 1/√2, 1/√2 -> ILD 1 − (1 + √2)/3
    # page 30 (user 1): one item -> no pairs, left out
    exposures = {
        "request_id": [10, 10, 20, 20, 20, 30],
        "user_id": [0, 0, 1, 1, 1, 1],
        "item_id": [0, 1, 0, 2, 3, 1],
    }
    logs = make_logs({"items": ITEMS_2, "exposures": exposures})
    second = 1 - (1 + math.sqrt(2)) / 3
    assert value(logs, "intra_list_diversity") == pytest.approx((1 + second) / 2)
    check_per_user(logs, "intra_list_diversity")


def test_novelty_by_hand():
    # 3 active users; item 0 consumed by users 0 and 1: p = (2 + 1)/(3 + 1) = 3/4;
    # item 1 never consumed: p = 1/4 -> 2 bits
    logs = make_logs(
        {
            "items": ITEMS_2,
            "sessions": {"user_id": [0, 1, 2]},
            "interactions": {"user_id": [0, 1, 1], "item_id": [0, 0, 0]},
            "exposures": {"request_id": [1, 1, 2], "user_id": [0, 0, 2], "item_id": [0, 1, 1]},
        }
    )
    expected = (-math.log2(3 / 4) + 2 + 2) / 3
    assert value(logs, "novelty") == pytest.approx(expected)
    check_per_user(logs, "novelty")


def test_serendipity_by_hand():
    # five one-hot topics, item k has topic k. User 0's clicks in time order (topic, rating):
    #  1 (t0, 5) no history: not counted
    #  2 (t0, 5) t0 is top                        -> 0
    #  3 (t1, 5) t1 never clicked: unexpected     -> 1
    #  4 (t1, 3) t1 in top 3 (only t0 above)      -> 0
    #  5 (t2, 5) unexpected, liked                -> 1
    #  6 (t2, 5) above it: t0, t1 (2 < 3)         -> 0
    #  7 (t3, 5) unexpected, liked                -> 1
    #  8 (t3, 4) above it: t0, t1, t2 (3 >= 3)    -> 1
    #  9 (t4, 2) unexpected, not liked            -> 0
    # user 1: (t0, 5) then (t1, 5)                -> 1 of 1 counted
    # 5 serendipitous of 9 counted clicks; rows are given out of time order on purpose
    topics = [0, 0, 1, 1, 2, 2, 3, 3, 4]
    ratings = [5, 5, 5, 3, 5, 5, 5, 4, 2]
    order = [8, 0, 5, 2, 7, 1, 3, 6, 4]
    interactions = {
        "request_id": [order[i] for i in range(9)] + [100, 101],
        "user_id": [0] * 9 + [1, 1],
        "time": [float(order[i]) for i in range(9)] + [0.5, 3.5],
        "item_id": [topics[order[i]] for i in range(9)] + [0, 1],
        "rating": [float(ratings[order[i]]) for i in range(9)] + [5.0, 5.0],
    }
    items = {
        "item_id": list(range(5)),
        "topic": list(range(5)),
        "topics": [one_hot(t, 5) for t in range(5)],
    }
    logs = make_logs({"items": items, "interactions": interactions})
    assert value(logs, "serendipity") == pytest.approx(5 / 9)
    users = dict(
        compute_user_metrics(logs, ["serendipity"])
        .select("user_id", pl.col("num") / pl.col("den"))
        .iter_rows()
    )
    assert users == {0: pytest.approx(4 / 8), 1: pytest.approx(1.0)}


def test_calibration_by_hand():
    # user 0: history item 0 -> p = (1, 0); served items 0, 1 -> q = (0.5, 0.5);
    #   q̃ = 0.99 q + 0.01 p = (0.505, 0.495); KL = 1 · ln(1 / 0.505)
    # user 1: history and served item 3 -> p = q -> KL 0; user 2 never clicked: left out
    logs = make_logs(
        {
            "items": ITEMS_2,
            "interactions": {"user_id": [0, 1], "item_id": [0, 3]},
            "exposures": {"request_id": [1, 1, 2, 3], "user_id": [0, 0, 1, 2],
                          "item_id": [0, 1, 3, 0]},
        }
    )  # fmt: skip
    assert value(logs, "calibration_kl") == pytest.approx(math.log(1 / 0.505) / 2)
    check_per_user(logs, "calibration_kl")


POPULARITY = {
    # clicks: item 0 ×6, item 1 ×3, item 2 ×1 (10 in all); items 3, 4 never clicked.
    # head (top block reaching 80%): item 0 (0 before), item 1 (6 before < 8); item 2 has 9
    # before -> tail. shares: 0.6, 0.3, 0.1, 0, 0.
    "items": {
        "item_id": [0, 1, 2, 3, 4],
        "topic": [0, 0, 0, 0, 0],
        "topics": [[1.0]] * 5,
        "quality": [3.0, 0.0, 2.0, 1.0, -1.0],  # median 1: items 0 (head), 2 (tail) are good
    },
    "interactions": {"user_id": [0] * 10, "item_id": [0] * 6 + [1] * 3 + [2]},
    # pages: [0, 3], [1, 2, 4], [0, 1]
    "exposures": {
        "request_id": [1, 1, 2, 2, 2, 3, 3],
        "user_id": [0, 0, 1, 1, 1, 2, 2],
        "item_id": [0, 3, 1, 2, 4, 0, 1],
    },
}


def test_popularity_bias_by_hand():
    logs = make_logs(POPULARITY)
    # ARP: page means of shares (0.6 + 0)/2, (0.3 + 0.1 + 0)/3, (0.6 + 0.3)/2
    assert value(logs, "arp") == pytest.approx((0.3 + 0.4 / 3 + 0.45) / 3)
    # APLT: tail shares 1/2, 2/3, 0
    assert value(logs, "aplt") == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # PopREO: good head item 0 shown twice, good tail item 2 once: |2 − 1| / (2 + 1)
    assert value(logs, "pop_reo") == pytest.approx(1 / 3)
    check_per_user(logs, "arp")
    check_per_user(logs, "aplt")


# --- fairness and regret ----------------------------------------------------------------------


def test_exposure_merit_by_hand():
    # exposures per creator [1, 3, 2, 0], quality [0.1, 0.5, 0.9, -1]
    # ranks [2, 4, 3, 1] vs [2, 3, 4, 1]: d² sums to 2 -> 1 − 6·2 / (4·15) = 0.8
    logs = make_logs(
        {
            "creators": {"creator_id": [0, 1, 2, 3], "quality": [0.1, 0.5, 0.9, -1.0]},
            "exposures": {"creator_id": [0, 1, 1, 1, 2, 2]},
        }
    )
    assert value(logs, "exposure_merit") == pytest.approx(0.8)


ATTENTION = {
    # two pages of two slots. Slot 0 is always examined, slot 1 on one page of two: w = (1, 0.5)
    # page 1 (user 0): item A (0) at slot 0 with U = 0, item B (1) at slot 1 with U = 1
    # page 2 (user 1): item B at slot 0 with U = ln 3, item A at slot 1 with U = 0
    "exposures": {
        "request_id": [1, 1, 2, 2],
        "user_id": [0, 0, 1, 1],
        "position": [0, 1, 0, 1],
        "item_id": [0, 1, 1, 0],
        "examined": [True, True, True, False],
        "true_utility": [0.0, 1.0, math.log(3), 0.0],
    }
}


def test_attention_unfairness_by_hand():
    logs = make_logs(ATTENTION)
    # attention per page (2/3, 1/3); relevance softmax: page 1 (1/(1+e), e/(1+e)), page 2 (3/4, 1/4)
    e = math.e
    a_gap = abs((2 / 3 + 1 / 3) - (1 / (1 + e) + 1 / 4))
    b_gap = abs((1 / 3 + 2 / 3) - (e / (1 + e) + 3 / 4))
    assert value(logs, "attention_unfairness") == pytest.approx((a_gap + b_gap) / 2)


def test_page_utility_and_ranking_regret_by_hand():
    logs = make_logs(ATTENTION)
    # page 1: served 1·0 + 0.5·1 = 0.5, best 1·1 + 0.5·0 = 1 -> regret 0.5
    # page 2: served 1·ln3 + 0.5·0, already the best order -> regret 0
    assert value(logs, "page_utility") == pytest.approx((0.5 + math.log(3)) / 2)
    assert value(logs, "ranking_regret") == pytest.approx(0.25)
    check_per_user(logs, "page_utility")
    check_per_user(logs, "ranking_regret")


def test_activity_gap_by_hand():
    # sessions per user: u0 1, u1 1, u2 2, u3 2, u4 3, u5 3 -> tertiles {0,1}, {2,3}, {4,5}
    # mean satisfaction: u0 0.0, u1 0.2 (low third 0.1); u4 0.7, u5 1.0 (high third 0.85)
    sessions = {
        "user_id": [0, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5],
        "satisfaction": [0.0, 0.2, 9.0, 9.0, -9.0, -9.0, 0.5, 0.7, 0.9, 1.0, 1.0, 1.0],
    }
    assert value(make_logs({"sessions": sessions}), "activity_gap") == pytest.approx(0.75)


def test_every_metric_has_documentation_and_a_test_here():
    tested = {
        "ctr", "consumption_per_session", "session_length", "return_rate", "coverage",
        "item_gini", "creator_gini",  # hand-checked in test_analysis.py
        "clicks_per_user", "mean_rating", "satisfaction", "retention_d7",
        "intra_list_diversity", "novelty", "serendipity", "calibration_kl", "arp", "aplt",
        "pop_reo", "exposure_merit", "attention_unfairness", "activity_gap", "page_utility",
        "ranking_regret",
        # hand-checked in test_metrics_longterm.py
        "homogenization", "homogenization_first10", "entropy_trend", "taste_drift",
        "creator_time_to_exposure", "item_exposure_unfairness", "creator_exposure_unfairness",
        "creator_envy",
        # hand-checked in test_creator_strategies.py
        "creator_churn", "active_creators_end", "topic_drift_to_popular",
        # hand-checked in test_conversation.py
        "conv_success_rate", "conv_turns_to_success", "conv_target_recall",
        "conv_patience_exits", "conv_questions_per_success",
        # hand-checked in test_talk_and_sources.py
        "social_consumption_share", "cascade_size", "cascade_depth_max", "cascade_multi_share",
        "talk_per_user", "click_gini", "source_bias", "source_rank_gap", "ai_exposure_share",
        "ai_catalog_share_end", "ai_creator_share_end", "aigc_dominant_periods",
        # hand-checked in test_paper_mechanisms.py
        "return_1d", "return_7d", "active_days", "instructions_per_session", "instruction_heard",
        "clicks_per_page_novel", "clicks_per_page_routine",
    }  # fmt: skip
    assert set(METRICS) == tested
    for metric in METRICS.values():
        assert metric.description and metric.formula


def test_compare_on_logs_uses_users_for_per_user_metrics():
    # one replicate, two arms, 40 users with 5 exposures each; arm b clicks one more item per
    # user. CTR (a ratio of per-user sums) gets a user CI; item Gini has none (1 replicate).
    users = [u for u in range(40) for _ in range(5)]
    clicks_a = [(u + j) % 5 == 0 for u in range(40) for j in range(5)]
    clicks_b = [(u + j) % 5 in (0, 1) for u in range(40) for j in range(5)]
    items = {"item_id": list(range(5)), "topics": [[1.0]] * 5}

    def cell(clicked: list[bool]) -> dict:
        exposures = {"user_id": users, "item_id": [i % 5 for i in range(200)], "clicked": clicked}
        return {"exposures": exposures, "items": items}

    logs = make_run({("a", 0): cell(clicks_a), ("b", 0): cell(clicks_b)})
    frame = compare(logs, metrics=["ctr", "item_gini"])
    ctr = frame.filter(metric="ctr", arm="b").row(0, named=True)
    assert ctr["ci_over"] == "users" and ctr["delta"] == pytest.approx(0.2)
    # every user moved by exactly 1/5: the paired user bootstrap has no spread at all
    assert ctr["delta_ci_low"] == pytest.approx(0.2) and ctr["delta_ci_high"] == pytest.approx(0.2)
    gini_row = frame.filter(metric="item_gini", arm="b").row(0, named=True)
    assert gini_row["ci_over"] == "replicates" and gini_row["delta_ci_low"] is None
