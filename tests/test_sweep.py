"""Parameter sweeps, the Ray executor and resuming an interrupted run."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from recarena.analysis.compare import compare
from recarena.analysis.load import load
from recarena.analysis.metrics import compute_metrics
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import INCOMPLETE, plan_cells, run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.sweep import expand_sweep, parse_path
from tests.cli_subprocess import recarena
from tests.conftest import TINY

# 2 points x 2 arms x 1 replicate, one simulated day: a couple of seconds per run
SWEEP = copy.deepcopy(TINY) | {
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 120},
    "catalog": {"initial_items": 200, "topics": 8},
    "population": {"users": 120},
    "sweep": {"population.explore_prob": [0.1, 0.6]},
}


def _doc(**sweep) -> dict:
    doc = copy.deepcopy(TINY)
    doc["sweep"] = sweep
    return doc


def _tables(run: Path) -> dict[str, bytes]:
    """Every Parquet file of a run by relative path, as bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*.parquet"))}


# ------------------------------------------------------------------ grid expansion
def test_grid_is_the_product_with_the_last_path_fastest():
    doc = _doc(
        **{
            "population.explore_prob": [0.1, 0.3],
            "arms[popularity].recommender.params.half_life_days": [None, 2.0],
        }
    )
    points = expand_sweep(parse_scenario(doc))
    assert [tuple(p.params.values()) for p in points] == [
        (0.1, None),
        (0.1, 2.0),
        (0.3, None),
        (0.3, 2.0),
    ]
    third = points[3].scenario
    assert third.population.explore_prob == 0.3
    assert third.arms[1].recommender.params == {"half_life_days": 2.0}
    assert third.arms[0].recommender.params == {}
    assert third.sweep is None and "sweep" not in points[3].doc()
    # every other field is the base scenario's
    assert third.population.users == 300 and third.seed == 3

    cells = plan_cells(parse_scenario(doc))
    assert len(cells) == 4 * 2 * 2  # points x replicates x arms
    assert [c.path for c in cells[:3]] == [
        "point=0/arm=random/rep=0",
        "point=0/arm=popularity/rep=0",
        "point=0/arm=random/rep=1",
    ]
    assert cells[-1].path == "point=3/arm=popularity/rep=1"


def test_a_scenario_without_sweep_keeps_its_layout_and_dump():
    scenario = parse_scenario(copy.deepcopy(TINY))
    assert "sweep" not in scenario.model_dump(mode="json")
    assert [c.path for c in plan_cells(scenario)][:2] == [
        "arm=random/rep=0",
        "arm=popularity/rep=0",
    ]


def test_paths_are_parsed_into_keys_and_indices():
    assert parse_path("arms[1].recommender.params.dim") == [
        "arms",
        1,
        "recommender",
        "params",
        "dim",
    ]
    assert parse_path("arms[mf].surface.k") == ["arms", "mf", "surface", "k"]


