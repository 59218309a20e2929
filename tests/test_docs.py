"""Docs that are generated from the code are current, and the README stays short and linked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
