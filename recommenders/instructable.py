"""Instructable re-ranking: a user's instruction becomes a constraint on its next pages.

RecoWorld's agentic recommender reads the instruction a user about to leave writes, and adapts.
Here the instruction arrives structured in ``FeedbackBatch.instructions`` (what the user said
after a page) and holds for the user's next ``ttl_pages`` pages. Each kind is a re-ranking term
added to the base's relevance (in [0, 1]) with weight ``strength``:

* **less_of_topic t**: ``− x_i[t]``, the named topic sinks;
* **more_of_topic t**: ``+ x_i[t]``, the named topic rises;
* **more_novel**: ``+ (1 − cos(x_i, p_u))``, away from the topics the user has clicked (p_u,
  from the clicks the recommender saw);
* **something_different**: ``+ (1 − cos(x_i, m_u))``, away from the page the user just saw
  (m_u, its mean topic vector).

Users without a live instruction get the base's slate unchanged. ``strength: 0`` (or a
scenario without instructions) is the base.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.pool_rerank import (
    PoolParams,
    PoolWrapper,
    cosine_rows,
    top_k_of_pool,
)
from recarena.simulator.core.instructions import (
    LESS_OF_TOPIC,
    MORE_NOVEL,
    MORE_OF_TOPIC,
    NO_INSTRUCTION,
    SOMETHING_DIFFERENT,
)
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class InstructableParams(PoolParams):
    strength: float = Field(default=1.0, ge=0, le=1e6)
    """Weight of the instruction's term against the base's relevance in [0, 1]; at most 10^6
    (1e300 made the scores infinite in float32 and the slate guard failed every cell)."""
    ttl_pages: int = Field(default=3, ge=1, le=1000)
    """Pages an instruction stays in force for its user."""


def instruction_term(
    kind: np.ndarray,
    topic: np.ndarray,
    candidates: np.ndarray,
    clicked_mix: np.ndarray,
    last_page_mix: np.ndarray,
) -> np.ndarray:
    """[B, C] re-ranking term of each candidate (topic vectors ``candidates`` [B, C, T]) under
    each row's instruction; 0 for rows without one."""
    batch = kind.shape[0]
    rows = np.arange(batch)
    safe_topic = np.maximum(topic, 0).astype(np.int64)
    on_topic = candidates[rows, :, safe_topic]  # [B, C] x_i[t]
    away_from_history = 1.0 - cosine_rows(clicked_mix, candidates)
    away_from_page = 1.0 - cosine_rows(last_page_mix, candidates)
    term = np.zeros(candidates.shape[:2])
    term = np.where((kind == LESS_OF_TOPIC)[:, None], -on_topic, term)
    term = np.where((kind == MORE_OF_TOPIC)[:, None], on_topic, term)
    term = np.where((kind == MORE_NOVEL)[:, None], away_from_history, term)
    return np.where((kind == SOMETHING_DIFFERENT)[:, None], away_from_page, term)


class Instructable(PoolWrapper):
    """Follows users' instructions for a few pages by re-ranking a base's candidates."""

    Params = InstructableParams

    def __init__(self, params: InstructableParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "instructable"
        self.params: InstructableParams = params
        n, t = ctx.n_users, ctx.n_topics
        self.kind = np.full(n, NO_INSTRUCTION, np.int8)
        self.topic = np.full(n, -1, np.int16)
        self.pages_left = np.zeros(n, np.int32)
        self.clicked_mix = np.zeros((n, t), np.float64)
        self.last_page_mix = np.zeros((n, t), np.float64)
        self.followed = 0
        """Pages re-ranked under an instruction (for the effect check in tests and docs)."""

    def fit(self, history: Interactions) -> None:
        super().fit(history)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        users = requests.user
        live = (self.pages_left[users] > 0) & (self.kind[users] != NO_INSTRUCTION)
        if self.params.strength == 0 or not live.any():
            return self.base.recommend(requests)
        pool, relevance = self.pool(requests)
        rows = np.flatnonzero(live)
        topics = requests.catalog.topics[np.maximum(pool.items[rows], 0)].astype(np.float64)
        term = instruction_term(
            self.kind[users[rows]],
            self.topic[users[rows]],
            topics,
            self.clicked_mix[users[rows]],
            self.last_page_mix[users[rows]],
        )
        score = relevance.copy()
        score[rows] += self.params.strength * term
        self.followed += int(rows.size)
        return top_k_of_pool(pool, score, requests.k)

    def update(self, feedback: FeedbackBatch) -> None:
        super().update(feedback)
        users = feedback.requests.user
        items = feedback.slates.items
        topics = feedback.requests.catalog.topics
        shown = topics[np.maximum(items, 0)] * (items != PAD_ITEM)[:, :, None]
        served_live = self.pages_left[users] > 0
        self.pages_left[users[served_live]] -= 1
        self.last_page_mix[users] = (
            shown.sum(axis=1) / np.maximum((items != PAD_ITEM).sum(axis=1), 1)[:, None]
        )
        clicked_rows, clicked_slots = np.nonzero(feedback.clicked)
        if clicked_rows.size:
            self.clicked_mix[users[clicked_rows]] += topics[items[clicked_rows, clicked_slots]]
        instructions = feedback.instructions
        if instructions is None:
            return
        spoke = np.flatnonzero(instructions.given)
        self.kind[users[spoke]] = instructions.kind[spoke]
        self.topic[users[spoke]] = instructions.topic[spoke]
        self.pages_left[users[spoke]] = self.params.ttl_pages
