"""Parameter sweeps: a grid of overrides on a scenario, each combination one *point*.

A scenario's ``sweep`` maps a path into the scenario to the values to try::

    sweep:
      population.explore_prob: [0.1, 0.3]
      arms[1].recommender.params.dim: [16, 32]

Every combination (the Cartesian product, last path varying fastest) is a point with its own
fully resolved scenario, the same scenario a plain run with those values written in would have.
So a point's cells are ordinary cells: their arms share random numbers within the point, and
since the seed is the same for every point, points are paired with each other too.

Paths are checked against the *resolved* scenario (defaults and recommender params filled in),
so a path that does not exist is an error naming ``sweep.<path>``, never a silent no-op, and
every value is validated by the same schema as a hand-written scenario before anything runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from recarena.agents.creators.strategies import REGISTRY as STRATEGIES
from recarena.recommenders.registry import get_entry, validated_base_params
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.machine import env_limit
from recarena.simulator.core.names import did_you_mean
from recarena.simulator.core.registry import plain_params
from recarena.simulator.core.scenario import CreatorStrategySpec, RecommenderSpec, Scenario
from recarena.simulator.runner.resolve import parse_scenario

PathStep = str | int

# Keys that fix the run's layout (cells, names, where logs go): sweeping them would make the
# points incomparable or the run directory ambiguous.
FIXED_KEYS = frozenset({"name", "replicates", "baseline", "metrics", "output", "sweep"})
UNSIMULATED_KEYS = frozenset({"description"})
"""Keys that change nothing simulated: a sweep over one ran the same cells again under new point
numbers, as a value written twice did before it was refused."""

MAX_POINTS = 10_000
"""Largest grid expanded; each point is a resolved scenario, so 810,000 of them take minutes
and gigabytes before a single cell runs. Raise it with RECARENA_MAX_SWEEP_POINTS."""

_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[([^\[\]]+)\]")


@dataclass(frozen=True)
class SweepPoint:
    """One combination of swept values and the resolved scenario it gives."""

    index: int
    params: dict[str, Any]
    """Swept path (as written in the scenario) -> value at this point."""
    scenario: Scenario
    """The point's resolved scenario, without a ``sweep`` section."""

    @property
    def path(self) -> str:
        return f"point={self.index}"

    def doc(self) -> dict[str, Any]:
        return self.scenario.model_dump(mode="json")


def parse_path(path: str) -> list[PathStep]:
    """``arms[1].recommender.params.dim`` -> ``["arms", 1, "recommender", "params", "dim"]``.

    A bracketed step that is not an integer stays a string: for ``arms`` it names an arm
    (``arms[mf].recommender.params.dim``).
    """
    steps: list[PathStep] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        # a key is dotted unless it comes first: "a.b[0].c", never ".a" or "a[0]b"
        dotted = match is not None and match.group(0).startswith(".")
        if match is None or (match.group(1) is not None and dotted != bool(steps)):
            raise RecarenaError(f"sweep.{path}: not a path (write e.g. arms[1].recommender.type)")
        key, index = match.group(1), match.group(2)
        if key is not None:
            steps.append(key)
        else:
            index = index.strip()
            steps.append(int(index) if re.fullmatch(r"-?\d+", index) else index)
        position = match.end()
    if not steps or not isinstance(steps[0], str):
        raise RecarenaError(f"sweep.{path}: not a path (write e.g. population.explore_prob)")
    return steps


