"""Names from a scenario that become parts of paths: arm names and the scenario's name.

A run directory is ``<output.dir>/<scenario name>-<stamp>`` and a cell's directory is
``arm=<arm name>/rep=<r>``, so a name is a path component. ``..`` would climb out of the run
directory, ``/`` would nest, and a 5,000-character name fails only when the OS refuses the path,
after cells have started. A safe name is letters, digits, ``_`` and ``-``, with dots allowed
only *between* such characters (``eps_0.1`` is fine, ``.``, ``..`` and ``.hidden`` are not),
at most :data:`MAX_NAME_LENGTH` characters.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from recarena.simulator.core.errors import RecarenaError

MAX_NAME_LENGTH = 64
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
RULE = f"1-{MAX_NAME_LENGTH} letters, digits, '_' or '-', with dots only between them"


def short_repr(value: object, limit: int = 40) -> str:
    """``repr`` cut to ``limit`` characters, so an error about a huge value stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` naming the known name closest to a misspelt one, or ``""``
    when none is close: a typo's error line then says what to write instead."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, [k for k in known if k != name], n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a safe name, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string (got {short_repr(value)})"
    if len(value) > MAX_NAME_LENGTH or not SAFE_NAME.fullmatch(value):
        return f"must be {RULE} (got {short_repr(value)})"
    return None


def check_name(value: str) -> str:
    """A pydantic ``AfterValidator``: the name itself, or ValueError saying what is allowed."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def path_component(value: str, what: str) -> str:
    """``value`` if it is safe as one path component, else RecarenaError naming ``what``."""
    problem = name_problem(value)
    if problem is not None:
        raise RecarenaError(f"{what}: {problem}")
    return value


def comma_names(text: str, option: str) -> list[str]:
    """The names in an option's comma-separated list, stripped. An empty piece (two commas in
    a row, or one at an end) is refused rather than dropped: ``random,,mf`` most likely lost a
    name the user meant to give. A blank list gives ``[]``, for the caller to refuse or fill."""
    pieces = [piece.strip() for piece in text.split(",")]
    if text.strip() and not all(pieces):
        raise RecarenaError(
            f"{option}: {text!r} has an empty name (two commas in a row, or one at an end)"
        )
    return [piece for piece in pieces if piece]
