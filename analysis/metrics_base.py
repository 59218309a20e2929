"""What every metric module shares: the ``Metric`` record, the cell key and small helpers.

A metric is one value per (arm, rep) cell. Metrics that are a ratio of per-user sums (CTR is
Σ clicks / Σ exposures over users, a mean over sessions is Σ per-user totals / Σ per-user
session counts, a mean over users is Σ value / Σ 1) also say so through ``per_user``: a frame of
``arm, rep, user_id, num, den`` whose Σnum / Σden over a cell's users *is* the cell value. That
lets ``compare`` resample users (a cluster bootstrap) when there are too few replicates; metrics
that are not sums over users (Gini, coverage, correlations) have no ``per_user``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from recarena.analysis.load import RunLogs
from recarena.simulator.core.measures import gini  # noqa: F401  (re-exported)

CELL = ["arm", "rep"]
USER = ["arm", "rep", "user_id"]
VALUE_SCHEMA = {"arm": pl.Utf8, "rep": pl.Int32, "value": pl.Float64}

PerUser = Callable[[RunLogs], pl.DataFrame]


@dataclass(frozen=True)
class Metric:
    """A registered metric: how it is computed, what it means and where it comes from."""

    name: str
    description: str
    formula: str
    higher_is_better: bool
    compute: Callable[[RunLogs], pl.DataFrame]
    reference: str = ""
    per_user: PerUser | None = None
    """``arm, rep, user_id, num, den`` with Σnum/Σden over a cell = the cell value (or None)."""


def counts_over(events: pl.LazyFrame, key: str, population: pl.LazyFrame) -> pl.DataFrame:
    """Per cell, how many ``events`` each member of ``population`` has (``arm, rep, key, n``),
    0 for a member without any: exposures per item or creator, clicks per item."""
    counts = events.group_by([*CELL, key]).agg(pl.len().alias("n"))
    return (
        population.select(*CELL, key)
        .join(counts, on=[*CELL, key], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .collect()
    )


def count_gini(events: pl.LazyFrame, key: str, population: pl.LazyFrame) -> pl.DataFrame:
    """Per cell, the Gini of event counts over every member of ``population`` (zeros kept).

    A cell with no event at all has no value (null): the Gini of all-zero counts is 0/0, and
    0 ("shared perfectly equally") was shown for a run whose users never arrived.
    """
    full = counts_over(events, key, population)
    rows = []
    for (arm, rep), group in full.group_by(CELL, maintain_order=True):
        counts = group["n"].to_numpy()
        rows.append({"arm": arm, "rep": rep, "value": gini(counts) if counts.any() else None})
    return pl.DataFrame(rows, schema=VALUE_SCHEMA)


def value_frame(frame: pl.LazyFrame, expr: pl.Expr) -> pl.DataFrame:
    """One value per cell: ``expr`` aggregated over the cell's rows."""
    return frame.group_by(CELL).agg(expr.cast(pl.Float64).alias("value")).collect()


def user_ratio(frame: pl.LazyFrame, num: pl.Expr, den: pl.Expr) -> pl.DataFrame:
    """Per-user numerator and denominator of a ratio-of-sums metric."""
    return (
        frame.group_by(USER)
        .agg(num.cast(pl.Float64).alias("num"), den.cast(pl.Float64).alias("den"))
        .collect()
    )


def ratio_of_sums(per_user: pl.DataFrame) -> pl.DataFrame:
    """``arm, rep, value``: Σnum / Σden over each cell's users."""
    return per_user.group_by(CELL).agg((pl.col("num").sum() / pl.col("den").sum()).alias("value"))


def from_user_ratio(per_user: PerUser) -> Callable[[RunLogs], pl.DataFrame]:
    """The cell value of a ratio-of-sums metric: Σnum / Σden over the cell's users."""

    def compute(logs: RunLogs) -> pl.DataFrame:
        return ratio_of_sums(per_user(logs))

    return compute


USER_SCHEMA = {
    "arm": pl.Utf8, "rep": pl.Int32, "user_id": pl.Int64, "num": pl.Float64, "den": pl.Float64
}  # fmt: skip


def empty_users() -> pl.DataFrame:
    """Per-user values of a metric that cannot be computed (e.g. items without topics)."""
    return pl.DataFrame(schema=USER_SCHEMA)


def item_topics(logs: RunLogs) -> tuple[pl.LazyFrame, list[str]]:
    """Items with their topic mixture as columns ``t0..t{T-1}`` (one per topic), per cell.

    The mixture is a list column in the log; wide columns let polars sum topic vectors per page
    or per user without exploding rows.
    """
    n_topics = logs.items.select(pl.col("topics").list.len().max()).collect().item()
    names = [f"t{i}" for i in range(int(n_topics or 0))]
    wide = logs.items.select(
        *CELL,
        "item_id",
        *[pl.col("topics").list.get(i).cast(pl.Float64).alias(n) for i, n in enumerate(names)],
    )
    return wide, names


def examination_weights(logs: RunLogs) -> pl.LazyFrame:
    """The cell's examination rate per slot (``examined`` truth): the position-attention model.

    Measured, not assumed, so lists and carousels (whose attention differs) are both covered.
    """
    return logs.exposures.group_by([*CELL, "position"]).agg(
        pl.col("examined").cast(pl.Float64).mean().alias("w")
    )