def _resolve(
    doc: dict[str, Any], path: str, steps: list[PathStep], model: Any = None
) -> list[PathStep]:
    """The path with arm names replaced by indices and a plug-in param's alias by its field
    name; an error if any step does not exist.

    ``model`` is the scenario ``doc`` was dumped from: a field its dump leaves out while unset
    (``population.taste_drift`` at 0, ``population.conversation``) is still a field, so it
    can be swept; a field inside one that is not set is named as such."""
    resolved: list[PathStep] = []
    node: Any = doc
    params: Any = None  # the Params model of ``node`` when it is a plug-in's params
    for number, step in enumerate(steps):
        where = _format(resolved) or "the scenario"
        if params is not None and isinstance(step, str):
            # the dump holds field names (lambda_), arms are written with aliases (lambda)
            step = _field_name(params, step)
        if isinstance(node, dict) and isinstance(step, str) and step not in node:
            fields = getattr(type(model), "model_fields", {})
            if params is not None and number == len(steps) - 1:
                # a plug-in's params left at their defaults are not written out (a creator
                # strategy's): its Params model still has the field, and the point checks it
                if step in getattr(params, "model_fields", {}):
                    resolved.append(step)
                    return resolved
                written = _written_names(params)
                raise RecarenaError(
                    f"sweep.{path}: {where} has no key {step!r}"
                    f"{did_you_mean(step, written) or ';'} known: {', '.join(written) or 'none'}"
                )
            if step in fields:
                value = getattr(model, step)
                if number == len(steps) - 1:  # the point sets it; the schema checks the value
                    resolved.append(step)
                    return resolved
                if value is None:
                    raise RecarenaError(
                        f"sweep.{path}: {_format([*resolved, step])} is not set, so it has no "
                        f"fields to sweep; set it in the scenario (e.g. {step}: {{}}) first"
                    )
        if isinstance(node, list):
            if isinstance(step, str) and all(isinstance(x, dict) and "name" in x for x in node):
                names = [x["name"] for x in node]
                if step not in names:
                    raise RecarenaError(
                        f"sweep.{path}: {where} has no entry named {step!r}"
                        f"{did_you_mean(step, names) or ';'} known: {', '.join(names)}"
                    )
                step = names.index(step)
            if not isinstance(step, int) or not 0 <= step < len(node):
                raise RecarenaError(
                    f"sweep.{path}: {where} has {len(node)} entries; [{step}] does not exist"
                )
        elif isinstance(node, dict):
            if not isinstance(step, str) or step not in node:
                known = ", ".join(str(k) for k in node) or "none"
                close = did_you_mean(step, [str(k) for k in node]) or ";"
                raise RecarenaError(
                    f"sweep.{path}: {where} has no key {step!r}{close} known: {known}"
                )
        else:
            raise RecarenaError(
                f"sweep.{path}: {where} is {'not set' if node is None else repr(node)}, "
                "so it has no fields to sweep"
            )
        params = _params_model(model, node, step)
        resolved.append(step)
        node = node[step]
        model = _child(model, step)
    return resolved


def _params_model(model: Any, node: Any, step: PathStep) -> Any:
    """The Params model of what ``step`` leads to from ``node`` (``model`` in the scenario)
    when that is a plug-in's params: an arm's recommender params, the creator strategy's, or a
    wrapper's ``base_params`` (its ``base``'s). None for anything else, or for a plug-in that
    cannot be loaded (the resolve step has named that already)."""
    try:
        if step == "params" and isinstance(model, RecommenderSpec):
            return get_entry(model.type).params
        if step == "params" and isinstance(model, CreatorStrategySpec):
            return STRATEGIES.load(model.type).Params
        if step == "base_params" and isinstance(node, dict) and isinstance(node.get("base"), str):
            return get_entry(node["base"]).params
    except LookupError:
        return None
    return None


def _field_name(params: Any, key: str) -> str:
    """The field of ``params`` that ``key`` names: itself, or the field whose alias it is
    (mmr's ``lambda`` is the alias of its field ``lambda_``). Arms write the alias and the
    resolved scenario holds the field name, so a sweep path may use either."""
    fields = getattr(params, "model_fields", {})
    if key in fields:
        return key
    return next((name for name, info in fields.items() if info.alias == key), key)


def _written_names(params: Any) -> list[str]:
    """The fields of ``params`` as a scenario writes them (the alias where a field has one)."""
    return [info.alias or name for name, info in getattr(params, "model_fields", {}).items()]


def _child(model: Any, step: PathStep) -> Any:
    """The part of a scenario model at ``step`` (None when the model does not follow)."""
    if isinstance(model, list) and isinstance(step, int) and 0 <= step < len(model):
        return model[step]
    if isinstance(step, str) and step in getattr(type(model), "model_fields", {}):
        return getattr(model, step)
    return None


def _format(steps: list[PathStep]) -> str:
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else ("." if out else "") + step
    return out


def _check_sweepable(path: str, steps: list[PathStep]) -> None:
    head = steps[0]
    if head in FIXED_KEYS:
        raise RecarenaError(f"sweep.{path}: {head!r} cannot be swept (it fixes the run's layout)")
    if head in UNSIMULATED_KEYS:
        raise RecarenaError(
            f"sweep.{path}: {head!r} changes nothing that is simulated (every point would run "
            "the same cells); sweep a setting of the simulation"
        )
    if head == "arms" and (len(steps) <= 2 or steps[2] == "name"):
        raise RecarenaError(
            f"sweep.{path}: arms and their names cannot be swept; sweep a field inside an arm, "
            "e.g. arms[1].recommender.params.dim"
        )


