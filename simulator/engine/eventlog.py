"""EventLog: fills column buffers in place and writes Parquet row groups from a background thread.

Each table is written to ``<table>.parquet.tmp`` and renamed to ``<table>.parquet`` only in
:meth:`EventLog.close`, so a reader never sees a half-written file under its final name, and an
interrupted cell leaves only ``.tmp`` files beside its ``_INCOMPLETE`` marker.

Why the buffers and the thread: at a million users, Parquet encoding and compression were ~40%
of a cell's wall time on the simulation's own thread. Now every numeric column of a table is a
preallocated numpy buffer that each ``append`` copies its batch into (no list of chunks, no
concatenate at flush time); when a table holds ``flush_rows`` rows, the filled buffers are handed
to one writer thread as zero-copy Arrow arrays and the engine goes on filling a second set.
pyarrow releases the GIL while it encodes, compresses and writes, so that work overlaps the
simulation. Memory stays bounded: at most :data:`BUFFER_SETS` buffer sets per table exist, and
``append`` waits for the writer when all of them are in flight.

The bytes do not depend on the thread: each table is written by one thread in the order its row
groups were flushed (the writer thread; at close, tables it never had may be written by the
closing thread instead), each row group holds exactly the rows buffered when the threshold was
crossed (as before), and values are cast to the schema type the way the Arrow conversion did.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recarena.simulator.core.errors import naming_file
from recarena.simulator.core.logschema import NULL_FOR_NAN, SCHEMAS

COMPRESSION = "zstd"
"""Chosen by benchmarks/log_codec.py (see its docstring for the measured comparison)."""

BUFFER_SETS = 2
"""Buffer sets per table: one being filled, one being written."""

_INITIAL_CAPACITY = 4096

_TABLE_COST = 30_000
"""What opening and closing one Parquet file costs, in values encoded (rows x columns): how
:meth:`EventLog.close` weighs tables when it shares them between two threads."""


def _fixed_width_dtype(field: pa.Field) -> np.dtype | None:
    """The numpy dtype of a fixed-width column (ints, floats, bools); None for strings/lists."""
    kind = field.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return np.dtype(kind.to_pandas_dtype())
    return None


@functools.cache
def fixed_dtypes(table: str) -> tuple[tuple[str, np.dtype], ...]:
    """Name and numpy dtype of every column of a fixed-width table, in schema order (the
    schemas are constants, so each table's answer is computed once: a wave asks every time)."""
    out = []
    for field in SCHEMAS[table]:
        dtype = _fixed_width_dtype(field)
        if dtype is None:
            raise ValueError(f"table {table!r} column {field.name!r} is not fixed-width")
        out.append((field.name, dtype))
    return tuple(out)


@functools.cache
def empty_table_bytes(table: str) -> bytes:
    """The Parquet file of an empty ``table``: what ``pq.write_table`` writes for the schema
    alone. It is the same bytes every time, and most cells have several empty tables (no
    conversations, no LLM calls, no posts), so each process encodes it once per table."""
    sink = pa.BufferOutputStream()
    pq.write_table(SCHEMAS[table].empty_table(), sink, compression=COMPRESSION)
    return bytes(sink.getvalue().to_pybytes())


class _TableBuffer:
    """One table's rows since the last flush: numpy buffers for fixed-width columns (filled in
    place), a list of chunks for strings and lists (rare tables, few rows)."""

    def __init__(self, schema: pa.Schema, capacity: int) -> None:
        self.schema = schema
        self.rows = 0
        self.capacity = capacity
        self.arrays: dict[str, np.ndarray] = {}
        self.chunks: dict[str, list[Any]] = {}
        self._grids: dict[int, dict[str, np.ndarray]] = {}
        for field in schema:
            dtype = _fixed_width_dtype(field)
            if dtype is None:
                self.chunks[field.name] = []
            else:
                self.arrays[field.name] = np.empty(capacity, dtype)

    def reserve(self, n: int) -> None:
        """Room for ``n`` more rows in every fixed-width column (one check on the common path)."""
        need = self.rows + n
        if need <= self.capacity:
            return
        self.capacity = max(need, 2 * self.capacity)
        self._grids.clear()
        for name, array in self.arrays.items():
            grown = np.empty(self.capacity, array.dtype)
            grown[: self.rows] = array[: self.rows]
            self.arrays[name] = grown

    def grids(self, k: int) -> dict[str, np.ndarray]:
        """Every fixed-width column as ``[capacity // k, k]`` (pages of k rows), kept until the
        buffers grow: a page-aligned batch is then one slice per column, not a slice and a
        reshape."""
        grids = self._grids.get(k)
        if grids is None:
            usable = self.capacity - self.capacity % k
            grids = {name: array[:usable].reshape(-1, k) for name, array in self.arrays.items()}
            self._grids[k] = grids
        return grids

    def add(self, columns: dict[str, Any], n: int) -> None:
        self.reserve(n)
        start, stop = self.rows, self.rows + n
        for name, array in self.arrays.items():
            array[start:stop] = columns[name]
        for name, chunks in self.chunks.items():
            chunks.append(columns[name])
        self.rows = stop

    def to_table(self) -> pa.Table:
        """The buffered rows as Arrow (fixed-width columns are zero-copy views of the buffers)."""
        arrays = []
        for field in self.schema:
            if field.name in self.arrays:
                # NaN means "no value" (e.g. a random policy's score): store it as null
                values = self.arrays[field.name][: self.rows]
                arrays.append(pa.array(values, field.type, from_pandas=field.name in NULL_FOR_NAN))
            elif pa.types.is_list(field.type):
                flat = [v for part in self.chunks[field.name] for v in part]
                arrays.append(pa.array(flat, type=field.type))
            else:
                values = np.concatenate(self.chunks[field.name])
                arrays.append(
                    pa.array(values, type=field.type, from_pandas=field.name in NULL_FOR_NAN)
                )
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def reset(self) -> None:
        self.rows = 0
        for chunks in self.chunks.values():
            chunks.clear()


class _Writer(threading.Thread):
    """Writes row groups in the order they were queued; returns each buffer when done."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(name="recarena-eventlog", daemon=True)
        self.log = log
        self.jobs: queue.Queue[tuple[str, _TableBuffer] | None] = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            table, buffer = job
            try:
                if self.error is None:
                    self.log._write(table, buffer)
            except BaseException as exc:  # re-raised on the simulation's thread
                self.error = exc
            finally:
                buffer.reset()
                self.log._free[table].put(buffer)


class EventLog:
    def __init__(self, directory: Path, flush_rows: int = 500_000) -> None:
        self.directory = directory
        self.flush_rows = flush_rows
        self.rows: dict[str, int] = dict.fromkeys(SCHEMAS, 0)
        self._filling: dict[str, _TableBuffer | None] = dict.fromkeys(SCHEMAS)
        self._free: dict[str, queue.Queue[_TableBuffer]] = {t: queue.Queue() for t in SCHEMAS}
        self._sets: dict[str, int] = dict.fromkeys(SCHEMAS, 0)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._thread: _Writer | None = None
        self._handed: set[str] = set()
        """Tables whose row groups went to the writer thread: it alone writes them."""

    def _tmp(self, table: str) -> Path:
        return self.directory / f"{table}.parquet.tmp"

    def _buffer(self, table: str) -> _TableBuffer:
        buffer = self._filling[table]
        if buffer is not None:
            return buffer
        free = self._free[table]
        if free.empty() and self._sets[table] < BUFFER_SETS:
            self._sets[table] += 1
            buffer = _TableBuffer(SCHEMAS[table], min(_INITIAL_CAPACITY, self.flush_rows))
        else:  # every set is in flight: wait for the writer (bounded memory)
            buffer = free.get()
            self._raise_writer_error()
        self._filling[table] = buffer
        return buffer

    def append(self, table: str, columns: dict[str, Any]) -> None:
        """Add a batch of rows (equal-length columns, named as in the schema). A fixed-width
        column may be a scalar (broadcast over the batch, e.g. the tick's time) unless it is
        the first column, which gives the row count; values are cast to the column's type."""
        n = len(next(iter(columns.values())))
        if n == 0:
            return
        buffer = self._buffer(table)
        buffer.add(columns, n)
        self.rows[table] += n
        if buffer.rows >= self.flush_rows:
            self._flush(table)

    def rows_until_flush(self, table: str) -> int:
        """How many more rows ``table`` takes before an append or commit flushes a row group
        (a row group holds the rows buffered when an append crossed ``flush_rows``)."""
        buffer = self._filling.get(table)
        return self.flush_rows - (buffer.rows if buffer is not None else 0)

    def columns(
        self, table: str, n: int, shape: tuple[int, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """Writable views of the next ``n`` rows of every column of ``table`` (fixed-width
        tables only), reshaped to ``shape`` if given (e.g. ``(pages, k)``); fill all of them,
        then :meth:`commit`. The hot tables are written in place this way, with no per-batch
        temporaries (a repeated id is one broadcast)."""
        buffer = self._buffer(table)
        if buffer.chunks:
            raise ValueError(f"table {table!r} has variable-width columns: use append()")
        buffer.reserve(n)
        start, stop = buffer.rows, buffer.rows + n
        if shape is None:
            return {name: array[start:stop] for name, array in buffer.arrays.items()}
        if len(shape) == 2 and shape[0] * shape[1] == n and n and start % shape[1] == 0:
            first = start // shape[1]
            grids = buffer.grids(shape[1])
            return {name: grid[first : first + shape[0]] for name, grid in grids.items()}
        return {name: array[start:stop].reshape(shape) for name, array in buffer.arrays.items()}

    def commit(self, table: str, n: int) -> None:
        """The ``n`` rows handed out by :meth:`columns` are filled: count them (and flush)."""
        if n == 0:
            return
        buffer = self._buffer(table)
        buffer.rows += n
        self.rows[table] += n
        if buffer.rows >= self.flush_rows:
            self._flush(table)

    def _flush(self, table: str) -> None:
        buffer = self._filling[table]
        if buffer is None or buffer.rows == 0:
            return
        self._filling[table] = None
        if self._thread is None:
            self._thread = _Writer(self)
            self._thread.start()
        self._raise_writer_error()
        self._handed.add(table)
        self._thread.jobs.put((table, buffer))

    def _write(self, table: str, buffer: _TableBuffer) -> None:
        """On the writer thread: one row group of exactly the buffered rows."""
        batch = buffer.to_table()
        with naming_file(self._tmp(table)):
            writer = self._writers.get(table)
            if writer is None:
                writer = pq.ParquetWriter(self._tmp(table), SCHEMAS[table], compression=COMPRESSION)
                self._writers[table] = writer
            writer.write_table(batch, row_group_size=max(buffer.rows, 1))

    def _raise_writer_error(self) -> None:
        if self._thread is not None and self._thread.error is not None:
            raise self._thread.error

    def _drain(self) -> None:
        """Wait until every queued row group is written; stop the writer thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.jobs.put(None)
            thread.join()
            if thread.error is not None:
                raise thread.error

    def close(self) -> None:
        """Flush, close and atomically publish every table (empty tables get a schema-only file).

        In a cell below ``flush_rows`` nothing was written before now, so every table is encoded
        here while the run waits. Tables that never went to the writer thread are shared out
        between it and this thread (largest first, each to the one with less work), since
        pyarrow releases the GIL while it encodes; a table is still written by one thread, in
        one pass, so its bytes do not change."""
        fresh: list[tuple[int, str]] = []
        theirs, ours = 0, 0  # values each thread has to encode
        for table in SCHEMAS:
            buffer = self._filling[table]
            cost = 0 if buffer is None else buffer.rows * len(buffer.schema)
            if table in self._handed:  # its earlier row groups are the writer's: keep order
                self._flush(table)
                theirs += cost
            elif cost:
                fresh.append((cost + _TABLE_COST, table))
        fresh.sort(reverse=True)
        mine: list[tuple[str, _TableBuffer]] = []
        for cost, table in fresh:
            alone = len(fresh) == 1 and self._thread is None  # one table: not worth a thread
            if theirs <= ours and not alone:
                self._flush(table)
                theirs += cost
            else:
                buffer = self._filling[table]
                assert buffer is not None
                self._filling[table] = None
                mine.append((table, buffer))
                ours += cost
        try:
            for table, buffer in mine:
                self._write(table, buffer)
            for table in SCHEMAS:  # while the writer works (encoded once per process)
                if self.rows[table] == 0:
                    empty_table_bytes(table)
        finally:
            self._drain()
        for table in SCHEMAS:
            with naming_file(self._tmp(table)):
                writer = self._writers.pop(table, None)
                if writer is None:
                    self._tmp(table).write_bytes(empty_table_bytes(table))
                else:
                    writer.close()
        for table in SCHEMAS:
            with naming_file(self._tmp(table)):
                os.replace(self._tmp(table), self.directory / f"{table}.parquet")

    def abort(self) -> None:
        """Close open writers without publishing (the ``.tmp`` files stay as evidence)."""
        try:  # noqa: SIM105 (BaseException on purpose: even an interrupt must not mask the cause)
            self._drain()
        except BaseException:  # the cell is failing already; keep its own error
            pass
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
