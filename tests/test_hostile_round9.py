"""Round nine of the hostile user: scenarios written from the reference pages one feature at a
time, with the mistakes of a new user (units confused, a horizon shrunk below the schedules it
runs, features the docs describe apart combined) and every command with hostile options.

Each case is one line, exit code 2, naming the field, and validate says it before run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_in_process import cli
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round9", days=1)


# ------------------------------------------- creator settings over a horizon with no review
@pytest.mark.parametrize(
    ("creators", "named"),
    [
        (
            {"strategy": {"type": "exposure_chasing"}},
            "creators.strategy: creators review every 7 days (creators.period_days) and "
            "horizon.days is 1, so no review comes before the horizon: creators change their "
            "topic mix only at a review, so none would adapt",
        ),
        (
            {"join_rate_per_period": 2},
            "creators.join_rate_per_period: creators review every 7 days",
        ),
        (
            {"min_exposure": 5, "leave_after_periods": 1, "period_days": 1},
            "creators.leave_after_periods: creators review every 1 days (creators.period_days) "
            "and horizon.days is 1, so no review comes before the horizon: creators leave only "
            "at a review, so none would leave",
        ),
        (
            {"ai": {"initial_share": 0, "base_rate": 0.5}},
            "creators.ai: creators review every 7 days (creators.period_days) and horizon.days "
            "is 1, so no review comes before the horizon: no creator is on AI at the start and "
            "creators adopt AI only at a review, so none would ever be on AI",
        ),
    ],
    ids=["strategy", "joining", "leaving", "ai_adoption"],
)
def test_a_creator_setting_with_no_review_before_the_horizon_is_refused(tmp_path, creators, named):
    """Was: validate ok and a run as if the setting were absent. Reviews come every
    creators.period_days (7 by default) and the horizon's closing review applies nothing, so
    over a 1-day horizon no creator adapted, joined, left or adopted AI (creator_periods held
    the closing rows alone); a short trial run of scenarios/creators.yaml is this case."""
    doc = base_doc(tmp_path)
    doc["creators"] |= creators
    refused_everywhere(tmp_path, doc, named)


@pytest.mark.parametrize(
    "change",
    [
        {"creators": {"count": 2, "period_days": 0.5, "join_rate_per_period": 2}},
        {"creators": {"count": 2, "ai": {"initial_share": 0.5}}},  # AI from the start
        {
            "creators": {"count": 2, "strategy": {"type": "exposure_chasing"}},
            "sweep": {"horizon.days": [1, 8]},  # a point with a review
        },
    ],
    ids=["shorter_period", "ai_at_start", "sweep_point_with_a_review"],
)
def test_a_creator_setting_with_a_review_still_passes(tmp_path, change):
    doc = base_doc(tmp_path)
    for key, value in change.items():
        doc[key] = doc.get(key, {}) | value if key == "creators" else value
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------------------------------------- creators' reviews between ticks
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"creators": {"period_days": 0.002, "min_exposure": 1, "leave_after_periods": 2}},
            "creators.period_days: a review every 0.002 days (172.8 s) is more often than a "
            "tick (horizon.tick_seconds 600), and impressions are counted only at ticks",
        ),
        (
            {
                "creators": {"period_days": 0.01},
                "sweep": {"horizon.tick_seconds": [600, 1200]},
            },
            "sweep point 1 (horizon.tick_seconds=1200): creators.period_days: a review every "
            "0.01 days (864 s) is more often than a tick",
        ),
    ],
    ids=["leaving", "sweep_point"],
)
def test_creator_reviews_more_often_than_a_tick_are_refused(tmp_path, change, named):
    """Was: validate ok and every creator retired before a user saw a page. With 10-minute
    ticks and a review every 0.002 days the first periods ended before the first page, so each
    read as a period without exposure, and leave_after_periods: 2 with min_exposure 1 made every
    creator leave on day 0.004; a refit more often than a tick was already refused."""
    doc = base_doc(tmp_path)
    for key, value in change.items():
        doc[key] = doc[key] | value if key == "creators" else value
    refused_everywhere(tmp_path, doc, named)


def test_creator_reviews_a_tick_apart_still_pass(tmp_path):
    doc = base_doc(tmp_path)
    doc["creators"] |= {"period_days": 600 / 86400, "min_exposure": 1, "leave_after_periods": 2}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
