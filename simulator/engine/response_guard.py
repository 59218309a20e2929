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
* ratings None (a policy that does not rate), NaN (none) or on the 0.5-5 star scale;
  fatigue finite.

Built-in policies are not wrapped (they are tested, and the page loop is hot).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recarena.simulator.core.errors import RecarenaError, exception_line
from recarena.simulator.core.types import PAD_ITEM, PageBatch, ResponseBatch
from recarena.simulator.engine.slate_guard import request_location


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


class GuardedPolicy:
    """A user policy whose every ``respond`` answer is checked first."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = self._call("respond", pages)
        self.check(pages, response)
        return response

    def utility(self, *args: Any) -> Any:
        return self._call("utility", *args)

    def _call(self, method: str, *args: Any) -> Any:
        """The policy's answer; its exception (any but a stop, an exit or a user error it words
        itself) becomes one line naming population.policy and the method: it was the bare
        ``ValueError: ...``, and a GeneratorExit ended the run with a traceback."""
        try:
            return getattr(self.inner, method)(*args)
        except (KeyboardInterrupt, SystemExit, RecarenaError):
            raise
        except BaseException as exc:  # noqa: BLE001 - plug-in code: any failure, one line
            text = exception_line(exc)
            if isinstance(exc, ValueError) and "read-only" in text:
                text += " (plug-ins get read-only views of the engine's arrays: copy one first)"
            raise ResponseViolation(
                f"population.policy {self.name!r}: {method} raised {text}"
            ) from exc

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
        bad = ~np.isfinite(response.fatigue)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise self._fail(pages, row, f"fatigue {float(response.fatigue[row])!r} is not finite")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
