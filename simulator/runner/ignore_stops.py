"""Imported first by the process executor's forkserver: it ignores the stop signals.

The forkserver imports the engine and torch (seconds) before it sets up its own handlers, so a
Ctrl-C to the process group in those seconds printed its KeyboardInterrupt traceback beside the
run's one-line "interrupted" (the run's process decides what a stop means; the forkserver and
the workers it forks never act on one). Being the first module it imports, this runs first.
"""

from __future__ import annotations

import signal

from recarena.simulator.runner.stopping import STOP_SIGNALS

for _sig in STOP_SIGNALS:
    signal.signal(_sig, signal.SIG_IGN)
