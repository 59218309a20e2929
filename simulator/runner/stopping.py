"""How a run stops on SIGINT, SIGTERM and SIGHUP: one flag, set by the signal, honoured by the
executor.

Two ways to honour it, because executors wait differently:

* the in-process executor runs SimPy in the main thread, so the only way to stop it promptly is
  to raise :class:`Interrupted` from the handler (``raising=True``, the default);
* the process and Ray executors sit in a polling loop (waiting on pipes or Ray futures); an
  exception raised inside Ray's C++ wait is swallowed, so they switch to ``raising=False`` and
  call :meth:`StopSignals.check` between waits.

Only the first signal raises; later ones (a second Ctrl-C, the SIGTERM that follows a SIGHUP)
are recorded but never interrupt the clean-up of the first.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; finished cells are kept and the manifest says so.

    A KeyboardInterrupt, not an Exception: in the run's own process it is raised inside whatever
    code runs, and as an Exception a plug-in's ``try/except Exception`` swallowed it (the cell
    ran on to its end, minutes or hours, before the run stopped)."""


class StopSignals:
    """Context manager installing the run's handlers; restores the previous ones on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.raising = True
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        first = self.signum is None
        self.signum = signum
        if first and self.raising:
            raise Interrupted(signal.Signals(signum).name)

    def install(self) -> None:
        """(Re)install the handlers: Ray's init replaces SIGTERM's with its own. Outside the main
        thread (a run started from a worker thread) signals cannot be handled: nothing to do."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop was asked for (polling executors)."""
        if self.signum is not None:
            raise Interrupted(self.name)

    @contextlib.contextmanager
    def polling(self) -> Iterator[StopSignals]:
        """Within this block the handlers only record; the caller polls :meth:`check`."""
        before, self.raising = self.raising, False
        try:
            yield self
        finally:
            self.raising = before

    def __enter__(self) -> StopSignals:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous.clear()
