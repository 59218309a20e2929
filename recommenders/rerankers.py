"""Slate re-rankers: wrappers that re-order any recommender's candidates for a second goal.

Each asks its base for ``candidates`` items, then fills the k slots greedily:

* ``mmr`` — Maximal Marginal Relevance (Carbonell & Goldstein, 1998):
  ``λ·rel(i) − (1−λ)·max_{j chosen} cos(x_i, x_j)`` over topic vectors: diversity.
* ``calibrated`` — calibrated recommendation (Steck, 2018): the next item maximises
  ``(1−λ)·Σ rel − λ·KL(p_u ‖ q̃)``, where p_u is the user's topic mix from their clicks, q the
  slate's topic mix and q̃ = (1−α)·q + α·p_u: the slate mirrors the user's interests.
* ``provider_fair`` — exposure fairness for creators: ``rel(i) − β·e(creator_i)``, where e is the
  creator's share of exposure served so far divided by the largest share, among candidates whose
  relevance is at least ``min_relevance`` × the row's best (the relevance constraint). Creators the
  policy has under-exposed rise; nothing too irrelevant is promoted to achieve it (if fewer
  candidates pass than there are slots, the rest are filled by relevance alone).

Relevance is the base's score min-max normalised per row (rank-based when the base has no
scores). The output is deterministic given the base's, so propensities pass through: exact for
deterministic bases, approximate otherwise. Each re-ranker tracks its effect (``effect()``):
intra-list diversity and creator-exposure Gini of the base's top-k vs what it served.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.pool_rerank import PoolParams, candidate_width
from recarena.recommenders.registry import build_base
from recarena.simulator.core.measures import gini
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class _WrapperParams(PoolParams):
    """A base recommender and its candidate pool (validated like every pool wrapper's)."""

    base: str = "mf"
    candidates: int = Field(default=50, ge=1, le=5000)


class MMRParams(_WrapperParams):
    lambda_: float = Field(default=0.7, ge=0, le=1, alias="lambda")


class CalibratedParams(_WrapperParams):
    lambda_: float = Field(default=0.5, ge=0, le=1, alias="lambda")
    alpha: float = Field(default=0.01, gt=0, lt=1)


class ProviderFairParams(_WrapperParams):
    beta: float = Field(default=0.5, ge=0)
    min_relevance: float = Field(default=0.5, ge=0, le=1)


def intra_list_diversity(topics: np.ndarray, items: np.ndarray) -> np.ndarray:
    """[B] 1 − mean pairwise cosine of the topic vectors in each slate."""
    x = topics[np.maximum(items, 0)]
    x = x / np.maximum(np.linalg.norm(x, axis=2, keepdims=True), 1e-12)
    sim = np.einsum("bit,bjt->bij", x, x)
    k = items.shape[1]
    if k < 2:
        return np.zeros(items.shape[0])
    off_diagonal = (sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)) / (k * (k - 1))
    return 1.0 - off_diagonal


