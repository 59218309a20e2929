"""Checks of a dataset path as a file, before its lines are read, shared by every loader.

A missing path, a symbolic link to nothing, a folder or pipe where a file is wanted, a file in
UTF-16 or packed under a plain name: each is one RecarenaError naming the path, the same
whichever format reads it.
"""

from __future__ import annotations

from pathlib import Path

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.interactions import MOVIELENS_PAGE


def kind(path: Path) -> str:
    """What an existing path that is not a regular file is, for an error line (was 'a
    directory or a device' for a named pipe too)."""
    if path.is_dir():
        return "a directory"
    if path.is_fifo():
        return "a named pipe"
    if path.is_socket():
        return "a socket"
    return "a device"


def require(path: Path, what: str, movielens: bool = False) -> Path:
    check_link(path, what)
    if not path.exists():
        hint = f"; download MovieLens from {MOVIELENS_PAGE}" if movielens else ""
        raise RecarenaError(f"{what} not found: {path}{hint}")
    return path


def beside(path: Path) -> bool:
    """Whether a release's optional file (its movie list, its demographics, a RecBole item file)
    is there to read; a symbolic link to no file is named (``check_link``), as the ratings
    file's is. Was: read as 'no such file', so a broken users.dat link calibrated without the
    demographics, and a broken u.item without titles, without a word."""
    check_link(path, "dataset file")
    return path.exists()


def check_link(path: Path, what: str) -> None:
    """A symbolic link that leads nowhere (its target is gone, or links point at each other) is
    named as such: ``exists()`` is False for it, which read as 'not found' beside the link."""
    if path.is_symlink() and not path.exists():
        raise RecarenaError(
            f"{what} {path} is a symbolic link that leads to no file (a missing target or a "
            "loop of links)"
        )


_WIDE_TEXT = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


_PACKED = {
    b"PK\x03\x04": "a zip archive",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
}
"""Archives and compressions that a dataset file may be under its plain name, by their first
bytes (gzip is read as it is everywhere, zstd by the CSV readers)."""


def check_narrow_text(path: Path, head: bytes, zstd: bool = True) -> None:
    """A UTF-16 or UTF-32 file (what some spreadsheet programs save as 'Unicode text') read
    byte by byte is a NUL between every letter: its header 'had no column userId' or its
    first line one field. Named as the encoding it is, from its byte-order mark or NULs. A zip,
    bzip2, xz or 7-Zip file under a plain name (and zstd where ``zstd`` is False: the .dat
    reader has no zstd) is named as what it is; it was 'UTF-16 or binary' or a field count."""
    packed = next((name for mark, name in _PACKED.items() if head.startswith(mark)), None)
    if packed is not None and (zstd is False or packed != "zstd-compressed"):
        raise RecarenaError(
            f"{path}: the file is {packed}; unpack it (a gzip-compressed file is read as it is)"
        )
    wide = next((name for mark, name in _WIDE_TEXT.items() if head.startswith(mark)), None)
    compressed = head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd"))  # gzip, zstd: polars reads
    if wide is None and not compressed and b"\x00" in head:
        wide = "UTF-16 or binary (it holds NUL bytes)"
    if wide is not None:
        raise RecarenaError(
            f"{path} line 1: the file is {wide}, not UTF-8 text (latin-1 for MovieLens .dat "
            "files); save it as UTF-8"
        )


def renamed_ratings(directory: Path) -> str:
    """A folder's ratings file under another name, pointed to ('ratings.csv.gz', 'Ratings.csv',
    'ratings (1).csv'): the loaders read ratings.csv, ratings.dat and u.data by those names
    only, and a missing one sent the user to download a release they have. Empty if none."""
    try:
        near = sorted(
            child.name
            for child in directory.iterdir()
            if child.name.lower().startswith(("ratings", "u.data")) and child.is_file()
        )
    except OSError:
        return ""
    if not near:
        return ""
    return (
        f"; it holds {near[0]}: name it ratings.csv, ratings.dat or u.data after its layout "
        "(a gzip-compressed file is read under that name)"
    )
