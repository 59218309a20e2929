"""A persistent cache of LLM calls, so that a run can be repeated for free and replayed exactly.

A call is keyed by a SHA-256 of everything that decides its answer: model, messages, and the
sampling and output-format parameters. The endpoint's address and the API key are not part of
the key (the same model behind another URL gives the same answer), and the key is never stored.

Modes (``llm.cache.mode``):

* ``auto``: answer from the cache when a *valid* entry exists; otherwise call and store.
* ``record``: call the endpoint for every prompt this run has not yet asked, and store the
  answer, replacing older entries. Repeats of a prompt *within* the run reuse its first answer,
  so the stored run is self-consistent and a replay reproduces it bit for bit.
* ``replay``: never call. Every call must be in the cache, failed ones included (a recorded
  failure is replayed as the same failure, so a fallback page falls back again); a miss raises
  :class:`CacheMiss` naming the call.
* ``off``: always call, never store (measurements, and the test that arms share decisions
  through common random numbers rather than through the cache).

SQLite in WAL mode lets the cells of a run (separate processes) share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CacheMode = Literal["auto", "record", "replay", "off"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    completion TEXT,
    valid INTEGER NOT NULL,
    error TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""

_CELLS_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    fingerprint TEXT PRIMARY KEY,
    cell TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""
"""The cells whose every call this cache holds: a run in auto or record mode adds each cell it
finished, under a fingerprint of what shapes the cell's prompts, so a replay can see before its
first cell whether the cache was filled by a run of the same scenario."""

COLUMNS = (
    "key", "model", "request", "completion", "valid", "error", "prompt_tokens",
    "completion_tokens", "latency_s", "run_id", "created_at",
)  # fmt: skip
"""The columns of ``calls``, in order (what a cache file must hold to be read or written)."""


CHECKED_BYTES = 512 << 20
"""A cache file up to this size has every page checked (``PRAGMA quick_check``, ~10 ms a
20 MB file) before a run: a file damaged past its first pages passed, and the cell that read
or wrote there failed ('database disk image is malformed', exit 1)."""


def table_problem(path: Path, replay: bool) -> str | None:
    """Why the SQLite file at ``path`` cannot serve as this cache (None when it can), read
    without writing: another program's database (tables but no ``calls``, or a ``calls`` of
    another layout), a damaged file, or, for a replay, a cache with no recorded call. Was: a
    replay of an empty or foreign file passed validate and every LLM call of the run missed;
    auto mode added its table to the other program's database."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            if path.stat().st_size <= CHECKED_BYTES:
                damage = db.execute("PRAGMA quick_check(1)").fetchone()[0]
                if damage != "ok":
                    first = " ".join(str(damage).split())[:160]
                    return f"{path} is a damaged SQLite file ({first})"
            found = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
            recorded = bool(found) and db.execute("SELECT 1 FROM calls LIMIT 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"{path} cannot be read as an SQLite cache of LLM calls ({exc})"
    if not found and tables:
        shown = ", ".join(sorted(tables)[:5])
        return f"{path} is another program's SQLite database (tables {shown}; no 'calls' table)"
    missing = [c for c in COLUMNS if c not in found] if found else []
    if missing:
        return (
            f"{path}: its 'calls' table has no column {missing[0]!r} (another program's table, "
            "not a cache of LLM calls)"
        )
    if replay and not recorded:
        return f"{path} holds no recorded LLM calls; replay needs the cache of a recorded run"
    return None


def _row_problem(row: tuple[Any, ...]) -> str | None:
    """Why a ``calls`` row (completion, valid, error, prompt_tokens, completion_tokens,
    latency_s, run_id) is not one this cache wrote (SQLite keeps any value in any column)."""
    completion, valid, error, prompt, completion_tokens, latency, run_id = row
    if not all(isinstance(v, str | None) for v in (completion, error)):
        return "completion or error is not text"
    if valid not in (0, 1) or not isinstance(run_id, str):
        return "valid is not 0 or 1, or run_id is not text"
    for name, count in (("prompt_tokens", prompt), ("completion_tokens", completion_tokens)):
        if not isinstance(count, int) or count < 0:
            return f"{name} is {count!r}, not a count"
    if not isinstance(latency, int | float):
        return f"latency_s is {latency!r}, not a number"
    return None


def record_cells(path: Path, run_id: str, cells: dict[str, str]) -> None:
    """Note in the cache at ``path`` that it holds every call of ``cells`` (fingerprint ->
    the cell's path in the run), finished by run ``run_id``."""
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute(_CELLS_SCHEMA)
        db.executemany(
            "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?)",
            [(fingerprint, cell, run_id, time.time()) for fingerprint, cell in cells.items()],
        )
    finally:
        db.close()


def unrecorded_cells(path: Path, cells: dict[str, str]) -> list[str] | None:
    """The cells (fingerprint -> name) whose calls the cache at ``path`` was never noted to
    hold, read without writing; None when the cache cannot tell: it notes no cell (written
    before cells were noted, or by ``recarena fidelity``), or it holds calls of a run that noted
    none (an older version of recarena, or a run stopped before its first cell finished), or
    it is larger than :data:`CHECKED_BYTES` (telling reads every stored call once)."""
    if path.stat().st_size > CHECKED_BYTES:
        return None
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            if not db.execute("PRAGMA table_info(cells)").fetchall():
                return None
            unnoted = db.execute(
                "SELECT 1 FROM calls WHERE run_id NOT IN (SELECT run_id FROM cells) LIMIT 1"
            ).fetchone()
            if unnoted is not None:
                return None
            noted = {row[0] for row in db.execute("SELECT fingerprint FROM cells")}
        finally:
            db.close()
    except sqlite3.Error:
        return None  # read by the table checks, which name what is wrong
    return [cell for fingerprint, cell in cells.items() if fingerprint not in noted]


class CacheMiss(LookupError):
    """Replay mode met a call that was never recorded."""


@dataclass(frozen=True)
class CachedCall:
    completion: str | None
    valid: bool
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    run_id: str


def call_key(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """Stable hash of a call: canonical JSON of model, messages and answer-shaping params."""
    payload = json.dumps(
        {"model": model, "messages": messages, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CallCache:
    def __init__(self, path: str | Path, mode: CacheMode, run_id: str) -> None:
        self.path = Path(path)
        self.mode = mode
        self.run_id = run_id
        if mode == "replay" and not self.path.exists():
            raise CacheMiss(f"llm.cache.path: {self.path} does not exist; nothing to replay")
        self._db: sqlite3.Connection | None = None
        if mode == "off":  # no file at all
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def lookup(self, key: str) -> CachedCall | None:
        """The entry this mode may answer from, or None when the endpoint must be called."""
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT completion, valid, error, prompt_tokens, completion_tokens, latency_s, run_id"
            " FROM calls WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        problem = _row_problem(row)
        if problem is not None:  # was: a text token count went into the cell's accounting
            if self.mode == "replay":
                raise CacheMiss(
                    f"llm.cache.mode replay: the entry {key[:16]} in {self.path} is damaged "
                    f"({problem})"
                )
            return None  # asked again, and the entry replaced
        entry = CachedCall(row[0], bool(row[1]), row[2], row[3], row[4], row[5], row[6])
        if self.mode == "replay":
            return entry
        if self.mode == "record":
            return entry if entry.run_id == self.run_id else None
        return entry if entry.valid else None  # auto: a failure is worth retrying

    def store(self, key: str, model: str, request: dict[str, Any], entry: CachedCall) -> None:
        if self.mode == "replay" or self._db is None:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                model,
                json.dumps(request, ensure_ascii=False),
                entry.completion,
                int(entry.valid),
                entry.error,
                entry.prompt_tokens,
                entry.completion_tokens,
                entry.latency_s,
                self.run_id,
                time.time(),
            ),
        )

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
