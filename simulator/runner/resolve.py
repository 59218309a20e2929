"""The resolve step: a schema-valid scenario checked against what is registered.

The schema (simulator/core/scenario.py) is pure data and knows no registry. This step looks up
each arm's recommender type and params, the creator strategy, and whether each arm's surface fits
its recommender, filling in registered defaults. Metric names are checked where metrics live
(analysis.metrics.check_metrics), which the CLI calls before a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recarena.agents.creators.strategies import REGISTRY as STRATEGIES
from recarena.agents.creators.strategies import build_strategy
from recarena.agents.users.policies import REGISTRY as USER_POLICIES
from recarena.recommenders.registry import REGISTRY as RECOMMENDERS
from recarena.recommenders.registry import get_entry
from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.names import did_you_mean
from recarena.simulator.core.registry import (
    ignored_keys,
    plain_params,
    plugin_prints_to_stderr,
)
from recarena.simulator.core.scenario import (
    PluginSurface,
    Scenario,
    _first_error,
    read_document,
    validate_document,
)
from recarena.simulator.core.yaml_safe import (
    check_finite,
    check_no_bool_numbers,
    dump_by_name_and_alias,
)
from recarena.simulator.engine.surfaces import REGISTRY as SURFACES
from recarena.simulator.engine.surfaces import build_surface


def parse_scenario(raw: Any, source: str = "<scenario>", *, scanned: bool = False) -> Scenario:
    """Validate a parsed YAML document and resolve it against the registries (``scanned``: see
    :func:`validate_document`)."""
    return resolve(validate_document(raw, source, scanned=scanned), source)


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file; every failure is one RecarenaError."""
    return resolve(read_document(path), str(path))


def resolve(scenario: Scenario, source: str = "<scenario>") -> Scenario:
    """The scenario checked against the registries. Plug-ins are imported, their params
    validated and some built here: what their code prints goes to stderr (stdout is the
    command's answer)."""
    try:
        with plugin_prints_to_stderr():
            _resolve_strategy(scenario)
            _resolve_surfaces(scenario)
            _resolve_user_policy(scenario)
            _resolve_params(scenario)
    except RecarenaError as exc:
        raise RecarenaError(f"{source}: {exc}") from None
    return scenario


def _resolve_surfaces(scenario: Scenario) -> None:
    """Plug-in surfaces must be registered or importable, and honour the factory contract."""
    places = [("surface", scenario.surface)] + [
        (f"arms[{i}].surface", arm.surface) for i, arm in enumerate(scenario.arms)
    ]
    for where, cfg in places:
        if isinstance(cfg, PluginSurface):
            try:
                SURFACES.load(cfg.type)
            except LookupError as exc:
                raise RecarenaError(f"{where}.type: {exc}") from None
            # built here as every cell builds it: a factory that refuses its params (k: 0,
            # k: abc) passed validate and failed every cell of the run
            try:
                build_surface(cfg, scenario.population.position_decay)
            except RecarenaError as exc:
                raise RecarenaError(f"{where}.type: {exc}") from None
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in: any failure, one line
                raise RecarenaError(
                    f"{where}.params: {cfg.type!r} cannot be built from them: "
                    f"{type(exc).__name__}: {_plugin_message(exc)}"
                ) from None


def _plugin_message(exc: BaseException) -> str:
    """A plug-in's error in one short line (a pydantic error by its first field and message)."""
    errors = getattr(exc, "errors", None)
    if isinstance(exc, ValidationError) and callable(errors):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return first_line(exc)[:200]


def _resolve_user_policy(scenario: Scenario) -> None:
    try:
        USER_POLICIES.load(scenario.population.policy)
    except LookupError as exc:
        raise RecarenaError(f"population.policy: {exc}") from None


