"""Implicit matrix factorisation in torch, trained with BPR on the clicks logged so far.

Embeddings are kept between fits (warm start), so each daily retrain only needs a few epochs.
All randomness comes from the arm's generator: a torch.Generator seeded from it for
initialisation, and numpy draws for shuffling and negative sampling.

Scoring never materialises a [batch, catalog] float64 copy or sorts a catalog: requests are
scored in row blocks (a bounded [block, catalog] float32 matmul each), and the top k of a block
comes from ``torch.topk`` plus a sort of the k survivors (:func:`top_k_blocked`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.popularity import PopularityParams, PopularityRecommender
from recarena.recommenders.slates import top_k_from_scores
from recarena.recommenders.tensors import MAX_STEP, reading_tensor
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)

if TYPE_CHECKING:
    import torch

SCORE_BLOCK_CELLS = 4_000_000
"""Scores held at once while ranking (rows x items): ~16 MB of float32 whatever the batch."""

MIN_BLOCK_ROWS = 16

BLAS_STABLE_ROWS = 4
"""MKL gives a row of a float32 matmul the same bits in any batch of 4 or more rows, but uses
another kernel (other bits, ~1e-6) below that. Batches of 1-3 requests are padded to 4, so a
score never depends on how many other sessions share its tick: what makes a sharded cell's logs
equal to the unsharded ones. (Changed in scoring version 2: mf scores of ticks with 1-3 sessions
moved in their last bits.)"""

SCORING_VERSION = 2

_PAD_ROWS = {n: np.arange(BLAS_STABLE_ROWS) % n for n in range(1, BLAS_STABLE_ROWS)}
"""Which of 1-3 request rows fill a padded block of BLAS_STABLE_ROWS (built once: a torch
arange and remainder per tick cost ~6 µs)."""


def top_k_blocked(scores: np.ndarray, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same answer as :func:`top_k_from_scores` (ties to the lower id, PAD/NaN past the
    finite scores), for float32 ``scores`` [B, N] that it may overwrite.

    ``torch.topk`` finds the k + 1 best in O(N) per row (cheaper than ``argpartition`` plus a
    count of the scores at or above the k-th); only rows where the (k+1)-th best ties the k-th
    (rare with real-valued scores; every row with fewer than k unexcluded items, or a
    non-finite score among the k) go through the exact tie-breaking of ``top_k_from_scores``.
    """
    batch, n = scores.shape
    kk = min(k, n)
    if batch == 0 or kk == 0 or kk == n:
        return top_k_from_scores(scores, exclude, k)
    import torch  # lazily: listing and validating never load torch

    rows, cols = np.nonzero(exclude != PAD_ITEM)
    scores[rows, exclude[rows, cols]] = -np.inf
    # the kk + 1 best per row: the first kk are the answer unless the next one ties the kk-th
    values, indices = (t.numpy() for t in torch.topk(torch.from_numpy(scores), kk + 1, dim=1))
    part, part_scores = indices[:, :kk], values[:, :kk]
    ambiguous = np.flatnonzero(
        (values[:, kk] == values[:, kk - 1]) | ~np.isfinite(part_scores).all(axis=1)
    )
    if (part_scores[:, 1:] == part_scores[:, :-1]).any():  # ties inside the k: lower id first
        order = np.lexsort((part, -part_scores), axis=1)
        items = np.take_along_axis(part, order, axis=1).astype(np.int64)
        top = np.take_along_axis(part_scores, order, axis=1)
    else:  # topk's order (descending, no ties) is already the answer's: no sort, no gathers
        items, top = part.astype(np.int64), part_scores.copy()
    if ambiguous.size:
        exact_items, exact_top = top_k_from_scores(
            scores[ambiguous], np.full((ambiguous.size, 0), PAD_ITEM, np.int64), kk
        )
        items[ambiguous], top[ambiguous] = exact_items, exact_top
    if kk < k:
        items = np.pad(items, ((0, 0), (0, k - kk)), constant_values=PAD_ITEM)
        top = np.pad(top, ((0, 0), (0, k - kk)), constant_values=np.nan)
    return items, top.astype(np.float32)


class MFParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(default=32, ge=1, le=1024)
    epochs: int = Field(default=3, ge=1, le=1000)
    lr: float = Field(default=0.05, gt=0, le=MAX_STEP)
    reg: float = Field(default=1e-4, ge=0, le=MAX_STEP)
    batch_size: int = Field(default=4096, ge=1)
    epoch_samples: int | None = Field(default=None, ge=1)
    """Train each epoch on a fresh random sample of at most this many examples (None: all of
    them): bounds the cost of a fit on a large history (`recarena fidelity` uses 100,000)."""
    optimizer: Literal["auto", "adam", "lazy_adam"] = "auto"
    """``adam``: dense Adam over every row each step (fit version 1), whose cost grows with the
    population: at 1M users a day's fits took 640 of a cell's 671 seconds. ``lazy_adam``: each
    step moves only the rows of the users and items in its batch, with Adam moments kept per
    row, so a step costs O(batch), not O(users + items): the same held-out NDCG
    (benchmarks/mf_quality.py), other bytes. ``auto`` (the default) takes ``adam`` below
    :data:`LAZY_FROM_USERS` users, where a dense step is cheap and every published figure was
    measured with it, and ``lazy_adam`` from there on. The fit that ran is the recommender's
    ``optimizer`` attribute."""


LAZY_FROM_USERS = 50_000
"""``optimizer: auto`` fits lazily from this many users on. Below it the dense step is cheap
(at 2,000 users the lazy fit is the slower one, ``torch.unique`` per step); at 100k users dense
fits take ~6 of a day's ~9 seconds against ~0.7 lazily (benchmarks/engine.py)."""


def resolve_optimizer(optimizer: str, n_users: int) -> str:
    """The fit ``optimizer`` names for a population of ``n_users`` (``auto`` decided)."""
    if optimizer != "auto":
        return optimizer
    return "lazy_adam" if n_users >= LAZY_FROM_USERS else "adam"


class _LazyAdam:
    """Adam on the rows a step touches (the rule of torch's SparseAdam): rows absent from a
    batch keep their value and moments; the bias correction counts every step."""

    def __init__(
        self,
        weight: torch.Tensor,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_rows: torch.Tensor | None = None,
    ) -> None:
        """``weight_rows``: the weight rows this optimiser moves, in increasing order (moment
        row i belongs to weight row ``weight_rows[i]``); None for every row. Moments then
        cover only those rows, and ``step`` takes moment-row numbers."""
        import torch  # lazily: listing and validating never load torch

        self.weight, self.lr, self.eps = weight, lr, eps
        self.beta1, self.beta2 = betas
        self.weight_rows = weight_rows
        n_rows = weight.shape[0] if weight_rows is None else weight_rows.shape[0]
        self.mean = torch.zeros(n_rows, weight.shape[1], dtype=weight.dtype)
        self.square = torch.zeros(n_rows, weight.shape[1], dtype=weight.dtype)
        self.steps = 0

    def step(self, index: torch.Tensor, grad: torch.Tensor) -> None:
        """``grad[j]`` is the gradient for row ``index[j]`` (rows may repeat: they are summed)."""
        import torch  # lazily: listing and validating never load torch

        self.steps += 1
        rows, slot = torch.unique(index, return_inverse=True)
        summed = torch.zeros(rows.shape[0], grad.shape[1]).index_add_(0, slot, grad)
        mean = self.mean[rows].mul_(self.beta1).add_(summed, alpha=1 - self.beta1)
        square = self.square[rows].mul_(self.beta2).addcmul_(summed, summed, value=1 - self.beta2)
        self.mean[rows], self.square[rows] = mean, square
        step_size = self.lr / (1 - self.beta1**self.steps)
        denom = (square / (1 - self.beta2**self.steps)).sqrt_().add_(self.eps)
        target = rows if self.weight_rows is None else self.weight_rows[rows]
        self.weight.index_add_(0, target, mean / denom, alpha=-step_size)


