"""A compact SASRec-style next-item model in plain torch: a readable reference implementation.

Self-attentive sequential recommendation (Kang & McAuley, 2018) in ~100 lines: item and position
embeddings, a causal transformer encoder, and a softmax over all items (over a sample of them
above ``softmax_items``) trained with cross-entropy on every (prefix -> next click) pair of each
user's time-ordered clicks. As in the paper, a training window of ``max_len`` clicks predicts
the next click at every position at once (one encoder pass serves ``max_len`` targets): an
earlier version encoded a separate window per target and read only its last position, which
spent ~20 times the encoder work for the same targets and made these two models most of
`recarena fidelity`'s time on a 1M-rating release. Put it in the same A/B as RecBole's SASRec
(``type: recbole, model: SASRec``) to compare the two. Users without clicks are served by
popularity. The user's latest clicks (kept current after every batch through ``update``) are
the query, so a click a minute ago shapes the next page.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.popularity import PopularityParams, PopularityRecommender
from recarena.recommenders.slates import top_k_over_fallback
from recarena.recommenders.tensors import MAX_STEP
from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class NativeSASRecParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(default=32, ge=2, le=1024)
    layers: int = Field(default=1, ge=1, le=12)
    heads: int = Field(default=2, ge=1, le=16)
    max_len: int = Field(default=20, ge=2, le=500)
    epochs: int = Field(default=3, ge=1, le=1000)
    lr: float = Field(default=1e-3, gt=0, le=MAX_STEP)
    batch_size: int = Field(default=256, ge=1)
    """Targets (next clicks to predict) per training step, whole windows at a time."""
    epoch_samples: int | None = Field(default=None, ge=1)
    """Train each epoch on a fresh random sample of windows holding at most this many targets
    (None: all of them): bounds the cost of a fit on a large history (`recarena fidelity` uses
    100,000)."""
    softmax_items: int = Field(default=16_384, ge=2)
    """Catalogs up to this many items get the full softmax at every training step; above it,
    each example's own target is scored against ``negatives`` uniform draws shared by the
    batch (sampled softmax; see ``_sampled_logits``)."""
    negatives: int = Field(default=4_095, ge=1)
    """Uniform draws per step of the sampled softmax. A step's cost is mostly these scores, so
    it sets the cost of a fit on a large catalog: a 1.1M-rating sample of a large MovieLens
    release (~38,000 movies) trained 2-3 times slower with the full softmax, and with 16,383
    draws the two sequence models were still most of `recarena fidelity`'s time there."""

    attention: ClassVar[bool] = True
    """The encoder splits ``dim`` over ``heads`` (a subclass without attention sets False)."""

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> NativeSASRecParams:
        # torch's attention splits the embedding into equal heads: dim 3 with 2 heads passed
        # validate, then every fit of the arm raised 'embed_dim must be divisible by num_heads'
        if self.attention and self.dim % self.heads:
            raise ValueError(
                f"@dim: {self.dim} is not a multiple of heads ({self.heads}); attention splits "
                "dim into equal heads"
            )
        return self


