"""Per-slot views of a page: CTR and examination by carousel row and column (or list position).

Examination is simulator-only truth: it separates "not seen" from "seen and not wanted", which
a real log cannot do.
"""

from __future__ import annotations

import polars as pl

from recarena.analysis.load import RunLogs


def by_slot(logs: RunLogs, axes: tuple[str, ...] = ("row", "col")) -> pl.DataFrame:
    """One row per arm and slot along ``axes``: impressions, CTR, examination, CTR if examined."""
    return (
        logs.exposures.group_by("arm", *axes)
        .agg(
            pl.len().alias("impressions"),
            pl.col("clicked").mean().alias("ctr"),
            pl.col("examined").mean().alias("examination"),
            # null, not NaN (0/0), for a slot nobody examined (a carousel row always skipped)
            pl.when(pl.col("examined").sum() > 0)
            .then(pl.col("clicked").sum() / pl.col("examined").sum())
            .alias("ctr_when_examined"),
        )
        .sort("arm", *axes)
        .collect()
    )


def by_row(logs: RunLogs) -> pl.DataFrame:
    return by_slot(logs, ("row",))


def by_col(logs: RunLogs) -> pl.DataFrame:
    return by_slot(logs, ("col",))
