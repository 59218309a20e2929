"""Round seven of the hostile user: numbers at their edges in every field, features combined,
run options, damaged run directories and plug-ins that misbehave in new ways.

Each case is one line, exit code 2, naming the field, and validate says it before run does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.cli_in_process import assert_refused, cli
from tests.cli_subprocess import ROOT
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario

GIB = 2**30


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round7", days=0.2)


# ------------------------------------------------------------------ an sbm graph's blocks
@pytest.mark.parametrize("blocks", [21, 2**63 - 1])
def test_sbm_blocks_past_the_users_are_refused(tmp_path, blocks):
    """Was: validate ok, then every cell failed with "ValueError: array is too big" (users per
    block were counted over every block id up to 2^63 - 1); 21 blocks over 20 users ran a graph
    of at most 20 blocks without a word."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": {"type": "sbm", "blocks": blocks}}
    refused_everywhere(
        tmp_path,
        doc,
        f"population.social.graph.blocks: {blocks} blocks (sbm) need at least {blocks} users; "
        "population.users is 20",
    )


def test_sbm_block_pairs_count_in_the_memory_estimate(tmp_path, monkeypatch):
    """Was: 30,000 blocks over 30,000 users passed validate; networkx's table of block pairs
    alone is ~50 bytes a pair, ~45 GB."""
    monkeypatch.setattr("recarena.simulator.runner.preflight.machine_memory", lambda: 16 * GIB)
    doc = base_doc(tmp_path)
    doc["population"] = {"users": 30_000, "social": {"graph": {"type": "sbm", "blocks": 30_000}}}
    refused_everywhere(tmp_path, doc, "most of it for the sbm graph's 30,000 x 30,000 block pairs")


# ------------------------------------------------- a plug-in's numbers past float32's range
def _run_plugin(tmp_path: Path, plugin: str) -> tuple[int, str, Path]:
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"tests.hostile_plugins7:{plugin}"}
    out = tmp_path / "out"
    code, stderr = cli(
        "run", str(write_scenario(tmp_path, doc)), "--executor", "local", "-q", "-o", str(out)
    )
    return code, stderr, out


@pytest.mark.parametrize(
    ("plugin", "named"),
    [
        (
            "ScoresPastFloat32",
            "score 1e+300 (inf in the engine's float32) of item ",
        ),
        (
            "PropensityUnderFloat32",
            "propensity 1e-300 (0.0 in the engine's float32) in slot 0 is not in (0, 1]",
        ),
    ],
)
def test_a_plugin_answer_is_checked_as_it_is_logged(tmp_path, plugin, named):
    """Was: exit 0, with scores of inf and propensities of 0.0 in the exposures table (float32),
    values the slate guard refuses: it had checked the float64 answer."""
    code, stderr, out = _run_plugin(tmp_path, plugin)
    assert_refused(
        code, stderr, f"arm 'popularity' (recommender 'tests.hostile_plugins7:{plugin}')"
    )
    assert named in stderr
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()


def test_float64_answers_within_float32_still_run(tmp_path):
    code, stderr, out = _run_plugin(tmp_path, "Float64Answers")
    assert code == 0, stderr
    shown = pl.read_parquet(out / "arm=popularity" / "rep=0" / "exposures.parquet")
    assert shown["score"].is_finite().all() and (shown["propensity"] > 0).all()