@pytest.mark.parametrize(
    ("sweep", "fragments"),
    [
        (
            {"population.explore_prb": [0.1]},
            ["sweep.population.explore_prb:", "no key", "did you mean 'explore_prob'?"],
        ),
        ({"arms[7].recommender.type": ["random"]}, ["sweep.arms[7].recommender.type:", "[7]"]),
        ({"arms[mf].recommender.type": ["random"]}, ["sweep.arms[mf]", "'mf'", "popularity"]),
        ({"population..users": [10]}, ["sweep.population..users:", "not a path"]),
        ({"replicates": [1, 2]}, ["sweep.replicates:", "cannot be swept"]),
        ({"arms[0].name": ["x"]}, ["sweep.arms[0].name:", "cannot be swept"]),
        ({"population.users.count": [1]}, ["sweep.population.users.count:", "no fields"]),
        ({"population.explore_prob": [0.2, 1.5]}, ["sweep.population.explore_prob:", "1.5"]),
        (
            {"arms[1].recommender.params.half_life": [1.0]},
            ["sweep.arms[1].recommender.params.half_life:", "half_life_days"],
        ),
        (  # was "population has no key 'conversation'", though it has one: it is unset
            {"population.conversation.patience": [1.0, 2.0]},
            ["sweep.population.conversation.patience: population.conversation is not set"],
        ),
    ],
)
def test_bad_sweeps_name_the_path(sweep, fragments):
    with pytest.raises(RecarenaError) as caught:
        plan_cells(parse_scenario(_doc(**sweep)))
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_field_the_dump_leaves_out_while_unset_can_be_swept():
    """population.taste_drift at 0 and rating_thresholds at null are left out of the resolved
    scenario (so it dumps as before they existed); sweeping them was refused as "population
    has no key 'taste_drift'"."""
    doc = _doc(
        **{
            "population.taste_drift": [0.1, 0.2],
            "population.rating_thresholds": [[-1, 0, 1, 2], [-2, 0, 1, 2]],
        }
    )
    points = [p.scenario.population for p in expand_sweep(parse_scenario(doc))]
    assert [(p.taste_drift, p.rating_thresholds[0]) for p in points] == [
        (0.1, -1.0),
        (0.1, -2.0),
        (0.2, -1.0),
        (0.2, -2.0),
    ]


def test_an_empty_value_list_is_a_schema_error():
    with pytest.raises(RecarenaError, match=r"sweep\.population\.explore_prob: List should have"):
        parse_scenario(_doc(**{"population.explore_prob": []}))


# ------------------------------------------------------------------ executors
@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("sweep") / "local"
    run_experiment(parse_scenario(copy.deepcopy(SWEEP)), run, executor="local")
    return run


def test_a_point_logs_exactly_what_a_plain_run_of_its_values_logs(local_sweep, tmp_path):
    plain = copy.deepcopy(SWEEP)
    del plain["sweep"]
    plain["population"]["explore_prob"] = 0.6
    run_experiment(parse_scenario(plain), tmp_path / "plain", executor="local")
    swept = {k.removeprefix("point=1/"): v for k, v in _tables(local_sweep).items()}
    assert _tables(tmp_path / "plain").items() <= swept.items()
    # and the two points differ: the swept value reaches the simulation
    first, second = (
        pl.read_parquet(local_sweep / f"point={i}/arm=random/rep=0/sessions.parquet")
        for i in (0, 1)
    )
    assert first["explore"].mean() < 0.3 < second["explore"].mean()


def test_the_manifest_maps_points_to_values_and_load_reads_one_point(local_sweep):
    manifest = json.loads((local_sweep / "manifest.json").read_text())
    assert manifest["sweep"]["points"] == [
        {"point": 0, "path": "point=0", "params": {"population.explore_prob": 0.1}},
        {"point": 1, "path": "point=1", "params": {"population.explore_prob": 0.6}},
    ]
    assert [c["point"] for c in manifest["cells"]] == [0, 0, 1, 1]
    assert "explore_prob: 0.6" in (local_sweep / "point=1/scenario.resolved.yaml").read_text()

    everything = load(local_sweep)
    sessions = everything.sessions.collect()
    assert sessions.columns[:3] == ["point", "arm", "rep"]
    assert sorted(sessions["point"].unique().to_list()) == [0, 1]

    one = load(local_sweep, point=1)
    expected = pl.read_parquet(local_sweep / "point=1/arm=popularity/rep=0/exposures.parquet")
    exposures = one.exposures.filter(pl.col("arm") == "popularity").collect()
    assert exposures.drop("point", "arm", "rep").equals(expected)
    assert one.point == 1 and set(one.exposures.collect()["point"].unique()) == {1}
    table = compare(one, metrics=["ctr"])
    ctr = expected["clicked"].mean()
    assert table.filter(pl.col("arm") == "popularity")["mean"][0] == pytest.approx(ctr)
    with pytest.raises(RecarenaError, match="no sweep point 5; points: 0, 1"):
        load(local_sweep, point=5)


