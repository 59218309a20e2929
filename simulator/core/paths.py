"""Paths the operating system cannot look up, refused from their text before any file call.

``os.stat`` on a path with a component longer than the file system allows raises
``ENAMETOOLONG``, which ``Path.exists()`` does not swallow: every ``exists()``/``is_file()`` check
of a scenario's files ended in an internal error (exit 1) on such a path, and a symlink loop under
``output.dir`` was only found by the ``mkdir`` of the run directory. The checks here need no
file system (NUL bytes, lengths) except :func:`check_creatable`, which looks at what exists.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from recarena.simulator.core.errors import RecarenaError

NAME_MAX = 255
"""Bytes of one path component: ext4, XFS, btrfs, APFS and NTFS all stop at 255."""
PATH_MAX = 4095
"""Bytes of a whole path on Linux (4096 with the terminating NUL)."""
RUN_DIR_ROOM = 256
"""Bytes a run appends under ``output.dir``: ``<name>-<stamp>/point=N/arm=<name>/rep=N/<table>``
(names are at most 64 characters)."""


def cwd_note(path: str | Path) -> str:
    """For a "not found" line about a path from a scenario or an option: where a relative path
    was looked for. Paths are read from the working directory, not from the scenario file's
    folder, and a run started elsewhere missed the file without saying where it looked."""
    if Path(path).is_absolute():
        return ""
    return f" (a relative path is read from the working directory, {Path.cwd()})"


def path_problem(text: str, room: int = 0) -> str | None:
    """Why ``text`` is not a path the OS can look up (None when it is); ``room`` bytes are kept
    for what will be appended below it."""
    if "\x00" in text:
        return "a path cannot contain a NUL byte"
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        return "a path must be text the file system can encode"
    if len(encoded) + room > PATH_MAX:
        extra = f" (with {room} bytes kept for the run's own names)" if room else ""
        return f"the path is {len(encoded):,} bytes long; paths stop at {PATH_MAX:,}{extra}"
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        start = longest[:20].decode(errors="replace")
        return (
            f"a name in the path is {len(longest):,} bytes long ({start}...); "
            f"a file system allows {NAME_MAX}"
        )
    return None


_HOME = re.compile(r"~[\w.-]*(/|$)")
_VARIABLE = re.compile(r"\$(\w+|\{\w+\})")


def unexpanded_problem(text: str) -> str | None:
    """Why a path written in a scenario holds a shell shorthand that nothing expands: ``~/runs``
    or ``$HOME/runs`` was a folder literally named ``~`` or ``$HOME`` under the working
    directory. (A path on the command line is expanded by the shell before recarena sees it.)"""
    if _HOME.match(text):
        full = os.path.expanduser(text)
        hint = f" ({full})" if full != text else ""
        return (
            f"{text!r} starts with '~', which a scenario does not expand (it would be a "
            f"folder named '~' under the working directory); write the full path{hint}"
        )
    found = _VARIABLE.search(text)
    if found:
        full = os.path.expandvars(text)
        hint = f" ({full})" if full != text else ""
        return (
            f"{text!r} holds {found.group(0)}, which a scenario does not expand (it would be "
            f"a folder named {found.group(0)!r}); write the full path{hint}"
        )
    return None


def _ends(text: str, keep: int = 30) -> str:
    """``text`` quoted, its middle cut when long: both ends stay visible."""
    if len(text) <= 2 * keep:
        return repr(text)
    return f"{text[:keep]!r}...{text[-keep:]!r}"


def control_problem(text: str) -> str | None:
    """Why ``text`` cannot name a file recarena makes: a control character (a newline, a tab)
    made a folder whose name printed over two lines, or as if it ended in a space."""
    control = next((ch for ch in text if ord(ch) < 32 or ord(ch) == 127), None)
    if control is None:
        return None
    return (
        f"a path cannot contain a control character ({control!r} at character "
        f"{text.index(control) + 1} of {_ends(text)})"
    )


def written_path_problem(text: str) -> str | None:
    """Why a path written in a scenario is not one a user meant, though the OS would take it:
    blank (``path: ""`` under a generated population, or ``llm.model_path: ""``, passed as if
    the key were absent, and ``output.dir: " "`` made a folder named by a space), padded with
    spaces a quoted value kept, or holding a control character (``output.dir: |`` ends in a
    newline, and that folder was made and named in messages as ``runs`` followed by a space)."""
    if not text.strip():
        return "an empty path; write one, or leave the key out"
    control = control_problem(text)
    if control is not None:
        return control
    if text != text.strip():
        return f"{_ends(text)} begins or ends with whitespace (kept by the quotes); remove it"
    return None


def _checked(room: int) -> AfterValidator:
    def check(value: str) -> str:
        problem = (
            path_problem(value, room) or written_path_problem(value) or unexpanded_problem(value)
        )
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


PathText = Annotated[str, _checked(0)]
"""A scenario field holding a file path: refused in one line when the OS cannot look it up."""
DIR_CHECK = _checked(RUN_DIR_ROOM)
"""The same for a directory recarena writes a run directory under (``output.dir``)."""


def existing_ancestor(path: Path) -> Path:
    """The nearest existing directory entry at or above ``path`` (absolute)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_creatable(path: Path, what: str, room: int = 0, directory: bool = True) -> Path:
    """One-line RecarenaError unless ``path`` (a directory recarena will create or write in, or
    with ``directory=False`` a file it will create or open) can be looked up and the nearest
    existing entry at or above it (above its file) is a directory; returns that directory."""
    problem = path_problem(str(path), room)
    if problem is not None:
        raise RecarenaError(f"{what} {str(path)!r}: {problem}")
    try:
        path.resolve()  # a symlink loop: RuntimeError on Python < 3.13, OSError (ELOOP) after
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or "a symbolic link loop"
        raise RecarenaError(f"{what} {path}: cannot be resolved ({reason})") from None
    for folder in (path, *path.parents) if directory else path.parents:
        if folder.exists():
            break
        if folder.is_symlink():  # a link to nothing: mkdir failed on it (FileExistsError)
            raise RecarenaError(
                f"{what} {path}: {folder} is a symbolic link that leads to nothing "
                f"({os.readlink(folder)}); remove it or give another path"
            )
    where = existing_ancestor(path if directory else path.parent)
    if not where.is_dir():
        raise RecarenaError(f"{what} {path}: {where} is a file, not a directory")
    return where


