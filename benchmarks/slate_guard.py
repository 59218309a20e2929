"""What the slate guard costs: one quickstart cell with the guard's check vs with it a no-op.

The guard (simulator/engine/slate_guard.py) checks every recommender answer. This runs the same
cell of scenarios/quickstart.yaml (same arm, replicate 0) alternately with the real check and
with ``SlateGuard.check`` replaced by a no-op, keeps the fastest of each, and also sums the time
spent inside the check itself (the direct cost, less sensitive to other load on the machine).
Prints both, the ratio and the load average; nothing is asserted.

    python benchmarks/slate_guard.py                  # popularity arm, 3 rounds
    python benchmarks/slate_guard.py --arm mf --rounds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "quickstart.yaml"))
    parser.add_argument("--arm", default="popularity")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from recarena.simulator.engine.slate_guard import SlateGuard
    from recarena.simulator.runner.plan import Cell
    from recarena.simulator.runner.resolve import load_scenario

    try:
        from recarena.simulator.runner.cell import run_cell
    except ImportError:  # before the runner was split into modules
        from recarena.simulator.runner.experiment import run_cell  # type: ignore[no-redef]

    scenario = load_scenario(args.scenario)
    names = [arm.name for arm in scenario.arms]
    index = names.index(args.arm)
    doc = scenario.model_dump(mode="json")
    real_check = SlateGuard.check
    inside = {"seconds": 0.0, "calls": 0}

    def timed_check(self, *a, **k):
        started = time.perf_counter()
        try:
            return real_check(self, *a, **k)
        finally:
            inside["seconds"] += time.perf_counter() - started
            inside["calls"] += 1

    def no_check(self, *a, **k):
        return None

    def one_cell(check) -> tuple[float, int]:
        SlateGuard.check = check
        try:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                manifest = run_cell(doc, Cell(0, index, args.arm, 0), tmp)
                return time.perf_counter() - started, manifest["rows"]["exposures"]
        finally:
            SlateGuard.check = real_check

    one_cell(no_check)  # warm-up: imports, first-touch allocations
    guarded, unguarded, in_check = [], [], []
    impressions = 0
    for _ in range(args.rounds):
        wall, impressions = one_cell(no_check)
        unguarded.append(wall)
        inside.update(seconds=0.0, calls=0)
        wall, _ = one_cell(timed_check)
        guarded.append(wall)
        in_check.append(inside["seconds"] / wall)

    best_on, best_off = min(guarded), min(unguarded)
    load = os.getloadavg()
    where = f"scenario {Path(args.scenario).name}, arm {args.arm}, rep 0"
    print(f"{where}: {impressions:,} impressions")
    on, off = ([round(w, 3) for w in runs] for runs in (guarded, unguarded))
    print(f"with guard:    {best_on:.3f} s (best of {args.rounds}: {on})")
    print(f"guard no-op:   {best_off:.3f} s (best of {args.rounds}: {off})")
    print(f"ratio:         {best_on / best_off:.4f} ({100 * (best_on / best_off - 1):+.2f}%)")
    print(
        f"inside check:  {100 * min(in_check):.2f}% of the guarded cell's wall time "
        f"({inside['calls']} calls in the last round)"
    )
    print(f"load average:  {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
