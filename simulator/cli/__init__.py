"""The ``recarena`` command line (typer): one module per group of commands.

User mistakes (bad YAML, unknown names, missing paths) raise RecarenaError and are printed as a
single ``error: ...`` line on stderr with exit code 2 — never a traceback, and validation happens
before any run directory is created.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
import traceback
from importlib import import_module
from pathlib import Path

from recarena.simulator.runner.stopping import record_stops

COMMAND_MODULES = ("scenario_cmds", "data_cmds", "analysis_cmds", "info_cmds")
"""Importing a module registers its commands on ``app``; ``--help`` lists them in this order
(the order a user meets them: run a scenario, measure fidelity, read the results)."""

_STARTING = Path(sys.argv[0]).name == "recarena" or sys.argv[0] == "-m"
"""This import is the command starting (the script, or ``python -m`` finding this package)."""
if _STARTING:  # a stop signal during the second of imports below is one line, exit 130
    record_stops()  # (was: a traceback for Ctrl-C, a silent death for SIGTERM or SIGHUP)
try:
    import typer

    from recarena.simulator.cli.app import app
    from recarena.simulator.cli.guards import check_working_directory
    from recarena.simulator.core.errors import RecarenaError, out_of_memory, printable

    for _module in COMMAND_MODULES:
        import_module(f"{__name__}.{_module}")
except KeyboardInterrupt as _stopped:
    if not _STARTING:
        raise
    _line = f"interrupted ({str(_stopped) or 'SIGINT'}): recarena stopped while starting"
    print(_line, file=sys.stderr)
    sys.exit(130)

__all__ = ["COMMAND_MODULES", "app", "main"]


def _one_line(text: object) -> str:
    """An error's text (a message or an exception) on one line, safe for a terminal."""
    return printable(" ".join(str(text).split()))


def _usage_error(exc: Exception) -> str:
    """A click/typer usage error as one line: where, what, and where to look."""
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "recarena"
    return f"error: {command}: {_one_line(exc.format_message())} (see '{command} --help')"  # type: ignore[attr-defined]


LEFTOVER_GRACE_SECONDS = 2.0
"""How long the ``recarena`` process waits, once its command is done, for threads that plug-in
code started and left running before it exits without them."""


def _leave(code: int | str | None) -> None:
    """Exit with ``code``. Was: a thread that a plug-in started (a non-daemon thread, Python's
    default) and never ended kept the process alive after the run had finished and printed its
    table, until the user pressed Ctrl-C (a traceback from threading's shutdown). Such threads
    get a short grace; then the process exits without them, saying so on one line."""
    main_thread = threading.main_thread()

    def leftovers() -> list[threading.Thread]:
        alive = (t for t in threading.enumerate() if t is not main_thread and t.is_alive())
        return [t for t in alive if not t.daemon]

    deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C ends the grace, not the exit
        for thread in leftovers():
            thread.join(max(0.0, deadline - time.monotonic()))
    left = leftovers()
    if not left:
        sys.exit(code)
    names = ", ".join(t.name for t in left[:3]) + (", ..." if len(left) > 3 else "")
    print(
        f"note: {len(left)} thread(s) started by plug-in code still running ({names}); "
        "exiting without waiting for them",
        file=sys.stderr,
    )
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream
            stream.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error is one line on stderr unless ``--debug`` asks for tracebacks.

    Exit codes: 2 for anything the user can fix (a scenario, a file, an option), 130 for an
    interrupt, 1 for a bug (with a hint to rerun with --debug).
    """
    if argv is not None:  # called from Python (tests, notebooks): never end that process
        _main(argv)
        return
    record_stops()
    try:
        _main(sys.argv[1:])
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _main(args: list[str]) -> None:
    debug = "--debug" in args
    try:
        check_working_directory()
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
        no_memory = out_of_memory(exc)
        if no_memory is not None:  # was "internal error ImportError: ... map segment"
            print(f"error: {no_memory}", file=sys.stderr)
            sys.exit(2)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(
            f"error: internal error {type(exc).__name__}: {_one_line(exc)[:300]} "
            f"(at {Path(where.filename).name}:{where.lineno}; rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
