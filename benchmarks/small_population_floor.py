"""Where a 1,000-user cell's time goes, set against 100x T-RECS's impressions/s.

The performance issue asks for 100x T-RECS 0.2.1 at 1,000 users / 1,000 items. This script
measures, in one run, what that budget is in seconds for the impressions T-RECS shows (10 pages
for each of 1,000 users) and what a recarena cell of as many impressions spends, split into
parts that do not depend on how fast the engine's own bookkeeping is:

* **fixed**: the same cell with no visits (``visits_per_day`` ~ 0): building the world (users,
  catalog, creators, recommender), the retrain and review events, opening, writing and
  publishing the Parquet logs and the manifest; what any cell of this size pays before a page;
* **fit**, **recommend**, **respond**: the recommender's fits and answers and the users' choice
  model, as the cell's manifest times them (``timings_seconds``): the plug-ins' own work;
* **batches**: how many page batches the engine served, and pages per batch. At 1,000 users a
  simulated day's sessions are spread over the day, a session's next page depends on its
  previous one (fatigue, satiation, memory), and every retrain and every upload the recommender
  sees at once ends a run of independent pages, so batches are small; T-RECS serves every user
  at once, 10 batches of 1,000 pages.

Each recarena figure is the median of ``--repeats`` fresh subprocesses (torch imported before
the clock, as in benchmarks/engine.py); T-RECS runs as in benchmarks/peer_trecs.py, interleaved.
Prints the load average. Nothing is asserted.

    python benchmarks/small_population_floor.py
    python benchmarks/small_population_floor.py --repeats 5 --trecs-venv /tmp/v
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
USERS, ITEMS, TRECS_STEPS = 1_000, 1_000, 10
NO_VISITS = 1e-9
"""Visits per user per day for the fixed-cost cell: no session starts in the horizon."""

CHILD = """
import json, sys, tempfile, time
sys.path.insert(0, {here!r})
import engine, torch
torch.set_num_threads(1)
from recarena.simulator.engine import model as model_module, waves
from recarena.simulator.runner.cell import run_cell
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.resolve import parse_scenario

batches = {{"pages": 0, "batches": 0}}
wave, serve = waves.PageWaves._wave, model_module.SimulationModel._serve

def counted_wave(self, live, *args):
    batches["batches"] += 1
    batches["pages"] += len(live)
    return wave(self, live, *args)

def counted_serve(self, now):
    batches["batches"] += 1
    batches["pages"] += len(self.active)
    return serve(self, now)

waves.PageWaves._wave = counted_wave
model_module.SimulationModel._serve = counted_serve
doc = engine.scenario_doc({users}, {recommender!r}, {items}, {days!r})
if {visits!r} is not None:
    doc["population"]["visits_per_day"] = {visits!r}
doc = parse_scenario(doc).model_dump(mode="json")
with tempfile.TemporaryDirectory() as tmp:
    started = time.perf_counter()
    manifest = run_cell(doc, Cell(0, 0, {recommender!r}, 0), tmp)
    wall = time.perf_counter() - started
print(json.dumps({{"wall": wall, "impressions": manifest["rows"]["exposures"],
                  "timings": manifest["timings_seconds"], **batches}}))
"""


def run_cell(recommender: str, days: float, visits: float | None = None) -> dict:
    """One fresh cell's wall seconds, impressions, timings and page batches."""
    code = CHILD.format(
        here=str(HERE), users=USERS, items=ITEMS, recommender=recommender, days=days, visits=visits
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"recarena {recommender} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trecs-venv", type=Path, default=Path("/tmp/trecs-venv"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import peer_trecs  # the same T-RECS install and run as the side-by-side benchmark

    python = peer_trecs.ensure_trecs(args.trecs_venv)
    print(f"load average at the start: {os.getloadavg()}")
    trecs_impressions = USERS * 10 * TRECS_STEPS
    trecs: list[float] = []
    rows: dict[str, dict[str, list[float]]] = {}
    days: dict[str, float] = {}
    for recommender in ("popularity", "mf"):  # days for T-RECS's impressions, from one day
        one_day = run_cell(recommender, 1)
        days[recommender] = round(trecs_impressions / one_day["impressions"], 2)
    for repeat in range(args.repeats):
        trecs.append(peer_trecs.run_trecs(python, USERS, ITEMS, TRECS_STEPS))
        for recommender in ("popularity", "mf"):
            full = run_cell(recommender, days[recommender])
            fixed = run_cell(recommender, days[recommender], NO_VISITS)
            t = full["timings"]
            row = rows.setdefault(recommender, {})
            for key, value in (
                ("impressions", full["impressions"]),
                ("whole", full["wall"]),
                ("fixed", fixed["wall"]),
                ("fit", t["fit"]),
                ("recommend", t["recommend"]),
                ("respond", t["respond"]),
                ("log", t["log"]),
                ("batches", full["batches"]),
                ("pages", full["pages"]),
            ):
                row.setdefault(key, []).append(float(value))
        print(
            f"run {repeat + 1}: T-RECS {trecs[-1]:,.0f} imp/s, "
            + ", ".join(f"{r} {rows[r]['whole'][-1]:.3f} s" for r in rows)
            + f"  (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    speed = statistics.median(trecs)
    print(f"\nT-RECS 0.2.1, {USERS:,} users / {ITEMS:,} items: {speed:,.0f} impressions/s (median)")
    print(
        f"{'recommender':<11} {'days':>5} {'impressions':>11} {'100x budget':>11} {'whole':>7} "
        f"{'fixed':>7} {'fit':>7} {'recommend':>9} {'respond':>8} {'log':>7} {'batches':>7} "
        f"{'pages/batch':>11}"
    )
    for recommender, row in rows.items():
        m = {key: statistics.median(values) for key, values in row.items()}
        budget = m["impressions"] / (100 * speed)
        floor = m["fixed"] + m["fit"] + m["recommend"] + m["respond"]
        print(
            f"{recommender:<11} {days[recommender]:>5g} {m['impressions']:>11,.0f} "
            f"{budget:>10.3f}s {m['whole']:>6.3f}s {m['fixed']:>6.3f}s {m['fit']:>6.3f}s "
            f"{m['recommend']:>8.3f}s {m['respond']:>7.3f}s {m['log']:>6.3f}s "
            f"{m['batches']:>7,.0f} {m['pages'] / max(m['batches'], 1):>11.1f}"
        )
        print(
            f"  {recommender}: now {m['impressions'] / m['whole'] / speed:.1f}x T-RECS; fixed + fit"
            f" + recommend + respond = {floor:.3f} s, {floor / budget:.2f}x the 100x budget "
            f"(fixed + fit alone {(m['fixed'] + m['fit']) / budget:.2f}x)"
        )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
