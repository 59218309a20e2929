"""Every plug-in kind is reachable the same three ways: built-in, entry point, module:attr."""

from __future__ import annotations

import re
from importlib import metadata

import numpy as np
import pytest

from recarena.analysis.compare import compare
from recarena.analysis.load import load
from recarena.analysis.metrics import REGISTRY as METRICS
from recarena.analysis.metrics import check_metrics, compute_metrics
from recarena.analysis.ope import REGISTRY as ESTIMATORS
from recarena.analysis.ope import summarise
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import Registry
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario


def test_registry_sources_and_errors(monkeypatch):
    registry = Registry("widget", {"plain": ("tests.plugin_kinds:PAGES", "a metric object")})
    fake = metadata.EntryPoint("fancy", "tests.plugin_kinds:half_ips", "recarena.widgets")
    reads = []
    monkeypatch.setattr(
        "recarena.simulator.core.registry.metadata.entry_points",
        lambda: reads.append(1) or metadata.EntryPoints([fake]),
    )
    monkeypatch.setattr("recarena.simulator.core.registry._INSTALLED", None)  # read afresh
    assert registry.names() == ["plain", "fancy"]
    assert Registry("gadget", {}).names() == []  # another kind: no entry point of its group
    assert len(reads) == 1  # one reading of the installed metadata serves every registry
    assert registry.entries()["fancy"].source.startswith("entry point")
    assert registry.load("fancy").__name__ == "half_ips"
    assert registry.load("tests.plugin_kinds:ClickFirstSlot").__name__ == "ClickFirstSlot"
    with pytest.raises(LookupError, match="unknown widget 'nope'; known: plain, fancy"):
        registry.get("nope")
    with pytest.raises(LookupError, match="not an importable path"):
        registry.get(".relative:Thing")
    with pytest.raises(LookupError, match="has no 'Missing'"):
        registry.load("tests.plugin_kinds:Missing")


def _every_registry() -> list[Registry]:
    from recarena.agents.creators.strategies import REGISTRY as STRATEGIES
    from recarena.agents.users.policies import REGISTRY as USER_POLICIES
    from recarena.recommenders.registry import REGISTRY as RECOMMENDERS
    from recarena.simulator.engine.surfaces import REGISTRY as SURFACES
    from recarena.simulator.runner.executors import EXECUTORS

    return [RECOMMENDERS, USER_POLICIES, SURFACES, STRATEGIES, METRICS, ESTIMATORS, EXECUTORS]


def test_entry_points_that_are_not_used_are_named(monkeypatch):
    """Was: an installed entry point named like a built-in (a plug-in registered as 'ctr' or
    'mf'), or like another installed one, was dropped without a word: the scenario ran the
    other plug-in and `recarena list` showed no sign of it."""
    from tests.cli_in_process import cli_out

    group = "recarena.metrics"
    points = [
        metadata.EntryPoint("ctr", "tests.plugin_kinds:PAGES", group),
        metadata.EntryPoint("pages", "tests.plugin_kinds:PAGES", group),
        metadata.EntryPoint("pages", "tests.plugin_kinds:RAISING_METRIC", group),
    ]
    monkeypatch.setattr("recarena.simulator.core.registry._INSTALLED", metadata.EntryPoints(points))
    for registry in _every_registry():  # read afresh here, and as they were after the test
        monkeypatch.setattr(registry, "_entry_points", None)
        monkeypatch.setattr(registry, "_table", None)
        monkeypatch.setattr(registry, "_ignored", [])
    assert METRICS.ignored_entry_points() == [
        "recarena.metrics entry point 'ctr' (tests.plugin_kinds:PAGES, entry point) is ignored: "
        "'ctr' is a built-in metric; register yours under another name",
        "recarena.metrics entry point 'pages' (tests.plugin_kinds:PAGES, entry point) is "
        "ignored: entry point registers 'pages' too (tests.plugin_kinds:RAISING_METRIC), and "
        "that one is used",
    ]
    assert METRICS.get("ctr").source == "built-in"
    assert METRICS.get("pages").target == "tests.plugin_kinds:RAISING_METRIC"
    code, stdout, stderr = cli_out("list")
    assert code == 0, stderr
    notes = stderr.splitlines()
    assert len(notes) == 2 and all(line.startswith("note: recarena.metrics") for line in notes)
    assert "'ctr' is a built-in metric" in notes[0]


def test_metric_plugin_by_path_and_contract(tiny_doc, tmp_path):
    tiny_doc["metrics"] = ["ctr", "tests.plugin_kinds:PAGES"]
    scenario = parse_scenario(tiny_doc)
    check_metrics(scenario, "x.yaml")
    tiny_doc["metrics"] = ["tests.plugin_kinds:NOT_A_METRIC"]
    with pytest.raises(RecarenaError, match=r"metrics\[0\]: .*is not a metric"):
        check_metrics(parse_scenario(tiny_doc), "x.yaml")
    assert "ctr" in METRICS.names()


