"""``recarena ARGS`` run in-process, and the bad-input rule's assertion (one line, exit 2)."""

from __future__ import annotations

import contextlib
import io

from recarena.simulator.cli import main


def cli_out(*args: str) -> tuple[int, str, str]:
    """``recarena ARGS`` in-process: (exit code, stdout, stderr)."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, stdout.getvalue(), stderr.getvalue()


def cli(*args: str) -> tuple[int, str]:
    """``recarena ARGS`` in-process: (exit code, stderr)."""
    code, _, stderr = cli_out(*args)
    return code, stderr


def assert_refused(code: int, stderr: str, fragment: str = "") -> None:
    """Exit 2 and one ``error:`` line containing ``fragment``, no traceback."""
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    assert fragment in lines[0], lines[0]
