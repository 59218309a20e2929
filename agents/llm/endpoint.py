"""Which endpoint a run talks to, decided once per run and shared by users, creators and CRSs.

Kept in the LLM infrastructure layer so that recommenders and creator strategies reach the same
endpoint as the user panel without importing user code.
"""

from __future__ import annotations

from dataclasses import dataclass

from recarena.agents.llm.client import LOCAL_MODEL, Endpoint
from recarena.simulator.core.scenario import Scenario


@dataclass(frozen=True)
class LLMRuntime:
    """What a run decides once and hands to every cell (never part of the scenario file)."""

    run_id: str
    cache_path: str
    base_url: str | None = None
    cache_mode: str | None = None  # overrides llm.cache.mode (CLI --llm-cache-mode)


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
