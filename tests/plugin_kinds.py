"""Plug-ins of every kind, used by tests/test_plugin_kinds.py through ``module:attr`` paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from recarena.agents.creators.strategies import StaticParams, StaticStrategy
from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.analysis.load import RunLogs
from recarena.analysis.metrics_base import CELL, Metric
from recarena.simulator.core.scenario import ListSurface
from recarena.simulator.core.types import PageBatch, ResponseBatch
from recarena.simulator.engine.surfaces import ListView


def _pages(logs: RunLogs) -> pl.DataFrame:
    return (
        logs.exposures.group_by(CELL)
        .agg(pl.col("request_id").n_unique().cast(pl.Float64).alias("value"))
        .collect()
    )


PAGES = Metric("pages_served", "distinct pages served", "count of request ids", True, _pages)


class ClickFirstSlot(RuleUserPolicy):
    """The rule user, except that it clicks the first slot whenever it examined it."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        first = pages.examined[:, 0] & (pages.slates.items[:, 0] >= 0)
        clicked = response.clicked.copy()
        clicked[first] = False
        clicked[first, 0] = True
        return ResponseBatch(
            examined=response.examined,
            clicked=clicked,
            utility=response.utility,
            rating=response.rating,
            leave=response.leave,
            fatigue=response.fatigue,
            extra=response.extra,
        )


class ShortList(ListView):
    """A list surface built from plug-in params (``k``), to check the factory contract."""

    def __init__(self, params: dict[str, Any], position_decay: float) -> None:
        super().__init__(ListSurface(k=int(params.get("k", 3))), position_decay)


class RepeatsTheFirstItem(ShortList):
    """Lays the recommender's first item out twice (a 'featured' slot): it ran without a word."""

    def layout(self, recommender: Any, requests: Any, state: Any) -> Any:
        slates = recommender.recommend(requests)
        items = slates.items.copy()
        items[:, 1] = items[:, 0]
        return type(slates)(items, slates.scores, slates.propensity)


class ExaminesWholePages(ShortList):
    """One examined flag per page instead of per slot (a broadcast error naming no surface)."""

    def examine(self, noise_key: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.ones(items.shape[0], bool)


class LayoutRaises(ShortList):
    """A bug in its own layout (it was the bare 'KeyError: ...', exit 1)."""

    def layout(self, recommender: Any, requests: Any, state: Any) -> Any:
        raise KeyError("row_theme")


class Stubborn(StaticStrategy):
    """A creator strategy from outside: identical to static, under another name."""

    Params = StaticParams
    name = "stubborn"


def half_ips(sums: dict[str, np.ndarray]) -> np.ndarray:
    """A deliberately odd estimator: half of IPS (so the test can tell it ran)."""
    return 0.5 * sums["ips"] / sums["n"]


NOT_A_METRIC = 42


def _explodes(logs: RunLogs) -> pl.DataFrame:
    raise ValueError("metric exploded")


def _one_column(logs: RunLogs) -> pl.DataFrame:
    return pl.DataFrame({"x": [1.0]})


def _per_position(logs: RunLogs) -> pl.DataFrame:
    """CTR per (arm, rep, position): it forgot to aggregate over positions."""
    return (
        logs.exposures.group_by(*CELL, "position")
        .agg(pl.col("clicked").cast(pl.Float64).mean().alias("value"))
        .collect()
    )


RAISING_METRIC = Metric("raising", "raises", "-", True, _explodes)
PER_POSITION_METRIC = Metric("per_position", "a row per position", "-", True, _per_position)
WRONG_FRAME_METRIC = Metric("wrong_frame", "no arm, rep, value", "-", True, _one_column)


class ClicksEverySlot(RuleUserPolicy):
    """Clicks every slot it examined (the response guard allows at most one click a page)."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        clicked = pages.examined & (pages.slates.items >= 0)
        return ResponseBatch(
            response.examined, clicked, response.utility, response.rating, response.leave,
            response.fatigue, response.extra,
        )  # fmt: skip


class RatesNinetyNine(RuleUserPolicy):
    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        rating = np.where(response.clicked.any(axis=1), 99.0, np.nan).astype(np.float32)
        return ResponseBatch(
            response.examined, response.clicked, response.utility, rating, response.leave,
            response.fatigue, response.extra,
        )  # fmt: skip


class AnswersNone(RuleUserPolicy):
    def respond(self, pages: PageBatch) -> ResponseBatch:
        return None  # type: ignore[return-value]


class RaisesInRespond(RuleUserPolicy):
    def respond(self, pages: PageBatch) -> ResponseBatch:
        raise ValueError("no state for this user")


class GeneratorExitInRespond(RuleUserPolicy):
    """A BaseException that is not an Exception (it passed every handler: a traceback)."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        raise GeneratorExit


class ClicksAsMatrix(RuleUserPolicy):
    """``clicked`` as an ``np.matrix`` of the right shape (it crashed the outcome step)."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        return ResponseBatch(
            response.examined, np.asmatrix(response.clicked), response.utility, response.rating,
            response.leave, response.fatigue, response.extra,
        )  # fmt: skip


class NoValueInExtra(RuleUserPolicy):
    """Leaves out ``extra["value"]`` (it failed the cell with "KeyError: 'value'")."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        return ResponseBatch(
            response.examined, response.clicked, response.utility, response.rating,
            response.leave, response.fatigue, {},
        )  # fmt: skip


