"""Engine throughput: impressions per second end to end (simulation + Parquet logging).

One simulated day, a list of 10, 2,000 items, retraining every 6 hours (so mf scores warm users
for most of the day), for popularity and mf (``optimizer: auto``: dense Adam below 50k users,
lazy from there on) at 1k, 10k, 100k and 1M users; ``--recommenders mf_dense mf_lazy`` force
one fit. Each (size, recommender) runs in its own subprocess so peak RSS is its own;
torch is imported before the clock starts. Prints impressions/s, microseconds per impression
(wall and CPU), peak RSS, the cost per impression relative to the 10k-user row, the time split
per bucket (wall seconds; the log writer thread overlaps the rest) and the load average,
because on a shared machine the wall figures mean little without it. Nothing is asserted.

    python benchmarks/engine.py                                  # every size and recommender
    python benchmarks/engine.py --users 10000 100000 --recommenders popularity
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [1_000, 10_000, 100_000, 1_000_000]
RECOMMENDERS = ["popularity", "mf"]
VARIANTS = {
    "mf_dense": {"type": "mf", "params": {"optimizer": "adam"}},
    "mf_lazy": {"type": "mf", "params": {"optimizer": "lazy_adam"}},
}
"""Rows that are a recommender with non-default params (mf's fits forced one way; name them
with --recommenders)."""


def scenario_doc(users: int, recommender: str, items: int = 2000, days: float = 1) -> dict:
    return {
        "name": f"bench-{users}",
        "seed": 1,
        "replicates": 1,
        "horizon": {"days": days, "tick_seconds": 60},
        "catalog": {"initial_items": items, "topics": 16},
        "population": {"users": users},
        "creators": {"count": 20},
        "surface": {"k": 10},
        "retrain": {"every_days": 0.25},
        "arms": [
            {"name": recommender, "recommender": VARIANTS.get(recommender, {"type": recommender})}
        ],
    }


def measure_one(users: int, recommender: str, items: int = 2000, days: float = 1) -> dict:
    """Run one cell in this process; the figures of that one run."""
    import torch  # imported before the clock, as a long-running worker would have it

    from recarena.simulator.runner.cell import run_cell
    from recarena.simulator.runner.plan import Cell
    from recarena.simulator.runner.resolve import parse_scenario

    torch.set_num_threads(1)
    doc = parse_scenario(scenario_doc(users, recommender, items, days)).model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = time.process_time()
        started = time.perf_counter()
        manifest = run_cell(doc, Cell(0, 0, recommender, 0), tmp)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        log_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
    impressions = manifest["rows"]["exposures"]
    return {
        "users": users,
        "recommender": recommender,
        "impressions": impressions,
        "wall_s": wall,
        "cpu_s": cpu,
        "impressions_per_s": impressions / wall,
        "us_per_impression": 1e6 * wall / impressions,
        "cpu_us_per_impression": 1e6 * cpu / impressions,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "log_mb": log_bytes / 1e6,
        "timings": manifest["timings_seconds"],
        "load": os.getloadavg(),
    }


def run_child(users: int, recommender: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--one", str(users), recommender],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"benchmark for {users} users / {recommender} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="*", default=SIZES)
    parser.add_argument("--recommenders", nargs="*", default=RECOMMENDERS)
    parser.add_argument(
        "--one",
        nargs=2,
        metavar=("USERS", "RECOMMENDER"),
        help="run one cell in this process and print its figures as JSON",
    )
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1])))
        return
    rows = []
    for recommender in args.recommenders:
        for users in args.users:
            rows.append(run_child(users, recommender))
            r = rows[-1]
            print(
                f"{users:>9,} users {recommender:<10}: {r['impressions_per_s']:>11,.0f} imp/s "
                f"(load {r['load'][0]:.1f})",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"{'rec':<10} {'users':>9} {'impressions':>11} {'wall s':>7} {'CPU s':>6} "
        f"{'imp/s':>10} {'us/imp':>6} {'CPU us/imp':>10} {'vs 10k':>6} {'RSS MB':>7} "
        f"{'load':>5}  time split (wall s)"
    )
    for r in rows:
        ref = next(
            (x for x in rows if x["recommender"] == r["recommender"] and x["users"] == 10_000),
            None,
        )
        versus = f"{r['cpu_us_per_impression'] / ref['cpu_us_per_impression']:.2f}x" if ref else "-"
        split = ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items() if v)
        print(
            f"{r['recommender']:<10} {r['users']:>9,} {r['impressions']:>11,} "
            f"{r['wall_s']:>7.1f} {r['cpu_s']:>6.1f} {r['impressions_per_s']:>10,.0f} "
            f"{r['us_per_impression']:>6.2f} {r['cpu_us_per_impression']:>10.2f} {versus:>6} "
            f"{r['peak_rss_mb']:>7,.0f} {r['load'][0]:>5.1f}  {split}"
        )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
