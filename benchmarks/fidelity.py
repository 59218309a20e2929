"""Fidelity figures against the project's targets, and the wall time of every step.

    python benchmarks/fidelity.py [--dataset ml-100k] [--dataset PATH ...] [--users N] [--llm]

Runs the same code as ``recarena fidelity`` (analysis/fidelity/report.py) with the default seed
into a temporary directory, once per dataset (default: ml-100k, and ml-latest-small from
../shared/data when it is there), and prints for each: the target figures beside their targets
(Kendall tau over the recommenders, 1:1 accuracy / F1 / AUC, rating TV distance offline and in
the simulation), the orderings of check 3 side by side, and the seconds of every step. Timings
depend on how busy the machine is (the load average is printed beside them): check 3 trains seven
recommenders in worker processes (the usable CPUs, at most 4), each on one torch thread, so the
results do not depend on the core count or on which process trained an arm.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LATEST_SMALL = ROOT.parent / "shared" / "data" / "ml-latest-small"

# (label, how to read it from fidelity.json, comparison, target)
TARGETS = (
    ("Kendall tau, NDCG@10 vs sim CTR", ("tau", "kendall_tau_ndcg"), ">=", 0.8),
    ("Kendall tau, Recall@10 vs sim CTR", ("tau", "kendall_tau_recall"), ">=", 0.8),
    ("Spearman, NDCG@10 vs sim CTR", ("tau", "spearman_ndcg"), ">=", None),
    ("1:1 accuracy", ("taste", "accuracy"), ">=", 0.85),
    ("1:1 F1", ("taste", "f1"), ">=", 0.80),
    ("1:1 AUC (2AFC)", ("taste", "auc"), ">=", 0.92),
    ("rating TV, offline (ordinal model)", ("tv", "ordinal model, held-out pairs"), "<=", 0.05),
    ("rating TV, in simulation", ("tv", "simulation"), "<=", 0.08),
)


def figure(result: dict, where: tuple[str, str]) -> dict | None:
    kind, key = where
    if kind == "tau":
        return result["ranking_agreement"].get(key)
    if kind == "taste":
        one = next(t for t in result["taste_discrimination"] if t["m"] == 1)
        return one[key]
    found = [r for r in result["rating_distribution"] if r["variant"] == key]
    return found[0]["tv_distance"] if found else None


def target_lines(result: dict) -> list[str]:
    n_arms = len(result["ranking_agreement"]["arms"])
    lines = [f"{'figure':<38}{'value [95% CI]':<28}{'target':<10}met"]
    for label, where, op, target in TARGETS:
        e = figure(result, where)
        if e is None or e["value"] is None:
            lines.append(f"{label:<38}{'n/a':<28}")
            continue
        ci = f" [{e['low']:.3f}, {e['high']:.3f}]" if e["low"] is not None else ""
        value = f"{e['value']:.3f}{ci}"
        if target is None:
            lines.append(f"{label:<38}{value:<28}")
            continue
        met = e["value"] >= target if op == ">=" else e["value"] <= target
        lines.append(f"{label:<38}{value:<28}{op + ' ' + str(target):<10}{'yes' if met else 'NO'}")
    lines.append(f"recommenders in check 3: {n_arms}")
    one = next(t for t in result["taste_discrimination"] if t["m"] == 1)
    tau_real = result["ranking_agreement"].get("kendall_tau_real_ndcg_recall")
    references = (
        ("1:1 AUC, popularity alone", one.get("popularity_auc")),
        ("1:1 accuracy, best threshold (oracle)", one.get("best_threshold_accuracy")),
        ("Kendall tau, real NDCG@10 vs Recall", tau_real),
    )
    for label, e in references:  # what the targets' figures can be read against
        if isinstance(e, dict):
            ci = f" [{e['low']:.3f}, {e['high']:.3f}]" if e["low"] is not None else ""
            lines.append(f"{label:<38}{e['value']:.3f}{ci:<23}reference")
        elif e is not None:
            lines.append(f"{label:<38}{e:<28.3f}reference")
    return lines


def main() -> None:
    from recarena.simulator.cli.guards import reading
    from recarena.simulator.core.errors import RecarenaError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", default=None)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", action="store_true", help="add a 10-user LLM panel (local)")
    args = parser.parse_args()
    datasets = args.dataset or ["ml-100k"] + ([str(LATEST_SMALL)] if LATEST_SMALL.exists() else [])
    try:
        if not 0 <= args.seed < 2**64:  # what recarena fidelity --seed takes
            raise RecarenaError(f"--seed {args.seed}: 0 to 2^64-1")
        if args.users is not None and args.users < 2:
            raise RecarenaError(f"--users {args.users}: at least 2")
        for dataset in datasets:
            with reading(f"fidelity on {dataset}"):  # an unreadable file: one line too
                run(dataset, args)
    except RecarenaError as exc:  # the user's data or options: one line, as recarena fidelity
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted (SIGINT): no report for the dataset in progress", file=sys.stderr)
        sys.exit(130)


def run(dataset: str, args: argparse.Namespace) -> None:
    """One dataset's fidelity run, printed."""
    from recarena.analysis.fidelity.report import FidelityConfig, side_by_side, write_report

    cfg = FidelityConfig(
        dataset=dataset,
        users=args.users,
        seed=args.seed,
        llm={"users": 10} if args.llm else None,
    )
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = write_report(Path(tmp) / "fidelity", cfg)
    total = time.perf_counter() - started
    d = result["dataset"]
    print(
        f"\n== {d['name']}: {d['users']} users, {d['items']} items, "
        f"{d['interactions']} interactions (seed {args.seed}) =="
    )
    print("\n".join(target_lines(result)))
    print()
    print("\n".join(side_by_side(result)))
    print(f"\n{'step':<28}{'seconds':>10}")
    for step, seconds in result["seconds"].items():
        print(f"{step:<28}{seconds:>10.2f}")
    print(f"{'total (wall)':<28}{total:>10.2f}")
    load_after = os.getloadavg()
    print(  # other work on the cores stretches the seconds above, never the figures
        "load average (1, 5, 15 min): "
        f"{' '.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} at the end",
        flush=True,
    )


if __name__ == "__main__":
    main()
