"""Conversation throughput: dialogue turns per second end to end (turn loop + Parquet logging).

One simulated day of conversations (k = 3, at most 8 turns, a narrow [genre, era] target) for
the information-gain policy and for a list recommender (popularity) wrapped as a conversation,
at 10k and 100k users. Each (policy, size) runs in its own subprocess so its peak RSS is its
own. Prints a table; nothing is asserted.

    python benchmarks/conversation.py                     # both policies, both sizes
    python benchmarks/conversation.py --users 10000       # one size
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

ROOT = Path(__file__).resolve().parent.parent
SIZES = [10_000, 100_000]
POLICIES = {
    "info_gain": {"type": "info_gain", "params": {"base": "popularity", "candidates": 200}},
    "popularity_list": {"type": "popularity"},
}


def scenario_doc(users: int, policy: str) -> dict:
    return {
        "name": f"bench-conv-{users}",
        "seed": 1,
        "replicates": 1,
        "horizon": {"days": 1, "tick_seconds": 300},
        "catalog": {"initial_items": 2000, "topics": 16},
        "population": {"users": users, "conversation": {"target_facets": ["genre", "era"]}},
        "creators": {"count": 20},
        "surface": {"type": "conversation", "k": 3, "max_turns": 8},
        "arms": [{"name": policy, "recommender": POLICIES[policy]}],
    }


def measure_one(users: int, policy: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import polars as pl

    from recarena.simulator.runner.experiment import Cell, run_cell
    from recarena.simulator.runner.resolve import parse_scenario

    doc = parse_scenario(scenario_doc(users, policy)).model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = run_cell(doc, Cell(0, 0, policy, 0), tmp)
        wall = time.perf_counter() - started
        sessions = pl.read_parquet(next(Path(tmp).rglob("sessions.parquet")))
    turns = manifest["rows"]["turns"] // 2  # a system row and a user row per turn
    return {
        "policy": policy,
        "users": users,
        "conversations": sessions.height,
        "turns": turns,
        "success": float((sessions["exit_reason"] == "accepted").mean()),
        "wall_s": wall,
        "turns_per_s": turns / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "timings": manifest["timings_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="*", default=SIZES)
    parser.add_argument("--policy", nargs="*", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1])))
        return
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    rows = []
    for policy in args.policy:
        for users in args.users:
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(users), policy],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                sys.exit(f"benchmark {policy} / {users} users failed:\n{done.stderr}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(
                f"{policy} {users:,} users: {rows[-1]['turns_per_s']:,.0f} turns/s", file=sys.stderr
            )
    print(
        f"{'policy':>16} {'users':>9} {'dialogues':>9} {'turns':>8} {'success':>7} {'wall s':>7} "
        f"{'turns/s':>8} {'RSS MB':>7}  time split (s)"
    )
    for r in rows:
        split = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items() if v >= 0.05)
        print(
            f"{r['policy']:>16} {r['users']:>9,} {r['conversations']:>9,} {r['turns']:>8,} "
            f"{r['success']:>7.3f} {r['wall_s']:>7.1f} {r['turns_per_s']:>8,.0f} "
            f"{r['peak_rss_mb']:>7,.0f}  {split}"
        )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
