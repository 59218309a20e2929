"""Hostile sweeps, executor options, shards and resumes: what `recarena run --executor/--workers/
--shards/--seed` and `--resume` accepted and then failed on or got wrong (an internal error after
the run directory was made, a refusal printed under the log estimate and the progress bars, Ray
actors nobody had counted, a resume over edited input files, an option each sweep point
overrode, a folder inside a run taken for a run, two runs started in the same second). Each is
now one line, exit 2, before anything is written, or simply works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner import ray_executor, sharding
from recarena.simulator.runner.executors import CellJob
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.plan import plan_cells
from recarena.simulator.runner.preflight import estimate, preflight
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.stopping import StopSignals
from tests.cli_in_process import assert_refused, cli
from tests.test_hostile_inputs import write_doc
from tests.test_validate_gate import base_doc, refused_everywhere


def popularity_doc(tmp_path: Path, users: int = 20) -> dict:
    """A scenario every cell of which can be sharded (one popularity arm)."""
    doc = base_doc(tmp_path)
    doc["population"] = {"users": users}
    doc["arms"] = [{"name": "pop", "recommender": {"type": "popularity"}}]
    return doc


# ------------------------------------------------------------------------------- --shards
@pytest.mark.parametrize(
    ("sweep", "shards", "fragment"),
    [
        (None, "21", "--shards 21: more shards than the population's 20 users"),
        (None, "99999999999999999999", "use at most --shards 20"),
        ({"population.users": [30, 5]}, "8", "sweep point 1: --shards 8: more shards than"),
    ],
    ids=["one_more", "past_64_bits", "a_sweep_point"],
)
def test_more_shards_than_users_is_refused(tmp_path, sweep, shards, fragment):
    """Was: accepted; every shard builds the whole world, so a shard without users was a Ray
    actor for nothing, and --shards 99999999999999999999 was an internal error from Ray
    (resource quantities at most 10^14) after the run directory had been made."""
    doc = popularity_doc(tmp_path)
    if sweep:
        doc["sweep"] = sweep
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    code, stderr = cli(
        "run", str(path), "--executor", "ray", "--shards", shards, "--force", "-o", str(out)
    )
    assert_refused(code, stderr, fragment)
    assert not out.exists()
    with pytest.raises(RecarenaError, match=fragment.replace("--", "-+")):
        run_experiment(parse_scenario(doc), out, executor="ray", shards=int(shards))
    assert not out.exists()


def test_as_many_shards_as_users_is_accepted():
    scenario = parse_scenario(popularity_doc(Path("unused"), users=4))
    sharding.check_shards(scenario, [], 4)


def test_an_unshardable_arm_is_refused_before_the_estimate_and_the_bars(tmp_path):
    """Was: the refusal came from inside the run, after the 'note: estimated logs' line and
    the progress bars had been printed (three lines and bars for one mistake)."""
    path = write_doc(tmp_path, base_doc(tmp_path))  # a random arm: draws per batch
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "--executor", "ray", "--shards", "2", "-o", str(out))
    assert_refused(code, stderr, "--shards 2: arm 'random' uses recommender 'random'")
    assert not out.exists()


def test_shard_workers_count_in_the_memory_estimate(tmp_path):
    """Was: the estimate counted one cell at a time for a sharded run, but each of its N
    shard workers builds the whole world: --shards 200 on a small machine passed every check
    and started 200 Ray actors."""
    scenario = parse_scenario(popularity_doc(tmp_path, users=300))
    plain, sharded = estimate(scenario, workers=1), estimate(scenario, workers=1, shards=200)
    assert plain.workers == 1 and sharded.workers == 200
    assert sharded.bytes_total == pytest.approx(200 * plain.bytes_total)
    with pytest.raises(RecarenaError, match=r"\(--shards 200: 200 workers each building the"):
        preflight(scenario, shards=200, probe_llm=False)
    preflight(scenario, shards=2, probe_llm=False)


# ------------------------------------------------------------------- a local Ray's CPUs
class _FakeRay:
    """Stands in for ray: records what ``init`` was asked for, then stops the run there."""

    def __init__(self) -> None:
        self.asked: dict = {}

    def is_initialized(self) -> bool:
        return False

    def init(self, **options) -> None:
        self.asked = options
        raise RecarenaError("stopped at ray.init")

    def shutdown(self) -> None:
        pass


@pytest.mark.parametrize("workers", [None, 3, 10**20])
def test_a_local_ray_gets_no_more_cpus_than_cells(tmp_path, monkeypatch, workers):
    """Was: ``--executor ray --workers 99999999999999999999`` asked Ray for that many CPUs;
    Ray refuses past 10^14, an internal error (exit 1) that left a failed run directory. The
    process executor already started at most one worker per cell."""
    fake = _FakeRay()
    monkeypatch.setattr(ray_executor, "import_ray", lambda: fake)
    monkeypatch.setattr(ray_executor, "usable_cpus", lambda: 8)
    cells = plan_cells(parse_scenario(base_doc(tmp_path)))  # two cells
    job = CellJob({None: {}}, str(tmp_path))
    with StopSignals() as stop, pytest.raises(RecarenaError, match="stopped at ray.init"):
        ray_executor.RayExecutor(workers=workers).run(job, cells, _no_events(), stop)
    assert fake.asked["num_cpus"] == min(workers or 8, len(cells))


def test_a_sharded_local_ray_gets_one_cpu_per_shard(tmp_path, monkeypatch):
    fake = _FakeRay()
    monkeypatch.setattr(sharding, "import_ray", lambda: fake)
    cells = plan_cells(parse_scenario(popularity_doc(tmp_path)))
    job = CellJob({None: {}}, str(tmp_path))
    with StopSignals() as stop, pytest.raises(RecarenaError, match="stopped at ray.init"):
        sharding.ShardedRayExecutor(3, workers=10**20).run(job, cells, _no_events(), stop)
    assert fake.asked["num_cpus"] == 3


def _no_events():
    class Events:
        def started(self, *args) -> None: ...
        def progress(self, *args) -> None: ...
        def finished(self, *args) -> None: ...
        def failed(self, *args) -> None: ...

    return Events()


# ------------------------------------------------------------------- --resume and its inputs
HOURS = "userId,timestamp\n1,964982703\n1,964981247\n2,964900000\n"
OTHER_HOURS = "userId,timestamp\n1,964940000\n1,964950000\n2,964960000\n"


def rhythm_doc(tmp_path: Path, hours: str) -> dict:
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {"start_hours_from": hours}
    return doc


def interrupted_run(tmp_path: Path, doc: dict) -> tuple[Path, Path]:
    """``doc`` run to the end, then its last cell removed as a stop would leave it unfinished:
    (scenario file, run directory)."""
    path = write_doc(tmp_path, doc)
    run = tmp_path / "run"
    run_experiment(parse_scenario(doc), run, executor="local")
    last = plan_cells(parse_scenario(doc))[-1]
    (run / last.path / "_INCOMPLETE").write_text("stopped\n", encoding="utf-8")
    return path, run


@pytest.mark.parametrize("sweep", [False, True], ids=["scenario", "sweep_point"])
def test_resume_refuses_an_input_file_that_changed(tmp_path, sweep):
    """Was: resumed without a word, so the rerun cells were simulated from the edited file and
    the kept ones from the old: one run, two worlds, compared as paired arms."""
    hours, other = tmp_path / "hours.csv", tmp_path / "other.csv"
    hours.write_text(HOURS, encoding="utf-8")
    other.write_text(HOURS, encoding="utf-8")
    doc = rhythm_doc(tmp_path, str(hours))
    if sweep:
        doc["sweep"] = {"population.daily_rhythm.start_hours_from": [str(hours), str(other)]}
    path, run = interrupted_run(tmp_path, doc)
    edited = other if sweep else hours
    edited.write_text(OTHER_HOURS, encoding="utf-8")
    before = (run / "manifest.json").read_bytes()
    field = "population.daily_rhythm.start_hours_from"
    where = f"sweep point 1: {field}" if sweep else field
    assert_refused(
        *cli("run", str(path), "--resume", str(run), "--executor", "local", "-q"),
        f"--resume {run}: {where} {edited} changed since the run started",
    )
    assert (run / "manifest.json").read_bytes() == before  # nothing touched
    edited.write_text(HOURS, encoding="utf-8")  # the file as the run read it: resumes
    code, stderr = cli("run", str(path), "--resume", str(run), "--executor", "local", "-q")
    assert code == 0, stderr


def test_resume_from_another_directory_reads_other_files(tmp_path, monkeypatch):
    """A relative path is read from the working directory: resumed from another one holding
    another hours.csv, the scenario compared equal and the rerun cells read the other file."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, text in ((first, HOURS), (second, OTHER_HOURS)):
        folder.mkdir()
        (folder / "hours.csv").write_text(text, encoding="utf-8")
    monkeypatch.chdir(first)
    path, run = interrupted_run(tmp_path, rhythm_doc(tmp_path, "hours.csv"))
    monkeypatch.chdir(second)
    assert_refused(
        *cli("run", str(path), "--resume", str(run), "--executor", "local", "-q"),
        "start_hours_from hours.csv changed since the run started",
    )


