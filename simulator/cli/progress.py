"""Progress on stderr: rich bars on a terminal, plain timed lines anywhere else."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from recarena.simulator.cli.app import err


class PlainProgress:
    """Progress as plain lines, for a stderr that is not a terminal (a log file, CI, nohup).

    rich redraws its bars in place only on a terminal; elsewhere it prints them once, when the
    work is over, so a ten-minute ``fidelity`` piped to a file said nothing for ten minutes.
    Here a task's next tenth is printed when at least ``interval`` seconds have passed since
    the last line (many cells never flood a log), and every task says when it is done; work
    shorter than ``interval`` prints nothing, so a quick run's stderr holds only what matters.
    """

    def __init__(
        self, console: Console, interval: float = 5.0, clock: Callable[[], float] = monotonic
    ) -> None:
        self.console, self.interval, self.clock = console, interval, clock
        self.started = self.last_line = clock()
        self.tasks: dict[TaskID, list[Any]] = {}  # id -> [description, total, tenth, done]
        self.added = 0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float = 1.0) -> TaskID:
        task = TaskID(self.added)  # numbered as added: a removed task's number stays unused
        self.added += 1
        self.tasks[task] = [description, total, 0, False]
        return task

    def remove_task(self, task: TaskID) -> None:
        self.tasks.pop(task, None)

    def update(
        self, task: TaskID, *, completed: float = 0.0, description: str | None = None
    ) -> None:
        state = self.tasks[task]
        if description is not None:
            state[0] = description
        if state[3]:
            return
        share = completed / state[1] if state[1] else 1.0
        now = self.clock()
        if share >= 1.0:
            state[3] = True
            if now - self.started >= self.interval:  # short work needs no sign of life
                self._line(now, f"{state[0]}: done")
        elif int(share * 10) > state[2] and now - self.last_line >= self.interval:
            state[2] = int(share * 10)
            self._line(now, f"{state[0]}: {int(share * 100)}%")

    def _line(self, now: float, text: str) -> None:
        self.last_line = now
        elapsed = int(now - self.started)
        self.console.print(
            f"[{elapsed // 60}:{elapsed % 60:02d}] {text}", soft_wrap=True, markup=False
        )


def progress_bars(quiet: bool) -> Progress | PlainProgress:
    """One bar per task on stderr (stdout stays for tables and paths); none with --quiet; plain
    lines (:class:`PlainProgress`) when stderr is not a terminal."""
    if not quiet and not err.is_terminal:
        return PlainProgress(err)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
