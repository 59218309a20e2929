"""Conversational recommenders: ask about a facet, or recommend, from the tracked dialogue state.

Both rule policies share one belief over candidates. A base recommender (``base``, popularity
by default) ranks ``candidates`` items per conversation, excluding what the user consumed and
what was shown earlier in the conversation; candidate ``r`` (0-based) gets prior weight
``1 / log2(r + 2)``. The tracked answers then reweight it, treating each answer as noisy
evidence about the item the user wants, with the answer noise ``ε`` the policy assumes:

* an informed (or critique-named) value ``a`` of facet ``f`` multiplies by ``1 − ε`` the weight
  of candidates with ``f = a`` and by ``ε / (V_f − 1)`` the others;
* a value the user said they do not want multiplies by ``avoid_weight``.

``info_gain`` asks the facet whose answer tells most about the wanted item: the mutual
information between the candidate's facet value and the noisy answer,

    IG(f) = H(q_f) − [H_b(ε) + ε ln(V_f − 1)],
    q_f(a) = (1 − ε) p_f(a) + ε (1 − p_f(a)) / (V_f − 1)

with ``p_f(v)`` the normalised weight of candidates having value ``v`` (nats; ``H(p_f)`` when
ε = 0). It recommends the k heaviest candidates instead when they hold at least ``confidence``
of the weight, when no unasked facet gains ``min_gain`` nats, or on the last turn.
``recommend_only`` never asks. :class:`ListAsConversation` lets any list recommender serve a
conversation: each turn it recommends its next k items not shown yet.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recarena.recommenders.base import Recommender, RecommenderContext
from recarena.recommenders.registry import (
    build_base,
    get_entry,
    lookup_message,
    validated_base_params,
)
from recarena.simulator.core.dialogue import ASK, RECOMMEND, UNKNOWN, DialogueState, SystemActs
from recarena.simulator.core.types import PAD_ITEM, FeedbackBatch, Interactions, SlateBatch


class CRSParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str = "popularity"
    """List recommender that proposes the candidates (any registered list type)."""
    base_params: dict = Field(default_factory=dict)
    candidates: int = Field(default=200, ge=1, le=5000)
    """Candidates per conversation and turn, from the base's ranking."""
    answer_noise: float = Field(default=0.1, ge=0, lt=1)
    """ε the policy assumes for users' answers (the user's true noise is population's)."""
    avoid_weight: float = Field(default=0.05, ge=0, le=1)
    """Weight factor for candidates with a value the user rejected in a critique."""

    @field_validator("base")
    @classmethod
    def _list_base(cls, value: str) -> str:

        try:
            entry = get_entry(value)
        except LookupError as exc:
            raise ValueError(lookup_message(exc)) from None
        if "list" not in getattr(entry.factory, "surfaces", frozenset({"list"})):
            raise ValueError(f"{value!r} is not a list recommender")
        return value

    @model_validator(mode="after")
    def _base_params(self) -> CRSParams:
        # checked now, as every wrapper's are: the base is only built inside a cell
        self.base_params = validated_base_params(self.base, self.base_params)
        return self


class InfoGainParams(CRSParams):
    confidence: float = Field(default=0.5, gt=0, le=1)
    """Recommend once the k heaviest candidates hold this share of the candidate weight."""
    min_gain: float = Field(default=0.05, ge=0)
    """Recommend when no unasked facet's expected information gain reaches this (nats)."""


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis)


def information_gain(p: np.ndarray, n_values: np.ndarray, noise: float) -> np.ndarray:
    """[..., F] mutual information (nats) between a facet value ~ p [..., F, V] and its noisy
    answer; ``n_values`` [F] is each facet's number of values (columns beyond are zero)."""
    others = np.maximum(n_values - 1, 1)[..., :, None]
    real = np.arange(p.shape[-1]) < n_values[:, None]
    q = np.where(real, (1 - noise) * p + noise * (1 - p) / others, 0.0)
    binary = entropy(np.array([noise, 1 - noise]))
    h_noise = np.where(n_values > 1, binary + noise * np.log(np.maximum(n_values - 1, 1)), 0.0)
    return np.maximum(entropy(q) - h_noise, 0.0)


