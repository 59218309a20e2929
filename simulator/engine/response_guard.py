"""The response guard: a plug-in user policy's answers are checked before the engine uses them.

The slate guard (simulator/engine/slate_guard.py) does this for recommenders. A user policy from
outside (``population.policy: package.module:Class``) is code we do not control either: one that
clicked every slot, clicked an empty slot or a slot it never examined, or rated 99 stars ran
without a word and its logs counted ten clicks a page (CTR above 1); one that answered with
another shape or dtype, or with None, failed its cells with an IndexError or AttributeError
naming no policy. Per page batch, a few vectorised passes:

* a ResponseBatch whose ``examined``, ``clicked`` and ``utility`` are ``[B, k]`` and ``rating``,
  ``leave`` and ``fatigue`` are ``[B]``; ``examined``, ``clicked`` and ``leave`` boolean, the
  rest real numbers;
* at most one click per page, only on a filled slot the user examined;
* ratings None (a policy that does not rate), NaN (none) or on the 0.5-5 star scale, and NaN
  on a page without a click; fatigue finite and not negative;
* utility finite on filled slots (empty ones may hold anything: the rule user's -inf);
* ``extra["value"]``, the page's value to the session, a finite ``[B]`` real array.

Utility, fatigue and value are judged as float32, the type the engine holds and logs them in
(a float64 1e300 is infinite there).

``utility`` (what oracles and conversational users read) must answer ``items``' shape with real
numbers, finite where a slot is filled.

Built-in policies are not wrapped (they are tested, and the page loop is hot).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.types import PAD_ITEM, PageBatch, ResponseBatch
from recarena.simulator.engine.slate_guard import (
    as_float32,
    call_plugin,
    given,
    request_location,
)


class ResponseViolation(RecarenaError):
    """A user policy returned a response the engine refuses to use."""


_SHAPES = {
    "examined": ("b", 2),
    "clicked": ("b", 2),
    "utility": ("iuf", 2),
    "rating": ("iuf", 1),
    "leave": ("b", 1),
    "fatigue": ("iuf", 1),
}
"""Field -> (allowed dtype kinds, dimensions: 2 is [B, k], 1 is [B])."""

_ARGUMENTS = {"respond": ("pages",), "utility": ("users", "items", "explore")}
"""The names of each checked method's arguments, for the line of one it changed."""