def test_plugin_user_policy_surface_and_strategy_run(tiny_doc, tmp_path):
    doc = dict(tiny_doc, replicates=1)
    doc["population"] = {**doc.get("population", {}), "policy": "tests.plugin_kinds:ClickFirstSlot"}
    doc["surface"] = {"type": "tests.plugin_kinds:ShortList", "params": {"k": 3}}
    doc["creators"] = {
        **doc.get("creators", {}),
        "strategy": {"type": "tests.plugin_kinds:Stubborn"},
    }
    doc["arms"] = doc["arms"][:1]
    run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    logs = load(tmp_path / "run")
    exposures = logs.exposures.collect()
    assert exposures["position"].max() == 2  # the plug-in surface's k=3
    clicks = logs.interactions.collect()
    assert clicks.height > 0 and set(clicks["position"].to_list()) == {0}
    pages = compute_metrics(logs, ["tests.plugin_kinds:PAGES"])
    assert pages["value"][0] == exposures["request_id"].n_unique()


def test_metric_plugin_with_several_rows_per_cell_is_refused(tiny_doc, tmp_path):
    """Was: a plug-in metric that forgot to aggregate (a row per position) was taken as it
    was; compare printed a mean and a CI 'over replicates' of those rows, with no word."""
    doc = dict(tiny_doc, replicates=1)
    doc["arms"] = doc["arms"][:1]
    run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    logs = load(tmp_path / "run")
    name = "tests.plugin_kinds:PER_POSITION_METRIC"
    line = (
        f"metric '{name}' failed (ValueError: returned 5 rows for arm 'random' rep 0, "
        "expected one value per (arm, rep))"
    )
    with pytest.raises(RecarenaError, match=re.escape(line)):
        compute_metrics(logs, ["ctr", name])
    with pytest.raises(RecarenaError, match=re.escape(line)):
        compare(logs, metrics=[name])
    assert compute_metrics(logs, ["ctr"]).height == 1


def test_run_metric_that_no_longer_imports(tiny_doc, tmp_path):
    """Was: report, like compare, said 'choose metrics with --metric' for a run made with a
    plug-in metric this environment cannot import, and report has no --metric."""
    import json

    from tests.cli_in_process import assert_refused, cli

    doc = dict(tiny_doc, replicates=1, metrics=["ctr"])
    doc["arms"] = doc["arms"][:1]
    run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    manifest = tmp_path / "run" / "manifest.json"
    # as if the run had been made with PYTHONPATH pointing at a package that is gone now
    run = json.loads(manifest.read_text())
    run["metrics"] = ["ctr", "gone_package.metrics:PAGES"]
    manifest.write_text(json.dumps(run))
    cannot = "the run's metric 'gone_package.metrics:PAGES' cannot be computed here"
    code, stderr = cli("compare", str(tmp_path / "run"))
    assert_refused(code, stderr, cannot)
    assert stderr.rstrip().endswith("; choose metrics with --metric")
    code, stderr = cli("report", str(tmp_path / "run"))
    assert_refused(code, stderr, cannot)
    assert "--metric" not in stderr
    assert stderr.rstrip().endswith(
        "; make it importable to report the run (install its package, or set PYTHONPATH as "
        "for the run)"
    )
    assert not (tmp_path / "run" / "report.html").exists()
    code, stderr = cli("compare", str(tmp_path / "run"), "--metric", "ctr")
    assert code == 0, stderr


def test_bad_plugins_are_one_line_errors(tiny_doc):
    for key, value, where in (
        ("population", {"policy": "tests.plugin_kinds:half_ips"}, "population.policy"),
        ("surface", {"type": "tests.nowhere:Surface"}, "surface.type"),
        ("creators", {"strategy": {"type": "tests.plugin_kinds:PAGES"}}, "creators.strategy"),
    ):
        doc = dict(tiny_doc)
        doc[key] = value if key == "surface" else {**doc.get(key, {}), **value}
        with pytest.raises(RecarenaError, match=rf"x.yaml: {where}") as info:
            parse_scenario(doc, "x.yaml")
        assert "\n" not in str(info.value)


def test_ope_estimator_plugin():
    import polars as pl

    contributions = pl.DataFrame(
        {
            "cluster": [0, 0, 1, 1],
            "w": [1.0, 2.0, 0.0, 1.0],
            "matched": [1.0, 1.0, 0.0, 1.0],
            "ips": [1.0, 0.0, 0.0, 1.0],
            "dr": [0.5, 0.2, 0.1, 0.9],
            "naive": [1.0, 0.0, 0.0, 1.0],
        }
    )
    est = summarise(contributions, ["ips", "tests.plugin_kinds:half_ips"], n_boot=0)
    assert est[0].estimate == pytest.approx(2 / 4)
    assert est[1].estimate == pytest.approx(0.5 * 2 / 4)
    assert ESTIMATORS.load("tests.plugin_kinds:half_ips")({"ips": np.ones(1), "n": np.ones(1)})[
        0
    ] == pytest.approx(0.5)
