"""Plug-ins of every engine-driven kind that misbehave in ways tests/test_hostile_plugins2.py
checks: methods that never run their body when called (``async def``, ``yield``), and code
that prints to stdout outside a cell.

Each is referenced from a scenario as ``tests.hostile_plugins2:<Name>``, exactly as a user's
own plug-in would be.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from recarena.agents.creators.strategies import StaticStrategy
from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import Metric
from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.crs import RecommendOnlyCRS
from recarena.simulator.core.dialogue import DialogueState, SystemActs
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    PageBatch,
    RequestBatch,
    ResponseBatch,
    SlateBatch,
)
from tests.plugin_kinds import PAGES, ShortList
from tests.slate_plugins import Honest

SAID = "said by a plug-in"
"""What the printing plug-ins print: a test finds it on stderr and never on stdout."""


# -------------------------------------------- methods whose body a plain call never runs
class AsyncFit(Honest):
    """``fit`` written as a coroutine: called, it returns one that nobody awaits."""

    async def fit(self, history: Interactions) -> None:  # type: ignore[override]
        raise AssertionError("never reached")


class GeneratorFit(Honest):
    """``fit`` that yields progress: called, it returns a generator that nobody iterates."""

    def fit(self, history: Interactions) -> Iterator[int]:  # type: ignore[override]
        yield len(history)


class AsyncUpdate(Honest):
    async def update(self, feedback: FeedbackBatch) -> None:  # type: ignore[override]
        return None


class AsyncRecommend(Honest):
    async def recommend(self, requests: RequestBatch) -> SlateBatch:  # type: ignore[override]
        return super().recommend(requests)


class AsyncAct(RecommendOnlyCRS):
    """A conversational policy whose ``act`` is a coroutine."""

    async def act(self, state: DialogueState) -> SystemActs:  # type: ignore[override]
        return super().act(state)


class AsyncRespond(RuleUserPolicy):
    async def respond(self, pages: PageBatch) -> ResponseBatch:  # type: ignore[override]
        return super().respond(pages)


class GeneratorStrategy(StaticStrategy):
    name = "generator"

    def update(self, mix: Any, stats: Any, rng: Any) -> Any:
        yield mix


class AsyncLayout(ShortList):
    async def layout(self, recommender: Any, requests: RequestBatch, state: Any) -> Any:  # type: ignore[override]
        return None


async def async_estimator(sums: dict[str, np.ndarray]) -> np.ndarray:
    return sums["ips"]


# --------------------------------------------------------- code that prints outside a cell
class PrintsWhenBuilt(Honest):
    """Prints from its constructor (the preflight builds it once, outside any cell)."""

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        print(SAID, "recommender")


class PolicyPrintsWhenBuilt(RuleUserPolicy):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        print(SAID, "user policy")


class SurfacePrintsWhenBuilt(ShortList):
    def __init__(self, params: dict[str, Any], position_decay: float) -> None:
        super().__init__(params, position_decay)
        print(SAID, "surface")


class StrategyPrintsWhenBuilt(StaticStrategy):
    name = "prints"

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        print(SAID, "creator strategy")


def _loud_pages(logs: RunLogs) -> pl.DataFrame:
    print(SAID, "metric")
    return PAGES.compute(logs)


LOUD_PAGES = Metric(
    "loud_pages", "distinct pages served", "count of request ids", True, _loud_pages
)


def loud_ips(sums: dict[str, np.ndarray]) -> np.ndarray:
    print(SAID, "estimator")
    return np.asarray(sums["ips"] / sums["n"])


# ------------------------------------------------------- writing into the engine's arrays
class FlipsExplore(RuleUserPolicy):
    """Answers as the rule user, then marks every session of the page novelty-seeking in the
    page it was given (the sessions' own state)."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        pages.explore[:] = True
        return response


class ForgetsWhatItShowed(RecommendOnlyCRS):
    """Clears what it recommended earlier in the conversation from the state it is given, so
    that the guard's "not recommended earlier" check would see nothing."""

    def act(self, state: DialogueState) -> SystemActs:
        state.shown[...] = PAD_ITEM
        return super().act(state)


class MovesSessions(RecommendOnlyCRS):
    """Writes into the requests' user ids of a conversation turn."""

    def act(self, state: DialogueState) -> SystemActs:
        state.requests.user[...] = 0
        return super().act(state)


class ReusesItsActBuffer(RecommendOnlyCRS):
    """Keeps its answer and scribbles on it in ``update``, after the user answered the turn and
    before the engine logged it (an online learner reusing its output buffers)."""

    def __init__(self, params: Any, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.last: SystemActs | None = None

    def act(self, state: DialogueState) -> SystemActs:
        self.last = super().act(state)
        return self.last

    def update(self, feedback: FeedbackBatch) -> None:
        super().update(feedback)
        if self.last is not None:
            self.last.slates.items[:] = PAD_ITEM


class LaysOutCopies(ShortList):
    """Lays the recommender's slates out as its own copies (a surface that re-orders would)."""

    def layout(self, recommender: Any, requests: RequestBatch, state: Any) -> SlateBatch:
        slates = recommender.recommend(requests)
        return SlateBatch(slates.items.copy(), slates.scores.copy(), slates.propensity.copy())


class ScribblesOnItsLayout(LaysOutCopies):
    """Keeps its layout and puts item 0 in every first slot of it from ``examine``, which the
    engine calls next with those very items: after the guard checked them."""

    def __init__(self, params: dict[str, Any], position_decay: float) -> None:
        super().__init__(params, position_decay)
        self.last: SlateBatch | None = None

    def layout(self, recommender: Any, requests: RequestBatch, state: Any) -> SlateBatch:
        self.last = super().layout(recommender, requests, state)
        return self.last

    def examine(self, noise_key: np.ndarray, items: np.ndarray) -> np.ndarray:
        examined = super().examine(noise_key, items)
        if self.last is not None:
            self.last.items[:, 0] = 0
        return examined


class UnlocksExclude(Honest):
    """Makes the read-only ``requests.exclude`` writeable again and clears it, so that its own
    slates (and the guard, which reads the same array) see no consumed items."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        requests.exclude.flags.writeable = True
        requests.exclude[...] = PAD_ITEM
        return super().recommend(requests)


class UnlocksHistory(Honest):
    """Makes the clicks it is fitted on writeable again and sorts them in place."""

    def fit(self, history: Interactions) -> None:
        history.item.flags.writeable = True
        history.item.sort()


class RaisesKeyboardInterrupt(Honest):
    """Raises KeyboardInterrupt from ``fit`` (a library's way of giving up, say)."""

    def fit(self, history: Interactions) -> None:
        raise KeyboardInterrupt


class WritesToDescriptorOne(Honest):
    """Writes to file descriptor 1 itself when fitted, as a C library's log line or a
    subprocess it starts would (Python's ``print`` goes through ``sys.stdout``)."""

    def fit(self, history: Interactions) -> None:
        os.write(1, f"{SAID} on descriptor 1\n".encode())


class WritesToDescriptorOneWhenBuilt(WritesToDescriptorOne):
    """Writes to file descriptor 1 when built too (the preflight builds it, outside a cell)."""

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        os.write(1, f"{SAID} on descriptor 1 when built\n".encode())


class PrintsThroughTheCLibrary(Honest):
    """Prints with the C library's ``puts`` when built and when fitted, as a compiled library's
    log line would: buffered by the C library, not Python, while descriptor 1 is no terminal."""

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        ctypes.CDLL(None).puts(f"{SAID} by the C library when built".encode())

    def fit(self, history: Interactions) -> None:
        ctypes.CDLL(None).puts(f"{SAID} by the C library".encode())


def loud_policy(obs: dict[str, np.ndarray]) -> np.ndarray:
    """A policy arm's checkpoint (``type: policy``) that prints, and writes to descriptor 1,
    when asked for scores: validate asks it about a first page."""
    print(SAID, "policy")
    os.write(1, f"{SAID} policy on descriptor 1\n".encode())
    return np.zeros((len(obs["user_id"]), 40))


class IgnoresCtrlC(Honest):
    """Sets SIGINT to SIG_IGN when built (as some training libraries install their own
    handler), then gets a Ctrl-C (sent by itself, so the test needs no timing) when fitted."""

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def fit(self, history: Interactions) -> None:
        os.kill(os.getpid(), signal.SIGINT)


# ------------------------------------------- rebinding a field of the engine's frozen objects
class ForgetsExclusions(Honest):
    """Rebinds the frozen requests' ``exclude`` (``object.__setattr__`` gets past
    ``frozen=True``) to an array of its own where nothing was consumed, so that its slates
    and the guard, which reads the same requests, see no consumed items."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        object.__setattr__(requests, "exclude", np.full_like(requests.exclude, PAD_ITEM))
        return super().recommend(requests)


class MovesFeedbackToUserZero(Honest):
    """Rebinds the user ids of the requests inside the feedback it is given."""

    def update(self, feedback: FeedbackBatch) -> None:
        object.__setattr__(feedback.requests, "user", np.zeros_like(feedback.requests.user))


class PolicyMovesPagesToUserZero(RuleUserPolicy):
    """Answers as the rule user, then rebinds the page's requests' user ids."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        object.__setattr__(pages.requests, "user", np.zeros_like(pages.requests.user))
        return response


class SurfaceForgetsExclusions(ShortList):
    """Rebinds the requests' ``exclude`` before it asks the recommender and lays its slates out."""

    def layout(self, recommender: Any, requests: RequestBatch, state: Any) -> SlateBatch:
        object.__setattr__(requests, "exclude", np.full_like(requests.exclude, PAD_ITEM))
        return super().layout(recommender, requests, state)


# ------------------------------------------------------------------ params that hold a set
class GenreParams(BaseModel):
    """A set of names (written as a YAML list) and a mapping to sets of numbers."""

    model_config = ConfigDict(extra="forbid")
    genres: set[str] = {"drama", "comedy", "action", "horror", "western", "noir", "musical"}
    by_topic: dict[str, frozenset[int]] = {}


class TaggedByGenre(Honest):
    """Honest slates; its params hold sets."""

    Params = GenreParams
