"""Running the engine on a calibrated population (``population: {from: calibrated, path: ...}``).

Two steps, kept apart on purpose:

* :func:`resolve_calibrated` runs once per experiment, in the parent process, before any cell:
  it makes sure the file exists (calibrating ``population.dataset`` into ``path`` on the fly,
  because the repo cannot ship MovieLens-derived data) and rewrites the scenario's sizes to match
  the file (users, topics, initial items, creators) and, unless the YAML sets them, the fitted
  temperature, no-click utility and rating cut points. Every cell then runs an ordinary, fully
  resolved scenario, and ``scenario.resolved.yaml`` records what was actually simulated.
* :func:`calibrated_users` and :func:`add_calibrated_items` are what a cell does with the file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from recarena.agents.users.calibration import CalibratedPopulation, CalibrationConfig, calibrate
from recarena.agents.users.population import UserState, draw_explore_prob
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Population, Scenario
from recarena.simulator.data.datasets import dataset_notes, load_dataset
from recarena.simulator.data.sampling import DEFAULT_MAX_RATINGS, sampled_line, subsample_users

# agents/users/calibrated_policy.py, named rather than imported (it is loaded by the registry)
CALIBRATED_POLICY = "recarena.agents.users.calibrated_policy:CalibratedUserPolicy"


def is_calibrated(path: Path) -> bool:
    """Whether the calibrated population ``path`` (its users and items files) exists."""
    users, items, _ = CalibratedPopulation.paths(path)
    return users.exists() and items.exists()


def ensure_calibrated(path: Path, dataset: str | None) -> None:
    """Calibrate ``dataset`` into ``path`` unless the file is already there."""
    if is_calibrated(path):
        return
    if dataset is None:
        raise RecarenaError(
            f"population.path: {path} not found and population.dataset is not set; make it "
            f"with `recarena calibrate DATASET -o {path}`"
        )
    started = time.perf_counter()
    print(f"calibrating {dataset} into {path} ...", file=sys.stderr)
    full = load_dataset(dataset)
    data = subsample_users(full, None, 0, DEFAULT_MAX_RATINGS)  # as `recarena calibrate` does
    if note := sampled_line(full, data, DEFAULT_MAX_RATINGS):
        print(f"note: {note}", file=sys.stderr)
    population = calibrate(data, CalibrationConfig())
    for note in dataset_notes(full):  # after the fit: a refused dataset is one error line
        print(f"note: {note}", file=sys.stderr)
    population.save(path)
    print(f"calibrated in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def resolve_calibrated(scenario: Scenario) -> Scenario:
    """The scenario with sizes and fitted scalars taken from its calibrated population file."""
    pop = scenario.population
    if pop.source != "calibrated":
        return scenario
    assert pop.path is not None
    path = Path(pop.path)
    ensure_calibrated(path, pop.dataset)
    calibrated = CalibratedPopulation.load(path)
    fitted: dict[str, object] = {"users": calibrated.n_users}
    for name in ("temperature", "no_click_utility"):
        if name not in pop.model_fields_set:
            fitted[name] = float(calibrated.scalars[name])
    cuts = calibrated.scalars.get("rating_thresholds")
    if cuts is not None and "rating_thresholds" not in pop.model_fields_set:
        fitted["rating_thresholds"] = [float(c) for c in cuts]
    if (  # the fitted user model, unless the YAML picks a policy itself
        calibrated.interest is not None
        and "policy" in type(pop).model_fields
        and "policy" not in pop.model_fields_set
    ):
        fitted["policy"] = CALIBRATED_POLICY
    catalog = scenario.catalog.model_copy(
        update={"topics": calibrated.n_topics, "initial_items": calibrated.n_items}
    )
    creators = scenario.creators.model_copy(update={"count": len(calibrated.creator_names)})
    population = pop.model_copy(update=fitted)
    return scenario.model_copy(
        update={"population": population, "catalog": catalog, "creators": creators}
    )


def calibrated_users(
    calibrated: CalibratedPopulation, cfg: Population, rng: np.random.Generator
) -> UserState:
    """Users with fitted taste and activity; explore intent is drawn as for generated users."""
    explore = draw_explore_prob(cfg, calibrated.n_users, rng)
    return UserState.new(
        calibrated.taste.astype(np.float32, copy=True),
        calibrated.activity.astype(np.float64, copy=True),
        explore,
    )


def add_calibrated_items(catalog: Catalog, calibrated: CalibratedPopulation) -> None:
    """The initial catalog: the dataset's items, in the file's order (item id = row)."""
    if catalog.n:
        raise ValueError("calibrated items must be the first items of the catalog")
    catalog.add(calibrated.topics, calibrated.quality, calibrated.creator, 0.0)