class NativeSASRec:
    Params = NativeSASRecParams
    surfaces = frozenset({"list", "carousel"})

    def __init__(self, params: NativeSASRecParams, ctx: RecommenderContext) -> None:
        import torch  # lazily: listing and validating never load torch

        self.name = "sasrec_native"
        self.params = params
        self.rng = ctx.rng
        self.torch_rng = torch.Generator().manual_seed(int(ctx.rng.integers(2**62)))
        self.popularity = PopularityRecommender(PopularityParams(), ctx)
        self.net: Any = None  # the torch encoder (recommenders/native_sasrec_net.py)
        self.n_items = 0
        self.recent = np.zeros((ctx.n_users, params.max_len), np.int64)  # left-padded, 1-based

    def _push(self, users: np.ndarray, items: np.ndarray) -> None:
        """Append one click per (unique) user to their window of recent clicks."""
        self.recent[users, :-1] = self.recent[users, 1:]
        self.recent[users, -1] = items + 1

    def fit(self, history: Interactions) -> None:
        self.popularity.fit(history)
        self.recent[:] = 0
        if len(history) < 2:
            return
        p = self.params
        order = np.lexsort((history.time, history.user))
        users, items = history.user[order], history.item[order]
        starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
        ends = np.r_[starts[1:], users.size]
        rank = np.arange(users.size) - np.repeat(starts, ends - starts)
        self.recent[users[ends - 1]] = self._window(items, rank, ends - 1)
        # Training windows tile each user's clicks from the latest back, max_len at a time:
        # a window ending at click e reads clicks e-max_len+1..e and at every position
        # predicts the click after it, so every click after a user's first is a target once.
        tail = np.repeat(ends - 1, ends - starts) - np.arange(users.size)  # clicks after this
        window_end = np.flatnonzero((tail >= 1) & ((tail - 1) % p.max_len == 0))
        if window_end.size == 0:
            # no user has clicked twice, so no click follows another: nothing to learn, and
            # popularity serves everyone (was: an epoch of one empty batch, which the encoder
            # could not reshape, failed the cell)
            self.net = None
            return
        windows = self._window(items, rank, window_end)
        targets = self._window(items, rank, window_end + 1) - 1  # -1: no target
        targets[windows == 0] = -1  # a padded position predicts nothing
        self.n_items = int(history.item.max()) + 1
        self.net = self._train(windows, targets)

    def _window(self, items: np.ndarray, rank: np.ndarray, end: np.ndarray) -> np.ndarray:
        """[len(end), max_len] 1-based item ids of the clicks up to each of ``end`` by the same
        user (``rank``: a click's place in its user's time-ordered clicks), left-padded with
        0."""
        offsets = np.arange(-self.params.max_len + 1, 1)
        index = end[:, None] + offsets[None, :]
        valid = offsets[None, :] >= -rank[end, None]
        return np.where(valid, items[np.maximum(index, 0)] + 1, 0)

    def _network(self) -> Any:
        """The sequence encoder (subclasses swap it; the training protocol stays the same)."""
        from recarena.recommenders.native_sasrec_net import _Encoder

        return _Encoder(self.n_items, self.params)

    def _train(self, windows: np.ndarray, targets: np.ndarray) -> Any:
        import torch  # lazily: listing and validating never load torch

        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.rng.integers(2**62)))  # init and dropout, scoped
            net = self._network()
            optimizer = torch.optim.Adam(net.parameters(), lr=p.lr)
            net.train()
            x_all = torch.from_numpy(windows)
            counts = (targets >= 0).sum(axis=1)
            for _ in range(p.epochs):
                for batch in self._epoch_batches(counts):
                    wanted = targets[batch]
                    real = wanted >= 0
                    states = net(x_all[batch])[torch.from_numpy(real)]
                    if self.n_items > p.softmax_items:
                        logits, goal = self._sampled_logits(net, states, wanted[real])
                    else:
                        logits, goal = net.logits(states), torch.from_numpy(wanted[real])
                    loss = torch.nn.functional.cross_entropy(logits, goal)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        net.eval()
        return net

    def _epoch_batches(self, counts: np.ndarray) -> list[np.ndarray]:
        """One epoch's batches of window rows: the windows in a fresh random order, as many as
        hold ``epoch_samples`` targets, cut into batches of about ``batch_size`` targets (a
        window is never split; every batch holds at least one window)."""
        p = self.params
        order = self.rng.permutation(counts.size)
        total = np.cumsum(counts[order])
        if p.epoch_samples is not None:
            order = order[: max(1, int(np.searchsorted(total, p.epoch_samples, side="right")))]
            total = total[: order.size]
        group = (total - 1) // p.batch_size
        cuts = np.flatnonzero(np.diff(group)) + 1
        return np.split(order, cuts)

    def _sampled_logits(self, net: Any, states: Any, targets: np.ndarray) -> tuple[Any, Any]:
        """Each row's score of its own target (column 0) beside its scores of a uniform draw of
        ``negatives`` items shared by the batch; a draw that is the row's own target is
        masked out. The draw comes from the recommender's seeded stream, so a fit stays
        reproducible.

        Why the batch's targets are not shared as negatives: they are drawn in proportion to
        popularity, so a popular movie would be pushed down as some other row's negative far
        more often than a rare one, with nothing to correct for it. On ml-latest-small, forced
        into sampling at 2,048 items, that halved SASRec's held-out NDCG@10 (0.077 full, 0.038
        and 0.027 over two seeds). Uniform negatives have the same sampling probability for every
        item, so the sampled softmax needs no correction term."""
        import torch  # lazily: listing and validating never load torch

        draws = self.rng.integers(0, self.n_items, self.params.negatives)
        weights = net.items.weight  # row 0 is the padding
        wanted = torch.from_numpy(targets + 1)
        own = (states * weights[wanted]).sum(-1, keepdim=True)
        others = states @ weights[torch.from_numpy(draws + 1)].T
        hit = torch.from_numpy(draws[None, :] == targets[:, None])
        others = others.masked_fill(hit, float("-inf"))
        return torch.cat([own, others], dim=1), torch.zeros(targets.size, dtype=torch.int64)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        import torch  # lazily: listing and validating never load torch

        fallback = self.popularity.recommend(requests)
        if self.net is None:
            return fallback
        rows = np.flatnonzero(self.recent[requests.user, -1] > 0)
        if rows.size == 0:
            return fallback
        seq = self.recent[requests.user[rows]].copy()
        seq[seq > self.n_items] = 0  # items newer than the model are unknown to it
        with torch.no_grad():
            logits = self.net.logits(self.net(torch.from_numpy(seq))[:, -1]).numpy()
        n = requests.catalog.n_items
        scores = np.full((rows.size, n), -np.inf)
        scores[:, : min(n, self.n_items)] = logits[:, : min(n, self.n_items)]
        return top_k_over_fallback(fallback, rows, scores, requests)

    def update(self, feedback: FeedbackBatch) -> None:
        rows = np.flatnonzero(feedback.clicked.any(axis=1))
        if rows.size:
            items = feedback.slates.items[rows, feedback.clicked[rows].argmax(axis=1)]
            self._push(feedback.requests.user[rows], items)
