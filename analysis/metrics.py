"""Metrics by name. Each computes one value per (arm, rep) cell from the log frames.

Every metric is a plain function over :class:`analysis.load.RunLogs` with its formula in the
registry, so scenarios and ``compare`` can ask for it by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from analysis.load import RunLogs

CELL = ["arm", "rep"]


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, (n−1)/n when one holds all.

    G = Σ_i (2i − n − 1) x_(i) / (n Σ x), with x sorted ascending and i = 1..n.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.shape[0]
    total = x.sum()
    if n == 0 or total == 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(((2 * index - n - 1) * x).sum() / (n * total))


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    formula: str
    higher_is_better: bool
    compute: Callable[[RunLogs], pl.DataFrame]


def _value(frame: pl.LazyFrame, expr: pl.Expr) -> pl.DataFrame:
    return frame.group_by(CELL).agg(expr.cast(pl.Float64).alias("value")).collect()


def _ctr(logs: RunLogs) -> pl.DataFrame:
    return _value(logs.exposures, pl.col("clicked").mean())


def _consumption(logs: RunLogs) -> pl.DataFrame:
    return _value(logs.sessions, pl.col("clicks").mean())


def _session_length(logs: RunLogs) -> pl.DataFrame:
    return _value(logs.sessions, pl.col("pages").mean())


def _return_rate(logs: RunLogs) -> pl.DataFrame:
    days = logs.sessions.group_by([*CELL, "user_id"]).agg(pl.col("day").n_unique().alias("days"))
    return _value(days, (pl.col("days") >= 2).mean())


def _coverage(logs: RunLogs) -> pl.DataFrame:
    exposed = logs.exposures.group_by(CELL).agg(pl.col("item_id").n_unique().alias("exposed"))
    catalog = logs.items.group_by(CELL).agg(pl.len().alias("items"))
    return (
        catalog.join(exposed, on=CELL, how="left")
        .select(*CELL, (pl.col("exposed").fill_null(0) / pl.col("items")).alias("value"))
        .collect()
    )


def _exposure_gini(logs: RunLogs, key: str, population: pl.LazyFrame) -> pl.DataFrame:
    counts = logs.exposures.group_by([*CELL, key]).agg(pl.len().alias("n"))
    full = (
        population.select(*CELL, key)
        .join(counts, on=[*CELL, key], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .collect()
    )
    rows = [
        {"arm": arm, "rep": rep, "value": gini(group["n"].to_numpy())}
        for (arm, rep), group in full.group_by(CELL, maintain_order=True)
    ]
    return pl.DataFrame(rows, schema={"arm": pl.Utf8, "rep": pl.Int32, "value": pl.Float64})


def _item_gini(logs: RunLogs) -> pl.DataFrame:
    return _exposure_gini(logs, "item_id", logs.items)


def _creator_gini(logs: RunLogs) -> pl.DataFrame:
    return _exposure_gini(logs, "creator_id", logs.creators)


METRICS: Mapping[str, Metric] = MappingProxyType(
    {
        m.name: m
        for m in [
            Metric("ctr", "click-through rate", "clicked exposures / exposures", True, _ctr),
            Metric(
                "consumption_per_session",
                "items consumed per session",
                "mean over sessions of clicks",
                True,
                _consumption,
            ),
            Metric(
                "session_length",
                "pages per session",
                "mean over sessions of pages",
                True,
                _session_length,
            ),
            Metric(
                "return_rate",
                "share of users who came back on another day",
                "users with sessions on >= 2 days / users with >= 1 session",
                True,
                _return_rate,
            ),
            Metric(
                "coverage",
                "share of the catalog ever shown",
                "distinct exposed items / catalog size",
                True,
                _coverage,
            ),
            Metric(
                "item_gini",
                "inequality of item exposure",
                "Gini of exposure counts over all items (zeros included)",
                False,
                _item_gini,
            ),
            Metric(
                "creator_gini",
                "inequality of creator exposure",
                "Gini of exposure counts over all creators (zeros included)",
                False,
                _creator_gini,
            ),
        ]
    }
)


def known_metrics() -> list[str]:
    return list(METRICS)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise LookupError(f"unknown {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


def compute_metrics(logs: RunLogs, names: Sequence[str] | None = None) -> pl.DataFrame:
    """Long frame: metric, arm, rep, value — one row per metric and cell."""
    frames = []
    for name in names or known_metrics():
        values = (
            get_metric(name)
            .compute(logs)
            .select(
                pl.lit(name).alias("metric"),
                pl.col("arm").cast(pl.Utf8),
                pl.col("rep").cast(pl.Int32),
                pl.col("value").cast(pl.Float64),
            )
        )
        frames.append(values.sort("arm", "rep"))
    return pl.concat(frames)  # metrics in the order asked for
