"""Plug-in recommenders that break one slate rule each (tests/test_slate_guard.py).

Each is referenced from a scenario as ``tests.slate_plugins:<Class>``, exactly as a user's own
recommender would be, so the test goes through the registry, the engine and the guard.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.slates import top_k_from_ranking
from recarena.simulator.core.dialogue import ASK, RECOMMEND, UNKNOWN, DialogueState, SystemActs
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class Honest:
    """Newest unseen items first: a legitimate slate on every call."""

    Params = NoParams
    surfaces = frozenset({"list"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = type(self).__name__

    def fit(self, history: Interactions) -> None:
        return None

    def update(self, feedback: FeedbackBatch) -> None:
        return None

    def items(self, requests: RequestBatch) -> np.ndarray:
        ranking = np.arange(requests.catalog.n_items - 1, -1, -1, dtype=np.int64)
        return top_k_from_ranking(ranking, requests.exclude, requests.k)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        items = self.items(requests)
        shape = items.shape
        return SlateBatch(items, np.zeros(shape, np.float32), np.ones(shape, np.float32))


class SameItemEverywhere(Honest):
    """Item 0 in every slot (the recommender that "won" +21.7% before the guard)."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        return np.zeros((len(requests), requests.k), np.int64)


class IgnoresExclude(Honest):
    """Puts the user's first consumed item (when there is one) in slot 0."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        if requests.exclude.size:
            first = requests.exclude[:, 0]
            seen = first != PAD_ITEM
            items[seen, 0] = first[seen]
            # keep the slate free of duplicates so only the exclude rule is broken
            for row in np.flatnonzero(seen):
                dupes = np.flatnonzero(items[row, 1:] == first[row]) + 1
                items[row, dupes] = PAD_ITEM
        return items


class OutOfRange(Honest):
    """An id one past the catalog in the last slot."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        items[:, -1] = requests.catalog.n_items
        return items


class FloatIds(Honest):
    def items(self, requests: RequestBatch) -> np.ndarray:
        return super().items(requests).astype(np.float64)


class WrongShape(Honest):
    """One slot too many."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        return np.concatenate([items, np.full((len(requests), 1), PAD_ITEM, np.int64)], axis=1)


class BadPropensity(Honest):
    """Propensity 0 for a shown item (IPS would divide by it)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        slates.propensity[:, 0] = 0.0
        return slates


class StringScores(Honest):
    """Scores as text (a formatted column passed on by mistake)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        return SlateBatch(slates.items, slates.scores.astype(str), slates.propensity)


class ComplexScores(Honest):
    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        return SlateBatch(slates.items, slates.scores.astype(np.complex128), slates.propensity)


class ObjectPropensity(Honest):
    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        return SlateBatch(slates.items, slates.scores, slates.propensity.astype(object))


class HugeScores(Honest):
    """float64 scores beyond float32's range (a product of large weights, say): inf in the log,
    so refused."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        return SlateBatch(slates.items, np.full(slates.items.shape, 1e300), slates.propensity)


class ReturnsTuple(Honest):
    """The three arrays, but not as a SlateBatch."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        return (slates.items, slates.scores, slates.propensity)  # type: ignore[return-value]


class ClearsExclude(Honest):
    """Wipes the user's consumed items from the request, then shows one of them."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        requests.exclude[:] = PAD_ITEM
        return super().recommend(requests)


