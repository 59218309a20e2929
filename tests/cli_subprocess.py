"""``recarena ARGS`` as a user runs it: a subprocess of this interpreter, from the repository
root (tests/cli_in_process.py runs the same commands in-process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def recarena(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m recarena.simulator.cli ARGS`` with its output captured as text, in a terminal
    200 columns wide so that tables and messages are not wrapped (``env``: more variables)."""
    return subprocess.run(
        [sys.executable, "-m", "recarena.simulator.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
    )
