"""In a stationary world LinUCB beats random and gets most of the way to the oracle."""

from __future__ import annotations

import polars as pl

from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario

STATIONARY = {
    "name": "stationary",
    "seed": 9,
    "replicates": 1,
    "horizon": {"days": 3, "tick_seconds": 300},
    "catalog": {"initial_items": 300, "topics": 8},
    "population": {"users": 600, "satiation_gain": 0, "explore_prob": 0},
    "creators": {"count": 6, "uploads_per_day": 0},
    "arms": [
        {"name": "random", "recommender": {"type": "random"}},
        {"name": "linucb", "recommender": {"type": "linucb"}},
        {"name": "oracle", "recommender": {"type": "oracle"}},
    ],
}


def test_linucb_between_random_and_oracle(tmp_path):
    run_experiment(parse_scenario(STATIONARY), tmp_path / "run", executor="local")

    def ctr(arm: str) -> float:
        frame = pl.read_parquet(tmp_path / f"run/arm={arm}/rep=0/exposures.parquet")
        return float(frame["clicked"].mean())

    random, linucb, oracle = ctr("random"), ctr("linucb"), ctr("oracle")
    print(f"CTR random {random:.4f} linucb {linucb:.4f} oracle {oracle:.4f}")
    assert random < linucb < oracle
    # it closes most of the gap between random and the oracle (measured: about 90%)
    assert linucb - random > 0.7 * (oracle - random)
