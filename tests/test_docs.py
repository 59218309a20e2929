"""Docs tell the truth: generated pages are current, the README stays short and linked, and
the commands, options, make targets, paths and YAML the docs show exist in the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_reference_pages_are_generated_from_the_current_code():
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert links and missing == []


def test_readme_names_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in ci


def test_example_scenarios_carry_the_schema_header():
    """Editors with the YAML language server complete and check scenario files."""
    for path in sorted((ROOT / "scenarios").rglob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path


def test_every_scenario_field_has_a_description():
    """`recarena schema` must explain every field it lists."""
    from recarena.simulator.core.scenario import Scenario

    schema = Scenario.model_json_schema()
    sections = {"Scenario": schema, **schema.get("$defs", {})}
    missing = [
        f"{name}.{field}"
        for name, section in sections.items()
        for field, prop in section.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


DOC_PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _doc_lines():
    for page in DOC_PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            yield f"{page.relative_to(ROOT)}:{number}", line


def test_every_recarena_command_and_option_the_docs_name_exists():
    """A reader who types `recarena COMMAND --option` from the docs gets that command and
    option: an option renamed or removed in the code is named here with the page and line."""
    import typer

    from recarena.analysis.metrics import REGISTRY as METRICS
    from recarena.simulator.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    metrics = set(METRICS.entries())
    top = {"--debug", "--version", "--help"}
    wrong = []
    for where, line in _doc_lines():
        # up to the end of the code span, table cell or shell comment
        for match in re.finditer(r"\brecarena((?: --[a-z-]+)*) ([a-z][a-z_-]*)([^`|#\n]*)", line):
            flags, name, rest = match.groups()
            if any(flag not in top for flag in flags.split()):
                wrong.append(f"{where}: recarena {flags.strip()}")
            if name not in commands:
                if "`" in line[: match.start()] and line[: match.start()].count("`") % 2:
                    wrong.append(f"{where}: no command 'recarena {name}'")
                continue  # prose such as "recarena steps a population"
            known = {o for p in commands[name].params for o in (*p.opts, *p.secondary_opts)}
            for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest):
                if option not in known | {"--help"}:
                    wrong.append(f"{where}: recarena {name} has no {option}")
            if name in ("compare", "run", "report"):  # a metric named on the command line
                for metric in re.findall(r"(?:--metric|-m) ([a-z_0-9]+)\b", rest):
                    if metric not in metrics:
                        wrong.append(f"{where}: no metric {metric!r}")
    assert wrong == []


def test_every_make_target_the_docs_name_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = {
        (where, target)
        for where, line in _doc_lines()
        for target in re.findall(r"`make ([\w-]+)", line)
    }
    assert named and [f"{w}: make {t}" for w, t in sorted(named) if t not in targets] == []


def test_every_repository_path_the_docs_name_exists():
    """`simulator/runner/rundir.py`, `scenarios/ope.yaml`, `examples/train_policy.py`: a file
    the docs send the reader to is there (paths under runs/ or of the reader's own package are
    examples, not files of this repository)."""
    pattern = re.compile(
        r"(?<![\w./<-])((?:[\w.-]+/)+[\w.-]+\.(?:py|yaml|md|ipynb|toml|json|png|txt))\b"
    )
    missing = []
    for page in DOC_PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for path in pattern.findall(line):
                if path.startswith(("runs/", "mypackage/", "recbole/")):
                    continue
                bases = (ROOT, page.parent, ROOT / "docs")
                if not any((base / path).exists() for base in bases):
                    missing.append(f"{page.relative_to(ROOT)}:{number}: {path}")
    assert missing == []


def _yaml_blocks():
    for page in DOC_PAGES:
        text = page.read_text()
        for match in re.finditer(r"```ya?ml\n(.*?)```", text, re.S):
            line = text[: match.start()].count("\n") + 1
            yield f"{page.relative_to(ROOT)}:{line}", match.group(1)


def _merge(base: dict, part: dict) -> dict:
    out = dict(base)
    for key, value in part.items():
        if key == "arms":  # a snippet's arms join a random baseline unless it has several
            out[key] = value if len(value) > 1 else [*base["arms"][:1], *value]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("where,block", list(_yaml_blocks()), ids=lambda v: str(v)[:60])
def test_every_yaml_snippet_in_the_docs_is_a_valid_scenario_or_part_of_one(where, block):
    """A YAML block in the docs is a whole scenario, or top-level sections of one: pasted into
    a small scenario it passes the schema and the resolve step (keys, types, ranges, plug-in
    names and params), so a field renamed in the code cannot stay in the docs. An arm naming
    the reader's own code (`mypackage.recs:...`) or files (a checkpoint under runs/) is checked
    by the schema only."""
    import yaml

    from recarena.analysis.metrics import check_metrics
    from recarena.simulator.core.scenario import validate_document
    from recarena.simulator.runner.resolve import resolve

    part = yaml.safe_load(block)
    assert isinstance(part, dict), where
    base = {
        "name": "docs",
        "horizon": {"days": 1},
        "catalog": {"initial_items": 200},
        "population": {"users": 100},
        "arms": [
            {"name": "random", "recommender": {"type": "random"}},
            {"name": "mf", "recommender": {"type": "mf"}},
        ],
    }
    doc = part if "name" in part else _merge(base, part)
    scenario = validate_document(doc, where)
    own = [arm for arm in scenario.arms if ":" in arm.recommender.type or "runs/" in str(arm)]
    if not own:
        resolve(scenario, where)
    if not any(":" in name for name in scenario.metrics):
        check_metrics(scenario, where)


def test_every_table_a_cell_writes_has_its_columns_in_the_log_reference():
    """docs/reference/logs.md is "what every log column means": the opt-in tables (posts,
    messages, social_clicks, instructions, item_sources, source_periods) are written by every
    cell too, and were missing from it."""
    from recarena.simulator.core.logschema import SCHEMAS

    page = (ROOT / "docs" / "reference" / "logs.md").read_text()
    headings = set(re.findall(r"^## (\w+)$", page, re.M))
    assert sorted(set(SCHEMAS) - headings) == []
    for table, schema in SCHEMAS.items():
        section = page.split(f"\n## {table}\n", 1)[1].split("\n## ", 1)[0]
        assert [f"`{name}`" in section for name in schema.names] == [True] * len(schema), table


def test_every_python_name_the_docs_name_exists():
    """`analysis.grid.by_row`, `recarena.analysis.ope.Estimator`, `recarena.gym`: a name the
    docs tell a reader to import or call is there. Entry-point groups (`recarena.metrics`) are
    checked against the registries' own groups."""
    import importlib

    from recarena.agents.creators.strategies import REGISTRY as STRATEGIES
    from recarena.agents.users.policies import REGISTRY as POLICIES
    from recarena.analysis.metrics import REGISTRY as METRICS
    from recarena.analysis.ope import REGISTRY as ESTIMATORS
    from recarena.recommenders.registry import REGISTRY as RECOMMENDERS
    from recarena.simulator.engine.surfaces import REGISTRY as SURFACES
    from recarena.simulator.runner.executors import EXECUTORS

    registries = (STRATEGIES, POLICIES, METRICS, ESTIMATORS, RECOMMENDERS, SURFACES, EXECUTORS)
    groups = {registry.group for registry in registries}
    metadata_keys = {"recarena.calibration"}  # a Parquet metadata key (real-data.md)

    def exists(name: str) -> bool:
        parts = name.split(".")
        parts = ["recarena", *parts] if parts[0] == "analysis" else parts
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attribute in parts[cut:]:
                if not hasattr(found, attribute):
                    return False
                found = getattr(found, attribute)
            return True
        return False

    missing = [
        f"{where}: {name}"
        for where, line in _doc_lines()
        for name in re.findall(r"`((?:recarena|analysis)(?:\.[A-Za-z_]\w*)+)", line)
        if name not in groups | metadata_keys and not exists(name)
    ]
    assert missing == []


def test_every_option_the_docs_pass_to_a_repository_script_is_in_that_script():
    """`python benchmarks/engine.py --users ...`, `examples/train_policy.py --reset-every`: an
    option the docs pass to one of the repository's scripts is one the script defines."""
    call = re.compile(r"python ((?:benchmarks|examples|docs)/\w+\.py)([^`|#\n]*)")
    wrong = []
    for where, line in _doc_lines():
        for script, rest in call.findall(line):
            source = (ROOT / script).read_text()
            for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                if f'"{option}"' not in source:
                    wrong.append(f"{where}: {script} has no {option}")
    assert wrong == []
