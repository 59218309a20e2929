"""One registry mechanism for every plug-in kind.

A registry maps names to *targets*: ``"package.module:Attribute"`` strings that are imported only
when the entry is used, so listing or validating never imports torch or RecBole, and no module
has to import every plug-in (the source of import cycles). Three sources, in order:

1. the built-in table the registry is created with (read-only);
2. installed packages' entry points in the group ``recarena.<kind>`` (e.g. ``recarena.metrics``);
3. any ``"package.module:Attribute"`` written directly in a scenario.

Each kind gives a ``check`` that verifies a loaded object honours its contract, so a bad plug-in
is one error line naming it, not a traceback later.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

from recarena.simulator.core.names import did_you_mean

_NAME = r"[^\W\d]\w*"
"""A Python identifier: a letter (any script's, as Python allows) or ``_``, then word
characters. ``[A-Za-z_]`` refused a module named ``über_recs`` as "not an importable path"."""
_TARGET = re.compile(rf"^{_NAME}(\.{_NAME})*:{_NAME}(\.{_NAME})*$")


@contextlib.contextmanager
def plugin_prints_to_stderr() -> Iterator[None]:
    """Where plug-in code runs in this process (importing its module, the resolve step's and
    the preflight's builds, a metric's compute, a cell of ``--executor local``): what it prints
    goes to stderr. Stdout holds the command's answer (validate's ``ok:`` line, the A/B table,
    compare's table, report's path); a constructor's or a module's ``print`` landed in it,
    before that answer.

    File descriptor 1 is pointed at stderr too, for the block: what a plug-in's C library, a
    subprocess it starts or ``os.write(1, ...)`` wrote went to the descriptor, past
    ``sys.stdout``, into the middle of the answer (a process-executor worker points it at
    stderr for good, simulator/runner/process_pool.py). A C library's buffered output is
    flushed before the descriptor is put back. Four system calls a block; blocks are a module
    import, a build, a metric or a whole cell, never a page."""
    with contextlib.redirect_stdout(sys.stderr), _descriptor_one_to_stderr():
        yield


@contextlib.contextmanager
def _descriptor_one_to_stderr() -> Iterator[None]:
    for stream in (sys.__stdout__, sys.stdout):  # what was written before goes where it was
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()  # type: ignore[union-attr]
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 (closed by the caller): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
    except OSError:  # no descriptor 2 to point at: leave 1 as it is
        os.close(saved)
        yield
        return
    try:
        yield
    finally:
        _flush_c_streams()
        os.dup2(saved, 1)
        os.close(saved)


def _flush_c_streams() -> None:
    """fflush(NULL): a C library's stdout buffer (full when descriptor 1 is no terminal) would
    otherwise reach descriptor 1 after it is put back, or at exit."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)


@dataclass(frozen=True)
class Entry:
    """A registered plug-in: its name, where it lives and what it is for.

    ``target`` is an import path (loaded on use) or, for built-ins that cost nothing to hold
    (metric definitions, estimator functions), the object itself.
    """

    kind: str
    name: str
    target: Any
    description: str = ""
    source: str = "built-in"

    def load(self) -> Any:
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attribute = self.target.partition(":")
        try:
            with plugin_prints_to_stderr():
                obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            label = self.kind.replace("_", " ")
            hint = _not_on_path_hint(exc) or _py_suffix_hint(module_name, attribute)
            raise LookupError(f"cannot import {label} {self.name!r}: {exc}{hint}") from None
        except KeyboardInterrupt:
            raise  # a stop (Ctrl-C, or a signal): the command says so itself
        except BaseException as exc:
            if self.source == "built-in":
                raise  # a built-in that fails to import is our bug, not the scenario's
            # the user's module raised (or called sys.exit, or raised a BaseException of its
            # own, which printed a traceback) while importing: one line, not an "internal
            # error" and never a silent exit
            label = self.kind.replace("_", " ")
            raise LookupError(
                f"cannot import {label} {self.name!r}: importing {module_name!r} raised "
                f"{exception_text(exc)}"
            ) from None
        for part in attribute.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                label = self.kind.replace("_", " ")
                raise LookupError(
                    f"cannot import {label} {self.name!r}: {module_name!r} has no {part!r}"
                ) from None
            except Exception as exc:
                if self.source == "built-in":
                    raise
                # a module's __getattr__ (or a class property) that raised: was an internal
                # error, exit 1
                raise LookupError(
                    f"cannot import {self.kind.replace('_', ' ')} {self.name!r}: looking up "
                    f"{part!r} in {module_name!r} raised {exception_text(exc)}"
                ) from None
        return obj