class NormalisesCatalog(Honest):
    """Rescales the catalog's topic mixes in place (a plausible mistake, not malice)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        requests.catalog.topics *= 2.0
        return super().recommend(requests)


class SortsHistory(Honest):
    """Sorts the clicks it is fitted on in place."""

    def fit(self, history: Interactions) -> None:
        history.item.sort()


class RewritesClicks(Honest):
    """Marks every shown slot clicked in its feedback (an online learner's mistake)."""

    def update(self, feedback: FeedbackBatch) -> None:
        feedback.clicked[:] = True


class ReusesItsBuffer(Honest):
    """Keeps its answer's arrays and scribbles on them in ``update``, after the user saw the
    page and before the engine logged it: what was checked and shown is what is logged."""

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.last: SlateBatch | None = None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        self.last = super().recommend(requests)
        return self.last

    def update(self, feedback: FeedbackBatch) -> None:
        if self.last is not None:
            self.last.items[:] = PAD_ITEM


class ExitsInFit(Honest):
    """Calls ``sys.exit()`` (code None, i.e. 0) when fitted: a script's habit in a plug-in."""

    def fit(self, history: Interactions) -> None:
        raise SystemExit


class ExitsInRecommend(Honest):
    """Calls ``sys.exit(3)`` on its first page."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        raise SystemExit(3)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ failed too")


class RaisesUnprintable(Honest):
    """Raises an exception whose message cannot be printed."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        raise _Unprintable


class SwallowsErrors(Honest):
    """Slow pages inside ``try/except Exception`` (a common habit in user code), which used to
    swallow the stop raised by a signal in the run's own process (tests/test_runs.py)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        import contextlib
        import time

        with contextlib.suppress(Exception):  # the habit under test
            time.sleep(0.05)
        return super().recommend(requests)


class FailsWhenStopped(Honest):
    """Slow pages whose clean-up fails when a stop interrupts them: the clean-up's error replaces
    the stop (as closing a half-written file can), which used to mark the cell failed."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        import time

        try:
            time.sleep(0.05)
        except KeyboardInterrupt as stop:
            raise RuntimeError("clean-up after the stop failed") from stop
        return super().recommend(requests)


class MatrixItems(Honest):
    """Item ids as an ``np.matrix``: the right shape, but ``[:, :, None]`` fails on it."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        return np.asmatrix(super().items(requests))


class ListItems(Honest):
    """Item ids as a nested list (``.tolist()`` left in by mistake)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        return SlateBatch(slates.items.tolist(), slates.scores, slates.propensity)  # type: ignore[arg-type]


class MaskedItems(Honest):
    """Item ids as a masked array, the last slot masked: the mask would be ignored."""

    def items(self, requests: RequestBatch) -> np.ndarray:
        items = super().items(requests)
        mask = np.zeros(items.shape, bool)
        mask[:, -1] = True
        return np.ma.masked_array(items, mask=mask)


class FitRaises(Honest):
    """A bug in its own fit."""

    def fit(self, history: Interactions) -> None:
        raise KeyError("user_id")


class UpdateRaisesGeneratorExit(Honest):
    """Raises a BaseException that is not an Exception (as a closed generator can)."""

    def update(self, feedback: FeedbackBatch) -> None:
        raise GeneratorExit


class LeavesAThreadRunning(Honest):
    """Starts a worker thread in fit (non-daemon, Python's default) that never ends."""

    def fit(self, history: Interactions) -> None:
        import threading

        never = threading.Event()
        threading.Thread(target=never.wait, name="plugin-worker").start()


class PrintsEveryPage(Honest):
    """Prints a debugging line on every page (a habit of user code)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        print(f"debug: {len(requests)} requests")
        return super().recommend(requests)


class CallsOsExit(Honest):
    """Ends the process with ``os._exit(0)`` on its first page (no clean-up, no exception)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        import os

        os._exit(0)


class InfiniteScores(Honest):
    """+inf as the score of a filled slot (logged as inf in the exposures table)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        scores = slates.scores.copy()
        scores[:, 0] = np.inf
        return SlateBatch(slates.items, scores, slates.propensity)


class UnscoredAndPaddedWithInf(Honest):
    """Legal: NaN scores (no score) on filled slots, -inf on an empty last slot."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        items = slates.items.copy()
        items[:, -1] = PAD_ITEM
        scores = np.where(items == PAD_ITEM, -np.inf, np.nan).astype(np.float32)
        return SlateBatch(items, scores, slates.propensity)


# ---------------------------------------------------- conversational policies (fit and act only)
class HonestConversation:
    """Recommends the newest items not consumed and not shown yet; no update (the contract
    asks a conversational policy for fit and act only)."""

    Params = NoParams
    surfaces = frozenset({"conversation"})

    def __init__(self, params: NoParams, ctx: RecommenderContext) -> None:
        self.name = type(self).__name__

    def fit(self, history: Interactions) -> None:
        return None

    def slates(self, state: DialogueState) -> SlateBatch:
        requests = state.requests
        exclude = np.concatenate([requests.exclude, state.shown], axis=1)
        ranking = np.arange(requests.catalog.n_items - 1, -1, -1, dtype=np.int64)
        items = top_k_from_ranking(ranking, exclude, requests.k)
        shape = items.shape
        return SlateBatch(items, np.zeros(shape, np.float32), np.ones(shape, np.float32))

    def act(self, state: DialogueState) -> SystemActs:
        batch = len(state.requests)
        return SystemActs(
            np.full(batch, RECOMMEND, np.int8),
            np.full(batch, UNKNOWN, np.int16),
            self.slates(state),
            ("",) * batch,
        )


class ActRaises(HonestConversation):
    def act(self, state: DialogueState) -> SystemActs:
        raise KeyError("no belief for this user")


class ActAnswersNone(HonestConversation):
    def act(self, state: DialogueState) -> SystemActs:
        return None  # type: ignore[return-value]


class ActCodeSeven(HonestConversation):
    """An act code that is neither ask nor recommend (it indexed SYSTEM_ACTS: IndexError)."""

    def act(self, state: DialogueState) -> SystemActs:
        system = super().act(state)
        return replace(system, act=np.full_like(system.act, 7))


class AsksAboutNoFacet(HonestConversation):
    """Asks about facet UNKNOWN (-1): it ran on, marking the last facet asked."""

    def act(self, state: DialogueState) -> SystemActs:
        system = super().act(state)
        empty = np.full(system.slates.items.shape, PAD_ITEM, np.int64)
        return replace(
            system,
            act=np.full_like(system.act, ASK),
            slates=SlateBatch(empty, system.slates.scores, system.slates.propensity),
        )


class ActsAsList(HonestConversation):
    def act(self, state: DialogueState) -> SystemActs:
        system = super().act(state)
        return replace(system, act=system.act.tolist())


class TextIsNone(HonestConversation):
    def act(self, state: DialogueState) -> SystemActs:
        return replace(super().act(state), text=None)


class RepeatsItself(HonestConversation):
    """Recommends the same items every turn, ignoring what it showed before."""

    def slates(self, state: DialogueState) -> SlateBatch:
        return super().slates(replace(state, shown=state.shown[:, :0]))


class InfiniteConversationScores(HonestConversation):
    def slates(self, state: DialogueState) -> SlateBatch:
        slates = super().slates(state)
        return SlateBatch(slates.items, np.full(slates.items.shape, -np.inf), slates.propensity)
