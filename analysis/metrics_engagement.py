"""Engagement: clicks, consumption, sessions, returns, retention, ratings, satisfaction.

The logs have no dwell time (a click consumes the whole item), so consumption is measured in
items consumed and in the rating the user gives afterwards.
"""

from __future__ import annotations

import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import CELL, USER, empty_users, from_user_ratio, user_ratio

RETENTION_DAY = 7


def ctr_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.exposures, pl.col("clicked").sum(), pl.len())


def consumption_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.sessions, pl.col("clicks").sum(), pl.len())


def session_length_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.sessions, pl.col("pages").sum(), pl.len())


def return_rate_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.sessions, pl.col("day").n_unique() >= 2, pl.lit(1.0))


def clicks_per_user_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.sessions, pl.col("clicks").sum(), pl.lit(1.0))


def rating_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.interactions, pl.col("rating").sum(), pl.len())


def satisfaction_users(logs: RunLogs) -> pl.DataFrame:
    return user_ratio(logs.sessions, pl.col("satisfaction").sum(), pl.len())


def _horizon_days(logs: RunLogs) -> int:
    """Days simulated: from the resolved scenario, else one past the last day with a session."""
    days = logs.scenario.get("horizon", {}).get("days")  # a sweep point's own horizon
    if days is not None:
        return int(days)
    last = logs.sessions.select(pl.col("day").max()).collect().item()
    return 0 if last is None else int(last) + 1


def retention_curve(logs: RunLogs, cohort_day: int = 0) -> pl.DataFrame:
    """Classic N-day retention of the users active on ``cohort_day``, for every later day.

    One row per (arm, rep, day) with day ≥ cohort_day: ``cohort`` (users with a session on
    ``cohort_day``), ``retained`` (those of them with a session on ``day``) and
    ``value = retained / cohort`` (1 on the cohort day itself).
    """
    active = logs.sessions.select(*CELL, "user_id", "day").unique()
    cohort = active.filter(pl.col("day") == cohort_day).select(*CELL, "user_id")
    sizes = cohort.group_by(CELL).agg(pl.len().cast(pl.Int64).alias("cohort"))
    retained = (
        active.join(cohort, on=USER, how="semi")
        .filter(pl.col("day") >= cohort_day)
        .group_by([*CELL, "day"])
        .agg(pl.len().alias("retained"))
    )
    days = pl.LazyFrame({"day": list(range(cohort_day, max(_horizon_days(logs), cohort_day + 1)))})
    grid = sizes.join(days.with_columns(pl.col("day").cast(pl.Int32)), how="cross")
    return (
        grid.join(retained, on=[*CELL, "day"], how="left")
        .with_columns(pl.col("retained").fill_null(0).cast(pl.Int64))
        .with_columns((pl.col("retained") / pl.col("cohort")).alias("value"))
        .select(*CELL, "day", "cohort", "retained", "value")
        .sort(*CELL, "day")
        .collect()
    )


def retention_users(logs: RunLogs) -> pl.DataFrame:
    """Day-0 users; num = 1 if active on day 7. Empty when the run is shorter than 8 days."""
    if _horizon_days(logs) <= RETENTION_DAY:
        return empty_users()
    per_user = logs.sessions.group_by(USER).agg(
        (pl.col("day") == 0).any().alias("cohort"),
        (pl.col("day") == RETENTION_DAY).any().cast(pl.Float64).alias("num"),
    )
    return (
        per_user.filter(pl.col("cohort")).select(*USER, "num", pl.lit(1.0).alias("den")).collect()
    )


def retention(logs: RunLogs) -> pl.DataFrame:
    """``retention_d7`` per cell; null when the run is too short for day 7 to exist."""
    values = from_user_ratio(retention_users)(logs)
    if values.height:
        return values
    cells = logs.sessions.select(*CELL).unique().collect()
    return cells.with_columns(pl.lit(None, pl.Float64).alias("value"))
