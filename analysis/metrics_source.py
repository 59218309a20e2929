"""Metrics of item source (human- vs AI-generated content; agents/creators/ai_adoption.py).

* ``source_bias``: how much more a recommender shows AI items than the catalog holds them:
  mean over exposures of (1[item is AI] − AI share of the catalog on that day). 0 = impartial.
* ``source_rank_gap``: matched comparison on the same page. For every page and topic with both
  an AI and a human item of that dominant topic, mean position of the human items minus mean
  position of the AI items; > 0 means the AI item was ranked above its human match.
* ``ai_exposure_share`` / ``ai_catalog_share_end`` / ``ai_creator_share_end``: where the
  ecosystem stands; ``ecosystem_phases`` labels each review period HGC-dominant, coexistence or
  AIGC-dominant by the AI share of exposure.
"""

from __future__ import annotations

import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import CELL, VALUE_SCHEMA, Metric
from recarena.simulator.core.types import DAY

PHASES = ("HGC-dominant", "coexistence", "AIGC-dominant")
PHASE_CUTS = (1 / 3, 2 / 3)
"""AI share of exposure below 1/3: HGC-dominant; above 2/3: AIGC-dominant; else coexistence."""

ZHOU = "Zhou et al., Source Echo Chamber (source bias in the feedback loop), KDD 2024"


def _is_ai(logs: RunLogs) -> pl.LazyFrame:
    return logs.item_sources.select(
        *CELL, "item_id", "created_at", (pl.col("source") == "ai").cast(pl.Float64).alias("ai")
    )


def _empty_if_none(frame: pl.DataFrame) -> pl.DataFrame:
    return frame if frame.height else pl.DataFrame(schema=VALUE_SCHEMA)


def catalog_share_by_day(logs: RunLogs) -> pl.LazyFrame:
    """``arm, rep, day, catalog_ai``: AI share of the items published by the end of each day."""
    days = logs.exposures.select(*CELL, "day").unique()
    items = _is_ai(logs).with_columns((pl.col("created_at") // DAY).cast(pl.Int32).alias("born"))
    per_day = items.group_by([*CELL, "born"]).agg(pl.len().alias("n"), pl.col("ai").sum())
    joined = days.join(per_day, on=CELL, how="inner").filter(pl.col("born") <= pl.col("day"))
    return joined.group_by([*CELL, "day"]).agg(
        (pl.col("ai").sum() / pl.col("n").sum()).alias("catalog_ai")
    )


def source_bias(logs: RunLogs) -> pl.DataFrame:
    exposed = (
        logs.exposures.select(*CELL, "day", "item_id")
        .join(_is_ai(logs).select(*CELL, "item_id", "ai"), on=[*CELL, "item_id"], how="inner")
        .join(catalog_share_by_day(logs), on=[*CELL, "day"], how="left")
    )
    return _empty_if_none(
        exposed.group_by(CELL)
        .agg((pl.col("ai") - pl.col("catalog_ai")).mean().alias("value"))
        .collect()
    )


def source_rank_gap(logs: RunLogs) -> pl.DataFrame:
    page = ["arm", "rep", "request_id", "topic"]
    shown = (
        logs.exposures.select(*CELL, "request_id", "item_id", "position")
        .join(_is_ai(logs).select(*CELL, "item_id", "ai"), on=[*CELL, "item_id"], how="inner")
        .join(logs.items.select(*CELL, "item_id", "topic"), on=[*CELL, "item_id"], how="left")
    )
    groups = (
        shown.group_by(page)
        .agg(
            pl.col("position").filter(pl.col("ai") == 1).mean().alias("ai_pos"),
            pl.col("position").filter(pl.col("ai") == 0).mean().alias("human_pos"),
        )
        .drop_nulls(["ai_pos", "human_pos"])
    )
    return _empty_if_none(
        groups.group_by(CELL)
        .agg((pl.col("human_pos") - pl.col("ai_pos")).mean().alias("value"))
        .collect()
    )


def ai_exposure_share(logs: RunLogs) -> pl.DataFrame:
    exposed = logs.exposures.select(*CELL, "item_id").join(
        _is_ai(logs).select(*CELL, "item_id", "ai"), on=[*CELL, "item_id"], how="inner"
    )
    return _empty_if_none(exposed.group_by(CELL).agg(pl.col("ai").mean().alias("value")).collect())


def ai_catalog_share_end(logs: RunLogs) -> pl.DataFrame:
    return _empty_if_none(
        _is_ai(logs).group_by(CELL).agg(pl.col("ai").mean().alias("value")).collect()
    )


def _last_period(logs: RunLogs) -> pl.LazyFrame:
    periods = logs.source_periods
    return periods.filter(pl.col("period") == pl.col("period").max().over(CELL))


def ai_creator_share_end(logs: RunLogs) -> pl.DataFrame:
    last = _last_period(logs).select(
        *CELL, (pl.col("ai_creators") / pl.col("active_creators")).alias("value")
    )
    return _empty_if_none(last.collect())


def ecosystem_phases(logs: RunLogs) -> pl.DataFrame:
    """``arm, rep, period, day, ai_exposure_share, ai_item_share, ai_creator_share, phase``."""
    low, high = PHASE_CUTS
    share = pl.col("ai_exposure") / pl.col("exposure")
    return (
        logs.source_periods.filter(pl.col("exposure") > 0)
        .select(
            *CELL, "period", "day",
            share.alias("ai_exposure_share"),
            (pl.col("ai_items") / pl.col("items")).alias("ai_item_share"),
            (pl.col("ai_creators") / pl.col("active_creators")).alias("ai_creator_share"),
        )
        .with_columns(
            pl.when(pl.col("ai_exposure_share") < low).then(pl.lit(PHASES[0]))
            .when(pl.col("ai_exposure_share") > high).then(pl.lit(PHASES[2]))
            .otherwise(pl.lit(PHASES[1])).alias("phase")
        )
        .sort(*CELL, "period")
        .collect()
    )  # fmt: skip


def aigc_dominant_periods(logs: RunLogs) -> pl.DataFrame:
    """Share of review periods in the AIGC-dominant phase."""
    phases = ecosystem_phases(logs)
    if phases.height == 0:
        return pl.DataFrame(schema=VALUE_SCHEMA)
    return phases.group_by(CELL).agg(
        (pl.col("phase") == PHASES[2]).cast(pl.Float64).mean().alias("value")
    )


METRICS_SOURCE = [
    Metric("source_bias", "AI items shown beyond their catalog share",
           "mean over exposures of 1[AI] − AI share of the catalog that day (0 = impartial)",
           False, source_bias, ZHOU),
    Metric("source_rank_gap", "AI item ranked above its same-topic human match",
           "mean over (page, topic) with both sources of mean human position − mean AI "
           "position (> 0: AI first)", False, source_rank_gap, ZHOU),
    Metric("ai_exposure_share", "share of exposures on AI items", "AI exposures / exposures",
           False, ai_exposure_share, ZHOU),
    Metric("ai_catalog_share_end", "share of the catalog AI-generated at the end",
           "AI items / items", False, ai_catalog_share_end, ZHOU),
    Metric("ai_creator_share_end", "share of active creators on AI at the end",
           "ai_creators / active_creators after the last review", False, ai_creator_share_end,
           ZHOU),
    Metric("aigc_dominant_periods", "review periods in the AIGC-dominant phase",
           "periods with AI exposure share > 2/3 / periods", False, aigc_dominant_periods, ZHOU),
]  # fmt: skip