def _resolve_strategy(scenario: Scenario) -> None:
    spec = scenario.creators.strategy
    try:
        model = STRATEGIES.load(spec.type).Params
    except LookupError as exc:
        message = str(exc.args[0]) if exc.args else str(exc)  # KeyError's str() quotes it
        raise RecarenaError(f"creators.strategy: {message}") from None
    try:
        params = model.model_validate(spec.params)
    except ValidationError as exc:
        # as an arm's recommender params: the field's path, a close name for a misspelt key
        # (was "creators.strategy: exposure_chasing params: rat: Extra inputs are not permitted")
        raise RecarenaError(_first_error(exc, ("creators", "strategy", "params"), model)) from None
    except (Exception, SystemExit) as exc:
        if STRATEGIES.get(spec.type).source == "built-in":
            raise
        # a plug-in's params validator that raises anything but ValueError (pydantic passes it
        # through) was an internal error of validate
        raise RecarenaError(
            f"creators.strategy.params: the Params of {spec.type!r} raised "
            f"{type(exc).__name__}: {_plugin_message(exc)}"
        ) from None
    unknown = ignored_keys(STRATEGIES.load(spec.type).Params, spec.params)
    if unknown:
        raise RecarenaError(
            f"creators.strategy.params.{unknown[0]}: unknown key (the Params of {spec.type!r} "
            f"have no such field){did_you_mean(unknown[0], model.model_fields)}"
        )
    # a params model may coerce the string "inf" into a float; the YAML check cannot see that
    check_finite(params.model_dump(), prefix="creators.strategy.params")
    check_no_bool_numbers(
        spec.params, dump_by_name_and_alias(params), prefix="creators.strategy.params"
    )
    if STRATEGIES.get(spec.type).source != "built-in":
        # built as every cell builds it (Class(params), cheap): a plug-in whose constructor
        # raised passed validate and failed every cell of the run
        try:
            strategy = build_strategy(spec.type, spec.params)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plug-in: any failure, one line
            raise RecarenaError(
                f"creators.strategy: {spec.type!r} cannot be built: "
                f"{type(exc).__name__}: {_plugin_message(exc)}"
            ) from None
        if not hasattr(strategy, "explore"):
            # was "explore must be a share in [0, 1], got None": a strategy written to the
            # contract table (Params and update) had no such attribute to be None
            raise RecarenaError(
                f"creators.strategy: {spec.type!r} has no explore attribute: the share of "
                "uploads, in [0, 1], whose main topic is drawn uniformly instead of from the "
                "mix (explore = 0.0 for none)"
            )
        explore = strategy.explore
        if not (isinstance(explore, int | float) and 0 <= explore <= 1):
            raise RecarenaError(
                f"creators.strategy: {spec.type!r}: explore must be a share in [0, 1], "
                f"got {explore!r}"
            )


def _resolve_params(scenario: Scenario) -> None:
    """Validate each arm's recommender params against its registered model and fill defaults."""
    for index, arm in enumerate(scenario.arms):
        try:
            entry = get_entry(arm.recommender.type)
        except LookupError as exc:
            message = str(exc.args[0]) if exc.args else str(exc)  # KeyError's str() quotes it
            raise RecarenaError(f"arms[{index}].recommender.type: {message}") from None
        where = f"arms[{index}].recommender.params"
        plugin = RECOMMENDERS.get(arm.recommender.type).source != "built-in"
        try:
            params = entry.params.model_validate(arm.recommender.params)
        except ValidationError as exc:
            raise RecarenaError(
                _first_error(exc, ("arms", index, "recommender", "params"), entry.params)
            ) from None
        except (Exception, SystemExit) as exc:
            if not plugin:
                raise  # our own params model failing is our bug
            # a plug-in's validator that raises anything but ValueError (pydantic passes it
            # through) was an internal error of validate
            raise RecarenaError(
                f"{where}: the Params of {arm.recommender.type!r} raised "
                f"{type(exc).__name__}: {_plugin_message(exc)}"
            ) from None
        unknown = ignored_keys(entry.params, arm.recommender.params)
        if unknown:
            raise RecarenaError(
                f"{where}.{unknown[0]}: unknown key (the Params of {arm.recommender.type!r} "
                f"have no such field){did_you_mean(unknown[0], entry.params.model_fields)}"
            )
        check_finite(params.model_dump(), prefix=where)
        check_no_bool_numbers(arm.recommender.params, dump_by_name_and_alias(params), prefix=where)
        try:
            arm.recommender.params = plain_params(params)
        except (Exception, SystemExit) as exc:
            if not plugin:
                raise
            # the params are saved with the run (scenario.resolved.yaml) and sent to each cell
            raise RecarenaError(
                f"{where}: the Params of {arm.recommender.type!r} hold a value that is not plain "
                f"data (numbers, text, lists, mappings): {_plugin_message(exc)}"
            ) from None
        _check_surface_fits(scenario, index, entry)  # added by 5a


def _check_surface_fits(scenario: Scenario, index: int, entry: Any) -> None:  # added by 5a
    """A conversational recommender (one that only serves ``conversation``) needs that surface;
    list recommenders may serve a conversation (the dialogue loop wraps them)."""
    arm = scenario.arms[index]
    surfaces = getattr(entry.factory, "surfaces", frozenset({"list"}))
    kind = scenario.surface_for(arm).type
    if kind != "conversation" and "conversation" in surfaces and "list" not in surfaces:
        where = f"arms[{index}].surface" if arm.surface is not None else "surface"
        raise RecarenaError(
            f"arms[{index}].recommender.type: {arm.recommender.type!r} is a conversational "
            f"recommender and needs a conversation surface, but {where} is a {kind}"
        )
