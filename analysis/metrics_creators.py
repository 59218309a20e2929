"""Creator ecosystem metrics from the ``creator_periods`` table (see agents/creator_dynamics.py).

Churn and the count of active creators say whether a recommender keeps its supply side alive;
``topic_drift_to_popular`` says whether adaptive creators follow the exposure the recommender
hands out, i.e. whether the recommender homogenises what gets made.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.load import RunLogs
from analysis.metrics_base import CELL, VALUE_SCHEMA, Metric


def creator_churn(logs: RunLogs) -> pl.DataFrame:
    """Share of all creators (initial and joined) who had left by the last period."""
    last = logs.creator_periods.group_by([*CELL, "creator_id"]).agg(
        pl.col("active").sort_by("period").last()
    )
    return (
        last.group_by(CELL)
        .agg((~pl.col("active")).cast(pl.Float64).mean().alias("value"))
        .collect()
    )


def active_creators_end(logs: RunLogs) -> pl.DataFrame:
    """Creators still uploading after the last period."""
    periods = logs.creator_periods
    final = periods.filter(pl.col("period") == pl.col("period").max().over(CELL))
    return (
        final.group_by(CELL).agg(pl.col("active").cast(pl.Float64).sum().alias("value")).collect()
    )


def exposure_topic_share(logs: RunLogs) -> pl.DataFrame:
    """Per cell and topic: share of the cell's exposures on items with that dominant topic."""
    exposed = logs.exposures.select(*CELL, "item_id").join(
        logs.items.select(*CELL, "item_id", "topic"), on=[*CELL, "item_id"], how="left"
    )
    counts = exposed.group_by([*CELL, "topic"]).agg(pl.len().alias("n"))
    return (
        counts.with_columns((pl.col("n") / pl.col("n").sum().over(CELL)).alias("share"))
        .select(*CELL, "topic", "share")
        .collect()
    )


def topic_drift_to_popular(logs: RunLogs) -> pl.DataFrame:
    """Mean over creators of (mix_last − mix_first) · g, g = the cell's exposure share by topic.

    Positive: creators moved toward the topics the recommender exposed most. A creator's first
    and last logged mixes are used (creators with one period only are left out). Units: change
    in the exposure share of the creator's expected topic.
    """
    periods = logs.creator_periods.select(*CELL, "creator_id", "period", "topic_mix").collect()
    shares = exposure_topic_share(logs)
    rows = []
    for (arm, rep), group in periods.group_by(CELL, maintain_order=True):
        share = shares.filter(arm=arm, rep=rep)
        n_topics = len(group["topic_mix"][0])
        g = np.zeros(n_topics)
        g[share["topic"].to_numpy()] = share["share"].to_numpy()
        ends = (
            group.sort("period")
            .group_by("creator_id", maintain_order=True)
            .agg(
                pl.col("topic_mix").first().alias("first"),
                pl.col("topic_mix").last().alias("last"),
                pl.len().alias("n"),
            )
            .filter(pl.col("n") >= 2)
        )
        if ends.height == 0:
            rows.append({"arm": arm, "rep": rep, "value": None})
            continue
        first = np.array(ends["first"].to_list(), np.float64)
        last = np.array(ends["last"].to_list(), np.float64)
        rows.append({"arm": arm, "rep": rep, "value": float(((last - first) @ g).mean())})
    return pl.DataFrame(rows, schema=VALUE_SCHEMA)


METRICS_CREATORS = [
    Metric("creator_churn", "share of creators who left by the end",
           "creators inactive in their last period / all creators (initial and joined)", False,
           creator_churn),
    Metric("active_creators_end", "creators still uploading at the end",
           "count of creators active after the last review", True, active_creators_end),
    Metric("topic_drift_to_popular", "creators' topic mixes moving toward the exposed topics",
           "mean over creators of (mix_last − mix_first) · g, g_t = cell exposure share of "
           "items with dominant topic t", False, topic_drift_to_popular),
]  # fmt: skip