# --------------------------------------------------------------- options a sweep overrides
def test_an_option_the_sweep_sets_at_every_point_is_refused(tmp_path):
    """Was: ``--seed 5`` on a scenario sweeping ``seed`` ran the points at seeds 1 and 2 and
    recorded seed 5 in the run manifest, so the option was ignored and the record was false."""
    doc = base_doc(tmp_path)
    doc["sweep"] = {"seed": [1, 2]}
    path = write_doc(tmp_path, doc)
    out = tmp_path / "out"
    args = ("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert_refused(
        *cli(*args, "--seed", "5"), "--seed 5: the scenario sweeps seed (sweep.seed), which sets"
    )
    assert not out.exists()
    code, stderr = cli(*args, "--replicates", "2")  # what the sweep leaves alone still applies
    assert code == 0, stderr


# ------------------------------------------------------- a folder inside a run given as a run
@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory) -> tuple[Path, Path]:
    """A finished two-point sweep: (scenario file, run directory)."""
    root = tmp_path_factory.mktemp("sweep")
    doc = base_doc(root)
    doc["sweep"] = {"population.explore_prob": [0.1, 0.2]}
    run = root / "run"
    run_experiment(parse_scenario(doc), run, executor="local")
    return write_doc(root, doc), run


@pytest.mark.parametrize(
    ("inside", "command", "fragment"),
    [
        ("point=1/arm=random/rep=0", "resume", "a cell of a run (arm 'random'), not a run"),
        ("point=1/arm=random/rep=0", "compare", "a cell of a run (arm 'random'), not a run"),
        ("point=0/arm=popularity/rep=0", "report", "a cell of a run (arm 'popularity')"),
        ("point=1", "compare", "(no manifest.json; it is inside the run"),
        ("point=1", "resume", "(no manifest.json; it is inside the run"),
    ],
)
def test_a_folder_inside_a_run_is_named_with_its_run(sweep_run, inside, command, fragment):
    """Was: a cell's folder passed as the run read the cell's manifest as a run's: --resume
    said the run was 'written in log format 1', compare and report 'no finished cells to
    read'; a sweep point's folder was only 'not a recarena run directory'."""
    path, run = sweep_run
    folder = run / inside
    args = {
        "resume": ("run", str(path), "--resume", str(folder), "--executor", "local", "-q"),
        "compare": ("compare", str(folder)),
        "report": ("report", str(folder), "-o", str(run.parent / "r.html")),
    }[command]
    code, stderr = cli(*args)
    assert_refused(code, stderr, fragment)
    assert f"{run}: pass that" in stderr
    assert not (run.parent / "r.html").exists()


