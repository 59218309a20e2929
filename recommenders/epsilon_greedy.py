"""Epsilon-greedy exploration around any recommender, with exact per-slot propensities."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.registry import build_base, validated_base_params
from recarena.recommenders.slates import sample_distinct_excluding
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class EpsilonGreedyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(default=0.1, ge=0, le=1)
    base: str = "popularity"
    base_params: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _validate_base(self) -> EpsilonGreedyParams:

        if self.base == "epsilon_greedy":
            raise ValueError("base: epsilon_greedy cannot wrap itself")
        self.base_params = validated_base_params(self.base, self.base_params)
        return self


class EpsilonGreedy:
    """Each slot independently shows, with probability epsilon, a uniform item that is neither
    consumed nor in the base slate; otherwise the base recommender's item.

    Propensity of a shown item at slot j: ``(1 − ε) · p_base`` when it is the base item (random
    picks exclude the base slate, so it can only come from exploiting), ``ε / M`` when explored,
    with M the number of items the explorer could pick; ``p_base`` at a slot the explorer has
    no item left for (j ≥ M), which shows the base item whatever the coin says.
    """

    Params = EpsilonGreedyParams
    surfaces = frozenset({"list"})

    def __init__(self, params: EpsilonGreedyParams, ctx: RecommenderContext) -> None:

        self.name = "epsilon_greedy"
        self.params = params
        self.rng = ctx.rng
        self.base = build_base(params.base, params.base_params, ctx)

    def fit(self, history: Interactions) -> None:
        self.base.fit(history)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        eps = self.params.epsilon
        base = self.base.recommend(requests)
        blocked = np.concatenate([requests.exclude, base.items], axis=1)
        random_items, eligible = sample_distinct_excluding(
            self.rng, requests.catalog.n_items, blocked, requests.k
        )
        can_explore = random_items != PAD_ITEM
        explore = (self.rng.random(base.items.shape) < eps) & can_explore
        items = np.where(explore, random_items, base.items)
        explore_p = eps / np.maximum(eligible, 1)[:, None]
        # a slot with nothing left to explore shows the base item whatever the coin says: its
        # propensity is the base's, not (1 − ε)·p_base (0 at ε = 1, which the slate guard
        # refused: an arm exploring always failed once users had seen most of the catalog)
        exploit_p = np.where(can_explore, 1.0 - eps, 1.0) * base.propensity
        propensity = np.where(explore, explore_p, exploit_p)
        scores = np.where(explore, np.nan, base.scores)
        return SlateBatch(items, scores.astype(np.float32), propensity.astype(np.float32))

    def update(self, feedback: FeedbackBatch) -> None:
        self.base.update(feedback)
