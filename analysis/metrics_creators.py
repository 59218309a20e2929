"""Creator ecosystem metrics from the ``creator_periods`` table (see agents/creators/dynamics.py).

Churn and the count of active creators say whether a recommender keeps its supply side alive;
``topic_drift_to_popular`` says whether adaptive creators follow the exposure the recommender
hands out, i.e. whether the recommender homogenises what gets made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recarena.analysis.load import RunLogs, require_one_world
from recarena.analysis.metrics_base import CELL, VALUE_SCHEMA, Metric
from recarena.simulator.core.types import DAY


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


def period_topic_share(
    times: np.ndarray, topics: np.ndarray, review_days: np.ndarray, n_topics: int
) -> np.ndarray:
    """[P, T] exposure share by topic in each review period (rows of periods without any: 0).

    Period p holds the exposures with ``time`` in [review p − 1, review p): a review runs before
    the pages of its own tick, and ``creator_periods.day`` is the day of review p.
    """
    ends = np.asarray(review_days, np.float64) * DAY
    period = np.searchsorted(ends, times, side="right")  # first review strictly after the time
    keep = period < ends.size
    counts = np.zeros((ends.size, n_topics))
    np.add.at(counts, (period[keep], topics[keep]), 1.0)
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


@dataclass(frozen=True)
class Decisions:
    """Every review decision of one cell: who moved, how, and what was exposed at the time."""

    creator: np.ndarray  # [D] creator id
    delta: np.ndarray  # [D, T] mix_{p+1} − mix_p, the move made at the review closing period p
    exposed: np.ndarray  # [D, T] g_p: the cell's exposure share by topic during period p


def review_decisions(logs: RunLogs) -> dict[tuple[str, int], Decisions]:
    """Per cell, the decisions read from consecutive ``creator_periods`` rows of each creator.

    The row logged at review p holds the mix in force during period p, so the next row's mix is
    the one that review chose; ``exposed`` is :func:`period_topic_share` of period p.
    """
    require_one_world(logs, "review_decisions")
    periods = logs.creator_periods.select(
        *CELL, "creator_id", "period", "day", "topic_mix"
    ).collect()
    exposed = (
        logs.exposures.select(*CELL, "item_id", "time")
        .join(logs.items.select(*CELL, "item_id", "topic"), on=[*CELL, "item_id"], how="left")
        .collect()
    )
    out = {}
    for (arm, rep), group in periods.group_by(CELL, maintain_order=True):
        n_topics = len(group["topic_mix"][0])
        reviews = group.group_by("period").agg(pl.col("day").first()).sort("period")
        cell = exposed.filter(arm=arm, rep=rep)
        g = period_topic_share(
            cell["time"].to_numpy(), cell["topic"].to_numpy(), reviews["day"].to_numpy(), n_topics
        )
        group = group.sort("creator_id", "period")
        mixes = np.array(group["topic_mix"].to_list(), np.float64)
        creator = group["creator_id"].to_numpy()
        period = group["period"].to_numpy()
        step = (creator[1:] == creator[:-1]) & (period[1:] == period[:-1] + 1)
        rows = np.flatnonzero(step)
        out[(str(arm), int(rep))] = Decisions(
            creator[rows], mixes[rows + 1] - mixes[rows], g[period[rows]]
        )
    return out


def topic_drift_to_popular(logs: RunLogs) -> pl.DataFrame:
    """Mean over creators of Σ_p (mix_{p+1} − mix_p)·g_p: moves toward the period's exposed topics.

    ``g_p`` is the cell's exposure share by (dominant) topic during period p: what the
    recommender made popular in the period a creator had just reviewed. ``mix_p`` is the mix
    in force during period p (the row logged at review p) and ``mix_{p+1}`` the one the review
    chose, so each term scores one decision against the popularity of its own time. Creators
    with one logged period (no decision) are left out. Units: change in the period exposure
    share of the creator's expected topic; positive = toward what was being exposed.

    Note the ceiling: a creator whose mix is already on the most exposed topic can only score
    ≤ 0, so the sign of one arm's value says less than the difference between arms run on the
    same creators (common random numbers), which is what the claim is about.
    """
    require_one_world(logs, "topic_drift_to_popular")
    rows = []
    for (arm, rep), d in review_decisions(logs).items():
        if d.creator.size == 0:
            rows.append({"arm": arm, "rep": rep, "value": None})
            continue
        score = np.einsum("ij,ij->i", d.delta, d.exposed)
        ids, inverse = np.unique(d.creator, return_inverse=True)
        per_creator = np.bincount(inverse, weights=score, minlength=ids.size)
        rows.append({"arm": arm, "rep": rep, "value": float(per_creator.mean())})
    return pl.DataFrame(rows, schema=VALUE_SCHEMA)


def drift_decomposition(logs: RunLogs) -> pl.DataFrame:
    """``arm, rep, moved, left_share, went_share``: how much creators moved, and from/to where.

    ``moved`` is the mix mass moved per creator over the run (Σ of the positive parts of the
    decisions' Δ, mean over creators who decided); ``left_share`` and ``went_share`` are the
    period exposure shares g_p of the topics that mass left and went to, weighted by mass
    (null when nothing moved). In each cell ``topic_drift_to_popular`` = moved · (went_share −
    left_share), so this separates "creators move less" from "creators move elsewhere".
    """
    require_one_world(logs, "drift_decomposition")
    rows = []
    for (arm, rep), d in review_decisions(logs).items():
        gain, loss = np.clip(d.delta, 0, None), np.clip(-d.delta, 0, None)
        mass = gain.sum()
        creators = np.unique(d.creator).size
        rows.append(
            {
                "arm": arm,
                "rep": rep,
                "moved": float(mass / creators) if creators else None,
                "left_share": float((loss * d.exposed).sum() / mass) if mass > 0 else None,
                "went_share": float((gain * d.exposed).sum() / mass) if mass > 0 else None,
            }
        )
    schema = {"arm": pl.Utf8, "rep": pl.Int32, "moved": pl.Float64, "left_share": pl.Float64,
              "went_share": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


METRICS_CREATORS = [
    Metric("creator_churn", "share of creators who left by the end",
           "creators inactive in their last period / all creators (initial and joined)", False,
           creator_churn),
    Metric("active_creators_end", "creators still uploading at the end",
           "count of creators active after the last review", True, active_creators_end),
    Metric("topic_drift_to_popular", "creators' topic mixes moving toward the exposed topics",
           "mean over creators of Σ_p (mix_{p+1} − mix_p) · g_p, g_p,t = exposure share of "
           "items with dominant topic t in review period p", False, topic_drift_to_popular),
]  # fmt: skip
