"""How creators change what they make: registered strategies with pydantic params.

A creator's *topic mix* is a probability vector over topics; each new item's main topic is drawn
from it (see ``agents/creators/agent.py``). At every review period a strategy turns last period's
per-topic statistics of the creators into their next mixes. Strategies work on all reviewed
creators at once ([C, T] arrays), so a review costs a few numpy calls, not a loop per creator
(the ``llm`` strategy is the exception: one call per creator, made concurrently).

The signal a creator reads for topic *t* is its **yield**: exposure (or clicks) of its items
whose main topic is *t*, per such item it has published. Raw exposure would only echo what the
creator already makes most of; the yield says which of its topics pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recarena.agents.llm.client import CallContext
from recarena.simulator.core.registry import Registry, check_buildable, check_synchronous


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class PeriodStats:
    """What reviewed creators saw last period, per topic (rows: creators, columns: topics)."""

    exposure: np.ndarray  # [C, T] impressions of the creator's items, by the item's main topic
    clicks: np.ndarray  # [C, T] clicks on them
    items: np.ndarray  # [C, T] items the creator has published so far, by main topic
    platform_exposure: np.ndarray | None = None  # [T] impressions of every creator's items
    platform_clicks: np.ndarray | None = None  # [T] clicks on every creator's items


@dataclass(frozen=True)
class Update:
    mix: np.ndarray  # [C, T] next period's topic mixes (rows sum to 1)
    move: np.ndarray  # [C] object: what each creator did ("stay", "shift:3", "fallback", ...)


class CreatorStrategy(Protocol):
    name: str
    explore: float
    """Share of uploads whose main topic is drawn uniformly instead of from the mix."""

    def update(self, mix: np.ndarray, stats: PeriodStats, rng: np.random.Generator) -> Update: ...


def yield_share(signal: np.ndarray, items: np.ndarray) -> np.ndarray:
    """[C, T] per-item yield of each topic, normalised per row; all-zero rows stay zero."""
    per_item = np.divide(
        signal, items, out=np.zeros_like(signal, dtype=np.float64), where=items > 0
    )
    total = per_item.sum(axis=1, keepdims=True)
    return np.divide(per_item, total, out=np.zeros_like(per_item), where=total > 0)


def platform_share(signal: np.ndarray | None, n_creators: int) -> np.ndarray:
    """[C, T] the platform's topic shares of ``signal``, the same row for every creator."""
    if signal is None:
        raise ValueError("scope 'platform' needs the platform's per-topic totals in PeriodStats")
    signal = np.asarray(signal, np.float64)
    total = signal.sum()
    share = signal / total if total > 0 else np.zeros_like(signal)
    return np.broadcast_to(share, (n_creators, signal.shape[0])).copy()


def softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    z = values / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _stay(mix: np.ndarray) -> Update:
    return Update(mix.copy(), np.full(mix.shape[0], "stay", object))


class StaticParams(_Params):
    pass


class StaticStrategy:
    """Creators keep their topic forever (the default; uploads are exactly as before)."""

    Params = StaticParams
    name = "static"
    explore = 0.0

    def __init__(self, params: StaticParams) -> None:
        self.params = params

    def update(self, mix: np.ndarray, stats: PeriodStats, rng: np.random.Generator) -> Update:
        return _stay(mix)


class ChasingParams(_Params):
    rate: Annotated[float, Field(ge=0, le=1)] = 0.3
    """How far the mix moves toward the target each period."""
    target: Literal["onehot", "softmax"] = "onehot"
    """onehot: the best-yielding topic; softmax: yield shares sharpened by ``temperature``."""
    temperature: Annotated[float, Field(ge=1e-3, le=1e6)] = 0.1
    explore: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Share of uploads on a uniformly drawn topic, so a creator learns what other topics pay."""
    scope: Literal["own", "platform"] = "own"
    """own: the creator's own yield per topic (it can only learn about topics it publishes in);
    platform: the whole platform's share of exposure (or clicks) by topic last period, the
    "what is trending" view that platform analytics and trending pages give every creator."""


class _ChasingStrategy:
    """mix ← (1 − rate)·mix + rate·target(share); creators without any signal stay put.

    With ``scope: platform`` every creator reads the same signal, the platform's topic shares,
    so a recommender that concentrates exposure on a few topics pulls all creators toward them.
    """

    Params = ChasingParams
    name = "chasing"
    signal = "exposure"

    def __init__(self, params: ChasingParams) -> None:
        self.params = params
        self.explore = params.explore

    def update(self, mix: np.ndarray, stats: PeriodStats, rng: np.random.Generator) -> Update:
        if self.params.scope == "platform":
            share = platform_share(getattr(stats, f"platform_{self.signal}"), mix.shape[0])
        else:
            share = yield_share(getattr(stats, self.signal), stats.items)
        has_signal = share.sum(axis=1) > 0
        if self.params.target == "onehot":
            target = np.zeros_like(share)
            target[np.arange(share.shape[0]), share.argmax(axis=1)] = 1.0
        else:
            target = softmax(share, self.params.temperature)
        rate = self.params.rate
        moved = (1.0 - rate) * mix + rate * target
        new = np.where(has_signal[:, None], moved, mix)
        move = np.where(
            has_signal, np.char.add("toward:", share.argmax(axis=1).astype(str)), "stay"
        ).astype(object)
        return Update(new, move)


class ExposureChasing(_ChasingStrategy):
    name = "exposure_chasing"
    signal = "exposure"


class EngagementChasing(_ChasingStrategy):
    name = "engagement_chasing"
    signal = "clicks"


class BoundedRationalParams(_Params):
    temperature: Annotated[float, Field(ge=1e-3, le=1e6)] = 0.1
    """Logit noise of the choice over topics' yield shares (small: close to a best response)."""
    inertia: Annotated[float, Field(ge=0, le=1)] = 0.7
    """Probability a creator keeps its mix this period."""
    step: Annotated[float, Field(ge=0, le=1)] = 0.5
    """How far a moving creator goes toward the chosen topic."""
    signal: Literal["exposure", "clicks"] = "exposure"
    explore: Annotated[float, Field(ge=0, le=1)] = 0.1