class _DenseAdam:
    """``torch.optim.Adam`` with its defaults on CPU tensors, step for step the same floats:
    the same in-place ops in the same order as torch's single-tensor path (which it takes on
    CPU: foreach kernels are for accelerators). Not ``torch.optim``, because constructing an
    optimizer imports ``torch._dynamo`` (~1.6 CPU-s in each fresh process, more than all of a
    quickstart cell's fits); tests/test_recommenders.py compares it with torch's Adam bit for
    bit."""

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        import torch  # lazily: listing and validating never load torch

        self.params, self.lr, self.eps = params, lr, eps
        self.beta1, self.beta2 = betas
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.steps = 0.0
        """torch keeps the count in a float32 tensor and reads it with ``item()``: exact for
        any count a fit reaches."""

    def step(self) -> None:
        """One update of every parameter with a gradient (``p.grad`` after ``backward``)."""
        import torch  # lazily: listing and validating never load torch

        beta1, beta2 = self.beta1, self.beta2
        self.steps += 1.0
        step = self.steps
        with torch.no_grad():
            for param, exp_avg, exp_avg_sq in zip(
                self.params, self.exp_avg, self.exp_avg_sq, strict=True
            ):
                grad = param.grad
                if grad is None:
                    continue
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = self.lr / bias_correction1
                bias_correction2_sqrt = bias_correction2**0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None


