"""The typer application every command registers on, and its two consoles.

stdout carries what a command answers (tables, paths); stderr carries progress, notes and the
one-line errors, so ``recarena run ... > table.txt`` keeps the table clean.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate recommender systems against simulated users and compare arms with CIs.",
)
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
