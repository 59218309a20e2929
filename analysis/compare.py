"""A/B comparison: per-arm means and deltas vs a baseline with paired bootstrap CIs.

Arms of the same replicate share their random numbers, so the per-replicate difference between
an arm and the baseline removes most of the replicate-to-replicate noise. The CI of a delta is a
percentile bootstrap of the mean paired difference, resampling replicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from rich.table import Table

from analysis.load import RunLogs
from analysis.metrics import compute_metrics
from simulator.errors import RecarenaError


def estimate_interval(
    values: np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float | None, float | None]:
    """Mean and percentile-bootstrap CI of the mean (None bounds with fewer than 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.shape[0] < 2:
        return mean, None, None
    rng = rng if rng is not None else np.random.default_rng(0)
    idx = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    boots = values[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return mean, float(low), float(high)


def compare(
    logs_or_metrics: RunLogs | pl.DataFrame,
    baseline: str | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per (metric, arm): mean with CI, and the paired delta vs the baseline with CI."""
    if isinstance(logs_or_metrics, RunLogs):
        long = compute_metrics(logs_or_metrics, metrics)
        arms = logs_or_metrics.arms
        baseline = baseline or logs_or_metrics.baseline
    else:
        long = logs_or_metrics
        if metrics:
            long = long.filter(pl.col("metric").is_in(list(metrics)))
        arms = list(dict.fromkeys(long["arm"].to_list()))
        baseline = baseline or arms[0]
    if baseline not in arms:
        raise RecarenaError(f"--baseline: unknown arm {baseline!r}; arms: {', '.join(arms)}")

    rng = np.random.default_rng(seed)
    rows = []
    for metric in dict.fromkeys(long["metric"].to_list()):
        per_metric = long.filter(pl.col("metric") == metric)
        base = dict(per_metric.filter(pl.col("arm") == baseline).select("rep", "value").iter_rows())
        base_mean = float(np.mean(list(base.values())))
        for arm in arms:
            values = dict(
                per_metric.filter(pl.col("arm") == arm).select("rep", "value").iter_rows()
            )
            mean, low, high = estimate_interval(np.array(list(values.values())), n_boot, level, rng)
            row = {
                "metric": metric,
                "arm": arm,
                "n_reps": len(values),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "delta": None,
                "delta_ci_low": None,
                "delta_ci_high": None,
                "rel_delta": None,
                "significant": False,
            }
            if arm != baseline:
                paired = sorted(set(values) & set(base))
                diffs = np.array([values[r] - base[r] for r in paired])
                delta, d_low, d_high = estimate_interval(diffs, n_boot, level, rng)
                row |= {
                    "delta": delta,
                    "delta_ci_low": d_low,
                    "delta_ci_high": d_high,
                    "rel_delta": delta / base_mean if base_mean else None,
                    "significant": d_low is not None and (d_low > 0 or d_high < 0),
                }
            rows.append(row)
    schema = {
        "metric": pl.Utf8,
        "arm": pl.Utf8,
        "n_reps": pl.Int64,
        "mean": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "delta": pl.Float64,
        "delta_ci_low": pl.Float64,
        "delta_ci_high": pl.Float64,
        "rel_delta": pl.Float64,
        "significant": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema)


def _pct(x: float) -> str:
    return f"{x:+.1f}%" if abs(x) < 100 else f"{x:+.0f}%"


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def format_table(frame: pl.DataFrame, higher_is_better: Mapping[str, bool] | None = None) -> Table:
    """The A/B table for a terminal: one row per metric and arm, deltas vs the baseline.

    A delta whose CI excludes 0 is marked ``*`` and coloured green or red by whether the metric
    is better higher or lower.
    """
    baseline = frame.filter(pl.col("delta").is_null())["arm"].to_list()
    base = baseline[0] if baseline else ""
    n_reps = int(frame["n_reps"].min()) if frame.height else 0
    note = (
        f"Δ relative to the baseline mean; paired bootstrap 95% CI over {n_reps} replicates "
        "(common random numbers); * = CI excludes 0"
        if n_reps >= 2
        else "1 replicate: no confidence intervals (use --replicates)"
    )
    table = Table(title=f"A/B vs baseline '{base}'", caption=note)
    for name, justify in [
        ("metric", "left"),
        ("arm", "left"),
        ("mean", "right"),
        ("Δ", "right"),
        ("95% CI of Δ", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for metric in dict.fromkeys(frame["metric"].to_list()):
        rows = frame.filter(pl.col("metric") == metric).iter_rows(named=True)
        for i, row in enumerate(rows):
            change = interval = ""
            if row["delta"] is not None:
                base_mean = row["mean"] - row["delta"]
                if base_mean:  # show the delta and its CI relative to the baseline mean
                    change = _pct(100 * row["delta"] / base_mean)
                    bounds = [row["delta_ci_low"], row["delta_ci_high"]]
                    if bounds[0] is not None:
                        low, high = (100 * b / base_mean for b in bounds)
                        interval = f"[{_pct(min(low, high))}, {_pct(max(low, high))}]"
                else:
                    change = f"{row['delta']:+.3g}"
                    if row["delta_ci_low"] is not None:
                        interval = f"[{row['delta_ci_low']:+.3g}, {row['delta_ci_high']:+.3g}]"
                if row["significant"]:
                    change += "*"
                    if higher_is_better and metric in higher_is_better:
                        good = (row["delta"] > 0) == higher_is_better[metric]
                        colour = "green" if good else "red"
                        change = f"[{colour}]{change}[/{colour}]"
            table.add_row(metric if i == 0 else "", row["arm"], _fmt(row["mean"]), change, interval)
    return table