class MatrixFactorization:
    """BPR-MF. Users without any click yet are served by popularity (a cold-start fallback)."""

    Params = MFParams
    rows_independent = True
    """Each request is answered from its row and the fitted state (simulator/engine/waves.py)."""
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
        self.optimizer = resolve_optimizer(params.optimizer, ctx.n_users)
        """The fit that runs: ``adam`` or ``lazy_adam`` (``auto`` resolved by population)."""
        self.popularity = PopularityRecommender(PopularityParams(), ctx)
        self._scale = scale

    def _grow_items(self, n_items: int) -> None:
        import torch  # lazily: listing and validating never load torch

        missing = n_items - self.item_emb.shape[0]
        if missing > 0:
            new = torch.randn(missing, self.params.dim, generator=self.torch_rng) * self._scale
            self.item_emb = torch.cat([self.item_emb, new])

    def fit(self, history: Interactions) -> None:
        self.popularity.fit(history)
        if len(history) == 0:
            return
        self.has_history[history.user] = True
        self._grow_items(int(history.item.max()) + 1)
        if self.optimizer == "adam":
            self._fit_dense(history)
        else:
            self._fit_lazy(history)

    def _epochs(self, n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Per epoch: the click order and one negative item per click (the arm's numpy stream,
        drawn alike by both optimisers)."""
        import torch  # lazily: listing and validating never load torch

        for _ in range(self.params.epochs):
            order = torch.from_numpy(self.rng.permutation(n)[: self.params.epoch_samples])
            negatives = torch.from_numpy(self.rng.integers(0, self.item_emb.shape[0], n))
            yield order, negatives

    def _fit_dense(self, history: Interactions) -> None:
        """Fit version 1: autograd and dense Adam over the whole embedding tables."""
        import torch  # lazily: listing and validating never load torch

        p = self.params
        user_w = self.user_emb.clone().requires_grad_(True)
        item_w = self.item_emb.clone().requires_grad_(True)
        optimizer = _DenseAdam([user_w, item_w], lr=p.lr)
        users = reading_tensor(history.user)
        positives = reading_tensor(history.item)
        n = len(history)
        for order, negatives in self._epochs(n):
            for start in range(0, order.numel(), p.batch_size):
                idx = order[start : start + p.batch_size]
                u = user_w[users[idx]]
                pos = item_w[positives[idx]]
                neg = item_w[negatives[idx]]
                margin = (u * (pos - neg)).sum(dim=1)
                loss = torch.nn.functional.softplus(-margin).mean()
                loss = loss + p.reg * (u.pow(2).sum() + pos.pow(2).sum() + neg.pow(2).sum()) / len(
                    idx
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.user_emb = user_w.detach()
        self.item_emb = item_w.detach()

    def _fit_lazy(self, history: Interactions) -> None:
        """Fit version 2: the same BPR loss and batches, its gradient written out (no
        autograd), summed per distinct row, and Adam applied to those rows only."""
        import torch  # lazily: listing and validating never load torch

        p = self.params
        # Only the users in the history move, so Adam's moments cover their rows alone
        # (numbered in id order) and the table is updated in place: the steps are row by row,
        # hence the same floats, and at a million users the moments take the active users'
        # rows instead of every user's (hundreds of MB at the cell's peak).
        present = np.zeros(self.user_emb.shape[0], bool)
        present[history.user] = True
        active = torch.from_numpy(np.flatnonzero(present))
        moment_row = torch.from_numpy(np.cumsum(present) - 1)
        del present
        user_w, item_w = self.user_emb, self.item_emb.clone()
        user_adam = _LazyAdam(user_w, p.lr, weight_rows=active)
        item_adam = _LazyAdam(item_w, p.lr)
        users = reading_tensor(history.user)
        positives = reading_tensor(history.item)
        n = len(history)
        with torch.no_grad():
            for order, negatives in self._epochs(n):
                for start in range(0, order.numel(), p.batch_size):
                    idx = order[start : start + p.batch_size]
                    u_idx, pos_idx, neg_idx = users[idx], positives[idx], negatives[idx]
                    u, pos, neg = user_w[u_idx], item_w[pos_idx], item_w[neg_idx]
                    diff = pos - neg
                    # loss = mean softplus(-margin) + reg * (|u|^2 + |pos|^2 + |neg|^2) / b
                    b = idx.shape[0]
                    slope = (torch.sigmoid(-(u * diff).sum(dim=1)) * (-1.0 / b))[:, None]
                    decay = 2.0 * p.reg / b
                    grad_u = slope * diff + decay * u
                    grad_items = torch.cat([slope * u + decay * pos, decay * neg - slope * u])
                    user_adam.step(moment_row[u_idx], grad_u)
                    item_adam.step(torch.cat([pos_idx, neg_idx]), grad_items)
        self.item_emb = item_w

    def recommend(self, requests: RequestBatch) -> SlateBatch:

        n_items = requests.catalog.n_items
        self._grow_items(n_items)
        warm = self.has_history[requests.user]
        if not warm.any():
            return self.popularity.recommend(requests)
        items, top_scores = self._score_top_k(requests, n_items)
        if not warm.all():
            cold = self.popularity.recommend(requests)
            items = np.where(warm[:, None], items, cold.items)
            top_scores = np.where(warm[:, None], top_scores, cold.scores)
        return SlateBatch(items, top_scores.astype(np.float32), np.ones(items.shape, np.float32))

    def _score_top_k(self, requests: RequestBatch, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k per request, scored in row blocks of at most SCORE_BLOCK_CELLS scores."""
        import torch  # lazily: listing and validating never load torch

        batch, k = len(requests), requests.k
        items = np.empty((batch, k), np.int64)
        top = np.empty((batch, k), np.float32)
        # equal blocks of >= MIN_BLOCK_ROWS rows: BLAS gives a row the same bits in any block of
        # 4 rows or more (below that it switches kernel), so blocking never changes a score
        block = max(MIN_BLOCK_ROWS, SCORE_BLOCK_CELLS // max(n_items, 1))
        if batch <= block:  # the usual tick: one block (linspace gives the same two bounds)
            bounds = np.array([0, batch], np.int64)
        else:
            bounds = np.linspace(0, batch, -(-batch // block) + 1).astype(np.int64)
        item_t = self.item_emb[:n_items].T
        users = torch.from_numpy(requests.user.copy())  # a few ids; the request is read-only
        with torch.no_grad():
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                rows = users[start:stop]
                if rows.shape[0] < BLAS_STABLE_ROWS:  # pad: the kernel, and so the bits, of 4+
                    rows = rows.index_select(0, torch.from_numpy(_PAD_ROWS[rows.shape[0]]))
                scores = (self.user_emb[rows] @ item_t).numpy()[: stop - start]
                items[start:stop], top[start:stop] = top_k_blocked(
                    scores, requests.exclude[start:stop], k
                )
        return items, top

    def update(self, feedback: FeedbackBatch) -> None:
        return None

    @staticmethod
    def merge_shards(copies: list[MatrixFactorization]) -> MatrixFactorization:
        """After a sharded segment: the state one process serving every shard would have.

        Between fits, ``recommend`` only grows item embeddings (torch draws) and the cold-start
        popularity's tie keys (numpy ``random``). Both streams are split-independent (torch's
        normal fill for sizes that are multiples of 16, hence :meth:`shardable`), so the copy
        with the most item rows and the copy with the most tie keys hold the right states.
        """
        merged = max(copies, key=lambda c: c.item_emb.shape[0])
        merged.popularity = PopularityRecommender.merge_shards([c.popularity for c in copies])
        merged.rng = merged.popularity.rng  # one generator, as ctx.rng is for both
        return merged

    def shardable(self) -> str | None:
        """Why this model cannot run sharded, or None."""
        if self.params.dim % 16:
            return f"mf params.dim={self.params.dim}: sharded cells need a multiple of 16"
        return None
