"""What re-ranking wrappers share: a validated base, its candidate pool and a top-k by score.

A wrapper asks its base for ``candidates`` ranked items, turns the base's scores into a
relevance in [0, 1] per row, adds its own term and keeps the k best. Rows the wrapper has no
opinion on keep the base's order exactly (a stable sort of an unchanged score), so a wrapper
with its knob at zero serves what its base serves.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.registry import build_base, validated_base_params
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class PoolParams(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    base: str = "popularity"
    base_params: dict = Field(default_factory=dict)
    candidates: int = Field(default=100, ge=1, le=5000)
    """How many of the base's ranked items the wrapper chooses from."""

    @model_validator(mode="after")
    def _validate_base(self) -> PoolParams:
        self.base_params = validated_base_params(self.base, self.base_params)
        return self


def candidate_width(requests: RequestBatch, candidates: int) -> int:
    """How many ranked items a wrapper asks its base for: ``candidates``, at least the page's k,
    at most the items published. A pool wider than the catalog is only padding, and a wrapper
    that compares every pair of its pool (mmr) took minutes a page at 5,000 candidates over a
    15-item catalog: a run that validate accepted and that never ended."""
    return max(requests.k, min(candidates, requests.catalog.n_items))


def pool_relevance(pool: SlateBatch) -> np.ndarray:
    """[B, C] the base's scores min-max normalised per row into [0, 1] (by rank when the base
    has none); −inf on padding."""
    scores = pool.scores.astype(np.float64)
    by_rank = 1.0 - np.arange(scores.shape[1]) / max(scores.shape[1] - 1, 1)
    scores = np.where(np.isnan(scores), by_rank[None, :], scores)
    low = scores.min(axis=1, keepdims=True)
    high = scores.max(axis=1, keepdims=True)
    spread = np.where(high > low, high - low, 1.0)
    relevance = np.where(high > low, (scores - low) / spread, 1.0)
    return np.where(pool.items != PAD_ITEM, relevance, -np.inf)


def top_k_of_pool(pool: SlateBatch, score: np.ndarray, k: int) -> SlateBatch:
    """The k best pool entries per row by ``score`` (ties keep the base's order)."""
    score = np.where(pool.items != PAD_ITEM, score, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    items = np.take_along_axis(pool.items, order, axis=1)
    chosen = np.take_along_axis(score, order, axis=1)
    items = np.where(np.isfinite(chosen), items, PAD_ITEM)
    propensity = np.take_along_axis(pool.propensity, order, axis=1)
    return SlateBatch(items, chosen.astype(np.float32), propensity)


class PoolWrapper:
    """Base class: delegates fit/update to the base; ``pool`` asks it for the candidates."""

    Params: type[PoolParams] = PoolParams
    surfaces = frozenset({"list"})

    def __init__(self, params: PoolParams, ctx: RecommenderContext) -> None:
        self.params = params
        self.n_users = ctx.n_users
        self.n_topics = ctx.n_topics
        self.base = build_base(params.base, params.base_params, ctx)

    def fit(self, history: Interactions) -> None:
        self.base.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.base.update(feedback)

    def pool(self, requests: RequestBatch) -> tuple[SlateBatch, np.ndarray]:
        """The base's top ``candidate_width`` items and their relevance."""
        wide = replace(requests, k=candidate_width(requests, self.params.candidates))
        pool = self.base.recommend(wide)
        return pool, pool_relevance(pool)


def topic_mix(topics: np.ndarray) -> np.ndarray:
    """Rows normalised to sum to 1 (zero rows stay zero)."""
    total = topics.sum(axis=-1, keepdims=True)
    return topics / np.maximum(total, 1e-12)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[B, C] cosine between each row's vector a [B, T] and its candidates b [B, C, T]."""
    norm_a = np.linalg.norm(a, axis=-1)[:, None]
    norm_b = np.linalg.norm(b, axis=-1)
    return np.einsum("bt,bct->bc", a, b) / np.maximum(norm_a * norm_b, 1e-12)