def _set(doc: dict[str, Any], steps: list[PathStep], value: Any) -> None:
    """Set one swept value. A ``type`` swept to another plug-in starts from that plug-in's own
    default ``params``: the base's were filled in for its type, so they would be unknown keys of
    another (sweeping ``arms[1].recommender.type`` over popularity and random was refused).
    A wrapper's ``base`` swept to another recommender does the same with ``base_params`` when
    the ones filled in for the first base do not fit the second (sweeping
    ``arms[mmr].recommender.params.base`` over popularity and mf was refused on popularity's
    ``half_life_days``); params that fit are kept, as points of such sweeps always ran."""
    node: Any = doc
    for step in steps[:-1]:
        node = node[step]
    last = steps[-1]
    if last == "type" and isinstance(node.get("params"), dict) and node.get("type") != value:
        node["params"] = {}
    if last == "base" and node.get("base") != value and not _fits_base(value, node):
        node["base_params"] = {}
    node[last] = copy.deepcopy(value)


def _fits_base(base: Any, node: dict[str, Any]) -> bool:
    """Whether a wrapper's ``base_params`` are valid params of ``base`` (no ``base_params``, or
    a base that is not a name, is left to the point's own check to name)."""
    params = node.get("base_params")
    if not isinstance(params, dict) or not isinstance(base, str):
        return True
    try:
        validated_base_params(base, params)
    except Exception:  # noqa: BLE001 - any refusal: the point starts from the base's defaults
        return False
    return True


def _types_first(params: dict[str, Any], targets: dict[str, list[PathStep]]) -> list[str]:
    """The order a point's values are set in: types and bases before anything else, so a swept
    param of the swept plug-in is not wiped by its reset (see :func:`_set`)."""
    return sorted(params, key=lambda path: targets[path][-1] not in ("type", "base"))


def grid_size(scenario: Scenario) -> int:
    """Points of the scenario's grid (the product of its list lengths), without expanding it."""
    return math.prod(len(values) for values in (scenario.sweep or {}).values())


def check_grid_size(scenario: Scenario, max_points: int | None = None) -> int:
    """The grid's size; RecarenaError when it exceeds ``max_points`` (default MAX_POINTS)."""
    limit = max_points or env_limit("RECARENA_MAX_SWEEP_POINTS", MAX_POINTS)
    size = grid_size(scenario)
    if size > limit:
        lengths = " x ".join(str(len(v)) for v in (scenario.sweep or {}).values())
        raise RecarenaError(
            f"sweep: {lengths} = {size:,} points exceeds the maximum of {limit:,} "
            "(set RECARENA_MAX_SWEEP_POINTS to allow more)"
        )
    return size


def expand_sweep(scenario: Scenario) -> list[SweepPoint]:
    """Every point of the scenario's grid, validated; ``[]`` for a scenario without a sweep.

    The same scenario (equal as JSON) is expanded once: validate and run ask for the points
    three or four times (preflight, the cell plan, the log estimate, the run), and a
    10,000-point grid took seconds each time. Callers get a fresh list of the same points."""
    if not scenario.sweep:
        return []
    check_grid_size(scenario)
    return list(_expansion(_ByJson(scenario.model_dump_json(), scenario)))


@dataclass(frozen=True, eq=False)
class _ByJson:
    """A scenario that hashes and compares as its JSON (pydantic models do not hash)."""

    key: str
    scenario: Scenario

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByJson) and other.key == self.key


@functools.lru_cache(maxsize=1)  # one grid at a time: a sweep's points can take hundreds of MB
def _expansion(scenario: _ByJson) -> tuple[SweepPoint, ...]:
    return tuple(_expand(scenario.scenario))