class BoundedRational:
    """Noisy best response with inertia.

    Per creator two uniforms are drawn, always (so the draws line up whatever the signal):
    ``u_move`` and ``u_pick``. A creator with a signal moves when ``u_move ≥ inertia``; it picks
    topic ``k`` by inverting the CDF of ``softmax(share / temperature)`` at ``u_pick`` and sets
    mix ← (1 − step)·mix + step·onehot(k).
    """

    Params = BoundedRationalParams
    name = "bounded_rational"

    def __init__(self, params: BoundedRationalParams) -> None:
        self.params = params
        self.explore = params.explore

    def update(self, mix: np.ndarray, stats: PeriodStats, rng: np.random.Generator) -> Update:
        p = self.params
        n: int = mix.shape[0]
        u_move = rng.random(n)
        u_pick = rng.random(n)
        share = yield_share(getattr(stats, p.signal), stats.items)
        probs = softmax(share, p.temperature)
        cdf = np.cumsum(probs, axis=1)
        pick = np.minimum((cdf <= u_pick[:, None]).sum(axis=1), mix.shape[1] - 1)
        moves = (share.sum(axis=1) > 0) & (u_move >= p.inertia)
        target = np.zeros_like(mix)
        target[np.arange(n), pick] = 1.0
        new = np.where(moves[:, None], (1.0 - p.step) * mix + p.step * target, mix)
        move = np.where(moves, np.char.add("pick:", pick.astype(str)), "stay").astype(object)
        return Update(new, move)


