"""Plug-ins that misbehave in ways tests/test_hostile_round7.py checks.

Each is referenced from a scenario as ``tests.hostile_plugins7:<Name>``, exactly as a user's
own plug-in would be.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import replace

import numpy as np

from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.simulator.core.types import PageBatch, RequestBatch, ResponseBatch, SlateBatch
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


class _Rule(RuleUserPolicy):
    """The rule user with one field of its answer replaced (``change``)."""

    def change(self, response: ResponseBatch) -> ResponseBatch:
        return response

    def respond(self, pages: PageBatch) -> ResponseBatch:
        return self.change(super().respond(pages))


class UtilityPastFloat32(_Rule):
    def change(self, response: ResponseBatch) -> ResponseBatch:
        finite = np.isfinite(response.utility)
        utility = np.where(finite, 1e300, response.utility.astype(np.float64))
        return replace(response, utility=utility)


class FatiguePastFloat32(_Rule):
    def change(self, response: ResponseBatch) -> ResponseBatch:
        return replace(response, fatigue=np.full(response.fatigue.shape, 1e300))


class ValuePastFloat32(_Rule):
    def change(self, response: ResponseBatch) -> ResponseBatch:
        value = np.full(response.fatigue.shape, 1e300)
        return replace(response, extra={**response.extra, "value": value})


class NegativeFatigue(_Rule):
    def change(self, response: ResponseBatch) -> ResponseBatch:
        return replace(response, fatigue=np.full(response.fatigue.shape, -1e30))


class SwallowsTheStop(Honest):
    """Sends its own process a Ctrl-C, then catches every stop and goes on (a retry loop
    around ``except BaseException``), for ever."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        while True:
            with contextlib.suppress(BaseException):  # the misbehaviour under test
                time.sleep(0.05)
