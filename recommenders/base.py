"""The recommender contract.

A recommender is built from its validated params and a :class:`RecommenderContext`, then driven
by the engine: ``fit`` on the retrain schedule, ``recommend`` once per page batch, ``update``
after every batch (online learners). It never sees simulator-only truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from recarena.simulator.core.types import FeedbackBatch, Interactions, RequestBatch, SlateBatch


class NoParams(BaseModel):
    """Params model for recommenders that take none; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RecommenderContext:
    """What a recommender may know when it is built.

    ``rng`` is the arm's own stream (derived from seed, replicate and arm name), so the
    recommender's randomness never disturbs the users' common random numbers.
    """

    rng: np.random.Generator
    n_users: int
    n_topics: int
    truth: Callable[[RequestBatch, np.ndarray], np.ndarray] | None = None
    """Simulator-only ground truth: ``truth(requests, items [B, n]) -> [B, n]`` true utilities
    for the current batch. Only oracle policies (upper bounds for reports) may use it."""
    llm_client: Any = None
    """The cell's :class:`recarena.agents.llm.client.LLMClient` for LLM-backed policies
    (``llm_crs``);
    None for every other arm. The model closes it and logs its calls."""
    item_text: Any = None
    """Item titles for prompts (:class:`recarena.agents.llm.item_text.ItemText`); None means
    synthetic titles."""
    exploration_setting: np.ndarray | None = None
    """[U] the exploration knob each user set in the app (its own rate of novelty-seeking
    sessions): a setting users reveal, read by ``cluster_explore`` with ``knob: user``."""
    social_feed: Any = None
    """What friends told each user (:class:`recarena.agents.users.talk.TalkState`, its
    ``feed``) when users talk (population.social.talk); None otherwise."""
    guard_base: Callable[[str, Any], Any] | None = None
    """Set by the engine: ``guard_base(type, recommender)`` puts a plug-in (``module:Class``)
    that a wrapper builds as its ``base`` behind the slate guard, so its answers are checked and
    its failures name it (simulator/engine/slate_guard.py). None: bases are built bare."""


@runtime_checkable
class Recommender(Protocol):
    name: str
    surfaces: frozenset[str]

    def fit(self, history: Interactions) -> None:
        """(Re)train on every click so far (its arrays are shared with the engine: never modify)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        """Fill ``requests.k`` distinct slots per request, never an item in ``requests.exclude``."""

    def update(self, feedback: FeedbackBatch) -> None:
        """Learn online from one served batch; a no-op for batch learners."""
