"""T-RECS 0.2.1 and recarena on the same workloads, side by side in one run: impressions/s.

Workloads (as in the issue that asked for this comparison): 1,000 users / 1,000 items and
10,000 users / 5,000 items, 10 items per page. T-RECS runs ContentFiltering with 20 attributes,
retraining between steps (every user gets a page per step); recarena runs one simulated day
(one-minute ticks, arrivals and sessions as usual) with popularity and with mf (retrained every
6 hours). A day gives each of 1,000 users about 3 pages where T-RECS gives 10, so a cell's fixed
costs (building the world, writing the logs) weigh three times as much per impression; the
"matched" rows run recarena for as many days as it takes to show as many impressions as T-RECS
does (the days are set from the first one-day run), the same pages per user. Both are printed.
Runs are interleaved (T-RECS, popularity, mf, T-RECS, ...) so load drifts hit both
alike; each is a fresh subprocess timed after its imports. Prints every run, the medians, the
ratio recarena / T-RECS and the load average. Nothing is asserted.

T-RECS pins pandas==1.0.5, which does not install on Python 3.11, so it lives in its own venv
(never the project's): created on first use with ``pip install --no-deps trecs==0.2.1`` next to
numpy, scipy, networkx, pandas and tqdm; its ``lenskit`` import (used only by ImplicitMF) is
satisfied by an empty stub package on PYTHONPATH.

    python benchmarks/peer_trecs.py                       # venv in /tmp/trecs-venv
    python benchmarks/peer_trecs.py --trecs-venv /tmp/v --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = [(1_000, 1_000, 10), (10_000, 5_000, 3)]  # users, items, T-RECS steps

TRECS_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from trecs.models import ContentFiltering
users, items, steps = map(int, sys.argv[1:])
started = time.perf_counter()
model = ContentFiltering(
    num_users=users, num_items=items, num_attributes=20, num_items_per_iter=10, seed=1
)
model.run(timesteps=steps, train_between_steps=True, disable_tqdm=True)
wall = time.perf_counter() - started
print(json.dumps({"impressions": users * 10 * steps, "wall_s": wall}))
"""


def ensure_trecs(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, "numpy", "scipy", "networkx", "pandas", "tqdm"], check=True)
        subprocess.run([*pip, "--no-deps", "trecs==0.2.1"], check=True)
    return python


def run_trecs(python: Path, users: int, items: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as stub:
        algorithms = Path(stub) / "lenskit" / "algorithms"
        algorithms.mkdir(parents=True)
        (Path(stub) / "lenskit" / "__init__.py").write_text("")
        (algorithms / "__init__.py").write_text("als = None\n")
        env = {**os.environ, "PYTHONPATH": stub, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [str(python), "-c", TRECS_SCRIPT, str(users), str(items), str(steps)],
            capture_output=True,
            text=True,
            env=env,
        )
    if done.returncode != 0:
        sys.exit(f"T-RECS failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["impressions"] / result["wall_s"]


def run_recarena(users: int, items: int, recommender: str, days: float = 1) -> tuple[float, int]:
    """Impressions per second and impressions of one fresh recarena cell."""
    code = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import engine; "
        f"print(json.dumps(engine.measure_one({users}, {recommender!r}, {items}, {days!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"recarena {recommender} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["impressions_per_s"], result["impressions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trecs-venv", type=Path, default=Path("/tmp/trecs-venv"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    python = ensure_trecs(args.trecs_venv)
    print(f"load average at the start: {os.getloadavg()}")
    summary = []
    for users, items, steps in WORKLOADS:
        runs: dict[str, list[float]] = {
            k: [] for k in ("trecs", "popularity", "mf", "popularity matched", "mf matched")
        }
        matched_days: dict[str, float] = {}
        for repeat in range(args.repeats):
            runs["trecs"].append(run_trecs(python, users, items, steps))
            for recommender in ("popularity", "mf"):
                speed, impressions = run_recarena(users, items, recommender)
                runs[recommender].append(speed)
                days = matched_days.setdefault(
                    recommender, round(users * 10 * steps / impressions, 2)
                )
                runs[f"{recommender} matched"].append(
                    run_recarena(users, items, recommender, days)[0]
                )
            print(
                f"{users:>6} users {items:>5} items, run {repeat + 1}: "
                + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in runs.items())
                + f"  (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        medians = {k: statistics.median(v) for k, v in runs.items()}
        summary.append((users, items, medians, matched_days))
    print(
        f"\n{'users':>6} {'items':>6} {'recarena run':<22} {'T-RECS imp/s':>13} "
        f"{'popularity':>11} {'ratio':>7} {'mf':>11} {'ratio':>7}"
    )
    for users, items, m, days in summary:
        for label, suffix in (("1 day", ""), ("matched impressions", " matched")):
            pop, mf = m["popularity" + suffix], m["mf" + suffix]
            if suffix:
                label = f"{days['popularity']:g} / {days['mf']:g} days"
            print(
                f"{users:>6} {items:>6} {label:<22} {m['trecs']:>13,.0f} {pop:>11,.0f} "
                f"{pop / m['trecs']:>6.1f}x {mf:>11,.0f} {mf / m['trecs']:>6.1f}x"
            )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
