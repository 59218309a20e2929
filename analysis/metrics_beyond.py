"""Beyond accuracy: diversity, novelty, serendipity, calibration and popularity bias.

Item topic vectors come from ``items.topics`` (the mixture, sums to 1); "popularity" is always
measured inside the cell being scored (its own clicks), since a simulation has no separate
training log. The cell's clicks are therefore the reference a real offline evaluation would
take from its training data.
"""

from __future__ import annotations

import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import CELL, USER, empty_users, item_topics, user_ratio

TOP_TOPICS = 3
"""Serendipity: a topic is "expected" for a user if it is among their 3 most-clicked so far."""
LIKED_RATING = 4.0
"""Serendipity: a consumed item is "liked" if rated at least 4 of 5."""
CALIBRATION_ALPHA = 0.01
"""Steck's smoothing of the served distribution, q̃ = (1 − α) q + α p, so the KL is finite."""
HEAD_SHARE = 0.8
"""Popularity bias: the head is the most-clicked items that together take 80% of the clicks."""


def _pages(logs: RunLogs) -> pl.LazyFrame:
    return logs.exposures.select(*CELL, "user_id", "request_id", "item_id")


def ild_users(logs: RunLogs) -> pl.DataFrame:
    """Per page: 1 − mean pairwise cosine of the page's topic vectors; pages of ≥ 2 items.

    With unit vectors x̂, Σ_{i≠j} cos(x_i, x_j) = ‖Σ x̂‖² − k, so a page of k items has mean
    pairwise similarity (‖Σ x̂‖² − k) / (k(k − 1)) without forming the k² pairs.
    """
    topics, names = item_topics(logs)
    if not names:
        return empty_users()
    norm = pl.sum_horizontal([pl.col(n) ** 2 for n in names]).sqrt()
    unit = topics.select(*CELL, "item_id", *[(pl.col(n) / norm).alias(n) for n in names])
    page = (
        _pages(logs)
        .join(unit, on=[*CELL, "item_id"], how="left")
        .group_by([*USER, "request_id"])
        .agg(pl.len().alias("k"), *[pl.col(n).sum() for n in names])
        .filter(pl.col("k") >= 2)
    )
    square = pl.sum_horizontal([pl.col(n) ** 2 for n in names])
    similarity = (square - pl.col("k")) / (pl.col("k") * (pl.col("k") - 1))
    page = page.with_columns((1 - similarity).alias("ild"))
    return user_ratio(page, pl.col("ild").sum(), pl.len())


def _click_popularity(logs: RunLogs) -> pl.LazyFrame:
    """Clicks per catalog item in the cell (0 for never-clicked items)."""
    clicks = logs.interactions.group_by([*CELL, "item_id"]).agg(pl.len().alias("clicks"))
    return (
        logs.items.select(*CELL, "item_id")
        .join(clicks, on=[*CELL, "item_id"], how="left")
        .with_columns(pl.col("clicks").fill_null(0))
    )


def novelty_users(logs: RunLogs) -> pl.DataFrame:
    """Per exposure: −log2 p(i), p(i) = (consumers of i + 1) / (active users + 1) in the cell.

    The +1 keeps never-consumed items finite (at most log2(active users + 1) bits).
    """
    consumers = logs.interactions.group_by([*CELL, "item_id"]).agg(
        pl.col("user_id").n_unique().alias("consumers")
    )
    active = logs.sessions.group_by(CELL).agg(pl.col("user_id").n_unique().alias("active"))
    exposures = (
        _pages(logs)
        .join(consumers, on=[*CELL, "item_id"], how="left")
        .join(active, on=CELL, how="left")
        .with_columns(
            (-((pl.col("consumers").fill_null(0) + 1) / (pl.col("active") + 1)).log(2)).alias(
                "bits"
            )
        )
    )
    return user_ratio(exposures, pl.col("bits").sum(), pl.len())


def serendipity_users(logs: RunLogs) -> pl.DataFrame:
    """Per click with ≥ 1 earlier click by the user: unexpected and liked.

    Unexpected: the item's dominant topic (``items.topic``) is not among the user's
    ``TOP_TOPICS`` topics by earlier clicks in the cell (a topic with no earlier click is never
    a top topic; a topic is top if fewer than ``TOP_TOPICS`` topics have strictly more earlier
    clicks). Liked: ``rating >= LIKED_RATING``; the rule user rates
    ``clip(rint(3 + 1.5 (U − u0)), 1, 5)``, so this means true utility about 1/3 above the
    outside option.
    """
    n_topics = int(logs.items.select(pl.col("topic").max()).collect().item() or 0) + 1
    topic = logs.items.select(*CELL, "item_id", "topic")
    clicks = (
        logs.interactions.select(*USER, "time", "request_id", "item_id", "rating")
        .join(topic, on=[*CELL, "item_id"], how="left")
        .sort([*USER, "time", "request_id"])
    )
    hit = [(pl.col("topic") == t).cast(pl.Int32) for t in range(n_topics)]
    earlier = [(h.cum_sum() - h).over(USER).alias(f"c{t}") for t, h in enumerate(hit)]
    clicks = clicks.with_columns(*earlier)
    counts = [pl.col(f"c{t}") for t in range(n_topics)]
    own = pl.coalesce([pl.when(pl.col("topic") == t).then(c) for t, c in enumerate(counts)])
    clicks = clicks.with_columns(
        pl.sum_horizontal(counts).alias("history"), own.fill_null(0).alias("own")
    )
    above = pl.sum_horizontal([(c > pl.col("own")).cast(pl.Int32) for c in counts])
    unexpected = (pl.col("own") == 0) | (above >= TOP_TOPICS)
    eligible = clicks.filter(pl.col("history") >= 1).with_columns(
        (unexpected & (pl.col("rating") >= LIKED_RATING)).alias("serendipitous")
    )
    return user_ratio(eligible, pl.col("serendipitous").sum(), pl.len())


