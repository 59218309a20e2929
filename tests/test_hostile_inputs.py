"""Hostile inputs that `validate` accepted and `run` then failed on (cells failing with a
TypeError, an internal error, a half-written run directory). Each is now refused by validate in
one line naming the field, exit 2, with nothing written; run refuses it the same way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_in_process import assert_refused, cli
from tests.test_validate_gate import base_doc, refused_everywhere


def write_doc(tmp_path: Path, doc: dict, name: str = "s.yaml") -> Path:
    """``doc`` written as a scenario file tmp_path/name, its keys in the order given."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def run_doc(tmp_path: Path, doc: dict, executor: str) -> tuple[int, str, Path]:
    """``recarena run`` of ``doc`` written to tmp_path/s.yaml, into tmp_path/out: the exit
    code, stderr and the run directory."""
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "--executor", executor, "-o", str(out), "-q")
    return code, stderr, out


P = "tests.unbuildable_plugins"


# ------------------------------------------------------------- plug-ins that cannot be built
@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        (
            "recommender",
            "recarena.recommenders.base:Recommender",
            "is not a recommender: it is a Protocol",
        ),
        ("recommender", f"{P}:NoArguments", "it is called as Class(params, ctx), but too many"),
        ("recommender", f"{P}:AN_INSTANCE", "expected a class, got an instance of NoArguments"),
        ("recommender", f"{P}:AbstractFit", "it is abstract (no fit)"),
        ("recommender", f"{P}:ParamsIsADict", "its Params must be a pydantic model class"),
        ("recommender", f"{P}:SurfacesIsNone", "its surfaces must be a non-empty set"),
        ("policy", f"{P}:PolicyWithoutSocial", "unexpected keyword argument 'social'"),
        ("strategy", f"{P}:StrategyWithoutParams", "it is called as Class(params), but"),
        ("surface", f"{P}:surface_of_params_only", "Factory(params, position_decay), but"),
    ],
)
def test_plugins_that_cannot_be_built_are_refused(tmp_path, where, value, fragment):
    """Was: validate checked only that the methods exist, so a contract's Protocol, an abstract
    class, an instance, a constructor of another signature passed and every cell of the arm
    failed with a TypeError (exit 1); a Params that is not a pydantic model or surfaces = None
    was an internal error of validate itself."""
    doc = base_doc(tmp_path)
    if where == "recommender":
        doc["arms"][1]["recommender"] = {"type": value}
        field = "arms[1].recommender.type"
    elif where == "policy":
        doc["population"]["policy"] = value
        field = "population.policy"
    elif where == "strategy":
        doc["creators"]["strategy"] = {"type": value}
        field = "creators.strategy"
    else:
        doc["surface"] = {"type": value}
        field = "surface.type"
    refused_everywhere(tmp_path, doc, f"{field}: ")
    refused_everywhere(tmp_path, doc, fragment)


# ------------------------------------------------------------ sweeps the run cannot honour
@pytest.mark.parametrize(
    ("population", "llm", "sweep", "fragment"),
    [
        (
            {"users": 20},
            None,
            {"population.model": ["rule", "llm"]},
            "point 1 {'population.model': 'llm'}: this point uses an LLM but the scenario",
        ),
        (
            {"users": 20, "model": "llm"},
            {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
            {"llm.cache.mode": ["auto", "off"]},
            "point 1 {'llm.cache.mode': 'off'}: llm.cache differs",
        ),
        (
            {"users": 20, "model": "llm"},
            {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
            {"llm.base_url": ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]},
            "llm.base_url differs from the scenario's",
        ),
    ],
    ids=["llm_users_in_one_point", "cache", "endpoint"],
)
def test_sweeps_over_what_the_run_sets_up_once(tmp_path, population, llm, sweep, fragment):
    """Was: a point that turned LLM users on (the scenario had none) passed validate and its
    cells failed ("a scenario with LLM users needs an LLMRuntime", exit 1, half a run); a
    swept endpoint, cache or local-server setting was silently replaced by the scenario's."""
    doc = base_doc(tmp_path)
    doc["population"] = population
    if llm is not None:
        doc["llm"] = llm
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("sweep", "fragment"),
    [
        (
            {"population": [{"users": 5}], "population.users": [10, 20]},
            "sweep.population.users: is inside sweep.population, which is swept too",
        ),
        (
            {"population.users": [10, 20], "population": [{"users": 5}]},
            "sweep.population.users: is inside sweep.population, which is swept too",
        ),
        (
            {
                "arms[popularity].recommender.params.half_life_days": [1.0, 2.0],
                "arms[1].recommender": [{"type": "popularity"}],
            },
            "sweep.arms[popularity].recommender.params.half_life_days: is inside "
            "sweep.arms[1].recommender",
        ),
    ],
    ids=["section_first", "field_first", "arm_by_name_and_index"],
)
def test_sweeps_that_set_one_field_twice(tmp_path, sweep, fragment):
    """Was: a section and a field inside it both swept passed validate, and each point got
    whichever came last in the file: section first, the field's values won (the manifest
    recorded users 5 and users 10 for one point); field first, the section's value silently
    reset the field and the sweep's values were never run."""
    doc = base_doc(tmp_path)
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, fragment)


def test_sharded_run_checks_each_sweep_point(tmp_path):
    """Was: --shards checked only the scenario itself, so a point that swept in what shards
    cannot split (here a plug-in user policy) started Ray and wrote the run, and that point's
    cells were refused one by one (half a run). Now refused before anything is written."""
    doc = base_doc(tmp_path)
    doc["arms"] = [{"name": "pop", "recommender": {"type": "popularity"}}]
    doc["sweep"] = {"population.policy": ["rule", "tests.plugin_kinds:ClickFirstSlot"]}
    with pytest.raises(RecarenaError, match=r"^sweep point 1: --shards 2: population.policy"):
        run_experiment(parse_scenario(doc), tmp_path / "run", executor="ray", shards=2)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------- run directories compare/report read
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    run_experiment(parse_scenario(base_doc(root)), root / "run", executor="local")
    return root / "run"


MANIFEST_DAMAGE = [
    ("cells", [1, 2], "cells[0] must be a mapping"),
    ("cells[0].path", "../../elsewhere", "cells[0].path must be a relative path inside"),
    ("cells[0].path", None, "cells[0].path must be a relative path inside"),
    ("cells[0].rep", "x", "cells[0].rep must be a replicate index"),
    ("arms", None, "arms must be a list of names"),
    ("metrics", 5, "metrics must be a list of names"),
    ("scenario", None, "scenario must be a mapping"),
    ("baseline", "ghost", "baseline 'ghost' is not one of its arms (random, popularity)"),
    ("log_format", 99, "written by a newer recarena (log format 99; this one reads up to 2)"),
    ("log_format", True, "log_format must be a positive integer"),
    ("metrics", ["ctr", "gone.module:METRIC"], "the run's metric 'gone.module:METRIC' cannot be"),
]


