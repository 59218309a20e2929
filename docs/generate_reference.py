"""Regenerate the generated parts of docs/reference/ from the code.

Why: reference pages copied by hand drift from the code. These are written from the code's
own definitions, and tests/test_docs.py fails when they are stale:

* docs/reference/logs.md: every log column (simulator/core/logschema.py), below the page's
  hand-written introduction (everything above the first ``## `` heading is kept);
* docs/reference/scenario.md: every scenario field with its type, default and description
  (the pydantic schema in simulator/core/scenario.py, the same one `recarena schema` prints);
* docs/reference/cli.md: every command and option (the typer app in simulator/cli/);
* docs/reference/scenario.schema.json: that schema as JSON, which the example scenarios name
  in their ``# yaml-language-server: $schema=`` header for editor completion.

    .venv/bin/python docs/generate_reference.py          # rewrite
    .venv/bin/python docs/generate_reference.py --check  # exit 1 if a page is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from recarena.simulator.core.logschema import markdown_tables
from recarena.simulator.core.scenario import Scenario

DOCS = Path(__file__).resolve().parent / "reference"


def logs_page() -> str:
    current = (DOCS / "logs.md").read_text(encoding="utf-8")
    intro = current.split("\n## ", 1)[0].rstrip() + "\n\n"
    return intro + markdown_tables("##")


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    if "oneOf" in prop:
        return " or ".join(_type_of(p) for p in prop["oneOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array" and "items" in prop:
        return f"list of {_type_of(prop['items'])}"
    return str(kind)


def _section(name: str, schema: dict[str, Any]) -> str:
    lines = [f"## {name}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    lines += ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    required = set(schema.get("required", []))
    for field, prop in schema.get("properties", {}).items():
        if field in required:
            default = "required"
        elif isinstance(prop.get("default"), dict):
            default = "its section's defaults"
        else:
            default = f"`{prop.get('default')!r}`"
        doc = " ".join(prop.get("description", "").split()).replace("|", "\\|")
        lines.append(f"| `{field}` | {_type_of(prop)} | {default} | {doc} |")
    return "\n".join(lines)


def scenario_page() -> str:
    schema = Scenario.model_json_schema()
    parts = [
        "# Scenario reference",
        "",
        "Generated from the schema by docs/generate_reference.py (`recarena schema` prints the "
        "same as JSON Schema). A scenario is a YAML mapping; unknown keys are errors.",
        "",
        _section("Scenario", schema),
    ]
    for name, definition in sorted(schema.get("$defs", {}).items()):
        parts += ["", _section(name, definition)]
    return "\n".join(parts) + "\n"


def cli_page() -> str:
    """Every command and option, from the typer app itself (so `--help` and this page agree)."""
    import typer

    from recarena.simulator.cli import app

    group = typer.main.get_command(app)
    parts = [
        "# Command-line reference",
        "",
        "Generated from the command definitions by docs/generate_reference.py; `recarena COMMAND "
        "--help` prints the same. Every input mistake is one line on stderr and exit code 2; "
        "`recarena --debug ...` shows a traceback instead.",
        "",
        "Exit codes: 0 done; 1 unexpected failure or a cell failed; 2 bad input (nothing "
        "written); 3 too many LLM decisions fell back to the rule policy; 130 interrupted.",
    ]
    context = typer.Context(group)
    parts += ["", "Options before the command (`recarena --debug run ...`):", ""]
    parts += _param_rows(group.params)
    for name in sorted(group.list_commands(context)):  # type: ignore[attr-defined]
        command = group.get_command(context, name)  # type: ignore[attr-defined]
        summary = " ".join((command.help or "").split("\n\n")[0].split())
        parts += ["", f"## recarena {name}", "", summary, ""]
        parts += _param_rows(command.params)
    return "\n".join(parts) + "\n"


def _param_rows(params: list) -> list[str]:
    """A table of a command's arguments and options: names, help, and the default (or
    "required" for an option that has none, as `--help` marks it with a star)."""
    rows = ["| argument or option | meaning | default |", "| --- | --- | --- |"]
    for param in params:
        if param.name == "help":
            continue
        names = ", ".join(f"`{o}`" for o in param.opts) if param.opts else f"`{param.name}`"
        is_argument = getattr(param, "param_type_name", "") == "argument"
        if is_argument:
            names = f"`{(param.metavar or param.name).upper()}`"
        help_text = " ".join((getattr(param, "help", "") or "").split()).replace("|", "\\|")
        default = param.default
        empty = default is None or default is False or default == () or callable(default)
        shown = "" if empty else f"`{default}`"
        if param.required and not is_argument:
            shown = "required"
        rows.append(f"| {names} | {help_text} | {shown} |")
    return rows


def schema_file() -> str:
    """The JSON Schema scenario files point at (``# yaml-language-server: $schema=...``)."""
    document = Scenario.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "recarena scenario"
    return json.dumps(document, indent=2) + "\n"


def main() -> None:
    pages = {
        DOCS / "logs.md": logs_page(),
        DOCS / "scenario.md": scenario_page(),
        DOCS / "scenario.schema.json": schema_file(),
        DOCS / "cli.md": cli_page(),
    }
    stale = [p for p, text in pages.items() if not p.exists() or p.read_text() != text]
    if "--check" in sys.argv:
        for path in stale:
            print(f"stale: {path} (run python docs/generate_reference.py)")
        sys.exit(1 if stale else 0)
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(pages)} pages ({len(stale)} changed)")


if __name__ == "__main__":
    main()
