"""How the commands turn a user's mistake or a stop signal into one line and an exit code.

Every command reads files a user made (scenarios, datasets, run directories); whatever goes
wrong reading them is the user's to fix, so it becomes a RecarenaError that ``main`` prints as
one ``error: ...`` line with exit 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from recarena.simulator.cli.app import err
from recarena.simulator.core.errors import RecarenaError, first_line, printable


def input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the user's file is not what it should be" (not a bug)."""
    import json

    import polars as pl
    import pyarrow as pa

    return (OSError, json.JSONDecodeError, UnicodeDecodeError, pl.exceptions.PolarsError,
            pa.ArrowException)  # fmt: skip


def check_working_directory() -> None:
    """The working directory exists. A command started in a folder since deleted (``rm -r`` of
    the folder a shell sat in) passed validate, and run then made its run directory and died in
    its first cell without a line of ours: torch's MKL loader resolves its libraries from the
    working directory, says "Intel oneMKL FATAL ERROR" and ends the process (exit 2), leaving a
    run marked running with no cell."""
    import os

    try:
        os.getcwd()
    except FileNotFoundError:
        raise RecarenaError(
            "the working directory no longer exists (it was deleted after the shell entered "
            "it); cd to an existing folder and run the command again"
        ) from None


FORMAT_HELP = "auto, movielens, movielens-dat, movielens-100k, recbole or csv."


def check_format(fmt: str) -> None:
    """``--format`` is one of the dataset loaders' names (simulator/data/datasets.py)."""
    from recarena.simulator.data.datasets import FORMATS

    if fmt not in FORMATS:
        raise RecarenaError(f"--format: unknown {fmt!r}; known: {', '.join(FORMATS)}")


@contextmanager
def stoppable(nothing_written: str) -> Iterator[None]:
    """A stop signal (SIGINT, SIGTERM, SIGHUP) during long work that publishes its files only
    at the end: one line saying so, exit 130. Without this, SIGTERM (what ``kill`` and job
    schedulers send) killed the process where it stood: no line, training workers left running
    until they hit a closed pipe, their tracebacks on stderr, a scratch directory left behind."""
    from recarena.simulator.runner.stopping import Interrupted, StopSignals

    try:
        with StopSignals():
            yield
    except (Interrupted, KeyboardInterrupt) as stopped:
        err.print(
            f"interrupted ({str(stopped) or 'SIGINT'}): {nothing_written}",
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(130) from None


@contextmanager
def reading(what: str, run_dir: Path | None = None) -> Iterator[None]:
    """Turn a known input error while reading ``what`` into one RecarenaError line; reading a
    run, the line names the damaged table file (simulator/runner/rundir.py)."""
    try:
        yield
    except RecarenaError:
        raise
    except input_errors() as exc:
        text = first_line(exc)
        if isinstance(exc, OSError) and exc.strerror:
            text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        from recarena.simulator.runner.rundir import unreadable_table

        damaged = unreadable_table(run_dir) if run_dir is not None else None
        raise RecarenaError(f"{what}: {damaged or ' '.join(text.split())}") from None


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Print each distinct warning raised inside as one ``warning: ...`` line on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:  # also before the error line of a failing command
            seen: set[str] = set()
            for item in caught:
                text = printable(" ".join(str(item.message).split()))
                if text not in seen:
                    seen.add(text)
                    print(f"warning: {text}", file=sys.stderr)
