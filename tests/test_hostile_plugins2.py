"""Plug-ins from outside the repo that misbehave in ways the earlier plug-in tests did not
cover: methods that never run their body when the engine calls them, and plug-in code that
prints to stdout outside a cell. Each case goes through the CLI as a user's plug-in would."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.cli_in_process import assert_refused, cli_out
from tests.cli_subprocess import recarena
from tests.hostile_plugins2 import SAID
from tests.test_validate_gate import base_doc, refused_everywhere

H = "tests.hostile_plugins2"
TABLES = ("turns.parquet", "exposures.parquet", "interactions.parquet", "sessions.parquet")


def write_doc(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------ methods whose body a plain call never runs
def _with(doc: dict, where: str, name: str) -> dict:
    """``doc`` with the plug-in ``name`` of this module in the place ``where`` names."""
    target = f"{H}:{name}"
    if where == "recommender":
        doc["arms"][1]["recommender"] = {"type": target}
    elif where == "conversation":
        doc["surface"] = {"type": "conversation", "k": 3, "max_turns": 4}
        doc["arms"] = [
            {"name": "asks", "recommender": {"type": "info_gain"}},
            {"name": "popularity", "recommender": {"type": target}},
        ]
    elif where == "population.policy":
        doc["population"]["policy"] = target
    elif where == "creators.strategy":
        doc["creators"]["strategy"] = {"type": target}
    else:
        doc["surface"] = {"type": target, "params": {"k": 3}}
    return doc


@pytest.mark.parametrize(
    ("where", "name", "fragment"),
    [
        ("recommender", "AsyncFit", "arms[1].recommender.type: 'tests.hostile_plugins2:AsyncFit'"),
        ("recommender", "GeneratorFit", "its fit() is a generator function (it yields)"),
        ("recommender", "AsyncUpdate", "its update() is an async function (async def)"),
        ("recommender", "AsyncRecommend", "its recommend() is an async function (async def)"),
        ("conversation", "AsyncAct", "its act() is an async function (async def)"),
        ("population.policy", "AsyncRespond", "population.policy: 'tests.hostile_plugins2:"),
        ("creators.strategy", "GeneratorStrategy", "its update() is a generator function"),
        ("surface", "AsyncLayout", "surface.type: 'tests.hostile_plugins2:AsyncLayout'"),
    ],
)
def test_a_method_that_never_runs_its_body_is_refused_by_validate(tmp_path, where, name, fragment):
    """Was: validate passed an ``async def fit`` (or one that yields), the engine called it,
    got a coroutine (a generator) back and dropped it: the run finished with exit 0 and a
    recommender that never learned, with "RuntimeWarning: coroutine ... was never awaited"
    in the middle of it (an async ``recommend`` failed every cell, with that warning as a
    second line). Now validate refuses it in one line naming the field and the method, and
    run refuses it the same way before writing anything."""
    doc = _with(base_doc(tmp_path), where, name)
    refused_everywhere(tmp_path, doc, fragment)
    _, stderr = cli_out("validate", str(tmp_path / "s.yaml"))[1:]
    assert "runs none of its body" in stderr


def test_an_async_ope_estimator_is_refused(tmp_path):
    """An ``async def`` estimator answered a coroutine, refused only as 'returned object'."""
    doc = base_doc(tmp_path)
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert code == 0, stderr
    code, _, stderr = cli_out(
        "ope", str(out), "--target", "popularity", "--estimators", f"ips,{H}:async_estimator"
    )
    assert_refused(code, stderr, "is an async function (async def)")


# ------------------------------------------------------- plug-in code printing outside a cell
def _loud(tmp_path: Path) -> dict:
    """A scenario whose every plug-in prints when it is built."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{H}:PrintsWhenBuilt"}
    doc["population"]["policy"] = f"{H}:PolicyPrintsWhenBuilt"
    doc["creators"]["strategy"] = {"type": f"{H}:StrategyPrintsWhenBuilt"}
    doc["creators"]["period_days"] = 0.2  # a review before the horizon, where it adapts
    doc["surface"] = {"type": f"{H}:SurfacePrintsWhenBuilt", "params": {"k": 3}}
    return doc


