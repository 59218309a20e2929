"""The slate guard: every recommender answer is checked before a user sees it.

A plug-in recommender is code we do not control. Without this check a recommender that fills
every slot with one item, repeats consumed items or returns ids past the catalog would "win" an
A/B or crash deep inside the user model with an error that names no arm. The guard checks, per
call and for the whole batch at once (a few vectorised passes over [B, k]):

* shape ``[B, k]`` of items, scores and propensities, integer item ids and real-number scores
  and propensities;
* ids published (``0 <= id < catalog.n``) or ``PAD_ITEM``;
* no item twice in one slate;
* nothing from ``requests.exclude`` (the user's consumed items);
* scores of filled slots not infinite (NaN is the policy having no score, as the random
  recommender has; empty slots may hold anything);
* propensities of filled slots finite and in (0, 1].

A conversational policy's move (``act``, simulator/core/dialogue.py) passes
:meth:`SlateGuard.check_acts`: a SystemActs of ``[B]`` integer ``act`` and ``facet`` arrays and
``B`` texts, act codes ASK or RECOMMEND, a facet of the catalog's on every ask, no item on an
ask and none already recommended in the conversation, and its slates the checks above.

A violation raises :class:`SlateViolation` naming the arm, the recommender type, the request
and the offending value; the runner fails that cell with that one line. A plug-in built as a
wrapper's base is guarded the same way (:func:`guard_plugin_bases`), named with the arm's type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import is_
from typing import Any

import numpy as np

from recarena.agents.llm.cache import CacheMiss
from recarena.simulator.core.dialogue import ASK, RECOMMEND, UNKNOWN, DialogueState, SystemActs
from recarena.simulator.core.errors import RecarenaError, exception_line, with_read_only_hint
from recarena.simulator.core.types import (
    PAD_ITEM,
    CatalogView,
    FeedbackBatch,
    Interactions,
    PageBatch,
    RequestBatch,
    SlateBatch,
    read_only,
)

_min, _max, _any = np.minimum.reduce, np.maximum.reduce, np.logical_or.reduce
_isinf = np.isinf

_BROADCAST_CELLS = 1 << 24
"""Up to this many [B, k, H] cells (16 MB of booleans) the consumed-item check compares slates
with exclusions directly; past it, ``isin``. The bound is on cells, not on H: at a few requests
a tick a [4, 10, 128] comparison costs ~10 µs and ``isin`` ~100 µs, and late in a run heavy
users' histories pass any small width (the quickstart's reach 100 items by day 14)."""


class SlateViolation(RecarenaError):
    """A recommender returned a slate the engine refuses to show."""


class RecommenderFailed(RuntimeError):
    """A built-in recommender's ``fit``, ``recommend`` or ``update`` raised; the message names the
    arm, the type and the method (the cell's line was the bare ``ValueError: ...``)."""


class PluginRecommenderFailed(RecommenderFailed, RecarenaError):
    """The same for a recommender named by import path (``module:Class``): the user's own code,
    so a user error (exit 2)."""


def type_name(value: Any) -> str:
    """``list``, ``numpy.matrix``: a value's type as a finding names it."""
    module, kind = type(value).__module__, type(value).__qualname__
    return kind if module == "builtins" else f"{module}.{kind}"


def request_location(requests: RequestBatch, row: int) -> str:
    """Where a guard's finding is, for its one line: the request of ``row``, or the batch."""
    if not 0 <= row < len(requests):
        return "the batch"
    return (
        f"request user={int(requests.user[row])} session={int(requests.session[row])} "
        f"page={int(requests.page[row])}"
    )


class SlateGuard:
    """Checks slates for one cell's arm; ``wrap`` puts the check around ``recommend``."""

    def __init__(self, world: Any) -> None:
        self._name(world.arm, world.arm.recommender.type)

    def _name(self, arm: Any, kind: str, label: str | None = None) -> None:
        self.arm = arm.name
        self.kind = kind
        """The checked recommender's type; a plug-in's (``module:Class``) fails with exit 2."""
        wrapper = arm.recommender.type
        self.label = label or (
            f"recommender {kind!r}" + ("" if kind == wrapper else f" inside {wrapper!r}")
        )
        """How its lines name it: a wrapper's plug-in base names the arm's recommender too."""

    @classmethod
    def of_base(cls, arm: Any, kind: str) -> SlateGuard:
        """The guard of a plug-in ``kind`` built as a wrapper's base in ``arm``'s recommender."""
        guard = cls.__new__(cls)
        guard._name(arm, kind)
        return guard

    @classmethod
    def of_surface(cls, arm: Any, kind: str) -> SlateGuard:
        """The guard of a plug-in surface's layouts in ``arm``'s cells."""
        guard = cls.__new__(cls)
        guard._name(arm, kind, f"surface {kind!r}")
        return guard

    def wrap(self, recommender: Any) -> GuardedRecommender:
        return GuardedRecommender(recommender, self)

    def _fail(self, requests: RequestBatch, row: int, what: str) -> SlateViolation:
        where = request_location(requests, row)
        return SlateViolation(f"arm {self.arm!r} ({self.label}): {what} at {where}")

    def check(self, requests: RequestBatch, slates: SlateBatch, k: int | None = None) -> None:
        batch, want_k = len(requests), requests.k if k is None else k
        if not isinstance(slates, SlateBatch):
            kind = type(slates).__name__
            raise self._fail(requests, -1, f"recommend returned {kind}, expected a SlateBatch")
        for name in ("items", "scores", "propensity"):
            column = getattr(slates, name, None)
            if type(column) is not np.ndarray:
                # a list passed as "shape None"; an np.matrix or a torch tensor passed the shape
                # check and crashed later with an error naming no arm; a masked array's mask
                # would be ignored
                kind = type_name(column)
                raise self._fail(
                    requests, -1, f"{name} is a {kind}, expected a numpy.ndarray (np.asarray)"
                )
            shape = getattr(column, "shape", None)
            if shape != (batch, want_k):
                raise self._fail(
                    requests, -1, f"{name} has shape {shape}, expected {(batch, want_k)}"
                )
        items = slates.items
        if items.dtype.kind not in "iu":  # signed or unsigned integers
            raise self._fail(requests, -1, f"item ids have dtype {items.dtype}, expected int64")
        for name, what in (("scores", "scores"), ("propensity", "propensities")):
            # logged as float32: strings and objects failed the cell with an error naming no
            # arm, complex numbers warned and lost their imaginary part
            dtype = getattr(slates, name).dtype
            if dtype.kind not in "iuf":
                raise self._fail(
                    requests, -1, f"{what} have dtype {dtype}, expected real numbers (float32)"
                )
        logged = as_logged(slates)
        if batch == 0 or want_k == 0 or self._looks_clean(requests, items, logged):
            return
        self._locate(requests, slates, logged, batch)

    def check_acts(self, state: DialogueState, system: Any, k: int) -> None:
        """A conversational policy's move, checked as a slate is (a few [B] and [B, k] passes).

        Unchecked, an act code other than ASK/RECOMMEND or a facet past the catalog's failed the
        cell with an IndexError naming no arm, a list or None with an AttributeError, and an ask
        about facet UNKNOWN (-1) ran on, marking the last facet asked.
        """
        requests = state.requests
        batch = len(requests)
        if not isinstance(system, SystemActs):
            kind = type_name(system)
            raise self._fail(requests, -1, f"act returned {kind}, expected a SystemActs")
        for name in ("act", "facet"):
            column = getattr(system, name)
            field = f"SystemActs.{name}"
            if type(column) is not np.ndarray:
                kind = type_name(column)
                raise self._fail(requests, -1, f"{field} is a {kind}, expected a numpy.ndarray")
            if column.shape != (batch,):
                raise self._fail(
                    requests, -1, f"{field} has shape {column.shape}, expected {(batch,)}"
                )
            if column.dtype.kind not in "iu":
                raise self._fail(
                    requests, -1, f"{field} has dtype {column.dtype}, expected integers"
                )
        text = system.text
        wanted = f"expected a tuple of {batch} strings ('' where the policy says nothing)"
        if not isinstance(text, tuple | list):
            raise self._fail(requests, -1, f"SystemActs.text is a {type_name(text)}, {wanted}")
        if len(text) != batch:
            raise self._fail(requests, -1, f"SystemActs.text has {len(text)} entries, {wanted}")
        kinds = set(map(type, text))  # in C: no Python loop over the batch
        if not kinds <= {str}:
            names = ", ".join(sorted(kind.__qualname__ for kind in kinds - {str}))
            raise self._fail(requests, -1, f"SystemActs.text holds {names}, {wanted}")
        self.check(requests, system.slates, k)
        if batch == 0:
            return
        act, facet = system.act, system.facet
        if _min(act, axis=None) < min(ASK, RECOMMEND) or _max(act, axis=None) > max(ASK, RECOMMEND):
            row = int(np.flatnonzero((act != ASK) & (act != RECOMMEND))[0])
            raise self._fail(
                requests,
                row,
                f"act code {int(act[row])} is neither ask ({ASK}) nor recommend ({RECOMMEND})",
            )
        asks = act == ASK
        n_facets = len(state.facets.names)
        bad = (facet < UNKNOWN) | (facet >= n_facets) | (asks & (facet == UNKNOWN))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise self._fail(
                requests,
                row,
                f"facet {int(facet[row])} on a turn it {'asked' if asks[row] else 'recommended'}"
                f" is not one of the catalog's facets 0..{n_facets - 1}"
                + ("" if asks[row] else f" or {UNKNOWN} (none)"),
            )
        items = system.slates.items
        filled = items != PAD_ITEM
        on_ask = filled & asks[:, None]
        if on_ask.any():
            row, col = np.argwhere(on_ask)[0]
            raise self._fail(
                requests,
                int(row),
                f"item {int(items[row, col])} in slot {int(col)} on a turn it asked "
                f"(an ask's slate is all PAD_ITEM, {PAD_ITEM})",
            )
        shown = state.shown
        if shown.size:
            again = (items[:, :, None] == shown[:, None, :]).any(axis=2) & filled
            if again.any():
                row, col = np.argwhere(again)[0]
                raise self._fail(
                    requests,
                    int(row),
                    f"item {int(items[row, col])} was already recommended in this conversation "
                    "(state.shown)",
                )

    @staticmethod
    def _looks_clean(requests: RequestBatch, items: np.ndarray, slates: SlateBatch) -> bool:
        """True when no rule can be broken, in a handful of whole-batch reductions.

        This is the path every honest call takes, so it avoids masks and temporaries: range by
        min/max, duplicates by one row sort, exclusions by one [B, k, H] comparison, infinite
        scores by one isinf (~1 µs at a few requests; NaN, no score, passes), propensity by
        min/max (NaN fails both). Anything suspicious goes to :meth:`_locate`, which finds the
        offending slot exactly (or finds nothing: e.g. two empty slots are not duplicates, an
        empty slot may score -inf).
        """
        # reductions call the ufuncs directly: at a few requests a tick the method wrappers
        # cost as much as the work
        ordered = items.copy()
        ordered.sort(axis=1)  # empty slots (PAD_ITEM = -1) sort first
        if (
            _min(ordered[:, 0], axis=None) < 0
            or _max(ordered[:, -1], axis=None) >= requests.catalog.n_items
        ):
            return False  # an id out of range, or empty slots (rare): the exact pass decides
        if _any(ordered[:, 1:] == ordered[:, :-1], axis=None):
            return False
        exclude = requests.exclude
        if exclude.size and (
            items.size * exclude.shape[1] > _BROADCAST_CELLS
            or _any(items[:, :, None] == exclude[:, None, :], axis=None)
        ):
            return False
        scores, propensity = slates.scores, slates.propensity
        if scores.dtype.kind == "f" and _any(_isinf(scores), axis=None):
            return False  # NaN (no score) passes: only ±inf is refused
        return bool(_min(propensity, axis=None) > 0) and bool(_max(propensity, axis=None) <= 1)

    def _locate(
        self, requests: RequestBatch, slates: SlateBatch, logged: SlateBatch, batch: int
    ) -> None:
        """Find the first broken rule and raise it; return when nothing is actually wrong.
        Scores and propensities are judged as ``logged`` holds them (:func:`as_logged`)."""
        items = slates.items
        filled = items != PAD_ITEM
        bad = filled & ((items < 0) | (items >= requests.catalog.n_items))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise self._fail(
                requests,
                int(row),
                f"item id {int(items[row, col])} in slot {int(col)} is not a published item "
                f"(catalog has ids 0..{requests.catalog.n_items - 1})",
            )
        ordered = np.sort(np.where(filled, items, PAD_ITEM), axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PAD_ITEM)
        if repeated.any():
            row, col = np.argwhere(repeated)[0]
            raise self._fail(
                requests, int(row), f"item {int(ordered[row, col + 1])} appears twice in a slate"
            )
        exclude = requests.exclude
        if exclude.size and items.size * exclude.shape[1] <= _BROADCAST_CELLS:
            # [B, k, H] comparisons beat isin's sort of B*(k+H) keys (see _BROADCAST_CELLS)
            hit = (items[:, :, None] == exclude[:, None, :]).any(axis=2) & filled
        elif exclude.size:
            width = np.int64(max(requests.catalog.n_items, 1))
            rows = np.arange(batch, dtype=np.int64)[:, None]
            shown = np.where(filled, rows * width + items, -1)
            consumed = np.where(exclude != PAD_ITEM, rows * width + exclude, -2)
            hit = np.isin(shown, consumed)
        if exclude.size and hit.any():
            row, col = np.argwhere(hit)[0]
            raise self._fail(
                requests,
                int(row),
                f"item {int(items[row, col])} was already consumed by this user (requests.exclude)",
            )
        infinite = np.isinf(logged.scores) & filled
        if infinite.any():
            # an infinite score passed every check and was logged as inf in the exposures
            # table (through a carousel's layout too); NaN stays allowed: it is how a policy
            # says it has no score (random, explored slots), logged as null
            row, col = np.argwhere(infinite)[0]
            raise self._fail(
                requests,
                int(row),
                f"score {given(slates.scores, logged.scores, row, col)} of item "
                f"{int(items[row, col])} in slot {int(col)} is not finite (NaN marks a slot "
                "without a score)",
            )
        logged_propensity = logged.propensity
        propensity = logged_propensity[filled]
        if not (np.isfinite(propensity) & (propensity > 0) & (propensity <= 1)).all():
            rows_bad = ~(np.isfinite(logged_propensity) & (logged_propensity > 0))
            rows_bad |= logged_propensity > 1
            row, col = np.argwhere(rows_bad & filled)[0]
            raise self._fail(
                requests,
                int(row),
                f"propensity {given(slates.propensity, logged.propensity, row, col)} in "
                f"slot {int(col)} is not in (0, 1]",
            )


def as_logged(slates: SlateBatch) -> SlateBatch:
    """``slates`` with scores and propensities as the exposures table holds them (float32), for
    the checks. A plug-in's float64 score of 1e300 is finite and its propensity 1e-300 positive,
    so both passed the checks and were logged as inf and 0.0, values the checks refuse."""
    scores, propensity = slates.scores, slates.propensity
    if scores.dtype == np.float32 and propensity.dtype == np.float32:
        return slates  # every built-in: no copy
    return SlateBatch(slates.items, as_float32(scores), as_float32(propensity))


def as_float32(values: np.ndarray) -> np.ndarray:
    """``values`` as the engine's float32 state and logs hold them (no copy when they are)."""
    if values.dtype == np.float32:
        return values
    with np.errstate(over="ignore", under="ignore"):
        return values.astype(np.float32)


def given(answered: np.ndarray, logged: np.ndarray, *where: int) -> str:
    """A value as the plug-in answered it, and as float32 where only that is out of bounds."""
    value, stored = float(answered[where]), float(logged[where])
    if stored == value or not (stored == 0 or np.isinf(stored)) or not np.isfinite(value):
        return repr(value)
    return f"{value!r} ({stored!r} in the engine's float32)"


_FROZEN = frozenset(
    {RequestBatch, CatalogView, Interactions, FeedbackBatch, SlateBatch, DialogueState, PageBatch}
)
"""The engine's frozen objects that plug-ins' methods receive (a recommender's, a plug-in
surface's layout, a plug-in user policy's respond), and that hold others of them."""

_ARGUMENT = {"fit": "history", "recommend": "requests", "update": "feedback", "act": "state"}

_GONE = object()

Where = str | tuple["Where", str]
"""An argument's name, or (where its holder is, field): made a string only for an error."""


def _dotted(where: Where) -> str:
    return where if isinstance(where, str) else f"{_dotted(where[0])}.{where[1]}"


class Handed:
    """What the engine hands a plug-in's method, noted before the call so that :meth:`tampered`
    can tell after it whether the plug-in changed it: the fields of each frozen object (nested
    ones too) and which of them are read-only arrays.

    Both guards can be got past in Python: numpy lets anyone set ``flags.writeable`` back on a
    read-only view of writeable memory, and ``object.__setattr__`` rebinds a field of a frozen
    dataclass. A plug-in that did either, then cleared ``requests.exclude`` (or put an array
    of its own there), showed users what they had consumed, passed the guard (which reads the
    same requests) and "won" its A/B with exit 0; one that rebound ``requests.user`` moved
    sessions to other users. Cost: a tuple of each object's fields and a dozen flag reads, a
    few microseconds a call."""

    __slots__ = ("fields", "locked")

    def __init__(self, values: tuple[Any, ...], names: tuple[str, ...]) -> None:
        self.fields: list[tuple[Where, Any, tuple[Any, ...]]] = []
        self.locked: list[tuple[Where, str, np.ndarray]] = []
        for value, name in zip(values, names, strict=True):
            if type(value) in _FROZEN:
                self._note(value, name)

    def _note(self, value: Any, where: Where) -> None:
        live = value.__dict__
        self.fields.append((where, value, tuple(live.values())))
        for field, part in live.items():
            kind = type(part)
            if kind is np.ndarray:
                if not part.flags.writeable:
                    self.locked.append((where, field, part))
            elif kind in _FROZEN:
                self._note(part, (where, field))

    def tampered(self) -> str | None:
        """What the call changed, worded for an error line ("rebound requests.exclude: ..."),
        or None when it changed nothing."""
        for where, value, before in self.fields:
            live = value.__dict__
            if len(live) == len(before) and all(map(is_, live.values(), before)):
                continue
            known = [field.name for field in dataclasses.fields(value)]
            noted = dict(zip(known, before, strict=False))
            changed = [name for name in known if live.get(name, _GONE) is not noted.get(name)]
            changed += [name for name in live if name not in noted]
            field = changed[0] if changed else known[0]
            return (
                f"rebound {_dotted(where)}.{field}: what the engine hands a plug-in is frozen "
                "and shared with the engine (make a new one, e.g. dataclasses.replace, to "
                "change it)"
            )
        for where, field, array in self.locked:
            if array.flags.writeable:
                return (
                    f"made {_dotted(where)}.{field} writeable: the engine's arrays are "
                    "read-only views of its state (copy one to change it)"
                )
        return None


def call_plugin(
    inner: Any,
    method: str,
    args: tuple[Any, ...],
    names: tuple[str, ...],
    passes: tuple[type[BaseException], ...],
    catches: type[BaseException],
    failed: Callable[[str], Exception],
    hint: bool = True,
) -> Any:
    """``inner.method(*args)`` as every guard calls a plug-in (recommenders and surfaces here,
    user policies in response_guard.py), so the protocol has one copy: what the call is handed
    is noted (:class:`Handed`); an exception of ``passes`` goes through; one of ``catches``
    becomes ``failed("<method> raised Type: message")``, chained to it (read-only hint when
    ``hint``); a call that rebound or unlocked what it was handed, ``failed("<method> <what
    it changed>")``. ``failed`` prefixes the line with its owner (arm and type, policy)."""
    handed = Handed(args, names)
    try:
        answer = getattr(inner, method)(*args)
    except passes:
        raise
    except catches as exc:
        text = exception_line(exc)
        raise failed(f"{method} raised {with_read_only_hint(exc, text) if hint else text}") from exc
    tampered = handed.tampered()
    if tampered is not None:
        raise failed(f"{method} {tampered}")
    return answer


def as_checked(slates: SlateBatch) -> SlateBatch:
    """A read-only copy of checked slates: what the user is shown and what is logged stay what
    was checked, whatever the plug-in later does with the arrays it answered with."""
    return SlateBatch(
        read_only(slates.items.copy()),
        read_only(slates.scores.copy()),
        read_only(slates.propensity.copy()),
    )


def guard_plugin_bases(arm: Any) -> Callable[[str, Any], GuardedRecommender]:
    """``RecommenderContext.guard_base`` for ``arm``'s cells: a plug-in that a wrapper (mmr,
    epsilon_greedy, info_gain, ...) builds as its base answers through the guard, as the arm's
    own recommender does; its lines name it and the arm's type."""
    return lambda kind, recommender: SlateGuard.of_base(arm, kind).wrap(recommender)


class GuardedRecommender:
    """A recommender whose every ``recommend`` answer goes through the guard first."""

    def __init__(self, inner: Any, guard: SlateGuard) -> None:
        self.inner = inner
        self.guard = guard

    def _failed(self, what: str) -> RecommenderFailed:
        guard = self.guard
        kind = PluginRecommenderFailed if ":" in guard.kind else RecommenderFailed
        return kind(f"arm {guard.arm!r} ({guard.label}): {what}")

    def _call(self, method: str, argument: Any) -> Any:
        """The inner method's answer; its exception (any but a stop, an exit, a user error the
        recommender words itself or an LLM cache miss) becomes one naming the arm, the type and
        the method. BaseExceptions of other kinds (GeneratorExit, a plug-in's own) used to pass
        every handler and end the run with a traceback."""
        return call_plugin(
            self.inner,
            method,
            (argument,),
            (_ARGUMENT.get(method, method),),
            (KeyboardInterrupt, SystemExit, RecarenaError, CacheMiss),
            BaseException,  # plug-in code: any failure, one line
            self._failed,
        )

    def fit(self, history: Any) -> Any:
        return self._call("fit", history)

    def converse(self, state: DialogueState) -> Any:
        """A conversational policy's ``act``, its failure one line as ``recommend``'s is (the
        dialogue loop checks the answer with :meth:`SlateGuard.check_acts`)."""
        return self._call("act", state)

    def implements(self, method: str) -> bool:
        """Whether the wrapped recommender has ``method`` (the wrapper has fit, update and
        recommend whatever it wraps: a conversational policy needs no update)."""
        return callable(getattr(self.inner, method, None))

    def update(self, feedback: Any) -> Any:
        return self._call("update", feedback)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        """The inner answer, checked, as a read-only copy: what the user is shown and what is
        logged stay what was checked, even if the recommender reuses its arrays later."""
        slates = self._call("recommend", requests)
        self.guard.check(requests, slates)
        return as_checked(slates)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being unpickled): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


