"""Round five of the hostile user: what validate passed, or the CLI took, and should not have.

Each case was found by writing scenarios and command lines a careless or hostile user would:
an output path holding a newline, a social graph whose density the memory estimate did not
count, and plug-in modules that fail in ways the registry did not expect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.preflight import estimate
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_in_process import assert_refused, cli, cli_out
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round5", days=0.2)  # some messages name the 0.2 days


# ------------------------------------------------------------------- paths a command makes
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("-o", "out\nrun", "'--output' / '-o'"),
        ("-o", "out\trun", "'--output' / '-o'"),
        ("--llm-cache", "cache\n.sqlite", "'--llm-cache'"),
    ],
)
def test_a_path_to_create_with_a_control_character_is_refused(tmp_path, option, value, named):
    """Was: ``run -o $'out\\nrun'`` made a folder whose name held a newline and printed 'run
    directory:' over two lines, though ``output.dir`` with the same newline is refused."""
    path = write_scenario(tmp_path, base_doc(tmp_path))
    code, stderr = cli("run", str(path), "--executor", "local", "-q", option, str(tmp_path / value))
    assert_refused(code, stderr, named)
    assert "control character" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_report_path_with_a_newline_is_refused(tmp_path):
    code, stderr = cli("report", str(tmp_path), "-o", str(tmp_path / "r\n.html"))
    assert_refused(code, stderr, "control character")


@pytest.mark.parametrize(
    "args",
    [
        ("calibrate", "ml-100k", "-o"),
        ("fidelity", "--arms", "random", "-o"),
        ("fidelity", "--llm", "--llm-cache"),
    ],
)
def test_calibrate_and_fidelity_paths_with_a_control_character_are_refused(tmp_path, args):
    """Was: ``calibrate ml-100k -o $'x\\ny.parquet'`` calibrated for a minute, then wrote four
    files whose names held a newline; the options now parse as ``run -o`` does."""
    code, stderr = cli(*args, str(tmp_path / "x\ny"))
    assert_refused(code, stderr, "control character")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "# a comment\n", "---\n"])
def test_an_empty_scenario_is_named_empty(tmp_path, text):
    """Was: 'a scenario must be a YAML mapping, got NoneType', a Python type name."""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert_refused(*cli("validate", str(path)), "the scenario is empty")


# ---------------------------------------------------------------- the social graph's memory
GIB = 2**30


@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({"type": "barabasi_albert", "m": 10_000}, "~10,000 friends a user"),
        ({"type": "watts_strogatz", "k": 10_000}, "~10,000 friends a user"),
        ({"type": "sbm", "mean_degree": 10_000}, "~10,000 friends a user"),
    ],
)
def test_a_dense_social_graph_counts_in_the_memory_estimate(tmp_path, monkeypatch, graph, fragment):
    """Was: only sbm's mean_degree was counted, at 32 bytes a friend, so barabasi_albert with
    m 2,000 over 4,000 users passed as ~550 MB and peaked at 1.5 GB, and 40,000 users with
    m 20,000 (hundreds of GB in networkx) passed validate."""
    monkeypatch.setattr("recarena.simulator.runner.preflight.machine_memory", lambda: 16 * GIB)
    doc = base_doc(tmp_path)
    doc["population"] = {"users": 20_000, "social": {"graph": graph}}
    refused_everywhere(tmp_path, doc, f"most of it for the social graph ({fragment})")


def test_the_estimate_covers_a_measured_graph(tmp_path):
    """barabasi_albert, m 2,000 over 4,000 users: ~4M edges, a 1.5 GB peak measured for the
    whole cell (0.95 GB of it the graph)."""
    doc = base_doc(tmp_path)
    doc["population"] = {"users": 4000, "social": {"graph": {"type": "barabasi_albert", "m": 2000}}}
    graph = estimate(parse_scenario(doc), workers=1)
    doc["population"].pop("social")
    plain = estimate(parse_scenario(doc), workers=1)
    assert graph.bytes_per_cell - plain.bytes_per_cell >= 0.95 * GIB


# ------------------------------------------------------------------- plug-in modules
PLUGIN_MODULES = {
    "base_exception": (
        "class Stop(BaseException):\n    pass\n\nraise Stop('left early')\n",
        "importing '{module}' raised Stop: left early",
    ),
    "module_getattr": (
        "def __getattr__(name):\n    raise ValueError('no lazy ' + name)\n",
        "looking up 'Recommender' in '{module}' raised ValueError: no lazy Recommender",
    ),
    "class_property": (
        "class Meta(type):\n    @property\n    def fit(cls):\n"
        "        raise RuntimeError('meta')\n\n"
        "class Recommender(metaclass=Meta):\n    pass\n",
        "raised RuntimeError: meta",
    ),
}