# ------------------------------------- a plug-in's KeyboardInterrupt in the run's own process
def test_a_keyboard_interrupt_raised_by_a_plugin_in_a_local_run_fails_its_cell(tmp_path):
    """Was (--executor local): exit 130, the run marked interrupted and a line pointing to
    --resume, which only ran into it again; no stop signal had arrived. It now fails its cell
    as it does in a process worker (exit 1), and the other arm's cell is finished."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.hostile_plugins2:RaisesKeyboardInterrupt"}
    out = tmp_path / "out"
    code, stderr = cli(
        "run", str(write_scenario(tmp_path, doc)), "--executor", "local", "-q", "-o", str(out)
    )
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1, stderr
    assert "arm=popularity/rep=0: KeyboardInterrupt was raised inside the cell" in lines[0]
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()
    assert json.loads((out / "manifest.json").read_text())["status"] != "interrupted"


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        ("UtilityPastFloat32", "utility 1e+300 (inf in the engine's float32) of filled slot 0"),
        ("FatiguePastFloat32", "fatigue 1e+300 (inf in the engine's float32) is not finite"),
        ("ValuePastFloat32", "extra['value'] 1e+300 (inf in the engine's float32) is not finite"),
        ("NegativeFatigue", "fatigue -1e+30 is negative"),
    ],
)
def test_a_plugin_user_policys_numbers_are_checked_as_the_engine_holds_them(
    tmp_path, policy, named
):
    """Was: exit 0 with RuntimeWarnings ("overflow encountered in cast", "in exp") on stderr,
    and inf logged as true utility or a session's value, or sessions whose chance to leave was
    1 - exp(1e30): the guard had checked the float64 answer, and fatigue only for finiteness."""
    doc = base_doc(tmp_path)
    doc["population"]["policy"] = f"tests.hostile_plugins7:{policy}"
    code, stderr = cli(
        "run",
        str(write_scenario(tmp_path, doc)),
        "--executor",
        "local",
        "-q",
        "-o",
        str(tmp_path / "out"),
    )
    assert_refused(code, stderr, f"population.policy 'tests.hostile_plugins7:{policy}': {named}")


# ------------------------------------------------- a plug-in that swallows the stop signal
def test_a_local_run_whose_plugin_swallows_the_stop_still_ends(tmp_path):
    """Was: with --executor local a plug-in that caught the stop (``except BaseException``) and
    went on kept the run alive through every later SIGINT, SIGTERM and SIGHUP: a stopped run
    that never ended. Now it exits STOP_GRACE_SECONDS after the signal (2 s here) in one line,
    exit 130; the finished cell stays readable and the unfinished one is left to --resume."""
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": "tests.hostile_plugins7:SwallowsTheStop"}
    path, out = write_scenario(tmp_path, doc), tmp_path / "out"
    script = (
        "import recarena.simulator.runner.stopping as stopping\n"
        "stopping.STOP_GRACE_SECONDS = 2\n"
        "from recarena.simulator.cli import main\n"
        f"main(['run', {str(path)!r}, '--executor', 'local', '-q', '-o', {str(out)!r}])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 130 and len(lines) == 1, done.stderr
    assert lines[0].startswith("interrupted (SIGINT): the run did not stop within 2 s")
    assert (out / "arm=random" / "rep=0" / "manifest.json").is_file()
    assert (out / "arm=popularity" / "rep=0" / "_INCOMPLETE").is_file()
    code, stderr = cli("compare", str(out))
    assert code == 0 and "arm=popularity/rep=0 (unfinished)" in stderr, stderr


# ------------------------------------------- wrappers fed by a feature the scenario lacks
@pytest.mark.parametrize(
    ("recommender", "named"),
    [
        (
            {"type": "social_feed", "params": {"base": "popularity"}},
            "arms[1].recommender.type: social_feed would serve its base unchanged: "
            "population.social.talk is not set",
        ),
        (
            {"type": "mmr", "params": {"base": "instructable", "base_params": {}}},
            "arms[1].recommender.params.base: instructable would serve its base unchanged: "
            "population.instructions is not set",
        ),
    ],
)
def test_a_wrapper_whose_feature_is_missing_is_refused(tmp_path, recommender, named):
    """Was: validate ok and a run whose arm was its base, byte for byte (social_feed without
    talking users, instructable without instructions): an A/B of two identical arms."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = {"name": "wrapped", "recommender": recommender}
    refused_everywhere(tmp_path, doc, named)


def test_a_wrapper_at_its_zero_knob_or_fed_at_a_sweep_point_still_runs(tmp_path):
    doc = base_doc(tmp_path)
    doc["arms"][1] = {
        "name": "ablation",
        "recommender": {"type": "instructable", "params": {"strength": 0}},
    }
    doc["arms"].append({"name": "feed", "recommender": {"type": "social_feed"}})
    doc["population"]["social"] = {"graph": {"type": "barabasi_albert", "m": 2}}
    doc["sweep"] = {"population.social.talk": [None, {}]}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------------------------------- sasrec_native with more than one layer
def test_sasrec_native_layers_past_one_serve_short_histories(tmp_path):
    """Was: validate ok, then every cell of a sasrec_native arm with layers >= 2 failed with
    "recommend raised ValueError: cannot reshape array of size 10 into shape (2,10)" (exit 1):
    at recommend time torch answered NaN for a left-padded position that attends to nothing,
    and the next layer spread it to every state of a history shorter than max_len."""
    import torch

    from recarena.recommenders.native_sasrec import NativeSASRecParams
    from recarena.recommenders.native_sasrec_net import _Encoder

    for layers in (1, 2, 12):
        torch.manual_seed(0)
        net = _Encoder(10, NativeSASRecParams(dim=8, layers=layers, max_len=5)).eval()
        with torch.no_grad():
            states = net(torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]]))
        assert not torch.isnan(states[:, -1]).any(), layers  # the state recommend reads
    doc = base_doc(tmp_path)
    doc["horizon"]["days"] = 1.2
    doc["population"]["visits_per_day"] = 4
    doc["arms"][1] = {
        "name": "deep",
        "recommender": {"type": "sasrec_native", "params": {"layers": 2, "epochs": 1}},
    }
    out = tmp_path / "out"
    code, stderr = cli(
        "run", str(write_scenario(tmp_path, doc)), "--executor", "local", "-q", "-o", str(out)
    )
    assert code == 0, stderr
    assert (out / "arm=deep" / "rep=0" / "manifest.json").is_file()
