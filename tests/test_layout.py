"""The package layout: one namespace, layers that point one way, no import cycles.

The layer order is written once, in pyproject.toml ([tool.importlinter]); `lint-imports` checks
it in `make test`, and this test checks the same order over the same import graph (grimp, the
library import-linter is built on) so a plain `pytest` catches an upward import too.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import grimp
import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FOLDERS = ("simulator", "agents", "recommenders", "analysis")
NESTED = {"recarena.gym": "simulator/gym"}
"""Packages installed from a folder inside another top-level folder (recarena.gym lives in
simulator/gym/). Python can also reach that folder as recarena.simulator.gym; that alias is
not a package of ours and the layer tests ignore it."""
ALIASES = tuple("recarena." + folder.replace("/", ".") for folder in NESTED.values())
ROOTS = [f"recarena.{f}" for f in FOLDERS] + list(NESTED)
HEAVY = {"torch", "recbole", "llama_cpp", "ray"}


def _layers() -> list[list[str]]:
    """Bottom layer first; each layer a list of sibling packages."""
    contract = PYPROJECT["tool"]["importlinter"]["contracts"][0]
    return [[p.strip() for p in line.split("|")] for line in reversed(contract["layers"])]


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, siblings in enumerate(layers):
        for package in siblings:
            if module == package or module.startswith(package + "."):
                if best is None or len(package) > best[0]:
                    best = (len(package), index)
    return None if best is None else best[1]


def layer_violations(edges: list[tuple[str, str]], layers: list[list[str]]) -> list[str]:
    """Imports from a lower layer to a higher one, and between independent siblings."""
    bad = []
    for importer, imported in edges:
        low, high = _layer_of(importer, layers), _layer_of(imported, layers)
        if low is None or high is None:
            continue
        if high > low:
            bad.append(f"{importer} -> {imported} (layer {low} imports layer {high})")
        elif high == low:
            a = next(p for p in layers[low] if importer.startswith(p))
            b = next(p for p in layers[low] if imported.startswith(p))
            if a != b:
                bad.append(f"{importer} -> {imported} (independent siblings)")
    return bad


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*ROOTS, exclude_type_checking_imports=True)


def _is_alias(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALIASES)


def _modules(graph) -> list[str]:
    return [m for m in graph.modules if not _is_alias(m)]


def _edges(graph) -> list[tuple[str, str]]:
    return [
        (importer, imported)
        for importer in _modules(graph)
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("recarena.")
    ]


def test_layers_point_one_way(graph):
    assert layer_violations(_edges(graph), _layers()) == []


def test_layer_check_catches_an_upward_import(graph):
    edges = _edges(graph) + [("recarena.simulator.core.types", "recarena.analysis.metrics")]
    bad = layer_violations(edges, _layers())
    assert bad == [
        "recarena.simulator.core.types -> recarena.analysis.metrics (layer 0 imports layer 8)"
    ]


def test_every_module_has_a_layer(graph):
    layers = _layers()
    top = {"recarena.simulator", "recarena.agents", "recarena.recommenders", "recarena.analysis"}
    missing = [m for m in _modules(graph) if m not in top and _layer_of(m, layers) is None]
    assert missing == []


def test_no_import_cycles(graph):
    """Function-level imports count: a cycle hidden inside a function is still a cycle."""
    g = nx.DiGraph(_edges(graph))
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert cycles == []


def test_pyproject_lists_every_package_folder():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    nested = {ROOT / folder: package for package, folder in NESTED.items()}

    def package_of(folder: Path) -> str:
        for root, package in nested.items():
            if folder == root or root in folder.parents:
                return ".".join((package, *folder.relative_to(root).parts))
        return "recarena." + ".".join(folder.relative_to(ROOT).parts)

    found = {
        package_of(init.parent)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == listed


def test_nothing_but_recarena_installed_at_top_level():
    assert all(p.startswith("recarena.") for p in PYPROJECT["tool"]["setuptools"]["packages"])
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapping == {f"recarena.{f}": f for f in FOLDERS} | NESTED


def _function_level_project_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recarena"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
    return found


def test_imports_inside_functions_only_where_they_keep_startup_light():
    """Project imports inside functions hide cycles. They are allowed only in the CLI (each
    command imports what it needs, so `validate` and `list` start fast) and to reach a module
    that imports a heavy optional dependency (torch, RecBole, llama.cpp, Ray)."""
    allowed_files = {str(p.relative_to(ROOT)) for p in (ROOT / "simulator" / "cli").glob("*.py")}
    offenders = []
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel in allowed_files:
                continue
            for hit in _function_level_project_imports(path):
                module = hit.split()[-1]
                target = ROOT / Path(*module.split(".")[1:]).with_suffix(".py")
                text = target.read_text() if target.exists() else ""
                heavy = any(f"import {h}" in text or f"from {h}" in text for h in HEAVY)
                if not heavy:
                    offenders.append(hit)
    assert offenders == []
