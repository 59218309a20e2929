"""The A/B table of a run directory, printed by ``run`` when it ends and by ``compare``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from recarena.simulator.cli.app import out
from recarena.simulator.cli.guards import warnings_as_lines
from recarena.simulator.core.errors import RecarenaError


def print_comparison(
    run_dir: Path,
    baseline: str | None,
    metrics: list[str] | None,
    ci_over: str = "auto",
    *,
    refuse_empty: bool = False,
) -> None:
    """The A/B table of each point. ``refuse_empty`` (``compare``): when no metric asked for
    has a value in any arm of any point, one error line naming them and why, instead of a
    warning over no table and exit 0 (``run`` keeps the warning: its run is done)."""
    from recarena.analysis.compare import CIOverError, UndefinedMetricWarning, format_table
    from recarena.analysis.compare import compare as compare_arms
    from recarena.analysis.load import load
    from recarena.analysis.metrics import get_metric, run_metrics

    for name in metrics or []:
        try:
            get_metric(name)
        except LookupError as exc:
            message = str(exc.args[0]) if exc.args else str(exc)  # KeyError quotes its str()
            raise RecarenaError(f"--metric: {message}") from None
    from recarena.simulator.runner.fallback import shares_by_arm

    with warnings_as_lines():  # unfinished/damaged cells, a reconciled manifest: one line each
        whole = load(run_dir)
        points: list[dict[str, Any] | None] = [*whole.points] or [None]
        started = {cell.point for cell in whole.cells}
        idle = [p["point"] for p in whole.points if p["point"] not in started]
        if idle:  # a stopped sweep: its finished points are compared, as unfinished cells are
            warnings.warn(
                f"{run_dir}: sweep point(s) {', '.join(map(str, idle))} have no finished cells; "
                "left out",
                stacklevel=1,
            )
            points = [p for p in points if p is None or p["point"] in started]
        # every point opened before the first table: a point that cannot be read (its
        # scenario file gone) came after the tables of the points before it
        worlds = [whole if p is None else load(run_dir, point=p["point"]) for p in points]
        chosen = metrics or run_metrics(whole)
        frames: list[Any] = []
        caught: list[warnings.WarningMessage] = []
        try:  # every table before any is shown
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for logs in worlds:  # arms compared within a point
                    try:
                        frame = compare_arms(
                            logs, baseline=baseline, metrics=chosen, ci_over=ci_over
                        )
                    except CIOverError as exc:  # worded for Python callers: ci_over='users'
                        raise RecarenaError(exc.for_cli()) from None
                    frames.append(frame)
        finally:  # said as they came, but a refusal below says it instead
            empty = len(frames) == len(worlds) and not any(frame.height for frame in frames)
            for item in caught:
                if not (refuse_empty and empty and item.category is UndefinedMetricWarning):
                    warnings.warn(item.message, stacklevel=1)
        if refuse_empty and empty:
            raise RecarenaError(no_values(run_dir, metrics, chosen, whole.scenario))
        for point, frame in zip(points, frames, strict=True):
            if point is not None:
                values = ", ".join(f"{k}={v}" for k, v in point["params"].items())
                out.print(f"point {point['point']}: {values}", soft_wrap=True, markup=False)
            if not frame.height:  # no metric has a value: compare() warned, a bare frame says less
                continue
            higher = {name: get_metric(name).higher_is_better for name in frame["metric"].unique()}
            out.print(format_table(frame, higher))
    shares = shares_by_arm(whole.llm_calls)
    if shares.height:
        per_arm = ", ".join(
            f"{r['arm']} {r['share']:.1%} ({r['fallbacks']}/{r['decisions']})"
            for r in shares.iter_rows(named=True)
        )
        out.print(f"LLM fallback share (decisions answered by the rule policy): {per_arm}")


def no_values(
    run_dir: Path, given: list[str] | None, chosen: list[str] | None, scenario: dict[str, Any]
) -> str:
    """The line of a compare with nothing to show: the metrics, and why each has no value
    (the scenario's reason where it has one, e.g. no conversation surface for conv_*)."""
    from recarena.analysis.compare import NO_VALUE
    from recarena.analysis.metrics import known_metrics, why_no_value

    names = chosen or known_metrics()
    which = f"--metric {', '.join(names)}" if given else f"the run's metrics ({', '.join(names)})"
    several = len(names) > 1
    why = "; ".join(
        why_no_value(name, scenario) or (f"{name}: {NO_VALUE}" if several else NO_VALUE)
        for name in names
    )
    return (
        f"{which}: no finished cell of {run_dir} has a value"
        f"{' for any of them' if several else ''} ({why}); nothing to compare"
    )