class PluginSurfaceFailed(RecarenaError):
    """A plug-in surface's ``layout`` or ``examine`` raised (the user's code: exit 2)."""


_SURFACE_ARGUMENTS = {
    "layout": ("recommender", "requests", "state"),
    "examine": ("noise_key", "items"),
}


class GuardedSurface:
    """A plug-in surface (``surface.type: module:Factory``) whose answers are checked: what its
    ``layout`` shows passes the slate checks (it lays out the recommender's checked slates, but
    may reorder, repeat or invent items), and ``examine`` must answer ``[B, k]`` booleans.
    Unchecked, a layout that repeated an item ran without a word, and an id past the catalog or
    an examine of another shape failed every cell with an IndexError or a broadcast error naming
    no surface. The page loop's other calls pass through (built-in surfaces are not wrapped)."""

    def __init__(self, inner: Any, guard: SlateGuard) -> None:
        self.inner = inner
        self.guard = guard

    def _call(self, method: str, *args: Any) -> Any:
        """The surface's answer; an Exception it raises (not one the recommender it calls
        words itself, nor an LLM cache miss) is one line naming the arm, the surface and the
        method, exit 2: it was the bare 'ValueError: ...', exit 1. Other BaseExceptions fail
        the cell as they do anywhere in it."""
        guard = self.guard
        return call_plugin(
            self.inner,
            method,
            args,
            _SURFACE_ARGUMENTS[method],
            (RecarenaError, CacheMiss),
            Exception,
            lambda what: PluginSurfaceFailed(f"arm {guard.arm!r} ({guard.label}): {what}"),
            hint=False,
        )

    def layout(self, recommender: Any, requests: RequestBatch, state: Any) -> SlateBatch:
        """The layout, checked, as a read-only copy: a surface that kept its answer's arrays
        and changed them in ``examine`` (called next, with those items) showed and logged
        items the guard never saw, a consumed one or a repeat among them."""
        slates = self._call("layout", recommender, requests, state)
        self.guard.check(requests, slates)
        return as_checked(slates)

    def examine(self, noise_key: np.ndarray, items: np.ndarray) -> np.ndarray:
        examined = self._call("examine", noise_key, items)
        if type(examined) is not np.ndarray or examined.dtype != np.bool_:
            got = type_name(examined)
            got += f" of {examined.dtype}" if isinstance(examined, np.ndarray) else ""
            raise SlateViolation(
                f"arm {self.guard.arm!r} ({self.guard.label}): examine returned {got}, "
                f"expected a numpy.ndarray of bool"
            )
        if examined.shape != items.shape:
            raise SlateViolation(
                f"arm {self.guard.arm!r} ({self.guard.label}): examine returned shape "
                f"{examined.shape}, expected the slates' {items.shape}"
            )
        return examined

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being unpickled): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
