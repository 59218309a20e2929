"""Cluster exploration with a knob (after "Beyond Relevance", adaptive exploration).

Items are clustered online by their topic vectors (scikit-learn's MiniBatchKMeans, refined
with ``partial_fit`` on each batch of newly published items, so clusters follow the catalog as
it grows). For each user the recommender counts how often each cluster was shown to them. A
page of k slots keeps the base's best ``k − m`` items and fills the last ``m = round(knob · k)``
slots with the most relevant candidate of each of the user's least-shown clusters (one item
per cluster): the knob decides how much of the page explores.

``exploration`` is the arm's knob; ``exploration: 0`` serves the base unchanged. With
``knob: user`` every user turns its own knob, as the paper's users do: user u's share is
``min(1, exploration · s_u / mean(s))``, where ``s_u`` is the exploration setting the user
reveals to the app (``RecommenderContext.exploration_setting``: its own rate of novelty-seeking
sessions), so the population's mean share is still about ``exploration`` but novelty seekers
get more exploratory pages and others fewer.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.cluster import MiniBatchKMeans

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.pool_rerank import PoolParams, PoolWrapper
from recarena.simulator.core.types import PAD_ITEM, FeedbackBatch, RequestBatch, SlateBatch


class ClusterExploreParams(PoolParams):
    exploration: float = Field(default=0.3, ge=0, le=1)
    """The knob: share of each page's slots given to under-explored clusters."""
    knob: Literal["arm", "user"] = "arm"
    """arm: every user gets ``exploration``; user: each user's share follows its own setting."""
    clusters: int = Field(default=24, ge=2, le=1000)
    candidates: int = Field(default=300, ge=1, le=5000)


def explore_slots(
    cluster: np.ndarray, shown_count: np.ndarray, relevance: np.ndarray, taken: np.ndarray, m: int
) -> np.ndarray:
    """[B, m] pool columns for the exploratory slots (−1 when a row runs out).

    ``cluster`` [B, C] each candidate's cluster, ``shown_count`` [B, C] how often that cluster
    was shown to the row's user, ``relevance`` [B, C] in [0, 1], ``taken`` [B, C] candidates
    already on the page. Greedy: the least-shown cluster first, its most relevant candidate,
    then that cluster is closed for the page.
    """
    batch, width = cluster.shape
    rows = np.arange(batch)
    score = -shown_count.astype(np.float64) + 0.5 * relevance  # relevance only breaks ties
    score = np.where(taken | ~np.isfinite(relevance), -np.inf, score)
    picks = np.full((batch, m), -1, np.int64)
    for slot in range(m):
        best = score.argmax(axis=1)
        ok = np.isfinite(score[rows, best])
        picks[ok, slot] = best[ok]
        same_cluster = cluster == cluster[rows, best][:, None]
        score = np.where(same_cluster & ok[:, None], -np.inf, score)
    return picks


class ClusterExplore(PoolWrapper):
    """Base's best items plus one item from each of the user's least-shown item clusters."""

    Params = ClusterExploreParams

    def __init__(self, params: ClusterExploreParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "cluster_explore"
        self.params: ClusterExploreParams = params
        # a fixed seed, not the arm's stream: drawing from it would shift the base's draws
        self.kmeans = MiniBatchKMeans(n_clusters=params.clusters, random_state=0, n_init=3)
        self.labels = np.zeros(0, np.int64)
        self._refined_at = 0
        self.shown = np.zeros((ctx.n_users, params.clusters), np.int64)
        self.share = np.full(ctx.n_users, params.exploration)
        """[U] share of each user's page that explores (the knob)."""
        if params.knob == "user":
            setting = ctx.exploration_setting
            if setting is None:
                raise ValueError("knob: user needs the users' exploration settings")
            scale = params.exploration / max(float(np.mean(setting)), 1e-12)
            self.share = np.minimum(1.0, scale * np.asarray(setting, np.float64))

    def _cluster_new_items(self, topics: np.ndarray) -> None:
        """Online clustering. New items join their nearest centroid at once; the centroids are
        refined (``partial_fit``) once ``clusters`` new items have gathered, which keeps the
        cost per published item small."""
        n_known = self.labels.shape[0]
        if topics.shape[0] <= n_known:
            return
        if n_known == 0:
            if topics.shape[0] < self.params.clusters:
                return  # too few items to start; they are clustered once there are enough
            self.kmeans.partial_fit(topics.astype(np.float64))
            self._refined_at = topics.shape[0]
        elif topics.shape[0] - self._refined_at >= self.params.clusters:
            self.kmeans.partial_fit(topics[self._refined_at :].astype(np.float64))
            self._refined_at = topics.shape[0]
        fresh = topics[n_known:].astype(np.float64)
        centres = self.kmeans.cluster_centers_
        distance = ((fresh[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        self.labels = np.concatenate([self.labels, distance.argmin(axis=1)])

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        self._cluster_new_items(requests.catalog.topics)
        k = requests.k
        m_row = np.rint(self.share[requests.user] * k).astype(np.int64)  # [B] explored slots
        m = int(m_row.max(initial=0))
        if m == 0 or self.labels.shape[0] < requests.catalog.n_items:
            return self.base.recommend(requests)
        pool, relevance = self.pool(requests)
        keep = k - m_row  # [B] the base's best items each row keeps
        cluster = self.labels[np.maximum(pool.items, 0)]
        shown_count = np.take_along_axis(self.shown[requests.user], cluster, axis=1)
        taken = np.arange(pool.items.shape[1])[None, :] < keep[:, None]
        picks = explore_slots(cluster, shown_count, relevance, taken, m)
        # slot j: the base's j-th item while j < keep, then the (j - keep)-th exploratory pick
        slot = np.arange(k)[None, :]
        pick_index = np.clip(slot - keep[:, None], 0, m - 1)
        columns = np.where(
            slot < keep[:, None], slot, np.take_along_axis(picks, pick_index, axis=1)
        )
        safe = np.maximum(columns, 0)
        items = np.where(columns >= 0, np.take_along_axis(pool.items, safe, axis=1), PAD_ITEM)
        scores = np.where(columns >= 0, np.take_along_axis(relevance, safe, axis=1), np.nan)
        propensity = np.where(columns >= 0, np.take_along_axis(pool.propensity, safe, 1), 1.0)
        return SlateBatch(items, scores.astype(np.float32), propensity.astype(np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        super().update(feedback)
        items = feedback.slates.items
        valid = (items != PAD_ITEM) & (items < self.labels.shape[0])
        rows, slots = np.nonzero(valid)
        users = feedback.requests.user[rows]
        np.add.at(self.shown, (users, self.labels[items[rows, slots]]), 1)
