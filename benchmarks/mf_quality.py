"""mf's two fits side by side: held-out NDCG@10 / Recall@10 and fit CPU seconds.

``params.optimizer: adam`` (fit version 1) runs dense Adam over every embedding row at every
step; ``lazy_adam`` (version 2) moves only the rows of each batch. The default, ``auto``, fits
densely below 50,000 users and lazily from there on. A cheaper fit
is only worth having if it ranks held-out items as well, so this script fits both the way the
engine does (warm-started refits on a growing history) and scores the same held-out clicks.

Data: MovieLens-100K (RecBole's copy) and the clicks of a synthetic cell (the quickstart
scenario's ``random`` arm, 14 days, whose exposures are not shaped by any learned ranking).
Each is split in time: the first 80% of events train, the last 20% are held out. Training is
cut into ``--refits`` chronological prefixes, each a warm-started fit (the engine refits once
per ``retrain.every_days`` in the same way). Evaluation: for every held-out user with training
history, all items are ranked (training items excluded) and compared to that user's held-out
items. Several seeds per optimiser; mean and range printed with the load average. Nothing is
asserted.

    python benchmarks/mf_quality.py
    python benchmarks/mf_quality.py --seeds 5 --refits 14 --datasets ml-100k
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def ml100k() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from recarena.simulator.data.datasets import load_ml100k

    data = load_ml100k()
    return data.user, data.item, data.timestamp


def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clicks of one quickstart cell under the random arm (no learned ranking shapes them)."""
    import polars as pl
    import yaml

    from recarena.simulator.runner.cell import run_cell
    from recarena.simulator.runner.plan import Cell
    from recarena.simulator.runner.resolve import parse_scenario

    raw = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    doc = parse_scenario(raw).model_dump(mode="json")
    arm = [a["name"] for a in doc["arms"]].index("random")
    with tempfile.TemporaryDirectory() as tmp:
        run_cell(doc, Cell(0, arm, "random", 0), tmp)
        clicks = pl.read_parquet(next(Path(tmp).rglob("interactions.parquet")))
    return clicks["user_id"].to_numpy(), clicks["item_id"].to_numpy(), clicks["time"].to_numpy()


def dense_ids(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].astype(np.int64)


def evaluate(
    user: np.ndarray, item: np.ndarray, when: np.ndarray, optimizer: str, seed: int, refits: int
) -> dict[str, float]:
    from recarena.recommenders.base import RecommenderContext
    from recarena.recommenders.mf import MatrixFactorization, MFParams
    from recarena.simulator.core.types import Interactions

    order = np.argsort(when, kind="stable")
    user, item, when = dense_ids(user)[order], dense_ids(item)[order], when[order]
    n_users, n_items = int(user.max()) + 1, int(item.max()) + 1
    cut = int(0.8 * len(user))
    ctx = RecommenderContext(
        rng=np.random.default_rng(seed), n_users=n_users, n_topics=1, truth=None
    )
    model = MatrixFactorization(MFParams(optimizer=optimizer), ctx)
    fit_cpu = 0.0
    for stop in np.linspace(0, cut, refits + 1).astype(int)[1:]:
        history = Interactions(
            user=user[:stop],
            item=item[:stop],
            time=when[:stop].astype(np.float64),
            rating=np.ones(stop, np.float32),
        )
        started = time.process_time()
        model.fit(history)
        fit_cpu += time.process_time() - started
    model._grow_items(n_items)
    train_u, train_i = user[:cut], item[:cut]
    test_u, test_i = user[cut:], item[cut:]
    known = np.zeros(n_users, bool)
    known[train_u] = True
    users = np.unique(test_u[known[test_u]])
    scores = (model.user_emb[users] @ model.item_emb[:n_items].T).numpy().astype(np.float64)
    row_of = np.full(n_users, -1)
    row_of[users] = np.arange(users.size)
    seen = known[train_u] & (row_of[train_u] >= 0)
    scores[row_of[train_u[seen]], train_i[seen]] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    relevant = np.zeros((users.size, n_items), bool)
    held = row_of[test_u] >= 0
    relevant[row_of[test_u[held]], test_i[held]] = True
    relevant[row_of[train_u[seen]], train_i[seen]] = False  # re-watches cannot be recommended
    hits = np.take_along_axis(relevant, top, axis=1)
    counts = relevant.sum(axis=1)
    ok = counts > 0
    gains = 1.0 / np.log2(np.arange(2, 12))
    ideal = np.array([gains[: min(c, 10)].sum() for c in counts[ok]])
    ndcg = (hits[ok] * gains).sum(axis=1) / ideal
    recall = hits[ok].sum(axis=1) / np.minimum(counts[ok], 10)
    return {"ndcg": float(ndcg.mean()), "recall": float(recall.mean()), "fit_cpu": fit_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=["ml-100k", "synthetic"])
    parser.add_argument("--optimizers", nargs="*", default=["adam", "lazy_adam"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--refits", type=int, default=8)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    loaders = {"ml-100k": ml100k, "synthetic": synthetic}
    print(f"{'dataset':<10} {'optimizer':<10} {'NDCG@10':>17} {'Recall@10':>17} {'fit CPU s':>9}")
    for name in args.datasets:
        user, item, when = loaders[name]()
        for optimizer in args.optimizers:
            runs = [
                evaluate(user, item, when, optimizer, seed, args.refits)
                for seed in range(args.seeds)
            ]

            def cell(key: str, runs: list[dict[str, float]] = runs) -> str:
                values = [r[key] for r in runs]
                return f"{statistics.mean(values):.4f} [{min(values):.4f},{max(values):.4f}]"

            fit = statistics.mean(r["fit_cpu"] for r in runs)
            print(
                f"{name:<10} {optimizer:<10} {cell('ndcg'):>17} {cell('recall'):>17} {fit:>9.2f}",
                flush=True,
            )
    print(f"load average: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