def exception_text(exc: BaseException) -> str:
    """``Type: message`` of a plug-in's exception on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no message'}"


def _py_suffix_hint(module: str, attribute: str) -> str:
    """A hint for ``recs.py:Newest``: Python read it as module ``py`` of a package ``recs``."""
    if not module.endswith(".py"):
        return ""
    return f" (a module is named without its .py: write '{module[:-3]}:{attribute}')"


def _not_on_path_hint(exc: ImportError) -> str:
    """A hint when the missing module sits in the working directory: the ``recarena`` command,
    unlike ``python -m``, does not import from there, and "No module named 'mypkg'" next to a
    ``mypkg/`` folder reads as a contradiction."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if not missing or "." in missing:
        return ""
    here = Path.cwd()
    if not ((here / missing / "__init__.py").is_file() or (here / f"{missing}.py").is_file()):
        return ""
    return (
        f" ({missing!r} is in the working directory, which the recarena command does not "
        "import from: run it as PYTHONPATH=. recarena ..., or install the package)"
    )


def _file_path_hint(name: str) -> str:
    """A hint when ``name`` names a file (``plugins/recs.py:Newest``): an import path names a
    module, and "absolute" read as a file system's absolute path."""
    module, _, attribute = name.rpartition(":")
    path = Path(module)
    if path.suffix != ".py" and "/" not in module and "\\" not in module:
        return ""
    folder = str(path.parent) if str(path.parent) not in ("", ".") else "."
    return (
        f"; a file is not a module: run with PYTHONPATH={folder} and write "
        f"'{path.stem}:{attribute}'"
    )


def must_be_callable(
    kind: str, expected: str, call: str = "", positional: int | None = None
) -> Callable[[Any, str], None]:
    """A contract check for kinds whose plug-in is a function or factory, called as ``call``
    with ``positional`` arguments (a class there must be buildable: :func:`check_buildable`)."""

    def check(obj: Any, name: str) -> None:
        if not callable(obj):
            raise LookupError(f"{name!r} is not a {kind}: expected {expected}")
        if positional is None:
            return
        if isinstance(obj, type):
            check_buildable(obj, name, kind, call, positional)
        else:
            check_signature(obj, name, kind, call, positional)

    return check


def check_buildable(
    obj: Any, name: str, label: str, call: str, positional: int, keywords: tuple[str, ...] = ()
) -> None:
    """A class plug-in can be built the way the engine builds it; LookupError (one line) if not.

    Method checks alone let through a contract's own Protocol, an abstract class, an instance
    where a class belongs, or a constructor with another signature: each passed validate and
    then failed every cell of its arm with a TypeError. ``call`` is how the engine calls it
    (for the message), ``positional`` and ``keywords`` the arguments it passes.
    """
    if not isinstance(obj, type):
        raise LookupError(f"{name!r} is not a {label}: expected a class, got {_kind_of(obj)}")
    if getattr(obj, "_is_protocol", False):
        raise LookupError(
            f"{name!r} is not a {label}: it is a Protocol (a contract to implement), not a class "
            "that implements it"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise LookupError(f"{name!r} is not a {label}: it is abstract (no {missing})")
    check_signature(obj, name, label, call, positional, keywords)


def check_signature(
    obj: Any, name: str, label: str, call: str, positional: int, keywords: tuple[str, ...] = ()
) -> None:
    """``obj`` accepts ``positional`` positional arguments and the ``keywords``, as the engine
    passes them (a callable without an inspectable signature is given the benefit of doubt),
    and answers when called (:func:`check_synchronous`)."""
    if not isinstance(obj, type):
        _refuse_deferred(obj, name, label, "")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*([None] * positional), **dict.fromkeys(keywords))
    except TypeError as exc:
        raise LookupError(
            f"{name!r} cannot be used as a {label}: it is called as {call}, but {exc}"
        ) from None


