"""Polars aggregates as plain Python numbers, with the type checker told so once.

``Series.mean()``, ``min()``, ``max()`` and ``item()`` are typed as a wide union (any Python
literal, a list, ``None``) because polars only learns the column's type at run time. The callers
here read numeric columns; these helpers turn the result into ``float``/``int`` explicitly and fail
as loudly as ``float(None)`` would when a column is empty or not numeric.
"""

from __future__ import annotations


def as_float(value: object) -> float:
    """``float(value)`` for a number polars returned; a TypeError for anything else."""
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"expected a number from a polars aggregate, got {value!r}")


def as_int(value: object) -> int:
    """``int(value)`` for a number polars returned (a float is truncated, as ``int`` does)."""
    if isinstance(value, int | float):
        return int(value)
    raise TypeError(f"expected a number from a polars aggregate, got {value!r}")