def _expand(scenario: Scenario) -> list[SweepPoint]:
    assert scenario.sweep, "expand_sweep returns [] for a scenario without a sweep"
    base = scenario.model_dump(mode="json")
    base.pop("sweep", None)
    # each check starts from a fresh copy of the base; the base is plain JSON (a model's JSON
    # dump), and parsing its text is ~10x faster than copy.deepcopy
    base_text = json.dumps(base)
    targets: dict[str, list[PathStep]] = {}
    for path, values in scenario.sweep.items():
        steps = parse_path(path)
        _check_sweepable(path, steps)
        targets[path] = _resolve(base, path, steps, scenario)
        parsed: dict[str, Any] = {}
        for value in values:  # each value on its own first, so an error names its path
            doc = json.loads(base_text)
            _set(doc, targets[path], value)
            try:
                alone = parse_scenario(doc)
            except RecarenaError as exc:
                message = str(exc).removeprefix("<scenario>: ")
                raise RecarenaError(
                    f"sweep.{path}: value {value!r} is invalid: {message}"
                ) from None
            # two spellings of one value (30 and '30'): their points would repeat
            setting = json.dumps(alone.model_dump(mode="json"))
            if setting in parsed:
                raise RecarenaError(
                    f"sweep.{path}: {value!r:.80} is the same setting as {parsed[setting]!r:.80} "
                    "(the points would repeat; more runs of one setting are replicates)"
                )
            parsed[setting] = value
    seen: dict[tuple[PathStep, ...], str] = {}
    for path, steps in targets.items():
        key = tuple(steps)
        if key in seen:
            raise RecarenaError(f"sweep.{path}: the same field is swept twice")
        for other, first in seen.items():
            # a section and a field inside it: which value the point gets depends on the order
            # of the keys (the section's value silently reset or overrode the field's)
            inner, outer = (path, first) if len(key) > len(other) else (first, path)
            if key[: len(other)] == other or other[: len(key)] == key:
                raise RecarenaError(
                    f"sweep.{inner}: is inside sweep.{outer}, which is swept too; each point "
                    "would set it twice (sweep one of them)"
                )
        seen[key] = path

    points: list[SweepPoint] = []
    paths = list(scenario.sweep)
    for combo in itertools.product(*(scenario.sweep[p] for p in paths)):
        doc = json.loads(base_text)
        params = dict(zip(paths, combo, strict=True))
        for path in _types_first(params, targets):
            _set(doc, targets[path], params[path])
        try:  # the base and each value passed the value walks: only their combination is new
            resolved = parse_scenario(doc, scanned=True)
        except RecarenaError as exc:  # values fine alone, not together (e.g. two bounds)
            message = str(exc).removeprefix("<scenario>: ")
            raise RecarenaError(f"sweep: point {len(points)} {params}: {message}") from None
        _check_run_level(scenario, resolved, f"sweep: point {len(points)} {params}")
        points.append(SweepPoint(len(points), params, resolved))
    _check_read(targets, points)
    _check_type_params_read(base, scenario, targets)
    _check_calibrated(scenario, targets, points)
    return points


def _default_params(kind: PathStep, type_name: str) -> dict[str, Any] | None:
    """A recommender's (``kind`` arms) or creator strategy's params with nothing written; None
    when its Params need a value (nothing written is then not its defaults)."""
    try:
        model = get_entry(type_name).params if kind == "arms" else STRATEGIES.load(type_name).Params
        return plain_params(model.model_validate({}))
    except Exception:  # noqa: BLE001 - a required field, an unknown type: not defaults
        return None


def _check_base_params_read(path: str, node: dict[str, Any], values: list[Any]) -> None:
    """A wrapper's swept ``base`` keeps its ``base_params`` at the points whose base they fit
    (:func:`_set`); base_params other than the first base's defaults that no swept base takes
    were dropped at every point without a word."""
    own, params = node.get("base"), node.get("base_params")
    if not params or not isinstance(own, str) or own in values:
        return
    try:
        if params == validated_base_params(own, {}):
            return
    except Exception:  # noqa: BLE001 - the base's own check names it
        return
    if any(_fits_base(value, node) for value in values):
        return
    where = path.rsplit(".", 1)[0]
    raise RecarenaError(
        f"sweep.{path}: no point has the base the base_params were written for ({own!r}), nor "
        f"one they fit, so {where}.base_params would be read by nothing (each point starts from "
        f"its base's defaults); sweep {own!r} too, or leave those base_params out"
    )


def _check_type_params_read(
    base: dict[str, Any], scenario: Scenario, targets: dict[str, list[PathStep]]
) -> None:
    """A swept ``type`` starts each point from that type's default params (:func:`_set`), so
    params written for the scenario's own type are read only at the points of that type. With
    none (an mf arm with ``dim: 4`` swept over itemknn and random), they were dropped without a
    word."""
    assert scenario.sweep is not None
    for path, steps in targets.items():
        node: Any = base
        for step in steps[:-1]:
            node = node[step]
        if steps[-1] == "base" and isinstance(node, dict):
            _check_base_params_read(path, node, scenario.sweep[path])
        if steps[-1] != "type" or steps[0] not in ("arms", "creators"):
            continue
        own, params = node.get("type"), node.get("params")
        if not params or own in scenario.sweep[path]:
            continue
        if params != _default_params(steps[0], own):
            where = path.rsplit(".", 1)[0]
            raise RecarenaError(
                f"sweep.{path}: no point has the type the params were written for ({own!r}), "
                f"so {where}.params would be read by nothing (each point starts from its own "
                f"type's defaults); sweep {own!r} too, or leave those params out"
            )


