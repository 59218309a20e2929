"""The command line as a user runs it: exit codes, one-line errors, no partial output."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from recarena.recommenders.rerankers import MMR
from recarena.simulator.cli.info_cmds import _params_text, _what_it_is
from recarena.simulator.runner.output_check import estimate_logs
from recarena.simulator.runner.resolve import load_scenario
from tests.cli_subprocess import ROOT, recarena


def _assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (
            lambda d: d["arms"][1]["recommender"].update(type="mff"),
            ["arms[1].recommender.type", "mff"],
        ),
        (lambda d: d.update(colour="red"), ["colour: unknown key"]),
        (lambda d: d["population"].update(users="lots"), ["population.users"]),
        (lambda d: d["catalog"].update(initial_items=-1), ["catalog.initial_items"]),
        (lambda d: d["surface"].update(k=0), ["surface.k"]),
    ],
)
def test_bad_scenarios_fail_cleanly(tmp_path, tiny_doc, write_scenario, mutate, fragments):
    mutate(tiny_doc)
    path = write_scenario(tiny_doc)
    _assert_one_line_error(recarena("validate", str(path)), *fragments)
    out = tmp_path / "should-not-exist"
    _assert_one_line_error(recarena("run", str(path), "--output", str(out)), *fragments)
    assert not out.exists()


def test_malformed_yaml_and_missing_file(tmp_path, write_scenario):
    broken = write_scenario("name: x\narms: [\n")
    _assert_one_line_error(recarena("run", str(broken)), "invalid YAML at line")
    _assert_one_line_error(recarena("run", str(tmp_path / "missing.yaml")), "not found")
    _assert_one_line_error(recarena("compare", str(tmp_path)), "manifest.json")


def test_validate_and_list(write_scenario, tiny_doc):
    done = recarena("validate", str(write_scenario(tiny_doc)))
    assert done.returncode == 0 and done.stdout.startswith("ok: ")
    # the size of the run: the expected impressions (tiny_doc: users x visits x days x pages x
    # slots x cells), so a long run is seen before it starts
    expected = estimate_logs(load_scenario(write_scenario(tiny_doc))).impressions
    assert expected > 0 and f"~{expected:,.0f} impressions expected" in done.stdout
    bigger = recarena("validate", str(write_scenario({**tiny_doc, "replicates": 4})))
    assert f"~{expected * 4 / tiny_doc.get('replicates', 1):,.0f} impressions" in bigger.stdout
    listing = recarena("list")
    assert listing.returncode == 0
    for name in ("random", "popularity", "mf", "epsilon_greedy", "ctr", "creator_gini"):
        assert name in listing.stdout


def test_validate_counts_one_of_a_kind_in_the_singular(write_scenario, tiny_doc):
    """validate's summary said '1 cells', '1 users' and '1 days' (only replicates was fixed)."""
    doc = {
        **tiny_doc,
        "replicates": 1,
        "horizon": {"days": 1},
        "population": {"users": 1},
        "arms": tiny_doc["arms"][:1],
    }
    done = recarena("validate", str(write_scenario(doc)))
    assert done.returncode == 0, done.stderr
    assert ": 1 cell — arms " in done.stdout
    assert "; 1 replicate; 1 user; 1 day; " in done.stdout
    more = recarena("validate", str(write_scenario({**doc, "horizon": {"days": 0.5}})))
    assert "; 0.5 days; " in more.stdout, more.stdout


def test_list_params_shows_the_keys_and_defaults_a_scenario_writes():
    """A re-ranker's ``lambda`` (field ``lambda_``) and a factory default (``base_params``)."""
    shown = _params_text(MMR).split(", ")
    assert "lambda=0.7" in shown and "base_params={}" in shown
    assert not any(part.startswith("lambda_=") for part in shown)
    listing = recarena("list", "--params")
    assert listing.returncode == 0 and "PydanticUndefined" not in listing.stdout


def test_list_params_describes_an_installed_plugin_in_its_own_words():
    """An entry point's row had an empty "what it is": the registry describes built-ins only."""
    from recarena.analysis.metrics import REGISTRY as METRICS

    class Newest:
        """Most recently published items first.

        More lines."""

    assert _what_it_is(Newest) == "Most recently published items first."
    assert _what_it_is(METRICS.load("ctr")) == METRICS.load("ctr").description
    assert _what_it_is(object()) == ""