@pytest.mark.parametrize(("key", "value", "fragment"), MANIFEST_DAMAGE)
def test_compare_and_report_on_a_manifest_they_cannot_read(
    finished_run, tmp_path, key, value, fragment
):
    """Was: an internal error (TypeError, KeyError, ValueError, LookupError; exit 1) for a
    hand-edited or damaged manifest or a plug-in metric this environment lacks, and a run from
    a newer log format was read as if it were this one's."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    if key.startswith("cells[0]."):
        manifest["cells"][0][key.removeprefix("cells[0].")] = value
    else:
        manifest[key] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    for command in ("compare", "report"):
        assert_refused(*cli(command, str(run)), fragment)
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("damage", ["zero_bytes", "cells_deleted"])
def test_a_run_with_no_finished_cell_left(finished_run, tmp_path, damage):
    """Was: a warning line listing the damaged cells, then "no finished cells to read": two
    lines for one refusal. Now one error line naming the run and why its cells were left out."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for arm in run.glob("arm=*"):
        if damage == "cells_deleted":
            shutil.rmtree(arm)
        else:
            for table in arm.rglob("sessions.parquet"):
                table.write_bytes(b"")
    why = "(unfinished)" if damage == "cells_deleted" else "sessions.parquet has 0 bytes"
    for command in (("compare",), ("report",), ("ope", "--target", "popularity")):
        code, stderr = cli(command[0], str(run), *command[1:])
        assert_refused(code, stderr, f"{run}: no finished cells to read (2 cell(s): arm=")
        assert why in stderr
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("where", ["arm=popularity", "arm=popularity/rep=0"])
def test_resume_with_a_file_where_a_cell_directory_belongs(finished_run, tmp_path, where):
    """Was: resume started, the cell failed with NotADirectoryError (exit 1, two lines) and
    the others ran. Now one line naming the path, exit 2, before any cell runs."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "arm=popularity")
    (run / where).parent.mkdir(parents=True, exist_ok=True)
    (run / where).write_text("not a cell\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    code, stderr = cli("run", str(scenario), "--resume", str(run), "-q", "--executor", "local")
    assert_refused(code, stderr, f"--resume {run}/arm=popularity/rep=0: {run / where} is a file")
    assert (run / where).read_text() == "not a cell\n"


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_lock_that_is_not_a_file(finished_run, tmp_path, kind):
    """A run's ``.lock`` made a directory or a named pipe (by hand, by another tool). Was: a
    FIFO made compare, report and ope wait forever for a writer, and --resume was an internal
    IsADirectoryError (exit 1). Now readers read the run, and --resume names the lock."""
    import os

    from tests.cli_subprocess import recarena

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    lock = run / ".lock"
    lock.mkdir() if kind == "directory" else os.mkfifo(lock)
    done = recarena("compare", str(run), timeout=120)  # a guard: the FIFO used to hang here
    assert done.returncode == 0, done.stderr
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    code, stderr = cli("run", str(scenario), "--resume", str(run), "-q", "--executor", "local")
    assert_refused(code, stderr, f"--resume {run}: its lock {lock} is not a regular file")
    assert lock.is_dir() if kind == "directory" else lock.is_fifo()


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_run_manifest_that_is_not_a_file(finished_run, tmp_path, kind):
    """Was 'not a recarena run directory (no manifest.json)' with a manifest.json right there."""
    import os

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "manifest.json").unlink()
    (run / "manifest.json").mkdir() if kind == "directory" else os.mkfifo(run / "manifest.json")
    for command in (("compare",), ("report",), ("ope", "--target", "popularity")):
        code, stderr = cli(command[0], str(run), *command[1:])
        assert_refused(code, stderr, f"{run} (manifest.json is not a regular file)")
    assert not (run / "report.html").exists()


def _swap_in_sessions(cell: Path) -> None:
    """exposures.parquet replaced by the cell's sessions table, its records made to match."""
    shutil.copy(cell / "sessions.parquet", cell / "exposures.parquet")
    manifest = json.loads((cell / "manifest.json").read_text())
    manifest["files"]["exposures.parquet"] = dict(manifest["files"]["sessions.parquet"])
    (cell / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("cell_manifest_a_list", "cell manifest.json is not a cell manifest"),
        ("files_a_string", "cell manifest.json is not a cell manifest"),
        ("record_a_string", "cell manifest.json: the record of exposures.parquet is not a"),
        ("rows_a_string", "cell manifest.json: the row count of exposures.parquet is not a"),
        ("another_table", "exposures.parquet has column(s) start_time, end_time, pages its"),
    ],
)
def test_cells_whose_manifest_or_tables_are_not_theirs(finished_run, tmp_path, damage, fragment):
    """Was: a cell manifest of another shape was an internal error (AttributeError, TypeError)
    of compare, report, ope and --resume; a table file of another table with records to match
    failed compare with "unable to find column" (no file named) and --resume with an internal
    error. Now such a cell is damaged, named with its file: left out of what is read, rerun by
    --resume."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for cell in run.glob("arm=*/rep=*"):
        path = cell / "manifest.json"
        manifest = json.loads(path.read_text())
        if damage == "another_table":
            _swap_in_sessions(cell)
            continue
        if damage == "cell_manifest_a_list":
            manifest = [manifest]
        elif damage == "files_a_string":
            manifest["files"] = "x"
        elif damage == "record_a_string":
            manifest["files"]["exposures.parquet"] = "x"
        else:
            manifest["files"]["exposures.parquet"]["rows"] = "x"
        path.write_text(json.dumps(manifest))
    for command in (("compare",), ("report",), ("ope", "--target", "popularity")):
        assert_refused(*cli(command[0], str(run), *command[1:]), fragment)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    code, stderr = cli("run", str(scenario), "--resume", str(run), "-q", "--executor", "local")
    assert code == 0, stderr
    assert "2 damaged" in stderr and "rerunning 2" in stderr
    code, stderr = cli("compare", str(run))
    assert code == 0, stderr


def test_table_damaged_inside_with_its_size_and_footer_intact(finished_run, tmp_path):
    """Was: one line naming only the run ("parquet: File out of specification"), since the
    readers' checks look at sizes and footers; now the line names the damaged file."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    table = run / "arm=popularity" / "rep=0" / "exposures.parquet"
    data = bytearray(table.read_bytes())
    for i in range(8, len(data) // 2):  # the data pages; the footer at the end stays intact
        data[i] ^= 0x5A
    table.write_bytes(bytes(data))
    for command in (("compare",), ("report",), ("ope", "--target", "popularity")):
        assert_refused(*cli(command[0], str(run), *command[1:]), f"{run}: {table}: ")
    assert not (run / "report.html").exists()


def test_cell_holding_the_files_of_another_cell(finished_run, tmp_path):
    """Was: arm=random's files copied over arm=popularity/rep=0 were read as popularity's, a
    comparison of an arm with itself reported without a word. Now the cell is damaged (its own
    manifest names another arm): left out with one warning line, rerun by --resume."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "arm=popularity" / "rep=0")
    shutil.copytree(run / "arm=random" / "rep=0", run / "arm=popularity" / "rep=0")
    code, stderr = cli("compare", str(run))
    assert code == 0, stderr
    assert stderr.strip().splitlines() == [
        f"warning: {run}: 1 cell(s) left out: arm=popularity/rep=0 (damaged: cell manifest.json "
        "is of arm 'random', not 'popularity' (the files of another cell or run))"
    ]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    code, stderr = cli("run", str(scenario), "--resume", str(run), "-q", "--executor", "local")
    assert code == 0 and "1 damaged" in stderr and "rerunning 1" in stderr, stderr
    cell = json.loads((run / "arm=popularity" / "rep=0" / "manifest.json").read_text())
    assert cell["arm"] == "popularity"


def test_manifest_nested_past_the_stack(finished_run, tmp_path):
    """Was: an internal error (RecursionError) of every reader of the run."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    for command in ("compare", "report"):
        assert_refused(*cli(command, str(run)), "manifest.json: unreadable manifest: nested too")


@pytest.mark.parametrize("text", ["{}", '{"arms": ["random"], "log_format": 2}'])
def test_a_manifest_without_its_list_of_cells(finished_run, tmp_path, text):
    """Was: read as a run of no cells: compare and report said "no finished cells to read",
    and a resume blamed a log format 1. Now every reader says it is not a run manifest."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "manifest.json").write_text(text)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    fragment = "manifest.json: not a run manifest (no list of cells)"
    for command in (("compare",), ("report",), ("run", str(scenario), "--resume")):
        assert_refused(*cli(*command, str(run)), fragment)
    assert not (run / "report.html").exists()


def test_resume_refuses_a_run_of_another_log_format(finished_run, tmp_path):
    """Was: resumed, writing this version's cells beside the other format's."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["log_format"] = 1
    (run / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(run / "arm=popularity")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(finished_run.parent)), encoding="utf-8")
    code, stderr = cli("run", str(scenario), "--resume", str(run), "-q", "--executor", "local")
    assert_refused(code, stderr, "written in log format 1 and this recarena writes 2")
    assert not (run / "arm=popularity").exists()


# ------------------------------------------------------------------ the resource estimate
@pytest.mark.parametrize(
    ("creators", "fragment"),
    [
        ({"count": 10**8, "uploads_per_day": 0}, "and 10^8 creators"),
        (
            {"count": 20, "uploads_per_day": 1, "ai": {"initial_share": 1.0, "speedup": 1e6}},
            "items",
        ),
    ],
    ids=["many_creators", "ai_speedup"],
)
def test_creators_count_in_the_memory_estimate(tmp_path, creators, fragment):
    """Was: a creator counted 64 bytes (it is a Mesa agent and a SimPy process, ~4 KB), so
    10^8 creators passed validate as ~8 GB and the run ground through creating them until the
    machine ran out of memory; AI creators' upload speedup was left out of the catalog's
    growth (a million times the uploads, estimated as none)."""
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 365
    doc["creators"] = creators
    refused_everywhere(tmp_path, doc, "this machine has")
    refused_everywhere(tmp_path, doc, fragment)


def test_embedding_width_in_the_memory_estimate(tmp_path, monkeypatch):
    """Was: every learned recommender counted 64 wide, so mf with dim 1024 at a million users
    (12 GB of weights and Adam moments in one cell) passed as ~15 GB on a 24 GB machine and the
    run ran out of memory. The widest ``dim`` of any arm (a wrapper's base included) now
    sets the embedding's size, with the optimiser's two moments."""
    from recarena.simulator.runner import preflight

    doc = base_doc(tmp_path)
    doc["population"]["users"] = 10**6
    doc["arms"][1]["recommender"] = {
        "type": "epsilon_greedy",
        "params": {"base": "mf", "base_params": {"dim": 1024}},
    }
    wide = preflight.estimate(parse_scenario(doc), None, 1).bytes_per_cell
    doc["arms"][1]["recommender"]["params"]["base_params"]["dim"] = 32
    narrow = preflight.estimate(parse_scenario(doc), None, 1).bytes_per_cell
    assert wide - narrow >= 10**6 * (3 * 1024 - 2 * 64) * 4
    monkeypatch.setattr(preflight, "machine_memory", lambda: 8 * 2**30)  # 1.7 GB at dim 32
    doc["arms"][1]["recommender"]["params"]["base_params"]["dim"] = 1024
    path = write_doc(tmp_path, doc)
    code, stderr = cli("run", str(path), "--executor", "local", "-o", str(tmp_path / "o"), "-q")
    assert_refused(
        code,
        stderr,
        "for 10^6 users (1 cell(s) at once, most of it for embeddings 1024 wide (an arm's "
        "params.dim)); this machine has 8.0 GB",
    )
    assert not (tmp_path / "o").exists()


def test_a_run_whose_baseline_arm_finished_nothing(finished_run, tmp_path):
    """An interrupted run where only the other arm finished. Was: `compare` said
    "--baseline: unknown arm 'random'" though no --baseline was given (the report fell back
    with a note), `ope` said the same of --logging, and printed its warning as a Python
    UserWarning with a source line."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "arm=random" / "rep=0" / "_INCOMPLETE").write_text("")
    code, stderr = cli("compare", str(run))
    assert code == 0, stderr
    assert "the baseline arm 'random' has no finished cells; comparing against 'popularity'" in (
        stderr
    )
    code, stderr = cli("compare", str(run), "--baseline", "random")
    assert code == 2 and stderr.strip().splitlines()[-1].startswith(
        "error: --baseline: arm 'random' has no finished cells; arms with finished cells: "
    ), stderr
    code, stderr = cli("ope", str(run), "--target", "popularity")
    lines = stderr.strip().splitlines()
    assert code == 2 and "UserWarning" not in stderr, stderr
    assert lines[-1].startswith("error: --logging: arm 'random' (the baseline"), stderr
    assert all(line.startswith(("warning: ", "error: ")) for line in lines), stderr


@pytest.mark.parametrize(
    "own", ["manifest.json", "scenario.resolved.yaml", "arm=random/rep=0/exposures.parquet"]
)
def test_report_output_that_is_a_file_of_the_run(finished_run, tmp_path, own):
    """Was: report -o RUN/manifest.json wrote the HTML over the run's manifest (exit 0), and
    the run could no longer be compared, reported or resumed."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = (run / own).read_bytes()
    assert_refused(*cli("report", str(run), "-o", str(run / own)), f"is the run's own {own}")
    assert (run / own).read_bytes() == before
    assert cli("compare", str(run))[0] == 0


@pytest.mark.parametrize(
    ("metric", "line"),
    [
        ("tests.unbuildable_plugins:AN_INSTANCE", "error: --metric: 'tests.unbuildable_plugins:AN"),
        ("no_such_module_xyz:M", "error: --metric: cannot import metric 'no_such_module_xyz:M': "),
    ],
)
def test_a_bad_metric_option_is_quoted_whole(finished_run, metric, line):
    """Was: the quotes of the registry's message were stripped from both ends, so the line
    read "--metric: tests.unbuildable_plugins:AN_INSTANCE' is not a metric" (one quote)."""
    code, stderr = cli("compare", str(finished_run), "--metric", metric)
    assert_refused(code, stderr, "")
    assert stderr.startswith(line), stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("compare", "{run}", "--baseline", ""), "--baseline"),
        (("report", "{run}", "--baseline", "", "-o", "{out}"), "--baseline"),
        (("ope", "{run}", "--target", "popularity", "--logging", ""), "--logging"),
    ],
    ids=["compare", "report", "ope_logging"],
)
def test_an_empty_arm_name_is_refused(finished_run, tmp_path, args, option):
    """Was: an empty --baseline (or --logging) read as "not given": compare and report quietly
    compared against the run's baseline, exit 0. An empty name is an arm the run does not have:
    one line naming the option and the run's arms, exit 2, no report written."""
    out = tmp_path / "r.html"
    argv = [a.format(run=finished_run, out=out) for a in args]
    assert_refused(*cli(*argv), f"{option}: unknown arm ''; arms: random, popularity")
    assert not out.exists()


