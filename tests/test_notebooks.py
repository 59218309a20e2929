"""The analysis notebooks run top to bottom on a fresh run, and are stored without outputs."""

from __future__ import annotations

import copy
from pathlib import Path

import polars as pl
import pytest

from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.conftest import TINY

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "analysis" / "notebooks"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    doc = copy.deepcopy(TINY) | {"population": {"users": 200}}  # 2 arms x 2 reps x 2 days
    run = tmp_path_factory.mktemp("nb") / "run"
    run_experiment(parse_scenario(doc), run, executor="local")
    return run


def _execute(name: str, run: Path, monkeypatch) -> tuple[str, int]:
    """Run a notebook in a fresh kernel; returns its text output (stdout and text/plain) and
    how many images it drew."""
    monkeypatch.setenv("RECARENA_RUN", str(run))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(run)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    texts, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
            images += "image/png" in output.get("data", {})
    return "\n".join(texts), images


def _ctr(run: Path, arm: str, position: int | None = None) -> float:
    frame = pl.read_parquet(run / f"arm={arm}/rep=*/exposures.parquet")
    if position is not None:
        frame = frame.filter(pl.col("position") == position)
    return float(frame["clicked"].mean())


def _mean_cell_ctr(run: Path, arm: str) -> float:
    return (
        sum(
            float(pl.read_parquet(run / f"arm={arm}/rep={rep}/exposures.parquet")["clicked"].mean())
            for rep in (0, 1)
        )
        / 2
    )


def test_quickstart_notebook_runs(tiny_run, monkeypatch):
    text, images = _execute("quickstart_analysis.ipynb", tiny_run, monkeypatch)
    assert "run run: arms ['random', 'popularity'], baseline 'random', 4 cells" in text
    for arm in ("random", "popularity"):
        assert f"mean CTR over replicates, {arm}: {_mean_cell_ctr(tiny_run, arm):.4f}" in text
    assert images == 1  # CTR by day


def test_deep_dive_notebook_runs(tiny_run, monkeypatch):
    text, images = _execute("ab_deep_dive.ipynb", tiny_run, monkeypatch)
    assert f"position 0 CTR of the baseline random: {_ctr(tiny_run, 'random', 0):.4f}" in text
    assert "delta_popularity" in text  # the user-level breakdown table
    assert images == 1  # CTR by position


@pytest.mark.parametrize("name", ["quickstart_analysis.ipynb", "ab_deep_dive.ipynb"])
def test_notebooks_are_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
