"""Recommenders by name: the types a scenario's ``recommender.type`` may use.

Built on the one registry mechanism (simulator/core/registry.py): built-ins are import paths
loaded on use, installed packages add their own through the ``recarena.recommenders`` entry-point
group, and a scenario may name any class as ``"package.module:ClassName"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from recarena.recommenders.base import NoParams, Recommender, RecommenderContext
from recarena.simulator.core.errors import RecarenaError, exception_line
from recarena.simulator.core.names import short_repr
from recarena.simulator.core.registry import (
    Registry,
    check_buildable,
    check_synchronous,
    ignored_keys,
    plain_params,
)
from recarena.simulator.core.scenario import LLM_RECOMMENDERS
from recarena.simulator.core.yaml_safe import bool_as_number_path, dump_by_name_and_alias

_R = "recarena.recommenders."

BUILTINS: dict[str, tuple[str, str]] = {
    "random": (_R + "random:RandomRecommender", "uniform random unseen items"),
    "popularity": (_R + "popularity:PopularityRecommender", "most clicked items so far"),
    "mf": (_R + "mf:MatrixFactorization", "implicit matrix factorisation (torch, BPR)"),
    "itemknn": (_R + "itemknn:ItemKNN", "item-based k-nearest neighbours (cosine)"),
    "epsilon_greedy": (
        _R + "epsilon_greedy:EpsilonGreedy",
        "explores uniformly around a base recommender",
    ),
    "linucb": (_R + "bandits:LinUCB", "per-user LinUCB on item topic features (online)"),
    "thompson_beta": (
        _R + "bandits:ThompsonBeta",
        "Beta-Bernoulli Thompson sampling per item (online)",
    ),
    "thompson_linear": (
        _R + "bandits:ThompsonLinear",
        "per-user linear-Gaussian Thompson sampling",
    ),
    "recbole": (
        _R + "recbole_models:RecBoleRecommender",
        "any RecBole model by name (SASRec, ...)",
    ),
    "sasrec_native": (
        _R + "native_sasrec:NativeSASRec",
        "compact SASRec-style model in plain torch",
    ),
    "mmr": (_R + "rerankers:MMR", "re-ranks a base's candidates for diversity (MMR)"),
    "calibrated": (
        _R + "rerankers:Calibrated",
        "re-ranks to match the user's topic mix (Steck 2018)",
    ),
    "provider_fair": (_R + "rerankers:ProviderFair", "re-ranks to lift under-exposed creators"),
    "content": (_R + "content:ContentBased", "cosine of the user's mean clicked features"),
    "source_debias": (
        _R + "source_debias:SourceDebias",
        "re-ranks so AI items get their catalog share",
    ),
    "social_feed": (
        _R + "social_feed:SocialFeed",
        "friends' recommendations first, then a base",
    ),
    "hour_aware": (_R + "hour_aware:HourAware", "re-ranks a base by hour-of-day topic lift"),
    "instructable": (
        _R + "instructable:Instructable",
        "follows users' instructions (re-ranking constraints)",
    ),
    "llm_instructable": (
        _R + "llm_instructable:LLMInstructable",
        "instructable, plus an LLM that reads the instruction and picks the first item",
    ),
    "cluster_explore": (
        _R + "exploration:ClusterExplore",
        "explores under-shown item clusters (knob)",
    ),
    "novelty_aware": (
        _R + "novelty_aware:NoveltyAware",
        "mixes in novelty by the session's estimated propensity",
    ),
    "oracle": (_R + "oracle:OracleRecommender", "ranks by true utility (upper bound)"),
    "policy": (_R + "policy:PolicyRecommender", "a policy trained in recarena.gym (checkpoint)"),
    "info_gain": (_R + "crs:InfoGainCRS", "conversational: asks the most informative facet first"),
    "recommend_only": (
        _R + "crs:RecommendOnlyCRS",
        "conversational: recommends every turn, never asks",
    ),
    "llm_crs": (
        _R + "llm_crs:LLMCRS",
        "LLM asks or recommends from a base shortlist (conversation)",
    ),
}


def _check_recommender(cls: Any, name: str) -> None:
    """A list recommender has fit/recommend/update; a conversational one has fit/act. Either is
    a class built as ``Class(params, ctx)``, with a pydantic ``Params`` model and a set of
    ``surfaces`` when it declares them (what the resolve step reads)."""
    conversational = callable(getattr(cls, "act", None))
    for method in ("fit", "act") if conversational else ("fit", "recommend", "update"):
        if not callable(getattr(cls, method, None)):
            raise LookupError(f"{name!r} is not a recommender: it has no {method}() method")
    check_buildable(cls, name, "recommender", "Class(params, ctx)", 2)
    check_synchronous(cls, name, "recommender", ("fit", "recommend", "update", "act"))
    params = getattr(cls, "Params", NoParams)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise LookupError(
            f"{name!r} is not a recommender: its Params must be a pydantic model class, "
            f"got {short_repr(params)}"
        )
    surfaces = getattr(cls, "surfaces", frozenset({"list"}))
    if not (
        isinstance(surfaces, set | frozenset | list | tuple)
        and surfaces
        and all(isinstance(kind, str) for kind in surfaces)
    ):
        raise LookupError(
            f"{name!r} is not a recommender: its surfaces must be a non-empty set of surface "
            f"names such as frozenset({{'list'}}), got {short_repr(surfaces)}"
        )


REGISTRY = Registry("recommender", BUILTINS, _check_recommender)


@dataclass(frozen=True)
class RecommenderEntry:
    name: str
    factory: Any
    params: type[BaseModel]
    description: str


def known_types() -> list[str]:
    return REGISTRY.names()


def lookup_message(exc: LookupError) -> str:
    """The message of :func:`get_entry`'s error. A KeyError's str() wraps it in quotes; its first
    argument is the message (stripping the quotes off str() also cut the quote of a message that
    ends or starts with a quoted name: "builtins:object' is not a recommender")."""
    return str(exc.args[0]) if exc.args else str(exc)


def get_entry(type_name: str) -> RecommenderEntry:
    """The loaded entry (class, params model, description); LookupError names the type."""
    entry = REGISTRY.get(type_name)
    cls = REGISTRY.load(type_name)
    description = entry.description or (
        cls.__doc__.strip().splitlines()[0] if cls.__doc__ else type_name
    )
    return RecommenderEntry(type_name, cls, getattr(cls, "Params", NoParams), description)


def validated_base_params(base: str, params: dict) -> dict:
    """A wrapper's base recommender and its params, checked and with defaults filled in;
    ValueError names ``base`` (wrappers call this from their params validator)."""
    try:
        entry = get_entry(base)
    except LookupError as exc:
        raise ValueError(f"@base: {lookup_message(exc)}") from None
    if "list" not in getattr(entry.factory, "surfaces", frozenset({"list"})):
        # a conversational recommender has act(), no recommend(): the wrapper cannot rank with it
        raise ValueError(f"@base: {base!r} is not a list recommender (it only converses)")
    if base in LLM_RECOMMENDERS:
        # the run hands an LLM client to an arm's own recommender only: as a base it got none
        # and served its non-LLM ranking without a word (llm_instructable: instructable's)
        raise ValueError(
            f"@base: {base!r} calls the LLM only as an arm's own recommender.type; as a base "
            "it gets no LLM and would serve its ranking without one (use 'instructable' as "
            "the base, or make it the arm's type)"
        )
    unknown = ignored_keys(entry.params, params)
    if unknown:  # a plug-in base's Params that would drop it silently
        raise ValueError(f"@base_params.{unknown[0]}: unknown key")
    try:
        model = entry.params.model_validate(params)
        validated = plain_params(model)
    except ValidationError as exc:
        raise ValueError(_base_params_error(exc)) from None
    except Exception as exc:
        if REGISTRY.get(base).source == "built-in":
            raise
        # a plug-in base's validator raising anything but ValueError, or params that are not
        # plain data: pydantic passed it through the wrapper's validator (an internal error)
        raise ValueError(
            f"@base_params: the Params of {base!r} raised {_exception_line(exc)}"
        ) from None
    # a yes/no value where the base takes a number, under the param's name or its alias (the
    # arm-level check compares base_params with the validated dict, keyed by field name only)
    flipped = bool_as_number_path(params, dump_by_name_and_alias(model))
    if flipped is not None:
        raise ValueError(f"@base_params.{flipped}: expected a number, got a yes/no value")
    return validated


def _base_params_error(exc: ValidationError) -> str:
    """The first error of a base's params, as ``@base_params.<field>: ...``, so the scenario's
    error names ``...params.base_params.dim`` rather than a ``dim`` the wrapper does not have
    (a nested wrapper's own ``@base_params...`` message is prefixed again)."""
    err = exc.errors(include_url=False)[0]
    field = "base_params"
    for part in err["loc"]:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith("@"):
        inner, _, message = message[1:].partition(": ")
        field += inner if inner.startswith("[") else f".{inner}"
    elif err["type"] == "extra_forbidden":
        message = "unknown key"
    elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
        message = f"{message} (got {short_repr(err['input'])})"
    return f"@{field}: {message}"


def build(type_name: str, params: BaseModel | dict, ctx: RecommenderContext) -> Recommender:
    entry = get_entry(type_name)
    if not isinstance(params, BaseModel):
        params = entry.params.model_validate(params)
    return entry.factory(params, ctx)


def build_base(type_name: str, params: BaseModel | dict, ctx: RecommenderContext) -> Recommender:
    """A wrapper's ``base``: :func:`build`, and a plug-in base put behind the engine's slate
    guard (``ctx.guard_base``). Unguarded, a plug-in base's ids past the catalog failed its
    wrapper with an IndexError and its exceptions named only the wrapper (exit 1)."""
    base = build(type_name, params, ctx)
    if ctx.guard_base is not None and REGISTRY.get(type_name).source != "built-in":
        return ctx.guard_base(type_name, base)
    return base


@dataclass(frozen=True)
class TreeNode:
    """One recommender of an arm's tree: the field naming its type, the field holding its
    params, the type and the params."""

    type_field: str
    params_field: str
    type_name: str
    params: dict


def recommender_tree(where: str, type_name: str, params: dict) -> Iterator[TreeNode]:
    """The recommenders of an arm's tree, outermost first: the arm's own type, then a
    wrapper's ``base`` (and that base's base, ...)."""
    node = TreeNode(where, f"{where}.params", type_name, params)
    while True:
        yield node
        base, base_params = node.params.get("base"), node.params.get("base_params")
        if not (isinstance(base, str) and isinstance(base_params, dict)):
            return
        parent = node.params_field
        node = TreeNode(f"{parent}.base", f"{parent}.base_params", base, base_params)


def plugins_in(where: str, type_name: str, params: dict) -> list[tuple[str, str, dict]]:
    """``(field, type, params)`` of the recommenders in an arm's tree whose code is not ours:
    the arm's own type, or a built-in wrapper's ``base`` (and that base's base). The walk stops
    at the first plug-in, since building it builds whatever it wraps."""
    for node in recommender_tree(where, type_name, params):
        if REGISTRY.get(node.type_name).source != "built-in":
            return [(node.type_field, node.type_name, node.params)]
    return []


def build_plugin(
    type_name: str, params: BaseModel | dict, ctx: RecommenderContext, where: str
) -> Recommender:
    """:func:`build` for a tree holding a plug-in: whatever its constructor raises (or a
    ``sys.exit``) is one RecarenaError naming ``where`` and the type. Validate builds each
    plug-in this way before a run, and the cell does again, so a constructor that raises is
    the user's one line (exit 2), not every cell of the arm failing with a traceback (exit 1)."""
    try:
        return build(type_name, params, ctx)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the plug-in's code: any failure
        raise RecarenaError(
            f"{where}: {type_name!r} cannot be built: {_exception_line(exc)}"
        ) from None


def _exception_line(exc: BaseException) -> str:
    """:func:`exception_line`, a pydantic error by its first field."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        text = f"{where}: {first['msg']}" if where else str(first["msg"])
        return f"{type(exc).__name__}: {text[:200]}"
    return exception_line(exc)