def check_file_creatable(path: Path, what: str) -> Path:
    """:func:`check_creatable` for a file, then a real test that its folder (the nearest one
    that exists) takes a new file: a folder that refuses one (/proc, /sys, a read-only mount)
    passed the lookup and failed only when the file was written, after minutes of work.
    Nothing is left behind (an unnamed temporary file)."""
    where = check_creatable(path, what, directory=False)
    try:
        tempfile.TemporaryFile(dir=where).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RecarenaError(f"{what} {path}: cannot create a file in {where} ({reason})") from None
    return where


def url_problem(text: str) -> str | None:
    """Why ``text`` is not an http(s) endpoint URL (None when it is). Was: a URL without a
    scheme or host, with a space or another scheme passed validate and every LLM call of the run
    failed and fell back (exit 3), or one with a bad port failed every cell (InvalidURL)."""
    from urllib.parse import urlsplit

    if not text:
        return "empty (leave it out to use the OPENAI_BASE_URL environment variable)"
    if any(ch.isspace() for ch in text):
        return "an endpoint URL has no spaces, e.g. http://127.0.0.1:8080/v1"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError as exc:
        return f"not a URL ({exc})"
    if "@" in parts.netloc:  # the URL itself is not shown: it holds a password or a key
        return (
            "an endpoint URL carries no user name or password (it is written to the run's "
            "files and shown in messages); give the key in the variable named by llm.api_key_env"
        )
    if parts.scheme not in ("http", "https"):
        return f"an endpoint URL starts with http:// or https://, got {text!r}"
    if not parts.hostname:
        return f"no host in {text!r}"
    if port == 0:
        return f"port 0 in {text!r}"
    # the client appends /chat/completions to the URL as written: a query or fragment ended up
    # before it (?x=1/chat/completions), and a full endpoint path was asked for twice; every
    # call failed (404) and fell back to the rule policy
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        return f"an endpoint URL has no query or fragment ('?', '#'), got {text!r}"
    if parts.path.rstrip("/").endswith("/completions"):
        root = text.rstrip("/").removesuffix("/completions").removesuffix("/chat")
        return (
            f"give the API's base, not a call's path: {root!r} rather than {text!r} (the "
            "client adds /chat/completions)"
        )
    return None
