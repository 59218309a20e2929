"""Metrics of users who talk (agents/users/talk.py): cascades, social consumption, concentration.

Posts and messages share one id space per cell and each records the talk event through which its
author heard of the item (``parent_id``), so the talk events of a cell form a forest: a
*cascade* is one tree, rooted at a post or message by someone who found the item without being
told. Its size counts the events in the tree, its depth the longest chain of retellings (a root
alone has depth 0).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import (
    CELL,
    USER,
    VALUE_SCHEMA,
    Metric,
    count_gini,
    from_user_ratio,
)


def cascade_forest(ids: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(root, depth) of every event; ``ids`` are 0..n-1 in any order, parent -1 = a root.

    Pointer jumping: each pass follows every event's pointer one level further up, so the cost is
    a few numpy passes per level of the deepest chain, never a loop per event.
    """
    n = ids.shape[0]
    parent = np.full(n, -1, np.int64)
    parent[ids] = parents
    has = parent >= 0
    up = np.where(has, parent, np.arange(n))
    depth = has.astype(np.int64)
    while True:
        above = up[up]
        moved = above != up
        if not moved.any():
            return up, depth
        depth = depth + np.where(moved, depth[up], 0)
        up = above


def cascades(logs: RunLogs) -> pl.DataFrame:
    """``arm, rep, root, size, depth``: one row per cascade of talk events."""
    events = pl.concat(
        [
            logs.posts.select(*CELL, pl.col("post_id").alias("id"), "parent_id"),
            logs.messages.select(*CELL, pl.col("message_id").alias("id"), "parent_id"),
        ]
    ).collect()
    rows = []
    for (arm, rep), cell in events.group_by(CELL, maintain_order=True):
        root, depth = cascade_forest(cell["id"].to_numpy(), cell["parent_id"].to_numpy())
        frame = pl.DataFrame({"root": root, "depth": depth})
        tree = frame.group_by("root").agg(pl.len().alias("size"), pl.col("depth").max())
        rows.append(tree.with_columns(pl.lit(arm).alias("arm"), pl.lit(rep).alias("rep")))
    schema = {"arm": pl.Utf8, "rep": pl.Int32, "root": pl.Int64, "size": pl.Int64,
              "depth": pl.Int64}  # fmt: skip
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.concat(rows).select(
        pl.col("arm").cast(pl.Utf8), pl.col("rep").cast(pl.Int32), "root",
        pl.col("size").cast(pl.Int64), pl.col("depth").cast(pl.Int64),
    )  # fmt: skip


def _per_cell(frame: pl.DataFrame, expr: pl.Expr) -> pl.DataFrame:
    if frame.height == 0:
        return pl.DataFrame(schema=VALUE_SCHEMA)
    return frame.group_by(CELL).agg(expr.cast(pl.Float64).alias("value"))


def cascade_size(logs: RunLogs) -> pl.DataFrame:
    return _per_cell(cascades(logs), pl.col("size").mean())


def cascade_depth_max(logs: RunLogs) -> pl.DataFrame:
    return _per_cell(cascades(logs), pl.col("depth").max())


def cascade_multi_share(logs: RunLogs) -> pl.DataFrame:
    """Share of cascades that spread beyond their root (size >= 2)."""
    return _per_cell(cascades(logs), (pl.col("size") >= 2).mean())


def social_consumption_users(logs: RunLogs) -> pl.DataFrame:
    """Per user: consumptions of items a friend had mentioned / all consumptions."""
    clicks = logs.interactions.group_by(USER).agg(pl.len().cast(pl.Float64).alias("den"))
    social = logs.social_clicks.group_by(USER).agg(pl.len().cast(pl.Float64).alias("num"))
    return (
        clicks.join(social, on=USER, how="left")
        .select(*USER, pl.col("num").fill_null(0.0), "den")
        .collect()
    )


def click_gini(logs: RunLogs) -> pl.DataFrame:
    """Gini of consumption counts over every item of the catalog (zeros included)."""
    return count_gini(logs.interactions, "item_id", logs.items)


def talk_per_user(logs: RunLogs) -> pl.DataFrame:
    """Posts and messages per user who consumed anything."""
    talk = (
        pl.concat([logs.posts.select(*CELL), logs.messages.select(*CELL)])
        .group_by(CELL)
        .agg(pl.len().alias("talk"))
    )
    users = logs.interactions.group_by(CELL).agg(pl.col("user_id").n_unique().alias("users"))
    return (
        users.join(talk, on=CELL, how="left")
        .select(*CELL, (pl.col("talk").fill_null(0) / pl.col("users")).alias("value"))
        .collect()
    )


RECAGENT = "Wang et al., User Behavior Simulation with LLM-based Agents (RecAgent), 2023"

METRICS_SOCIAL = [
    Metric("social_consumption_share", "consumption of items a friend had mentioned",
           "social_clicks / interactions (the mention was heard before the click)", False,
           from_user_ratio(social_consumption_users), RECAGENT, social_consumption_users),
    Metric("cascade_size", "talk events per cascade",
           "mean over cascades (trees of posts and messages by parent_id) of their size",
           False, cascade_size, RECAGENT),
    Metric("cascade_depth_max", "longest chain of retellings",
           "max over cascades of the depth (root = 0)", False, cascade_depth_max, RECAGENT),
    Metric("cascade_multi_share", "cascades that spread beyond their root",
           "cascades with size >= 2 / cascades", False, cascade_multi_share, RECAGENT),
    Metric("talk_per_user", "posts and messages per consuming user",
           "(posts + messages) / users with >= 1 click", False, talk_per_user, RECAGENT),
    Metric("click_gini", "concentration of consumption over items",
           "Gini of click counts over all items (zeros included)", False, click_gini),
]  # fmt: skip
