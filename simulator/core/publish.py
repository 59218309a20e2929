"""Publishing a set of output files together: all of the new ones, or none of them.

``recarena fidelity -o DIR`` writes three files and ``recarena calibrate -o FILE`` up to four;
each used to be moved into place on its own, so a stop signal or an error between two moves
left new files beside old ones (a ``fidelity.json`` of this run with the ``fidelity.md`` of the
last), and ``calibrate`` wrote its Parquet files in place, so a stop mid-write left a truncated
one. Here every new file is first written whole under a hidden name beside its target (same
folder, so the moves are renames on one file system), then the old files are renamed aside,
the new ones renamed in, and the old ones removed. Stop signals that arrive during those
renames (microseconds) are held off until they end; an error among them puts the old files back.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from recarena.simulator.core.errors import RecarenaError

_STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def staging_name(target: Path, token: str) -> Path:
    """The hidden name a new ``target`` is written under until it is published, with the
    target's suffix (``np.savez`` adds ``.npz`` to a name without it)."""
    return target.with_name(f".{target.stem}.{token}.new{target.suffix}")


def new_token() -> str:
    return secrets.token_hex(4)


@contextlib.contextmanager
def _held_stops() -> Iterator[None]:
    """Stop signals that arrive inside are held off, not raised. Only in the main thread,
    where Python runs its handlers; elsewhere nothing can interrupt it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda _s, _f: None) for sig in _STOPS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def publish(files: Mapping[Path, Path | None], what: str) -> None:
    """Move each staged file onto its target (``target -> staged``; None removes the target),
    all or none. Staged files must sit on their target's file system (in its folder, or a
    folder beside it). On an error the old targets
    are put back, the staged files removed, and one :class:`RecarenaError` names ``what`` and
    the target. A stop signal that comes during the renames is held and then dropped: the
    work was finished when it came, and the command ends as it would have."""
    token = new_token()
    aside: dict[Path, Path] = {}
    placed: list[Path] = []
    with _held_stops():
        target = Path()
        try:
            for target in files:
                if target.exists():
                    if target.is_dir():
                        raise IsADirectoryError(21, "Is a directory", str(target))
                    old = target.with_name(f".{target.name}.{token}.old")
                    os.rename(target, old)
                    aside[target] = old
            for target, staged in files.items():
                if staged is not None:
                    os.rename(staged, target)
                    placed.append(target)
        except OSError as exc:
            for path in placed:
                with contextlib.suppress(OSError):
                    path.unlink()
            for path, old in aside.items():
                with contextlib.suppress(OSError):
                    os.rename(old, path)
            for staged in files.values():
                if staged is not None:
                    with contextlib.suppress(OSError):
                        staged.unlink()
            reason = exc.strerror or type(exc).__name__
            raise RecarenaError(
                f"{what}: cannot write {target} ({reason}); the files there are as they were"
            ) from None
        for old in aside.values():
            with contextlib.suppress(OSError):
                old.unlink()


def discard(staged: Mapping[Path, Path | None]) -> None:
    """Remove staged files left by a run that stopped or failed before publishing them."""
    for path in staged.values():
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