# ------------------------------------------------- two runs of one scenario in the same second
@pytest.mark.parametrize("other", ["running", "finished"])
def test_a_run_named_by_output_dir_takes_the_next_name_when_another_took_it(
    tmp_path, monkeypatch, other
):
    """Two runs of one scenario started in the same second (a script starting seeds in
    parallel) are both named <name>-<stamp>. Was: the one that lost the race failed with 'the
    run directory is in use by process ...' or 'already holds a run', exit 2, for a name the
    user never gave. Now it takes the next free name; a directory given with -o stays refused."""
    from recarena.simulator.runner import experiment
    from recarena.simulator.runner.rundir import RunLock

    real = experiment.new_run_dir
    taken: list[Path] = []
    locks: list[RunLock] = []

    def named_then_taken(scenario, output):
        path = real(scenario, output)
        if not taken:  # another run makes the same name its own, right after we chose it
            taken.append(path)
            path.mkdir(parents=True)
            if other == "running":
                locks.append(RunLock(path).acquire())
            else:
                (path / "manifest.json").write_text('{"cells": []}', encoding="utf-8")
        return path

    monkeypatch.setattr(experiment, "new_run_dir", named_then_taken)
    doc = base_doc(tmp_path)
    path = write_doc(tmp_path, doc)
    try:
        code, stderr = cli("run", str(path), "--executor", "local", "-q")
    finally:
        for lock in locks:
            lock.release()
    assert code == 0, stderr
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and runs[0] == taken[0]
    assert runs[1].name == f"{taken[0].name}-2" and (runs[1] / "manifest.json").is_file()
    left = {"running": [], "finished": ["manifest.json"]}[other]
    assert sorted(p.name for p in taken[0].iterdir()) == left  # the other run's, untouched

    # a directory the user named is theirs to choose: still refused, nothing written
    monkeypatch.setattr(experiment, "new_run_dir", real)
    busy = tmp_path / "busy"
    busy.mkdir()
    with RunLock(busy):
        assert_refused(
            *cli("run", str(path), "--executor", "local", "-q", "-o", str(busy)),
            f"--output {busy}: ",
        )
    assert sorted((tmp_path / "runs").iterdir()) == runs


