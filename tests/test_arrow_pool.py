"""Importing recarena makes Arrow use the C library's malloc unless the environment says
otherwise (simulator/__init__.py says why). Checked in fresh interpreters, since pyarrow reads
the setting once, when it is imported."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import recarena.simulator.cli, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _pool(env_pool: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_recarena_picks_the_system_pool_by_default():
    assert _pool(None) == "system"


def test_a_pool_named_in_the_environment_is_kept():
    assert _pool("jemalloc") == "jemalloc"
