"""map_in_processes: results in order, errors named, a dead worker noticed, a stop obeyed.

No test here measures time. A worker that must not be waited for sleeps for an hour, so a map
that waited would hang (ended by :func:`_hang_guard` with a failure); and the stop is sent once
the workers have announced that they hold their tasks, not after a guessed delay."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from recarena.simulator.runner.stopping import Interrupted, StopSignals
from recarena.simulator.runner.task_pool import map_in_processes

FOR_EVER = 3600


def square_or_fail(task: tuple[str, object]) -> int:
    kind, value = task
    if kind == "raise":
        raise ValueError(f"bad value {value}")
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    if kind == "hold":  # say which process holds the task (whole, by a rename), never finish
        path = Path(str(value))
        path.with_suffix(".tmp").write_text(f"{os.getpid()}\n")
        path.with_suffix(".tmp").replace(path)
        time.sleep(FOR_EVER)
    assert isinstance(value, int)
    return value * value


@contextlib.contextmanager
def _hang_guard(seconds: int = 300) -> Iterator[None]:
    """Fail (rather than hang for an hour) if the map waits on a worker that never ends."""

    def hung(signum: int, frame: object) -> None:
        raise AssertionError(f"map_in_processes still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _holders(paths: list[Path]) -> list[int]:
    return [int(path.read_text()) for path in paths]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_results_come_back_in_task_order_and_each_is_reported():
    seen: list[tuple[int, int]] = []
    tasks = [("ok", v) for v in range(7)]
    out = map_in_processes(square_or_fail, tasks, 2, on_result=lambda i, r: seen.append((i, r)))
    assert out == [v * v for v in range(7)]
    assert sorted(seen) == [(i, i * i) for i in range(7)]


def test_a_task_error_is_raised_here():
    with pytest.raises(ValueError, match="bad value 3"):
        map_in_processes(square_or_fail, [("ok", 1), ("raise", 3), ("ok", 2)], 2)


def test_a_worker_that_dies_is_named_not_waited_for(tmp_path):
    held = tmp_path / "held"
    with (
        _hang_guard(),
        pytest.raises(RuntimeError, match=r"worker process for task 1 was killed by SIGKILL"),
    ):
        map_in_processes(
            square_or_fail,
            [("hold", str(held)), ("die", 0)],
            2,
            describe=lambda task: f"task {1 if task[0] == 'die' else 0}",
        )
    # the holding worker was killed, not awaited (it may not have started its task yet)
    if held.exists():
        assert _gone(_holders([held])[0])


def test_a_stop_signal_stops_the_map_and_its_workers(tmp_path):
    held = [tmp_path / "held-0", tmp_path / "held-1"]

    def stop_once_both_hold_a_task() -> None:
        deadline = time.monotonic() + 300
        while not all(path.exists() for path in held) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=stop_once_both_hold_a_task, daemon=True)
    with _hang_guard(), StopSignals(), pytest.raises(Interrupted, match="SIGTERM"):
        sender.start()
        map_in_processes(square_or_fail, [("hold", str(path)) for path in held], 2)
    sender.join()
    assert all(path.exists() for path in held), "the stop came before the workers held tasks"
    assert all(_gone(pid) for pid in _holders(held))  # killed with the map


def test_no_tasks_start_no_workers():
    assert map_in_processes(square_or_fail, [], 2) == []