def test_what_plugins_print_while_validated_goes_to_stderr(tmp_path):
    """Was: validate's stdout held each plug-in's print (the surface and creator strategy built
    by the resolve step, the recommender and user policy by the preflight) before its ``ok:``
    line. Stdout is the command's answer; plug-in prints go to stderr, as they do in a cell."""
    path = write_doc(tmp_path, _loud(tmp_path))
    code, stdout, stderr = cli_out("validate", str(path))
    assert code == 0, stderr
    assert stdout.startswith("ok: "), stdout
    assert SAID not in stdout
    for kind in ("recommender", "user policy", "surface", "creator strategy"):
        assert f"{SAID} {kind}" in stderr


def test_what_plugins_print_around_a_run_goes_to_stderr(tmp_path):
    """Was: the same prints came before run's A/B table on stdout, and a plug-in metric's
    print inside compare's table output and report's path; an OPE estimator's inside ope's."""
    doc = _loud(tmp_path)
    doc["metrics"] = ["ctr", f"{H}:LOUD_PAGES"]
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, stdout, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert code == 0, stderr
    assert SAID not in stdout and "A/B vs baseline" in stdout
    assert f"{SAID} recommender" in stderr and f"{SAID} metric" in stderr
    code, stdout, stderr = cli_out("compare", str(out), "--metric", f"{H}:LOUD_PAGES")
    assert code == 0 and SAID not in stdout and f"{SAID} metric" in stderr, stderr
    code, stdout, stderr = cli_out("report", str(out))
    assert code == 0, stderr
    assert stdout.strip() == str(out / "report.html")
    code, stdout, stderr = cli_out(
        "ope", str(out), "--target", "popularity", "--estimators", f"{H}:loud_ips"
    )
    assert code == 0 and SAID not in stdout and f"{SAID} estimator" in stderr, stderr


def test_what_a_plugin_module_prints_when_imported_goes_to_stderr(tmp_path, monkeypatch):
    """Was: a module that prints at import (a banner, a version line) put it on validate's
    stdout, before its answer."""
    module = f"loud_module_{tmp_path.name.replace('-', '_')}"
    source = f"print({SAID!r}, 'module')\nfrom tests.slate_plugins import Honest\n"
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{module}:Honest"}
    code, stdout, stderr = cli_out("validate", str(write_doc(tmp_path, doc)))
    assert code == 0, stderr
    assert stdout.startswith("ok: ") and SAID not in stdout
    assert f"{SAID} module" in stderr


# ---------------------------------------------------------- writing into the engine's arrays
def test_a_user_policy_cannot_write_into_the_sessions_state(tmp_path):
    """Was: ``PageBatch.explore`` and ``fatigue`` were the sessions' own arrays, so a plug-in
    user policy that wrote into ``pages.explore`` turned every session novelty-seeking for the
    rest of the run, and the run finished (exit 0) with logs of another population. They are
    read-only views now, as the requests are: the write fails the cell in one line naming
    the policy and the method."""
    doc = base_doc(tmp_path)
    doc["population"]["policy"] = f"{H}:FlipsExplore"
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert_refused(
        code,
        stderr,
        f"population.policy '{H}:FlipsExplore': respond raised ValueError: assignment "
        "destination is read-only",
    )
    code, _, stderr = cli_out("compare", str(out))
    assert code == 2 and "no finished cells" in stderr, stderr


@pytest.mark.parametrize(
    ("name", "array"), [("ForgetsWhatItShowed", "shown"), ("MovesSessions", "requests.user")]
)
def test_a_conversational_policy_cannot_write_into_the_conversation_state(tmp_path, name, array):
    """Was: a conversation turn handed the policy the sessions' and the dialogue tracker's own
    arrays (a list page hands read-only views), so a policy that cleared ``state.shown`` could
    recommend an item again past the guard's "not recommended earlier" check, and one that
    wrote into ``state.requests.user`` moved sessions to other users; the run finished with
    exit 0. The write now fails the cell in one line naming the arm, the type and ``act``."""
    doc = _with(base_doc(tmp_path), "conversation", name)
    # users reject every slate, so conversations reach the turns after a recommendation
    doc["population"]["conversation"] = {"accept_threshold": 1e6, "patience": 1000.0}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert_refused(
        code,
        stderr,
        f"arm=popularity/rep=0: arm 'popularity' (recommender '{H}:{name}'): act raised "
        "ValueError: assignment destination is read-only",
    )
    assert (out / "arm=asks" / "rep=0" / "manifest.json").is_file(), array


