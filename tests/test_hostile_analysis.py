"""Hostile inputs to the analysis of a finished run: ``compare``, ``report``, ``ope`` and the
notebook API over a hand-edited manifest, a cell of another run, bootstrap options that mean
nothing, and a legal run whose names make the report's figures misbehave."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from recarena.analysis.compare import compare
from recarena.analysis.load import load
from recarena.analysis.metrics import compute_metrics
from recarena.analysis.ope import off_policy_evaluation
from recarena.analysis.report import build_report
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_in_process import assert_refused, cli
from tests.cli_subprocess import recarena
from tests.test_validate_gate import base_doc

READERS = [("compare",), ("report",), ("ope", "--target", "popularity")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    run_experiment(parse_scenario(base_doc(root)), root / "run", executor="local")
    return root / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _set(document: dict[str, Any], dotted: str, value: Any) -> None:
    """``document[a][b][0]... = value`` for the path ``a.b[0]...``."""
    keys: list[Any] = []
    for part in dotted.split("."):
        name, *indices = part.split("[")
        keys += [name, *(int(i.rstrip("]")) for i in indices)]
    holder: Any = document
    for key in keys[:-1]:
        holder = holder[key]
    holder[keys[-1]] = value


def _refused_by_every_reader(run: Path, fragment: str) -> None:
    for command in READERS:
        assert_refused(*cli(command[0], str(run), *command[1:]), fragment)
    assert not (run / "report.html").exists()


# ------------------------------------------------- manifest fields of another kind than written
@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("wall_seconds", "x", "wall_seconds must be a finite number (got 'x')"),
        ("wall_seconds", float("nan"), "wall_seconds must be a finite number (got nan)"),
        ("git_commit", 12345, "git_commit must be a string or null (got 12345)"),
        ("scenario.population", [1], "scenario.population must be a mapping (got [1])"),
        ("scenario.horizon", None, "scenario.horizon must be a mapping (got None)"),
        ("scenario.horizon.days", "two", "scenario.horizon.days must be a finite number"),
        ("scenario.surface", "list", "scenario.surface must be a mapping or null (got 'list')"),
        ("scenario.surface.params", [1], "scenario.surface.params must be a mapping or null"),
        ("scenario.arms[1]", {"recommender": {}}, "scenario.arms[1].name is missing"),
        ("scenario.arms[0].recommender.params", [], "scenario.arms[0].recommender.params must"),
        ("llm", "x", "llm must be a mapping (got 'x')"),
        (
            "llm",
            {"fallback": {"exceeded": True, "share": "most"}},
            "llm.fallback.share must be a finite number (got 'most')",
        ),
    ],
)
def test_manifest_fields_of_another_kind(finished_run, tmp_path, field, value, fragment):
    """Was: the report ended in an internal error (ValueError, TypeError, AttributeError,
    KeyError; exit 1) for a hand-edited field it reads (the wall time, the commit, a section
    of the scenario, the LLM bill), and compare and ope read the run as if nothing were
    wrong. Now every reader refuses the manifest in one line naming the field."""
    run = _copy(finished_run, tmp_path)
    _edit(run / "manifest.json", lambda m: _set(m, field, value))
    _refused_by_every_reader(run, f"{run / 'manifest.json'}: {fragment}")


def _rename_arm(run: Path, old: str, new: str) -> None:
    """Every record of the run names arm ``old`` as ``new`` (its directory stays)."""

    def change(manifest: dict[str, Any]) -> None:
        manifest["arms"] = [new if arm == old else arm for arm in manifest["arms"]]
        for entry in [*manifest["cells"], *manifest["scenario"]["arms"]]:
            key = "arm" if "arm" in entry else "name"
            entry[key] = new if entry[key] == old else entry[key]

    _edit(run / "manifest.json", change)
    for cell in run.glob(f"arm={old}/rep=*/manifest.json"):
        _edit(cell, lambda m: m.update(arm=new))


@pytest.mark.parametrize("name", ["[/]", "[bold red]pop", "<b>pop</b>", "pop\nular", "x" * 65])
def test_manifest_arm_names_outside_the_names_rule(finished_run, tmp_path, name):
    """Arm names become path components and table labels, under the scenario's name rule.
    Was: an arm renamed '[/]' in a run's records made compare and ope an internal error
    (rich's MarkupError, exit 1), '[bold red]pop' printed as a red 'pop', and long or non-ASCII
    names reached the report's figures (matplotlib warnings on stderr)."""
    run = _copy(finished_run, tmp_path)
    _rename_arm(run, "popularity", name)
    for command in READERS:
        argv = [a.replace("popularity", name) for a in command]
        assert_refused(*cli(argv[0], str(run), *argv[1:]), "manifest.json: arms[1] must be 1-64")
    assert not (run / "report.html").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda m: m.update(cells=m["cells"] + m["cells"][:1]),
            "cells[2] is cells[0] again (the same directory), so its logs would be read twice",
        ),
        (
            lambda m: m.update(cells=m["cells"] + [{**m["cells"][0], "path": "arm=random/rep=0/"}]),
            "cells[2] is cells[0] again (the same directory)",
        ),
        (
            lambda m: m.update(cells=m["cells"] + [{**m["cells"][0], "path": "again"}]),
            "cells[2] is cells[0] again (the same point, arm and replicate)",
        ),
        (lambda m: m.update(arms=m["arms"] * 2), "arms: 'random' is listed twice"),
        (
            lambda m: m["cells"][1].update(arm="ghost"),
            "cells[1].arm 'ghost' is not one of its arms (random, popularity)",
        ),
    ],
    ids=["cell_twice", "cell_path_with_a_slash", "cell_key_twice", "arm_twice", "unknown_arm"],
)
def test_manifest_that_lists_a_cell_or_an_arm_twice(finished_run, tmp_path, change, fragment):
    """Was: a cell listed twice was read twice, exit 0: clicks_per_user doubled (4.81 against
    2.40) and every rate still looked right; an arm listed twice printed each of its rows
    twice; a cell of an arm the run does not have was read and left out of every table."""
    run = _copy(finished_run, tmp_path)
    _edit(run / "manifest.json", change)
    _refused_by_every_reader(run, fragment)


