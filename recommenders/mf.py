"""Implicit matrix factorisation in torch, trained with BPR on the clicks logged so far.

Embeddings are kept between fits (warm start), so each daily retrain only needs a few epochs.
All randomness comes from the arm's generator: a torch.Generator seeded from it for
initialisation, and numpy draws for shuffling and negative sampling.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.popularity import PopularityParams, PopularityRecommender
from recarena.recommenders.slates import top_k_from_scores
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class MFParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(default=32, ge=1, le=1024)
    epochs: int = Field(default=3, ge=1, le=1000)
    lr: float = Field(default=0.05, gt=0)
    reg: float = Field(default=1e-4, ge=0)
    batch_size: int = Field(default=4096, ge=1)


class MatrixFactorization:
    """BPR-MF. Users without any click yet are served by popularity (a cold-start fallback)."""

    Params = MFParams
    surfaces = frozenset({"list"})

    def __init__(self, params: MFParams, ctx: RecommenderContext) -> None:
        import torch  # lazily: listing and validating never load torch

        self.name = "mf"
        self.params = params
        self.rng = ctx.rng
        self.torch_rng = torch.Generator().manual_seed(int(ctx.rng.integers(2**62)))
        scale = 0.1 / np.sqrt(params.dim)
        self.user_emb = torch.randn(ctx.n_users, params.dim, generator=self.torch_rng) * scale
        self.item_emb = torch.zeros(0, params.dim)
        self.has_history = np.zeros(ctx.n_users, bool)
        self.popularity = PopularityRecommender(PopularityParams(), ctx)
        self._scale = scale

    def _grow_items(self, n_items: int) -> None:
        import torch  # lazily: listing and validating never load torch

        missing = n_items - self.item_emb.shape[0]
        if missing > 0:
            new = torch.randn(missing, self.params.dim, generator=self.torch_rng) * self._scale
            self.item_emb = torch.cat([self.item_emb, new])

    def fit(self, history: Interactions) -> None:
        import torch  # lazily: listing and validating never load torch

        self.popularity.fit(history)
        if len(history) == 0:
            return
        p = self.params
        self.has_history[history.user] = True
        n_items = int(history.item.max()) + 1
        self._grow_items(n_items)
        user_w = self.user_emb.clone().requires_grad_(True)
        item_w = self.item_emb.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([user_w, item_w], lr=p.lr)
        users = torch.from_numpy(history.user)
        positives = torch.from_numpy(history.item)
        n = len(history)
        for _ in range(p.epochs):
            order = torch.from_numpy(self.rng.permutation(n))
            negatives = torch.from_numpy(self.rng.integers(0, self.item_emb.shape[0], n))
            for start in range(0, n, p.batch_size):
                idx = order[start : start + p.batch_size]
                u = user_w[users[idx]]
                pos = item_w[positives[idx]]
                neg = item_w[negatives[idx]]
                margin = (u * (pos - neg)).sum(dim=1)
                loss = torch.nn.functional.softplus(-margin).mean()
                loss = loss + p.reg * (u.pow(2).sum() + pos.pow(2).sum() + neg.pow(2).sum()) / len(
                    idx
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.user_emb = user_w.detach()
        self.item_emb = item_w.detach()

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        import torch  # lazily: listing and validating never load torch

        n_items = requests.catalog.n_items
        self._grow_items(n_items)
        warm = self.has_history[requests.user]
        if not warm.any():
            return self.popularity.recommend(requests)
        with torch.no_grad():
            scores = (
                self.user_emb[torch.from_numpy(requests.user)] @ self.item_emb[:n_items].T
            ).numpy()
        items, top_scores = top_k_from_scores(scores, requests.exclude, requests.k)
        if not warm.all():
            cold = self.popularity.recommend(requests)
            items = np.where(warm[:, None], items, cold.items)
            top_scores = np.where(warm[:, None], top_scores, cold.scores)
        return SlateBatch(items, top_scores.astype(np.float32), np.ones(items.shape, np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        return None
