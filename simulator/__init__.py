"""The engine, its contracts (``core``), the experiment runner and the command line.

Importing this package sets one process default before anything loads pyarrow: Arrow's memory
pool is the C library's malloc (``ARROW_DEFAULT_MEMORY_POOL=system``) unless the environment
already names a pool. Why: with pyarrow's default (mimalloc) the event log's writer thread
encoded Parquet at about half speed in about half of fresh processes on the 2-core VM this was
measured on (a 10k-user cell's last row group: ~150 ms instead of ~70 ms for the same rows; a
1k-user cell 0.16 s instead of 0.10 s; docs/performance.md); with the system pool it never did.
pyarrow reads the variable once, when it is imported, so a process that imported pyarrow before
recarena keeps its pool: slower, never different bytes.
"""

import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