def test_what_a_conversational_policy_was_checked_on_is_what_is_logged(tmp_path):
    """Was: a conversation turn used the policy's own answer arrays after checking them, so a
    policy that reused its buffers and cleared them in ``update`` (after the user answered,
    before the turn was logged) had the turn logged with empty slates it never showed, and
    the tracker forgot what it recommended. The checked answer is copied, as a list
    recommender's is: the logs equal those of the same policy that does not scribble."""
    tables = {}
    for name in ("recommend_only", f"{H}:ReusesItsActBuffer"):
        doc = base_doc(tmp_path)
        doc["surface"] = {"type": "conversation", "k": 3, "max_turns": 4}
        doc["population"]["conversation"] = {"accept_threshold": 1e6, "patience": 1000.0}
        doc["arms"] = [{"name": "crs", "recommender": {"type": name}}]
        path = write_doc(tmp_path, doc)
        out = tmp_path / name.replace(":", "_")
        code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
        assert code == 0, stderr
        cell = out / "arm=crs" / "rep=0"
        tables[name] = {table: pl.read_parquet(cell / table) for table in TABLES}
    honest, scribbler = tables.values()
    assert (honest["turns.parquet"]["items"].list.len() > 0).any()
    for table in TABLES:
        assert scribbler[table].equals(honest[table]), table


