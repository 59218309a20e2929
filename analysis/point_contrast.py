"""Contrast two points of a sweep, per arm: paired over replicates (common random numbers).

``recarena compare`` compares arms within one point. A population feature (users who talk, say)
is switched by a sweep instead, and its effect is the difference between two points of the same
arm. Every point of a replicate starts from the same users, items and graph, so the difference
is taken per replicate and its mean gets a percentile-bootstrap CI over replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from recarena.analysis.compare import estimate_interval
from recarena.analysis.load import load
from recarena.analysis.metrics import compute_metrics


def point_contrast(
    run_dir: str | Path, metrics: Sequence[str], point_a: int = 0, point_b: int = 1
) -> pl.DataFrame:
    """``arm, metric, a, b, delta, ci_low, ci_high, reps``: mean at each point and b − a."""
    values = [
        compute_metrics(load(run_dir, point=p), list(metrics)).with_columns(pl.lit(p).alias("pt"))
        for p in (point_a, point_b)
    ]
    wide = (
        pl.concat(values)
        .pivot(on="pt", index=["arm", "metric", "rep"], values="value")
        .rename({str(point_a): "a", str(point_b): "b"})
        .drop_nulls(["a", "b"])
    )
    rows = []
    for (arm, metric), cell in wide.group_by(["arm", "metric"], maintain_order=True):
        a, b = cell["a"].to_numpy(), cell["b"].to_numpy()
        mean, low, high = estimate_interval(b - a, rng=np.random.default_rng(0))
        rows.append({"arm": arm, "metric": metric, "a": float(a.mean()), "b": float(b.mean()),
                     "delta": mean, "ci_low": low, "ci_high": high,
                     "reps": cell.height})  # fmt: skip
    return pl.DataFrame(rows)
