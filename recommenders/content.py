"""Content-based retrieval: users and items meet in the item feature (topic-mix) space.

A user's profile is the mean feature vector of the items the user clicked, rebuilt at every
retrain (``fit``), as a content/embedding retriever's user tower would be; an item's score is the
cosine between the profile and the item's features. Users without clicks get the platform's
profile (the mean over every click), so cold starts are not random.

Why it matters for AI content: cosine retrieval favours *central* vectors (those near the mean
of everything: the "hubness" of embedding spaces), and AI-generated items are pulled toward the
catalog's centre (agents/creators/ai_adoption.py). As clicks on AI items enter the training data,
profiles drift toward the AI centre too, so the preference can grow over retraining loops, which
is the Source Echo Chamber's mechanism. A recommender that ignores features (``mf``) can only
acquire a source preference through clicks.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.slates import top_k_from_scores
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class ContentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ContentBased:
    """Cosine between each user's mean clicked-item features and every item's features."""

    Params = ContentParams
    surfaces = frozenset({"list", "carousel"})

    def __init__(self, params: ContentParams, ctx: RecommenderContext) -> None:
        self.name = "content"
        self.n_users, self.n_topics = ctx.n_users, ctx.n_topics
        self.profile = np.zeros((ctx.n_users, ctx.n_topics), np.float64)
        self.platform = np.full(ctx.n_topics, 1.0 / ctx.n_topics)
        self._history: Interactions | None = None

    def fit(self, history: Interactions) -> None:
        self._history = history  # item features are read at the next request (its catalog)

    def _refresh(self, topics: np.ndarray) -> None:
        history, self._history = self._history, None
        if history is None or len(history) == 0:
            return
        x = topics[history.item].astype(np.float64)
        self.profile[:] = 0.0
        np.add.at(self.profile, history.user, x)
        self.platform = x.mean(axis=0)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        topics = requests.catalog.topics
        self._refresh(topics)
        profile = self.profile[requests.user]
        cold = profile.sum(axis=1) == 0
        profile[cold] = self.platform
        scores = unit_rows(profile) @ unit_rows(topics.astype(np.float64)).T
        items, top = top_k_from_scores(scores, requests.exclude, requests.k)
        return SlateBatch(items, top.astype(np.float32), np.ones(items.shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None
