"""Item-based k-nearest-neighbours (Sarwar et al., 2001; Deshpande & Karypis, 2004).

The classic neighbourhood baseline: two items are similar when the same users clicked both
(cosine of their binary user columns); a user's score for an item is the sum of its similarity
to the items the user clicked. Only each item's ``neighbours`` most similar items are kept, which
is both the published recipe and what keeps the score product sparse. It is here because the
fidelity report (analysis/fidelity/report.py) ranks a neighbourhood model against popularity,
MF and SASRec, as offline-evaluation papers do.

Clicks made after the last ``fit`` are added to the user's profile in ``update`` (the item-item
table itself only changes at ``fit``), as a production item-to-item recommender would do with
a nightly similarity job and a live history. Users without clicks are served by popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.popularity import PopularityParams, PopularityRecommender
from recarena.recommenders.slates import top_k_over_fallback
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class ItemKNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    neighbours: int = Field(default=50, ge=1, le=10_000)
    """Most similar items kept per item."""
    shrink: float = Field(default=10.0, ge=0)
    """Added to the cosine denominator, so pairs seen together by few users count less."""


def item_similarity(
    user: np.ndarray, item: np.ndarray, n_users: int, n_items: int, neighbours: int, shrink: float
) -> sp.csr_matrix:
    """[I, I] shrunk cosine similarity of binary item columns, top ``neighbours`` per row,
    zero diagonal. Deterministic: ties between neighbours break towards the lower item id."""
    clicks = sp.csr_matrix(
        (np.ones(user.shape[0]), (user, item)), shape=(n_users, n_items), dtype=np.float64
    )
    clicks.data[:] = 1.0  # repeated clicks on one item count once
    co = (clicks.T @ clicks).tocsr()
    norms = np.sqrt(co.diagonal())
    co.setdiag(0.0)
    co.eliminate_zeros()
    rows = np.repeat(np.arange(n_items), np.diff(co.indptr))
    co.data = co.data / (norms[rows] * norms[co.indices] + shrink)
    keep_rows, keep_cols, keep_vals = [], [], []
    for i in range(n_items):  # fit-time only; one argpartition per item row
        start, end = co.indptr[i], co.indptr[i + 1]
        if start == end:
            continue
        cols, vals = co.indices[start:end], co.data[start:end]
        if vals.size > neighbours:
            order = np.lexsort((cols, -vals))[:neighbours]
            cols, vals = cols[order], vals[order]
        keep_rows.append(np.full(cols.size, i))
        keep_cols.append(cols)
        keep_vals.append(vals)
    if not keep_rows:
        return sp.csr_matrix((n_items, n_items))
    return sp.csr_matrix(
        (np.concatenate(keep_vals), (np.concatenate(keep_rows), np.concatenate(keep_cols))),
        shape=(n_items, n_items),
    )


class ItemKNN:
    """Item-kNN: score = Σ similarity to the user's clicked items (popularity for new users)."""

    Params = ItemKNNParams
    surfaces = frozenset({"list", "carousel"})

    def __init__(self, params: ItemKNNParams, ctx: RecommenderContext) -> None:
        self.name = "itemknn"
        self.params = params
        self.n_users = ctx.n_users
        self.popularity = PopularityRecommender(PopularityParams(), ctx)
        self.similarity = sp.csr_matrix((0, 0))
        self.profile = sp.csr_matrix((ctx.n_users, 0))  # [U, I] binary clicks

    def fit(self, history: Interactions) -> None:
        self.popularity.fit(history)
        n_items = int(history.item.max()) + 1 if len(history) else 0
        p = self.params
        self.similarity = item_similarity(
            history.user, history.item, self.n_users, n_items, p.neighbours, p.shrink
        )
        self.profile = sp.csr_matrix(
            (np.ones(len(history)), (history.user, history.item)), shape=(self.n_users, n_items)
        )
        self.profile.data[:] = 1.0

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        fallback = self.popularity.recommend(requests)
        n_fit = self.similarity.shape[0]
        if n_fit == 0:
            return fallback
        profile = self.profile[requests.user]
        warm = np.flatnonzero(profile.getnnz(axis=1) > 0)
        if warm.size == 0:
            return fallback
        n = requests.catalog.n_items
        scores = np.full((warm.size, n), -np.inf)
        known = min(n, n_fit)
        scores[:, :known] = (profile[warm] @ self.similarity).toarray()[:, :known]
        # a user with too few neighbours keeps popularity's slate
        return top_k_over_fallback(fallback, warm, scores, requests)

    def update(self, feedback: FeedbackBatch) -> None:
        rows, cols = np.nonzero(feedback.clicked)
        if rows.size == 0 or self.profile.shape[1] == 0:
            return
        items = feedback.slates.items[rows, cols]
        known = items < self.profile.shape[1]
        if known.any():
            fresh = sp.csr_matrix(
                (np.ones(int(known.sum())), (feedback.requests.user[rows[known]], items[known])),
                shape=self.profile.shape,
            )
            self.profile = self.profile + fresh
            self.profile.data[:] = 1.0