def test_list_shows_every_plugin_kind_whole_at_the_width_of_a_pipe():
    """`recarena list --params` into a pipe or file (80 columns) cut names and defaults to
    "thompson_line…" and "batch_size=40…"; and the executors, a registry kind with an
    entry-point group like the others (docs/guide/plugins.md), were not listed."""
    from recarena.simulator.runner.executors import EXECUTORS

    listing = recarena("list", "--params")
    assert listing.returncode == 0, listing.stderr
    assert "…" not in listing.stdout
    rows = [line.split("│")[1:3] for line in listing.stdout.splitlines() if "│" in line]
    executors = {name.strip() for kind, name in rows if kind.strip() == "executor"}
    assert executors == set(EXECUTORS.entries()) and executors


def test_run_then_compare(tmp_path, tiny_doc, write_scenario):
    out = tmp_path / "run"
    done = recarena(
        "run", str(write_scenario(tiny_doc)), "--output", str(out), "--replicates", "3", "--quiet"
    )
    assert done.returncode == 0, done.stderr
    assert f"run directory: {out}" in done.stdout
    assert "ctr" in done.stdout and "popularity" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["replicates"] == 3
    assert len(manifest["cells"]) == 6
    resolved = yaml.safe_load((out / "scenario.resolved.yaml").read_text())
    assert resolved["replicates"] == 3 and resolved["population"]["temperature"] > 0
    again = recarena("compare", str(out), "--baseline", "popularity")
    assert again.returncode == 0 and "random" in again.stdout
    bad = recarena("compare", str(out), "--baseline", "nope")
    _assert_one_line_error(bad, "nope")
    taken = recarena("run", str(write_scenario(tiny_doc)), "--output", str(out), "--quiet")
    _assert_one_line_error(taken, "already exists")