def check_synchronous(obj: Any, name: str, label: str, methods: tuple[str, ...]) -> None:
    """The plug-in's ``methods`` run their body when called; LookupError (one line) if not.

    The engine calls a plug-in's methods and uses what they return at once. An ``async def``
    method returns a coroutine that nobody awaits, and a method with ``yield`` a generator
    that nobody iterates: either way none of its body runs. An async or generator ``fit`` or
    ``update`` passed validate and the run finished (exit 0) with a recommender that never
    learned, with a "coroutine ... was never awaited" RuntimeWarning in the middle of it.
    """
    for method in methods:
        _refuse_deferred(getattr(obj, method, None), name, label, method)


def _refuse_deferred(function: Any, name: str, label: str, method: str) -> None:
    """LookupError when calling ``function`` would run none of its body (see above)."""
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        what = "an async function (async def): the engine never awaits it"
    elif inspect.isgeneratorfunction(function):
        what = "a generator function (it yields): the engine never iterates it"
    else:
        return
    subject = f"its {method}()" if method else "it"
    raise LookupError(
        f"{name!r} cannot be used as a {label}: {subject} is {what}, so calling it runs none "
        "of its body (write a plain def that returns its answer)"
    )


def ignored_keys(model: Any, raw: Any) -> list[str]:
    """Keys of ``raw`` that the pydantic ``model`` would silently drop.

    pydantic ignores unknown keys unless a model says ``extra="forbid"`` (every built-in does),
    so a plug-in's Params without it turned a typo (``epoch: 5``) into the default without a
    word. Empty when the model keeps or refuses extras itself, or names a field by an alias
    choice this cannot read."""
    config = getattr(model, "model_config", None) or {}
    if config.get("extra") not in (None, "ignore") or not isinstance(raw, dict):
        return []
    known: set[str] = set()
    for name, info in getattr(model, "model_fields", {}).items():
        aliases = (info.alias, info.validation_alias)
        if any(alias is not None and not isinstance(alias, str) for alias in aliases):
            return []
        known |= {name} | {alias for alias in aliases if isinstance(alias, str)}
    return [str(key) for key in raw if key not in known]


def plain_params(params: Any) -> dict[str, Any]:
    """A validated Params model as plain data (JSON's types), the way a run saves it
    (scenario.resolved.yaml, the manifests) and hands it to each cell.

    JSON has no sets: pydantic writes a set or frozenset as a list in its iteration order,
    which for text depends on PYTHONHASHSEED, so two runs of one scenario wrote their resolved
    scenario and manifests with different bytes. Each such list is sorted (by value; by its
    JSON text when the values do not compare), so equal params are written alike."""
    return _sorted_sets(params.model_dump(), params.model_dump(mode="json"))  # type: ignore[no-any-return]


def _sorted_sets(value: Any, data: Any) -> Any:
    """``data`` (``value`` as pydantic wrote it for JSON) with what was a set sorted; parts
    that a custom serializer reshaped are left as they are."""
    if isinstance(value, dict) and isinstance(data, dict) and len(value) == len(data):
        return dict(zip(data, map(_sorted_sets, value.values(), data.values()), strict=True))
    if not isinstance(value, list | tuple | set | frozenset) or not isinstance(data, list):
        return data
    if len(value) != len(data):
        return data
    items = list(map(_sorted_sets, value, data))
    if not isinstance(value, set | frozenset):
        return items
    try:
        return sorted(items)
    except TypeError:  # values of several types (or mappings)
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))


def _kind_of(obj: Any) -> str:
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "a function"
    if inspect.ismodule(obj):
        return "a module"
    return f"an instance of {type(obj).__name__}"


_INSTALLED: Any = None


def installed_entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    """The installed entry points of ``group``, from one reading per process for every registry.

    Each ``metadata.entry_points(group=...)`` reads the metadata of every installed distribution
    (~150 here, 4-6 ms), and a cell's first use of a kind (its surface, say) paid that again
    inside the timed run; each registry already kept what it found for the process."""
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = metadata.entry_points()
    return tuple(_INSTALLED.select(group=group))