@pytest.mark.parametrize(
    ("metrics", "fragment"),
    [([], "metrics: List should have at least 1 item"), (["ctr", "ctr"], "ctr written more")],
)
def test_metrics_list_that_would_be_misread(tmp_path, metrics, fragment):
    """Was: `metrics: []` ran and printed every registered metric (22 rows per arm) instead of
    none or the default seven; a metric written twice was silently counted once."""
    doc = base_doc(tmp_path)
    doc["metrics"] = metrics
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("recommender", "sweep", "fragment"),
    [
        (
            {"type": f"{P}:NeedsSmallX", "params": {"x": 3}},
            None,
            f"arms[1].recommender (arm 'popularity'): '{P}:NeedsSmallX' cannot be built: "
            "ValueError: x=3 is too big for this plug-in",
        ),
        (
            {"type": f"{P}:NeedsSmallX", "params": {"x": 4}},
            None,
            f"arms[1].recommender (arm 'popularity'): '{P}:NeedsSmallX' cannot be built: "
            "SystemExit: 4",
        ),
        (
            {
                "type": "epsilon_greedy",
                "params": {"base": f"{P}:NeedsSmallX", "base_params": {"x": 3}},
            },
            None,
            f"arms[1].recommender.params.base (arm 'popularity'): '{P}:NeedsSmallX' cannot be "
            "built: ValueError: x=3",
        ),
        (
            {"type": f"{P}:NeedsSmallX"},
            {"arms[popularity].recommender.params.x": [1, 2, 3]},
            "sweep point 2 (arms[popularity].recommender.params.x=3): arms[1].recommender (arm "
            f"'popularity'): '{P}:NeedsSmallX' cannot be built: ValueError",
        ),
    ],
    ids=["raises", "exits", "as_a_base", "one_swept_value"],
)
def test_plugin_recommender_whose_constructor_fails(tmp_path, recommender, sweep, fragment):
    """Was: validate passed (the class has its methods and signature), then every cell of the
    arm failed with the constructor's exception (exit 1, a half-written run directory; a
    sys.exit in the constructor ended validate with the plug-in's code and no word). Now the
    preflight builds each plug-in once per distinct params, as the cell does, without fitting:
    one line naming the arm and the class, exit 2, nothing written."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = recommender
    if sweep is not None:
        doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, fragment)


def test_plugin_recommender_raising_keyboard_interrupt_in_its_constructor(tmp_path):
    """Was: validate and run exited 130 without a word (typer turns a KeyboardInterrupt into
    exit 130 silently, and the preflight builds the plug-in before any command's own stop
    handler). Now one line says the command was interrupted, exit 130, nothing written."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{P}:NeedsSmallX", "params": {"x": 5}}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    for command, args in (("validate", ()), ("run", ("--executor", "local", "-o", str(out)))):
        code, stderr = cli(command, str(path), *args)
        assert code == 130, stderr
        assert stderr.strip().splitlines() == [
            f"interrupted (SIGINT): recarena {command} stopped before it finished"
        ]
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_plugin_recommenders_are_not_built_past_the_memory_limit(tmp_path):
    """Building a plug-in allocates its per-user arrays: under --force past the memory limit
    (10^12 users) validate itself ran out of memory (an internal error). It builds plug-ins only
    for a scenario that fits this machine."""
    from recarena.simulator.runner.preflight import preflight

    doc = base_doc(tmp_path)
    doc["population"]["users"] = 10**12
    doc["arms"][1]["recommender"] = {"type": f"{P}:NeedsSmallX", "params": {"x": 3}}
    estimate = preflight(parse_scenario(doc), "s.yaml", force=True)
    assert estimate.users == 10**12


def test_plugin_recommender_that_only_the_cell_can_build(tmp_path):
    """The base of a swept value that no point uses is never built (it never runs); and where
    validate does not build (a run started without it), the cell's own build fails in the same
    one line, a user error (exit 2 from the CLI), not a traceback."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{P}:NeedsSmallX", "params": {"x": 3}}
    doc["sweep"] = {"arms[popularity].recommender.params.x": [1, 2]}
    path = write_doc(tmp_path, doc)
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    del doc["sweep"]
    with pytest.raises(RecarenaError) as refused:
        run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    assert "arms[1].recommender (arm 'popularity'): " in str(refused.value)
    assert "cannot be built: ValueError: x=3 is too big" in str(refused.value)


def _with_plugin(doc: dict, where: str, value: dict) -> dict:
    """``doc`` with ``value`` as arm 1's recommender or as the creators' strategy."""
    if where == "recommender":
        doc["arms"][1]["recommender"] = value
    else:
        doc["creators"]["strategy"] = value
    return doc


@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        (
            "recommender",
            {"type": f"{P}:ParamsRaiseZeroDivision", "params": {"x": 1}},
            f"arms[1].recommender.params: the Params of '{P}:ParamsRaiseZeroDivision' raised "
            "ZeroDivisionError: integer division or modulo by zero",
        ),
        (
            "recommender",
            {"type": f"{P}:ParamsHoldAnArray", "params": {"weights": [1, 2]}},
            f"arms[1].recommender.params: the Params of '{P}:ParamsHoldAnArray' hold a value "
            "that is not plain data",
        ),
        (
            "recommender",
            {
                "type": "epsilon_greedy",
                "params": {"base": f"{P}:ParamsRaiseZeroDivision", "base_params": {"x": 1}},
            },
            f"arms[1].recommender.params.base_params: the Params of "
            f"'{P}:ParamsRaiseZeroDivision' raised ZeroDivisionError",
        ),
        (
            "strategy",
            {"type": f"{P}:StrategyParamsRaiseZeroDivision", "params": {"x": 1}},
            f"creators.strategy.params: the Params of '{P}:StrategyParamsRaiseZeroDivision' "
            "raised ZeroDivisionError",
        ),
    ],
    ids=["validator_raises", "not_plain_data", "as_a_base", "strategy"],
)
def test_plugin_params_model_that_fails(tmp_path, where, value, fragment):
    """Was: an internal error (exit 1) from validate and run alike: a plug-in's Params validator
    raising anything but ValueError passes through pydantic, and params holding an array could
    not be written out. Now one line naming the params and the class, exit 2."""
    doc = _with_plugin(base_doc(tmp_path), where, value)
    refused_everywhere(tmp_path, doc, fragment)


def test_plugin_user_policy_whose_constructor_fails(tmp_path):
    """Was: every cell failed with the policy's traceback saved and "ValueError: ..." (exit 1);
    then validate passed and the cell's build failed in one line, after the run directory was
    written. validate now builds the policy over the users and catalog a cell starts with: one
    line naming population.policy and the class, exit 2, nothing written."""
    doc = base_doc(tmp_path)
    doc["population"]["policy"] = f"{P}:PolicyRaisesInInit"
    refused_everywhere(
        tmp_path,
        doc,
        f"population.policy: '{P}:PolicyRaisesInInit' cannot be built: ValueError: no policy",
    )


@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        (
            "recommender",
            {"type": f"{P}:LenientParams", "params": {"epoch": 5}},
            f"arms[1].recommender.params.epoch: unknown key (the Params of '{P}:LenientParams' "
            "have no such field)",
        ),
        (
            "recommender",
            {"type": "mmr", "params": {"base": f"{P}:LenientParams", "base_params": {"epoch": 5}}},
            "arms[1].recommender.params.base_params.epoch: unknown key",
        ),
        (
            "strategy",
            {"type": f"{P}:LenientStrategy", "params": {"epoch": 5}},
            "creators.strategy.params.epoch: unknown key",
        ),
    ],
    ids=["recommender", "as_a_base", "strategy"],
)
def test_plugin_params_that_would_drop_a_key(tmp_path, where, value, fragment):
    """Was: a plug-in's Params without extra="forbid" (pydantic's default ignores unknown keys)
    turned a typo (epoch for epochs) into the default without a word. Every built-in refuses
    unknown keys; a plug-in's params now are too, in one line naming the key."""
    doc = _with_plugin(base_doc(tmp_path), where, value)
    refused_everywhere(tmp_path, doc, fragment)
    if where == "recommender" and value["type"] != "mmr":  # the right key still passes
        doc["arms"][1]["recommender"]["params"] = {"epochs": 5}
        path = write_doc(tmp_path, doc, "ok.yaml")
        assert cli("validate", str(path))[0] == 0


# ------------------------------------------------------------ plug-ins that exit the process
@pytest.mark.parametrize(
    ("kind", "code"), [("ExitsInFit", "None"), ("ExitsInRecommend", "3")], ids=["fit", "recommend"]
)
@pytest.mark.parametrize("executor", ["local", "process"])
def test_plugin_calling_sys_exit_fails_its_cell(tmp_path, kind, code, executor):
    """Was: with --executor local a plug-in's sys.exit() went past the cell's error handling
    (SystemExit is not an Exception) and ended the run with the plug-in's code: 0 for a bare
    sys.exit(), a failed run that said nothing; the process executor's worker printed the
    exit message as a second line. Now the cell fails with one line and the other arm's cell
    is finished and readable."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"tests.slate_plugins:{kind}"}
    code_, stderr, out = run_doc(tmp_path, doc, executor)
    lines = stderr.strip().splitlines()
    assert code_ == 1 and len(lines) == 1, stderr
    assert f"arm=popularity/rep=0: sys.exit({code}) was called inside the cell" in lines[0]
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()


# ------------------------------------------------------------- paths the OS cannot look up
LONG_NAME = "n" * 300  # a file system allows 255 bytes per name
LLM_USERS = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}


def _set_path(doc: dict, field: str, value: str) -> None:
    if field == "population.path":
        doc["population"] = {"from": "calibrated", "path": value}
    elif field == "population.dataset":
        doc["population"] = {"from": "calibrated", "path": "p.parquet", "dataset": value}
    elif field == "population.social.graph.path":
        doc["population"]["social"] = {"graph": {"type": "edge_list", "path": value}}
    elif field == "population.daily_rhythm.start_hours_from":
        doc["population"]["daily_rhythm"] = {"start_hours_from": value}
    elif field == "population.llm_panel.personas.path":
        doc["population"].update(
            model="mixed", llm_panel={"users": 2, "personas": {"source": "data", "path": value}}
        )
    elif field == "llm.cache.path":
        doc["population"]["model"] = "llm"
        doc["llm"] = {**LLM_USERS, "cache": {"path": value}}
    elif field == "llm.model_path":
        doc["population"]["model"] = "llm"
        doc["llm"] = {"provider": "local", "model_path": value}
    else:
        doc["output"]["dir"] = value


PATH_FIELDS = [
    "population.path",
    "population.dataset",
    "population.social.graph.path",
    "population.daily_rhythm.start_hours_from",
    "population.llm_panel.personas.path",
    "llm.cache.path",
    "llm.model_path",
    "output.dir",
]


@pytest.mark.parametrize("field", PATH_FIELDS)
@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        (lambda tmp: str(tmp / LONG_NAME), "a name in the path is 300 bytes long"),
        (lambda tmp: str(tmp) + "/d" * 2100, "the path is 4,"),
        (lambda tmp: str(tmp / "x\x00y"), "a path cannot contain a NUL byte"),
    ],
    ids=["long_name", "long_path", "nul"],
)
def test_path_fields_the_os_cannot_look_up(tmp_path, field, shape, fragment):
    """Was: every exists()/is_file() check of such a path raised ENAMETOOLONG (an internal
    error, exit 1, from validate and run alike); a NUL byte in llm.cache.path passed validate
    and run died on it (ValueError, exit 1)."""
    doc = base_doc(tmp_path)
    _set_path(doc, field, shape(tmp_path))
    refused_everywhere(tmp_path, doc, f"{field}: {fragment}")


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("loop", "llm.cache.path {tmp}/loop: cannot be resolved (a symbolic link loop)"),
        ("file/cache.sqlite", "llm.cache.path {tmp}/file/cache.sqlite: {tmp}/file is a file"),
    ],
    ids=["symlink_loop", "under_a_file"],
)
def test_llm_cache_whose_directory_cannot_be_made(tmp_path, where, fragment):
    """Was: validate passed; run died on the symlink loop (RuntimeError, exit 1) or, with the
    cache under a file, made the run directory and failed every cell (FileExistsError)."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "file").write_text("")
    doc = base_doc(tmp_path)
    _set_path(doc, "llm.cache.path", str(tmp_path / where))
    refused_everywhere(tmp_path, doc, fragment.format(tmp=tmp_path))


