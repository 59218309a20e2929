"""Sharded cells (simulator/runner/sharding.py): the same bytes as one process, or a clear no."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.engine.arrivals import Arrivals
from recarena.simulator.runner import sharding
from recarena.simulator.runner.cell import run_cell
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.stopping import StopSignals


def _doc(**arms) -> dict:
    return {
        "name": "shard-test",
        "seed": 5,
        "replicates": 1,
        "horizon": {"days": 2, "tick_seconds": 60},
        "catalog": {"initial_items": 200, "topics": 8},
        "population": {"users": 240, "taste_drift": 0.05},
        "creators": {"count": 4, "uploads_per_day": 2},
        "surface": {"k": 8},
        "retrain": {"every_days": 0.5},
        "output": {"flush_rows": 1000},  # several row groups: their boundaries must match too
        "arms": [{"name": name, "recommender": rec} for name, rec in arms.items()],
    }


def _digests(cell_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cell_dir.glob("*.parquet")}


def test_refuses_online_learners_with_one_line():
    scenario = parse_scenario(_doc(bandit={"type": "linucb"}))
    with pytest.raises(RecarenaError, match=r"--shards 2: arm 'bandit' uses recommender 'linucb'"):
        sharding.refuse_unshardable(scenario, 0, 2)


def test_refuses_surfaces_with_cell_wide_state():
    doc = _doc(mf={"type": "mf"})
    doc["surface"] = {"type": "carousel", "rows": [{"theme": "trending"}], "cols": 4}
    scenario = parse_scenario(doc)
    with pytest.raises(RecarenaError, match="surface other than list"):
        sharding.refuse_unshardable(scenario, 0, 2)


def test_shards_partition_arrivals_in_order():
    arrivals = Arrivals(
        np.array([4, 1, 2, 7, 1]), np.arange(5.0), np.zeros(5, bool), np.arange(5) + 100
    )
    parts = [arrivals.for_shard(i, 3) for i in range(3)]
    assert sorted(np.concatenate([p.session_id for p in parts])) == list(range(100, 105))
    assert list(parts[1].user) == [4, 1, 7, 1]  # users 1, 4, 7: order kept


def test_retrain_times_add_up_like_the_clock():
    scenario = parse_scenario(_doc(pop={"type": "popularity"}))
    assert sharding.retrain_times(scenario, 0) == [0.0, 43200.0, 86400.0, 129600.0]


def test_sharded_logs_equal_unsharded_logs(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(
        sharding, "SHARD_TIMEOUT_SECONDS", 180.0
    )  # a stuck shard fails, never hangs
    doc = parse_scenario(
        _doc(
            popularity={"type": "popularity", "params": {"half_life_days": 1.0}},
            mf={"type": "mf", "params": {"dim": 16, "epochs": 2}},
        )
    ).model_dump(mode="json")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    try:
        for index, arm in enumerate(("popularity", "mf")):
            cell = Cell(index, index, arm, 0)
            one, many = tmp_path / f"one-{arm}", tmp_path / f"many-{arm}"
            one.mkdir()
            many.mkdir()
            expected = run_cell(doc, cell, str(one))
            got = sharding.run_sharded_cell(ray, doc, cell, str(many), 2, StopSignals())
            assert got["rows"] == expected["rows"]
            assert got["rows"]["exposures"] > 1000
            assert _digests(many / cell.path) == _digests(one / cell.path), arm
    finally:
        ray.shutdown()
