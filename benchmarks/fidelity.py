"""Wall time of ``recarena fidelity`` per step (calibration, each check, each recommender).

    python benchmarks/fidelity.py [--dataset ml-100k] [--users N] [--llm]

Runs the same code as the command (analysis/fidelity_report.py) into a temporary directory and
prints the seconds of every step and the total. The figures depend on how busy the machine is:
check 3 trains four recommenders and runs the engine on one core (torch is pinned to one
thread so that results do not depend on the core count).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from recarena.analysis.fidelity.report import FidelityConfig, write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", action="store_true", help="add a 10-user LLM panel (local)")
    args = parser.parse_args()
    cfg = FidelityConfig(
        dataset=args.dataset,
        users=args.users,
        seed=args.seed,
        llm={"users": 10} if args.llm else None,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = write_report(Path(tmp) / "fidelity", cfg)
    total = time.perf_counter() - started
    print(f"{'step':<28}{'seconds':>10}")
    for step, seconds in result["seconds"].items():
        print(f"{step:<28}{seconds:>10.2f}")
    print(f"{'total (wall)':<28}{total:>10.2f}")


if __name__ == "__main__":
    main()
