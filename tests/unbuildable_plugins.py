"""Plug-ins that have their contract's methods but cannot be built the way the engine builds
them (tests/test_hostile_inputs.py): each used to pass validate and fail every cell."""

from __future__ import annotations

import abc
import sys
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from recarena.agents.creators.strategies import StaticParams, StaticStrategy
from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.recommenders.base import NoParams
from recarena.recommenders.random import RandomRecommender
from recarena.simulator.engine.surfaces import ListView


class NoArguments:
    """fit/recommend/update, but a constructor that takes nothing."""

    def __init__(self) -> None:
        pass

    def fit(self, history: Any) -> None:
        pass

    def recommend(self, requests: Any) -> None:
        pass

    def update(self, feedback: Any) -> None:
        pass


AN_INSTANCE = NoArguments()
"""An object where a class belongs."""


class AbstractFit(abc.ABC):
    """Has every method of the contract, but ``fit`` is abstract: it cannot be instantiated."""

    def __init__(self, params: Any, ctx: Any) -> None:
        self.params, self.ctx = params, ctx

    @abc.abstractmethod
    def fit(self, history: Any) -> None: ...

    def recommend(self, requests: Any) -> None:
        return None

    def update(self, feedback: Any) -> None:
        return None


class ParamsIsADict(RandomRecommender):
    Params = dict  # type: ignore[assignment]


class SurfacesIsNone(RandomRecommender):
    surfaces = None  # type: ignore[assignment]


class PolicyWithoutSocial(RuleUserPolicy):
    def __init__(self, cfg: Any, state: Any, catalog: Any, successor: Any) -> None:
        super().__init__(cfg, state, catalog, successor)


class StrategyWithoutParams(StaticStrategy):
    Params = StaticParams

    def __init__(self) -> None:
        pass


def surface_of_params_only(params: dict) -> ListView:
    return ListView(params, 0.7)


class NeedsSmallX(RandomRecommender):
    """A constructor that refuses some of its params (and exits the process or raises
    KeyboardInterrupt on others)."""

    class Params(NoParams):
        x: int = 1

    def __init__(self, params: Any, ctx: Any) -> None:
        if params.x == 3:
            raise ValueError(f"x={params.x} is too big for this plug-in")
        if params.x == 4:
            raise SystemExit(4)
        if params.x == 5:
            raise KeyboardInterrupt  # what Ctrl-C raises, from the plug-in's own code
        super().__init__(params, ctx)


def _inverse(value: int) -> int:
    """Raises what pydantic does not turn into a validation error (ZeroDivisionError at 1)."""
    return 1 // (value - 1)


class _DividingParams(NoParams):
    x: int = 2
    _x = field_validator("x")(_inverse)


class _ArrayParams(NoParams):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    weights: Any = None

    @field_validator("weights")
    @classmethod
    def _as_array(cls, value: Any) -> Any:
        return np.asarray(value) if value is not None else None


class ParamsRaiseZeroDivision(RandomRecommender):
    Params = _DividingParams


class ParamsHoldAnArray(RandomRecommender):
    Params = _ArrayParams


class StrategyParamsRaiseZeroDivision(StaticStrategy):
    class Params(StaticParams):
        x: int = 2
        _x = field_validator("x")(_inverse)


class PolicyRaisesInInit(RuleUserPolicy):
    """A user policy whose constructor raises (built only inside a cell, over its world)."""

    def __init__(self, cfg: Any, state: Any, catalog: Any, successor: Any, social: Any) -> None:
        raise ValueError("no policy today")


class PolicyExitsInInit(RuleUserPolicy):
    """A user policy whose constructor calls sys.exit (a SystemExit is not an Exception)."""

    def __init__(self, cfg: Any, state: Any, catalog: Any, successor: Any, social: Any) -> None:
        sys.exit(0)


class StrategyExitsInInit(StaticStrategy):
    """A creator strategy whose constructor calls sys.exit."""

    def __init__(self, params: StaticParams) -> None:
        sys.exit(0)


def surface_that_exits(params: dict, position_decay: float) -> ListView:
    """A surface factory that calls sys.exit."""
    sys.exit(0)


class _LenientParams(BaseModel):
    """pydantic's default: unknown keys are dropped without a word."""

    epochs: int = 3


class LenientParams(RandomRecommender):
    Params = _LenientParams  # type: ignore[assignment]


class LenientStrategy(StaticStrategy):
    Params = _LenientParams  # type: ignore[assignment]


def policy_of_two_arguments(obs: Any, k: Any) -> Any:
    """A policy callable of another signature (the arm passes one observation dict)."""
    return obs


def policy_of_one_score_per_user(obs: Any) -> Any:
    """A policy callable answering [B] scores instead of [B, n]."""
    return np.zeros(len(obs["user_id"]))


def policy_of_five_history_items(obs: Any) -> Any:
    """A policy trained with history 5: another window is an input it cannot take."""
    if obs["history"].shape[1] != 5:
        raise ValueError(f"trained on 5 history items, got {obs['history'].shape[1]}")
    return np.zeros((len(obs["user_id"]), 40))
