"""MovieLens ``.dat`` releases: ``ratings.dat`` + ``movies.dat`` [+ ``users.dat``] (1M, 10M).

Fields are separated by ``::``; the text is UTF-8 when the file decodes as such, else latin-1
(ML-1M's); ``users.dat`` demographics become ``users``. The field reader (:func:`dat_fields`)
reads the MovieLens-100K release's separated files too (movielens_100k.py).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.file_checks import beside, check_narrow_text, kind, require
from recarena.simulator.data.interactions import (
    InteractionData,
    empty_items,
    rated,
    titled_items,
    user_table,
)
from recarena.simulator.data.parsing import as_numbers, finite_numbers, integer_ids, unique_ids

DAT_SEPARATOR = "::"
_UNIT = "\x1f"  # stands in for "::" so polars can split on one byte (never in MovieLens text)
# ML-1M README: age codes and occupation codes of users.dat
_AGES = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+"}
_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip


def dat_fields(
    path: Path,
    names: tuple[str, ...],
    numeric: tuple[str, ...],
    what: str = "MovieLens file",
    separator: str = DAT_SEPARATOR,
    text_field: str | None = None,
) -> pl.DataFrame:
    """One ``::``-separated (or ``separator``-separated) file as string columns ``names``,
    checked line by line. Its text is UTF-8 when it decodes as such, else latin-1 (ML-1M's
    encoding); ``text_field`` may hold the separator (:func:`_joined_text`).

    Every problem is one :class:`RecarenaError` naming the file and the first bad line: a wrong
    separator or field count, an empty file, a non-numeric value in a ``numeric`` column.
    A UTF-8 byte-order mark and blank lines at the end are not problems; a blank line between
    rows is (it is reported by its number).
    The whole file is split at once (polars on a one-byte stand-in for ``::``); only the
    checks look at line numbers, and they are vectorised too.
    """
    require(path, what, True)
    if not path.is_file():
        raise RecarenaError(f"{path}: not a file ({kind(path)})")
    try:
        with path.open("rb") as stream:
            head = stream.read(4096)
        if not head.startswith(b"\x1f\x8b"):  # a binary file is named from its first bytes:
            check_narrow_text(path, head, zstd=False)  # it was read whole first (3 GB of NULs:
        raw = path.read_bytes()  # 48 s and 3 GB of memory to say so; 30 GB would not fit)
    except OSError as exc:
        raise RecarenaError(f"{path}: cannot read ({exc})") from None
    if raw.startswith(b"\x1f\x8b"):  # gzip-compressed under its plain name, as .csv files may be
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecarenaError(
                f"{path}: a gzip-compressed file that cannot be read ({exc})"
            ) from None
    check_narrow_text(path, raw[:4096], zstd=False)
    # a UTF-8 byte-order mark (a file saved by a Windows editor) is not part of the first id
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if set(numeric) == set(names):  # ratings.dat, u.data: the large files, numbers only
        typed = _typed_dat(raw, names, separator)
        if typed is not None:
            return typed
    try:  # ML-1M's files are latin-1; a copy saved as UTF-8 read as latin-1 was 'CitÃ©'
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # latin-1 text is almost never valid UTF-8 (and ASCII is both)
        text = raw.decode("latin-1")  # latin-1 decodes any byte
    # lines end at LF or CRLF only: str.splitlines also splits at \x1c-\x1e, \x85 (the latin-1
    # reading of cp1252's '...') and U+2028, which cut a title in two
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        bare = text.find("\r")
        if bare >= 0:
            raise RecarenaError(
                f"{path} line {text.count(chr(10), 0, bare) + 1}: a bare carriage return (old "
                "Mac line endings?); save the file with LF or CRLF line endings"
            )
    rows = text.split("\n")
    while rows and not rows[-1].strip():  # blank lines at the end are not rows
        rows.pop()
    lines = pl.Series("line", rows, dtype=pl.String)
    if lines.len() == 0 or not text.strip():
        raise RecarenaError(f"{path}: the file is empty")
    counts = lines.str.count_matches(separator, literal=True).to_numpy()
    if text_field is not None:  # a title holding the separator ('Part 2:: The Return')
        lines, counts = _joined_text(lines, counts, separator, names.index(text_field), len(names))
    bad = np.flatnonzero(counts != len(names) - 1)
    if bad.size:
        first = int(bad[0])
        found = int(counts[first]) + 1
        hint = ""
        line = lines[first]
        if found == len(names) + 1 and line.rstrip().endswith(separator):
            hint = f" (the line ends with '{separator.replace(chr(9), chr(92) + 't')}')"
        elif separator == DAT_SEPARATOR and found == 1 and "\t" in line:
            hint = " (this line uses tabs: MovieLens-100K's u.data layout? name it u.data)"
        elif separator == DAT_SEPARATOR and found == 1 and "," in line:
            hint = (  # was 'name it ratings.csv', which then wants a header line
                " (this line uses ',': a .csv file? name it ratings.csv and give it the header "
                "userId,movieId,rating,timestamp)"
            )
        elif separator == "\t" and found == 1 and " " in lines[first].strip():
            hint = " (this line uses spaces: u.data separates its fields with tabs)"
        shown = separator.replace("\t", "\\t")
        raise RecarenaError(
            f"{path} line {first + 1}: expected {len(names)} fields separated by "
            f"'{shown}' ({shown.join(names)}), found {found}{hint}"
        )
    frame = (
        lines.str.replace_all(separator, _UNIT, literal=True)
        .str.split_exact(_UNIT, len(names) - 1)
        .struct.rename_fields(list(names))
        .struct.unnest()
    )
    if text_field is not None:
        frame = frame.with_columns(pl.col(text_field).str.replace_all(_KEPT, separator))
    return as_numbers(frame, numeric, path, first_line=1)


def _typed_dat(raw: bytes, names: tuple[str, ...], separator: str) -> pl.DataFrame | None:
    """A file of numbers only (ratings.dat, u.data) parsed by polars' CSV reader as Float64,
    when every line has its fields and every cell is a finite number; None otherwise (and the
    line-by-line reader names the bad line). ML-10M's 10M lines split into Python strings
    took ~400 bytes a line (4 GB); the same numbers either way."""
    data = raw.replace(separator.encode(), _UNIT.encode()) if len(separator) > 1 else raw
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            new_columns=list(names),
            separator=_UNIT if len(separator) > 1 else separator,
            quote_char=None,
            infer_schema=False,
            schema_overrides=dict.fromkeys(names, pl.Float64),
        )
    except (pl.exceptions.PolarsError, OSError):
        return None
    if frame.width != len(names) or frame.height == 0:
        return None
    numbers = finite_numbers(names, frame)
    return numbers if numbers is not None and numbers.height else None


_KEPT = "\x1e"
"""Stands in for a separator inside a free-text field while a line is split (never in text)."""


def _joined_text(
    lines: pl.Series, counts: np.ndarray, separator: str, field: int, n_fields: int
) -> tuple[pl.Series, np.ndarray]:
    """Lines with more separators than fields, read as the separator inside the free-text field
    ``field`` (MovieLens titles are the only free text of their files, and the other fields
    are ids, codes and genre lists): the fields before it are counted from the left, those after
    it from the right. A line that ends with the separator is left alone (an empty last field is
    a damaged line, not a title). Was: 'expected 3 fields ..., found 4' for a title with '::'."""
    extra = np.flatnonzero(counts > n_fields - 1)
    if not extra.size:
        return lines, counts
    rows, counts = lines.to_list(), counts.copy()
    for row in extra.tolist():
        if rows[row].rstrip().endswith(separator):
            continue
        parts = rows[row].split(separator)
        after = n_fields - field - 1
        text = separator.join(parts[field : len(parts) - after]).replace(separator, _KEPT)
        rows[row] = separator.join([*parts[:field], text, *parts[len(parts) - after :]])
        counts[row] = n_fields - 1
    return pl.Series(lines.name, rows, dtype=pl.String), counts


def persona_line(gender: str, age: int, occupation: int) -> str:
    """One line of text from ML-1M demographics (codes as documented in its README)."""
    who = person(gender)
    job = _OCCUPATIONS[occupation] if 0 <= occupation < len(_OCCUPATIONS) else "other"
    return f"a {who} aged {_AGES.get(age, str(age))}, {job}"


def person(gender: str) -> str:
    return {"F": "woman", "M": "man"}.get(gender.strip().upper(), "person")


def load_movielens_dat(path: str | Path) -> InteractionData:
    """A MovieLens ``.dat`` release (ML-1M, ML-10M): ``path`` is its directory or ratings.dat.

    ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``; ``movies.dat``:
    ``MovieID::Title::Genres`` (latin-1, titles may hold commas); optional ``users.dat``:
    ``UserID::Gender::Age::Occupation::Zip-code``, which becomes ``InteractionData.users``
    with a one-line ``persona`` per user.
    """
    path = Path(path)
    directory = path.parent if path.suffix == ".dat" else path
    require(directory, "MovieLens directory", True)
    ratings_path = path if path.suffix == ".dat" else directory / "ratings.dat"
    fields = ("user", "item", "rating", "timestamp")
    ratings = dat_fields(ratings_path, fields, fields, "MovieLens ratings file")
    items = empty_items()
    movies_path = directory / "movies.dat"
    if beside(movies_path):
        movies = dat_fields(movies_path, ("item", "title", "genres"), ("item",), text_field="title")
        items = titled_items(
            unique_ids(integer_ids(movies, "item", movies_path), movies_path, "movie"),
            movies["title"],
            movies["genres"].str.split("|"),
        )
    users = None
    users_path = directory / "users.dat"
    if beside(users_path):
        user_fields = ("user", "gender", "age", "occupation", "zip")
        table = dat_fields(users_path, user_fields, ("user", "age", "occupation"))
        ages = integer_ids(table, "age", users_path)
        jobs = integer_ids(table, "occupation", users_path)
        genders = table["gender"].to_list()
        personas = [persona_line(g, a, o) for g, a, o in zip(genders, ages, jobs, strict=True)]
        users = user_table(table, users_path, ages, jobs, personas)
    return rated(directory.name or "movielens", ratings, ratings_path, items, users)
