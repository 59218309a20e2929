"""``social_feed``: a slate whose first slots are what the user's friends recommended.

RecAgent's users hear about items from friends; on a platform that is a feed of friends' posts
and messages. This wrapper puts up to ``slots`` such items (positive mentions the user still
remembers, newest first, not yet consumed) at the top of the page and fills the rest from the
base recommender's ranking, skipping duplicates. Without talking users (no
``population.social.talk``) it is the base unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.registry import build_base
from recarena.recommenders.rerankers import _WrapperParams
from recarena.recommenders.slates import _row_member
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class SocialFeedParams(_WrapperParams):
    slots: int = Field(default=3, ge=0, le=100)
    """Most slots given to friends' recommendations (at the top of the page)."""


def merge_feed(feed: np.ndarray, ranked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """([B, k] items, [B, k] True where from the feed): feed items first, then ``ranked`` minus
    those items, in order; PAD where a row runs out."""
    both = np.concatenate([feed, ranked], axis=1)
    from_feed = np.zeros(both.shape, bool)
    from_feed[:, : feed.shape[1]] = True
    valid = both != PAD_ITEM
    seen = np.zeros(both.shape, bool)
    seen[:, feed.shape[1] :] = _row_member(ranked, feed)  # a ranked item already in the feed
    keep = valid & ~seen
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    items = np.take_along_axis(both, order, axis=1)
    ok = np.take_along_axis(keep, order, axis=1)
    return np.where(ok, items, PAD_ITEM), np.take_along_axis(from_feed, order, axis=1) & ok


class SocialFeed:
    """Friends' recommendations first, then the base's."""

    Params = SocialFeedParams
    surfaces = frozenset({"list"})

    def __init__(self, params: SocialFeedParams, ctx: RecommenderContext) -> None:
        self.name = "social_feed"
        self.params = params
        self.base = build_base(params.base, params.base_params, ctx)
        self.talk = ctx.social_feed

    def fit(self, history: Interactions) -> None:
        self.base.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.base.update(feedback)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        k, slots = requests.k, self.params.slots
        if self.talk is None or slots == 0:
            return self.base.recommend(requests)
        feed = self.talk.feed(requests.user, slots)
        feed = np.where(_row_member(feed, requests.exclude), PAD_ITEM, feed)  # consumed
        pool = self.base.recommend(replace(requests, k=k + slots))
        items, _ = merge_feed(feed, pool.items, k)
        scores = np.full(items.shape, np.nan, np.float32)
        return SlateBatch(items, scores, np.ones(items.shape, np.float32))