@dataclass
class Registry:
    """Names of one plug-in kind (``recommender``, ``metric``, ...)."""

    kind: str
    builtins: Mapping[str, tuple[Any, str]]
    """name -> (target: import path or object, one-line description)."""
    check: Callable[[Any, str], None] | None = None
    """Raises LookupError when a loaded object does not honour the kind's contract."""
    _entry_points: dict[str, Entry] | None = field(default=None, repr=False)
    _ignored: list[str] = field(default_factory=list, repr=False)
    _table: Mapping[str, Entry] | None = field(default=None, repr=False)
    _checked: dict[str, Any] = field(default_factory=dict, repr=False)
    """name -> the object that passed ``check``: a sweep resolves every point's names, and
    inspecting a class's signature again for each of 10,000 points was most of its validation."""

    @property
    def group(self) -> str:
        """Entry-point group, e.g. ``recarena.metrics``, ``recarena.creator_strategies``."""
        plural = self.kind[:-1] + "ies" if self.kind.endswith("y") else self.kind + "s"
        return f"recarena.{plural}"

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ")

    def _installed(self) -> dict[str, Entry]:
        if self._entry_points is None:
            found: dict[str, Entry] = {}
            ignored: list[str] = []
            for ep in installed_entry_points(self.group):
                dist = getattr(ep, "dist", None)
                source = f"entry point of {dist.name}" if dist is not None else "entry point"
                if ep.name in self.builtins:
                    ignored.append(
                        f"{self.group} entry point {ep.name!r} ({ep.value}, {source}) is "
                        f"ignored: {ep.name!r} is a built-in {self.label}; register yours "
                        "under another name"
                    )
                    continue
                if ep.name in found:
                    ignored.append(
                        f"{self.group} entry point {ep.name!r} ({found[ep.name].target}, "
                        f"{found[ep.name].source}) is ignored: {source} registers "
                        f"{ep.name!r} too ({ep.value}), and that one is used"
                    )
                found[ep.name] = Entry(self.kind, ep.name, ep.value, "", source)
            self._entry_points, self._ignored = found, ignored
        return self._entry_points

    def ignored_entry_points(self) -> list[str]:
        """One line per installed entry point this registry does not use: its name is a
        built-in's (the built-in wins) or another installed entry point's (the last wins).
        Both were dropped without a word, so a plug-in registered as ``mf`` never ran."""
        self._installed()
        return list(self._ignored)

    def entries(self) -> Mapping[str, Entry]:
        """Built-in and installed entries (not ad-hoc ``module:Attribute`` names)."""
        if self._table is None:
            table = {
                name: Entry(self.kind, name, target, description)
                for name, (target, description) in self.builtins.items()
            }
            table.update(self._installed())
            self._table = MappingProxyType(table)
        return self._table

    def names(self) -> list[str]:
        return list(self.entries())

    def get(self, name: str) -> Entry:
        """The entry for a name; LookupError (one line) when there is none."""
        if not isinstance(name, str) or not name:
            raise LookupError(f"a {self.label} must be named by a non-empty string, got {name!r}")
        entries = self.entries()
        if name in entries:
            return entries[name]
        if ":" in name:
            if not _TARGET.match(name):
                raise LookupError(
                    f"{name!r} is not an importable path: write 'package.module:ClassName' "
                    f"(absolute, no leading dots){_file_path_hint(name)}"
                )
            return Entry(self.kind, name, name, "", "import path")
        raise LookupError(
            f"unknown {self.label} {name!r}{did_you_mean(name, entries) or ';'} "
            f"known: {', '.join(entries)}"
        )

    def load(self, name: str) -> Any:
        """Import the plug-in and check its contract (once per object)."""
        entry = self.get(name)
        obj = entry.load()
        if self.check is not None and self._checked.get(name) is not obj:
            try:
                self.check(obj, name)
            except LookupError:
                raise
            except Exception as exc:
                if entry.source == "built-in":
                    raise
                # the check reads the plug-in's attributes, and a property of the user's
                # class (on its metaclass) that raised was an internal error, exit 1
                raise LookupError(
                    f"{name!r} cannot be checked as a {self.label}: reading it raised "
                    f"{exception_text(exc)}"
                ) from None
            self._checked[name] = obj
        return obj
