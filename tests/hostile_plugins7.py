"""Plug-ins that misbehave in ways tests/test_hostile_round7.py checks.

Each is referenced from a scenario as ``tests.hostile_plugins7:<Name>``, exactly as a user's
own plug-in would be.
"""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.types import RequestBatch, SlateBatch
from tests.slate_plugins import Honest


class ScoresPastFloat32(Honest):
    """float64 scores of 1e300: finite as answered, inf in the exposures table (float32)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items = self.items(requests)
        return SlateBatch(items, np.full(items.shape, 1e300), np.ones(items.shape, np.float32))


class PropensityUnderFloat32(Honest):
    """float64 propensities of 1e-300: positive as answered, 0.0 in the exposures table."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items = self.items(requests)
        return SlateBatch(items, np.zeros(items.shape, np.float32), np.full(items.shape, 1e-300))


class Float64Answers(Honest):
    """float64 scores and propensities within float32's range: a legitimate answer."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items = self.items(requests)
        return SlateBatch(items, np.full(items.shape, 1e30), np.full(items.shape, 1e-30))
