"""map_in_processes: results in order, errors named, a dead worker noticed, a stop obeyed."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from recarena.simulator.runner.stopping import Interrupted, StopSignals
from recarena.simulator.runner.task_pool import map_in_processes


def square_or_fail(task: tuple[str, int]) -> int:
    kind, value = task
    if kind == "raise":
        raise ValueError(f"bad value {value}")
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    if kind == "sleep":
        time.sleep(value)
    return value * value


def test_results_come_back_in_task_order_and_each_is_reported():
    seen: list[tuple[int, int]] = []
    tasks = [("ok", v) for v in range(7)]
    out = map_in_processes(square_or_fail, tasks, 2, on_result=lambda i, r: seen.append((i, r)))
    assert out == [v * v for v in range(7)]
    assert sorted(seen) == [(i, i * i) for i in range(7)]


def test_a_task_error_is_raised_here():
    with pytest.raises(ValueError, match="bad value 3"):
        map_in_processes(square_or_fail, [("ok", 1), ("raise", 3), ("ok", 2)], 2)


def test_a_worker_that_dies_is_named_not_waited_for():
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker process for task 1 was killed by SIGKILL"):
        map_in_processes(
            square_or_fail,
            [("sleep", 30), ("die", 0)],
            2,
            describe=lambda task: f"task {1 if task[0] == 'die' else 0}",
        )
    assert time.monotonic() - started < 25  # the sleeping worker was killed, not awaited


def test_a_stop_signal_stops_the_map_and_its_workers():
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    with StopSignals(), pytest.raises(Interrupted, match="SIGTERM"):
        timer.start()
        map_in_processes(square_or_fail, [("sleep", 60), ("sleep", 60)], 2)
    timer.join()
    assert time.monotonic() - started < 30


def test_no_tasks_start_no_workers():
    assert map_in_processes(square_or_fail, [], 2) == []
