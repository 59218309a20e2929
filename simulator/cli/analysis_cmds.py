"""``compare``, ``ope`` and ``report``: the commands that read a finished run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement

from recarena.simulator.cli.app import app, new_path, nonempty_path, out
from recarena.simulator.cli.comparison import print_comparison
from recarena.simulator.cli.guards import reading, warnings_as_lines
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.names import comma_names
from recarena.simulator.core.scenario import SEED_MAX

CI_OVER_HELP = (
    "What the CIs resample: auto (users for per-user metrics below 5 replicates, else "
    "replicates), users, or replicates (needs 2+ replicates)."
)


@app.command()
def compare(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", parser=nonempty_path)],
    baseline: Annotated[str | None, typer.Option(help="Arm to compare against.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metric (repeatable).")
    ] = None,
    ci_over: Annotated[str, typer.Option(help=CI_OVER_HELP)] = "auto",
) -> None:
    """Per-arm means and deltas vs the baseline with paired bootstrap 95% CIs."""
    with reading(str(run_dir), run_dir):
        print_comparison(run_dir, baseline, metric, ci_over, refuse_empty=True)


@app.command()
def ope(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", parser=nonempty_path)],
    target: Annotated[str, typer.Option(help="Arm whose CTR is estimated.")],
    logging: Annotated[
        str | None, typer.Option(help="Arm whose log is used (default: the baseline).")
    ] = None,
    estimators: Annotated[
        str, typer.Option(help="Comma-separated: ips, snips, dr, naive.")
    ] = "ips,snips,dr",
    all_pages: Annotated[
        bool, typer.Option("--all-pages", help="Use every page, not only page 0.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Bootstrap seed.")] = 0,
    point: Annotated[int | None, typer.Option(min=0, help="Sweep point (sweep runs).")] = None,
) -> None:
    """Off-policy estimates of a target arm's CTR from another arm's log, vs its true CTR."""
    from recarena.analysis.load import load_one_world
    from recarena.analysis.ope import EstimatorsError, format_ope_table, off_policy_evaluation

    names = comma_names(estimators, "--estimators")  # 'ips,,dr' was read as 'ips,dr'
    with warnings_as_lines(), reading(str(run_dir), run_dir):  # unfinished cells: one line each
        try:
            frame = off_policy_evaluation(
                load_one_world(run_dir, point),
                target,
                logging,
                names,
                page=None if all_pages else 0,
                seed=seed,
            )
        except EstimatorsError as exc:  # worded for Python callers: estimators
            raise RecarenaError(exc.for_cli()) from None
    table = format_ope_table(frame)
    # ten columns need ~110 characters: at a pipe's 80 (or a narrow terminal) every number was
    # cut to "0.09…"; print the table whole and let a terminal wrap its lines
    whole = Measurement.get(out, out.options.update_width(10_000), table).maximum
    if whole <= out.width:
        out.print(table)
    else:
        Console(file=out.file, width=whole, force_terminal=out.is_terminal).print(table)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", parser=nonempty_path)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="HTML file to write (default: RUN_DIR/report.html).",
            parser=new_path,
        ),
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="Arm to compare against.")] = None,
    point: Annotated[int | None, typer.Option(min=0, help="Sweep point (sweep runs).")] = None,
    ci_over: Annotated[str, typer.Option(help=CI_OVER_HELP)] = "auto",
) -> None:
    """Write a self-contained HTML report (A/B table, charts; opens offline) and print its path."""
    from recarena.analysis.compare import CIOverError
    from recarena.analysis.load import load
    from recarena.analysis.report import write_report

    with warnings_as_lines():  # a reconciled manifest, damaged or unfinished cells: one line
        load(run_dir, point)
    # a library's warning while drawing (matplotlib's layout, a missing glyph) printed its
    # source line on stderr; it is one line like the others
    with warnings_as_lines(), reading(f"report of {run_dir}", run_dir):
        try:
            path = write_report(run_dir, output, baseline, point, ci_over)
        except CIOverError as exc:  # worded for Python callers: ci_over='users'
            raise RecarenaError(exc.for_cli()) from None
    print(path)
