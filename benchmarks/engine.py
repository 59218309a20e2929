"""Engine throughput: impressions per second end to end (simulation + Parquet logging).

Popularity recommender, a list of 10, one simulated day, at 10k, 100k and 1M users. Each size
runs in its own subprocess so peak RSS is that size's own. Prints a table; nothing is asserted.

    python benchmarks/engine.py                 # all sizes
    python benchmarks/engine.py --users 100000  # one size
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = [10_000, 100_000, 1_000_000]


def scenario_doc(users: int) -> dict:
    return {
        "name": f"bench-{users}",
        "seed": 1,
        "replicates": 1,
        "horizon": {"days": 1, "tick_seconds": 60},
        "catalog": {"initial_items": 2000, "topics": 16},
        "population": {"users": users},
        "creators": {"count": 20},
        "surface": {"k": 10},
        "arms": [{"name": "popularity", "recommender": {"type": "popularity"}}],
    }


def measure_one(users: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from recarena.simulator.runner.experiment import Cell, run_cell
    from recarena.simulator.runner.resolve import parse_scenario

    doc = parse_scenario(scenario_doc(users)).model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = run_cell(doc, Cell(0, 0, "popularity", 0), tmp)
        wall = time.perf_counter() - started
        log_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
    impressions = manifest["rows"]["exposures"]
    return {
        "users": users,
        "impressions": impressions,
        "clicks": manifest["rows"]["interactions"],
        "sessions": manifest["rows"]["sessions"],
        "wall_s": wall,
        "impressions_per_s": impressions / wall,
        "us_per_impression": 1e6 * wall / impressions,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "log_mb": log_bytes / 1e6,
        "timings": manifest["timings_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="*", default=SIZES)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return
    rows = []
    for users in args.users:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(users)], capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"benchmark for {users} users failed:\n{done.stderr}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{users:>9,} users: {r['impressions_per_s']:>11,.0f} impressions/s", file=sys.stderr)
    base = rows[0]["us_per_impression"]
    header = (
        f"{'users':>10} {'impressions':>12} {'wall s':>8} {'imp/s':>11} {'us/imp':>7} "
        f"{'vs first':>8} {'peak RSS MB':>11} {'log MB':>7}  time split (s)"
    )
    print(header)
    for r in rows:
        split = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
        print(
            f"{r['users']:>10,} {r['impressions']:>12,} {r['wall_s']:>8.1f} "
            f"{r['impressions_per_s']:>11,.0f} {r['us_per_impression']:>7.2f} "
            f"{r['us_per_impression'] / base:>7.2f}x {r['peak_rss_mb']:>11,.0f} "
            f"{r['log_mb']:>7.1f}  {split}"
        )


if __name__ == "__main__":
    main()
