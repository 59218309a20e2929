"""EventLog: buffers whole batches as columns and writes Parquet row groups as the run goes.

Each table is written to ``<table>.parquet.tmp`` and renamed to ``<table>.parquet`` only in
:meth:`EventLog.close`, so a reader never sees a half-written file under its final name, and an
interrupted cell leaves only ``.tmp`` files beside its ``_INCOMPLETE`` marker.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recarena.simulator.core.logschema import NULL_FOR_NAN, SCHEMAS


class EventLog:
    def __init__(self, directory: Path, flush_rows: int = 500_000) -> None:
        self.directory = directory
        self.flush_rows = flush_rows
        self._buffers: dict[str, list[dict[str, np.ndarray | list]]] = {t: [] for t in SCHEMAS}
        self._buffered: dict[str, int] = dict.fromkeys(SCHEMAS, 0)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = dict.fromkeys(SCHEMAS, 0)

    def _tmp(self, table: str) -> Path:
        return self.directory / f"{table}.parquet.tmp"

    def append(self, table: str, columns: dict[str, np.ndarray | list]) -> None:
        """Add a batch of rows (equal-length columns, named as in the schema)."""
        n = len(next(iter(columns.values())))
        if n == 0:
            return
        self._buffers[table].append(columns)
        self._buffered[table] += n
        self.rows[table] += n
        if self._buffered[table] >= self.flush_rows:
            self._flush(table)

    def _flush(self, table: str) -> None:
        chunks = self._buffers[table]
        if not chunks:
            return
        schema = SCHEMAS[table]
        arrays = []
        for field in schema:
            parts = [chunk[field.name] for chunk in chunks]
            if pa.types.is_list(field.type):
                values = [v for part in parts for v in part]
                arrays.append(pa.array(values, type=field.type))
            else:
                # NaN means "no value" (e.g. a random policy's score): store it as null
                nan_is_null = field.name in NULL_FOR_NAN
                values = np.concatenate(parts)
                arrays.append(pa.array(values, type=field.type, from_pandas=nan_is_null))
        batch = pa.Table.from_arrays(arrays, schema=schema)
        writer = self._writers.get(table)
        if writer is None:
            writer = pq.ParquetWriter(self._tmp(table), schema, compression="zstd")
            self._writers[table] = writer
        writer.write_table(batch, row_group_size=max(self._buffered[table], 1))
        self._buffers[table] = []
        self._buffered[table] = 0

    def close(self) -> None:
        """Flush, close and atomically publish every table (empty tables get a schema-only file)."""
        for table, schema in SCHEMAS.items():
            self._flush(table)
            writer = self._writers.pop(table, None)
            if writer is None:
                pq.write_table(schema.empty_table(), self._tmp(table), compression="zstd")
            else:
                writer.close()
        for table in SCHEMAS:
            os.replace(self._tmp(table), self.directory / f"{table}.parquet")

    def abort(self) -> None:
        """Close open writers without publishing (the ``.tmp`` files stay as evidence)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