def _sqlite(path: Path, *statements: str) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("mode", "content", "fragment"),
    [
        ("replay", None, "cache.sqlite is empty; replay needs the cache of a recorded run"),
        ("replay", ["CREATE TABLE t(a)", "DROP TABLE t"], "cache.sqlite holds no recorded LLM"),
        ("replay", ["CREATE TABLE foo(a, b)"], "another program's SQLite database (tables foo"),
        ("auto", ["CREATE TABLE foo(a, b)"], "another program's SQLite database (tables foo"),
        ("replay", ["CREATE TABLE calls(key, x)"], "'calls' table has no column 'model'"),
        ("replay", "calls", "cache.sqlite holds no recorded LLM calls"),
    ],
    ids=[
        "replay_empty_file",
        "replay_no_tables",
        "replay_foreign",
        "auto_foreign",
        "replay_other_calls",
        "replay_no_rows",
    ],
)
def test_llm_cache_that_is_not_a_cache_of_calls(tmp_path, mode, content, fragment):
    """Was: validate passed; a replay of an empty or foreign SQLite file missed every call of
    the run, and auto mode added its table to another program's database."""
    from recarena.agents.llm.cache import CallCache

    cache = tmp_path / "cache.sqlite"
    if content is None:
        cache.write_bytes(b"")
    elif content == "calls":  # the cache's own table, nothing recorded in it
        CallCache(cache, "auto", "r").close()
    else:
        _sqlite(cache, *content)
    doc = base_doc(tmp_path)
    _set_path(doc, "llm.cache.path", str(cache))
    doc["llm"]["cache"]["mode"] = mode
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:9/v1?key=1", "an endpoint URL has no query or fragment"),
        ("http://127.0.0.1:9/v1#top", "an endpoint URL has no query or fragment"),
        ("http://127.0.0.1:9/v1/chat/completions", "give the API's base, not a call's path: 'http"),
    ],
)
def test_llm_base_url_with_more_than_the_api_root(tmp_path, url, fragment):
    """Was: refused only when nothing answered on the port; with an endpoint up, every call
    went to .../v1?key=1chat/completions or .../chat/completions/chat/completions (404) and
    fell back to the rule policy (exit 3 after the whole run)."""
    doc = base_doc(tmp_path)
    doc["population"]["model"] = "llm"
    doc["llm"] = {**LLM_USERS, "base_url": url}
    refused_everywhere(tmp_path, doc, f"llm.base_url: {fragment}")


@pytest.mark.parametrize("where", ["loop", "loop/ratings.csv"])
def test_dataset_through_a_loop_of_links(tmp_path, where):
    """Was: 'dataset not found' for a path that is there (a link pointing at itself), or
    'cannot tell the format' of a folder whose ratings.csv is such a link."""
    if where == "loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
    else:
        (tmp_path / "loop").mkdir()
        (tmp_path / where).symlink_to(tmp_path / where)
    doc = base_doc(tmp_path)
    _set_path(doc, "population.dataset", str(tmp_path / "loop"))
    fragment = f"{tmp_path / where} is a symbolic link that leads to no file"
    refused_everywhere(
        tmp_path, doc, f"population.dataset: dataset{'' if where == 'loop' else ' file'} {fragment}"
    )


@pytest.mark.parametrize("how", ["calibrate", "scenario"])
def test_calibrating_over_the_datasets_own_ratings_file(tmp_path, how):
    """Was: `calibrate DATA -o DATA/ratings.csv` (or population.path naming the dataset's
    ratings file) wrote the population's Parquet over the user's ratings, exit 0."""
    folder = tmp_path / "ml"
    folder.mkdir()
    ratings = folder / "ratings.csv"
    text = "userId,movieId,rating,timestamp\n1,10,4,100\n1,20,3,200\n"
    ratings.write_text(text)
    fragment = f"{ratings} exists and is not a Parquet file (a dataset?)"
    if how == "calibrate":
        assert_refused(*cli("calibrate", str(folder), "-o", str(ratings)), f"--output {ratings}")
        assert_refused(*cli("calibrate", str(folder), "-o", str(ratings)), fragment)
    else:
        doc = base_doc(tmp_path)
        doc["population"] = {"from": "calibrated", "path": str(ratings), "dataset": str(folder)}
        refused_everywhere(tmp_path, doc, f"population.path: {fragment}")
    assert ratings.read_text() == text
    assert sorted(p.name for p in folder.iterdir()) == ["ratings.csv"]


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("utf16", "ratings.csv line 1: the file is UTF-16, not UTF-8 text"),
        ("loop", "ratings.csv is a symbolic link that leads to no file"),
    ],
)
def test_persona_data_in_utf16_or_through_a_loop(tmp_path, damage, fragment):
    """Was: 'has no column userId, movieId, rating (found \xff\xfeu s e r I d ...)' and 'file
    not found' for a link that is there."""
    ratings = tmp_path / "ratings.csv"
    if damage == "utf16":
        ratings.write_bytes("userId,movieId,rating\n1,1,4\n".encode("utf-16"))
    else:
        ratings.symlink_to(ratings)
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A,Drama\n")
    doc = base_doc(tmp_path)
    personas = {"source": "data", "path": str(ratings)}
    doc["population"].update(model="mixed", llm_panel={"users": 2, "personas": personas})
    doc["llm"] = LLM_USERS
    refused_everywhere(tmp_path, doc, "population.llm_panel.personas.path")
    refused_everywhere(tmp_path, doc, fragment)


def test_output_dir_through_a_symlink_loop(tmp_path):
    """Was: validate passed (exists() is False on a loop, so the check climbed to its parent)
    and run died making the run directory (OSError ELOOP, exit 1)."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    doc = base_doc(tmp_path)
    doc["output"]["dir"] = str(tmp_path / "loop" / "runs")
    path = write_doc(tmp_path, doc)
    fragment = f"output.dir {tmp_path}/loop/runs: cannot be resolved (a symbolic link loop)"
    assert_refused(*cli("validate", str(path)), fragment)
    code, stderr = cli("run", str(path), "--executor", "local", "-q")
    assert_refused(code, stderr, f"output.dir {tmp_path}/loop/runs/gate-")  # the run directory
    assert "cannot be resolved (a symbolic link loop)" in stderr
    code, stderr = cli("run", str(path), "-o", str(tmp_path / "loop"), "-q")
    assert_refused(code, stderr, f"--output {tmp_path}/loop: cannot be resolved")


def test_output_through_a_symlink_to_nothing(tmp_path):
    """Was: run -o LINK and run with output.dir LINK (a link whose target is gone) died making
    the run directory (FileExistsError, exit 1); validate passed the -o case."""
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    doc = base_doc(tmp_path)
    doc["output"]["dir"] = str(link)
    path = write_doc(tmp_path, doc)
    line = f"{link} is a symbolic link that leads to nothing ({tmp_path / 'nowhere'})"
    assert_refused(*cli("validate", str(path)), f"output.dir {link}: {line}")
    code, stderr = cli("run", str(path), "--executor", "local", "-q")
    assert_refused(code, stderr, f"output.dir {link}/gate-")  # the run directory inside it
    assert line in stderr
    for output in (link, link / "sub"):
        code, stderr = cli("run", str(path), "-o", str(output), "-q")
        assert_refused(code, stderr, f"--output {output}: {line}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone", "s.yaml"]


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "{long}.yaml"),
        ("run", "{long}.yaml"),
        ("run", "{scenario}", "-o", "{long}"),
        ("run", "{scenario}", "--resume", "{long}"),
        ("compare", "{long}"),
        ("report", "{long}"),
    ],
    ids=lambda args: "_".join(a.strip("{}-") for a in args[:3]),
)
def test_command_line_paths_too_long_to_look_up(tmp_path, args):
    """Was: an internal error (OSError ENAMETOOLONG, exit 1) from each of these."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(tmp_path)), encoding="utf-8")
    values = {"long": str(tmp_path / LONG_NAME), "scenario": str(scenario)}
    assert_refused(*cli(*(a.format(**values) for a in args)), "a name in the path is 30")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# --------------------------------------------------------- a trained policy as an arm
