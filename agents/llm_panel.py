"""Assemble an LLM panel for one cell: which users, their personas, the client and its cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.item_text import SyntheticItemText
from agents.llm_cache import CallCache
from agents.llm_client import LOCAL_MODEL, Endpoint, LLMClient
from agents.llm_user import LLMUsers, PanelPolicy
from agents.personas import build_personas
from agents.population import UserState
from simulator.rng import generator
from simulator.scenario import Scenario


@dataclass(frozen=True)
class LLMRuntime:
    """What a run decides once and hands to every cell (never part of the scenario file)."""

    run_id: str
    cache_path: str
    base_url: str | None = None
    cache_mode: str | None = None  # overrides llm.cache.mode (CLI --llm-cache-mode)


def panel_users(scenario: Scenario, replicate: int) -> np.ndarray:
    """The panel: the same users under every arm (common random numbers), sorted."""
    population = scenario.population
    n = population.llm_users
    if n >= population.users:
        return np.arange(population.users, dtype=np.int64)
    rng = generator(scenario.seed, replicate, "panel")
    return np.sort(rng.choice(population.users, size=n, replace=False)).astype(np.int64)


def endpoint_for(scenario: Scenario, base_url: str | None) -> Endpoint:
    llm = scenario.llm
    local = llm.provider == "local"
    return Endpoint(
        base_url=base_url or llm.base_url,
        model=llm.model or (LOCAL_MODEL if local else "gpt-4o-mini"),
        api_key_env=llm.api_key_env,
        response_format=llm.response_format or ("json_object_schema" if local else "json_schema"),
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        seed=scenario.seed,
        concurrency=llm.concurrency,
        timeout_seconds=llm.timeout_seconds,
        max_retries=llm.max_retries,
        backoff_seconds=llm.backoff_seconds,
    )


def build_panel_policy(
    scenario: Scenario,
    replicate: int,
    state: UserState,
    catalog,
    rule_policy,
    runtime: LLMRuntime,
) -> PanelPolicy:
    panel = scenario.population.llm_panel
    assert panel is not None
    users = panel_users(scenario, replicate)
    personas = build_personas(
        users, panel.personas, state, generator(scenario.seed, replicate, "panel", 1)
    )
    mode = runtime.cache_mode or scenario.llm.cache.mode
    cache = CallCache(Path(runtime.cache_path), mode, runtime.run_id)  # type: ignore[arg-type]
    client = LLMClient(endpoint_for(scenario, runtime.base_url), cache)
    item_text = SyntheticItemText(catalog, catalog.n_topics)
    if scenario.population.source == "calibrated":  # real titles and genres (e.g. MovieLens)
        from agents.calibrated_text import calibrated_item_text

        item_text = calibrated_item_text(scenario.population.path, catalog)
    llm = LLMUsers(panel, personas, item_text, client)
    return PanelPolicy(rule_policy, llm, scenario.population, scenario.population.users)