# ----------------------------------------------------------------- a cell of another run
@pytest.fixture(scope="module")
def other_run(tmp_path_factory) -> Path:
    """The same scenario under another seed: same arms and replicates, other logs."""
    root = tmp_path_factory.mktemp("other")
    doc = base_doc(root)
    doc["seed"] = 1
    run_experiment(parse_scenario(doc), root / "run", executor="local")
    return root / "run"


@pytest.mark.parametrize("how", ["copied", "linked"])
def test_a_cell_of_another_run_is_left_out_and_rerun(finished_run, other_run, tmp_path, how):
    """Was: arm=popularity/rep=0 of a run with another seed, copied or symlinked over this
    run's, passed every check (its own manifest names the same arm and replicate, its files
    match their records) and was compared as this run's, exit 0 without a word; --resume
    kept it, and a linked cell that was damaged stopped --resume with "cannot write RUN:
    OSError" (rmtree refuses a link)."""
    run = _copy(finished_run, tmp_path)
    cell = run / "arm=popularity" / "rep=0"
    shutil.rmtree(cell)
    source = other_run / "arm=popularity" / "rep=0"
    shutil.copytree(source, cell) if how == "copied" else cell.symlink_to(source)
    code, stderr = cli("compare", str(run))
    assert code == 0, stderr
    assert stderr.strip().splitlines() == [
        f"warning: {run}: 1 cell(s) left out: arm=popularity/rep=0 (damaged: cell "
        "manifest.json counts other rows than the run's manifest.json recorded for this cell "
        "(the files of another run))"
    ]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    code, stderr = cli("run", str(scenario), "--resume", str(run), "-q", "--executor", "local")
    assert code == 0 and "1 damaged" in stderr and "rerunning 1" in stderr, stderr
    code, stderr = cli("compare", str(run))
    assert code == 0 and not stderr, stderr
    own = json.loads((finished_run / "arm=popularity" / "rep=0" / "manifest.json").read_text())
    rerun = json.loads((cell / "manifest.json").read_text())
    assert rerun["rows"] == own["rows"]
    assert not cell.is_symlink() and (source / "exposures.parquet").is_file()  # link, not target