class GuardedPolicy:
    """A user policy whose every ``respond`` answer is checked first."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = self._call("respond", pages)
        self.check(pages, response)
        return response

    def utility(self, users: np.ndarray, items: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """The policy's truth for oracles and conversational users, checked: a wrong shape
        failed the oracle arm with 'not enough values to unpack', naming the oracle."""
        value = self._call("utility", users, items, explore)
        prefix = f"population.policy {self.name!r}: utility returned"
        if type(value) is not np.ndarray:
            raise ResponseViolation(
                f"{prefix} a {type(value).__qualname__}, expected a numpy.ndarray"
            )
        if value.shape != items.shape:
            raise ResponseViolation(
                f"{prefix} shape {value.shape} for items of shape {items.shape}, expected "
                f"{items.shape}"
            )
        if value.dtype.kind not in "iuf":
            raise ResponseViolation(f"{prefix} dtype {value.dtype}, expected real numbers")
        held = as_float32(value)  # as oracles' scores and conversational users hold it
        bad = ~np.isfinite(held) & (items != PAD_ITEM)
        if bad.any():
            row, col = (int(x) for x in np.argwhere(bad)[0])
            raise ResponseViolation(
                f"{prefix} {given(value, held, row, col)} for item {int(items[row, col])} of "
                f"row {row}, expected a finite number"
            )
        return value

    def _call(self, method: str, *args: Any) -> Any:
        """The policy's answer; its exception (any but a stop, an exit or a user error it words
        itself) becomes one line naming population.policy and the method: it was the bare
        ``ValueError: ...``, and a GeneratorExit ended the run with a traceback."""
        return call_plugin(
            self.inner,
            method,
            args,
            _ARGUMENTS[method],
            (KeyboardInterrupt, SystemExit, RecarenaError),
            BaseException,  # plug-in code: any failure, one line
            lambda what: ResponseViolation(f"population.policy {self.name!r}: {what}"),
        )

    def _fail(self, pages: PageBatch, row: int, what: str) -> ResponseViolation:
        where = request_location(pages.requests, row)
        return ResponseViolation(f"population.policy {self.name!r}: {what} at {where}")

    def check(self, pages: PageBatch, response: Any) -> None:
        items = pages.slates.items
        batch, k = items.shape
        if not isinstance(response, ResponseBatch):
            kind = type(response).__name__
            raise self._fail(pages, -1, f"respond returned {kind}, expected a ResponseBatch")
        for name, (kinds, dims) in _SHAPES.items():
            value = getattr(response, name)
            if name == "rating" and value is None:  # a policy that does not rate
                continue
            want = (batch, k) if dims == 2 else (batch,)
            if type(value) is not np.ndarray:  # a list, np.matrix, masked array, tensor
                kind = type(value).__qualname__
                raise self._fail(pages, -1, f"{name} is a {kind}, expected a numpy.ndarray")
            if getattr(value, "shape", None) != want:
                shape = getattr(value, "shape", type(value).__name__)
                raise self._fail(pages, -1, f"{name} has shape {shape}, expected {want}")
            if value.dtype.kind not in kinds:
                expected = "bool" if kinds == "b" else "real numbers"
                raise self._fail(pages, -1, f"{name} has dtype {value.dtype}, expected {expected}")
        clicked = response.clicked
        many = clicked.sum(axis=1) > 1
        if many.any():
            row = int(np.flatnonzero(many)[0])
            count = int(clicked[row].sum())
            raise self._fail(pages, row, f"{count} clicks on one page (a user clicks at most one)")
        stray = clicked & ~(response.examined & (items != PAD_ITEM))
        if stray.any():
            row, col = (int(x) for x in np.argwhere(stray)[0])
            raise self._fail(pages, row, f"a click on slot {col}, which is empty or not examined")
        filled = items != PAD_ITEM
        utility = as_float32(response.utility)  # as logged (true_utility) and held
        bad = ~np.isfinite(utility) & filled
        if bad.any():
            # logged as true_utility, which fairness metrics and regret read
            row, col = (int(x) for x in np.argwhere(bad)[0])
            value = given(response.utility, utility, row, col)
            raise self._fail(pages, row, f"utility {value} of filled slot {col} is not finite")
        rating = response.rating
        off = (
            np.zeros(batch, bool)
            if rating is None
            else ~np.isnan(rating) & ~((rating >= 0.5) & (rating <= 5))
        )
        if off.any():
            row = int(np.flatnonzero(off)[0])
            value = float(rating[row])
            raise self._fail(pages, row, f"rating {value!r} is off the 0.5-5 star scale")
        if rating is not None:
            # the 'rating' page reward and feedback read it: a page without a click earned it
            rated = ~np.isnan(rating) & ~clicked.any(axis=1)
            if rated.any():
                row = int(np.flatnonzero(rated)[0])
                value = float(rating[row])
                raise self._fail(
                    pages, row, f"rating {value!r} on a page without a click (NaN: no rating)"
                )
        fatigue = as_float32(response.fatigue)  # the sessions' state is float32
        bad = ~np.isfinite(fatigue)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = given(response.fatigue, fatigue, row)
            raise self._fail(pages, row, f"fatigue {value} is not finite")
        bad = fatigue < 0
        if bad.any():
            # fatigue only grows (a heard instruction's relief stops at 0); -1e30 made the
            # chance to leave 1 - exp(1e30), with an overflow warning on every page
            row = int(np.flatnonzero(bad)[0])
            value = float(response.fatigue[row])
            raise self._fail(
                pages,
                row,
                f"fatigue {value!r} is negative (1 - exp(-fatigue) is the chance to leave)",
            )
        self._check_value(pages, response.extra, batch)

    def _check_value(self, pages: PageBatch, extra: Any, batch: int) -> None:
        """``extra["value"]``: every page adds it to its session's value (satisfaction, the
        'value' page reward). Missing, it failed the cell with "KeyError: 'value'"; NaN or a
        list ran on without a word."""
        wanted = f"expected extra['value'], a numpy.ndarray of {batch} finite numbers"
        if not isinstance(extra, dict):
            raise self._fail(pages, -1, f"extra is a {type(extra).__qualname__}, {wanted}")
        if "value" not in extra:
            raise self._fail(pages, -1, f"extra has no 'value', {wanted}")
        value = extra["value"]
        if type(value) is not np.ndarray:
            raise self._fail(pages, -1, f"extra['value'] is a {type(value).__qualname__}, {wanted}")
        if value.shape != (batch,) or value.dtype.kind not in "iuf":
            raise self._fail(
                pages,
                -1,
                f"extra['value'] has shape {value.shape} and dtype {value.dtype}, {wanted}",
            )
        held = as_float32(value)  # logged and summed as float32
        bad = ~np.isfinite(held)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise self._fail(pages, row, f"extra['value'] {given(value, held, row)} is not finite")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
