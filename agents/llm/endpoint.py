"""Which endpoint a run talks to, decided once per run and shared by users, creators and CRSs.

Kept in the LLM infrastructure layer so that recommenders and creator strategies reach the same
endpoint as the user panel without importing user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recarena.agents.llm.client import LOCAL_MODEL, Endpoint
from recarena.simulator.core.scenario import Scenario


@dataclass(frozen=True)
class LLMRuntime:
    """What a run decides once and hands to every cell (never part of the scenario file)."""

    run_id: str
    cache_path: str
    base_url: str | None = None
    cache_mode: str | None = None  # overrides llm.cache.mode (CLI --llm-cache-mode)
    live_seconds: float | None = 10.0  # a live line on stderr this often per cell; None: quiet


def model_name(scenario: Scenario) -> str:
    """The model name sent to the endpoint (and the server's alias for a local GGUF file)."""
    llm = scenario.llm
    if llm.model:
        return llm.model
    if llm.provider != "local":
        return "gpt-4o-mini"
    return Path(llm.model_path).stem if llm.model_path else LOCAL_MODEL


def endpoint_for(scenario: Scenario, base_url: str | None) -> Endpoint:
    llm = scenario.llm
    local = llm.provider == "local"
    return Endpoint(
        base_url=base_url or llm.base_url,
        model=model_name(scenario),
        api_key_env=llm.api_key_env,
        response_format=llm.response_format or ("json_object_schema" if local else "json_schema"),
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        seed=scenario.seed,
        concurrency=llm.concurrency,
        timeout_seconds=llm.timeout_seconds,
        max_retries=llm.max_retries,
        backoff_seconds=llm.backoff_seconds,
        decision=llm.decision,
    )
