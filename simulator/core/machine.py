"""What this machine lets the process use: one answer for every default worker count.

Why: ``os.cpu_count()`` counts the machine's CPUs, not the ones this process may run on. In a
container or under ``taskset`` the two differ, and a pool sized by the first oversubscribes the
second (two processes per core thrash llama.cpp's threads and torch's).
"""

from __future__ import annotations

import math
import os

from recarena.simulator.core.errors import RecarenaError


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # platforms without affinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def env_limit(name: str, default: int) -> int:
    """A positive whole-number limit from the environment variable ``name`` (``default`` when
    unset or empty), read when it is used; one-line RecarenaError for anything else. Was read
    with ``int()`` at import, so ``abc`` or ``1e6`` was an internal error of every command and a
    negative value crashed the file reader."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and value >= 1):
        raise RecarenaError(
            f"environment variable {name}: expected a whole number >= 1, got {text!r}"
        )
    return int(value)
