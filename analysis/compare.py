"""A/B comparison: per-arm means and deltas vs a baseline with paired bootstrap CIs.

Arms of the same replicate share their random numbers, so the per-replicate difference between
an arm and the baseline removes most of the replicate-to-replicate noise. The CI of a delta is a
percentile bootstrap of the mean paired difference, resampling replicates.

With fewer than ``MIN_REPLICATES`` replicates a bootstrap over replicates is too coarse (three
values have ten distinct resamples), so metrics that are ratios of per-user sums are instead
bootstrapped over users within each replicate: a cluster bootstrap (a user's rows move
together) that draws the *same* users for every arm, because every arm of a replicate serves the
same simulated population. That CI describes the uncertainty from which users were simulated,
with the replicates' worlds (catalog, creators) held fixed. Metrics that are not sums over users
(Gini, coverage, correlations) keep the replicate bootstrap. ``ci_over`` (the CLI's
``--ci-over``) lets the user force either unit instead of this rule.

Every delta gets a bootstrap p-value, and the family of all deltas in one table is corrected
with Holm–Bonferroni (see :func:`holm`); ``significant`` uses the adjusted p-value.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from rich.table import Table

from recarena.analysis.load import RunLogs, require_one_world
from recarena.analysis.metrics import compute_metrics, compute_user_metrics
from recarena.analysis.options import check_bootstrap, name_list
from recarena.analysis.scalars import as_int
from recarena.simulator.core.errors import RecarenaError

MIN_REPLICATES = 5
"""Below this many replicates, per-user metrics are bootstrapped over users instead."""
CI_OVER = ("auto", "users", "replicates")
"""What ``compare(ci_over=...)`` and ``--ci-over`` accept."""


def _keyword(value: str | None = None) -> str:
    return "ci_over" if value is None else f"ci_over={value!r}"


def _flag(value: str | None = None) -> str:
    return "--ci-over" if value is None else f"--ci-over {value}"


class CIOverError(RecarenaError):
    """A ``ci_over`` compare() cannot honour, worded for its Python caller (``ci_over='users'``,
    the keyword they wrote); :meth:`for_cli` words it for the command line (``--ci-over
    users``). Was: a notebook's ``compare(..., ci_over="user")`` named ``--ci-over``."""

    def __init__(self, text: Callable[[Callable[..., str]], str]) -> None:
        self._text = text
        super().__init__(text(_keyword))

    def for_cli(self) -> str:
        return self._text(_flag)


MAX_BUCKETS = 2000
"""The user bootstrap resamples at most this many random buckets of users per replicate."""
_CHUNK_ENTRIES = 4_000_000
"""Resample weights held in memory at once (bootstrap draws × users), ~32 MB of float64."""

SCHEMA = {
    "metric": pl.Utf8,
    "arm": pl.Utf8,
    "baseline": pl.Utf8,
    "n_reps": pl.Int64,
    "mean": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "delta": pl.Float64,
    "delta_ci_low": pl.Float64,
    "delta_ci_high": pl.Float64,
    "rel_delta": pl.Float64,
    "rel_ci_low": pl.Float64,
    "rel_ci_high": pl.Float64,
    "significant": pl.Boolean,
    "ci_over": pl.Utf8,
    "p_value": pl.Float64,
    "p_adjusted": pl.Float64,
}