@pytest.mark.parametrize(
    ("checkpoint", "fragment"),
    [
        ("{tmp}/missing.pt", "checkpoint: file not found: {tmp}/missing.pt"),
        ("{tmp}", "checkpoint: not a file: {tmp}"),  # was 'file not found' about a folder
        ("{tmp}/garbage.pt", "checkpoint: {tmp}/garbage.pt is not a torch file"),
        ("no_such_module_xyz:policy", "cannot load 'no_such_module_xyz:policy': ModuleNotFound"),
        ("math:pi", "checkpoint: 'math:pi' is not callable"),
    ],
    ids=["missing", "a_folder", "not_torch", "no_module", "not_callable"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["arm", "base_of_a_wrapper"])
def test_policy_checkpoint_checked_by_validate(tmp_path, checkpoint, fragment, wrapped):
    """Was: validate passed a `type: policy` arm whose checkpoint was missing, not a torch file
    or not an importable callable; the run wrote its directory and failed the arm's cells."""
    (tmp_path / "garbage.pt").write_text("not a model\n")
    params = {"checkpoint": checkpoint.format(tmp=tmp_path)}
    doc = base_doc(tmp_path)
    if wrapped:
        params = {"base": "policy", "base_params": params}
    doc["arms"][1]["recommender"] = {
        "type": "epsilon_greedy" if wrapped else "policy",
        "params": params,
    }
    where = "arms[1].recommender.params." + ("base_params." if wrapped else "")
    refused_everywhere(tmp_path, doc, where + "checkpoint: ")
    refused_everywhere(tmp_path, doc, fragment.format(tmp=tmp_path))


@pytest.mark.parametrize(
    ("saved", "fragment"),
    [
        ("truncated", "ck.pt is not a torch module: PytorchStreamReader failed"),
        ("tensor", "ck.pt holds no callable module"),
        ("state_dict", "ck.pt holds no callable module"),
    ],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["arm", "base_of_a_wrapper"])
def test_policy_checkpoint_that_torch_cannot_use(tmp_path, saved, fragment, wrapped):
    """Was: a checkpoint cut short, or a torch.save of a tensor or a state_dict, starts like a
    torch file, so validate passed it and every cell of the arm failed after the run directory
    was written. Now it is loaded before the run, as the cell loads it."""
    torch = pytest.importorskip("torch")
    checkpoint = tmp_path / "ck.pt"
    if saved == "truncated":
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(checkpoint))
        checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    else:
        layer = torch.nn.Linear(2, 2)
        torch.save(torch.zeros(3) if saved == "tensor" else layer.state_dict(), str(checkpoint))
    params: dict = {"checkpoint": str(checkpoint)}
    if wrapped:
        params = {"base": "policy", "base_params": params}
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {
        "type": "epsilon_greedy" if wrapped else "policy",
        "params": params,
    }
    where = "arms[1].recommender.params." + ("base_params." if wrapped else "")
    refused_everywhere(tmp_path, doc, where + "checkpoint: ")
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("checkpoint", "fragment"),
    [
        ("two_inputs.pt", "cannot score an observation (a dict of user_id, topic_mix, history"),
        ("flat_scores.pt", "the policy returned shape (1,), expected [1, n_items]"),
        (f"{P}:policy_of_two_arguments", "TypeError: policy_of_two_arguments() missing 1"),
        (f"{P}:policy_of_one_score_per_user", "the policy returned shape (1,)"),
    ],
    ids=["torch_forward_of_two_inputs", "torch_flat_scores", "callable_of_two", "callable_flat"],
)
def test_policy_that_cannot_score_its_observation(tmp_path, checkpoint, fragment):
    """Was: a TorchScript policy whose forward takes other inputs than the observation dict, or
    a callable of another signature, passed validate and every cell of its arm failed (a
    RuntimeError or TypeError naming no field); one answering [B] scores failed the same way.
    validate now asks each policy for the scores of a first page, as its arm will."""
    torch = pytest.importorskip("torch")

    class TwoInputs(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a

    class FlatScores(torch.nn.Module):
        def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
            return obs["user_id"].float()

    torch.jit.save(torch.jit.script(TwoInputs()), str(tmp_path / "two_inputs.pt"))
    torch.jit.save(torch.jit.script(FlatScores()), str(tmp_path / "flat_scores.pt"))
    spec = checkpoint if ":" in checkpoint else str(tmp_path / checkpoint)
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "policy", "params": {"checkpoint": spec}}
    refused_everywhere(tmp_path, doc, "arms[1].recommender.params.checkpoint: ")
    refused_everywhere(tmp_path, doc, fragment)


def test_policy_asked_at_every_swept_history(tmp_path):
    """Was: the policy was asked once for the base scenario, so a sweep of its history window
    passed validate and the points it cannot take failed every cell of the arm."""
    doc = base_doc(tmp_path)
    spec = f"{P}:policy_of_five_history_items"
    doc["arms"][1]["recommender"] = {"type": "policy", "params": {"checkpoint": spec, "history": 5}}
    doc["sweep"] = {"arms[1].recommender.params.history": [5, 6]}
    refused_everywhere(
        tmp_path, doc, "sweep point 1 (arms[1].recommender.params.history=6): arms[1]"
    )
    refused_everywhere(tmp_path, doc, "ValueError: trained on 5 history items, got 6")


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"text": "x", "traits": [1, 2]}, "items[0].traits: a mapping of trait names"),
        ({"text": "x", "traits": None}, "items[0].traits: a mapping of trait names"),
        ({"text": "x", "trait": {"activity": "high"}}, "items[0]: unknown key 'trait'"),
    ],
    ids=["traits_a_list", "traits_null", "misspelt_key"],
)
def test_yaml_personas_the_panel_cannot_use(tmp_path, item, fragment):
    """Was: validate passed; traits that are not a mapping failed every cell of the run
    (TypeError: cannot convert dictionary update sequence), and a misspelt key was dropped."""
    doc = base_doc(tmp_path)
    doc["population"].update(
        model="mixed", llm_panel={"users": 2, "personas": {"source": "yaml", "items": [item]}}
    )
    doc["llm"] = LLM_USERS
    refused_everywhere(tmp_path, doc, f"population.llm_panel.personas.{fragment}")


@pytest.mark.parametrize("rating", ["nan", "inf", "-100", "10"])
def test_persona_ratings_off_the_star_scale(tmp_path, rating):
    """Was: validate passed and the panel's traits were computed from NaN or skewed means
    without a word (calibrate refuses the same ratings)."""
    (tmp_path / "ratings.csv").write_text(f"userId,movieId,rating\n1,1,4\n2,2,{rating}\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A,Drama\n2,B,Comedy\n")
    doc = base_doc(tmp_path)
    personas = {"source": "data", "path": str(tmp_path / "ratings.csv")}
    doc["population"].update(model="mixed", llm_panel={"users": 2, "personas": personas})
    doc["llm"] = LLM_USERS
    refused_everywhere(
        tmp_path,
        doc,
        f"population.llm_panel.personas.path: {tmp_path / 'ratings.csv'}: rating "
        f"{float(rating)} (user 2, movie 2) is outside the 0.5-5 star scale",
    )


@pytest.mark.parametrize(
    ("personas", "fragment"),
    [
        ({"source": "yaml", "items": [{"text": "x"}]}, "source 'yaml' takes its personas from"),
        ({"source": "template"}, "source 'template' reads none"),
    ],
    ids=["yaml", "template"],
)
def test_personas_path_that_nothing_reads(tmp_path, personas, fragment):
    """Was: a personas file named under source yaml or template (the reference said yaml reads
    it) was ignored without a word, whatever it held."""
    (tmp_path / "personas.yaml").write_text(": : :\n")
    doc = base_doc(tmp_path)
    personas = {**personas, "path": str(tmp_path / "personas.yaml")}
    doc["population"].update(model="mixed", llm_panel={"users": 2, "personas": personas})
    doc["llm"] = LLM_USERS
    where = "population.llm_panel.personas.path: only source 'data' reads a file; "
    refused_everywhere(tmp_path, doc, where + fragment)


@pytest.mark.parametrize("graph", ["barabasi_albert", "watts_strogatz", "sbm"])
def test_social_graph_path_that_nothing_reads(tmp_path, graph):
    """Was: an edge-list file named under a drawn graph type was ignored without a word: the
    run's friendships were drawn, not the ones in the file."""
    (tmp_path / "edges.txt").write_text("0 1\n1 2\n")
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": {"type": graph, "path": str(tmp_path / "edges.txt")}}
    refused_everywhere(
        tmp_path,
        doc,
        f"population.social.graph.path: only type 'edge_list' reads a file; type '{graph}' "
        "draws the graph",
    )


@pytest.mark.parametrize(
    ("metric", "fragment"),
    [
        ("RAISING_METRIC", "failed (ValueError: metric exploded)"),
        ("WRONG_FRAME_METRIC", 'failed (ColumnNotFoundError: unable to find column "arm"'),
    ],
    ids=["raises", "wrong_frame"],
)
def test_plugin_metric_that_fails_after_the_run(tmp_path, metric, fragment):
    """Was: a plug-in metric that raised or returned a frame without arm/rep/value was an
    internal error (exit 1) at the end of a run whose logs were complete, and again from
    compare and report. Now one line naming the metric and the run directory, exit 2."""
    doc = base_doc(tmp_path)
    name = f"tests.plugin_kinds:{metric}"
    doc["metrics"] = ["ctr", name]
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    line = f"{out}: metric '{name}' {fragment}"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), line)
    assert len(list(out.rglob("manifest.json"))) == 3  # the run and its two cells, finished
    assert_refused(*cli("compare", str(out)), line)
    code, stderr = cli("compare", str(out), "--metric", "ctr")
    assert code == 0, stderr


# ------------------------------------------------------------- limits from the environment
@pytest.mark.parametrize("variable", ["RECARENA_MAX_SCENARIO_BYTES", "RECARENA_MAX_SWEEP_POINTS"])
@pytest.mark.parametrize("value", ["abc", "-5", "0", "1.5", "nan"])
def test_limit_variables_that_are_not_whole_numbers(tmp_path, monkeypatch, variable, value):
    """Was: read with int() when the module was imported, so 'abc' (or '1e6') was an internal
    error of validate and run, and a negative byte limit crashed the file reader."""
    monkeypatch.setenv(variable, value)
    doc = base_doc(tmp_path)
    doc["sweep"] = {"population.temperature": [0.5, 1.0]}
    refused_everywhere(tmp_path, doc, f"environment variable {variable}: expected a whole")


def test_limit_variables_in_a_usual_spelling(tmp_path, monkeypatch):
    monkeypatch.setenv("RECARENA_MAX_SCENARIO_BYTES", "1e6")
    monkeypatch.setenv("RECARENA_MAX_SWEEP_POINTS", "20_000")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base_doc(tmp_path)), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr


@pytest.mark.parametrize("executor", ["local", "process"])
def test_plugin_exception_that_cannot_be_printed(tmp_path, executor):
    """Was: an internal error (exit 1, the plug-in's RuntimeError) while the run formatted the
    failed cell's line. Now the cell fails like any other, named by its arm, its class, the
    method and its exception type; the plug-in is the user's code, so exit 2 (it was 1)."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.slate_plugins:RaisesUnprintable"}
    code, stderr, out = run_doc(tmp_path, doc, executor)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert (
        "arm=popularity/rep=0: arm 'popularity' (recommender 'tests.slate_plugins:"
        "RaisesUnprintable'): recommend raised _Unprintable: (its message could not be printed)"
    ) in lines[0]
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()


def test_report_output_that_is_not_a_regular_file(finished_run, tmp_path):
    """Was: the report was renamed over whatever --output named: a named pipe (or, as root,
    /dev/null itself) was replaced by a regular file, and a symlink by the report instead of
    the report being written where it points."""
    import os
    import stat

    pipe = tmp_path / "pipe.html"
    os.mkfifo(pipe)
    assert_refused(*cli("report", str(finished_run), "-o", str(pipe)), "is not a regular file")
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    link = tmp_path / "link.html"
    link.symlink_to(tmp_path / "real.html")
    code, stderr = cli("report", str(finished_run), "-o", str(link))
    assert code == 0, stderr
    assert link.is_symlink() and (tmp_path / "real.html").read_text().startswith("<!")


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ("ClicksEverySlot", "clicks on one page (a user clicks at most one) at request user="),
        ("RatesNinetyNine", "rating 99.0 is off the 0.5-5 star scale at request user="),
        ("AnswersNone", "respond returned NoneType, expected a ResponseBatch"),
        # was: the bare "ValueError: ...", exit 1; a GeneratorExit ended the run in a traceback
        ("RaisesInRespond", "respond raised ValueError: no state for this user"),
        ("GeneratorExitInRespond", "respond raised GeneratorExit"),
        ("ClicksAsMatrix", "clicked is a matrix, expected a numpy.ndarray"),
        # was: "KeyError: 'value'" naming no policy, exit 1
        ("NoValueInExtra", "extra has no 'value', expected extra['value'], a numpy.ndarray"),
        # were: runs that finished with NaN session values, NaN true utilities in the logs and
        # the 'rating' page reward paid for pages without a click
        ("NaNValue", "extra['value'] nan is not finite at request user="),
        ("NaNUtility", "utility nan of filled slot 0 is not finite at request user="),
        ("RatesWithoutClicking", "rating 3.0 on a page without a click (NaN: no rating)"),
    ],
)
def test_plugin_user_policy_answers_are_checked(tmp_path, policy, fragment):
    """Was: a plug-in policy that clicked every slot or rated 99 stars ran without a word (its
    logs held ten clicks a page, CTR above 1, and mean ratings of 99); one that answered None
    failed its cells with an AttributeError naming no policy. The response guard stops the
    cell with one line naming population.policy, as the slate guard does for recommenders."""
    doc = base_doc(tmp_path)
    doc["population"]["policy"] = f"tests.plugin_kinds:{policy}"
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert_refused(code, stderr, f"population.policy 'tests.plugin_kinds:{policy}': ")
    assert fragment in stderr


def test_plugin_user_policy_truth_for_an_oracle_is_checked(tmp_path):
    """Was: a policy whose utility() answered another shape failed the oracle's arm with
    'recommend raised ValueError: not enough values to unpack', naming the oracle (exit 1)."""
    doc = base_doc(tmp_path)
    doc["population"]["policy"] = "tests.plugin_kinds:TruthOfOneRow"
    doc["arms"] = [{"name": "oracle", "recommender": {"type": "oracle"}}]
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert_refused(
        code,
        stderr,
        "arm=oracle/rep=0: population.policy 'tests.plugin_kinds:TruthOfOneRow': utility "
        "returned shape (",
    )
    assert re.search(r"shape \((\d+),\) for items of shape \(1, \1\), expected \(1, \1\)", stderr)


@pytest.mark.parametrize(
    ("strategy", "fragment"),
    [
        ("ZeroMixStrategy", "update mix row 0 is [0. 0. 0. 0.]; a topic mix has finite weights"),
        # was: the bare "RuntimeError: ...", exit 1
        ("RaisesInUpdate", "update raised RuntimeError: no stats for this creator"),
    ],
)
def test_plugin_creator_strategy_answers_are_checked(tmp_path, strategy, fragment):
    """Was: an all-zero (or NaN, or negative) mix from a plug-in strategy was applied without
    a word but a RuntimeWarning, and the creator's uploads got NaN topic mixes. The cell now
    stops with one line naming creators.strategy."""
    doc = base_doc(tmp_path)
    doc["creators"] = {
        "count": 3,
        "period_days": 0.1,
        "strategy": {"type": f"tests.plugin_kinds:{strategy}"},
    }
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert_refused(code, stderr, f"creators.strategy 'tests.plugin_kinds:{strategy}': {fragment}")


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_base_exception_in_a_cell_fails_that_cell_in_one_line(tmp_path, executor):
    """Was: a GeneratorExit (or a plug-in's own BaseException subclass) passed every handler,
    since it is not an Exception, and ended the run with a traceback; with the process executor
    the worker printed that traceback as well. Now it fails its cell like any other error."""
    doc = base_doc(tmp_path)
    doc["surface"] = {"type": "tests.plugin_kinds:LayoutRaisesGeneratorExit"}
    code, stderr, out = run_doc(tmp_path, doc, executor)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1, stderr
    assert "arm=random/rep=0: GeneratorExit was raised inside the cell" in lines[0]
    assert (out / "arm=random" / "rep=0" / "_INCOMPLETE").is_file()
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"k": 0}, "ValidationError: k: Input should be greater than or equal to 1"),
        ({"k": "abc"}, "ValueError: invalid literal for int()"),
    ],
    ids=["k_zero", "k_text"],
)
@pytest.mark.parametrize("place", ["surface", "arms[1].surface"])
def test_plugin_surface_that_refuses_its_params(tmp_path, params, fragment, place):
    """Was: validate only imported the factory, so params it refuses passed and every cell of
    the run failed with the factory's error (a multi-line pydantic error or a ValueError)."""
    doc = base_doc(tmp_path)
    surface = {"type": "tests.plugin_kinds:ShortList", "params": params}
    if place == "surface":
        doc["surface"] = surface
    else:
        doc["arms"][1]["surface"] = surface
    prefix = f"{place}.params: 'tests.plugin_kinds:ShortList' cannot be built from them: "
    refused_everywhere(tmp_path, doc, prefix + fragment)


@pytest.mark.parametrize(
    ("strategy", "fragment"),
    [
        ("ExploresTwice", "'tests.plugin_kinds:ExploresTwice': explore must be a share in [0, 1]"),
        (
            "WithoutExplore",
            "'tests.plugin_kinds:WithoutExplore' has no explore attribute: the "
            "share of uploads, in [0, 1], whose main topic is drawn uniformly",
        ),
        ("RaisesInInit", "'tests.plugin_kinds:RaisesInInit' cannot be built: ValueError: no"),
    ],
)
def test_plugin_creator_strategy_that_cannot_run(tmp_path, strategy, fragment):
    """Was: validate passed; a constructor that raised failed every cell of the run, and an
    explore share of 2 (a "probability" of uploading off-topic) was used as it came."""
    doc = base_doc(tmp_path)
    doc["creators"] = {"count": 3, "strategy": {"type": f"tests.plugin_kinds:{strategy}"}}
    refused_everywhere(tmp_path, doc, f"creators.strategy: {fragment}")


@pytest.mark.parametrize(
    ("estimator", "fragment"),
    [
        ("estimator_that_raises", "failed (ValueError: estimator exploded)"),
        ("estimator_of_text", "failed (TypeError: returned <U4 of shape ()"),
    ],
)
def test_plugin_ope_estimator_that_fails(finished_run, estimator, fragment):
    """Was: an internal error (exit 1) from ope for a plug-in estimator that raised or returned
    text; now one line naming --estimators and the estimator, exit 2."""
    name = f"tests.plugin_kinds:{estimator}"
    code, stderr = cli("ope", str(finished_run), "--target", "popularity", "--estimators", name)
    assert_refused(code, stderr, f"--estimators: '{name}' {fragment}")


# ------------------------------------------------------------------- the LLM endpoint
@pytest.mark.parametrize(
    ("base_url", "fragment"),
    [
        ("not a url", "llm.base_url: an endpoint URL has no spaces"),
        ("ftp://127.0.0.1/v1", "llm.base_url: an endpoint URL starts with http:// or https://"),
        ("http://[::1", "llm.base_url: not a URL (Invalid IPv6 URL)"),
        ("http://127.0.0.1:99999/v1", "llm.base_url: not a URL (Port out of range"),
        ("http://", "llm.base_url: no host in 'http://'"),
        ("", "llm.base_url: empty (leave it out to use the OPENAI_BASE_URL"),
        (None, "llm.base_url: provider openai needs an endpoint to call"),
    ],
    ids=["spaces", "ftp", "bad_ipv6", "bad_port", "no_host", "empty", "none_and_no_env"],
)
def test_llm_endpoint_that_cannot_be_called(tmp_path, monkeypatch, base_url, fragment):
    """Was: validate passed; then every LLM decision failed and fell back to the rule policy
    (exit 3, a run of rule users), or every cell failed (InvalidURL, exit 1; no endpoint at all,
    after the run directory was made)."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    doc = base_doc(tmp_path)
    doc["population"].update(model="llm", users=3)
    doc["llm"] = {"provider": "openai", "max_retries": 0}
    if base_url is not None:
        doc["llm"]["base_url"] = base_url
    refused_everywhere(tmp_path, doc, fragment)


def _closed_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_llm_endpoint_that_does_not_answer(tmp_path, monkeypatch):
    """Was: validate passed; the run retried and fell back on every LLM decision (seconds per
    call when the port refuses, a timeout per attempt when the host drops packets) and ended
    with exit 3, a run of rule users. Now one line naming llm.base_url, exit 2, nothing written;
    --allow-fallback (accepting exactly that run) and a dry run skip the check."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    doc = base_doc(tmp_path)
    doc["population"].update(model="llm", users=3)
    doc["llm"] = {"provider": "openai", "base_url": url, "max_retries": 0}
    refused_everywhere(
        tmp_path, doc, f"llm.base_url {url}: nothing answers (cannot connect to 127.0.0.1:"
    )
    path = tmp_path / "s.yaml"
    code, stderr = cli("run", str(path), "--dry-run")
    assert code == 0, stderr
    monkeypatch.setenv("OPENAI_BASE_URL", "http://llm.invalid/v1")  # the variable is probed too
    del doc["llm"]["base_url"]
    refused_everywhere(tmp_path, doc, "llm.base_url http://llm.invalid/v1: nothing answers")


def test_llm_endpoint_probe_gives_up_in_seconds(monkeypatch):
    """A host that drops packets (or a resolver that never answers) is given a few seconds."""
    import socket
    import threading

    from recarena.agents.llm.endpoint import unreachable

    release = threading.Event()

    def drops_packets(*args: object, **kwargs: object) -> None:
        release.wait(10)  # until the test is done: then the probe's thread ends quietly
        raise OSError("released")

    monkeypatch.setattr(socket, "create_connection", drops_packets)
    try:  # the answer can only come from the probe's own timeout
        problem = unreachable("https://10.255.255.1/v1", seconds=0.2)
    finally:
        release.set()
    assert problem == "no connection to 10.255.255.1:443 within 0.2 s"
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")  # the proxy carries calls
    assert unreachable("https://10.255.255.1/v1", seconds=0.2) is None


def test_openai_base_url_variable_that_is_not_a_url(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost 8080")
    doc = base_doc(tmp_path)
    doc["population"].update(model="llm", users=3)
    doc["llm"] = {"provider": "openai"}
    refused_everywhere(tmp_path, doc, "environment variable OPENAI_BASE_URL (llm.base_url): ")


@pytest.mark.parametrize(
    ("tail", "fragment"),
    [("abc\n", "failed in column 'timestamp'"), ("nan\n", "every timestamp must be a finite")],
)
def test_large_start_hours_csv_with_a_bad_value_deep_inside(tmp_path, monkeypatch, tail, fragment):
    """Was: a start_hours_from CSV larger than preflight's full-parse size had only its header
    checked, so a bad value deep inside passed validate and failed every cell of the run (after
    two DtypeWarnings from the cell's reader). Its timestamp column is now streamed."""
    monkeypatch.setattr("recarena.simulator.runner.input_file_checks.SMALL_FILE_BYTES", 100)
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,timestamp\n" + "1,1000000000\n" * 50 + "1," + tail, encoding="utf-8")
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {"start_hours_from": str(csv)}
    refused_everywhere(tmp_path, doc, f"population.daily_rhythm.start_hours_from: {csv}: ")
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("population.dataset", "is not a file or a directory of a dataset"),
        ("population.daily_rhythm.start_hours_from", "not a file"),
        ("population.social.graph.path", "pipe.csv is not a file (an edge list)"),
        ("llm.cache.path", "is not a file (an SQLite cache of LLM calls)"),
    ],
)
def test_data_path_that_is_a_named_pipe(tmp_path, field, fragment):
    """Was (population.dataset): an internal error (NotADirectoryError, exit 1) from validate;
    a pipe must never be opened (reading it blocks until something writes). An edge list that
    is a pipe (or a directory) was "edge-list file not found"; it is now "not a file"."""
    import os

    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    doc = base_doc(tmp_path)
    _set_path(doc, field, str(pipe))
    refused_everywhere(tmp_path, doc, f"{field}: ")
    refused_everywhere(tmp_path, doc, fragment)