class _Reranker:
    Params: type[_WrapperParams] = _WrapperParams
    surfaces = frozenset({"list", "carousel"})

    def __init__(self, params: _WrapperParams, ctx: RecommenderContext) -> None:

        self.params = params
        self.base = build_base(params.base, params.base_params, ctx)
        self._diversity: dict[str, list[float]] = {"base": [], "reranked": []}
        self._exposure = {"base": np.zeros(0), "reranked": np.zeros(0)}

    def fit(self, history: Interactions) -> None:
        self.base.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.base.update(feedback)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        k = requests.k
        pool = self.base.recommend(
            replace(requests, k=candidate_width(requests, self.params.candidates))
        )
        relevance = _relevance(pool)
        chosen = self._select(requests, pool.items, relevance, k)
        items = np.take_along_axis(pool.items, chosen, axis=1)
        propensity = np.take_along_axis(pool.propensity, chosen, axis=1)
        scores = np.take_along_axis(relevance, chosen, axis=1).astype(np.float32)
        items = np.where(chosen >= 0, items, PAD_ITEM)
        self._track(requests, pool.items[:, :k], items)
        return SlateBatch(items, scores, propensity)

    def _select(self, requests, candidates, relevance, k) -> np.ndarray:
        raise NotImplementedError

    def _track(self, requests: RequestBatch, base_items: np.ndarray, items: np.ndarray) -> None:
        topics = requests.catalog.topics
        self._diversity["base"].append(intra_list_diversity(topics, base_items).mean())
        self._diversity["reranked"].append(intra_list_diversity(topics, items).mean())
        creators = requests.catalog.creator
        n = int(creators.max()) + 1 if creators.size else 0
        for key, shown in (("base", base_items), ("reranked", items)):
            counts = np.bincount(creators[shown[shown >= 0]], minlength=n).astype(np.float64)
            old = self._exposure[key]
            grown = np.zeros(max(n, old.size))
            grown[: old.size] = old
            grown[: counts.size] += counts
            self._exposure[key] = grown

    def effect(self) -> dict[str, float]:
        """Mean intra-list diversity and creator-exposure Gini: base top-k vs re-ranked."""
        return {
            "diversity_base": float(np.mean(self._diversity["base"] or [0.0])),
            "diversity_reranked": float(np.mean(self._diversity["reranked"] or [0.0])),
            "creator_gini_base": gini(self._exposure["base"]),
            "creator_gini_reranked": gini(self._exposure["reranked"]),
        }


def _relevance(pool: SlateBatch) -> np.ndarray:
    """Per-row min-max normalised scores in [0, 1]; by rank where the base gives none (NaN) or
    an unbounded one (±inf: a reranker's own gains, when it is the base of another)."""
    scores = pool.scores.astype(np.float64)
    rank_based = 1.0 - np.arange(scores.shape[1]) / max(scores.shape[1] - 1, 1)
    scores = np.where(np.isfinite(scores), scores, rank_based[None, :])
    low, high = scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True)
    rel = np.where(high > low, (scores - low) / np.where(high > low, high - low, 1), 1.0)
    return np.where(pool.items >= 0, rel, -np.inf)


def _greedy(relevance: np.ndarray, k: int, gain) -> np.ndarray:
    """Fill k slots; ``gain(chosen_mask, step) -> [B, C]`` scores the remaining candidates."""
    batch, width = relevance.shape
    chosen = np.full((batch, k), -1, np.int64)
    taken = np.zeros((batch, width), bool)
    rows = np.arange(batch)
    for step in range(min(k, width)):
        score = gain(taken, step)
        score = np.where(taken | ~np.isfinite(relevance), -np.inf, score)
        pick = score.argmax(axis=1)
        ok = np.isfinite(score[rows, pick])
        chosen[ok, step] = pick[ok]
        taken[rows[ok], pick[ok]] = True
    return chosen


