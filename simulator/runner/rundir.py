"""The run directory format, in one place: paths, markers, manifests, the lock, cell checks.

A run directory is written by the runner and read by ``analysis.load``, ``compare``, ``report``
and ``--resume``; all of them go through this module, so the format has one definition::

    RUN_DIR/
      manifest.json             the run: status, cells (each with its status), versions
      scenario.resolved.yaml    the scenario as run
      .lock                     PID of the process running it (flock-ed while it runs)
      [point=<i>/]arm=<a>/rep=<r>/
        _INCOMPLETE             present until the cell is published
        manifest.json           the cell: rows, wall time, and per file size/rows/sha256
        <table>.parquet         one file per log table
        error.txt               why a failed cell failed (traceback)

Why each piece exists:

* **Atomic writes** (``tmp`` + ``os.replace``): a reader, or a process killed with -9, only ever
  sees a whole old manifest or a whole new one.
* **Markers**: a cell is finished when its manifest is written and ``_INCOMPLETE`` is gone; the
  run manifest is a summary that may be stale after kill -9, the markers are the truth, and
  :func:`reconcile` brings the manifest back in line with them.
* **File records**: a finished cell records each file's size, row count and sha256, so a file
  truncated or replaced later is found (cheaply by size and Parquet footer row count when
  reading, fully by checksum on resume) instead of failing deep inside polars.
* **The lock**: an OS file lock (``fcntl.flock``) held by the running process. The kernel drops
  it when that process dies however it dies, so a "stale" lock is only a ``.lock`` file naming
  a dead PID: it is reclaimed with a message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.logschema import LOG_FORMAT_VERSION, SCHEMAS
from recarena.simulator.core.names import name_problem
from recarena.simulator.core.paths import path_problem

MANIFEST = "manifest.json"
INCOMPLETE = "_INCOMPLETE"
LOCK = ".lock"
ERROR_FILE = "error.txt"
SCENARIO_FILE = "scenario.resolved.yaml"

# run states
RUNNING, COMPLETE, FAILED, INTERRUPTED = "running", "complete", "failed", "interrupted"
# cell states (COMPLETE and FAILED are shared with the run)
PENDING, CELL_RUNNING, UNFINISHED = "pending", "running", "incomplete"

_HASH_CHUNK = 1 << 20


# ------------------------------------------------------------------ atomic JSON
def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` so that readers see the old file or the new one, never a mix."""
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(payload, indent=2, default=str))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a full disk left an empty .tmp beside the manifest
            tmp.unlink()
        raise OSError(exc.errno, exc.strerror, exc.filename or str(path)) from None


def read_manifest(run_dir: Path, option: str = "") -> dict[str, Any]:
    """The run manifest; one-line RecarenaError when the directory is not a run."""
    problem = path_problem(str(run_dir))
    if problem is not None:  # is_dir() raises on an over-long name
        raise RecarenaError(f"{option or 'run directory'} {str(run_dir)!r}: {problem}")
    if not run_dir.is_dir():
        # a file where the run directory belongs was reported as "not found"
        what = "not a directory" if run_dir.exists() else "run directory not found"
        raise RecarenaError(f"{option} {run_dir}: {what}" if option else f"{what}: {run_dir}")
    path = run_dir / MANIFEST
    if not path.is_file():
        # a folder or pipe of that name was reported as missing
        why = "manifest.json is not a regular file" if os.path.lexists(path) else "no manifest.json"
        run = run_holding(run_dir, parents=3)
        if run is not None:  # a sweep point's folder: said as such, with the run to pass
            why += f"; it is inside the run {run}: pass that"
        raise RecarenaError(
            f"{option} {run_dir}: not a recarena run directory ({why})"
            if option
            else f"not a recarena run directory: {run_dir} ({why})"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecarenaError(f"{path}: unreadable manifest: {exc}") from None
    except RecursionError:  # "[[[[..." nested past Python's stack was an internal error
        raise RecarenaError(f"{path}: unreadable manifest: nested too deeply") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("cells", []), list):
        raise RecarenaError(f"{path}: not a run manifest (no list of cells)")
    if "cells" not in manifest and "files" in manifest and "arm" in manifest:
        # a cell's own manifest read as a run's: resume blamed a log format 1, compare and
        # report found "no finished cells to read"
        run = run_holding(run_dir, parents=3)
        where = f"; its run is {run}: pass that" if run is not None else ""
        raise RecarenaError(
            f"{option or 'run directory'} {run_dir}: a cell of a run (arm "
            f"{manifest['arm']!r:.80}), not a run directory{where}"
        )
    if "cells" not in manifest:
        # every run manifest lists its cells from the start: `{}` was read as a run with
        # none, and resume blamed a log format 1, compare "no finished cells to read"
        raise RecarenaError(f"{path}: not a run manifest (no list of cells)")
    problem = manifest_problem(manifest)
    if problem is not None:
        raise RecarenaError(f"{path}: {problem}")
    return manifest