# ------------------------------------------------- bootstrap options and names in the API
@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"level": 1}, "level: a confidence level between 0 and 1, both excluded"),
        ({"level": 0}, "level: a confidence level between 0 and 1, both excluded"),
        ({"level": 1.5}, "(got 1.5)"),
        ({"level": float("nan")}, "(got nan)"),
        ({"n_boot": -1}, "n_boot: a number of bootstrap draws, 0 or more (got -1)"),
        ({"n_boot": 2.5}, "n_boot: a number of bootstrap draws, 0 or more (got 2.5)"),
        ({"seed": -1}, "seed: a non-negative integer (got -1)"),
    ],
)
def test_bootstrap_options_that_mean_nothing(finished_run, options, fragment):
    """Was, from a notebook: compare(level=1) a ZeroDivisionError, level=0 a table where every
    delta was significant (a 0% interval is a point, which never holds 0), level=1.5 and a
    negative seed numpy's errors; ope with level=0 or 1 printed CIs of a point or of the whole
    range, and a negative n_boot dropped the CIs without a word."""
    logs = load(finished_run)
    with pytest.raises(RecarenaError, match=re.escape(fragment)):
        compare(logs, **options)
    with pytest.raises(RecarenaError, match=re.escape(fragment)):
        off_policy_evaluation(logs, "popularity", **options)


def test_a_name_list_given_as_one_string(finished_run):
    """Was: the string was read letter by letter: "unknown metric 'c'" for metrics='ctr'."""
    logs = load(finished_run)
    line = "a list of names, got the string 'ctr'; write ['ctr']"
    with pytest.raises(RecarenaError, match=re.escape(f"metrics: {line}")):
        compare(logs, metrics="ctr")
    with pytest.raises(RecarenaError, match=re.escape(f"names: {line}")):
        compute_metrics(logs, "ctr")
    with pytest.raises(RecarenaError, match=r"^estimators: a list of names, got the string 'ips'"):
        off_policy_evaluation(logs, "popularity", estimators="ips")
    assert compare(logs, metrics=("ctr",))["metric"].unique().to_list() == ["ctr"]


@pytest.mark.parametrize(
    ("estimators", "detail"),
    [
        (["ips", "magic"], "unknown ope estimator 'magic'"),
        (["ips", "ips"], "'ips' is named twice; name each one once"),
        ([], "empty list; known: "),
    ],
)
def test_ope_from_python_names_its_keyword_not_the_cli_flag(finished_run, estimators, detail):
    """Was: off_policy_evaluation(..., estimators=[...]) in a notebook named --estimators, an
    option its caller never wrote; recarena ope still names --estimators (tests/test_ope.py)."""
    with pytest.raises(RecarenaError, match=re.escape(f"estimators: {detail}")) as raised:
        off_policy_evaluation(load(finished_run), "popularity", estimators=estimators)
    assert not str(raised.value).startswith("--")


# ------------------------------------------------------- many arms with long legal names
@pytest.fixture(scope="module")
def many_arms(tmp_path_factory) -> Path:
    """Fourteen arms, each named with 64 characters (the longest name the rule allows)."""
    root = tmp_path_factory.mktemp("many")
    doc = base_doc(root)
    doc["arms"] = [
        {"name": f"arm{i:02d}_".ljust(64, "x"), "recommender": {"type": "random"}}
        for i in range(14)
    ]
    run_experiment(parse_scenario(doc), root / "run", executor="local")
    return root / "run"


def _figure(html: str, section: str) -> str:
    start = html.index(f'<section id="{section}">')
    return html[start : html.index("</section>", start)]


def test_report_of_many_arms_with_long_names(many_arms, tmp_path):
    """Was: matplotlib's "constrained_layout not applied" warning with its source line on
    stderr; a legend of six 64-character names a row, ~2,500 pt wide, squeezing the four
    daily panels into the middle of the figure; and arms 11 to 14 drawn in exactly the colour
    and line of arms 1 to 4."""
    output = tmp_path / "r.html"
    done = recarena("report", str(many_arms), "-o", str(output))
    assert done.returncode == 0 and not done.stderr, done.stderr
    series = _figure(output.read_text(encoding="utf-8"), "time-series")
    width = float(re.search(r'<svg[^>]* width="([\d.]+)pt"', series).group(1))
    assert width < 900, width
    assert "stroke-dasharray" in series  # arms 11-14 dashed