class _Candidates:
    """The shared belief: base candidates reweighted by the tracked answers (vectorised)."""

    def __init__(self, params: CRSParams, ctx: RecommenderContext) -> None:

        self.params = params
        self.base: Recommender = build_base(params.base, params.base_params, ctx)

    def fit(self, history: Interactions) -> None:
        self.base.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.base.update(feedback)

    def weights(self, state: DialogueState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates [B, N], their facet codes [B, N, F] and posterior weights [B, N]."""
        requests = state.requests
        exclude = np.concatenate([requests.exclude, state.shown], axis=1)
        n = min(self.params.candidates, requests.catalog.n_items)
        slates = self.base.recommend(replace(requests, k=n, exclude=exclude))
        cand = slates.items
        valid = cand != PAD_ITEM
        codes = np.take(state.facets.codes, np.where(valid, cand, 0), axis=0)  # [B, N, F] int16
        weight = np.where(valid, 1.0 / np.log2(np.arange(cand.shape[1]) + 2.0), 0.0)
        noise = self.params.answer_noise
        n_values = np.array([len(v) for v in state.facets.values])
        miss = noise / np.maximum(n_values - 1, 1)
        # Facet by facet, and only over the conversations where the user has stated a value or
        # critiqued one (most early turns have neither): [B', N] work instead of [B, N, F].
        for f in range(codes.shape[2]):
            told = np.flatnonzero(state.preferred[:, f] != UNKNOWN)
            if told.size:
                agree = codes[told, :, f] == state.preferred[told, f][:, None]
                weight[told] *= np.where(agree, 1.0 - noise, miss[f])
        hit = np.zeros(weight.shape, bool)
        for f in range(codes.shape[2]):
            critiqued = np.flatnonzero(state.avoided[:, f].any(axis=1))
            if critiqued.size:
                values = codes[critiqued, :, f].astype(np.intp)
                hit[critiqued] |= np.take_along_axis(state.avoided[critiqued, f], values, axis=1)
        weight = np.where(hit, weight * self.params.avoid_weight, weight)
        return cand, codes, weight

    @staticmethod
    def top_k(cand: np.ndarray, weight: np.ndarray, k: int) -> SlateBatch:
        """The k heaviest valid candidates per row (ties: the base's order)."""
        order = np.argsort(-weight, axis=1, kind="stable")[:, :k]
        items = np.take_along_axis(cand, order, axis=1)
        scores = np.take_along_axis(weight, order, axis=1)
        if items.shape[1] < k:
            pad = k - items.shape[1]
            items = np.pad(items, ((0, 0), (0, pad)), constant_values=PAD_ITEM)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.nan)
        scores = np.where(items == PAD_ITEM, np.nan, scores)
        return SlateBatch(items, scores.astype(np.float32), np.ones(items.shape, np.float32))


def _acts(act: np.ndarray, facet: np.ndarray, slates: SlateBatch) -> SystemActs:
    asks = act == ASK
    items = np.where(asks[:, None], PAD_ITEM, slates.items)
    scores = np.where(asks[:, None], np.nan, slates.scores).astype(np.float32)
    return SystemActs(
        act=act.astype(np.int8),
        facet=np.where(asks, facet, UNKNOWN).astype(np.int16),
        slates=SlateBatch(items, scores, slates.propensity),
        text=("",) * act.shape[0],
    )


class InfoGainCRS:
    """Asks the facet with the largest expected information gain; recommends once confident."""

    Params = InfoGainParams
    surfaces = frozenset({"conversation"})
    needs_transcript = False

    def __init__(self, params: InfoGainParams, ctx: RecommenderContext) -> None:
        self.name = "info_gain"
        self.params = params
        self.belief = _Candidates(params, ctx)

    def fit(self, history: Interactions) -> None:
        self.belief.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.belief.update(feedback)

    def facet_gains(self, codes: np.ndarray, weight: np.ndarray, facets) -> np.ndarray:
        """[B, F] expected information gain of asking each facet, over the candidate weights."""
        n_values = np.array([len(v) for v in facets.values])
        batch, _, n_facets = codes.shape
        width = int(n_values.max())
        flat = (np.arange(batch)[:, None, None] * n_facets + np.arange(n_facets)) * width + codes
        mass = np.bincount(
            flat.ravel(),
            weights=np.repeat(weight[:, :, None], n_facets, axis=2).ravel(),
            minlength=batch * n_facets * width,
        ).reshape(batch, n_facets, width)
        total = np.maximum(weight.sum(axis=1), 1e-300)[:, None, None]
        return information_gain(mass / total, n_values, self.params.answer_noise)

    def act(self, state: DialogueState) -> SystemActs:
        return self.decide(state)[0]

    def decide(self, state: DialogueState) -> tuple[SystemActs, np.ndarray, np.ndarray]:
        """The move, with the candidates [B, N] and weights [B, N] it was decided on (policies
        built on this one, like ``llm_crs``, reuse them instead of recomputing the belief)."""
        k = state.requests.k
        cand, codes, weight = self.belief.weights(state)
        slates = _Candidates.top_k(cand, weight, k)
        gains = self.facet_gains(codes, weight, state.facets)
        open_facets = ~state.asked & (state.preferred == UNKNOWN)
        gains = np.where(open_facets, gains, -np.inf)
        best = gains.argmax(axis=1)
        best_gain = gains[np.arange(best.shape[0]), best]
        top_mass = np.nan_to_num(slates.scores.astype(np.float64)).sum(axis=1)
        confident = top_mass >= self.params.confidence * np.maximum(weight.sum(axis=1), 1e-300)
        last_turn = state.requests.page >= state.max_turns - 1
        ask = ~confident & ~last_turn & (best_gain >= self.params.min_gain)
        return _acts(np.where(ask, ASK, RECOMMEND), best, slates), cand, weight


class RecommendOnlyCRS:
    """Never asks: recommends the k heaviest candidates, learning from critiques and rejections."""

    Params = CRSParams
    surfaces = frozenset({"conversation"})
    needs_transcript = False

    def __init__(self, params: CRSParams, ctx: RecommenderContext) -> None:
        self.name = "recommend_only"
        self.belief = _Candidates(params, ctx)

    def fit(self, history: Interactions) -> None:
        self.belief.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.belief.update(feedback)

    def act(self, state: DialogueState) -> SystemActs:
        cand, _, weight = self.belief.weights(state)
        slates = _Candidates.top_k(cand, weight, state.requests.k)
        batch = cand.shape[0]
        return _acts(np.full(batch, RECOMMEND), np.full(batch, UNKNOWN), slates)


class ListAsConversation:
    """A list recommender in a conversation: each turn, its next k items not shown yet."""

    surfaces = frozenset({"conversation"})
    needs_transcript = False

    def __init__(self, inner: Recommender) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)

    def fit(self, history: Interactions) -> None:
        self.inner.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.inner.update(feedback)

    def act(self, state: DialogueState) -> SystemActs:
        requests = state.requests
        exclude = np.concatenate([requests.exclude, state.shown], axis=1)
        slates = self.inner.recommend(replace(requests, exclude=exclude))
        batch = len(requests)
        return _acts(np.full(batch, RECOMMEND), np.full(batch, UNKNOWN), slates)


def as_conversational(recommender) -> InfoGainCRS | RecommendOnlyCRS | ListAsConversation:
    """The recommender itself if it converses (has ``act``), else wrapped as a list policy."""
    if callable(getattr(recommender, "act", None)):
        return recommender
    return ListAsConversation(recommender)