class LLMParams(_Params):
    max_change: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Upper bound on how far one answer can move the mix."""
    explore: Annotated[float, Field(ge=0, le=1)] = 0.1


class CreatorDecision(BaseModel):
    """What the LLM answers for one creator."""

    focus_topic: int
    change: Annotated[float, Field(ge=0, le=1)]
    reason: str = ""


TOPIC_LABELS = [str(t) for t in range(10)] + [chr(ord("A") + i) for i in range(26)]


class LLMStrategy:
    """Each creator reads a one-paragraph summary of its stats and picks a focus topic.

    mix ← (1 − c)·mix + c·onehot(focus), c = min(change, max_change). A failed or invalid call
    (after the client's retries and one repair) leaves that creator's mix unchanged
    ("fallback"), so a broken endpoint makes creators static instead of stopping the run.
    ``client`` is an :class:`recarena.agents.llm.client.LLMClient` (or anything with ``run`` and
    ``structured``); ``now`` is set by the engine before each review, for the call records.
    """

    Params = LLMParams
    name = "llm"

    def __init__(self, params: LLMParams, client: Any = None) -> None:
        self.params = params
        self.explore = params.explore
        self.client = client
        self.now = 0.0

    @staticmethod
    def prompt(mix: np.ndarray, exposure: np.ndarray, clicks: np.ndarray, items: np.ndarray):
        topics = mix.shape[0]
        lines = [
            f"topic {t}: {int(items[t])} items, {int(exposure[t])} views, {int(clicks[t])} clicks"
            for t in range(topics)
            if items[t] > 0 or mix[t] > 0.05
        ]
        current = ", ".join(f"{t}: {mix[t]:.2f}" for t in np.argsort(-mix)[:3] if mix[t] > 0)
        user = (
            "You are a content creator on a video platform. Last week, by topic:\n"
            + "\n".join(lines)
            + f"\nYour current topic mix (top topics): {current}.\n"
            f"Topics are numbered 0..{topics - 1}. Decide which topic to focus on next week "
            "and how much to change (0 = keep your mix, 1 = switch fully). Answer with JSON "
            '{"focus_topic": int, "change": float, "reason": str}.'
        )
        return [
            {"role": "system", "content": "You answer with one JSON object only."},
            {"role": "user", "content": user},
        ]

    def _scored(self, mix: np.ndarray, stats: PeriodStats, ids: np.ndarray) -> Update | None:
        """Scoring mode: one forward pass per creator gives a distribution over focus topics;
        the mix moves ``max_change`` of the way toward it (the expectation, so no draw)."""
        n, topics = mix.shape
        labels = TOPIC_LABELS[:topics]
        calls = []
        for c in range(n):
            messages = self.prompt(mix[c], stats.exposure[c], stats.clicks[c], stats.items[c])
            question = messages[1]["content"].rsplit("Decide which topic", 1)[0]
            labelled = "" if topics <= 10 else " (topics 10 and up: A, B, C, ...)"
            messages = [
                {"role": "system", "content": "You answer with one topic label only."},
                {"role": "user", "content": question
                 + f"Which topic do you focus on next week? Answer with its number{labelled}."},
            ]  # fmt: skip
            calls.append(
                self.client.score(messages, [labels], CallContext("creator", int(ids[c]), -1, -1,
                                                                  self.now))
            )  # fmt: skip
        results = self.client.run(calls)
        if any(r.no_logprobs for r in results):
            return None
        new = mix.copy()
        move = np.full(n, "fallback", object)
        change = self.params.max_change
        for c, result in enumerate(results):
            if result.probs is None:
                continue
            probs = result.probs[0]
            new[c] = (1.0 - change) * mix[c] + change * probs
            move[c] = f"focus:{int(np.argmax(probs))}"
        return Update(new, move)

    def update(
        self,
        mix: np.ndarray,
        stats: PeriodStats,
        rng: np.random.Generator,
        creator_ids: np.ndarray | None = None,
    ) -> Update:
        if self.client is None:
            return Update(mix.copy(), np.full(mix.shape[0], "fallback", object))

        n, topics = mix.shape
        ids = creator_ids if creator_ids is not None else np.arange(n)
        if getattr(self.client, "scoring", False) and topics <= len(TOPIC_LABELS):
            scored = self._scored(mix, stats, ids)
            if scored is not None:  # else: the endpoint has no logprobs; ask for JSON
                return scored

        def in_range(answer: CreatorDecision) -> str | None:
            ok = 0 <= answer.focus_topic < topics
            return None if ok else f"focus_topic must be in 0..{topics - 1}"

        calls = [
            self.client.structured(
                self.prompt(mix[c], stats.exposure[c], stats.clicks[c], stats.items[c]),
                CreatorDecision,
                CallContext("creator", user_id=int(ids[c]), time=self.now),
                check=in_range,
            )
            for c in range(n)
        ]
        results = self.client.run(calls)
        new = mix.copy()
        move = np.full(n, "fallback", object)
        for c, result in enumerate(results):
            answer = result.answer
            if answer is None:
                continue
            change = min(float(answer.change), self.params.max_change)
            target = np.zeros(topics)
            target[answer.focus_topic] = 1.0
            new[c] = (1.0 - change) * mix[c] + change * target
            move[c] = f"focus:{answer.focus_topic}"
        return Update(new, move)


_S = "recarena.agents.creators.strategies:"

BUILTINS: dict[str, tuple[str, str]] = {
    "static": (_S + "StaticStrategy", "keep the topic forever"),
    "exposure_chasing": (
        _S + "ExposureChasing",
        "move the mix toward the topic with most exposure per item",
    ),
    "engagement_chasing": (_S + "EngagementChasing", "the same on clicks per item"),
    "bounded_rational": (_S + "BoundedRational", "logit best response with inertia"),
    "llm": (_S + "LLMStrategy", "an LLM reads the stats and picks a focus"),
}


def _check_strategy(cls: Any, name: str) -> None:
    """A creator strategy class has a ``Params`` model and an ``update`` method."""
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise LookupError(f"creator strategy {name!r} has no pydantic Params model")
    if not callable(getattr(cls, "update", None)):
        raise LookupError(f"creator strategy {name!r} has no update() method")
    check_buildable(cls, name, "creator strategy", "Class(params)", 1)
    check_synchronous(cls, name, "creator strategy", ("update",))


REGISTRY = Registry("creator_strategy", BUILTINS, _check_strategy)
"""Creator strategies: built-ins, the ``recarena.creator_strategies`` entry points, or
``package.module:Class`` in ``creators.strategy.type``."""


def validate_params(type_name: str, params: dict[str, Any]) -> BaseModel:
    """Params checked against the strategy's model; ValueError names the type and the field."""
    try:
        cls = REGISTRY.load(type_name)
    except LookupError as exc:
        raise ValueError(str(exc)) from None
    try:
        return cls.Params.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{type_name} params: {problems}") from None


def build_strategy(type_name: str, params: dict[str, Any]) -> CreatorStrategy:
    strategy: CreatorStrategy = REGISTRY.load(type_name)(validate_params(type_name, params))
    return strategy