def test_a_run_that_never_started_removes_its_files_before_it_lets_go_of_the_directory(
    tmp_path, monkeypatch
):
    """A new run whose executor refuses to start removes what it wrote. Was: it released its
    lock first, so another run taking the directory in between (it is empty to the eye and
    unlocked) had its own first files removed with this run's."""
    from recarena.simulator.runner import experiment
    from recarena.simulator.runner.rundir import RunLock

    class Refuses:
        def run(self, job, cells, events, stop) -> None:
            raise RecarenaError("--executor refuses: cannot start")

    monkeypatch.setattr(experiment, "make_executor", lambda *args: Refuses())
    seen: list[list[str]] = []
    release = RunLock.release

    def noting(self) -> None:
        if self._fd is not None:  # what is left in the directory when the lock goes
            seen.append(sorted(p.name for p in self.run_dir.iterdir()))
        release(self)

    monkeypatch.setattr(RunLock, "release", noting)
    run = tmp_path / "run"
    with pytest.raises(RecarenaError, match="cannot start"):
        run_experiment(parse_scenario(base_doc(tmp_path)), run, executor="local")
    assert seen == [[".lock"]]
    assert not run.exists()


@pytest.mark.parametrize("swept", ["llm.model", "llm.temperature"])
def test_a_sweep_over_llm_settings_no_point_reads_is_refused(tmp_path, swept):
    """Was: accepted; without LLM users, creators or recommenders nothing reads ``llm``, so
    each point ran the same cells again under a new point number."""
    doc = base_doc(tmp_path)
    doc["sweep"] = {swept: ["a", "b"] if swept == "llm.model" else [0.1, 0.5]}
    refused_everywhere(tmp_path, doc, f"sweep.{swept}: no point uses an LLM")