def test_what_a_plugin_surface_laid_out_is_what_is_shown_and_logged(tmp_path):
    """Was: the guard checked a plug-in surface's layout and the engine went on with the
    surface's own arrays, so a surface that changed them in ``examine`` (called next) showed
    and logged item 0 in every first slot, a repeat or a consumed item among them, past the
    guard. The checked layout is copied, as a recommender's answer is: the logs equal those
    of the same surface that does not scribble."""
    tables = {}
    for name in ("LaysOutCopies", "ScribblesOnItsLayout"):
        doc = base_doc(tmp_path)
        doc["surface"] = {"type": f"{H}:{name}", "params": {"k": 4}}
        path = write_doc(tmp_path, doc)
        out = tmp_path / name
        code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
        assert code == 0, stderr
        cell = out / "arm=popularity" / "rep=0"
        tables[name] = {table: pl.read_parquet(cell / table) for table in TABLES[1:]}
    honest, scribbler = tables.values()
    for table in TABLES[1:]:
        assert scribbler[table].equals(honest[table]), table


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("UnlocksExclude", "recommend made requests.exclude writeable"),
        ("UnlocksHistory", "fit made history.item writeable"),
    ],
)
def test_a_recommender_that_makes_engine_state_writeable_fails_its_cell(tmp_path, name, where):
    """Was: numpy lets anyone set ``flags.writeable`` back on the read-only views the engine
    hands over, and a recommender that did, then cleared ``requests.exclude``, showed users
    what they had already consumed, passed the guard (which reads the same array) and won
    its A/B (+37% CTR in a small scenario) with exit 0; one that sorted the clicks it was
    fitted on changed the training data of every later fit. The call now fails the cell in
    one line naming the arm, the type, the method and the array."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{H}:{name}"}
    doc["horizon"]["days"] = 1.5  # a refit after the first day, on its clicks
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert_refused(code, stderr, f"arm 'popularity' (recommender '{H}:{name}'): {where}")
    code, stdout, stderr = cli_out("compare", str(out))
    assert code == 0 and "1 cell(s) left out: arm=popularity/rep=0" in stderr, stderr


@pytest.mark.parametrize(
    ("where", "name", "fragment"),
    [
        ("recommender", "ForgetsExclusions", "recommend rebound requests.exclude"),
        ("recommender", "MovesFeedbackToUserZero", "update rebound feedback.requests.user"),
        ("population.policy", "PolicyMovesPagesToUserZero", "respond rebound pages.requests.user"),
        ("surface", "SurfaceForgetsExclusions", "layout rebound requests.exclude"),
    ],
)
def test_a_plugin_that_rebinds_a_field_of_a_frozen_engine_object_fails_its_cell(
    tmp_path, where, name, fragment
):
    """Was: ``object.__setattr__`` gets past ``frozen=True``, so a recommender that rebound
    ``requests.exclude`` to an array of its own showed users what they had consumed, past the
    guard (which reads the same requests), and one that rebound ``requests.user`` moved
    sessions to other users; the run finished with exit 0, or failed its cell on an
    AttributeError naming no plug-in when the new value was no array. The call now fails the
    cell in one line naming the arm (or the policy), the type, the method and the field."""
    doc = _with(base_doc(tmp_path), where, name)
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, _, stderr = cli_out("run", str(path), "--executor", "local", "-q", "-o", str(out))
    who = f"population.policy '{H}:{name}'" if where == "population.policy" else ""
    assert_refused(code, stderr, f"{who}: {fragment}: what the engine hands a plug-in is frozen")
    assert f"{H}:{name}" in stderr


# ------------------------------------------------------------------ params that hold a set
def test_params_that_hold_a_set_are_written_in_one_order(tmp_path):
    """Was: pydantic writes a set as a list in its iteration order, which for text depends on
    PYTHONHASHSEED, so two runs of one scenario wrote scenario.resolved.yaml and the cells'
    manifests with the plug-in's params (and a wrapper's base_params) in different orders.
    Each such list is now sorted, so equal scenarios give equal bytes."""
    doc = base_doc(tmp_path)
    genres = {"genres": [f"genre{i}" for i in (5, 3, 9, 1, 7, 2, 8)], "by_topic": {"a": [4, 2, 9]}}
    doc["arms"] = [
        {"name": "tagged", "recommender": {"type": f"{H}:TaggedByGenre", "params": genres}},
        {
            "name": "wrapped",
            "recommender": {
                "type": "epsilon_greedy",
                "params": {"base": f"{H}:TaggedByGenre", "base_params": genres},
            },
        },
    ]
    path = write_doc(tmp_path, doc)
    written = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        done = recarena(
            "run", str(path), "--executor", "local", "-q", "-o", str(out),
            env={"PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        manifests = [
            json.loads((out / f"arm={arm}" / "rep=0" / "manifest.json").read_text())["recommender"]
            for arm in ("tagged", "wrapped")
        ]
        written.append(((out / "scenario.resolved.yaml").read_bytes(), manifests))
    assert written[0] == written[1]
    resolved = yaml.safe_load(written[0][0])
    params = resolved["arms"][0]["recommender"]["params"]
    assert params["genres"] == sorted(genres["genres"]) and params["by_topic"] == {"a": [2, 4, 9]}
    base_params = resolved["arms"][1]["recommender"]["params"]["base_params"]
    assert base_params["genres"] == sorted(genres["genres"])


# ------------------------------------------------------------- BaseExceptions in a worker
def test_a_keyboard_interrupt_raised_by_a_plugin_in_a_worker_fails_its_cell(tmp_path):
    """Was: a process-executor worker ignores the stop signals, so a KeyboardInterrupt there
    can only come from code in the cell, yet it went past the worker's handler: the worker
    printed its traceback on the terminal and the cell failed as 'worker process ... exited
    with code 1'. It now fails the cell in one line, as a plug-in's other BaseExceptions do
    (exit 1, as for sys.exit in a cell), and the other arm's cell is finished."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{H}:RaisesKeyboardInterrupt"}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, _, stderr = cli_out("run", str(path), "--executor", "process", "-q", "-o", str(out))
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert "arm=popularity/rep=0: KeyboardInterrupt was raised inside the cell" in lines[0]
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()