CALIBRATED_SOURCE = ("from", "source", "path", "dataset")
"""Where a calibrated population comes from (``from`` is ``source``'s YAML key)."""
CALIBRATED_SIZES = (
    ("population", "users"),
    ("catalog", "topics"),
    ("catalog", "initial_items"),
    ("creators", "count"),
)
"""Fields a calibrated population replaces with its own (agents/users/calibrated.py)."""


def _check_calibrated(
    scenario: Scenario, targets: dict[str, list[PathStep]], points: list[SweepPoint]
) -> None:
    """The run reads a calibrated population once, from the scenario, before the sweep is
    expanded: its sizes and fitted choice model are every point's. A point that swept another
    population in (population.path, from, dataset or the whole section) kept the scenario's
    sizes, and one that swept a size the file sets (population.users, catalog.topics, ...) ran
    with it; both passed validate and every cell failed on a shape mismatch or an index out of
    bounds (exit 1), or mixed two populations' fits."""
    worlds = [scenario] + [point.scenario for point in points]
    if not any(world.population.source == "calibrated" for world in worlds):
        return
    for path, steps in targets.items():
        key = tuple(steps)
        if key == ("population",) or (
            len(key) == 2 and key[0] == "population" and key[1] in CALIBRATED_SOURCE
        ):
            raise RecarenaError(
                f"sweep.{path}: the run reads one calibrated population, from the scenario, "
                "for every point (its users, items and fitted choice model), so it cannot be "
                "swept; run each population as a scenario of its own"
            )
        for field in CALIBRATED_SIZES:
            if field[: len(key)] == key:  # the field itself or a section holding it
                raise RecarenaError(
                    f"sweep.{path}: the calibrated population (population.path) sets "
                    f"{'.'.join(field)} for every point, so it cannot be swept"
                )


OVERRIDDEN_BY_ARMS = {
    "surface": ("surface", "surface"),
    "retrain": ("retrain_every_days", "retrain schedule"),
}
"""Scenario-level sections an arm may replace with a field of its own (Scenario.surface_for,
Scenario.retrain_days)."""


def _check_read(targets: dict[str, list[PathStep]], points: list[SweepPoint]) -> None:
    """A swept ``llm`` setting when no point uses an LLM, or a swept ``surface`` or ``retrain``
    that every arm overrides, is read by nothing: every point ran the same cells under new
    numbers, as a sweep over ``description`` did before it was refused."""
    for path, steps in targets.items():
        # a scenario-level default that every arm of every point overrides: the same cells
        # under two point numbers (sweep.surface.k with every arm's own surface ran k once)
        overridden = OVERRIDDEN_BY_ARMS.get(str(steps[0]))
        if overridden is not None and all(
            getattr(arm, overridden[0]) is not None
            for point in points
            for arm in point.scenario.arms
        ):
            raise RecarenaError(
                f"sweep.{path}: every arm sets its own {overridden[1]} (arms[i].{overridden[0]}), "
                f"so the scenario's {steps[0]} is read by nothing and every point would run the "
                f"same cells; sweep arms[i].{overridden[0]} instead"
            )
    if any(point.scenario.uses_llm for point in points):
        return
    for path, steps in targets.items():
        if steps[0] == "llm":
            raise RecarenaError(
                f"sweep.{path}: no point uses an LLM (LLM users, creators or recommenders), "
                "so llm settings are read by nothing and every point would run the same cells"
            )


RUN_LEVEL_LLM = ("provider", "base_url", "cache")
"""LLM settings the run sets up once, from the scenario, for every point's cells."""
LOCAL_SERVER = ("model_path", "model", "context_tokens", "threads")
"""And with ``provider: local``, the one llama.cpp server the run starts for all points."""


def _check_run_level(scenario: Scenario, point: Scenario, where: str) -> None:
    """A point may not need what the run sets up once from the scenario itself: an LLM
    endpoint the scenario does not use (its cells failed: no LLM runtime), or another endpoint,
    cache or local server than the scenario's (it was silently ignored)."""
    if not point.uses_llm:
        return
    if not scenario.uses_llm:
        raise RecarenaError(
            f"{where}: this point uses an LLM but the scenario itself does not; the run sets up "
            "its LLM endpoint once, from the scenario: write the LLM setting in the scenario "
            "and sweep to the others"
        )
    fields = RUN_LEVEL_LLM + (LOCAL_SERVER if scenario.llm.provider == "local" else ())
    for name in fields:
        if getattr(point.llm, name) != getattr(scenario.llm, name):
            shared = "endpoint, server" if scenario.llm.provider == "local" else "endpoint"
            raise RecarenaError(
                f"{where}: llm.{name} differs from the scenario's; the run sets up one LLM "
                f"{shared} and cache for every point, so llm.{name} cannot be swept"
            )
