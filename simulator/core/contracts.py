"""Contracts of the plug-in kinds that the engine drives and that live below it.

Each plug-in kind has one typed contract and one registry (simulator/core/registry.py):

- recommender: ``Recommender`` in recommenders/base.py; registry recommenders/registry.py
- conversational policy: ``ConversationalRecommender`` in core/dialogue.py; the recommender
  registry
- user policy: ``UserPolicy`` (here); registry agents/users/policies.py
- surface: ``Surface`` and its registry in engine/surfaces.py
- creator strategy: ``CreatorStrategy`` and its registry in agents/creators/strategies.py
- metric: ``Metric`` in analysis/metrics_base.py; registry analysis/metrics.py
- OPE estimator: ``Estimator`` and its registry in analysis/ope.py
- executor: ``Executor`` and its registry in simulator/runner

The user policy's contract lives here because both the engine (which calls it) and the users
layer (which implements it) must see it, and they sit on different layers.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from recarena.simulator.core.types import PageBatch, ResponseBatch


@runtime_checkable
class UserPolicy(Protocol):
    """Answers a whole page batch at once: examined, clicked, rating, leave, fatigue."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        """One vectorised answer for every session in the batch."""
        ...

    def utility(self, users: np.ndarray, items: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """[B, k] true utility of ``items`` for ``users`` now (simulator truth, for oracles)."""
        ...