def test_what_a_plugin_writes_to_descriptor_one_in_a_worker_goes_to_stderr(tmp_path):
    """Was: a process-executor worker kept the run's stdout as its descriptor 1, so what a
    plug-in's C library, a subprocess or ``os.write(1, ...)`` wrote inside a cell landed in
    the middle of the A/B table (``print`` inside a cell went to stderr already)."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{H}:WritesToDescriptorOne"}
    path = write_doc(tmp_path, doc)
    done = recarena("run", str(path), "--executor", "process", "-q", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "A/B vs baseline" in done.stdout and SAID not in done.stdout
    assert f"{SAID} on descriptor 1" in done.stderr


# ------------------------------------------------------------------ odd plug-in names
@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("WritesToDescriptorOneWhenBuilt", "on descriptor 1"),
        ("PrintsThroughTheCLibrary", "by the C library"),
    ],
)
def test_what_a_plugin_writes_to_descriptor_one_in_this_process_goes_to_stderr(
    tmp_path, name, said
):
    """Was: validate's and run's builds of a plug-in, and the cells of ``--executor local``,
    left file descriptor 1 on stdout (``print`` went to stderr already), so what a plug-in's C
    library or ``os.write(1, ...)`` wrote landed before validate's ``ok:`` line and in the
    middle of the A/B table (a process-executor worker had its descriptor 1 on stderr)."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{H}:{name}"}
    path = write_doc(tmp_path, doc)
    done = recarena("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ") and SAID not in done.stdout, done.stdout
    assert f"{SAID} {said} when built" in done.stderr
    done = recarena("run", str(path), "--executor", "local", "-q", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "A/B vs baseline" in done.stdout and SAID not in done.stdout, done.stdout
    assert f"{SAID} {said}\n" in done.stderr and f"{SAID} {said} when built" in done.stderr


def test_what_a_policy_checkpoint_prints_while_validated_goes_to_stderr(tmp_path):
    """Was: validate asks a policy arm's checkpoint about a first page outside any plug-in
    block, so what it printed, and wrote to descriptor 1, came before the ``ok:`` line."""
    doc = base_doc(tmp_path)
    checkpoint = {"checkpoint": f"{H}:loud_policy"}
    doc["arms"][1] = {"name": "policy", "recommender": {"type": "policy", "params": checkpoint}}
    done = recarena("validate", str(write_doc(tmp_path, doc)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ") and SAID not in done.stdout, done.stdout
    assert f"{SAID} policy\n" in done.stderr and f"{SAID} policy on descriptor 1" in done.stderr


def test_a_plugin_module_named_in_another_script_is_importable(tmp_path, monkeypatch):
    """Was: 'über_recs:Honest' was refused as "not an importable path": the check allowed
    only ASCII letters first, while Python imports any identifier (PEP 3131)."""
    module = f"über_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "from tests.slate_plugins import Honest\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{module}:Honest"}
    code, stdout, stderr = cli_out("validate", str(write_doc(tmp_path, doc)))
    assert code == 0 and stdout.startswith("ok: "), stderr


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("plugins/recs.py:Newest", "run with PYTHONPATH=plugins and write 'recs:Newest'"),
        ("./recs.py:Newest", "run with PYTHONPATH=. and write 'recs:Newest'"),
        ("recs.py:Newest", "(a module is named without its .py: write 'recs:Newest')"),
    ],
)
def test_a_plugin_named_by_its_file_says_how_to_name_it(tmp_path, name, hint):
    """Was: a file path read "is not an importable path: write 'package.module:ClassName'
    (absolute, no leading dots)", and 'recs.py:Newest' "No module named 'recs'", with no word
    that a plug-in is named by its module, not its file."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": name}
    refused_everywhere(tmp_path, doc, "arms[1].recommender.type: ")
    _, stderr = cli_out("validate", str(tmp_path / "s.yaml"))[1:]
    assert f"'{name}'" in stderr and hint in stderr


# ----------------------------------------------------------------- a plug-in and Ctrl-C
def test_a_plugin_that_ignores_ctrl_c_does_not_take_it_from_a_local_run(tmp_path):
    """Was: with ``--executor local`` a plug-in that set SIGINT to SIG_IGN in its constructor
    took Ctrl-C from the run: it went on to its end (exit 0). The cell puts the run's stop
    handlers back once its plug-ins are built and at each progress report: the run stops
    with its one line, exit 130, and what finished before stays readable."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{H}:IgnoresCtrlC"}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    done = recarena("run", str(path), "--executor", "local", "-q", "-o", str(out))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 130 and len(lines) == 1, done.stderr
    assert lines[0].startswith("interrupted (SIGINT): finished cells are readable in")
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()