class NaNValue(RuleUserPolicy):
    """NaN as every page's value to its session (it ran on: sessions worth NaN)."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        extra = {**response.extra, "value": np.full(response.leave.shape, np.nan, np.float32)}
        return ResponseBatch(
            response.examined, response.clicked, response.utility, response.rating,
            response.leave, response.fatigue, extra,
        )  # fmt: skip


class NaNUtility(RuleUserPolicy):
    """Chooses as the rule user does, but logs NaN as every slot's true utility."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        utility = np.full(response.utility.shape, np.nan, np.float32)
        return ResponseBatch(
            response.examined, response.clicked, utility, response.rating, response.leave,
            response.fatigue, response.extra,
        )  # fmt: skip


class RatesWithoutClicking(RuleUserPolicy):
    """Three stars on every page, clicked or not (the 'rating' page reward paid for nothing)."""

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        rating = np.full(response.leave.shape, 3.0, np.float32)
        return ResponseBatch(
            response.examined, response.clicked, response.utility, rating, response.leave,
            response.fatigue, response.extra,
        )  # fmt: skip


class TruthOfOneRow(RuleUserPolicy):
    """``utility`` asked by anyone but its own ``respond`` (an oracle) answers one row whatever
    it is asked (the oracle failed with 'not enough values to unpack', naming the oracle)."""

    answering = False

    def respond(self, pages: PageBatch) -> ResponseBatch:
        self.answering = True
        try:
            return super().respond(pages)
        finally:
            self.answering = False

    def utility(self, users: np.ndarray, items: np.ndarray, explore: np.ndarray) -> np.ndarray:
        truth = super().utility(users, items, explore)
        return truth if self.answering else truth[0]


class ZeroMixStrategy(StaticStrategy):
    """Answers every review with all-zero topic mixes (nothing to normalise)."""

    def update(self, mix: np.ndarray, stats: Any, rng: np.random.Generator) -> Any:
        from recarena.agents.creators.strategies import Update

        return Update(np.zeros_like(mix), np.array(["stay"] * len(mix), dtype=object))


class ExploresTwice(StaticStrategy):
    explore = 2.0


class WithoutExplore:
    """A Params model and update(), and no explore share (it was refused as 'got None')."""

    Params = StaticParams

    def __init__(self, params: StaticParams) -> None:
        self.params = params

    def update(self, mix: np.ndarray, stats: Any, rng: np.random.Generator) -> Any:
        from recarena.agents.creators.strategies import Update

        return Update(mix.copy(), np.full(len(mix), "stay", dtype=object))


class RaisesInInit(StaticStrategy):
    def __init__(self, params: StaticParams) -> None:
        raise ValueError("no")


def estimator_that_raises(sums: dict[str, np.ndarray]) -> np.ndarray:
    raise ValueError("estimator exploded")


def estimator_of_text(sums: dict[str, np.ndarray]) -> Any:
    return "high"


class RaisesInUpdate(StaticStrategy):
    def update(self, mix: Any, stats: Any, rng: Any) -> Any:
        raise RuntimeError("no stats for this creator")


class LayoutRaisesGeneratorExit(ShortList):
    """A surface whose layout raises a BaseException that is not an Exception."""

    def layout(self, recommender: Any, requests: Any, state: Any) -> Any:
        raise GeneratorExit