@pytest.mark.parametrize("kind", sorted(PLUGIN_MODULES))
def test_a_plugin_module_that_fails_in_an_unexpected_way(tmp_path, monkeypatch, kind):
    """Was: a module raising a BaseException of its own while imported printed a traceback
    (exit 1); a module whose ``__getattr__`` raised other than AttributeError, or a class whose
    attributes raise when the contract is checked, was an internal error (exit 1)."""
    source, fragment = PLUGIN_MODULES[kind]
    module = f"round5_{kind}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{module}:Recommender"}
    refused_everywhere(tmp_path, doc, "arms[1].recommender.type: ")
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert fragment.format(module=module) in stderr


CONSTRUCTORS = """
from recarena.agents.users.rule_user import RuleUserPolicy
from tests.plugins import NewestFirst


class Stop(BaseException):
    pass


class Recommender(NewestFirst):
    def __init__(self, params, ctx):
        raise Stop("not today")


class Policy(RuleUserPolicy):
    def __init__(self, *args, **kwargs):
        raise Stop("not today")
"""


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("arm", "arms[1].recommender (arm 'popularity'): "),
        ("policy", "population.policy: "),
    ],
)
def test_a_constructor_raising_its_own_base_exception(tmp_path, monkeypatch, where, fragment):
    """Was: validate built the plug-in, the constructor raised a class deriving from
    BaseException (not Exception) and the command printed a traceback, exit 1."""
    module = f"round5_ctor_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(CONSTRUCTORS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base_doc(tmp_path)
    if where == "arm":
        doc["arms"][1]["recommender"] = {"type": f"{module}:Recommender"}
    else:
        doc["population"]["policy"] = f"{module}:Policy"
    refused_everywhere(tmp_path, doc, fragment)
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert "cannot be built: Stop: not today" in stderr


# ------------------------------------------------------------------- many arms or metrics
def test_many_arms_are_checked_once_each():
    """Was: each arm's name was counted among all the others (``list.count``), so 20,000 arms
    (a generated scenario of 1 MB) took validate 17 s before it found no duplicate; the same for
    a long metrics list and conversation.target_facets. The names are now counted in one pass
    (``written_twice``); no timing here, only that 60,000 arms are still checked right."""
    from recarena.simulator.core.scenario import validate_document, written_twice

    assert written_twice(["b", "a", "b", "c", "a", "b"]) == ["a", "b"]
    arms = [{"name": f"a{i}", "recommender": {"type": "random"}} for i in range(60_000)]
    validate_document({"name": "many", "arms": arms})
    with pytest.raises(RecarenaError, match="duplicate arm names"):
        validate_document({"name": "many", "arms": [*arms[:10], arms[0]]})


def test_the_ok_line_names_twenty_arms_and_counts_the_rest(tmp_path):
    """Was: validate's ok line listed every arm, one 400 kB line for 20,000 arms."""
    doc = base_doc(tmp_path)
    doc["arms"] = [{"name": f"arm{i}", "recommender": {"type": "random"}} for i in range(25)]
    code, out, err = cli_out("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, err
    assert "arm19 (random) and 5 more;" in out and "arm20" not in out


# ------------------------------------------------------------- an output inside a run
@pytest.fixture
def finished(tmp_path) -> Path:
    doc = base_doc(tmp_path)
    doc["arms"] = doc["arms"][:1]
    path = write_scenario(tmp_path, doc)
    run = tmp_path / "done"
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(run))
    assert code == 0, stderr
    return run


@pytest.mark.parametrize("inside", ["arm=random/rep=0/mine", "arm=random/mine", "mine"])
def test_a_run_inside_another_run_is_refused(finished, tmp_path, inside):
    """Was: made there; a resume of the outer run then deleted a run made inside one of its
    cells' folders with that folder, without a word."""
    before = sorted(p.relative_to(finished) for p in finished.rglob("*"))
    path = tmp_path / "s.yaml"
    args = ("run", str(path), "--executor", "local", "-q", "-o", str(finished / inside))
    assert_refused(*cli(*args), f"is inside the run directory {finished}")
    assert sorted(p.relative_to(finished) for p in finished.rglob("*")) == before


