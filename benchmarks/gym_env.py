"""Throughput of the Gym environments (recarena.gym), and of SARDINE's on a comparable setting.

    python benchmarks/gym_env.py [--seconds 5] [--batch 1000]

Prints, with the load average (the figures only mean something on a quiet machine):

* the natively batched vector env with a trivial policy (every env shows items 0..k-1, so the
  cost is the environment's, not the policy's): session-steps per second at B = --batch;
* the single env with the same policy: steps per second;
* if ``sardine-rec`` is installed (``pip install -e '.[rlbench]'``), SARDINE's
  ``SlateTopK-Bored-v0`` (1,000 items, slates of 10, like recarena's default Gym scenario:
  1,000 items, lists of 10) stepped the same way, alone and as a gymnasium SyncVectorEnv, and
  the ratios. SARDINE has no batched environment of its own, so B envs are B Python objects.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import gymnasium
import numpy as np

from recarena.gym import RecarenaEnv, RecarenaVectorEnv


def rate(step: Callable[[], int], seconds: float) -> float:
    """Steps per second of ``step`` (which returns how many steps it made) over ``seconds``."""
    step()  # warm up
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        count += step()
    return count / (time.perf_counter() - started)


def recarena_vector(batch: int, seconds: float) -> float:
    env = RecarenaVectorEnv(batch)
    env.reset(seed=0)
    action = np.tile(np.arange(env.driver.k), (batch, 1))

    def step() -> int:
        env.step(action)
        return batch

    return rate(step, seconds)


def recarena_single(seconds: float) -> float:
    env = RecarenaEnv()
    env.reset(seed=0)
    action = np.arange(env.driver.k)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
        return 1

    return rate(step, seconds)


def sardine_single(seconds: float) -> float:
    env = gymnasium.make("sardine/SlateTopK-Bored-v0")
    env.reset(seed=0)
    action = np.arange(10)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
        return 1

    return rate(step, seconds)


def sardine_vector(batch: int, seconds: float) -> float:
    env = gymnasium.make_vec(
        "sardine/SlateTopK-Bored-v0", num_envs=batch, vectorization_mode="sync"
    )
    env.reset(seed=0)
    action = np.tile(np.arange(10), (batch, 1))

    def step() -> int:
        env.step(action)
        return batch

    return rate(step, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--sardine-batch", type=int, default=100)
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    vector = recarena_vector(args.batch, args.seconds)
    print(f"recarena vector env, B={args.batch}: {vector:,.0f} session-steps/s (target 100,000)")
    single = recarena_single(args.seconds)
    print(f"recarena single env: {single:,.0f} steps/s (target 2,000)")
    try:
        import sardine  # noqa: F401  (registers sardine/* ids)
    except ImportError:
        print("sardine-rec not installed (pip install -e '.[rlbench]'): no comparison")
    else:
        s_single = sardine_single(args.seconds)
        print(f"SARDINE SlateTopK-Bored-v0 single env: {s_single:,.0f} steps/s")
        print(f"  ratio recarena/SARDINE, single env: {single / s_single:.2f}")
        small = recarena_vector(args.sardine_batch, args.seconds)
        s_vector = sardine_vector(args.sardine_batch, args.seconds)
        print(
            f"B={args.sardine_batch}: recarena {small:,.0f} vs SARDINE SyncVectorEnv "
            f"{s_vector:,.0f} session-steps/s (ratio {small / s_vector:.2f}); "
            f"recarena at B={args.batch} / SARDINE sync: {vector / s_vector:.2f}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
