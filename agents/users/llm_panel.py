"""Assemble an LLM panel for one cell: which users, their personas, the client and its cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recarena.agents.llm.activity import LiveLine
from recarena.agents.llm.cache import CallCache
from recarena.agents.llm.client import LLMClient
from recarena.agents.llm.endpoint import LLMRuntime, endpoint_for
from recarena.agents.llm.item_text import ItemText, SyntheticItemText
from recarena.agents.users.calibrated_text import calibrated_item_text
from recarena.agents.users.llm_user import LLMUsers, PanelPolicy
from recarena.agents.users.personas import build_personas
from recarena.agents.users.population import UserState
from recarena.simulator.core.rng import generator
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.core.types import DAY


def panel_users(scenario: Scenario, replicate: int) -> np.ndarray:
    """The panel: the same users under every arm (common random numbers), sorted."""
    population = scenario.population
    n = population.llm_users
    if n >= population.users:
        return np.arange(population.users, dtype=np.int64)
    rng = generator(scenario.seed, replicate, "panel")
    return np.sort(rng.choice(population.users, size=n, replace=False)).astype(np.int64)


def build_panel_policy(
    scenario: Scenario,
    replicate: int,
    state: UserState,
    catalog,
    rule_policy,
    runtime: LLMRuntime,
    label: str = "",
) -> PanelPolicy:
    """The cell's panel; ``label`` (e.g. ``arm=mf``) names it in the live line on stderr."""
    panel = scenario.population.llm_panel
    assert panel is not None
    users = panel_users(scenario, replicate)
    personas = build_personas(
        users, panel.personas, state, generator(scenario.seed, replicate, "panel", 1)
    )
    mode = runtime.cache_mode or scenario.llm.cache.mode
    cache = CallCache(Path(runtime.cache_path), mode, runtime.run_id)  # type: ignore[arg-type]
    client = LLMClient(endpoint_for(scenario, runtime.base_url), cache)
    if label and runtime.live_seconds:
        horizon = scenario.horizon.days * DAY
        client.live = LiveLine(f"{label} rep={replicate}", horizon, runtime.live_seconds)
    item_text: ItemText = SyntheticItemText(catalog, catalog.n_topics)
    if scenario.population.source == "calibrated":  # real titles and genres (e.g. MovieLens)
        item_text = calibrated_item_text(scenario.population.path, catalog)
    llm = LLMUsers(panel, personas, item_text, client, scenario.llm.ratings)
    return PanelPolicy(rule_policy, llm, scenario.population, scenario.population.users)
