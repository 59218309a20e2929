"""``list`` and ``schema``: what the installation knows, printed without running anything."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recarena.simulator.cli.app import app, err, out


def _params_text(entry_object: object) -> str:
    """``key=default`` for each field of a plug-in's pydantic Params model (empty if none).

    The key is what a scenario writes (the field's alias, e.g. ``lambda``), and a default built
    by a factory is shown built (``{}``).
    """
    params = getattr(entry_object, "Params", None)
    fields = getattr(params, "model_fields", None)
    if not fields:
        return ""
    shown = []
    for name, field in fields.items():
        if field.is_required():
            default = "required"
        else:
            default = repr(field.get_default(call_default_factory=True, validated_data={}))
        shown.append(f"{field.alias or name}={default}")
    return ", ".join(shown)


def _what_it_is(entry_object: object) -> str:
    """An installed plug-in's own words, once ``--params`` has loaded it: a metric's
    ``description``, else the first line of a class's or function's docstring (the registry
    knows only built-ins' descriptions without importing anything)."""
    described = getattr(entry_object, "description", None)
    if isinstance(described, str) and described.strip():
        return described.strip()
    doc = entry_object.__doc__ if callable(entry_object) else None
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


@app.command("list")
def list_components(
    params: Annotated[
        bool, typer.Option("--params", help="Also show each plug-in's params and defaults.")
    ] = False,
) -> None:
    """Every plug-in of every kind (recommenders to executors), built-in and installed."""
    from recarena.agents.creators.strategies import REGISTRY as STRATEGIES
    from recarena.agents.users.policies import REGISTRY as USER_POLICIES
    from recarena.analysis.metrics import REGISTRY as METRICS
    from recarena.analysis.ope import REGISTRY as ESTIMATORS
    from recarena.recommenders.registry import REGISTRY as RECOMMENDERS
    from recarena.simulator.engine.surfaces import REGISTRY as SURFACES
    from recarena.simulator.runner.executors import EXECUTORS

    table = Table(title="recarena components", show_lines=False)
    for column in ("kind", "name", "what it is", "source") + (("params",) if params else ()):
        # fold what does not fit: a name or default cut to "batch_size=40…" cannot be read
        table.add_column(column, overflow="fold")
    registries = (RECOMMENDERS, USER_POLICIES, SURFACES, STRATEGIES, METRICS, ESTIMATORS)
    for registry in (*registries, EXECUTORS):
        for name, entry in registry.entries().items():
            row = [registry.label, name, entry.description, entry.source]
            if params and registry is EXECUTORS:
                row.append("")  # no params; loading the Ray executor would import Ray
            elif params:
                try:
                    loaded = entry.load()
                except LookupError as exc:
                    row.append(f"(cannot load: {exc})")
                else:
                    row[2] = row[2] or _what_it_is(loaded)
                    row.append(_params_text(loaded))
            table.add_row(*row)
    table.add_row("user model", "mixed", "rule users plus an LLM panel (population.llm_panel)", "")
    table.add_row("user model", "llm", "every user answers each page through the LLM", "")
    table.add_row("conversational user", "agenda", "rule user with a hidden target", "")
    table.add_row("llm provider", "local", "llama.cpp on 127.0.0.1 (any GGUF model)", "")
    table.add_row("llm provider", "openai", "any OpenAI-compatible endpoint (llm.base_url)", "")
    out.print(table)
    for registry in (*registries, EXECUTORS):
        for line in registry.ignored_entry_points():
            err.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        "Plug-ins: write `package.module:Class` where a name goes, or install a package with "
        "entry points in recarena.recommenders, recarena.user_policies, recarena.surfaces, "
        "recarena.creator_strategies, recarena.metrics, recarena.ope_estimators or "
        "recarena.executors."
    )


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema (every field with its description).

    Editors that speak the YAML language server validate and complete scenarios with it: put
    ``# yaml-language-server: $schema=<path to the printed file>`` on a scenario's first line
    (the repository's copy is docs/reference/scenario.schema.json).
    """
    import json

    from recarena.simulator.core.scenario import Scenario

    document = Scenario.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "recarena scenario"
    print(json.dumps(document, indent=2))