# ------------------------------------------------- a sweep point is read with its own scenario
@pytest.fixture(scope="module")
def horizon_sweep(tmp_path_factory) -> Path:
    """A sweep whose second point runs 9 days where the scenario says half a day."""
    root = tmp_path_factory.mktemp("horizon")
    doc = base_doc(root)
    doc["sweep"] = {"horizon.days": [0.5, 9]}
    doc["metrics"] = ["ctr", "retention_d7"]
    run_experiment(parse_scenario(doc), root / "run", executor="local")
    return root / "run"


def test_a_sweep_point_is_read_with_its_own_scenario(horizon_sweep, tmp_path):
    """Was: the metrics and the report read the run's scenario for every point. The 9-day
    point had no retention_d7 ("the run lacks 8 days"), its report said 0.5 days and nothing
    told which point it showed, and the report of point 1 replaced point 0's report.html."""
    logs = load(horizon_sweep, point=1)
    assert logs.scenario["horizon"]["days"] == 9
    values = compute_metrics(logs, ["retention_d7"])["value"].to_list()
    assert values and None not in values
    assert load(horizon_sweep, point=0).scenario["horizon"]["days"] == 0.5
    run = _copy(horizon_sweep, tmp_path)
    for point in (0, 1):
        code, stderr = cli("report", str(run), "--point", str(point))
        assert code == 0, stderr
    nine = (run / "report-point1.html").read_text(encoding="utf-8")
    assert "<tr><th>days</th><td>9</td></tr>" in nine
    assert "<tr><th>sweep point</th><td>1: horizon.days=9</td></tr>" in nine
    assert "<title>recarena report: gate (sweep point 1)</title>" in nine
    half = (run / "report-point0.html").read_text(encoding="utf-8")
    assert "<tr><th>days</th><td>0.5</td></tr>" in half
    assert not (run / "report.html").exists()


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("missing", "sweep point 1: scenario file not found: {run}/point=1/scenario.resolved.yaml"),
        ("horizon", "{run}/point=1/scenario.resolved.yaml: horizon must be a mapping (got [9])"),
        ("path", "{run}/manifest.json: sweep.points must be a list of {{point, path, params}}"),
    ],
)
def test_a_sweep_point_whose_scenario_cannot_be_read(horizon_sweep, tmp_path, damage, fragment):
    """Was: ope fell back to the run's scenario without a word, and the metrics and the
    report never read the point's own. Now a point's scenario file that is gone or edited
    (or a manifest that puts it outside the run) is one line naming it."""
    run = _copy(horizon_sweep, tmp_path)
    own = run / "point=1" / "scenario.resolved.yaml"
    if damage == "missing":
        own.unlink()
    elif damage == "horizon":
        own.write_text(own.read_text().replace("horizon:\n", "horizon: [9]\nold_horizon:\n"))
    else:
        _edit(run / "manifest.json", lambda m: m["sweep"]["points"][1].update(path="../x"))
    for command in (("compare",), ("report", "--point", "1"), ("ope", "--point", "1")):
        argv = [command[0], str(run), *command[1:]]
        if command[0] == "ope":
            argv += ["--target", "popularity"]
        assert_refused(*cli(*argv), fragment.format(run=run))
    assert not list(run.glob("report*.html"))


@pytest.mark.parametrize("point", ["1", 1.0, True, -1])
def test_a_point_or_page_that_is_not_an_index(horizon_sweep, finished_run, point):
    """Was: load(run, point='1') said "no sweep point 1; points: 0, 1", point=True or 1.0
    opened point 1 (and the report called it "sweep point True"), and ope's page='0' was
    polars' ComputeError."""
    line = f"an index, 0 or more, or None (got {point!r})"
    with pytest.raises(RecarenaError, match=re.escape(f"point: {line}")):
        load(horizon_sweep, point=point)
    with pytest.raises(RecarenaError, match=re.escape(f"page: {line}")):
        off_policy_evaluation(load(finished_run), "popularity", page=point)


