"""Recommenders that stop the command building them, for tests/test_hostile_runtime.py.

Validation builds plug-in recommenders once (simulator/runner/build_check.py), so a signal
sent from a constructor lands while ``validate`` or ``run`` checks the scenario, before the
run has any directory: a moment a test could not reliably hit from outside.
"""

from __future__ import annotations

import os
import signal

from recarena.recommenders.popularity import PopularityRecommender

SIGNAL_VARIABLE = "RECARENA_TEST_STOP_SIGNAL"
"""The environment variable naming the signal (SIGTERM, SIGHUP, ...) to send."""


class SignalsWhenBuilt(PopularityRecommender):
    """Sends its own process the signal named in :data:`SIGNAL_VARIABLE` when built."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        os.kill(os.getpid(), getattr(signal, os.environ[SIGNAL_VARIABLE]))


class _RaisesInDel:
    def __del__(self) -> None:
        # the handler runs here, and Python prints a KeyboardInterrupt from __del__ as
        # "Exception ignored": the same as a Ctrl-C landing in an import's clean-up callback
        signal.raise_signal(getattr(signal, os.environ[SIGNAL_VARIABLE]))


class StopSwallowedWhenBuilt(PopularityRecommender):
    """The signal arrives inside a ``__del__``, where its KeyboardInterrupt is swallowed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _RaisesInDel()  # dropped at once
