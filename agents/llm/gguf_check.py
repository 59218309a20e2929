"""A GGUF model file's header read in full before the local server is started on it.

The server is started inside the run, after its directory is written; a file that only starts
with ``GGUF`` (cut short while downloading, a header alone, garbage after the magic) made it
exit early, and the run stopped with a fragment of llama.cpp's traceback naming no file. The
header (version, metadata, tensor table) is walked here without numpy or llama.cpp, and the
file must reach at least the start of its last tensor's data. Tensor sizes need ggml's block
tables, so a file cut inside its last tensor is still the server's to refuse.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""Byte widths of GGUF's fixed-size value types (8 is a string, 9 an array)."""
_STRING, _ARRAY, _UINT32 = 8, 9, 4
DEFAULT_ALIGNMENT = 32
MAX_NESTING = 16
"""Arrays of arrays deeper than this are a damaged header: a real model's metadata nests one
level at most, and each level was a Python call (a 60 KB file of nested array headers made the
walk fail with RecursionError, an internal error instead of one line)."""


class _Truncated(Exception):
    pass


class _Reader:
    """Bounded reads: every length and count is checked against the bytes the file has left,
    so a hostile count cannot make the walk allocate or loop past the end."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    @property
    def left(self) -> int:
        return self.size - self.handle.tell()

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left:
            raise _Truncated
        return self.handle.read(n)

    def skip(self, n: int) -> None:
        if n < 0 or n > self.left:
            raise _Truncated
        self.handle.seek(n, 1)

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def string(self) -> bytes:
        return self.take(self.u64())

    def value(self, kind: int, depth: int = 0) -> int | None:
        """Skip one value; the value itself for a uint32 (alignment is one)."""
        if depth > MAX_NESTING:
            raise ValueError(f"arrays nested more than {MAX_NESTING} deep")
        if kind == _UINT32:
            return self.u32()
        if kind in _SCALARS:
            self.skip(_SCALARS[kind])
        elif kind == _STRING:
            self.skip(self.u64())
        elif kind == _ARRAY:
            inner, count = self.u32(), self.u64()
            if inner in _SCALARS:
                self.skip(_SCALARS[inner] * count)
            elif count > self.left // 8:  # every element takes at least 8 bytes
                raise _Truncated
            else:
                for _ in range(count):
                    self.value(inner, depth + 1)
        else:
            raise ValueError(f"unknown metadata value type {kind}")
        return None


def gguf_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole GGUF file (None when its header and tensor table are)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        reader = _Reader(handle, size)
        try:
            if reader.take(4) != b"GGUF":
                return "not a GGUF model file"
            version = reader.u32()
            if version not in (2, 3):
                return f"GGUF version {version}; llama.cpp reads versions 2 and 3"
            tensors, entries = reader.u64(), reader.u64()
            alignment = DEFAULT_ALIGNMENT
            for _ in range(entries):
                key = reader.string()
                found = reader.value(reader.u32())
                if key == b"general.alignment" and found:
                    alignment = found
            last = -1
            for _ in range(tensors):
                reader.string()
                dims = reader.u32()
                if dims > 8:
                    return f"a tensor of {dims} dimensions (GGUF allows up to 8)"
                reader.skip(8 * dims)
                reader.u32()  # the tensor's type
                last = max(last, reader.u64())
            data_start = -(-handle.tell() // alignment) * alignment
        except _Truncated:
            return f"cut short inside its header ({size:,} bytes)"
        except ValueError as exc:
            return f"a damaged header ({exc})"
    if tensors == 0:
        return "a GGUF file without tensors (no model weights)"
    if data_start + last >= size:
        return f"cut short: its tensor data needs more than its {size:,} bytes"
    return None


_SHAPE_KEYS = (
    b".block_count",
    b".embedding_length",
    b".attention.head_count",
    b".attention.head_count_kv",
    b".attention.key_length",
    b".attention.value_length",
)


def kv_cache_bytes(path: Path, context_tokens: int) -> tuple[int, int] | None:
    """The bytes of llama.cpp's key/value cache (f16) for ``context_tokens`` tokens and the
    model's layer count, from the header's shape entries; None when the file does not say
    (a whole file is :func:`gguf_problem`'s to check)."""
    shape: dict[bytes, int] = {}
    try:
        with path.open("rb") as handle:
            reader = _Reader(handle, path.stat().st_size)
            if reader.take(4) != b"GGUF" or reader.u32() not in (2, 3):
                return None
            reader.u64()
            for _ in range(reader.u64()):
                key = reader.string()
                found = reader.value(reader.u32())
                suffix = next((k for k in _SHAPE_KEYS if key.endswith(k)), None)
                if suffix is not None and found is not None:
                    shape.setdefault(suffix, found)
    except (OSError, ValueError, _Truncated):
        return None
    layers = shape.get(b".block_count")
    heads = shape.get(b".attention.head_count")
    width = shape.get(b".embedding_length")
    if not layers or not heads or not width:
        return None
    kv_heads = shape.get(b".attention.head_count_kv") or heads
    keys = shape.get(b".attention.key_length") or width // heads
    values = shape.get(b".attention.value_length") or width // heads
    return 2 * layers * context_tokens * kv_heads * (keys + values), layers
