"""Page waves (simulator/engine/waves.py): many ticks in one batch, the same bytes as the ticks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from recarena.recommenders.popularity import PopularityRecommender
from recarena.simulator.engine import model as model_module
from recarena.simulator.engine import waves
from recarena.simulator.runner.cell import run_cell
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.resolve import parse_scenario


def _doc(recommender: dict, **population) -> dict:
    return {
        "name": "waves-test",
        "seed": 11,
        "replicates": 1,
        "horizon": {"days": 2, "tick_seconds": 60},
        "catalog": {"initial_items": 150, "topics": 8},
        "population": {"users": 200, **population},
        "creators": {"count": 4, "uploads_per_day": 3},
        "surface": {"k": 6},
        "retrain": {"every_days": 0.5},
        "output": {"flush_rows": 1009},  # row groups end mid-window: their bounds must match
        "arms": [{"name": "arm", "recommender": recommender}],
    }


def _run(doc: dict, directory: Path, use_waves: bool, monkeypatch) -> tuple[dict, int]:
    """The cell's Parquet digests, and how many windows were served in waves."""
    served = []
    real_serve = waves.PageWaves.serve

    def counting(self, first, stop):
        served.append(stop - first)
        return real_serve(self, first, stop)

    with monkeypatch.context() as patch:
        patch.setattr(waves.PageWaves, "serve", counting)
        if not use_waves:
            patch.setattr(model_module, "waves_apply", lambda model: False)
        scenario = parse_scenario(doc).model_dump(mode="json")
        directory.mkdir(parents=True)
        run_cell(scenario, Cell(0, 0, "arm", 0), str(directory))
    digests = {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in directory.rglob("*.parquet")
    }
    return digests, len(served)


@pytest.mark.parametrize(
    ("recommender", "population"),
    [
        ({"type": "popularity"}, {}),
        ({"type": "random"}, {}),
        ({"type": "mf", "params": {"dim": 8, "epochs": 2}}, {"taste_drift": 0.05}),
        # users who come back within the hour: several sessions of one user in one window
        ({"type": "popularity", "params": {"half_life_days": 1}}, {"visits_per_day": 30}),
    ],
)
def test_waves_write_the_same_bytes_as_the_tick_loop(
    tmp_path, monkeypatch, recommender, population
):
    doc = _doc(recommender, **population)
    ticks, windows_in_tick_loop = _run(doc, tmp_path / "ticks", False, monkeypatch)
    waved, windows = _run(doc, tmp_path / "waves", True, monkeypatch)
    assert windows_in_tick_loop == 0 and windows > 10  # the waves did serve this cell
    assert len(ticks) >= 10 and waved == ticks


def test_only_declared_components_take_part(monkeypatch):
    class Derived(PopularityRecommender):  # a subclass may add state that couples requests
        pass

    assert waves.rows_independent(PopularityRecommender.__new__(PopularityRecommender))
    assert not waves.rows_independent(Derived.__new__(Derived))


@pytest.mark.parametrize(
    ("recommender", "surface"),
    [
        ({"type": "epsilon_greedy", "params": {"epsilon": 0.1}}, None),  # learns per page
        ({"type": "popularity"}, {"type": "carousel", "rows": [{"theme": "trending"}], "cols": 3}),
    ],
)
def test_cells_that_couple_sessions_keep_the_tick_loop(tmp_path, monkeypatch, recommender, surface):
    doc = _doc(recommender)
    doc["horizon"]["days"] = 0.5
    if surface is not None:
        doc["surface"] = surface
    _, windows = _run(doc, tmp_path / "run", True, monkeypatch)
    assert windows == 0


def test_small_windows_write_the_same_bytes(tmp_path, monkeypatch):
    """Window bounds move no byte: with a tiny row budget (long sessions, many short windows,
    sessions carried across them) the files are the tick loop's."""
    doc = _doc({"type": "popularity"}, max_pages=200, fatigue_per_page=0.01)
    doc["horizon"]["days"] = 1
    ticks, _ = _run(doc, tmp_path / "ticks", False, monkeypatch)
    _, usual = _run(doc, tmp_path / "usual", True, monkeypatch)
    monkeypatch.setattr(waves, "MAX_WINDOW_ROWS", 3_000)
    waved, windows = _run(doc, tmp_path / "waves", True, monkeypatch)
    assert windows > 2 * usual and waved == ticks