def test_a_file_where_a_run_directory_belongs(tmp_path):
    """Was: "run directory not found" for a path that exists (a file, often the scenario passed
    by mistake); now it says the path is not a directory."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base_doc(tmp_path)), encoding="utf-8")
    code, stderr = cli("run", str(path), "--resume", str(path), "-q")
    assert_refused(code, stderr, f"--resume {path}: not a directory")
    assert_refused(*cli("compare", str(path)), f"not a directory: {path}")


# ---------------------------------------------- a calibrated population's files, damaged
@pytest.fixture(scope="module")
def calibrated_files(tmp_path_factory) -> Path:
    """A real (tiny) calibrated population: 40 users, 30 items, with its interest sidecar."""
    import numpy as np

    from recarena.agents.users.calibration import CalibrationConfig, calibrate
    from recarena.simulator.data.datasets import load_dataset

    root = tmp_path_factory.mktemp("calibrated")
    rng = np.random.default_rng(0)
    rows = ["userId,movieId,rating,timestamp"]
    for user in range(1, 41):
        for k, movie in enumerate(rng.choice(np.arange(1, 31), 12, replace=False)):
            rows.append(f"{user},{movie},{rng.integers(1, 6)}.0,{10**6 + user * 1000 + k * 3600}")
    (root / "ml").mkdir()
    (root / "ml" / "ratings.csv").write_text("\n".join(rows) + "\n")
    genres = ["Drama", "Comedy", "Action"]
    (root / "ml" / "movies.csv").write_text(
        "movieId,title,genres\n"
        + "".join(f"{m},Movie {m} (1999),{genres[m % 3]}\n" for m in range(1, 31))
    )
    population = calibrate(load_dataset(root / "ml"), CalibrationConfig(topics=2, epochs=1))
    population.save(root / "pop" / "pop.parquet")
    return root / "pop"


def _rewrite(path: Path, change) -> None:
    import pyarrow.parquet as pq

    pq.write_table(change(pq.read_table(path)), path)


def _column(name: str, values) -> object:
    import pyarrow as pa

    def change(table):
        array = values(table[name].to_pylist())
        array = array if isinstance(array, pa.Array) else pa.array(array)
        changed = table.set_column(table.schema.get_field_index(name), name, array)
        return changed.replace_schema_metadata(table.schema.metadata)

    return change


def _metadata(**update) -> object:
    def change(table):
        scalars = json.loads(table.schema.metadata[b"recarena.calibration"])
        scalars.update(update)
        return table.replace_schema_metadata({b"recarena.calibration": json.dumps(scalars)})

    return change


def _npz(**update) -> object:
    def change(path: Path) -> None:
        import numpy as np

        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        np.savez(path, **{**arrays, **update})

    return change


def _damage_calibrated(directory: Path, damage: str) -> None:
    import numpy as np
    import pyarrow as pa

    users, items = directory / "pop.parquet", directory / "pop.items.parquet"
    interest, sidecar = directory / "pop.interest.npz", directory / "pop.json"
    floats = pa.list_(pa.float32())
    if damage == "npz_empty":
        interest.write_bytes(b"")
    elif damage == "npz_truncated":
        interest.write_bytes(interest.read_bytes()[:300])
    elif damage == "npz_missing":
        interest.unlink()
    elif damage == "npz_of_fewer_items":
        _npz(log_pop=np.zeros(5, np.float32))(interest)
    elif damage == "npz_nan":
        _npz(conformity=np.full(40, np.nan, np.float32))(interest)
    elif damage == "npz_years_of_fewer_items":
        _npz(item_year=np.full(5, 1990.0, np.float32))(interest)
    elif damage == "npz_era_without_spread":
        _npz(user_era=np.zeros((40, 2), np.float32))(interest)
    elif damage == "metadata_a_list":
        for path in (users, items):
            _rewrite(path, lambda t: t.replace_schema_metadata({b"recarena.calibration": b"[1]"}))
    elif damage == "thresholds_unsorted":
        for path in (users, items):
            _rewrite(path, _metadata(rating_thresholds=[4.0, 3.0, 2.0, 1.0]))
    elif damage == "thresholds_short":
        for path in (users, items):
            _rewrite(path, _metadata(rating_thresholds=[1.0]))
    elif damage == "items_of_another_calibration":
        _rewrite(items, _metadata(temperature=9.0))
    elif damage == "json_invalid":
        sidecar.write_text("{not json")
    elif damage == "json_of_another_population":
        sidecar.write_text(json.dumps({"temperature": 1.0}))
    elif damage == "activity_negative":
        _rewrite(users, _column("activity", lambda v: [-1.0] * len(v)))
    elif damage == "activity_huge":
        _rewrite(users, _column("activity", lambda v: [1e300] * len(v)))
    elif damage == "activity_null":
        _rewrite(users, _column("activity", lambda v: pa.array([None, *v[1:]], pa.float64())))
    elif damage == "taste_narrower":
        _rewrite(users, _column("taste", lambda v: pa.array([r[:1] for r in v], floats)))
    elif damage == "taste_text":
        text = pa.list_(pa.string())
        _rewrite(
            users, _column("taste", lambda v: pa.array([[str(x) for x in r] for r in v], text))
        )
    elif damage == "topics_negative":
        _rewrite(items, _column("topics", lambda v: pa.array([[-1.0] * len(r) for r in v], floats)))
    elif damage == "creator_float":
        _rewrite(items, _column("creator", lambda v: [x + 0.5 for x in v]))
    elif damage == "creator_null":
        _rewrite(items, _column("creator", lambda v: pa.array([None, *v[1:]], pa.int32())))
    elif damage == "creator_past_the_items":
        _rewrite(items, _column("creator", lambda v: pa.array([2**30, *v[1:]], pa.int32())))
    elif damage == "creator_negative":
        _rewrite(items, _column("creator", lambda v: pa.array([-1, *v[1:]], pa.int32())))
    elif damage == "genres_one_string":
        _rewrite(items, _column("genres", lambda v: ["|".join(g) for g in v]))
    elif damage == "temperature_nan":  # in all three files: the loader's own message
        for path in (users, items):
            _rewrite(path, _metadata(temperature=float("nan")))
        scalars = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**scalars, "temperature": float("nan")}))
    elif damage == "corrupt_pages":
        data = bytearray(users.read_bytes())
        data[8:60] = bytes(52)  # the first data page; the footer stays intact
        users.write_bytes(bytes(data))
    else:
        raise AssertionError(damage)


CALIBRATED_DAMAGE = [
    ("npz_empty", "pop.interest.npz is not a NumPy archive"),
    ("npz_truncated", "pop.interest.npz is not a NumPy archive"),
    ("npz_missing", "pop.interest.npz not found; the calibration in pop.parquet fitted"),
    ("npz_of_fewer_items", "pop.interest.npz: log_pop has (5,) rows, not 30 items"),
    ("npz_nan", "pop.interest.npz: conformity has values that are not finite numbers"),
    ("npz_years_of_fewer_items", "pop.interest.npz: item_year has (5,) rows, not 30 items"),
    ("npz_era_without_spread", "pop.interest.npz: user_era is not one (mean, positive spread)"),
    ("metadata_a_list", "pop.parquet: its calibration metadata is a JSON list, not an object"),
    ("thresholds_unsorted", "fitted rating_thresholds [4.0, 3.0, 2.0, 1.0]: cut points must be"),
    ("thresholds_short", "fitted rating_thresholds [1.0]: List should have at least 4 items"),
    ("items_of_another_calibration", "pop.items.parquet holds another calibration than pop"),
    ("json_invalid", "pop.json: not readable JSON"),
    ("json_of_another_population", "pop.json does not match the calibration inside pop.parquet"),
    ("activity_negative", "pop.parquet: activity -1 is outside 0..1e+06"),
    ("activity_huge", "pop.parquet: activity 1e+300 is outside 0..1e+06"),
    ("activity_null", "pop.parquet: column 'activity' has 1 missing value(s)"),
    ("taste_narrower", "pop.parquet: users have 1 taste topics but its items 2"),
    ("taste_text", "pop.parquet: column 'taste' must be a list of floats"),
    ("topics_negative", "item topic mixes must not be negative"),
    ("creator_float", "pop.items.parquet: column 'creator' must be an integer index, got double"),
    ("creator_null", "pop.items.parquet: column 'creator' has 1 missing value(s)"),
    ("creator_past_the_items", "creator index 1073741824 is outside 0..29"),
    ("creator_negative", "pop.items.parquet: creator index -1 is negative"),
    ("genres_one_string", "pop.items.parquet: column 'genres' must be a list of strings"),
    ("corrupt_pages", "pop.parquet cannot be read ("),
    ("temperature_nan", "pop.parquet: fitted temperature nan is not a finite number"),
]


@pytest.mark.parametrize(("damage", "fragment"), CALIBRATED_DAMAGE)
def test_calibrated_population_files_damaged(calibrated_files, tmp_path, damage, fragment):
    """Was: validate said ok and every cell of the run failed (a broadcast error for users and
    items of two populations, ``lam < 0`` for a negative visit rate, out-of-order cut points
    from the file), a zero-byte interest sidecar ended as "aborted" (exit 130), a cut-short one
    or a metadata list as an internal error (exit 1); a missing sidecar or a float creator
    index ran without a word on another model. Now one line naming population.path and the
    file, exit 2, nothing written."""
    directory = tmp_path / "pop"
    shutil.copytree(calibrated_files, directory)
    _damage_calibrated(directory, damage)
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": str(directory / "pop.parquet")}
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, "population.path: ")
    refused_everywhere(tmp_path, doc, fragment)


def test_calibrated_population_undamaged_passes(calibrated_files, tmp_path):
    """The checks above refuse damage only: the files as calibrate writes them pass."""
    doc = base_doc(tmp_path)
    doc.pop("catalog")  # the calibrated population's own
    doc.pop("creators")  # and its creators, one per first genre
    doc["population"] = {"from": "calibrated", "path": str(calibrated_files / "pop.parquet")}
    doc["surface"] = {"k": 2}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr


def test_llm_panel_larger_than_the_calibrated_population(calibrated_files, tmp_path):
    """Was: validate ok (the panel was compared with population.users, which the calibrated
    file replaces); run made its directory and failed every cell on it."""
    doc = base_doc(tmp_path)
    doc["population"] = {
        "from": "calibrated",
        "path": str(calibrated_files / "pop.parquet"),
        "model": "mixed",
        "llm_panel": {"users": 41},
    }
    doc["surface"] = {"k": 2}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    line = "population.llm_panel.users: 41 exceeds the calibrated population's 40 users"
    assert_refused(*cli("validate", str(path)), line)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), line)
    assert not out.exists()


# ----------------------------------------------------------- a local model's GGUF file
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("magic_only", "m.gguf: cut short inside its header (4 bytes)"),
        ("garbage_after_magic", "m.gguf: GGUF version 4294967295; llama.cpp reads versions 2"),
        ("half_of_a_model", "m.gguf: cut short: its tensor data needs more than its"),
    ],
)
def test_local_model_file_that_only_starts_like_gguf(tmp_path, content, fragment):
    """Was: validate looked at the first four bytes only; run wrote its directory, started
    llama.cpp, and stopped with a fragment of its traceback naming no file."""
    import importlib.util

    from recarena.agents.llm.server import local_model_path

    try:
        model = local_model_path()
    except RecarenaError:
        pytest.skip("no local model installed")
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("the local server's package is not installed")
    path = tmp_path / "m.gguf"
    if content == "magic_only":
        path.write_bytes(b"GGUF")
    elif content == "garbage_after_magic":
        path.write_bytes(b"GGUF" + b"\xff" * 100)
    else:
        with model.open("rb") as handle:
            path.write_bytes(handle.read(model.stat().st_size // 2))
    doc = base_doc(tmp_path)
    doc["population"] = {"users": 20, "model": "mixed", "llm_panel": {"users": 2}}
    doc["llm"] = {"provider": "local", "model_path": str(path)}
    refused_everywhere(tmp_path, doc, f"llm.model_path: {path}")
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["validate", ""], "'FILE'"),
        (["run", ""], "'FILE'"),
        (["run", "{scenario}", "-o", ""], "'--output' / '-o'"),
        (["run", "{scenario}", "--resume", ""], "'--resume'"),
        (["run", "{scenario}", "--llm-cache", ""], "'--llm-cache'"),
        (["compare", ""], "'RUN_DIR'"),
        (["report", ""], "'RUN_DIR'"),
        (["report", "{scenario}", "-o", ""], "'--output' / '-o'"),
        (["ope", "", "--target", "random"], "'RUN_DIR'"),
    ],
)
def test_an_empty_path_argument_is_refused(tmp_path, monkeypatch, args, named):
    """'' (an unset shell variable) is Path(''), the working directory: `run -o ""` in an empty
    folder wrote the run there, and `validate ""` said "scenario path is not a file: ."."""
    monkeypatch.chdir(tmp_path)  # an empty working directory: run -o "" would have used it
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_doc(tmp_path)), encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [arg.replace("{scenario}", str(scenario)) for arg in args]
    assert_refused(*cli(*argv), f"Invalid value for {named}: an empty path")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_thread_a_plugin_leaves_running_does_not_keep_the_command_alive(tmp_path):
    """Was: with --executor local a plug-in's never-ending (non-daemon) thread kept `recarena
    run` alive after the run had finished and printed its table, until a Ctrl-C, which printed
    threading's traceback. Now the process says so on one line and exits with the run's code."""
    from tests.cli_subprocess import recarena

    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.slate_plugins:LeavesAThreadRunning"}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    done = recarena("run", str(path), "--executor", "local", "-o", str(out), "-q", timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "note: 1 thread(s) started by plug-in code still running (plugin-worker); "
        "exiting without waiting for them"
    ]
    assert "A/B vs baseline" in done.stdout  # the answer was flushed before the exit
    assert (out / "arm=popularity" / "rep=0" / "manifest.json").is_file()


def test_report_output_in_a_folder_that_takes_no_file(finished_run):
    """Was: 'report of RUN: No such file or directory: /proc/.r.html.<pid>.tmp', naming the
    report's temporary file rather than --output and the path the user gave."""
    code, stderr = cli("report", str(finished_run), "-o", "/proc/r.html")
    assert_refused(code, stderr, "--output /proc/r.html: cannot create a file in /proc (")


@pytest.mark.parametrize("executor", ["local", "process"])
def test_what_a_plugin_prints_goes_to_stderr_not_into_the_answer(tmp_path, executor):
    """Was: a recommender's print() on every page went to stdout, before and among the lines
    of the A/B table that is the command's answer there."""
    from tests.cli_subprocess import recarena

    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.slate_plugins:PrintsEveryPage"}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    done = recarena("run", str(path), "--executor", executor, "-o", str(out), "-q", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "debug:" not in done.stdout
    assert done.stdout.lstrip().startswith("A/B vs baseline")
    assert "debug: " in done.stderr


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_plugin_calling_os_exit_fails_its_cell(tmp_path, executor):
    """Was: with --executor local a plug-in's os._exit(0) ended the run at once, exit 0, with no
    word and the run unfinished; the process executor said "worker process exited with code 0"."""
    from tests.cli_subprocess import recarena

    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.slate_plugins:CallsOsExit"}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    done = recarena("run", str(path), "--executor", executor, "-o", str(out), "-q", timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "arm=popularity/rep=0: arm 'popularity' (recommender 'tests.slate_plugins:" in lines[0]
    assert "os._exit(0) was called inside the cell" in lines[0]
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()


# --------------------------------------------------------- scores and conversational plug-ins
def test_plugin_recommender_infinite_scores_are_refused(tmp_path):
    """Was: +inf scores of shown items passed the slate guard and were logged as inf in the
    exposures table. NaN (no score) on filled slots and anything on empty ones still pass."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.slate_plugins:InfiniteScores"}
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert_refused(
        code,
        stderr,
        "arm=popularity/rep=0: arm 'popularity' (recommender 'tests.slate_plugins:"
        "InfiniteScores'): score inf of item ",
    )
    assert "in slot 0 is not finite (NaN marks a slot without a score) at request user=" in stderr
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()
    doc["arms"][1]["recommender"] = {"type": "tests.slate_plugins:UnscoredAndPaddedWithInf"}
    shutil.rmtree(out)
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert code == 0, stderr


def _conversation_doc(tmp_path: Path, policy: str) -> dict:
    doc = base_doc(tmp_path)
    doc["surface"] = {"type": "conversation", "k": 3, "max_turns": 4}
    # users reject every slate, so conversations reach their later turns
    doc["population"]["conversation"] = {"accept_threshold": 1e6, "patience": 1000.0}
    doc["arms"] = [
        {"name": "asks", "recommender": {"type": "info_gain"}},
        {"name": "plugin", "recommender": {"type": f"tests.slate_plugins:{policy}"}},
    ]
    return doc


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        # was: the bare "KeyError: ...", exit 1
        ("ActRaises", "act raised KeyError: 'no belief for this user'"),
        # were: AttributeError, IndexError and TypeError naming no arm, exit 1
        ("ActAnswersNone", "act returned NoneType, expected a SystemActs at the batch"),
        ("ActCodeSeven", "act code 7 is neither ask (0) nor recommend (1) at request user="),
        ("ActsAsList", "SystemActs.act is a list, expected a numpy.ndarray at the batch"),
        ("TextIsNone", "SystemActs.text is a NoneType, expected a tuple of "),
        # were: runs that finished, asking about "no facet" or showing the same items each turn
        ("AsksAboutNoFacet", "facet -1 on a turn it asked is not one of the catalog's facets"),
        ("RepeatsItself", "was already recommended in this conversation (state.shown)"),
        ("InfiniteConversationScores", "in slot 0 is not finite (NaN marks a slot without"),
    ],
)
def test_plugin_conversational_policy_answers_are_checked(tmp_path, policy, fragment):
    """A conversational plug-in's act is the user's code, as a list recommender's recommend
    is: its failure or a malformed move stops the cell in one line naming the arm and the
    class (exit 2), and the other arm's finished cell stays readable."""
    code, stderr, out = run_doc(tmp_path, _conversation_doc(tmp_path, policy), "local")
    assert_refused(
        code, stderr, f"arm=plugin/rep=0: arm 'plugin' (recommender 'tests.slate_plugins:{policy}')"
    )
    assert fragment in stderr
    assert (out / "arm=asks" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=plugin" / "rep=0" / "_INCOMPLETE").is_file()


def test_conversational_plugin_with_fit_and_act_only_runs(tmp_path):
    """Was: every cell of a conversational plug-in without update() (the contract asks for fit
    and act) failed at its first recommendation with 'update raised AttributeError'."""
    code, stderr, out = run_doc(
        tmp_path, _conversation_doc(tmp_path, "HonestConversation"), "local"
    )
    assert code == 0, stderr
    assert (out / "arm=plugin" / "rep=0" / "manifest.json").is_file()


@pytest.mark.parametrize("seed", [str(2**64), "-1"])
def test_run_seed_outside_the_unsigned_64_bit_range(tmp_path, seed):
    """Was: --seed 2^64 (and a scenario's seed: 2^64) ran, where calibrate and fidelity refuse
    a seed past 2^64-1."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base_doc(tmp_path), sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    code, stderr = cli(
        "run", str(path), "--seed", seed, "--executor", "local", "-o", str(out), "-q"
    )
    assert_refused(code, stderr, "Invalid value for '--seed' / '-s': Input should be")
    assert not out.exists()


def test_scenario_seed_outside_the_unsigned_64_bit_range(tmp_path):
    """Was: validate passed it and run ran it; now both refuse it in one line."""
    doc = base_doc(tmp_path)
    doc["seed"] = 2**64
    refused_everywhere(
        tmp_path, doc, "seed: Input should be less than or equal to 18446744073709551615"
    )


@pytest.mark.parametrize(
    ("wrapper", "base", "fragment"),
    [
        # was: "recommend raised IndexError: index 41 is out of bounds ...", naming only mmr
        ("mmr", "OutOfRange", "is not a published item (catalog has ids 0.."),
        # was: "fit raised KeyError: 'user_id'" naming epsilon_greedy, exit 1
        ("epsilon_greedy", "FitRaises", "fit raised KeyError: 'user_id'"),
    ],
)
def test_plugin_base_inside_a_builtin_wrapper_is_guarded(tmp_path, wrapper, base, fragment):
    """A plug-in named as a wrapper's base is the user's code as much as an arm's own type: its
    answers pass the slate guard and its failures are one line naming it and the wrapper."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {
        "type": wrapper,
        "params": {"base": f"tests.slate_plugins:{base}"},
    }
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert_refused(
        code,
        stderr,
        f"arm=popularity/rep=0: arm 'popularity' (recommender 'tests.slate_plugins:{base}' "
        f"inside '{wrapper}'): ",
    )
    assert fragment in stderr
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("surface", "fragment"),
    [
        # was: a run that finished, showing one item twice on every page
        ("RepeatsTheFirstItem", "appears twice in a slate at request user="),
        # was: "ValueError: operands could not be broadcast together ...", exit 1
        ("ExaminesWholePages", "examine returned shape (1,), expected the slates' (1, 3)"),
        # was: "KeyError: 'row_theme'" naming no surface, exit 1
        ("LayoutRaises", "layout raised KeyError: 'row_theme'"),
    ],
)
def test_plugin_surface_answers_are_checked(tmp_path, surface, fragment):
    """A plug-in surface's layout passes the slate checks and its examine must answer [B, k]
    booleans; a violation is one line naming the arm and the surface, exit 2."""
    doc = base_doc(tmp_path)
    doc["surface"] = {"type": f"tests.plugin_kinds:{surface}"}
    code, stderr, out = run_doc(tmp_path, doc, "local")
    assert_refused(code, stderr, f"arm 'random' (surface 'tests.plugin_kinds:{surface}'): ")
    assert fragment in stderr
