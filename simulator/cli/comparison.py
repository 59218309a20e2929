"""The A/B table of a run directory, printed by ``run`` when it ends and by ``compare``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from recarena.simulator.cli.app import out
from recarena.simulator.cli.guards import warnings_as_lines
from recarena.simulator.core.errors import RecarenaError


def print_comparison(
    run_dir: Path, baseline: str | None, metrics: list[str] | None, ci_over: str = "auto"
) -> None:
    from recarena.analysis.compare import compare as compare_arms
    from recarena.analysis.compare import format_table
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
        for point, logs in zip(points, worlds, strict=True):  # arms compared within a point
            if point is not None:
                values = ", ".join(f"{k}={v}" for k, v in point["params"].items())
                out.print(f"point {point['point']}: {values}", soft_wrap=True, markup=False)
            chosen = metrics or run_metrics(logs)
            frame = compare_arms(logs, baseline=baseline, metrics=chosen, ci_over=ci_over)
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