class MMR(_Reranker):
    Params = MMRParams
    params: MMRParams

    def __init__(self, params: MMRParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "mmr"

    def _select(self, requests, candidates, relevance, k) -> np.ndarray:
        lam = self.params.lambda_
        x = requests.catalog.topics[np.maximum(candidates, 0)].astype(np.float64)
        x /= np.maximum(np.linalg.norm(x, axis=2, keepdims=True), 1e-12)
        sim = np.einsum("bit,bjt->bij", x, x)

        def gain(taken, step):
            if step == 0:
                return relevance
            redundancy = np.where(taken[:, None, :], sim, -np.inf).max(axis=2)
            # _greedy drops candidates of non-finite relevance and rows with nothing taken; as
            # 0 here, lambda 0 or 1 no longer multiplies an infinity by 0 (a RuntimeWarning)
            finite = np.where(np.isfinite(relevance), relevance, 0.0)
            return lam * finite - (1 - lam) * np.where(np.isfinite(redundancy), redundancy, 0.0)

        return _greedy(relevance, k, gain)


class Calibrated(_Reranker):
    Params = CalibratedParams
    params: CalibratedParams

    def __init__(self, params: CalibratedParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "calibrated"
        self.user_topics = np.zeros((ctx.n_users, ctx.n_topics))
        self._topics_of: np.ndarray | None = None
        self._history: Interactions | None = None
        """Clicks handed to fit(), folded into user_topics at the next request."""

    def fit(self, history: Interactions) -> None:
        super().fit(history)
        self._history = history

    def _profile(self, requests: RequestBatch) -> np.ndarray:
        """[B, T] each user's topic mix over their clicks (uniform without any)."""
        topics = requests.catalog.topics
        history = self._history
        if history is not None and len(history):
            self.user_topics[:] = 0
            np.add.at(self.user_topics, history.user, topics[history.item])
            self._history = None
        p = self.user_topics[requests.user]
        total = p.sum(axis=1, keepdims=True)
        return np.where(total > 0, p / np.maximum(total, 1e-12), 1.0 / p.shape[1])

    def _select(self, requests, candidates, relevance, k) -> np.ndarray:
        lam, alpha = self.params.lambda_, self.params.alpha
        p = self._profile(requests)  # [B, T]
        x = requests.catalog.topics[np.maximum(candidates, 0)].astype(np.float64)  # [B, C, T]
        rel = np.where(np.isfinite(relevance), relevance, 0.0)
        state = {"sum": np.zeros_like(p), "rel": np.zeros(p.shape[0])}

        def gain(taken, step):
            if step > 0:
                last = self._last
                state["sum"] += x[np.arange(x.shape[0]), last]
                state["rel"] += rel[np.arange(x.shape[0]), last]
            mix = state["sum"][:, None, :] + x  # slate topic mass if each candidate joined
            q = mix / np.maximum(mix.sum(axis=2, keepdims=True), 1e-12)
            q = (1 - alpha) * q + alpha * p[:, None, :]
            # a topic the user never clicked adds 0 (0 log 0 = 0): where the slate lacks it
            # too, q is 0 there and the term was 0 x inf = NaN, which argmax took as the best
            # (one-topic items, topic_spread 0, with a warning mid-run)
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = p[:, None, :] * np.log(np.maximum(p[:, None, :], 1e-12) / q)
            kl = np.where(p[:, None, :] > 0, terms, 0.0).sum(axis=2)
            score = (1 - lam) * (state["rel"][:, None] + rel) - lam * kl
            masked = np.where(taken | ~np.isfinite(relevance), -np.inf, score)
            self._last = masked.argmax(axis=1)
            return score

        return _greedy(relevance, k, gain)


class ProviderFair(_Reranker):
    Params = ProviderFairParams
    params: ProviderFairParams

    def __init__(self, params: ProviderFairParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "provider_fair"
        self.served = np.zeros(0)

    def _select(self, requests, candidates, relevance, k) -> np.ndarray:
        creators = requests.catalog.creator
        n = int(creators.max()) + 1 if creators.size else 1
        if self.served.size < n:
            self.served = np.concatenate([self.served, np.zeros(n - self.served.size)])
        share = self.served / max(self.served.max(), 1.0)
        creator = creators[np.maximum(candidates, 0)]
        best = np.where(np.isfinite(relevance), relevance, -np.inf).max(axis=1, keepdims=True)
        eligible = relevance >= self.params.min_relevance * best
        # eligible items by fairness-adjusted score; if too few pass the relevance constraint,
        # the rest of the slate is filled by relevance alone, after every eligible item
        fair = relevance - self.params.beta * share[creator]
        score = np.where(eligible, fair + 10.0, relevance - 10.0)
        chosen = _greedy(relevance, k, lambda taken, step: score)
        shown = np.take_along_axis(candidates, np.maximum(chosen, 0), axis=1)[chosen >= 0]
        np.add.at(self.served, creators[shown], 1.0)
        return chosen
