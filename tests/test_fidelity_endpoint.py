"""`recarena fidelity --llm-base-url`: any OpenAI-compatible endpoint's users, measured the same
way as the local panel; the options are checked in one line each before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_subprocess import recarena
from tests.fake_openai import FakeOpenAI
from tests.test_fidelity import _tiny_dataset


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--llm-model", "m"], "--llm-model: only with --llm-base-url"),
        (["--llm-base-url", "ftp://host/v1", "--llm-model", "m"], "is not an http(s) URL"),
        (["--llm-base-url", "http://127.0.0.1:9/v1"], "--llm-model: needed with --llm-base-url"),
        (["--llm", "--llm-decision", "maybe"], "--llm-decision: unknown 'maybe'"),
        (["--llm-decision", "maybe"], "--llm-decision: unknown 'maybe'"),  # was: ignored
        # options that only shape a panel were ignored without --llm
        (["--llm-users", "3"], "--llm-users: only with --llm (no LLM panel was asked for)"),
        (["--llm-decision", "generate"], "--llm-decision: only with --llm"),
        (["--llm-api-key-env", "K"], "--llm-api-key-env: only with --llm"),
        (["--llm", "--llm-api-key-env", "K"], "--llm-api-key-env: only with --llm-base-url"),
        # each was found after the checks had run: an internal error, or 'File exists'
        (["--llm-cache", "."], "--llm-cache: . is not a file (an SQLite cache of LLM calls)"),
        (["--llm-cache", "pyproject.toml/c.sqlite"], "pyproject.toml is a file, not a directory"),
        (["--llm-cache", "pyproject.toml"], "pyproject.toml is not an SQLite file"),
    ],
)
def test_bad_panel_options_are_one_line_and_write_nothing(tmp_path: Path, args, message):
    out = tmp_path / "report"
    done = recarena("fidelity", "-o", str(out), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not out.exists()


def test_a_remote_endpoint_answers_the_panel(tmp_path: Path) -> None:
    data = _tiny_dataset(tmp_path / "inter.csv")
    out = tmp_path / "report"
    with FakeOpenAI() as fake:
        done = recarena(
            "fidelity", "--dataset", str(data), "-o", str(out), "--seed", "1", "--topics", "4",
            "--arms", "random,popularity", "--llm-users", "2", "--llm-base-url",
            fake.base_url, "--llm-model", "remote-model", "-q",
        )  # fmt: skip
        models = {request.get("model") for request in fake.requests}
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # two panel users: CIs (see the next test)
    assert models == {"remote-model"}  # every call went to the endpoint, for that model
    report = json.loads((out / "fidelity.json").read_text())
    panel = report["llm_panel"]
    assert panel["model"] == "remote-model" and panel["calls"] >= 1
    assert panel["simulation"]["calls"] >= 1
    assert (out / "llm_cache.sqlite").is_file()  # the cache lives with the report by default


def test_a_panel_of_one_user_is_said_to_give_figures_without_a_ci(tmp_path: Path) -> None:
    """One panel user printed a check-1 accuracy (one user's answers to a few movies, e.g.
    0.000 on 2) in the table beside the rule users' CIs, as if it measured the model. The run
    still goes (the cheapest smoke test of an endpoint), with one warning line before it."""
    data = _tiny_dataset(tmp_path / "inter.csv")
    out = tmp_path / "report"
    with FakeOpenAI() as fake:
        done = recarena(
            "fidelity", "--dataset", str(data), "-o", str(out), "--seed", "1", "--topics", "4",
            "--arms", "random,popularity", "--llm-users", "1", "--llm-base-url",
            fake.base_url, "--llm-model", "remote-model", "-q",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "warning: --llm-users 1: every LLM figure (check 1's scores, checks 2 and 3 in "
        "simulation) is one user's answers to a few movies, with no CI (a CI resamples users: "
        "it needs 2 or more); the default panel is 10"
    ]
    assert "warning" not in done.stdout
    (entry,) = json.loads((out / "fidelity.json").read_text())["llm_panel"]["taste_discrimination"]
    assert entry["users"] == 1  # what the line says: one user's figure, no interval
    assert entry["accuracy"]["low"] is None and entry["accuracy"]["high"] is None


@pytest.mark.parametrize("users", ["2", "4"])  # 4: refused in the 1:1 part, 2: in its run
def test_a_refused_key_names_the_fidelity_options(tmp_path: Path, users: str) -> None:
    """Was: fidelity's panel refused with HTTP 401 said 'check the API key in the environment
    variable K (llm.api_key_env)', a scenario field the fidelity command has no such name for."""
    data = _tiny_dataset(tmp_path / "inter.csv")
    out = tmp_path / "report"
    with FakeOpenAI(["401"]) as fake:
        done = recarena(
            "fidelity", "--dataset", str(data), "-o", str(out), "--seed", "1", "--topics", "4",
            "--arms", "random,popularity", "--llm-users", users, "--llm-base-url",
            fake.base_url, "--llm-model", "remote-model", "-q",
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0], done.stderr
    assert "(--llm-api-key-env)" in lines[0] and "llm.api_key_env" not in lines[0]
    assert "--resume" not in lines[0]  # the panel's run is the report's scratch
    assert not any((out / name).exists() for name in ("fidelity.json", "fidelity.md"))