def calibration_users(logs: RunLogs) -> pl.DataFrame:
    """Per user with ≥ 1 click: KL(p ‖ q̃) of history p vs served q (Steck 2018).

    p: mean topic mixture of the items the user consumed in the cell; q: mean topic mixture of
    the items served to the user; q̃ = (1 − α) q + α p. Terms with p(t) = 0 contribute 0.
    """
    topics, names = item_topics(logs)
    if not names:
        return empty_users()

    def mean_mix(frame: pl.LazyFrame, prefix: str) -> pl.LazyFrame:
        return (
            frame.select(*USER, "item_id")
            .join(topics, on=[*CELL, "item_id"], how="left")
            .group_by(USER)
            .agg(*[pl.col(n).mean().alias(prefix + n) for n in names])
        )

    both = mean_mix(logs.interactions, "p").join(mean_mix(logs.exposures, "q"), on=USER)
    terms = []
    for n in names:
        p, q = pl.col("p" + n), pl.col("q" + n)
        q_tilde = (1 - CALIBRATION_ALPHA) * q + CALIBRATION_ALPHA * p
        terms.append(pl.when(p > 0).then(p * (p / q_tilde).log()).otherwise(0.0))
    kl = both.with_columns(pl.sum_horizontal(terms).alias("kl"))
    return user_ratio(kl, pl.col("kl").sum(), pl.len())


def _head_items(logs: RunLogs) -> pl.LazyFrame:
    """Items of the cell with ``share`` (of its clicks) and ``head`` (in the top-80% block).

    Items are sorted by clicks (descending, ties by id); an item is head if the clicks of the
    items strictly before it take less than ``HEAD_SHARE`` of the total, so the head is the
    smallest top block reaching 80%. Never-clicked items are always tail.
    """
    popularity = _click_popularity(logs).sort([*CELL, "clicks", "item_id"], descending=[
        False, False, True, False])  # fmt: skip
    total = pl.col("clicks").sum().over(CELL)
    before = (pl.col("clicks").cum_sum() - pl.col("clicks")).over(CELL)
    return popularity.with_columns(
        (pl.col("clicks") / total).fill_nan(0.0).alias("share"),
        ((before < HEAD_SHARE * total) & (pl.col("clicks") > 0)).alias("head"),
    )


def arp_users(logs: RunLogs) -> pl.DataFrame:
    """Per page: mean over its items of the item's share of the cell's clicks."""
    items = _head_items(logs).select(*CELL, "item_id", "share")
    page = (
        _pages(logs)
        .join(items, on=[*CELL, "item_id"], how="left")
        .group_by([*USER, "request_id"])
        .agg(pl.col("share").fill_null(0.0).mean().alias("arp"))
    )
    return user_ratio(page, pl.col("arp").sum(), pl.len())


def aplt_users(logs: RunLogs) -> pl.DataFrame:
    """Per page: share of its items in the long tail (not head)."""
    items = _head_items(logs).select(*CELL, "item_id", "head")
    page = (
        _pages(logs)
        .join(items, on=[*CELL, "item_id"], how="left")
        .group_by([*USER, "request_id"])
        .agg((~pl.col("head").fill_null(False)).cast(pl.Float64).mean().alias("aplt"))
    )
    return user_ratio(page, pl.col("aplt").sum(), pl.len())


def pop_reo(logs: RunLogs) -> pl.DataFrame:
    """Std/mean over {head, tail} of the exposure rate of *good* items (Zhu et al. 2018).

    Good (the simulation's stand-in for "relevant"): true quality above the cell's catalog
    median. r_g = exposures of good items in group g / good items in g; PopREO =
    std(r_head, r_tail) / mean(r_head, r_tail) = |r_head − r_tail| / (r_head + r_tail).
    0: head and tail good items get equal exposure; 1: one group gets all of it.

    A cell with no click has no head, and one with no exposure of a good item no rates: its
    value is null (was 1 with no click, "one group gets all of it", and 0 with no exposure,
    "equal exposure", for runs where nothing was clicked or shown).
    """
    exposures = logs.exposures.group_by([*CELL, "item_id"]).agg(pl.len().alias("n"))
    items = (
        _head_items(logs)
        .join(logs.items.select(*CELL, "item_id", "quality"), on=[*CELL, "item_id"])
        .join(exposures, on=[*CELL, "item_id"], how="left")
        .with_columns(pl.col("head").any().over(CELL).alias("has_head"))
        .filter(pl.col("quality") > pl.col("quality").median().over(CELL))
    )
    rates = items.group_by([*CELL, "head"]).agg(
        (pl.col("n").fill_null(0).sum() / pl.len()).alias("rate"),
        pl.col("has_head").first(),
    )
    wide = rates.group_by(CELL).agg(
        pl.col("rate").filter(pl.col("head")).first().fill_null(0.0).alias("h"),
        pl.col("rate").filter(~pl.col("head")).first().fill_null(0.0).alias("t"),
        pl.col("has_head").first(),
    )
    total = pl.col("h") + pl.col("t")
    value = pl.when(pl.col("has_head") & (total > 0)).then(
        (pl.col("h") - pl.col("t")).abs() / total
    )
    return wide.select(*CELL, value.cast(pl.Float64).alias("value")).collect()