@pytest.fixture
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_executor_writes_the_same_tables_as_local(local_sweep, tmp_path, ray_session):
    reports: dict[str, float] = {}

    def on_progress(cell, fraction: float) -> None:
        reports[cell.path] = max(fraction, reports.get(cell.path, 0.0))

    scenario = parse_scenario(copy.deepcopy(SWEEP))
    result = run_experiment(scenario, tmp_path / "ray", executor="ray", on_progress=on_progress)
    assert ray_session.is_initialized()  # a session the caller started is left running
    assert result.manifest["executor"] == "ray" and result.manifest["status"] == "complete"
    assert reports == {c.path: 1.0 for c in plan_cells(scenario)}
    local, remote = _tables(local_sweep), _tables(tmp_path / "ray")
    cells = 2 * 2
    assert len(local) >= cells * 6 and len(local) % cells == 0 and local == remote


# ------------------------------------------------------------------ resume
def _stamp(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


def test_resume_reruns_only_unfinished_cells(local_sweep, tmp_path):
    run = tmp_path / "run"
    scenario = parse_scenario(copy.deepcopy(SWEEP))
    run_experiment(scenario, run, executor="local")
    original = _tables(run)
    assert original == _tables(local_sweep)
    # one cell killed half-way (marker left), one cell lost altogether
    (run / "point=1/arm=random/rep=0" / INCOMPLETE).write_text("this cell did not finish\n")
    (run / "point=1/arm=random/rep=0/exposures.parquet").unlink()
    for f in (run / "point=0/arm=popularity/rep=0").iterdir():
        f.unlink()
    (run / "point=0/arm=popularity/rep=0").rmdir()
    kept = _stamp(run / "point=0/arm=random") | _stamp(run / "point=1/arm=popularity")

    result = run_experiment(scenario, run, executor="local", resume=True)

    assert _stamp(run / "point=0/arm=random") | _stamp(run / "point=1/arm=popularity") == kept
    assert _tables(run) == original
    assert not (run / "point=1/arm=random/rep=0" / INCOMPLETE).exists()
    assert result.manifest["resumed_cells"] == 2 and len(result.manifest["resumed_at"]) == 1
    assert [c["status"] for c in result.manifest["cells"]] == ["complete"] * 4

    again = run_experiment(scenario, run, executor="local", resume=True)  # nothing left to do
    assert again.manifest["resumed_cells"] == 0 and _tables(run) == original


def test_resume_refuses_a_different_scenario(local_sweep):
    changed = copy.deepcopy(SWEEP)
    changed["population"]["users"] = 121
    with pytest.raises(RecarenaError, match=r"--resume .*differs.*at population\.users"):
        run_experiment(parse_scenario(changed), local_sweep, executor="local", resume=True)


def test_cli_rejects_bad_executor_options(tmp_path, monkeypatch, capsys):
    from recarena.simulator.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(SWEEP))
    for args, message in [
        (("--executor", "dask"), "error: --executor: unknown 'dask'; known: local, process, ray"),
        (("--address", "auto"), "error: --address: only for --executor ray"),
        (("--resume", str(tmp_path)), f"error: --resume {tmp_path}: not a recarena run"),
        (("--resume", str(tmp_path), "-o", "x"), "error: --resume: the run directory"),
        # nothing listens on port 1: refused before the run directory exists, not after
        (
            ("--executor", "ray", "--address", "ray://127.0.0.1:1", "-o", str(tmp_path / "r")),
            "error: --address ray://127.0.0.1:1: no Ray cluster answers there",
        ),
        (
            ("--executor", "ray", "--shards", "2", "--address", "127.0.0.1:1", "-o", "r2"),
            "error: --address 127.0.0.1:1: no Ray cluster answers there",
        ),
    ]:
        monkeypatch.setattr(sys, "argv", ["recarena", "run", str(path), *args])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 2
        assert capsys.readouterr().err.startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written


