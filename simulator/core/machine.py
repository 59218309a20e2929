"""What this machine lets the process use: one answer for every default worker count.

Why: ``os.cpu_count()`` counts the machine's CPUs, not the ones this process may run on. In a
container or under ``taskset`` the two differ, and a pool sized by the first oversubscribes the
second (two processes per core thrash llama.cpp's threads and torch's).
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # platforms without affinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)