def _resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, n]`` bootstrap draws as counts: how often each of n units is drawn.

    A bootstrap sum is then one row of ``counts @ values``: a matrix product instead of a
    gather, and one draw of counts serves every metric and arm with the same units.
    """
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


class _Resampler:
    """Bootstrap means over replicates, with one weight matrix per number of replicates."""

    def __init__(self, n_boot: int, rng: np.random.Generator) -> None:
        self.n_boot, self.rng = n_boot, rng
        self._weights: dict[int, np.ndarray] = {}

    def means(self, values: np.ndarray) -> np.ndarray:
        n = values.shape[0]
        if n not in self._weights:
            self._weights[n] = _resample_counts(n, self.n_boot, self.rng) / n
        return self._weights[n] @ values


def _resample_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return _Resampler(n_boot, rng).means(values)


def _percentiles(boots: np.ndarray, level: float) -> tuple[float | None, float | None]:
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return None, None
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return float(low), float(high)


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
    low, high = _percentiles(_resample_means(values, n_boot, rng), level)
    return mean, low, high


def bootstrap_p_value(boots: np.ndarray) -> float:
    """Two-sided p-value of "the delta is 0" from its bootstrap distribution.

    p = 2 min(#{δ* ≤ 0} + 1, #{δ* ≥ 0} + 1) / (B + 1), capped at 1: the smallest α at which
    the percentile (1 − α) CI would exclude 0, with the +1 that keeps it from being 0 after
    finitely many resamples. Resamples that are undefined (NaN) are left out.
    """
    boots = boots[np.isfinite(boots)]
    below, above = int((boots <= 0).sum()), int((boots >= 0).sum())
    return min(1.0, 2 * min(below + 1, above + 1) / (boots.size + 1))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values: reject where adjusted p < α.

    p_(i) sorted ascending gets max_{j ≤ i} min(1, (m − j + 1) p_(j)). Chosen over
    Benjamini–Hochberg because an A/B table is read cell by cell ("this arm moved this
    metric"), which needs the family-wise error rate, and Holm controls it under any
    dependence between p-values: the metrics of one run (CTR, consumption, clicks per user)
    are strongly correlated, and BH's guarantee needs positive dependence of a kind we cannot
    check. Holm is uniformly more powerful than plain Bonferroni.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _user_bootstrap(
    per_user: pl.DataFrame, n_boot: int, rng: np.random.Generator
) -> dict[tuple[str, str, int], np.ndarray]:
    """Bootstrap values of every (metric, arm, rep) from resampling that rep's users.

    In each replicate the users (the union over arms and metrics) are drawn with replacement
    once per bootstrap draw, and every metric and arm is recomputed as Σnum/Σden over the drawn
    users. Using one set of draws for all arms pairs the arms by user. With more than
    ``MAX_BUCKETS`` users, users are first dealt at random into that many equal buckets (the
    same bucket under every arm) and buckets are resampled: the bucketed bootstrap, which keeps
    the cost independent of the population while its buckets, being i.i.d. sums of users, give
    the same variance. Draws are multinomial counts, so the sums are one matrix product.
    """
    out: dict[tuple[str, str, int], np.ndarray] = {}
    for rep in sorted(per_user["rep"].unique().to_list()):
        part = per_user.filter(pl.col("rep") == rep)
        users = part.select(pl.col("user_id").unique().sort()).with_row_index("pos")
        keys = part.select("metric", "arm").unique(maintain_order=True).with_row_index("col")
        part = part.join(users, on="user_id").join(keys, on=["metric", "arm"])
        n_units = min(users.height, MAX_BUCKETS)
        unit = rng.permutation(users.height) % n_units
        width = 2 * keys.height
        cell = unit[part["pos"].to_numpy()] * width + 2 * part["col"].to_numpy().astype(np.int64)
        matrix = np.bincount(cell, part["num"].to_numpy(), n_units * width)
        matrix += np.bincount(cell + 1, part["den"].to_numpy(), n_units * width)
        matrix = matrix.reshape(n_units, width)
        sums = np.empty((n_boot, width))
        chunk = max(1, _CHUNK_ENTRIES // n_units)
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            sums[start : start + b] = _resample_counts(n_units, b, rng) @ matrix
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = sums[:, 0::2] / sums[:, 1::2]
        # a draw of users with no denominator (no success to count turns over) has no value:
        # NaN, which the percentiles and p-values leave out; as ±inf it made 'inf - inf' in the
        # paired deltas, and a 'warning: invalid value encountered in subtract' under the table
        ratios[sums[:, 1::2] == 0] = np.nan
        for j, metric, arm in keys.iter_rows():
            out[(metric, arm, int(rep))] = ratios[:, j]
    return out


def _cells(long: pl.DataFrame) -> dict[tuple[str, str], dict[int, float]]:
    cells: dict[tuple[str, str], dict[int, float]] = {}
    for metric, arm, rep, value in long.select("metric", "arm", "rep", "value").iter_rows():
        cells.setdefault((metric, arm), {})[int(rep)] = float(value)
    return cells


NO_VALUE = (
    "undefined in every cell: nothing logged to divide by, or the run lacks what the metric "
    "measures, such as 8 days for retention_d7 or a conversation surface for conv_*"
)
"""Why a metric can have no value in any finished cell, when the scenario does not say."""


class UndefinedMetricWarning(UserWarning):
    """:func:`compare` left metrics out of its table: no finished cell has a value for them.
    Its own class, so that ``recarena compare`` can refuse when that is every metric asked for
    (an empty table and exit 0 looked like a comparison that found nothing)."""


def compare(
    logs_or_metrics: RunLogs | pl.DataFrame,
    baseline: str | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    per_user: pl.DataFrame | None = None,
    min_replicates: int = MIN_REPLICATES,
    ci_over: str = "auto",
) -> pl.DataFrame:
    """One row per (metric, arm): mean with CI, and the paired delta vs the baseline with CI.

    ``ci_over`` says what the CIs resample: ``replicates``, or ``users`` (cluster bootstrap by
    user within replicates, for per-user metrics when there are fewer than ``min_replicates``
    replicates). With RunLogs the per-user values are computed here; with a frame of metric
    values, pass them as ``per_user`` (metric, arm, rep, user_id, num, den). ``p_value`` is the
    bootstrap p-value of the delta, ``p_adjusted`` its Holm adjustment over every delta in the
    table, and ``significant`` is ``p_adjusted < 1 − level``. The number of bootstrap draws is
    raised to at least 4m/(1 − level) for m deltas, so that the smallest attainable p-value
    can pass Holm's strictest threshold (1 − level)/m.

    ``ci_over`` chooses the unit: ``auto`` (the rule above), ``users`` (every per-user metric is
    bootstrapped over users, whatever the number of replicates) or ``replicates`` (every metric
    over replicates; a RecarenaError if the run has fewer than 2). Metrics that are not sums
    over users are always bootstrapped over replicates.
    """
    if ci_over not in CI_OVER:
        raise CIOverError(
            lambda name: f"{name()}: unknown {ci_over!r}; known: {', '.join(CI_OVER)}"
        )
    check_bootstrap(n_boot, level, seed)
    metrics = name_list(metrics, "metrics")
    needed: float = {"auto": min_replicates, "users": math.inf, "replicates": 0}[ci_over]
    if isinstance(logs_or_metrics, RunLogs):
        logs = logs_or_metrics
        require_one_world(logs, "compare")
        reps = [sum(c.arm == arm for c in logs.cells) for arm in logs.arms]
        if ci_over == "replicates":
            _need_replicates(min(reps, default=0))
        if per_user is None and min(reps, default=0) < needed:
            per_user = compute_user_metrics(logs, metrics)  # also gives those cell values
        long = compute_metrics(logs, metrics, per_user)
        arms = logs.arms
        if baseline is None and logs.baseline not in arms:
            # an interrupted run whose baseline arm finished no cell: say so, as the report does
            warnings.warn(
                f"{logs.run_dir}: the baseline arm {logs.baseline!r} has no finished cells; "
                f"comparing against {arms[0]!r} (--baseline chooses another)",
                stacklevel=2,
            )
            baseline = arms[0]
        baseline = logs.baseline if baseline is None else baseline  # '' is an arm no run has
        if baseline in logs.unfinished_arms:
            raise RecarenaError(
                f"--baseline: arm {baseline!r} has no finished cells; arms with finished "
                f"cells: {', '.join(arms)}"
            )
    else:
        long = logs_or_metrics
        if metrics:
            long = long.filter(pl.col("metric").is_in(list(metrics)))
        arms = list(dict.fromkeys(long["arm"].to_list()))
        baseline = arms[0] if baseline is None else baseline
    if baseline not in arms:
        raise RecarenaError(f"--baseline: unknown arm {baseline!r}; arms: {', '.join(arms)}")
    if ci_over == "replicates":
        _need_replicates(long["rep"].n_unique() if long.height else 0)
    asked = list(metrics) if metrics else list(dict.fromkeys(long["metric"].to_list()))
    long = long.filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
    names = list(dict.fromkeys(long["metric"].to_list()))
    undefined = [name for name in asked if name not in names]
    if undefined:  # was: the rows were left out of the table without a word
        warnings.warn(
            # the reason used to be "no exposures, sessions or clicks were logged" for every
            # metric, also for retention_d7 on a 2-day run full of sessions
            f"{', '.join(undefined)}: no finished cell has a value ({NO_VALUE}); left out of "
            "the A/B table",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    cells = _cells(long)
    n_reps = min((len(reps) for reps in cells.values()), default=0)

    alpha = 1 - level
    n_tests = len(names) * (len(arms) - 1)
    n_boot = max(n_boot, math.ceil(4 * n_tests / alpha))
    rng = np.random.default_rng(seed)
    resampler = _Resampler(n_boot, rng)
    user_boots: dict[tuple[str, str, int], np.ndarray] = {}
    if n_reps < needed and per_user is not None and per_user.height:
        per_user = per_user.filter(pl.col("metric").is_in(names) & pl.col("arm").is_in(arms))
        user_boots = _user_bootstrap(per_user, n_boot, rng)

    rows = []
    unpaired: dict[str, list[str]] = {}  # metric -> arms with values but none the baseline pairs
    for metric in names:
        by_users = any(key[0] == metric for key in user_boots)
        base = cells.get((metric, baseline), {})
        base_mean = float(np.mean(list(base.values()))) if base else math.nan
        for arm in arms:
            values = cells.get((metric, arm), {})
            if not values:
                continue
            row: dict = {
                "metric": metric,
                "arm": arm,
                "baseline": baseline,
                "n_reps": len(values),
                "ci_over": "users" if by_users else "replicates",
            }
            reps = sorted(values)
            row["mean"] = float(np.mean([values[r] for r in reps]))
            mean_boots = _boots(user_boots, metric, arm, reps, values, by_users, resampler)
            row["ci_low"], row["ci_high"] = (
                _percentiles(mean_boots, level) if mean_boots is not None else (None, None)
            )
            paired = sorted(set(values) & set(base))
            if arm != baseline and not paired:
                # the baseline has no value for this metric in any replicate where this arm has
                # one (a conversation metric against a list baseline, a rating mean where the
                # baseline's users never clicked): the row used to pass for the baseline's own,
                # and named the table's baseline when it came first
                unpaired.setdefault(metric, []).append(arm)
            elif arm != baseline:
                diffs = {r: values[r] - base[r] for r in paired}
                row["delta"] = float(np.mean(list(diffs.values())))
                row["rel_delta"] = row["delta"] / base_mean if base_mean else None
                base_boots: np.ndarray | None
                if by_users:
                    both = [
                        r
                        for r in paired
                        if (metric, arm, r) in user_boots and (metric, baseline, r) in user_boots
                    ]
                    complete = len(both) == len(paired)
                    base_draws = [user_boots[(metric, baseline, r)] for r in both]
                    draws = [
                        user_boots[(metric, arm, r)] - b
                        for r, b in zip(both, base_draws, strict=True)
                    ]
                    delta_boots = np.mean(draws, axis=0) if complete else None
                    base_boots = np.mean(base_draws, axis=0) if complete else None
                else:
                    delta_boots = _boots({}, metric, arm, paired, diffs, False, resampler)
                    # the same resampled replicates (one weight matrix per count)
                    base_boots = _boots({}, metric, baseline, paired, base, False, resampler)
                if delta_boots is not None:
                    row["delta_ci_low"], row["delta_ci_high"] = _percentiles(delta_boots, level)
                    row["p_value"] = bootstrap_p_value(delta_boots)
                    base_paired = float(np.mean([base[r] for r in paired]))
                    if base_boots is not None and base_paired > 0:
                        row["rel_ci_low"], row["rel_ci_high"] = _relative_interval(
                            delta_boots, base_boots, level
                        )
            rows.append(row)
    if unpaired:
        listed = "; ".join(f"{metric} ({', '.join(who)})" for metric, who in unpaired.items())
        warnings.warn(
            f"{listed}: no Δ, the baseline arm {baseline!r} has no value for the metric in any "
            "replicate where the arm has one",
            stacklevel=2,
        )
    tested = [i for i, row in enumerate(rows) if row.get("p_value") is not None]
    adjusted = holm([rows[i]["p_value"] for i in tested])
    for i, p_adj in zip(tested, adjusted, strict=True):
        rows[i]["p_adjusted"] = float(p_adj)
    for row in rows:
        row["significant"] = row.get("p_adjusted") is not None and row["p_adjusted"] < alpha
    return pl.DataFrame([{k: row.get(k) for k in SCHEMA} for row in rows], schema=SCHEMA)


def _need_replicates(n_reps: int) -> None:
    if n_reps >= 2:
        return

    def line(name: Callable[..., str]) -> str:
        return (
            f"{name('replicates')}: the run has {n_reps} replicate{'s' if n_reps != 1 else ''} "
            "per arm and a CI over replicates needs at least 2; rerun with --replicates 2 or "
            f"more, or use {name('users')}"
        )

    raise CIOverError(line)


def _boots(
    user_boots: Mapping[tuple[str, str, int], np.ndarray],
    metric: str,
    arm: str,
    reps: list[int],
    values: Mapping[int, float],
    by_users: bool,
    resampler: _Resampler,
) -> np.ndarray | None:
    """Bootstrap draws of the mean over ``reps``: from the user bootstrap, or over replicates."""
    if by_users:
        draws = [user_boots[(metric, arm, r)] for r in reps if (metric, arm, r) in user_boots]
        return np.mean(draws, axis=0) if len(draws) == len(reps) else None
    if len(reps) < 2:
        return None
    return resampler.means(np.array([values[r] for r in reps]))


def _relative_interval(
    delta_boots: np.ndarray, base_boots: np.ndarray, level: float
) -> tuple[float | None, float | None]:
    """The CI of the relative change: each draw's Δ over the same draw's baseline mean.

    Dividing the CI of Δ by the baseline's point mean treated that mean as known: the interval
    left out the baseline's own sampling error, and could leave the possible range (an arm at
    zero on every user, exactly -100 %, was printed as [-108 %, -94 %]). A draw whose baseline
    mean is not positive has no relative change and is left out."""
    usable = base_boots > 0
    ratios = np.divide(delta_boots, base_boots, out=np.full_like(delta_boots, np.nan), where=usable)
    return _percentiles(ratios, level)


def _pct(x: float) -> str:
    return f"{x:+.1f}%" if abs(x) < 100 else f"{x:+.0f}%"


def relative_bounds(row: Mapping[str, Any], base_mean: float) -> tuple[float, float] | None:
    """A row's CI of the relative change, in percent: from the resampled ratios where the row
    has them (``rel_ci_low``/``rel_ci_high``), else its Δ's CI over the baseline mean (a frame
    made before the ratios were kept). The terminal table and the HTML report both print it."""
    low, high = row.get("rel_ci_low"), row.get("rel_ci_high")
    if low is not None and high is not None:
        return 100 * low, 100 * high
    low, high = row.get("delta_ci_low"), row.get("delta_ci_high")
    if low is None or high is None:
        return None
    a, b = sorted((100 * low / base_mean, 100 * high / base_mean))
    return a, b


def format_mean(x: float | None) -> str:
    """An A/B table's mean: three significant figures, whole and comma-grouped from 1000, a dash
    for none. The terminal table here and the HTML report (analysis/report.py) both show it, so
    the two print the same figure."""
    if x is None:
        return "—"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def ci_units(frame: pl.DataFrame) -> tuple[int, list[str], list[str]]:
    """Replicates per arm, and the metrics whose CIs are over users and over replicates.

    The terminal caption and the HTML report word it differently from the same split. A frame
    without ``ci_over`` (from before the column existed) is over replicates throughout.
    """
    n_reps = as_int(frame["n_reps"].min()) if frame.height else 0
    over = (
        dict(frame.select("metric", "ci_over").unique(maintain_order=True).iter_rows())
        if "ci_over" in frame.columns
        else dict.fromkeys(frame["metric"].unique(maintain_order=True), "replicates")
    )
    users = [m for m, o in over.items() if o == "users"]
    return n_reps, users, [m for m in over if m not in users]


def _caption(frame: pl.DataFrame) -> str:
    """Says what each CI resamples and how significance was corrected."""
    n_reps, users, replicates = ci_units(frame)
    reps = f"{n_reps} replicate{'s' if n_reps != 1 else ''}"

    def which(group: list[str]) -> str:
        return "" if len(group) == len(users) + len(replicates) else f" for {', '.join(group)}"

    parts = ["Δ relative to the baseline mean (absolute where that mean is ≤ 0)"]
    if users:
        parts.append(
            f"95% CI over users (cluster bootstrap by user, paired across arms, within {reps})"
            + which(users)
        )
    if replicates:
        parts.append(
            f"paired bootstrap 95% CI over {reps} (common random numbers){which(replicates)}"
            if n_reps >= 2
            else f"no CI{which(replicates)}: 1 replicate (use --replicates)"
        )
    n_tests = int(frame["p_value"].is_not_null().sum())
    if n_tests:
        deltas = f"{n_tests} delta{'s' if n_tests != 1 else ''}"
        parts.append(f"* = significant after Holm correction over {deltas} (p_adj < 0.05)")
    return "; ".join(parts)


def baseline_of(frame: pl.DataFrame) -> str:
    """The arm a compare() frame is compared against ('' for an empty frame).

    From its ``baseline`` column; a frame without one (from before the column existed) names
    the arm of its first row without a delta.
    """
    if "baseline" in frame.columns:
        named = frame["baseline"].drop_nulls()
        return str(named[0]) if len(named) else ""
    bases = frame.filter(pl.col("delta").is_null())["arm"]
    return str(bases[0]) if len(bases) else ""


def format_table(frame: pl.DataFrame, higher_is_better: Mapping[str, bool] | None = None) -> Table:
    """The A/B table for a terminal: one row per metric and arm, deltas vs the baseline.

    A delta that is significant after the Holm correction is marked ``*`` and coloured green or
    red by whether the metric is better higher or lower. The caption says what each CI
    resamples (replicates or users) and names the correction.
    """
    table = Table(title=f"A/B vs baseline '{baseline_of(frame)}'", caption=_caption(frame))
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
            if row["delta"] is None and row["arm"] != baseline_of(frame):
                change = "n/a"  # the baseline has no value to pair with; compare() warned
            elif row["delta"] is not None:
                base_mean = row["mean"] - row["delta"]
                # relative to the baseline mean; absolute when that mean is ≤ 0, where a
                # percentage would flip the sign of the change
                if base_mean > 0:
                    change = _pct(100 * row["delta"] / base_mean)
                    bounds = relative_bounds(row, base_mean)
                    if bounds is not None:
                        low, high = bounds
                        interval = f"[{_pct(low)}, {_pct(high)}]"
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
            table.add_row(
                metric if i == 0 else "", row["arm"], format_mean(row["mean"]), change, interval
            )
    return table
