"""The LLM a scenario calls, checked before any output directory exists.

The call cache (an SQLite file, or one to replay), an OpenAI-compatible endpoint and its key
variable, a local GGUF model whose cache of keys and values must fit the machine, and a panel's
page prompt that must fit the local server's context. Without these checks each was a run whose
cells failed, or whose every LLM decision fell back to the rule policy (exit 3), after the run
directory was made. Whether the endpoint answers is checked last by preflight
(simulator/runner/preflight.py): it waits on the network.
"""

from __future__ import annotations

import os
from pathlib import Path

from recarena.agents.llm.cache import table_problem
from recarena.agents.llm.endpoint import unreachable
from recarena.agents.llm.gguf_check import kv_cache_bytes
from recarena.agents.llm.server import check_local_llm, local_model_path
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.paths import check_creatable, url_problem
from recarena.simulator.core.scenario import DEFAULT_KEY_VARIABLE, Scenario
from recarena.simulator.runner.resource_estimate import human_bytes, machine_memory

_SQLITE_HEADER = b"SQLite format 3\x00"


def check_llm_cache(scenario: Scenario, mode: str | None, path: Path | None) -> None:
    if not scenario.uses_llm:
        return
    mode = mode or scenario.llm.cache.mode
    what = "--llm-cache" if path is not None else "llm.cache.path"
    cache = path or (Path(scenario.llm.cache.path) if scenario.llm.cache.path else None)
    if mode == "replay":
        if cache is None:  # was: validate looked in output.dir, the run in its new directory
            raise RecarenaError(
                "llm.cache.path: replay needs the cache of a recorded run; give its path in "
                "llm.cache.path or with --llm-cache OLD_RUN/llm_cache.sqlite (the default, "
                "the run directory's own llm_cache.sqlite, holds nothing to replay)"
            )
        check_creatable(cache, what, directory=False)
        if not cache.exists():  # a directory is named as one below
            raise RecarenaError(
                f"{what}: replay needs the cache of a recorded run, {cache} not found"
            )
    if cache is None or mode == "off":
        return  # the default cache is made inside the new run directory
    check_cache_file(cache, what, replay=mode == "replay")


