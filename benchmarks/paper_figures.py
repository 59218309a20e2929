"""Figures the paper pages quote that ``recarena compare`` does not print.

    python benchmarks/paper_figures.py preference runs/beyond_relevance --baseline mf
    python benchmarks/paper_figures.py clock /work/shared/data/ml-latest-small/ratings.csv

``preference``: per arm, the share of long-term users (sessions on >= --min-days days under
both arms) who got more clicks per session than under the baseline, and intra-list
similarity (1 − intra_list_diversity), each as mean and 95% t-interval over replicates.
``clock``: the hour-of-day profile of a timestamped ratings file, fitted with the same circular
smoothing the daily rhythm uses (the calibration path of population.daily_rhythm).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from recarena.agents.users.daily_rhythm import fit_clock_profiles, hour_of_day
from recarena.analysis.load import load
from recarena.analysis.metrics import compute_metrics
from recarena.analysis.metrics_retention import arm_preference, mean_ci


def _fmt(values: np.ndarray) -> str:
    mean, low, high = mean_ci(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def preference(run: str, baseline: str, min_days: int) -> None:
    logs = load(run)
    ild = compute_metrics(logs, ["intra_list_diversity"])
    for arm in logs.arms:
        ils = 1.0 - ild.filter(arm=arm)["value"].to_numpy()
        line = f"{arm:>14}: intra-list similarity {_fmt(ils)}"
        if arm != baseline:
            shares = arm_preference(logs, arm, baseline, min_days)
            line += (
                f"; long-term users favouring it over {baseline}: "
                f"{_fmt(shares['favour_arm'].to_numpy())} "
                f"(users per replicate {int(shares['users'].mean())})"
            )
        print(line)


def clock(path: str, width: float) -> None:
    frame = pd.read_csv(path, usecols=["userId", "timestamp"])
    _, user = np.unique(frame["userId"].to_numpy(), return_inverse=True)
    seconds = frame["timestamp"].to_numpy(np.float64)
    profiles = fit_clock_profiles(user, seconds, int(user.max()) + 1, width_hours=width)
    pooled = profiles.pooled
    print("pooled hour-of-day profile (UTC, %):")
    print(" ".join(f"{h:02d}:{100 * v:.1f}" for h, v in enumerate(pooled)))
    print(f"peak {pooled.argmax():02d}h, trough {pooled.argmin():02d}h, "
          f"peak/trough {pooled.max() / pooled.min():.2f}")  # fmt: skip
    peak = profiles.start.argmax(axis=1)
    distance = np.abs(hour_of_day(seconds) - peak[user])
    distance = np.minimum(distance, 24 - distance)
    print(f"events within 2 h of their user's own peak hour: {(distance <= 2).mean():.3f} "
          f"(a flat clock gives {5 / 24:.3f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pref = sub.add_parser("preference")
    pref.add_argument("run")
    pref.add_argument("--baseline", required=True)
    pref.add_argument("--min-days", type=int, default=7)
    clk = sub.add_parser("clock")
    clk.add_argument("ratings")
    clk.add_argument("--width", type=float, default=1.5)
    args = parser.parse_args()
    if args.command == "preference":
        preference(args.run, args.baseline, args.min_days)
    else:
        clock(args.ratings, args.width)


if __name__ == "__main__":
    main()