def test_llm_options_on_a_scenario_without_llm_are_named_as_ignored(
    tmp_path, tiny_doc, write_scenario
):
    """An option only LLM runs read does nothing here: the run says so rather than keep quiet
    (a user who meant another scenario, or a typo in a script, would otherwise never know)."""
    cache = tmp_path / "calls.sqlite"
    done = recarena(
        "run", str(write_scenario(tiny_doc)), "-o", str(tmp_path / "run"), "--quiet",
        "--llm-cache", str(cache), "--allow-fallback",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "note: --llm-cache, --allow-fallback: ignored, this scenario makes no LLM calls" in (
        done.stderr
    )
    assert not cache.exists()


def test_a_dry_run_says_what_the_run_would_be_and_creates_nothing(
    tmp_path, tiny_doc, write_scenario
):
    """Was: a scenario without LLM users got only "this scenario makes no LLM calls". A dry
    run now prints validate's account of the run (cells, arms, memory, impressions, disk)."""
    tiny_doc["output"] = {"dir": str(tmp_path / "runs")}
    path = write_scenario(tiny_doc)
    done = recarena("run", str(path), "--dry-run")
    assert done.returncode == 0, done.stderr
    checked = recarena("validate", str(path))
    assert checked.returncode == 0, checked.stderr
    account = checked.stdout.strip().removeprefix(f"ok: {path}: ")
    lines = done.stdout.replace("\n", " ").replace("  ", " ")
    assert f"dry run: {path}: {account}" in lines, (done.stdout, account)
    assert "4 cells" in account and "this scenario makes no LLM calls" in done.stdout
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_does_not_calibrate(tmp_path, tiny_doc, write_scenario):
    """Was: a dry run of a scenario whose calibrated population file was missing calibrated
    it (about 30 s for ml-100k) and wrote the file. It now says the run would."""
    population = tmp_path / "calibrated" / "ml-100k.parquet"
    tiny_doc["population"] = {"source": "calibrated", "path": str(population), "dataset": "ml-100k"}
    tiny_doc.pop("catalog")  # the calibrated population's own
    tiny_doc.pop("creators", None)  # and its creators, one per first genre
    tiny_doc["output"] = {"dir": str(tmp_path / "runs")}
    done = recarena("run", str(write_scenario(tiny_doc)), "--dry-run")
    assert done.returncode == 0, done.stderr
    said = done.stdout.replace("\n", "")
    assert f"population.path {population} does not exist yet: the run would first calibrate" in said
    assert "calibrating" not in done.stderr
    assert not (tmp_path / "calibrated").exists() and not (tmp_path / "runs").exists()


# each command with only its required inputs (none of which exists): every option left at
# its default goes through its parser, and the command must get as far as the missing input
ONLY_REQUIRED = {
    "run": ["missing.yaml"],
    "validate": ["missing.yaml"],
    "calibrate": ["missing-dataset", "-o", "population.parquet"],
    "fidelity": ["--dataset", "missing-dataset"],
    "compare": ["missing-run"],
    "ope": ["missing-run", "--target", "arm"],
    "report": ["missing-run"],
    "list": [],
    "schema": [],
}


def test_every_command_accepts_its_defaults(tmp_path, monkeypatch):
    """Was: 'recarena fidelity' without -o was an internal error (exit 1) before it read
    anything, because typer passes an option's default through the option's parser and that
    parser took only strings; every test gave -o, so none saw it."""
    import typer

    from recarena.simulator.cli.app import app
    from tests.cli_in_process import cli_out

    assert sorted(typer.main.get_command(app).commands) == sorted(ONLY_REQUIRED)
    monkeypatch.chdir(tmp_path)
    for command, args in ONLY_REQUIRED.items():
        code, _, stderr = cli_out(command, *args)
        assert "internal error" not in stderr and "Traceback" not in stderr, (command, stderr)
        assert code in (0, 2), (command, code, stderr)
        if args:  # refused for the missing input, by name
            assert "missing" in stderr, (command, stderr)
    assert list(tmp_path.iterdir()) == []  # nothing written by a refused command


def test_ctrl_c_keeps_finished_cells(tmp_path, tiny_doc, write_scenario):
    tiny_doc["replicates"] = 6
    # a popularity cell lasts seconds on any machine, so the signal lands mid-run
    tiny_doc["arms"][1]["recommender"] = {"type": "tests.plugins:PacedPopularity"}
    out = tmp_path / "interrupted"
    path = write_scenario(tiny_doc)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recarena.simulator.cli",
            "run",
            str(path),
            "-o",
            str(out),
            "--quiet",
            "--executor",
            "local",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def recorded_complete() -> bool:
        """The run's manifest lists a finished cell. Was: the cell's own manifest.json, which
        is written just before the run records the cell: a Ctrl-C landing in between left the
        first cell published but marked incomplete, and no cell complete."""
        try:
            cells = json.loads((out / "manifest.json").read_text())["cells"]
        except (OSError, ValueError, KeyError):
            return False
        return any(cell["status"] == "complete" for cell in cells)

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not recorded_complete():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    statuses = {c["status"] for c in manifest["cells"]}
    assert "complete" in statuses and "incomplete" in statuses
    from recarena.analysis.load import load

    logs = load(out)  # the finished cells are readable
    assert logs.exposures.collect().height > 0
    assert logs.incomplete


def test_log_reference_matches_the_schema():
    """docs/reference/logs.md's column tables are generated from simulator/core/logschema.py."""
    from recarena.simulator.core.logschema import markdown_tables

    page = (Path(__file__).resolve().parent.parent / "docs/reference/logs.md").read_text()
    assert markdown_tables("##") in page


@pytest.mark.parametrize("where", ["device", "directory", "under-a-file", "items-sibling-dir"])
def test_calibrate_refuses_an_output_it_cannot_write_before_any_work(tmp_path, where):
    """Was: ``-o /dev/null`` fitted, then created /dev/null.items.parquet beside the device."""
    output = {
        "device": Path("/dev/null"),
        "directory": tmp_path,
        "under-a-file": tmp_path / "plain.txt" / "pop.parquet",
        "items-sibling-dir": tmp_path / "pop.parquet",
    }[where]
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "pop.items.parquet").mkdir()
    done = recarena("calibrate", str(tmp_path / "no-such-dataset"), "-o", str(output))
    _assert_one_line_error(done, "--output")
    assert not list(Path("/dev").glob("null.*"))


def test_plain_progress_lines_for_a_stderr_that_is_not_a_terminal():
    """rich prints nothing until the work ends when stderr is a file; PlainProgress prints a
    task's next tenth at most every `interval` seconds, every task's end, and nothing at all
    for work shorter than `interval`."""
    import io

    from rich.console import Console

    from recarena.simulator.cli.progress import PlainProgress

    now = [0.0]
    sink = io.StringIO()
    progress = PlainProgress(Console(file=sink, width=200), interval=5.0, clock=lambda: now[0])
    quick, slow = progress.add_task("arm=a rep=0"), progress.add_task("arm=b rep=0")
    now[0] = 1.0
    progress.update(quick, completed=1.0)  # ended within the first interval: silent
    progress.update(slow, completed=0.5)  # too soon after the start for a line
    now[0] = 6.0
    progress.update(slow, completed=0.55)
    now[0] = 7.0
    progress.update(slow, completed=0.75)  # a new tenth, but only a second after the last line
    now[0] = 65.0
    progress.update(slow, completed=1.0, description="arm=b rep=0 (99 s)")
    progress.update(slow, completed=1.0)  # done once
    assert sink.getvalue().splitlines() == [
        "[0:06] arm=b rep=0: 55%",
        "[1:05] arm=b rep=0 (99 s): done",
    ]
