"""The numbers behind ``recarena report``: daily series, Lorenz curves and per-slot CTR.

Kept apart from the plotting and the HTML so each figure's data can be tested against hand
computations, and so a notebook can use the same frames without matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics import gini
from recarena.analysis.metrics_base import counts_over

CELL = ["arm", "rep"]
LORENZ_POINTS = 101
SERIES_COLUMNS = ["ctr", "coverage", "item_gini", "creators_exposed"]


def lorenz_curve(counts: np.ndarray, points: int = LORENZ_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of non-negative counts on an even grid of population shares.

    Returns (x, y): x = share of units (poorest first), y = share of the total they hold. Zeros
    count as units, so items never shown pull the curve down. All-zero counts give the diagonal
    (no inequality to show).
    """
    x_grid = np.linspace(0.0, 1.0, points)
    values = np.sort(np.asarray(counts, dtype=np.float64))
    total = values.sum()
    if values.shape[0] == 0 or total == 0:
        return x_grid, x_grid.copy()
    x = np.arange(values.shape[0] + 1) / values.shape[0]
    y = np.concatenate([[0.0], np.cumsum(values) / total])
    return x_grid, np.interp(x_grid, x, y)


def padded_gini(counts: np.ndarray, population: int) -> float:
    """Gini over ``population`` units of which only those in ``counts`` are non-zero."""
    zeros = max(0, population - counts.shape[0])
    return gini(np.concatenate([np.zeros(zeros), np.asarray(counts, dtype=np.float64)]))


def daily_series(logs: RunLogs) -> pl.DataFrame:
    """One row per (arm, rep, day): CTR, coverage, item exposure Gini, creators exposed.

    * ``ctr``: clicks / impressions that day;
    * ``coverage``: distinct items exposed that day / items published by the end of the day;
    * ``item_gini``: Gini of that day's exposure counts over every published item (zeros in);
    * ``creators_exposed``: share of creators with at least one exposure that day. The creators
      table holds only end-of-run totals, so per-day creator activity comes from exposures.
    """
    daily = logs.daily.select(*CELL, "day", "impressions", "clicks", "catalog_size").collect()
    per_item = (
        logs.exposures.group_by(*CELL, "day", "item_id")
        .agg(pl.len().alias("n"))
        .collect()
        .sort(*CELL, "day")
    )
    creators = logs.exposures.group_by(*CELL, "day").agg(
        pl.col("creator_id").n_unique().alias("exposed_creators")
    )
    n_creators = logs.creators.group_by(CELL).agg(pl.len().alias("n_creators"))
    catalog = dict(
        zip(
            zip(daily["arm"], daily["rep"], daily["day"], strict=True),
            daily["catalog_size"].to_list(),
            strict=True,
        )
    )
    rows = []
    for (arm, rep, day), group in per_item.group_by(*CELL, "day", maintain_order=True):
        size = int(catalog.get((arm, rep, day), group.height))
        rows.append(
            {
                "arm": arm,
                "rep": rep,
                "day": day,
                "exposed_items": group.height,
                "item_gini": padded_gini(group["n"].to_numpy(), size),
            }
        )
    exposure_stats = pl.DataFrame(
        rows,
        schema={
            "arm": pl.Utf8,
            "rep": pl.Int32,
            "day": pl.Int32,
            "exposed_items": pl.Int64,
            "item_gini": pl.Float64,
        },
    )
    creator_share = (
        creators.join(n_creators, on=CELL, how="left")
        .select(
            *CELL,
            pl.col("day").cast(pl.Int32),
            (pl.col("exposed_creators") / pl.col("n_creators")).alias("creators_exposed"),
        )
        .collect()
    )
    return (
        daily.with_columns(pl.col("day").cast(pl.Int32))
        .join(exposure_stats, on=[*CELL, "day"], how="left")
        .join(creator_share, on=[*CELL, "day"], how="left")
        .select(
            *CELL,
            "day",
            pl.when(pl.col("impressions") > 0)
            .then(pl.col("clicks") / pl.col("impressions"))
            .alias("ctr"),
            (pl.col("exposed_items").fill_null(0) / pl.col("catalog_size")).alias("coverage"),
            pl.col("item_gini"),
            pl.col("creators_exposed").fill_null(0.0),
        )
        .sort(*CELL, "day")
    )


def mean_over_reps(series: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Per (arm, day): mean, min and max over replicates of each column."""
    aggs = []
    for c in columns:
        aggs += [
            pl.col(c).mean().alias(c),
            pl.col(c).min().alias(f"{c}_min"),
            pl.col(c).max().alias(f"{c}_max"),
        ]
    return series.group_by("arm", "day").agg(aggs).sort("arm", "day")


@dataclass(frozen=True)
class Lorenz:
    """An arm's exposure Lorenz curve (mean over replicates) and mean Gini."""

    arm: str
    x: np.ndarray
    y: np.ndarray
    gini: float | None
    """None when no replicate of the arm logged an exposure (x and y are then the diagonal)."""


def exposure_lorenz(logs: RunLogs, key: str) -> list[Lorenz]:
    """Lorenz curves of exposure over all items (``item_id``) or creators (``creator_id``).

    Replicates without any exposure have no curve (their Gini is 0/0) and are left out of the
    mean; an arm with none at all gets ``gini=None``.
    """
    population = logs.items if key == "item_id" else logs.creators
    full = counts_over(logs.exposures, key, population)
    curves: dict[str, list[tuple[np.ndarray, np.ndarray, float]]] = {}
    for (arm, _rep), group in full.group_by(CELL, maintain_order=True):
        values = group["n"].to_numpy()
        x, y = lorenz_curve(values)
        curves.setdefault(arm, [])
        if values.any():
            curves[arm].append((x, y, gini(values)))
    result = []
    for arm in logs.arms:
        if arm not in curves:
            continue
        reps = curves[arm]
        if not reps:
            x, y = lorenz_curve(np.zeros(0))
            result.append(Lorenz(arm, x, y, None))
            continue
        ys = np.mean([y for _, y, _ in reps], axis=0)
        result.append(Lorenz(arm, reps[0][0], ys, float(np.mean([g for _, _, g in reps]))))
    return result


def surface_kinds(logs: RunLogs) -> dict[str, str]:
    """Each arm's surface type ("list" or "carousel") from the resolved scenario."""
    scenario = logs.scenario  # a sweep point's own (a swept surface)
    default = (scenario.get("surface") or {}).get("type", "list")
    kinds = {}
    for arm in scenario.get("arms", []):
        kinds[arm["name"]] = (arm.get("surface") or {}).get("type", default)
    return {arm: kinds.get(arm, default) for arm in logs.arms}
