"""Parquet codec and row-group size for the exposure log: write cost, size and read cost.

Why: the writer thread (simulator/engine/eventlog.py) takes encoding off the simulation's
thread, but it still costs CPU, and on a busy machine CPU is what is scarce. This writes the same
exposure rows (simulated here by a real cell) with every codec x row-group size and prints CPU
seconds to write, MB on disk and CPU seconds to read back the columns analysis reads most. The
engine's defaults (zstd, 500k-row groups: ``output.flush_rows``) were kept from this comparison;
changing either changes the bytes of every log, so it would be a versioned format change.

    python benchmarks/log_codec.py              # 20k users, one day (~600k rows)
    python benchmarks/log_codec.py --users 50000
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CODECS = [("zstd", 1), ("zstd", None), ("snappy", None), ("lz4", None), ("none", None)]
ROW_GROUPS = [125_000, 500_000, 2_000_000]
READ_COLUMNS = ["user_id", "item_id", "clicked", "position", "day"]


def exposure_rows(users: int) -> pa.Table:
    import torch

    from recarena.simulator.runner.cell import run_cell
    from recarena.simulator.runner.plan import Cell
    from recarena.simulator.runner.resolve import parse_scenario

    torch.set_num_threads(1)
    doc = {
        "name": "codec",
        "seed": 1,
        "horizon": {"days": 1},
        "catalog": {"initial_items": 2000, "topics": 16},
        "population": {"users": users},
        "arms": [{"name": "popularity", "recommender": {"type": "popularity"}}],
    }
    doc = parse_scenario(doc).model_dump(mode="json")
    cell = Cell(0, 0, "popularity", 0)
    with tempfile.TemporaryDirectory() as tmp:
        run_cell(doc, cell, tmp)
        return pq.read_table(Path(tmp) / cell.path / "exposures.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    args = parser.parse_args()
    table = exposure_rows(args.users)
    print(f"{table.num_rows:,} exposure rows, load {os.getloadavg()}")
    print(
        f"{'codec':<8} {'level':>5} {'row group':>10} {'write CPU s':>11} {'MB':>7} "
        f"{'read CPU s':>10}"
    )
    for codec, level in CODECS:
        for group in ROW_GROUPS:
            sink = io.BytesIO()
            started = time.process_time()
            pq.write_table(
                table, sink, compression=codec, compression_level=level, row_group_size=group
            )
            write = time.process_time() - started
            data = sink.getvalue()
            started = time.process_time()
            pq.read_table(pa.BufferReader(data), columns=READ_COLUMNS)
            read = time.process_time() - started
            print(
                f"{codec:<8} {level if level is not None else '-':>5} {group:>10,} "
                f"{write:>11.3f} {len(data) / 1e6:>7.1f} {read:>10.3f}"
            )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
