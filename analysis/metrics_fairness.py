"""Fairness (items, creators, users) and regret, most of them from the simulation's truth columns.

Exposure Gini says how unequal exposure is; the other metrics ask whether the inequality is
deserved: by creator quality (exposure vs merit), by relevance on each page (equity of
attention), and whether some users are served worse than others (utility gap).
"""

from __future__ import annotations

import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import (
    CELL,
    USER,
    count_gini,
    examination_weights,
    user_ratio,
)


def exposure_gini(logs: RunLogs, key: str, population: pl.LazyFrame) -> pl.DataFrame:
    return count_gini(logs.exposures, key, population)


def item_gini(logs: RunLogs) -> pl.DataFrame:
    return exposure_gini(logs, "item_id", logs.items)


def creator_gini(logs: RunLogs) -> pl.DataFrame:
    return exposure_gini(logs, "creator_id", logs.creators)


def exposure_merit(logs: RunLogs) -> pl.DataFrame:
    """Spearman correlation over all creators of exposures received and true quality.

    Rank correlation because creator quality is a mean of normal draws (can be negative), so a
    ratio of shares is undefined; +1 means exposure is ordered exactly by merit.
    """
    counts = logs.exposures.group_by([*CELL, "creator_id"]).agg(pl.len().alias("n"))
    creators = (
        logs.creators.select(*CELL, "creator_id", "quality")
        .join(counts, on=[*CELL, "creator_id"], how="left")
        .with_columns(pl.col("n").fill_null(0).cast(pl.Float64))
    )
    return (
        creators.group_by(CELL)
        .agg(pl.corr("n", "quality", method="spearman").cast(pl.Float64).alias("value"))
        .collect()
    )


def _weighted(logs: RunLogs) -> pl.LazyFrame:
    """Exposures with the cell's examination rate ``w`` of their slot."""
    return logs.exposures.join(examination_weights(logs), on=[*CELL, "position"], how="left")


def attention_unfairness(logs: RunLogs) -> pl.DataFrame:
    """Amortised equity of attention (Biega et al. 2018): Σ_i |A_i − R_i| / pages, in [0, 2].

    On each page, attention a = slot examination rate w normalised to sum to 1 over the page,
    relevance r = softmax of the page's true utilities (the user's own logit choice shares at
    temperature 1). A_i, R_i sum a and r over every page that showed item i. 0: every item got
    attention in proportion to its relevance, summed over all its appearances. Pages whose
    slots no user of the cell ever examined have no attention to share and are left out (a
    carousel whose rows are all skipped scored 1, half the worst, from pages nobody looked at);
    a cell with no other page has no value.
    """
    page = [*CELL, "request_id"]
    exposures = (
        _weighted(logs)
        .filter(pl.col("w").sum().over(page) > 0)
        .with_columns((pl.col("w") / pl.col("w").sum().over(page)).alias("a"))
    )
    exposures = exposures.with_columns(
        (
            (pl.col("true_utility") - pl.col("true_utility").max().over([*CELL, "request_id"]))
            .cast(pl.Float64)
            .exp()
        ).alias("e"),
    )
    exposures = exposures.with_columns(
        (pl.col("e") / pl.col("e").sum().over([*CELL, "request_id"])).alias("r")
    )
    items = exposures.group_by([*CELL, "item_id"]).agg(
        pl.col("a").sum().alias("A"), pl.col("r").sum().alias("R")
    )
    pages = exposures.group_by(CELL).agg(pl.col("request_id").n_unique().alias("pages"))
    return (
        items.group_by(CELL)
        .agg((pl.col("A") - pl.col("R")).abs().sum().alias("gap"))
        .join(pages, on=CELL)
        .select(*CELL, (pl.col("gap") / pl.col("pages")).alias("value"))
        .collect()
    )


def activity_gap(logs: RunLogs) -> pl.DataFrame:
    """|mean satisfaction of the most active third of users − the least active third|.

    Users of the cell are ranked by sessions (ties by user id) and cut into tertiles; each
    user's value is the mean satisfaction over their sessions, averaged within the tertile.
    Activity is itself partly an outcome (satisfied users return more often), so read this with
    ``return_rate``.
    """
    users = logs.sessions.group_by(USER).agg(
        pl.len().alias("sessions"), pl.col("satisfaction").mean().alias("sat")
    )
    ranked = users.sort([*CELL, "sessions", "user_id"]).with_columns(
        ((3 * (pl.int_range(pl.len()).over(CELL))) // pl.len().over(CELL)).alias("tertile")
    )
    means = ranked.group_by(CELL).agg(
        pl.col("sat").filter(pl.col("tertile") == 2).mean().alias("high"),
        pl.col("sat").filter(pl.col("tertile") == 0).mean().alias("low"),
    )
    return means.select(*CELL, (pl.col("high") - pl.col("low")).abs().alias("value")).collect()


def page_utility_users(logs: RunLogs) -> pl.DataFrame:
    """Per page: Σ_j w_j U_j, the true utility the user can expect to look at."""
    page = (
        _weighted(logs)
        .group_by([*USER, "request_id"])
        .agg((pl.col("w") * pl.col("true_utility")).sum().alias("u"))
    )
    return user_ratio(page, pl.col("u").sum(), pl.len())


def ranking_regret_users(logs: RunLogs) -> pl.DataFrame:
    """Per page: Σ_j w_(j) U_(j) − Σ_j w_j U_j, the loss from the order of the page's items.

    The first term pairs the page's slot weights and its items' true utilities, both sorted
    descending: by the rearrangement inequality that is the best any ordering of the *same*
    items could achieve. It is regret against an oracle that may only reorder the page, because
    the utility of items that were not shown is not logged.
    """
    best = (pl.col("w").sort(descending=True) * pl.col("true_utility").sort(descending=True)).sum()
    actual = (pl.col("w") * pl.col("true_utility")).sum()
    page = (
        _weighted(logs)
        .group_by([*USER, "request_id"])
        .agg((best - actual).cast(pl.Float64).alias("regret"))
    )
    return user_ratio(page, pl.col("regret").sum(), pl.len())