@pytest.mark.parametrize("inside", ["", "arm=random"])
def test_an_output_dir_in_a_run_is_refused_by_validate(finished, tmp_path, inside):
    doc = base_doc(tmp_path)
    doc["output"]["dir"] = str(finished / inside) if inside else str(finished)
    path = write_scenario(tmp_path, doc)
    fragment = f"the run directory {finished}"
    assert_refused(*cli("validate", str(path)), fragment)
    assert_refused(*cli("run", str(path), "--executor", "local", "-q"), fragment)
    assert [p.name for p in finished.iterdir() if p.name.startswith("round5-")] == []


# ------------------------------------------------------------------ the logs' disk estimate
def test_the_disk_estimate_counts_every_column_of_a_carousel(tmp_path):
    """Was: 10 slots a row whatever ``cols``; 2 rows of 60 columns logged 8,280 impressions
    where validate expected 844, so the free-space check asked for a tenth of the room."""
    from recarena.simulator.runner.output_check import estimate_logs

    doc = base_doc(tmp_path)
    doc["catalog"]["initial_items"] = 200
    doc["surface"] = {"type": "carousel", "rows": [{"theme": "personalized"}] * 2, "cols": 60}
    carousel = estimate_logs(parse_scenario(doc)).impressions
    doc["surface"] = {"k": 120}
    assert carousel == pytest.approx(estimate_logs(parse_scenario(doc)).impressions)


def test_the_disk_estimate_knows_a_user_sees_a_page_a_tick(tmp_path):
    """Was: 10^6 visits a day over 20 users for 57 ticks of 300 s were expected to log 209
    million impressions (4.7 GB asked for on disk, a refusal on a small one); they logged 11,400
    an arm, one page a user a tick."""
    from recarena.simulator.runner.output_check import estimate_logs

    doc = base_doc(tmp_path)
    doc["horizon"] = {"days": 0.2, "tick_seconds": 300}
    doc["population"]["visits_per_day"] = 1e6
    logs = estimate_logs(parse_scenario(doc))
    assert logs.impressions <= 2 * 20 * (0.2 * 86_400 / 300) * 10


# ------------------------------------------------------------- a deleted working directory
def test_a_working_directory_deleted_under_the_shell_is_one_line(tmp_path):
    """Was: validate passed, and run made its run directory and died in its first cell with
    torch's "Intel oneMKL FATAL ERROR" (its loader reads the working directory), exit 2 with no
    line of ours and a run left marked running."""
    import subprocess
    import sys

    path = write_scenario(tmp_path, base_doc(tmp_path))
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        "import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "from recarena.simulator.cli import main; main(sys.argv[2:])"
    )
    for args in (["validate", str(path)], ["run", str(path), "-q", "--executor", "local"]):
        gone.mkdir(exist_ok=True)
        command = [sys.executable, "-c", script, str(gone), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert_refused(done.returncode, done.stderr, "the working directory no longer exists")
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------- a sweep every arm overrides
@pytest.mark.parametrize(
    ("own", "sweep", "fragment"),
    [
        ({"surface": {"k": 5}}, {"surface.k": [3, 4]}, "every arm sets its own surface"),
        (
            {"surface": {"k": 5}},
            {"surface": [{"k": 3}, {"k": 4}]},
            "every arm sets its own surface",
        ),
        (
            {"retrain_every_days": 1},
            {"retrain.every_days": [0.05, 0.1]},
            "every arm sets its own retrain",
        ),
    ],
)
def test_a_sweep_of_what_every_arm_overrides_is_refused(tmp_path, own, sweep, fragment):
    """Was: every point ran the same cells under two point numbers (each arm's own surface or
    retrain schedule wins), and the A/B tables of the points differed only by their noise."""
    doc = base_doc(tmp_path)
    for arm in doc["arms"]:
        arm.update(own)
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, f"sweep.{next(iter(sweep))}: {fragment}")
    doc["arms"][0].pop(next(iter(own)))  # one arm reads the scenario's: a real sweep
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------------------ a metric no cell can have
@pytest.mark.parametrize(
    ("metrics", "fragment"),
    [
        (["ctr", "conv_success_rate"], "metrics[1]: conv_success_rate measures conversations"),
        (["retention_d7"], "metrics[0]: retention_d7 needs day 7 to be simulated"),
        (["ctr", "source_bias"], "metrics[1]: source_bias measures AI-generated items"),
        (["cascade_size"], "metrics[0]: cascade_size measures talk between users"),
        (["ctr", "return_1d"], "metrics[1]: return_1d counts sessions that end at least 1 day"),
        (["return_7d"], "metrics[0]: return_7d counts sessions that end at least 7 day"),
        (["entropy_trend"], "metrics[0]: entropy_trend needs users active on 3 different days"),
        (["instruction_heard"], "metrics[0]: instruction_heard measures instructions users"),
        (["taste_drift"], "metrics[0]: taste_drift measures how far tastes move"),
        (["topic_drift_to_popular"], "metrics[0]: topic_drift_to_popular scores creators' rev"),
    ],
)
def test_a_metric_the_scenario_cannot_have_is_refused_before_the_run(tmp_path, metrics, fragment):
    """Was: the run simulated every cell, then warned 'no finished cell has a value' and left
    the metric out of its A/B table (conv_* read the turns table, which only a conversation
    surface writes; retention_d7 is null under 8 days; AI-source metrics without creators.ai
    and cascades without population.social.talk have nothing to measure)."""
    doc = base_doc(tmp_path)
    doc["metrics"] = metrics
    refused_everywhere(tmp_path, doc, fragment)