# ------------------------------------------------------------ a plug-in surface in the report
def test_report_of_a_plugin_surface(tmp_path):
    """Was: the summary said the surface was a "list of None", and the CTR-by-position
    section said "No list or carousel arm logged an exposure" of arms that had logged
    hundreds (on a plug-in surface, which that figure does not draw)."""
    doc = base_doc(tmp_path)
    doc["surface"] = {"type": "tests.plugin_kinds:ShortList", "params": {"k": 3}}
    run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    report = build_report(tmp_path / "run")
    assert ("surface", "plug-in tests.plugin_kinds:ShortList (k=3)") in report.summary
    assert report.figure_notes["heatmap"] == (
        "CTR by position is drawn for list and carousel arms; this run has none: random "
        "(tests.plugin_kinds:ShortList), popularity (tests.plugin_kinds:ShortList)."
    )
    assert load(tmp_path / "run").exposures.select("item_id").collect().height > 0


@pytest.mark.parametrize("rows", ["x", None, {}])
def test_a_cell_manifest_whose_row_counts_were_edited(finished_run, tmp_path, rows):
    """A cell manifest whose ``rows`` is not what the run recorded for the cell is not the
    cell the run finished (was: left in when ``rows`` was not a mapping)."""
    run = _copy(finished_run, tmp_path)
    _edit(run / "arm=random" / "rep=0" / "manifest.json", lambda m: m.update(rows=rows))
    code, stderr = cli("compare", str(run))
    assert code == 0 and "left out: arm=random/rep=0 (damaged: cell manifest.json counts" in (
        stderr
    ), stderr


def test_ope_between_arms_that_finished_different_replicates(tmp_path):
    """An interrupted run where the logging arm finished only replicate 1 and the target only
    replicate 0. Was: "no overlap: arm 'popularity' served none of the requests arm 'random'
    logged", as if the policies had never met, while they were never compared at all."""
    doc = base_doc(tmp_path)
    doc["replicates"] = 2
    run = tmp_path / "run"
    run_experiment(parse_scenario(doc), run, executor="local")
    (run / "arm=random" / "rep=0" / "_INCOMPLETE").write_text("")
    (run / "arm=popularity" / "rep=1" / "_INCOMPLETE").write_text("")
    code, stderr = cli("ope", str(run), "--target", "popularity")
    lines = stderr.strip().splitlines()
    assert code == 2 and lines[0].startswith("warning: ") and len(lines) == 2, stderr
    assert lines[1] == (
        "error: --logging: arm 'random' (replicates 1) and --target arm 'popularity' "
        "(replicates 0) have no replicate both finished; requests are paired within a "
        "replicate (--resume the run to finish its cells)"
    )


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("arm=random/rep=0/_INCOMPLETE", "would be a file of the run named"),
        (".lock", "would be a file of the run named"),
        ("arm=random/rep=0/error.txt", "would be a file of the run named"),
        ("manifest.json", "is the run's own"),
    ],
)
def test_report_output_with_a_name_of_the_run_format(finished_run, tmp_path, name, what):
    """Was: report -o RUN/arm=random/rep=0/_INCOMPLETE (a file the finished cell no longer
    had) wrote the report there, exit 0, and the cell was unfinished for every reader after.
    Inside the run directory the report must have an .html name; elsewhere any new name."""
    run = _copy(finished_run, tmp_path)
    target = run / name
    before = target.read_bytes() if target.exists() else None
    assert_refused(
        *cli("report", str(run), "-o", str(target)),
        f"--output: {target} {what} {name}; inside the run directory the report must have an "
        f".html name (default {run / 'report.html'})",
    )
    assert (target.read_bytes() if target.exists() else None) == before
    assert cli("compare", str(run)) == (0, "")
    code, stderr = cli("report", str(run), "-o", str(run / "arm=random" / "rep=0" / "r.html"))
    assert code == 0, stderr
    code, stderr = cli("report", str(run), "-o", str(tmp_path / "r.txt"))
    assert code == 0 and (tmp_path / "r.txt").read_text(encoding="utf-8").startswith("<!")


