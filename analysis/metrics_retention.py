"""Retention, instructions, novelty intent and arm preference (the paper reproductions).

* **return_1d / return_7d**: share of sessions after which the same user starts another
  session within 1 (7) days of the session's end. Sessions ending less than the window before
  the horizon are left out (we cannot see whether they were followed), so early and late
  sessions are not mixed up with churn. Per-user ratio: Σ followed / Σ observable sessions.
* **active_days**: days with at least one session, per user who had a session.
* **instructions_per_session**: instructions logged / sessions (population.instructions).
* **instruction_heard**: share of instructions whose next page (same session) got a click: did
  the recommender give the user what it asked for?
* **clicks_per_page_novel / clicks_per_page_routine**: clicks per page in sessions with and without
  novelty-seeking intent (the sessions table's ``explore`` flag, truth).
* :func:`arm_preference`: the share of long-term users who did better under one arm than under
  another. With common random numbers every user exists in every arm, so a user's two
  experiences can be compared directly, as a side-by-side user study would.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from recarena.analysis.load import RunLogs, require_one_world
from recarena.analysis.metrics_base import USER, Metric, from_user_ratio, user_ratio
from recarena.analysis.metrics_engagement import _horizon_days
from recarena.simulator.core.types import DAY

RETURN_WINDOWS = {"return_1d": 1.0, "return_7d": 7.0}
"""The window in days of each return metric: only sessions ending that long before the horizon
count, so a horizon no longer than it leaves the metric without a value (checked up front)."""


def _return_within(days: float):
    window = days * DAY

    def per_user(logs: RunLogs) -> pl.DataFrame:
        horizon = _horizon_days(logs) * DAY
        sessions = logs.sessions.select(*USER, "start_time", "end_time").sort(*USER, "start_time")
        following = pl.col("start_time").shift(-1).over(USER)
        frame = sessions.with_columns(following.alias("next_start")).filter(
            pl.col("end_time") + window <= horizon
        )
        followed = (pl.col("next_start") - pl.col("end_time")) <= window
        return user_ratio(frame, followed.fill_null(False).sum(), pl.len())

    return per_user


def active_days_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.sessions, pl.col("day").n_unique(), pl.lit(1.0))


def instructions_per_session_users(logs: RunLogs) -> pl.DataFrame:
    spoken = logs.instructions.group_by(USER).agg(pl.len().alias("said"))
    frame = logs.sessions.join(spoken, on=USER, how="left")
    counts = (
        frame.group_by(USER)
        .agg(pl.col("said").first().fill_null(0).alias("num"), pl.len().alias("den"))
        .with_columns(pl.col("num").cast(pl.Float64), pl.col("den").cast(pl.Float64))
    )
    return counts.collect()


def instruction_heard_users(logs: RunLogs) -> pl.DataFrame:
    """Instructions joined to the next page of their session: was anything clicked?"""
    pages = logs.exposures.group_by("arm", "rep", "request_id").agg(
        pl.col("clicked").any().alias("clicked_next")
    )
    asked = logs.instructions.select(*USER, (pl.col("request_id") + 1).alias("request_id")).join(
        pages, on=["arm", "rep", "request_id"], how="left"
    )
    return user_ratio(asked, pl.col("clicked_next").fill_null(False).sum(), pl.len())


def _ctr_sessions(novel: bool):
    def per_user(logs: RunLogs) -> pl.DataFrame:
        frame = logs.sessions.filter(pl.col("explore") == novel)
        return user_ratio(frame, pl.col("clicks").sum(), pl.col("pages").sum())

    return per_user


def _ratio(name: str, description: str, formula: str, higher: bool, per_user, ref: str = ""):
    return Metric(name, description, formula, higher, from_user_ratio(per_user), ref, per_user)


RECOWORLD = "Meta, RecoWorld: agentic simulated environments for recommender systems, 2025"

METRICS_RETENTION = [
    _ratio("return_1d", "share of sessions followed by another within 1 day",
           "sessions with the user's next session starting <= 1 day after the end / sessions "
           "ending >= 1 day before the horizon", True, _return_within(RETURN_WINDOWS["return_1d"]),
           RECOWORLD),
    _ratio("return_7d", "share of sessions followed by another within 7 days",
           "as return_1d with a 7-day window", True, _return_within(RETURN_WINDOWS["return_7d"]),
           RECOWORLD),
    _ratio("active_days", "days with a session, per active user",
           "mean over users with >= 1 session of distinct session days", True,
           active_days_users, "Interest Clock (active days)"),
    _ratio("instructions_per_session", "instructions users gave, per session",
           "instructions / sessions", False, instructions_per_session_users, RECOWORLD),
    _ratio("instruction_heard", "share of instructions answered with a clicked next page",
           "instructions whose session's next page had a click / instructions", True,
           instruction_heard_users, RECOWORLD),
    _ratio("clicks_per_page_novel", "clicks per page in novelty-seeking sessions (truth)",
           "Σ clicks / Σ pages over sessions with explore = true", True, _ctr_sessions(True)),
    _ratio("clicks_per_page_routine", "clicks per page in routine sessions (truth)",
           "Σ clicks / Σ pages over sessions with explore = false", True, _ctr_sessions(False)),
]  # fmt: skip


def arm_preference(
    logs: RunLogs,
    arm: str,
    baseline: str,
    min_days: int = 7,
    value: str = "clicks_per_session",
) -> pl.DataFrame:
    """Per replicate: the share of long-term users who did better under ``arm``.

    A long-term user has sessions on at least ``min_days`` distinct days under *both* arms. A
    user's value is clicks per session (``clicks_per_session``) or mean post-session
    satisfaction (``satisfaction``) over the run; a tie counts as half. Returns
    ``rep, users, favour_arm`` (the share) and ``mean_gap`` (arm − baseline, mean over users).
    """
    require_one_world(logs, "arm_preference")
    expr = {
        "clicks_per_session": pl.col("clicks").sum() / pl.len(),
        "satisfaction": pl.col("satisfaction").mean(),
    }[value]
    per_user = (
        logs.sessions.filter(pl.col("arm").is_in([arm, baseline]))
        .group_by("arm", "rep", "user_id")
        .agg(expr.cast(pl.Float64).alias("value"), pl.col("day").n_unique().alias("days"))
        .collect()
    )
    mine = per_user.filter(pl.col("arm") == arm).drop("arm")
    theirs = per_user.filter(pl.col("arm") == baseline).drop("arm")
    paired = mine.join(theirs, on=["rep", "user_id"], suffix="_base").filter(
        (pl.col("days") >= min_days) & (pl.col("days_base") >= min_days)
    )
    score = (
        pl.when(pl.col("value") > pl.col("value_base"))
        .then(1.0)
        .when(pl.col("value") < pl.col("value_base"))
        .then(0.0)
        .otherwise(0.5)
    )
    return (
        paired.group_by("rep")
        .agg(
            pl.len().alias("users"),
            score.mean().alias("favour_arm"),
            (pl.col("value") - pl.col("value_base")).mean().alias("mean_gap"),
        )
        .sort("rep")
    )


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t confidence interval over replicates (NaN interval for one)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    from scipy import stats  # scipy.stats costs ~1 s to import; only this interval needs it

    half = float(stats.t.ppf(0.5 + level / 2, values.size - 1) * stats.sem(values))
    return mean, mean - half, mean + half
