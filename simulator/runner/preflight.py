"""Preflight: everything a run would trip over, found before any output directory exists.

The schema (simulator/core/scenario.py) checks each value on its own. A scenario can still be
valid value by value and impossible as a whole: a population file that is missing or is not a
calibrated population, a persona CSV whose ratings are text, 10^12 users that need terabytes, a
grid of 810,000 sweep points, a carousel with more slots than the catalog has items. Found at
run time, each of these is a traceback minutes in, with a half-written run directory.
``recarena validate`` and ``recarena run`` both call :func:`preflight` after the schema and
registry checks and before anything is created, so "validate says ok" means "run will start".

This module is the entry point and the order of the checks; each kind lives in its own module:
the files a scenario names (simulator/runner/input_file_checks.py), the LLM it calls
(simulator/runner/llm_checks.py), whole-scenario consistency
(simulator/runner/scenario_checks.py) and the resource estimate
(simulator/runner/resource_estimate.py). Plug-in recommenders are built once, as the cells
build them (simulator/runner/build_check.py), so a constructor that raises is found here too.
A sweep's points are checked one by one, as plain scenarios.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.runner.build_check import Built, check_builds
from recarena.simulator.runner.input_file_checks import (
    EdgeReader,
    check_files,
    file_inputs,
    uses_edge_list,
)
from recarena.simulator.runner.llm_cells import check_replay_cells
from recarena.simulator.runner.llm_checks import (
    check_cache_file,
    check_llm_reachable,
    key_variable_problem,
)
from recarena.simulator.runner.resource_estimate import (
    Estimate,
    Limits,
    Sizes,
    check_estimate,
    estimate,
    fits,
    human_bytes,
    machine_memory,
)
from recarena.simulator.runner.scenario_checks import (
    check_calibrated_fields,
    check_features_act,
    check_graph,
    check_leaving_can_happen,
    check_pages,
    check_population_fields_are_read,
    check_refits_happen,
    check_retrain,
    check_review_period,
    check_reviews_happen,
    check_rhythm_is_read,
    check_rhythm_starts_sessions,
    check_sections_are_read,
    check_wrapper_is_fed,
)
from recarena.simulator.runner.sweep import check_grid_size, expand_sweep

__all__ = [
    "EdgeReader",
    "Estimate",
    "Limits",
    "check_cache_file",
    "estimate",
    "human_bytes",
    "key_variable_problem",
    "machine_memory",
    "preflight",
    "uses_edge_list",
]
"""What other code imports from here (the CLI, the gym, the runner and the tests): each name
lives in the module of its kind and is re-exported so those imports keep working."""

FileCheck = Callable[[Scenario], Sizes | None]
"""The file checks of one scenario (preflight binds the CLI's cache and edge-list options)."""


def _check_points(
    scenario: Scenario,
    sizes: Sizes | None,
    workers: int | None,
    limits: Limits,
    force: bool,
    files: FileCheck,
    built: Built,
    shards: int = 1,
    memory: int = 0,
) -> None:
    """A sweep's points: each point's page shapes and resource limits, as for a plain scenario
    (a swept ``retrain.every_days`` or ``surface.k`` is refused like a written one), the
    files a point reads when they differ from the base's (a swept edge list or persona file;
    a calibrated population cannot be swept, simulator/runner/sweep.py), and its
    plug-in recommenders built once per distinct params (a swept plug-in param). ``memory``:
    the machine's, read once by :func:`preflight`."""
    if not scenario.sweep:
        return
    checked = {file_inputs(scenario): sizes}
    for point in expand_sweep(scenario):
        world = point.scenario
        values = ", ".join(f"{k}={v!r}" for k, v in point.params.items())
        try:
            key = file_inputs(world)
            if key not in checked:
                checked[key] = files(world)
            point_sizes = checked[key]
            check_pages(world, point_sizes.items if point_sizes else world.catalog.initial_items)
            check_graph(world, point_sizes)
            point_estimate = estimate(world, point_sizes, workers, shards)
            check_estimate(point_estimate, world, limits, force, memory)
            check_retrain(world)
            check_review_period(world)
            check_refits_happen(world)
            if fits(point_estimate, limits, memory):
                check_builds(world, point_estimate.users, built)
        except RecarenaError as exc:
            raise RecarenaError(f"sweep point {point.index} ({values}): {exc}") from None


def preflight(
    scenario: Scenario,
    source: str = "<scenario>",
    *,
    force: bool = False,
    workers: int | None = None,
    limits: Limits | None = None,
    llm_cache_mode: str | None = None,
    llm_cache_path: Path | None = None,
    read_edge_list: EdgeReader | None = None,
    probe_llm: bool = True,
    shards: int = 1,
) -> Estimate:
    """Check referenced files, page shapes, the sweep grid, the resource estimate and, last
    (it waits on the network), that an OpenAI-compatible endpoint accepts a connection.

    Raises RecarenaError (one line, prefixed with ``source``); returns the estimate otherwise.
    ``--force`` lifts the resource limits only, never a missing or broken file. An edge list is
    parsed only when ``read_edge_list`` is given (the CLI passes the engine's reader).
    ``probe_llm=False`` skips the endpoint (a dry run, or a run that accepts fallbacks).
    ``shards`` (``run --shards``) counts one cell's shard workers as what runs at once.
    """
    try:
        check_grid_size(scenario)
        check_population_fields_are_read(scenario)
        check_sections_are_read(scenario)
        check_rhythm_is_read(scenario)
        check_rhythm_starts_sessions(scenario)
        check_leaving_can_happen(scenario)
        check_wrapper_is_fed(scenario)

        def files(world: Scenario) -> Sizes | None:
            return check_files(world, llm_cache_mode, llm_cache_path, read_edge_list)

        sizes = files(scenario)
        check_pages(scenario, sizes.items if sizes else scenario.catalog.initial_items)
        check_graph(scenario, sizes)
        check_calibrated_fields(scenario, sizes)
        est = estimate(scenario, sizes, workers, shards)
        limits = limits or Limits()
        memory = machine_memory()  # once: the base's limits and every sweep point's
        check_estimate(est, scenario, limits, force, memory)
        check_retrain(scenario)  # after the limits: a count past them is the clearer line
        check_review_period(scenario)
        check_refits_happen(scenario)
        check_features_act(scenario)  # after the limits, which count its worst case
        check_reviews_happen(scenario)
        built: Built = set()
        # with a sweep, its points are what the cells build
        if not scenario.sweep and fits(est, limits, memory):
            check_builds(scenario, est.users, built)
        _check_points(scenario, sizes, workers, limits, force, files, built, shards, memory)
        check_replay_cells(scenario, llm_cache_mode, llm_cache_path)
        if probe_llm:
            check_llm_reachable(scenario, llm_cache_mode)
    except RecarenaError as exc:
        raise RecarenaError(f"{source}: {exc}") from None
    return est
