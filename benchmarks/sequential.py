"""Sequential recommenders: retrain time, serve time per 1,000 requests, and wall-time split.

1. Simulates a week of 1,000 users (popularity arm, sequel structure on) to get a click log.
2. Times ``fit`` on that log and ``recommend`` for 1,000 requests (batches of 100) for RecBole's
   SASRec and the native SASRec-style model.
3. With ``--run RUN_DIR`` (e.g. a run of scenarios/sequential.yaml), prints how each arm's wall
   time splits between the model (fit, recommend, update) and the engine (users, logging, rest).

    python benchmarks/sequential.py [--run runs/sequential-<stamp>]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {
    "SASRec (RecBole)": ("recbole", {"model": "SASRec", "epochs": 5, "max_seq_len": 20}),
    "SASRec (native)": ("sasrec_native", {"epochs": 5, "max_len": 20}),
}


def click_log():
    import polars as pl

    from recarena.simulator.core.types import Interactions
    from recarena.simulator.runner.experiment import Cell, run_cell
    from recarena.simulator.runner.resolve import parse_scenario

    doc = {
        "name": "seq-bench",
        "seed": 4,
        "replicates": 1,
        "horizon": {"days": 7},
        "catalog": {"initial_items": 1500},
        "population": {"users": 1000, "sequel_weight": 1.5},
        "arms": [{"name": "pop", "recommender": {"type": "popularity"}}],
    }
    scenario = parse_scenario(doc)
    with tempfile.TemporaryDirectory() as tmp:
        run_cell(scenario.model_dump(mode="json"), Cell(0, 0, "pop", 0), tmp)
        clicks = pl.read_parquet(f"{tmp}/arm=pop/rep=0/interactions.parquet")
        n_items = pl.read_parquet(f"{tmp}/arm=pop/rep=0/items.parquet").height
    history = Interactions(
        clicks["user_id"].to_numpy(),
        clicks["item_id"].to_numpy(),
        clicks["time"].to_numpy(),
        clicks["rating"].to_numpy(),
    )
    return history, n_items, 1000


def time_model(kind: str, params: dict, history, n_items: int, n_users: int) -> tuple[float, float]:
    from recarena.recommenders.base import RecommenderContext
    from recarena.recommenders.registry import build
    from recarena.simulator.core.types import CatalogView, RequestBatch

    rec = build(kind, params, RecommenderContext(np.random.default_rng(0), n_users, 16))
    started = time.perf_counter()
    rec.fit(history)
    fit_s = time.perf_counter() - started
    rng = np.random.default_rng(1)
    users = rng.choice(np.unique(history.user), 1000)
    topics = np.full((n_items, 16), 1 / 16, np.float32)
    catalog = CatalogView(
        n_items,
        topics,
        np.zeros(n_items, np.float32),
        np.zeros(n_items, np.int32),
        np.zeros(n_items),
    )
    started = time.perf_counter()
    for batch in np.array_split(users, 10):
        b = batch.size
        rec.recommend(
            RequestBatch(
                0.0,
                batch,
                np.arange(b),
                np.zeros(b, np.int32),
                10,
                catalog,
                np.empty((b, 0), np.int64),
            )
        )
    return fit_s, time.perf_counter() - started


def wall_split(run_dir: Path) -> None:
    print(f"\nwall-time split of {run_dir} (seconds, mean over replicates)")
    print(f"{'arm':<16} {'wall':>7} {'model':>7} {'engine':>7}  model share")
    rows: dict[str, list[tuple[float, float]]] = {}
    for manifest in sorted(run_dir.glob("arm=*/rep=*/manifest.json")):
        cell = json.loads(manifest.read_text())
        t = cell["timings_seconds"]
        model = t["fit"] + t["recommend"] + t["update"]
        rows.setdefault(cell["arm"], []).append((cell["wall_seconds"], model))
    for arm, values in rows.items():
        wall, model = np.mean(values, axis=0)
        print(f"{arm:<16} {wall:>7.1f} {model:>7.1f} {wall - model:>7.1f}  {model / wall:>10.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory to split by arm")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    history, n_items, n_users = click_log()
    print(f"click log: {len(history):,} clicks, {n_items:,} items, {n_users:,} users")
    print(f"{'model':<18} {'retrain s':>10} {'serve s / 1,000 requests':>26}")
    for label, (kind, params) in MODELS.items():
        fit_s, serve_s = time_model(kind, params, history, n_items, n_users)
        print(f"{label:<18} {fit_s:>10.2f} {serve_s:>26.3f}")
    if args.run:
        wall_split(args.run)


if __name__ == "__main__":
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    main()
    print(f"load average at the end: {os.getloadavg()}")
