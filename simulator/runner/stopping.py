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

In the in-process executor the raised stop lands in whatever code runs, a plug-in's too; one
that catches every BaseException and goes on (a retry loop around ``except BaseException``)
kept the run alive through every later signal, a stopped run that never ended. So the first
signal there also starts a watch: if the run has not stopped :data:`STOP_GRACE_SECONDS` later,
the process says so in one line and exits with 130 without its clean-up (its unfinished cells
keep their ``_INCOMPLETE`` marker and ``--resume`` reruns them, as after a kill).

Before a run installs its handlers (while the command imports and checks the scenario) the
command's own :func:`record_stops` handlers stand in: SIGTERM and SIGHUP killed the process
there without a word (a run directory holding only its ``.lock`` was left when it landed as the
run began), and a Ctrl-C raised inside an import's clean-up callback was printed as "ignored"
and the run went on to its end with exit 0. The signal is remembered, so the run's handlers,
once installed, honour a stop that arrived before them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
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


_asked: int | None = None
"""A stop signal that arrived before a run's :class:`StopSignals` took over (see
:func:`record_stops`)."""


def _record(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    global _asked
    first = _asked is None
    _asked = signum
    if first:
        raise Interrupted(signal.Signals(signum).name)


def record_stops() -> None:
    """From a command's start: SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (the
    command says so in one line) and are remembered for the run's own handlers. Only in the
    main thread, and only over the interpreter's defaults (a host program's handlers stay)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler, _record):
            signal.signal(sig, _record)
    if sys.unraisablehook is not _quiet_stops:
        global _unraisable
        _unraisable = sys.unraisablehook
        sys.unraisablehook = _quiet_stops


_unraisable = sys.unraisablehook


def _quiet_stops(unraisable: Any) -> None:
    """A stop that Python could not raise (it landed in a ``__del__`` or a callback) is
    remembered and honoured, so its "Exception ignored" traceback is left out."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    _unraisable(unraisable)


def stop_asked() -> str | None:
    """The name of a stop signal that arrived before a run's handlers, if any."""
    return signal.Signals(_asked).name if _asked is not None else None


_exit = os._exit
"""The process's own exit, taken before a cell replaces ``os._exit`` to refuse plug-ins' calls."""

STOP_GRACE_SECONDS = 60.0
"""How long a run in this process may take to stop after the first signal that raised in it
(its clean-up, a local LLM server's stop of at most 20 s included) before it exits without it."""


def _stuck(name: str) -> None:
    """The stop raised in the run's own process did not end it: exit (no clean-up can run
    while the code that swallowed the stop holds the main thread)."""
    sys.stderr.write(
        f"interrupted ({name}): the run did not stop within {STOP_GRACE_SECONDS:g} s (code in "
        "the cell, a plug-in's say, caught the stop and went on); exiting without the clean-up: "
        "unfinished cells keep _INCOMPLETE, and --resume reruns them\n"
    )
    sys.stderr.flush()
    _exit(130)


class StopSignals:
    """Context manager installing the run's handlers; restores the previous ones on exit."""

    def __init__(self, watch: bool = False) -> None:
        self.signum: int | None = None
        self.raising = True
        self._previous: dict[int, Any] = {}
        self.watch = watch
        """Whether a stop raised here starts the watch of :data:`STOP_GRACE_SECONDS` (a run's
        handlers: cells, plug-ins among them, may run in this process)."""
        self._watch: threading.Timer | None = None

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
            name = signal.Signals(signum).name
            if self.watch:
                self._watch = threading.Timer(STOP_GRACE_SECONDS, _stuck, (name,))
                self._watch.daemon = True
                self._watch.start()
            raise Interrupted(name)

    def install(self) -> None:
        """(Re)install the handlers: Ray's init replaces SIGTERM's with its own. Outside the main
        thread (a run started from a worker thread) signals cannot be handled: nothing to do."""
        if threading.current_thread() is not threading.main_thread():
            return
        if self.signum is None and _asked is not None:  # a stop before these handlers
            self.signum = _asked
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
        if self._watch is not None:  # the run stopped: nothing left to watch
            self._watch.cancel()
            self._watch = None
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous.clear()
