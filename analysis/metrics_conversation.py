"""Conversation metrics from the ``turns`` table (simulator/engine/dialogue_loop.py).

A *conversation* is a session with at least one turn. All five metrics are ratios of per-user
sums, so ``compare`` gets paired CIs and a user-level bootstrap for them like for CTR:

* ``conv_success_rate``: conversations that end with an accepted item / conversations. Every
  conversation is capped at the surface's ``max_turns`` (T), so this is success within T turns.
* ``conv_turns_to_success``: Σ turns of successful conversations / successful conversations.
* ``conv_target_recall``: conversations in which at least one recommended item matched the
  user's hidden target on every target facet (``target_hits > 0`` on some recommend turn) /
  conversations: recall of the target over everything the system showed (k items a turn).
* ``conv_patience_exits``: conversations that ended because the user ran out of patience
  (``sessions.exit_reason = patience``) / conversations.
* ``conv_questions_per_success``: Σ questions asked in all conversations / successful
  conversations (the questioning a success costs; a policy that never asks scores 0).

Conversations still open at the horizon count in the denominators as unsuccessful.
"""

from __future__ import annotations

import polars as pl

from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import USER, Metric, from_user_ratio


def conversations(logs: RunLogs) -> pl.LazyFrame:
    """One row per conversation: turns, success, questions, target hit, patience exit."""
    per_session = logs.turns.group_by([*USER, "session_id"]).agg(
        (pl.col("turn").max().cast(pl.Int64) + 1).alias("turns"),
        (pl.col("act") == "accept").any().alias("success"),
        ((pl.col("speaker") == "system") & (pl.col("act") == "ask")).sum().alias("questions"),
        (pl.col("target_hits") > 0).any().alias("hit"),
    )
    exits = logs.sessions.select("arm", "rep", "session_id", "exit_reason")
    return per_session.join(exits, on=["arm", "rep", "session_id"], how="left").with_columns(
        (pl.col("exit_reason") == "patience").fill_null(False).alias("patience_exit")
    )


def _users(num: pl.Expr, den: pl.Expr):
    def per_user(logs: RunLogs) -> pl.DataFrame:
        return (
            conversations(logs)
            .group_by(USER)
            .agg(num.cast(pl.Float64).alias("num"), den.cast(pl.Float64).alias("den"))
            .collect()
        )

    return per_user


success_users = _users(pl.col("success").sum(), pl.len())
turns_to_success_users = _users(
    pl.col("turns").filter(pl.col("success")).sum(), pl.col("success").sum()
)
target_recall_users = _users(pl.col("hit").sum(), pl.len())
patience_exit_users = _users(pl.col("patience_exit").sum(), pl.len())
questions_per_success_users = _users(pl.col("questions").sum(), pl.col("success").sum())


def _metric(name: str, description: str, formula: str, higher: bool, per_user) -> Metric:
    return Metric(
        name,
        description,
        formula,
        higher,
        from_user_ratio(per_user),
        "conversational recommendation, as surveyed by Jannach et al., ACM CSUR 2021",
        per_user,
    )


METRICS_CONVERSATION = [
    _metric("conv_success_rate", "conversations ending in an accepted item (within T turns)",
            "accepted conversations / conversations", True, success_users),
    _metric("conv_turns_to_success", "turns a successful conversation takes",
            "Σ turns of accepted conversations / accepted conversations", False,
            turns_to_success_users),
    _metric("conv_target_recall", "conversations where a shown item matched the hidden target",
            "conversations with a recommended item matching the target on every target facet "
            "/ conversations", True, target_recall_users),
    _metric("conv_patience_exits", "conversations the user left out of patience",
            "conversations with exit_reason patience / conversations", False,
            patience_exit_users),
    _metric("conv_questions_per_success", "questions asked per successful conversation",
            "Σ system ask turns / accepted conversations", False, questions_per_success_users),
]  # fmt: skip
