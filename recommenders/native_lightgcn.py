"""A compact LightGCN in plain torch (He et al., 2020): a graph recommender.

User and item embeddings are smoothed over the normalised user-item graph
``Â = D^-½ A D^-½`` for ``layers`` propagation steps without weights or non-linearities; the
final embedding is the mean over steps, and the score is a dot product. Trained with BPR on
(user, clicked item, random item) triples. Use it as ``type:
recarena.recommenders.native_lightgcn:NativeLightGCN``; users the graph has not seen are served
by popularity.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.popularity import PopularityParams, PopularityRecommender
from recarena.recommenders.slates import top_k_over_fallback
from recarena.recommenders.tensors import MAX_STEP
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class NativeLightGCNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(default=32, ge=2, le=1024)
    layers: int = Field(default=2, ge=1, le=6)
    epochs: int = Field(default=20, ge=1, le=1000)
    lr: float = Field(default=0.01, gt=0, le=MAX_STEP)
    reg: float = Field(default=1e-4, ge=0, le=MAX_STEP)
    batch_size: int = Field(default=2048, ge=1)
    epoch_samples: int | None = Field(default=None, ge=1)
    """Train each epoch on a fresh random sample of at most this many examples (None: all of
    them): bounds the cost of a fit on a large history (`recarena fidelity` uses 100,000)."""


def normalised_adjacency(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int):
    """[U+I, U+I] symmetric D^-½ A D^-½ of the bipartite click graph (duplicates counted once)."""
    pairs = np.unique(user * n_items + item)
    u, i = pairs // n_items, pairs % n_items + n_users
    n = n_users + n_items
    rows, cols = np.concatenate([u, i]), np.concatenate([i, u])
    adj = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, n))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0).astype(np.float32)
    return sp.diags(scale) @ adj @ sp.diags(scale)


def symmetric_sparse_product(adj: Any) -> Callable[[Any], Any]:
    """``x -> adj @ x`` as a differentiable torch op, for a *symmetric* scipy matrix ``adj``.

    Why not ``torch.sparse.mm`` on a COO tensor: its backward transposes and re-sorts the
    matrix at every step, which made one propagation step with its gradient 4x slower (0.37 s
    against 0.09 s on a 900k-edge graph, one thread) and was most of a LightGCN fit on a 1M-rating
    release. The matrix is symmetric, so the gradient ``adjᵀ g`` is ``adj @ g``: the same CSR
    product both ways. The sums run in another order than the COO path's, so a fit differs
    from one made before this change in the last bits; it is as deterministic as before.
    """
    import torch  # lazily: listing and validating never load torch

    csr = sp.csr_matrix(adj, dtype=np.float32)
    csr.sort_indices()
    with warnings.catch_warnings():  # "CSR support is in beta": the product used here is not
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support", category=UserWarning)
        matrix = torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data),
            size=csr.shape,
            check_invariants=False,  # scipy built it sorted and in range: no second scan
        )

    class Product(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return torch.sparse.mm(matrix, x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return torch.sparse.mm(matrix, grad)

    def product(x: Any) -> Any:
        return Product.apply(x)

    return product


class NativeLightGCN:
    Params = NativeLightGCNParams
    surfaces = frozenset({"list", "carousel"})

    def __init__(self, params: NativeLightGCNParams, ctx: RecommenderContext) -> None:
        self.name = "lightgcn_native"
        self.params = params
        self.rng = ctx.rng
        self.n_users = ctx.n_users
        self.popularity = PopularityRecommender(PopularityParams(), ctx)
        self.user_vectors: np.ndarray | None = None
        self.item_vectors = np.zeros((0, params.dim), np.float32)
        self.known = np.zeros(ctx.n_users, bool)

    def fit(self, history: Interactions) -> None:
        self.popularity.fit(history)
        if len(history) < 2:
            return
        n_items = int(history.item.max()) + 1
        adj = normalised_adjacency(history.user, history.item, self.n_users, n_items)
        self.user_vectors, self.item_vectors = self._train(history, adj, n_items)
        self.known = np.bincount(history.user, minlength=self.n_users) > 0

    def _train(self, history: Interactions, adj: Any, n_items: int):
        import torch  # lazily: listing and validating never load torch

        p = self.params
        smooth = symmetric_sparse_product(adj)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.rng.integers(2**62)))
            base = torch.nn.Parameter(torch.randn(self.n_users + n_items, p.dim) * 0.1)
            optimizer = torch.optim.Adam([base], lr=p.lr)
            users = torch.from_numpy(history.user.astype(np.int64))
            items = torch.from_numpy(history.item.astype(np.int64))

            def propagate() -> torch.Tensor:
                layers: list[torch.Tensor] = [base]
                x: torch.Tensor = base
                for _ in range(p.layers):
                    x = smooth(x)
                    layers.append(x)
                return torch.stack(layers).mean(dim=0)

            for _ in range(p.epochs):
                order = torch.from_numpy(self.rng.permutation(len(history))[: p.epoch_samples])
                for batch in torch.split(order, p.batch_size):
                    emb = propagate()
                    u, pos = users[batch], items[batch] + self.n_users
                    neg = torch.from_numpy(self.rng.integers(0, n_items, batch.numel()))
                    neg = neg + self.n_users
                    diff = (emb[u] * (emb[pos] - emb[neg])).sum(-1)
                    loss = -torch.nn.functional.logsigmoid(diff).mean()
                    loss = (
                        loss
                        + p.reg * (base[u] ** 2 + base[pos] ** 2 + base[neg] ** 2).sum(-1).mean()
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            with torch.no_grad():
                final = propagate().numpy()
        return final[: self.n_users].copy(), final[self.n_users :].copy()

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        fallback = self.popularity.recommend(requests)
        if self.user_vectors is None:
            return fallback
        rows = np.flatnonzero(self.known[requests.user])
        if rows.size == 0:
            return fallback
        n = requests.catalog.n_items
        known_items = min(n, self.item_vectors.shape[0])
        scores = np.full((rows.size, n), -np.inf)
        scores[:, :known_items] = (
            self.user_vectors[requests.user[rows]] @ self.item_vectors[:known_items].T
        )
        return top_k_over_fallback(fallback, rows, scores, requests)

    def update(self, feedback: FeedbackBatch) -> None:
        del feedback  # a batch learner: it learns at the next fit