def run_holding(path: Path, itself: bool = False, parents: int | None = None) -> Path | None:
    """The run directory ``path`` lies in (a cell's folder, a sweep point's), or None: the
    nearest of its parents (and ``path`` itself when ``itself``; only the nearest ``parents``
    when given) whose manifest lists cells. The parents are ``path``'s as written: pass an
    absolute path to look above the working directory."""
    folders = ([path] if itself else []) + list(path.parents)[:parents]
    for folder in folders:
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(manifest, dict) and isinstance(manifest.get("cells"), list):
            return folder
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _inside(path: Any) -> bool:
    """A cell path as the runner writes it: relative, without '..', inside the run."""
    if not isinstance(path, str) or not path or "\x00" in path:
        return False
    parts = Path(path).parts
    return not Path(path).is_absolute() and ".." not in parts and "." not in parts


_TEXT, _NUMBER, _INT, _MAP, _LIST = "string", "number", "integer", "mapping", "list"
_KINDS: dict[str, Any] = {
    _TEXT: lambda v: isinstance(v, str),
    _NUMBER: lambda v: (
        isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    ),
    _INT: _is_int,
    _MAP: lambda v: isinstance(v, dict),
    _LIST: lambda v: isinstance(v, list),
}


def _surface_fields(at: str) -> list[tuple[str, str, bool, bool]]:
    return [
        (at, _MAP, True, False),
        (f"{at}.type", _TEXT, False, False),
        (f"{at}.k", _INT, False, False),
        (f"{at}.cols", _INT, False, False),
        (f"{at}.max_turns", _INT, False, False),
        (f"{at}.params", _MAP, True, False),
        (f"{at}.rows", _LIST, False, False),
        (f"{at}.rows[]", _MAP, False, False),
        (f"{at}.rows[].theme", _TEXT, False, True),
    ]


READ_FIELDS: list[tuple[str, str, bool, bool]] = [
    ("name", _TEXT, False, False),
    ("status", _TEXT, False, False),
    ("seed", _INT, False, False),
    ("replicates", _INT, False, False),
    ("wall_seconds", _NUMBER, False, False),
    ("started_at", _TEXT, False, False),
    ("git_commit", _TEXT, True, False),
    ("llm", _MAP, False, False),
    ("llm.cache_mode", _TEXT, True, False),
    ("llm.accounting", _MAP, True, False),
    ("llm.accounting.by_purpose", _MAP, True, False),
    ("llm.accounting.by_purpose{}", _INT, False, False),
    ("llm.fallback", _MAP, True, False),
    ("llm.fallback.share", _NUMBER, False, False),
    ("llm.fallback.threshold", _NUMBER, False, False),
    ("llm.fallback.fallbacks", _INT, False, False),
    ("llm.fallback.decisions", _INT, False, False),
    ("scenario.description", _TEXT, True, False),
    ("scenario.population", _MAP, False, False),
    ("scenario.population.users", _INT, False, False),
    ("scenario.population.model", _TEXT, False, False),
    ("scenario.population.llm_panel", _MAP, True, False),
    ("scenario.population.llm_panel.users", _INT, True, False),
    ("scenario.catalog", _MAP, False, False),
    ("scenario.catalog.initial_items", _INT, False, False),
    ("scenario.creators", _MAP, False, False),
    ("scenario.creators.count", _INT, False, False),
    ("scenario.horizon", _MAP, False, False),
    ("scenario.horizon.days", _NUMBER, False, False),
    *_surface_fields("scenario.surface"),
    ("scenario.arms", _LIST, False, False),
    ("scenario.arms[]", _MAP, False, False),
    ("scenario.arms[].name", _TEXT, False, True),
    ("scenario.arms[].recommender", _MAP, False, False),
    ("scenario.arms[].recommender.type", _TEXT, False, False),
    ("scenario.arms[].recommender.params", _MAP, True, False),
    *_surface_fields("scenario.arms[].surface"),
]
"""The fields of a run manifest that its readers (compare, report, ope, the metrics) take, as
(path, kind, may be null, required where its parent is present). ``[]`` is every item of a list,
``{}`` every value of a mapping. A hand-edited value of another kind (``wall_seconds: "x"``,
``scenario.population: [1]``, an arm without a name) was an internal error of the report."""


