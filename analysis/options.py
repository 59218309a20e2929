"""The options every analysis function that resamples or takes names shares, checked once.

``compare``, ``off_policy_evaluation`` and the metrics are called from notebooks as well as from
the command line, so their arguments are user input: a confidence level of 1 divided by zero, a
level of 0 marked every delta significant, a negative seed was numpy's error, and a metric
named as a string rather than a list was read letter by letter ("unknown metric 'c'").
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from recarena.simulator.core.errors import RecarenaError


def _integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_bootstrap(n_boot: Any, level: Any, seed: Any = 0) -> None:
    """``n_boot`` a count of bootstrap draws (0: no CI), ``level`` a confidence level strictly
    between 0 and 1, ``seed`` a non-negative integer; else one RecarenaError naming the one
    that is not."""
    if not _integer(n_boot) or n_boot < 0:
        raise RecarenaError(f"n_boot: a number of bootstrap draws, 0 or more (got {n_boot!r})")
    real = isinstance(level, Real) and not isinstance(level, bool)
    if not real or not math.isfinite(level) or not 0 < level < 1:
        raise RecarenaError(
            f"level: a confidence level between 0 and 1, both excluded, such as 0.95 "
            f"(got {level!r})"
        )
    if not _integer(seed) or seed < 0:
        raise RecarenaError(f"seed: a non-negative integer (got {seed!r})")


def check_index(value: Any, option: str) -> None:
    """``value`` None or an index (an integer, 0 or more): load(run, point='1') said "no sweep
    point 1; points: 0, 1", point=True opened point 1, and ope's page='0' was polars' error."""
    if value is not None and (not _integer(value) or value < 0):
        raise RecarenaError(f"{option}: an index, 0 or more, or None (got {value!r:.60})")


def name_list(names: Any, option: str) -> list[str] | None:
    """``names`` as a list of names (None stays None); a single string is refused, since it
    would be read as its letters."""
    if names is None:
        return None
    if isinstance(names, str | bytes):
        raise RecarenaError(
            f"{option}: a list of names, got the string {names!r:.60}; write [{names!r:.60}]"
        )
    try:
        return list(names)
    except TypeError:
        raise RecarenaError(
            f"{option}: a list of names, got {type(names).__name__} {names!r:.60}"
        ) from None
