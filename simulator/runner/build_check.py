"""Plug-in recommenders and user policies built before a run, the way each cell builds them.

A plug-in's constructor is its own code: it may refuse its params, look for a file, or simply
raise. The class alone cannot tell (the registry checks its methods and signature), so such an
arm passed ``validate`` and then failed every one of its cells after the run directory was
written (exit 1). Building is cheap (nothing is fitted: ``fit`` runs on the cell's clock), so
the preflight builds each plug-in once per distinct ``(type, params, users, topics)`` with the
cell's context, and a failure is one line naming the arm and the class (exit 2).

Two things of the cell's context exist only inside a cell: the true utilities (``truth``, a
function here that refuses to answer) and the users' talk feed. With ``population.social.talk``
the plug-ins are not built here (a stand-in feed could make a good plug-in fail); the cell's
own build then fails with the same one line. A calibrated population is read as the run reads it
before its first cell (its users, items and topics from the file); one the run has yet to
calibrate (``population.dataset``) has no file to read, so its plug-in policy is built by the
cell alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mesa
import numpy as np

from recarena.agents.users.calibrated import resolve_calibrated
from recarena.agents.users.calibration import CalibratedPopulation, CalibrationConfig
from recarena.agents.users.population import draw_explore_prob
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.registry import build_plugin, plugins_in, recommender_tree
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import exception_text, plugin_prints_to_stderr
from recarena.simulator.core.rng import arm_key, generator
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.engine.world import build_people, build_user_policy, is_plugin_policy

Built = set[tuple[str, str, int, int]]
"""What was built already: (type, params as JSON, users, topics)."""


def _no_truth(requests: Any, items: np.ndarray) -> np.ndarray:
    raise RuntimeError("true utilities exist only inside a cell (not while validating)")


def check_builds(scenario: Scenario, users: int, built: Built) -> None:
    """Build a plug-in user policy and every plug-in recommender of the scenario's arms (none
    are fitted); RecarenaError naming the field (and the arm) and the class when a constructor
    fails. What a constructor prints goes to stderr, as it does in a cell."""
    with plugin_prints_to_stderr():
        _check_recbole(scenario, built)
    social = scenario.population.social
    if social is not None and social.talk is not None:
        return
    with plugin_prints_to_stderr():
        _build_all(scenario, users, built)


def _check_recbole(scenario: Scenario, built: Built) -> None:
    """Train each RecBole arm's model once on made-up clicks (recommenders/recbole_models.py,
    ``trial_problem``): RecBole checks a model's hyper-parameters only when it trains."""
    for index, arm in enumerate(scenario.arms):
        root = f"arms[{index}].recommender"
        for node in recommender_tree(root, arm.recommender.type, arm.recommender.params):
            if node.type_name != "recbole":
                continue
            # named as before: the arm's spec for its own type, a base's params object for a base
            field = root if node.type_field == root else node.params_field
            params = node.params
            key = ("recbole", json.dumps(params, sort_keys=True, default=repr), 0, 0)
            if key in built:
                continue
            from recarena.recommenders.recbole_models import RecBoleParams, trial_problem

            checked = RecBoleParams.model_validate(params)
            problem = trial_problem(checked)
            if problem is not None:
                raise RecarenaError(
                    f"{field}.params (arm {arm.name!r}): RecBole model {checked.model!r} "
                    f"cannot be trained with them: {problem}"
                )
            built.add(key)


def _build_all(scenario: Scenario, users: int, built: Built) -> None:
    """The builds of :func:`check_builds`. A calibrated population's file is read only when
    something is built (it can take a while, and most scenarios build nothing)."""
    if is_plugin_policy(scenario):
        world = as_cells_build_it(scenario)
        if world is not None:
            _check_user_policy(world, users, built)
    found = [
        (arm, plugin)
        for index, arm in enumerate(scenario.arms)
        for plugin in plugins_in(
            f"arms[{index}].recommender", arm.recommender.type, arm.recommender.params
        )
    ]
    topics = cell_topics(scenario) if found else 0
    for arm, (field, type_name, params) in found:
        key = (type_name, json.dumps(params, sort_keys=True, default=repr), users, topics)
        if key in built:
            continue
        context = RecommenderContext(
            rng=generator(scenario.seed, 0, "recommender", arm_key(arm.name)),
            n_users=users,
            n_topics=topics,
            truth=_no_truth,
            exploration_setting=draw_explore_prob(
                scenario.population, users, generator(scenario.seed, 0, "population")
            ),
        )
        where = f"{field} (arm {arm.name!r})"
        with _base_exceptions_as_lines(f"{where}: {type_name!r} cannot be built"):
            build_plugin(type_name, params, context, where)
        built.add(key)


def as_cells_build_it(scenario: Scenario) -> Scenario | None:
    """The scenario as every cell gets it: with a calibrated population, its sizes and fitted
    scalars read from the file, as the run does before the first cell (the written
    ``catalog.topics``, 16 by default, built a 16-topic catalog for a 4-topic file, and validate
    of a plug-in policy ended in an internal error, exit 1). None when the run has yet to
    calibrate the file."""
    pop = scenario.population
    if pop.source != "calibrated" or pop.path is None:
        return scenario
    users_path, items_path, _ = CalibratedPopulation.paths(pop.path)
    if not (users_path.exists() and items_path.exists()):
        return None
    return resolve_calibrated(scenario)


def cell_topics(scenario: Scenario) -> int:
    """The topics of every cell's catalog: a calibrated population's own (the run's default
    calibration's when it has yet to make the file), else the written ``catalog.topics``."""
    world = as_cells_build_it(scenario)
    return world.catalog.topics if world is not None else CalibrationConfig().topics


def _check_user_policy(scenario: Scenario, users: int, built: Built) -> None:
    """Build a plug-in ``population.policy`` over the users and catalog a cell starts with (the
    first replicate's): its constructor is its own code, so one that raised passed validate and
    failed every cell of the run."""
    if not is_plugin_policy(scenario):
        return
    start = scenario.model_dump_json(include={"seed", "population", "catalog", "creators"})
    key = (f"population.policy {scenario.population.policy}", start, users, 0)
    if key in built:
        return
    policy = scenario.population.policy
    with _base_exceptions_as_lines(f"population.policy: {policy!r} cannot be built"):
        build_user_policy(scenario, build_people(mesa.Model(), scenario, 0))
    built.add(key)


@contextmanager
def _base_exceptions_as_lines(what: str) -> Iterator[None]:
    """A BaseException of the plug-in's own (a class deriving from BaseException, not
    Exception) raised by its constructor: the builders turn an Exception or a sys.exit into
    one line, and this one printed a traceback (exit 1). A stop (KeyboardInterrupt) stays a
    stop."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, Exception):
        raise  # a stop, or what the builders already made one line of
    except BaseException as exc:
        raise RecarenaError(f"{what}: {exception_text(exc)}") from None
