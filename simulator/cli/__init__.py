"""The ``recarena`` command line (typer): one module per group of commands.

User mistakes (bad YAML, unknown names, missing paths) raise RecarenaError and are printed as a
single ``error: ...`` line on stderr with exit code 2 — never a traceback, and validation happens
before any run directory is created.
"""

from __future__ import annotations

import sys
import traceback
from importlib import import_module
from pathlib import Path

import typer

from recarena.simulator.cli.app import app
from recarena.simulator.core.errors import RecarenaError

COMMAND_MODULES = ("scenario_cmds", "data_cmds", "analysis_cmds", "info_cmds")
"""Importing a module registers its commands on ``app``; ``--help`` lists them in this order
(the order a user meets them: run a scenario, measure fidelity, read the results)."""

for _module in COMMAND_MODULES:
    import_module(f"{__name__}.{_module}")

__all__ = ["COMMAND_MODULES", "app", "main"]


def _one_line(text: object) -> str:
    """An error's text (a message or an exception) on one line."""
    return " ".join(str(text).split())


def _usage_error(exc: Exception) -> str:
    """A click/typer usage error as one line: where, what, and where to look."""
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "recarena"
    return f"error: {command}: {_one_line(exc.format_message())} (see '{command} --help')"  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error is one line on stderr unless ``--debug`` asks for tracebacks.

    Exit codes: 2 for anything the user can fix (a scenario, a file, an option), 130 for an
    interrupt, 1 for a bug (with a hint to rerun with --debug).
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="recarena", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except RecarenaError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # typer vendors its own click, so usage errors are recognised by their interface
        if callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code"):
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `recarena`: help was printed
                sys.exit(0)
            if debug:
                traceback.print_exc()
            print(_usage_error(exc), file=sys.stderr)
            sys.exit(2)
        if debug:
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(
            f"error: internal error {type(exc).__name__}: {_one_line(exc)[:300]} "
            f"(at {Path(where.filename).name}:{where.lineno}; rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
