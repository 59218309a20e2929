"""The typer application every command registers on, and its two consoles.

stdout carries what a command answers (tables, paths); stderr carries progress, notes and the
one-line errors, so ``recarena run ... > table.txt`` keeps the table clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from recarena.simulator.core.paths import control_problem
from recarena.simulator.runner.stopping import stop_asked


class _Commands(TyperGroup):
    """The group of every command: a stop that no command turned into its own line (Ctrl-C
    during validation, or a plug-in raising KeyboardInterrupt while it is built) says so in one
    line, exit 130. typer turns such a KeyboardInterrupt into exit 130 without a word."""

    def invoke(self, ctx: Any) -> Any:  # typer's own vendored click.Context
        try:
            done = super().invoke(ctx)
            if stop_asked() is None:
                return done
            # a stop whose KeyboardInterrupt Python printed as "ignored" (it landed in an
            # import's clean-up callback or a __del__) and the command went on: was exit 0
            raise KeyboardInterrupt(stop_asked())
        except KeyboardInterrupt as stopped:  # Interrupted (a signal) names itself
            command = ctx.invoked_subcommand or "recarena"
            err.print(
                f"interrupted ({str(stopped) or 'SIGINT'}): recarena {command} stopped before it "
                "finished",
                soft_wrap=True,
                markup=False,
            )
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    help="Simulate recommender systems against simulated users and compare arms with CIs.",
)


def nonempty_path(value: str | Path) -> Path:
    """A path argument or option as typed: an empty one ('' from an unset shell variable) is
    refused. Path('') is the working directory, so `run -o ""` wrote the run there and
    `validate ""` answered "scenario path is not a file: ." about a path never given.

    typer hands an option's default through its parser too: a default written as a Path
    (``fidelity -o``'s runs/fidelity) is the command's own, and is returned as it is. Was:
    ``recarena fidelity`` without -o stopped with an internal error (no ``strip`` on a Path)."""
    if isinstance(value, Path):
        return value
    if not value.strip():
        raise typer.BadParameter("an empty path; give a file or directory name")
    return Path(value)


def new_path(value: str | Path) -> Path:
    """A path a command creates (``run -o``, ``--llm-cache``, ``report -o``): as
    :func:`nonempty_path`, and without a control character, as ``output.dir`` and every path a
    scenario writes. Was: ``run -o $'runs\\nqs'`` made a folder whose name has a newline, and
    printed 'run directory:' over two lines."""
    path = nonempty_path(value)
    problem = control_problem(str(value))
    if problem is not None:
        raise typer.BadParameter(problem)
    return path


out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"recarena {version('recarena')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of any error (for bug reports).")
    ] = False,
) -> None:
    # --debug is read by main() (it decides how errors are printed, outside the command)
    return None