@pytest.mark.parametrize(
    ("address", "message"),
    [
        # Ray's own errors for these came after the run directory was made (http:// was an
        # internal error, exit 1; ray://host without a port waited for a client timeout)
        ("garbage", "error: --address garbage: no port; write auto, local, host:port"),
        ("ray://garbage", "error: --address ray://garbage: no port;"),
        ("127.0.0.1:abc", "error: --address 127.0.0.1:abc: port 'abc' is not a number"),
        ("http://127.0.0.1:1", "error: --address http://127.0.0.1:1: unknown scheme 'http://'"),
    ],
)
def test_an_address_ray_cannot_use_is_refused_before_the_run_directory(
    tmp_path, monkeypatch, capsys, address, message
):
    from recarena.simulator.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(SWEEP))
    args = ["run", str(path), "--executor", "ray", "--address", address, "-o", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", ["recarena", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_an_address_where_something_else_listens_is_refused(tmp_path, monkeypatch, capsys):
    """A port that accepts connections but does not speak gRPC (a web server, a typo of another
    service's port): Ray retried it for minutes, a log line every 7 s, with the run directory
    already made."""
    import socket
    import threading

    from recarena.simulator.cli import main

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(64)
            connection.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(SWEEP))
    address = f"127.0.0.1:{port}"
    args = ["run", str(path), "--executor", "ray", "--address", address, "-o", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", ["recarena", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    thread.join(5)
    listener.close()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"error: --address {address}: something answers there, but not a Ray cluster (Ray "
        "speaks gRPC; this port does not)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_an_executor_that_cannot_start_leaves_no_run_behind(tmp_path, monkeypatch, capsys):
    """--address auto with no Ray running (or any executor that refuses to start before a cell
    has started) is a user's mistake: no manifest of a 'failed' run with nothing in it is left,
    and folders made for the run are removed."""
    from recarena.simulator.cli import main
    from recarena.simulator.runner import ray_executor

    def refuse(self, ray) -> None:
        raise RecarenaError("--address auto: no Ray cluster there: nothing running")

    monkeypatch.setattr(ray_executor.RayExecutor, "_init", refuse)
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(SWEEP))
    (tmp_path / "empty").mkdir()
    for output, left in [("new/deeper/r", ["empty", "s.yaml"]), ("empty", ["empty", "s.yaml"])]:
        args = ["run", str(path), "--executor", "ray", "-o", str(tmp_path / output)]
        monkeypatch.setattr(sys, "argv", ["recarena", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 2
        lines = capsys.readouterr().err.splitlines()  # after the estimate's note
        assert lines[-1] == "error: --address auto: no Ray cluster there: nothing running"
        assert not any(line.startswith("Traceback") for line in lines)
        assert sorted(p.name for p in tmp_path.iterdir()) == left
        assert not any((tmp_path / "empty").iterdir())  # a given empty folder stays, empty


def test_validate_expands_a_grid_once_and_walks_each_value_once(tmp_path, monkeypatch):
    """Was: validate of a 10,000-point grid took ~32 s: the grid was expanded three times (the
    preflight, the log estimate, the cell count), every point walked its whole document for
    NaN, lone surrogates and yes/no numbers, and inspected each plug-in class's signature again.
    Now one expansion; the walks run on the scenario and on each swept value alone (a point is
    those and nothing else), and a class's contract is checked once."""
    from recarena.simulator.core import registry, yaml_safe
    from recarena.simulator.runner import sweep
    from tests.cli_in_process import cli

    calls = {"expand": 0, "walk": 0, "signature": 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(sweep, "_expand", counting("expand", sweep._expand))
    monkeypatch.setattr(yaml_safe, "surrogate_path", counting("walk", yaml_safe.surrogate_path))
    monkeypatch.setattr(
        registry, "check_signature", counting("signature", registry.check_signature)
    )
    values = {"population.explore_prob": [0.1, 0.2, 0.3, 0.4, 0.5], "seed": [1, 2, 3, 4]}
    doc = _doc(**values) | {"output": {"dir": str(tmp_path / "runs")}}
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    assert calls["expand"] == 1
    assert calls["walk"] <= 1 + 5 + 4  # the scenario, then each value alone; not 20 points
    assert calls["signature"] <= 2  # random and popularity at most once each, not per point


def test_sweeping_a_recommender_type_starts_from_that_types_defaults():
    """Was refused: the base arm's params, filled in for its own type, were unknown keys of the
    swept one ("half_life_days: unknown key"). A point of the base's own type keeps its params."""
    doc = _doc(**{"arms[popularity].recommender.type": ["popularity", "random", "mf"]})
    doc["arms"][1]["recommender"]["params"] = {"half_life_days": 3.0}
    points = expand_sweep(parse_scenario(doc))
    arms = [p.scenario.arms[1].recommender for p in points]
    assert [a.type for a in arms] == ["popularity", "random", "mf"]
    assert arms[0].params == {"half_life_days": 3.0}
    assert "half_life_days" not in arms[1].params and "half_life_days" not in arms[2].params
    assert (
        arms[2].params
        == parse_scenario(_doc() | {"arms": [{"name": "m", "recommender": {"type": "mf"}}]})
        .arms[0]
        .recommender.params
    )


def test_a_sweep_names_a_recommender_param_as_the_arms_write_it(tmp_path):
    """mmr's ``lambda`` is the alias of its field ``lambda_``: arms write ``lambda``, but a
    sweep path had to name the field (``params.lambda`` was refused: "has no key 'lambda'; did
    you mean 'lambda_'?"). Both spellings now name the field, and each point runs its value."""
    doc = copy.deepcopy(SWEEP)
    doc["arms"] = [
        {"name": "popularity", "recommender": {"type": "popularity"}},
        {"name": "mmr", "recommender": {"type": "mmr", "params": {"base": "popularity"}}},
    ]
    doc["sweep"] = {"arms[mmr].recommender.params.lambda": [0.0, 1.0]}
    scenario = tmp_path / "mmr.yaml"
    scenario.write_text(json.dumps(doc))
    run = tmp_path / "run"
    done = recarena("run", str(scenario), "-o", str(run), "--executor", "local", "-q")
    assert done.returncode == 0, done.stderr
    assert "point 0: arms[mmr].recommender.params.lambda=0.0" in done.stdout
    points = [load(run, point=i) for i in (0, 1)]
    assert [p.scenario["arms"][1]["recommender"]["params"]["lambda_"] for p in points] == [0, 1]
    # the value reaches the simulation: popularity's cells do not read it, mmr's do, and
    # lambda 0 (diversity only) serves more diverse pages than lambda 1 (relevance only)
    first, second = (_tables(run / f"point={i}") for i in (0, 1))
    popularity, mmr = "arm=popularity/rep=0/exposures.parquet", "arm=mmr/rep=0/exposures.parquet"
    assert first[popularity] == second[popularity] and first[mmr] != second[mmr]
    diversity = [
        compute_metrics(p, ["intra_list_diversity"]).filter(arm="mmr")["value"].item()
        for p in points
    ]
    assert diversity[0] > diversity[1]
    # the field name still works, and gives the same points
    by_field = copy.deepcopy(doc)
    by_field["sweep"] = {"arms[mmr].recommender.params.lambda_": [0.0, 1.0]}
    assert [p.scenario for p in expand_sweep(parse_scenario(by_field))] == [
        p.scenario for p in expand_sweep(parse_scenario(doc))
    ]
    # and the two spellings are one field
    both = copy.deepcopy(doc)
    both["sweep"]["arms[mmr].recommender.params.lambda_"] = [0.5]
    with pytest.raises(RecarenaError, match="the same field is swept twice"):
        expand_sweep(parse_scenario(both))
