"""Recommenders by name: the types a scenario's ``recommender.type`` may use.

The registry is an explicit, read-only table (no import-time decorators mutating global state).
A scenario can also name any class by import path, ``"package.module:ClassName"``, so users add
recommenders without editing recarena.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import BaseModel

from recommenders.bandits import LinUCB, ThompsonBeta, ThompsonLinear
from recommenders.base import NoParams, Recommender, RecommenderContext
from recommenders.crs import InfoGainCRS, RecommendOnlyCRS
from recommenders.epsilon_greedy import EpsilonGreedy
from recommenders.itemknn import ItemKNN
from recommenders.llm_crs import LLMCRS
from recommenders.mf import MatrixFactorization
from recommenders.native_sasrec import NativeSASRec
from recommenders.oracle import OracleRecommender
from recommenders.popularity import PopularityRecommender
from recommenders.random import RandomRecommender
from recommenders.recbole_models import RecBoleRecommender
from recommenders.rerankers import MMR, Calibrated, ProviderFair


@dataclass(frozen=True)
class RecommenderEntry:
    name: str
    factory: Callable[[BaseModel, RecommenderContext], Recommender]
    params: type[BaseModel]
    description: str


def _entry(name: str, cls, description: str) -> RecommenderEntry:
    return RecommenderEntry(name, cls, getattr(cls, "Params", NoParams), description)


RECOMMENDERS: Mapping[str, RecommenderEntry] = MappingProxyType(
    {
        "random": _entry("random", RandomRecommender, "uniform random unseen items"),
        "popularity": _entry("popularity", PopularityRecommender, "most clicked items so far"),
        "mf": _entry("mf", MatrixFactorization, "implicit matrix factorisation (torch, BPR)"),
        "itemknn": _entry("itemknn", ItemKNN, "item-based k-nearest neighbours (cosine)"),
        "epsilon_greedy": _entry(
            "epsilon_greedy", EpsilonGreedy, "explores uniformly around a base recommender"
        ),
        "linucb": _entry("linucb", LinUCB, "per-user LinUCB on item topic features (online)"),
        "thompson_beta": _entry(
            "thompson_beta", ThompsonBeta, "Beta-Bernoulli Thompson sampling per item (online)"
        ),
        "thompson_linear": _entry(
            "thompson_linear", ThompsonLinear, "per-user linear-Gaussian Thompson sampling"
        ),
        "recbole": _entry("recbole", RecBoleRecommender, "any RecBole model by name (SASRec, ...)"),
        "sasrec_native": _entry(
            "sasrec_native", NativeSASRec, "compact SASRec-style model in plain torch"
        ),
        "mmr": _entry("mmr", MMR, "re-ranks a base's candidates for diversity (MMR)"),
        "calibrated": _entry(
            "calibrated", Calibrated, "re-ranks to match the user's topic mix (Steck 2018)"
        ),
        "provider_fair": _entry(
            "provider_fair", ProviderFair, "re-ranks to lift under-exposed creators"
        ),
        "oracle": _entry("oracle", OracleRecommender, "ranks by true utility (upper bound)"),
        "info_gain": _entry(
            "info_gain", InfoGainCRS, "conversational: asks the most informative facet first"
        ),
        "recommend_only": _entry(
            "recommend_only", RecommendOnlyCRS, "conversational: recommends every turn, never asks"
        ),
        "llm_crs": _entry(
            "llm_crs", LLMCRS, "LLM asks or recommends from a base shortlist (conversation)"
        ),
    }
)


def known_types() -> list[str]:
    return list(RECOMMENDERS)


def _plugin(path: str) -> RecommenderEntry:
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"cannot import recommender {path!r}: {exc}") from None
    conversational = callable(getattr(cls, "act", None))  # added by 5a: a CRS plugin
    for method in ("fit", "act") if conversational else ("fit", "recommend", "update"):
        if not callable(getattr(cls, method, None)):
            raise LookupError(f"{path!r} is not a recommender: it has no {method}() method")
    return _entry(path, cls, cls.__doc__.strip().splitlines()[0] if cls.__doc__ else path)


def get_entry(type_name: str) -> RecommenderEntry:
    if type_name in RECOMMENDERS:
        return RECOMMENDERS[type_name]
    if ":" in type_name:
        return _plugin(type_name)
    raise LookupError(f"unknown {type_name!r}; known: {', '.join(RECOMMENDERS)}")


def build(type_name: str, params: BaseModel | dict, ctx: RecommenderContext) -> Recommender:
    entry = get_entry(type_name)
    if not isinstance(params, BaseModel):
        params = entry.params.model_validate(params)
    return entry.factory(params, ctx)