def test_a_metric_some_arm_or_point_can_have_still_runs(tmp_path):
    doc = base_doc(tmp_path)
    doc["arms"][1]["surface"] = {"type": "conversation"}
    doc["arms"][1]["recommender"] = {"type": "recommend_only"}
    doc["metrics"] = ["conv_success_rate"]
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
    doc = base_doc(tmp_path)
    doc["metrics"] = ["retention_d7"]
    doc["sweep"] = {"horizon.days": [0.2, 9]}  # the point of 9 days has it
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 2.5  # days 0, 1 and 2: three active days are possible
    doc["metrics"] = ["entropy_trend", "return_1d"]
    doc["population"]["instructions"] = {"threshold": 0.5}
    doc["metrics"].append("instruction_heard")
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 0.5
    doc["population"]["taste_drift"] = 0.1
    doc.setdefault("creators", {})["period_days"] = 0.2  # reviews at 0.2 and 0.4 days
    doc["metrics"] = ["taste_drift", "topic_drift_to_popular"]
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------------- daily_rhythm settings nothing reads
@pytest.mark.parametrize(
    ("rhythm", "field", "why"),
    [
        ({"utc_offset_hours": 5}, "utc_offset_hours", "none is given"),
        ({"start_hours_from": "{hours}", "peak_hours": [3.0]}, "peak_hours", "replaces the peaks"),
        ({"start_hours_from": "{hours}", "spread_hours": 3}, "spread_hours", "replaces the peaks"),
        ({"topic_width_hours": 5}, "topic_width_hours", "no topic clock"),
    ],
)
def test_a_daily_rhythm_setting_nothing_reads_is_refused(tmp_path, rhythm, field, why):
    """Was: ignored without a word (the rhythm shifts only a file's timestamps, a file's
    profile replaces the peaks, and the topic clock's shape means nothing at amplitude 0)."""
    hours = tmp_path / "hours.csv"
    hours.write_text("timestamp\n1000\n50000\n90000\n", encoding="utf-8")
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {
        key: str(hours) if value == "{hours}" else value for key, value in rhythm.items()
    }
    refused_everywhere(tmp_path, doc, f"population.daily_rhythm.{field}: read by nothing")
    assert why in cli("validate", str(tmp_path / "s.yaml"))[1]


def test_a_sweep_point_that_reads_the_setting_keeps_it(tmp_path):
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {"topic_width_hours": 5}
    doc["sweep"] = {"population.daily_rhythm.topic_amplitude": [0, 1]}  # an ablation
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------------------ creators who can never leave
def test_leaving_after_low_periods_that_can_never_be_low_is_refused(tmp_path):
    """Was: leave_after_periods with min_exposure 0 (the default) passed validate, and no
    creator ever left: a period is low below min_exposure, and exposure is never below 0."""
    doc = base_doc(tmp_path)
    doc["creators"]["leave_after_periods"] = 2
    doc["creators"]["period_days"] = 0.1  # a review before the horizon: creators can leave
    refused_everywhere(tmp_path, doc, "creators.leave_after_periods: 2 low periods, but with")
    doc["creators"]["min_exposure"] = 5
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr
    doc["creators"]["min_exposure"] = 0
    doc["sweep"] = {"creators.min_exposure": [0, 5]}  # a point where creators can leave
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


def test_creators_walked_by_the_final_review_alone_count(tmp_path):
    """A horizon shorter than creators.period_days still has the final review, which walks and
    logs every creator. Was: the estimate counted 0.5 / 7 reviews of 2M creators (~140k
    creator-periods) and passed; its refusal, when one came, said '0 creator reviews'."""
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 0.5
    doc.setdefault("creators", {})["count"] = 2_000_000
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 2
    assert "creators.count: 1 creator review of up to 2,000,000 creators" in stderr