def test_compare_of_a_sweep_stopped_before_its_last_point(horizon_sweep, tmp_path):
    """Was: point 0's table, then "error: ... no finished cells to read" for point 1, exit 2:
    a stopped sweep's finished points were not readable as a stopped run's finished cells
    are. Now the points with finished cells are compared and one line names the others."""
    run = _copy(horizon_sweep, tmp_path)
    for cell in run.glob("point=1/arm=*/rep=*"):
        (cell / "_INCOMPLETE").write_text("")
    done = recarena("compare", str(run))
    assert done.returncode == 0, done.stderr
    assert "point 0: horizon.days=0.5" in done.stdout and "point 1" not in done.stdout
    assert "A/B vs baseline 'random'" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert f"warning: {run}: sweep point(s) 1 have no finished cells; left out" in lines
    assert all(line.startswith("warning: ") for line in lines), done.stderr


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("compare", "/tmp/x\x1b[2J\x07"), "run directory not found: /tmp/x\\x1b[2J\\x07"),
        (("report", "/tmp/\u202eevil"), "run directory not found: /tmp/\\u202eevil"),
    ],
)
def test_an_error_line_does_not_pass_control_characters_to_the_terminal(args, shown):
    """Was: a path with an escape sequence in it reached the terminal raw in the error line,
    and cleared or recoloured the screen; a right-to-left override reversed the line."""
    code, stderr = cli(*args)
    assert_refused(code, stderr, shown)
    assert "\x1b" not in stderr and "\u202e" not in stderr and "\x07" not in stderr


def test_a_warning_line_does_not_pass_control_characters_to_the_terminal(finished_run, tmp_path):
    run = tmp_path / "run\x1b[31m"
    shutil.copytree(finished_run, run)
    (run / "arm=random" / "rep=0" / "_INCOMPLETE").write_text("")
    code, stderr = cli("compare", str(run))
    assert code == 0 and "\x1b" not in stderr, stderr
    assert stderr.startswith(f"warning: {tmp_path}/run\\x1b[31m: 1 cell(s) left out"), stderr


@pytest.mark.parametrize("name", ["exp[1]", "what?", "all*"])
def test_a_run_directory_whose_name_looks_like_a_pattern(tmp_path, name):
    """Was: polars reads a path as a glob pattern, so the logs of 'runs/exp[1]' were "expanded
    paths were empty": `recarena run -o runs/exp[1]` finished every cell and then ended in an
    internal error (exit 1), and compare, report and ope could never read the run."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(tmp_path)), encoding="utf-8")
    run = tmp_path / name
    code, stderr = cli("run", str(scenario), "-o", str(run), "-q", "--executor", "local")
    assert code == 0, stderr
    for command in READERS:
        code, stderr = cli(command[0], str(run), *command[1:])
        assert code == 0, stderr
    assert (run / "report.html").is_file()
    assert load(run).exposures.select("item_id").collect().height > 0


def test_the_llm_bill_of_a_sweep_counts_its_calls(tmp_path, monkeypatch):
    """Was: the run manifest's LLM accounting (the report's LLM section) looked for calls in
    arm=*/rep=* only, so a sweep, whose cells are under point=<i>/, billed 0 calls and 0
    tokens for every call it made."""
    import polars as pl

    from tests.fake_openai import FakeOpenAI

    doc = base_doc(tmp_path)
    doc["population"] = {"users": 20, "model": "mixed", "llm_panel": {"users": 2}}
    doc["llm"] = {"provider": "openai", "model": "fake", "timeout_seconds": 2, "max_retries": 0}
    doc["llm"]["cache"] = {"path": str(tmp_path / "cache.sqlite"), "mode": "auto"}
    doc["sweep"] = {"population.max_pages": [3, 4]}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    with FakeOpenAI(["ok"]) as fake:
        doc["llm"]["base_url"] = fake.base_url
        run = run_experiment(parse_scenario(doc), tmp_path / "run", executor="local").run_dir
    logged = sum(pl.read_parquet(p).height for p in run.glob("point=*/arm=*/rep=*/llm_calls.*"))
    accounting = json.loads((run / "manifest.json").read_text())["llm"]["accounting"]
    assert logged > 0 and accounting["calls"] == logged
    assert sum(accounting["by_purpose"].values()) == logged