def _found(value: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
    """(location, value) of every field at ``parts`` below ``value``; absent fields, and
    parents of another kind (an earlier entry of READ_FIELDS names those), yield nothing."""
    if not parts:
        yield where, value
        return
    head, rest = parts[0], parts[1:]
    key, each = head.removesuffix("[]").removesuffix("{}"), head[len(head.rstrip("[]{}")) :]
    if key:
        if not isinstance(value, dict) or key not in value:
            return
        value, where = value[key], f"{where}.{key}" if where else key
    if each == "[]" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _found(item, rest, f"{where}[{i}]")
    elif each == "{}" and isinstance(value, dict):
        for name, item in value.items():
            yield from _found(item, rest, f"{where}.{name}")
    elif not each:
        yield from _found(value, rest, where)


def _field_problem(manifest: dict[str, Any]) -> str | None:
    for path, kind, nullable, required in READ_FIELDS:
        parent, _, last = path.rpartition(".")
        if required:
            for where, holder in _found(manifest, parent.split(".") if parent else [], ""):
                key = last.removesuffix("[]")
                if isinstance(holder, dict) and key not in holder:
                    return f"{where}.{key} is missing"
        for where, value in _found(manifest, path.split("."), ""):
            if value is None and nullable:
                continue
            if not _KINDS[kind](value):
                text = (
                    "a finite number"
                    if kind == _NUMBER
                    else f"{'an' if kind == _INT else 'a'} {kind}"
                )
                return f"{where} must be {text}{' or null' if nullable else ''} (got {value!r:.80})"
    return None


def scenario_problem(scenario: Any) -> str | None:
    """What a reader cannot use in a resolved scenario saved with a run (a sweep point's
    ``scenario.resolved.yaml``): the ``scenario.*`` fields of :data:`READ_FIELDS`."""
    if not isinstance(scenario, dict):
        return f"a scenario must be a mapping (got {type(scenario).__name__})"
    problem = _field_problem({"scenario": scenario})
    return None if problem is None else problem.removeprefix("scenario.")


def _names_problem(manifest: dict[str, Any]) -> str | None:
    """Arm names are path components and table labels, written by the runner under the
    scenario's rule; each cell is one (point, arm, replicate) of one directory."""
    arms = manifest.get("arms") or []
    for i, arm in enumerate(arms):
        problem = name_problem(arm)
        if problem is not None:
            return f"arms[{i}] {problem}"
        if arm in arms[:i]:
            return f"arms: {arm!r} is listed twice"
    seen: dict[Any, int] = {}
    for index, entry in enumerate(manifest.get("cells", [])):
        if arms and entry["arm"] not in arms:
            listed = ", ".join(arms)[:200]
            return f"cells[{index}].arm {entry['arm']!r:.80} is not one of its arms ({listed})"
        for key in (Path(entry["path"]), (entry.get("point"), entry["arm"], entry["rep"])):
            if key in seen:
                return (
                    f"cells[{index}] is cells[{seen[key]}] again (the same "
                    f"{'directory' if isinstance(key, Path) else 'point, arm and replicate'}), "
                    "so its logs would be read twice"
                )
            seen[key] = index
    return None


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What a reader cannot use in a run manifest (a newer log format, a hand-edited or damaged
    entry), as one phrase; None when it reads. Fields written by every version since cells
    existed are required, the others are checked when present."""
    version = manifest.get("log_format", 1)
    if not _is_int(version) or version < 1:
        return f"log_format must be a positive integer (got {version!r})"
    if version > LOG_FORMAT_VERSION:
        return (
            f"written by a newer recarena (log format {version}; this one reads up to "
            f"{LOG_FORMAT_VERSION}): read it with that version"
        )
    for key in ("arms", "metrics"):
        value = manifest.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{key} must be a list of names (got {value!r:.80})"
    for key, kind, what in (("baseline", str, "an arm name"), ("scenario", dict, "mapping")):
        value = manifest.get(key)
        if key in manifest and not isinstance(value, kind):
            return f"{key} must be {what if kind is str else 'a ' + what} (got {value!r:.80})"
    arms, baseline = manifest.get("arms"), manifest.get("baseline")
    if isinstance(baseline, str) and arms and baseline not in arms:
        # compare fell back to another arm without a word; ope blamed a --logging never given
        return f"baseline {baseline!r:.80} is not one of its arms ({', '.join(arms)[:200]})"
    if not isinstance(manifest.get("sweep", {}), dict):
        return f"sweep must be a mapping (got {manifest['sweep']!r:.80})"
    points = manifest.get("sweep", {}).get("points", [])
    if not isinstance(points, list) or not all(
        isinstance(p, dict)
        and _is_int(p.get("point"))
        and isinstance(p.get("params"), dict)
        and _inside(p.get("path", f"point={p.get('point')}"))  # where its scenario file is
        for p in points
    ):
        return "sweep.points must be a list of {point, path, params} entries"
    for index, entry in enumerate(manifest.get("cells", [])):
        where = f"cells[{index}]"
        if not isinstance(entry, dict):
            return f"{where} must be a mapping (got {entry!r:.80})"
        if not isinstance(entry.get("arm"), str):
            return f"{where}.arm must be an arm name (got {entry.get('arm')!r:.80})"
        if not _is_int(entry.get("rep")) or entry["rep"] < 0:
            return f"{where}.rep must be a replicate index (got {entry.get('rep')!r:.80})"
        if not _inside(entry.get("path")):
            return (
                f"{where}.path must be a relative path inside the run directory "
                f"(got {entry.get('path')!r:.80})"
            )
        point = entry.get("point")
        if point is not None and not _is_int(point):
            return f"{where}.point must be a sweep point index (got {point!r:.80})"
        if not isinstance(entry.get("status", PENDING), str):
            return f"{where}.status must be a cell status (got {entry.get('status')!r:.80})"
    return _names_problem(manifest) or _field_problem(manifest)


# ------------------------------------------------------------------ cells
def cell_published(cell_dir: Path) -> bool:
    """The markers say finished: cell manifest written and ``_INCOMPLETE`` gone."""
    return (cell_dir / MANIFEST).is_file() and not (cell_dir / INCOMPLETE).exists()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_records(cell_dir: Path, rows: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Size, row count and sha256 of every Parquet file of a cell (for its manifest)."""
    records = {}
    for path in sorted(cell_dir.glob("*.parquet")):
        records[path.name] = {
            "bytes": path.stat().st_size,
            "rows": int(rows.get(path.name.removesuffix(".parquet"), -1)),
            "sha256": sha256_of(path),
        }
    return records


def _parquet_footer(path: Path) -> tuple[int, list[str]]:
    """Row count and column names, from the footer alone."""
    import pyarrow.parquet as pq  # only readers that verify need pyarrow

    metadata = pq.ParquetFile(path).metadata
    return int(metadata.num_rows), list(metadata.schema.to_arrow_schema().names)


def _foreign_columns(name: str, columns: list[str]) -> list[str]:
    """Columns of a cell's ``<table>.parquet`` that the table never had (a file of another
    table or another program, with records made to match). Older log formats only lack
    columns, so a missing column is not damage; a foreign one failed compare with "unable to
    find column" and --resume with an internal error."""
    schema = SCHEMAS.get(name.removesuffix(".parquet"))
    return [] if schema is None else [c for c in columns if c not in schema.names]


def cell_problem(
    cell_dir: Path, full: bool = False, expected: dict[str, Any] | None = None
) -> str | None:
    """Why a cell is not usable, or None when it is finished and whole.

    Cheap check (``full=False``): markers, then each recorded file's size and its Parquet footer
    row count. ``full=True`` also compares sha256 (resume: it is about to trust the files for
    good). Cells written before file records existed are trusted on their markers.
    ``expected`` is the run's entry for the cell: the arm, replicate and sweep point its own
    manifest names must be the entry's (the files of another cell copied in were read as this
    one's).
    """
    if not cell_dir.is_dir():
        return "missing"
    if not cell_published(cell_dir):
        return "unfinished"
    try:
        cell_manifest = json.loads((cell_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return "cell manifest.json unreadable"
    # a cell manifest of another shape (hand-edited, or not ours) was an internal error
    # (AttributeError, TypeError) of every reader: it is a damaged cell like an unreadable one
    files = cell_manifest.get("files") if isinstance(cell_manifest, dict) else None
    if not isinstance(cell_manifest, dict) or not isinstance(files or {}, dict):
        return "cell manifest.json is not a cell manifest (files must be a mapping)"
    for key in ("arm", "rep", "point"):
        wanted = (expected or {}).get(key)
        if wanted is not None and key in cell_manifest and cell_manifest[key] != wanted:
            return (
                f"cell manifest.json is of {key} {cell_manifest[key]!r}, not {wanted!r} "
                "(the files of another cell or run)"
            )
    rows, recorded = cell_manifest.get("rows"), (expected or {}).get("rows")
    if isinstance(recorded, dict) and rows != recorded:
        # the same cell of another run (another seed or scenario, same arm and replicate),
        # copied or linked in, passed every check above and was read as this run's
        return (
            "cell manifest.json counts other rows than the run's manifest.json recorded for "
            "this cell (the files of another run)"
        )
    for name, record in (files or {}).items():
        if not isinstance(record, dict):
            return f"cell manifest.json: the record of {name} is not a mapping"
        path = cell_dir / str(name)
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} missing"
        if size != record.get("bytes"):
            return f"{name} has {size} bytes, {record.get('bytes')} recorded"
        expected_rows = record.get("rows", -1)
        if not _is_int(expected_rows):
            return f"cell manifest.json: the row count of {name} is not a number"
        if expected_rows >= 0:
            try:
                found_rows, columns = _parquet_footer(path)
            except Exception as exc:  # noqa: BLE001 (any damage reads as "not Parquet")
                return f"{name} is not readable Parquet ({type(exc).__name__})"
            if found_rows != expected_rows:
                return f"{name} has {found_rows} rows, {expected_rows} recorded"
            foreign = _foreign_columns(name, columns)
            if foreign:
                return f"{name} has column(s) {', '.join(foreign[:3])} its table has not"
        if full and sha256_of(path) != record.get("sha256"):
            return f"{name} checksum differs from the recorded one"
    return None


def unreadable_table(run_dir: Path) -> str | None:
    """The first table file under ``run_dir`` whose data cannot be decoded, as ``file: why``.

    Readers check sizes and footers only (:func:`cell_problem`), so damage inside a file with
    its size and footer intact is found by the query that decodes it, and that error names no
    file ("parquet: File out of specification"). Only that error path calls this: it decodes
    every table, which costs as much as reading the run once more."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in sorted(run_dir.rglob("*.parquet")):
        try:
            pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            return f"{path}: {' '.join(first_line(exc).split())}"
    return None


def read_cell_manifest(cell_dir: Path) -> dict[str, Any]:
    return json.loads((cell_dir / MANIFEST).read_text(encoding="utf-8"))


# ------------------------------------------------------------------ lock
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _lock_is_file(path: Path) -> bool:
    """Whether the run's lock is a regular file or absent: a directory or FIFO put there (by
    hand, by another tool) is no lock recarena can take or read."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _holder_pid(path: Path, patience_s: float = 0.5) -> int | None:
    """The live PID written in a held lock, waiting briefly for it.

    The holder writes its PID just after it takes the lock, so a second run that starts in
    the same instant finds the file empty (or still naming a dead earlier run); a short poll
    lets the refusal name the process to wait for in all but a stalled holder's case.
    """
    deadline = time.monotonic() + patience_s
    while True:
        pid = _read_pid(path)
        if pid is not None and _pid_alive(pid):
            return pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def holder_name(pid: int) -> str:
    """'process <pid>', or 'another process' for :func:`lock_holder`'s -1."""
    return f"process {pid}" if pid > 0 else "another process"


class RunLock:
    """``flock`` on ``RUN_DIR/.lock``, holding this process's PID.

    ``acquire`` raises a one-line RecarenaError when another live process holds the run.
    ``reclaimed`` is the PID of a dead process whose ``.lock`` file was left behind (a run
    killed with -9), so the caller can say so.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK
        self._fd: int | None = None
        self.reclaimed: int | None = None

    def acquire(self, what: str = "run") -> RunLock:
        if not _lock_is_file(self.path):  # was IsADirectoryError, or EINVAL for a FIFO
            raise RecarenaError(
                f"{what} {self.run_dir}: its lock {self.path} is not a regular file "
                "(recarena writes that file itself); remove it"
            )
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = holder_name(_holder_pid(self.path) or -1)
                raise RecarenaError(
                    f"{what} {self.run_dir}: the run directory is in use by {holder} "
                    f"(lock {self.path}); wait for it to end or stop it"
                ) from None
            # the holder may have removed the file between our open and our flock: retry
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_pid(self.path)
        if previous is not None and previous != os.getpid() and not _pid_alive(previous):
            self.reclaimed = previous
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except OSError as exc:  # a full disk or a file size limit: no lock is left behind
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # the directory may be gone (tests, users)
            self.path.unlink()
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(run_dir: Path) -> int | None:
    """PID of the live process holding the run, -1 when it is held but names no live PID
    (the holder has not written it yet: see :func:`_holder_pid`), or None (no lock, or its
    holder is dead)."""
    path = run_dir / LOCK
    if not path.exists() or not _lock_is_file(path):  # a FIFO: opening it waited for a writer
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder_pid(path) or -1  # read at once, a run taking the lock said "-1"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_lock(run_dir: Path) -> Iterator[bool]:
    """Hold the run's lock if it is free and the directory writable; yields whether it is."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except (RecarenaError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


# ------------------------------------------------------------------ reconcile
@dataclass
class CellCheck:
    """What the files of one cell say, against what the run manifest said."""

    index: int
    path: str
    recorded: str
    problem: str | None

    @property
    def finished(self) -> bool:
        return self.problem is None


def check_cells(run_dir: Path, manifest: dict[str, Any], full: bool = False) -> list[CellCheck]:
    return [
        CellCheck(
            i,
            entry["path"],
            entry.get("status", PENDING),
            cell_problem(run_dir / entry["path"], full, entry),
        )
        for i, entry in enumerate(manifest.get("cells", []))
    ]


def describe_checks(checks: list[CellCheck]) -> str:
    """'3 finished, 1 damaged (arm=a/rep=0: exposures.parquet ...), 2 unfinished'."""
    finished = sum(c.finished for c in checks)
    damaged = [c for c in checks if c.problem not in (None, "unfinished", "missing")]
    unfinished = len(checks) - finished - len(damaged)
    parts = [f"{finished} finished"]
    if damaged:
        first = damaged[0]
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        parts.append(f"{len(damaged)} damaged ({first.path}: {first.problem}{more})")
    if unfinished:
        parts.append(f"{unfinished} unfinished")
    return ", ".join(parts)


def reconcile(
    run_dir: Path, manifest: dict[str, Any], checks: list[CellCheck]
) -> tuple[dict[str, Any], bool, str | None]:
    """The manifest brought in line with the cells on disk, whether it changed, and one line
    when the run's own status was wrong (what was found on disk).

    A run that says ``running`` while no live process holds its lock was killed (kill -9, OOM,
    power): it becomes ``interrupted``. A cell the manifest calls complete but whose files are
    damaged becomes ``incomplete``; a cell whose files are whole becomes ``complete``.
    """
    stale_run = manifest.get("status") == RUNNING and lock_holder(run_dir) is None
    if stale_run:
        manifest["status"] = INTERRUPTED
    running = manifest.get("status") == RUNNING
    fixed = 0
    for check in checks:
        entry = manifest["cells"][check.index]
        if check.finished and entry.get("status") != COMPLETE:
            entry["status"] = COMPLETE
            with contextlib.suppress(OSError, json.JSONDecodeError, KeyError):
                entry.update(cell_summary(read_cell_manifest(run_dir / check.path)))
            fixed += 1
        elif not check.finished and entry.get("status") in (COMPLETE, CELL_RUNNING, PENDING):
            if entry.get("status") == COMPLETE or not running:
                entry["status"] = UNFINISHED
                if check.problem not in ("unfinished", "missing"):
                    entry["problem"] = check.problem
                fixed += 1
    if not stale_run:  # cell statuses alone: the reader's "left out" line already names them
        return manifest, bool(fixed), None
    said = "said 'running' but no process holds it (killed?)"
    return manifest, True, f"{run_dir}/manifest.json {said}: {describe_checks(checks)}"


def cell_summary(cell_manifest: dict[str, Any]) -> dict[str, Any]:
    """What the run manifest keeps of a finished cell."""
    return {"wall_seconds": cell_manifest.get("wall_seconds"), "rows": cell_manifest.get("rows")}


def save_reconciled(run_dir: Path, manifest: dict[str, Any]) -> bool:
    """Write a reconciled manifest if nobody holds the run and the directory is writable."""
    with try_lock(run_dir) as locked:
        if not locked:
            return False
        try:
            write_json(run_dir / MANIFEST, manifest)
        except OSError:
            return False
    return True