@pytest.mark.parametrize("executor", ["local", "process"])
def test_workers_where_nothing_reads_them_are_said_to_be_ignored(tmp_path, executor):
    """Was: ``--executor local --workers 4`` ran one cell after another without a word, as if
    four had been asked for and given."""
    path = write_doc(tmp_path, base_doc(tmp_path))
    out = tmp_path / "out"
    args = ("run", str(path), "--executor", executor, "--workers", "4", "-q", "-o", str(out))
    code, stderr = cli(*args)
    assert code == 0, stderr
    note = "note: --workers 4: ignored, --executor local runs one cell after another"
    assert (note in stderr) == (executor == "local"), stderr


# ------------------------------------------------------------------ a sweep of many cells
def test_the_run_manifest_is_not_rewritten_at_a_cost_that_grows_with_the_cells(
    tmp_path, monkeypatch
):
    """The run manifest lists every cell, so each rewrite costs in proportion to the cells,
    and it was rewritten three times per cell: at 100,000 cells (what the preflight allows)
    a write took 2 s, 170 hours of writing in all. Here each write is made to take one second
    of the run's clock while the cells take none: the cell events' writes wait (a reader
    reconciles with the cells' markers, as after kill -9) and the run's end is written whole."""
    import time as real_time
    from types import SimpleNamespace

    from recarena.simulator.runner import experiment

    clock = [0.0]
    written: list[str] = []
    write_json = experiment.write_json

    def slow_write(path, payload) -> None:
        write_json(path, payload)
        if path.name == "manifest.json" and path.parent == run:
            written.append(payload["status"])
            clock[0] += 1.0

    monkeypatch.setattr(experiment, "write_json", slow_write)
    fake_time = SimpleNamespace(monotonic=lambda: clock[0], perf_counter=real_time.perf_counter)
    monkeypatch.setattr(experiment, "time", fake_time)
    doc = base_doc(tmp_path)
    doc["sweep"] = {"population.explore_prob": [0.1, 0.2, 0.3, 0.4]}  # 8 cells
    run = tmp_path / "run"
    run_experiment(parse_scenario(doc), run, executor="local")
    assert len(written) <= 4, written  # was 3 per cell: 19
    assert written[-1] == "complete"
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert [c["status"] for c in manifest["cells"]] == ["complete"] * 8


class _Bars:
    """Stands in for the progress bars: how many are shown at once, and the last values."""

    def __init__(self) -> None:
        self.shown: dict[int, list] = {}
        self.most = 0
        self.added = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float = 1.0) -> int:
        self.added += 1
        self.shown[self.added] = [description, total, 0.0]
        self.most = max(self.most, len(self.shown))
        return self.added

    def remove_task(self, task: int) -> None:
        del self.shown[task]

    def update(self, task: int, *, completed: float = 0.0) -> None:
        self.shown[task][2] = completed


@pytest.mark.parametrize(("points", "most"), [(2, 4), (10, 2)])
def test_a_sweep_of_many_cells_shows_a_bounded_number_of_bars(tmp_path, monkeypatch, points, most):
    """Was: one bar per cell, all redrawn ten times a second; a redraw of 2,000 bars took 1.2 s
    (20,000: 10 s), so a large sweep's own progress display starved it. A run of up to
    MAX_BARS cells keeps its bar per cell; a larger one shows a bar for all cells and one per
    running cell (one at a time with --executor local)."""
    from recarena.simulator.cli import scenario_cmds

    bars = _Bars()
    monkeypatch.setattr(scenario_cmds, "progress_bars", lambda quiet: bars)
    doc = base_doc(tmp_path)
    doc["sweep"] = {"population.explore_prob": [round(0.05 * (i + 1), 2) for i in range(points)]}
    path = write_doc(tmp_path, doc)
    code, stderr = cli("run", str(path), "--executor", "local", "-o", str(tmp_path / "out"))
    assert code == 0, stderr
    assert bars.most == most
    if points == 10:  # the bar for all cells is the one left, full
        assert list(bars.shown.values()) == [["20 cells", 20, 20]]
    else:
        assert [v[2] for v in bars.shown.values()] == [1.0] * 4
