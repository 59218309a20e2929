"""Errors a user can fix. The CLI prints them as one line on stderr and exits with code 2."""

import contextlib
import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path


class RecarenaError(Exception):
    """A problem with the user's input (scenario, path, arguments), not a bug in recarena."""


def printable(text: str) -> str:
    """``text`` with control and format characters escaped (``\\x1b``, ``\\u202e``) for a
    terminal. A path or value quoted in an error line reached the terminal raw: an escape
    sequence in a file name recoloured or cleared it, a right-to-left override reversed the
    rest of the line."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def first_line(exc: BaseException) -> str:
    """The first line of a library's error message, whitespace collapsed (its type's name when
    it has none): what a one-line error quotes of a parser's complaint."""
    text = " ".join(str(exc).strip().split("\n")[0].split())
    return text or type(exc).__name__


def exception_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it) for a one-line error
    quoting a plug-in's exception, even one whose ``__str__`` raises."""
    name = type(exc).__name__
    try:
        text = first_line(exc)
    except Exception:  # noqa: BLE001 - a plug-in's exception that cannot be printed
        text = "(its message could not be printed)"
    return name if text == name else f"{name}: {text[:200]}"


READ_ONLY_HINT = "plug-ins get read-only views of the engine's arrays: copy one to change it"


def with_read_only_hint(exc: BaseException, text: str) -> str:
    """``text`` (a line quoting ``exc``) plus how to fix the commonest plug-in mistake, writing
    into an array the engine handed over read-only: numpy's own words do not say why."""
    if isinstance(exc, ValueError) and "read-only" in text:
        return f"{text} ({READ_ONLY_HINT})"
    return text


NO_ROOM = {
    errno.ENOSPC: "",
    errno.EDQUOT: "",
    errno.EFBIG: " (the file size limit, ulimit -f)",
    errno.EROFS: "",
}
"""The errors of an output that takes no more (a full disk, a quota, the file size limit, a
mount made read-only), with what a user is told besides the system's words."""


@contextlib.contextmanager
def naming_file(path: Path) -> Iterator[None]:
    """An OSError while writing ``path`` names it: Arrow's says "Error writing bytes to file"
    (which file?) and Python's own write errors often name none; a full disk or the file size
    limit failed a cell or a run with neither the file nor, often, the plain reason."""
    try:
        yield
    except OSError as exc:
        if exc.filename or not exc.errno:
            raise
        raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc


def write_problem(exc: OSError) -> str:
    """``cannot write FILE: reason`` for a failed write (the file when the error names one)."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where}: {reason}{NO_ROOM.get(exc.errno or 0, '')}"


def no_room(exc: BaseException) -> bool:
    """Whether ``exc`` says the output takes no more (see :data:`NO_ROOM`): the user's to fix."""
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


_NO_MEMORY_WORDS = ("failed to map segment", "cannot allocate memory", "out of memory")


def out_of_memory(exc: BaseException) -> str | None:
    """One line for an error that says this process ran out of memory (a MemoryError, or a
    library that could not be mapped or allocate: what an address-space limit, ``ulimit -v``,
    gives), naming the limit when one is set; None for any other error."""
    text = str(exc).lower()
    if not (
        isinstance(exc, MemoryError)
        or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
        or (isinstance(exc, ImportError | OSError) and any(w in text for w in _NO_MEMORY_WORDS))
    ):
        return None
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    where = (
        f"this process may use {limit / 2**30:.2g} GiB of address space, ulimit -v"
        if limit != resource.RLIM_INFINITY
        else "the machine's memory"
    )
    return f"out of memory ({where}): {exception_line(exc)}"