def check_cache_file(cache: Path, what: str, replay: bool = False) -> None:
    """An LLM call cache that can be opened: new, or an SQLite cache of calls (one line naming
    ``what`` otherwise); ``recarena fidelity --llm-cache`` checks its path the same way."""
    # an over-long name, a symlink loop or a file where its directory belongs: the run's open
    # of the cache failed (an internal error, or every cell failing after the run dir was made)
    check_creatable(cache, what, directory=False)
    if not cache.exists():
        return
    if not cache.is_file():
        raise RecarenaError(f"{what}: {cache} is not a file (an SQLite cache of LLM calls)")
    try:
        with cache.open("rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise RecarenaError(f"{what}: cannot read {cache}: {exc.strerror or exc}") from None
    if head and head != _SQLITE_HEADER:  # an empty file is a new cache
        raise RecarenaError(f"{what}: {cache} is not an SQLite file (a cache of LLM calls)")
    if not head and replay:
        raise RecarenaError(f"{what}: {cache} is empty; replay needs the cache of a recorded run")
    problem = table_problem(cache, replay=replay) if head else None
    if problem is not None:
        raise RecarenaError(f"{what}: {problem}")


def check_llm_endpoint(scenario: Scenario, mode: str | None) -> None:
    """provider openai: an endpoint to call, from llm.base_url or OPENAI_BASE_URL (was: every
    cell failed with "no endpoint to call" after the run directory was made)."""
    llm = scenario.llm
    if not scenario.uses_llm or llm.provider != "openai" or (mode or llm.cache.mode) == "replay":
        return
    problem = key_variable_problem(llm.api_key_env)
    if problem is not None:
        raise RecarenaError(f"llm.api_key_env: {problem}")
    if llm.base_url is not None:
        return  # checked by the schema
    url = os.environ.get("OPENAI_BASE_URL", "")
    if not url:
        raise RecarenaError(
            "llm.base_url: provider openai needs an endpoint to call (set llm.base_url or the "
            "OPENAI_BASE_URL environment variable)"
        )
    problem = url_problem(url)
    if problem is not None:
        raise RecarenaError(f"environment variable OPENAI_BASE_URL (llm.base_url): {problem}")


def key_variable_problem(name: str) -> str | None:
    """Why the API key variable ``name`` a user chose holds no key (None when it does, or when
    it is the default OPENAI_API_KEY, which an endpoint without keys lets be unset). Was: an
    unset variable sent the key 'not-needed', every call was refused (401) and fell back, and
    the run ended with exit 3."""
    if name == DEFAULT_KEY_VARIABLE or os.environ.get(name, "").strip():
        return None
    state = "is empty" if name in os.environ else "is not set"
    return (
        f"the environment variable {name} {state}; export the endpoint's key in it, or leave "
        f"the setting out for an endpoint that needs no key"
    )


def check_llm_reachable(scenario: Scenario, mode: str | None) -> None:
    """provider openai: the endpoint accepts a connection. Without one every LLM decision falls
    back to the rule policy, each after its retries (minutes, or hours when the host drops
    packets), and the run ends with exit 3: a run of rule users. ``--allow-fallback`` (or
    ``--max-fallback 1``) accepts that and skips this check; a replay calls nothing."""
    llm = scenario.llm
    if not scenario.uses_llm or llm.provider != "openai" or (mode or llm.cache.mode) == "replay":
        return
    url = llm.base_url or os.environ.get("OPENAI_BASE_URL", "")
    problem = unreachable(url)
    if problem is not None:
        raise RecarenaError(
            f"llm.base_url {url}: nothing answers ({problem}); every LLM decision would fall "
            "back to the rule policy. Start the endpoint, replay a recorded cache with "
            "--llm-cache-mode replay, or pass --allow-fallback to run anyway"
        )


def check_llm_model(scenario: Scenario, mode: str | None) -> None:
    """provider local: the server's package and a GGUF model file (the run's own check)."""
    llm = scenario.llm
    if not scenario.uses_llm or llm.provider != "local" or (mode or llm.cache.mode) == "replay":
        return
    check_local_llm(llm.model_path)
    # llama.cpp allocates the whole cache of keys and values for llm.context_tokens when the
    # server starts, inside the run: past the machine's memory the server died there with a
    # fragment of its traceback
    path = Path(llm.model_path) if llm.model_path else local_model_path()
    cache = kv_cache_bytes(path, llm.context_tokens)
    memory = machine_memory()
    if cache is not None and cache[0] > memory:
        raise RecarenaError(
            f"llm.context_tokens: {llm.context_tokens:,} tokens need a ~{human_bytes(cache[0])} "
            f"cache of keys and values over the model's {cache[1]} layers; this machine has "
            f"{human_bytes(memory)}"
        )
    _check_panel_prompt_fits(scenario)


CHARS_PER_TOKEN = 4
"""The rule of thumb ``llm_panel.memory_tokens`` is counted with (about 4 characters a token)."""


def _check_panel_prompt_fits(scenario: Scenario) -> None:
    """provider local: what every page prompt of a panel user holds at least (the persona, the
    memories' budget, the answer) fits the server's context. Was: a persona of 42,000
    characters (about 12,000 tokens) passed validate, and llama.cpp refused every call of the
    run (HTTP 400, 'maximum context length is 2048 tokens'), which fell back to the rule
    policy: a run of rule users, ending with exit 3."""
    llm, panel = scenario.llm, scenario.population.llm_panel
    if panel is None:
        return
    texts = [str(item.get("text", "")) for item in panel.personas.items] or [""]
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    persona = -(-len(texts[longest]) // CHARS_PER_TOKEN)
    answer = llm.max_tokens if llm.decision == "generate" else 2
    needed = persona + panel.memory_tokens + answer
    if needed < llm.context_tokens:
        return
    parts = [f"memories' budget {panel.memory_tokens:,} (population.llm_panel.memory_tokens)"]
    if persona:
        parts.insert(
            0,
            f"persona items[{longest}] about {persona:,} ({len(texts[longest]):,} "
            f"characters at about {CHARS_PER_TOKEN} a token)",
        )
    parts.append(f"answer {answer:,}")
    where = (
        f"population.llm_panel.personas.items[{longest}].text"
        if persona >= panel.memory_tokens
        else "population.llm_panel.memory_tokens"
    )
    raise RecarenaError(
        f"{where}: a page prompt would need at least {needed:,} tokens ({'; '.join(parts)}) "
        f"of the {llm.context_tokens:,} the local server holds (llm.context_tokens), leaving "
        "nothing for the page; llama.cpp would refuse those calls (HTTP 400) and every one "
        "would fall back to the rule policy. Shorten it, or raise llm.context_tokens"
    )
