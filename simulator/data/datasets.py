"""Real interaction data: one typed container and loaders for the formats recarena reads.

Calibration (agents/users/calibration.py) only ever sees :class:`InteractionData`, so adding a
format means adding a loader here and nothing else. Supported:

* ``ml-100k``: MovieLens-100K read *in place* from the RecBole package (its atomic files ship
  inside ``recbole/dataset_example``). The package directory is found with
  ``importlib.util.find_spec`` so RecBole itself is never imported (its import needs the numpy
  shims of recommenders/recbole_support.py) and the data is never copied into the repo;
* MovieLens CSV releases (``ratings.csv`` + ``movies.csv``: latest-small, latest, 20M, 25M, 32M);
* MovieLens ``.dat`` releases (``ratings.dat`` + ``movies.dat`` [+ ``users.dat``]: 1M, 10M),
  fields separated by ``::``, UTF-8 when the file decodes as such, else latin-1 (ML-1M's);
  ``users.dat`` demographics become ``users``;
* any RecBole atomic dataset (``<name>.inter`` with typed headers, optional ``<name>.item``);
* a generic interactions CSV or Parquet file with configurable column names.

Ids are kept as they appear in the file; calibration maps them to dense indices. Every number
read from any of them passes one rule (:func:`_as_numbers`), and every problem is one
RecarenaError naming the file and its line (a Parquet file's row).
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.archives import RATINGS_FILES, is_zip, unpacked_release

MOVIELENS_PAGE = "https://grouplens.org/datasets/movielens/"
MOVIELENS_LICENCE = (
    "MovieLens data (GroupLens Research, University of Minnesota): research use only, no "
    "redistribution, cite Harper & Konstan (2015); see " + MOVIELENS_PAGE
)
Format = Literal["auto", "movielens", "movielens-dat", "movielens-100k", "recbole", "csv"]
FORMATS = ("auto", "movielens", "movielens-dat", "movielens-100k", "recbole", "csv")
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b")


@dataclass(frozen=True)
class InteractionData:
    """One dataset's interactions (one row per event) and its item table.

    ``rating`` is None for implicit data; ``click`` is None when every row is a consumption
    (MovieLens: a rating means the user watched the movie). ``items`` has columns ``item``
    (same id type as ``self.item``), ``title`` (str), ``genres`` (list[str]), ``year`` (Int32,
    null when unknown); it may be empty when the dataset has no item file.
    """

    name: str
    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray  # float64 seconds (Unix time for MovieLens)
    rating: np.ndarray | None = None  # float32
    click: np.ndarray | None = None  # bool: False rows are exposures without a click
    items: pl.DataFrame = field(default_factory=lambda: _empty_items())
    licence: str = ""
    users: pl.DataFrame | None = None
    """Demographics when the release has them (ML-1M ``users.dat``): columns ``user``,
    ``gender``, ``age``, ``occupation``, ``zip`` and ``persona`` (one line of text)."""
    source: str = ""
    """The file the interactions were read from, for notes that name it ('' when built in
    memory)."""

    def __post_init__(self) -> None:
        n = self.user.shape[0]
        for name in ("item", "timestamp", "rating", "click"):
            array = getattr(self, name)
            if array is not None and array.shape[0] != n:
                raise ValueError(f"InteractionData.{name}: {array.shape[0]} rows, expected {n}")

    @property
    def n_interactions(self) -> int:
        return int(self.user.shape[0])

    @property
    def n_users(self) -> int:
        return int(np.unique(self.user).shape[0])

    @property
    def n_items(self) -> int:
        """Distinct items in the item table and the interactions together."""
        ids = np.unique(self.item)
        if self.items.height:
            ids = np.union1d(ids, self.items["item"].to_numpy())
        return int(ids.shape[0])

    def consumed(self) -> np.ndarray:
        """Mask of rows that are consumptions (clicks/ratings), not bare exposures."""
        if self.click is None:
            return np.ones(self.n_interactions, bool)
        return self.click.astype(bool)


def untitled_line(data: InteractionData) -> str:
    """What a note on stderr says when rated items are missing from the item table that the
    dataset has (a trimmed or mismatched movies.csv): their titles are their ids in reports
    and prompts, and they have no genres. A MovieLens release with no movie list at all (its
    movies.csv, movies.dat or u.item left out of a copy) is noted too: it calibrated without a
    word. Empty when every rated item is listed, or a non-MovieLens dataset has no item file."""
    if not data.items.height:
        if data.licence != MOVIELENS_LICENCE or not data.n_interactions:
            return ""
        return (
            f"{data.name!r} has no movie list beside its ratings (movies.csv, movies.dat or "
            "u.item): the titles of its movies are their ids and they have no genres"
        )
    rated, listed = np.unique(data.item), data.items["item"].to_numpy()
    if rated.dtype.kind != listed.dtype.kind:
        return ""
    missing = np.setdiff1d(rated, listed)
    if not missing.size:
        return ""
    return (
        f"{missing.size:,} of the {rated.size:,} rated items of {data.name!r} are not in its "
        f"item table (movies.csv, movies.dat or u.item; first: {missing[0]}): their titles "
        "are their ids and they have no genres"
    )


def one_rating_line(data: InteractionData) -> str:
    """What a note on stderr says when every rating of the dataset's consumptions is the same
    value (a file of 'watched' marks coded 1, or a rating column filled in by a script): the
    star cut points are fitted to one value, so simulated users give (almost) every movie that
    rating and fidelity's check 2 holds by construction. The dataset is calibrated as it is;
    empty when ratings differ or there are none."""
    if data.rating is None:
        return ""
    rated = data.rating[data.consumed()]
    rated = rated[~np.isnan(rated)]
    if rated.size < 2 or rated.min() != rated.max():
        return ""
    value = _number(float(rated[0]))
    where = data.source or repr(data.name)
    return (
        f"every one of the {rated.size:,} ratings in {where} is {value}: the rating model has "
        f"one value to fit, so simulated users rate (almost) every movie {value} and the rating "
        "distribution check holds by construction"
    )


def dataset_notes(data: InteractionData) -> list[str]:
    """The notes a command prints on stderr after reading a dataset it calibrates on: rated
    items missing from the item table, one rating value throughout."""
    return [line for line in (untitled_line(data), one_rating_line(data)) if line]


def _empty_items() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "item": pl.Int64,
            "title": pl.String,
            "genres": pl.List(pl.String),
            "year": pl.Int32,
        }
    )


def _kind(path: Path) -> str:
    """What an existing path that is not a regular file is, for an error line (was 'a
    directory or a device' for a named pipe too)."""
    if path.is_dir():
        return "a directory"
    if path.is_fifo():
        return "a named pipe"
    if path.is_socket():
        return "a socket"
    return "a device"


def _require(path: Path, what: str, movielens: bool = False) -> Path:
    check_link(path, what)
    if not path.exists():
        hint = f"; download MovieLens from {MOVIELENS_PAGE}" if movielens else ""
        raise RecarenaError(f"{what} not found: {path}{hint}")
    return path


def _beside(path: Path) -> bool:
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


Lines = int | np.ndarray
"""Where a frame's rows are in the file it was read from: the line of its first row when each
row is one line, else each row's own first line (:func:`_row_lines`)."""


def _line(lines: Lines, row: int) -> int:
    """The file line of a frame's ``row`` (:data:`Lines`)."""
    return lines + row if isinstance(lines, int) else int(lines[row])


def _row_lines(frame: pl.DataFrame, first_line: int = 2) -> Lines:
    """Where the rows of a CSV file read with its header are: ``first_line`` on, one line each,
    unless a quoted field holds a line break (a title over two lines, which is read as one
    row); then each row's first line, counted past the breaks of the rows before it. Was: every
    row after such a title named a line too early (a bad movie id on line 6 said line 4)."""
    text = [name for name, kind in frame.schema.items() if kind == pl.String]
    if not text or not frame.height:
        return first_line
    breaks = (
        frame.select(
            pl.sum_horizontal(
                pl.col(name).str.count_matches("\n", literal=True).fill_null(0) for name in text
            )
        )
        .to_series()
        .to_numpy()
        .astype(np.int64)
    )
    if not breaks.any():
        return first_line
    before = np.concatenate([[0], np.cumsum(breaks)[:-1]])
    return first_line + np.arange(frame.height, dtype=np.int64) + before


_MILLISECONDS = 1e11
"""Unix seconds above this are past the year 5000: a timestamp in milliseconds (1e12 is 2001)."""


def _check_seconds(frame: pl.DataFrame, column: str, path: Path, lines: Lines = 2) -> None:
    """A generic or RecBole file's timestamps are seconds since 1970 as a MovieLens release's
    are (calibration splits sessions at 30-minute gaps and counts visits a day), so one past the
    year 5000 (milliseconds) is named by file and line as it is in a MovieLens file. Was:
    calibrated without a word, every visit rate 1000 times too low."""
    time = frame[column].to_numpy()
    late = np.flatnonzero(time > _MILLISECONDS)
    if late.size:
        row = int(late[0])
        raise RecarenaError(
            f"{_place(path, row, lines)}: {column} {_number(time[row])} is after the year 5000 "
            "read as seconds: milliseconds? (timestamps are seconds since 1970; divide by 1000)"
        )


def _check_ratings(
    frame: pl.DataFrame, path: Path, columns: tuple[str, str, str, str], first_line: Lines
) -> None:
    """What MovieLens ratings files never hold, each named by file and line: a negative or
    millisecond timestamp (calibration reads seconds: sessions 1000 times too long, visit rates
    1000 times too low), a rating off the 0.5-5 star scale, a user rating one movie twice."""
    user, item, rating, timestamp = columns
    time = frame[timestamp].to_numpy()
    stars = frame[rating].to_numpy()
    checks = (
        (time < 0, timestamp, "is negative (MovieLens times are seconds since 1970)"),
        (
            time > _MILLISECONDS,
            timestamp,
            "is after the year 5000 read as seconds: milliseconds? (MovieLens times are "
            "seconds since 1970; divide by 1000)",
        ),
        ((stars < 0.5) | (stars > 5), rating, "is outside MovieLens's 0.5-5 star scale"),
    )
    for bad, column, text in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            row = int(rows[0])
            raise RecarenaError(
                f"{path} line {_line(first_line, row)}: {column} {_number(frame[row, column])} "
                f"{text}"
            )
    users, items = frame[user].to_numpy(), frame[item].to_numpy()
    order = np.lexsort((items, users))  # stable: a pair's rows stay in file order
    repeat = (users[order[1:]] == users[order[:-1]]) & (items[order[1:]] == items[order[:-1]])
    if repeat.any():  # (a polars struct of the two columns took ~160 bytes a row: 5 GB at 32M)
        again = int(order[1:][repeat].min())  # the first line that repeats an earlier one
        u, i = frame[again, user], frame[again, item]
        same = (frame[user].to_numpy() == u) & (frame[item].to_numpy() == i)
        first = int(np.flatnonzero(same)[0])
        raise RecarenaError(
            f"{path} line {_line(first_line, again)}: user {_number(u)} rated movie "
            f"{_number(i)} again (first on line {_line(first_line, first)}); a MovieLens release "
            "holds one rating per user and movie"
        )


def _number(value: float) -> str:
    """A parsed number as the file most likely wrote it (964982703000, not 9.64983e+11)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else f"{value:g}"


NO_GENRES = "(no genres listed)"
"""What MovieLens's movie lists write for a movie without genres (ML-10M on): no genre."""


def _titled_items(item: np.ndarray, title: pl.Series, genres: Any) -> pl.DataFrame:
    """The item table from ids, MovieLens titles ("Heat (1995)") and genre lists: the year moves
    from the title to its own column (null when a title has none). Genre names lose the spaces
    around them, and an empty name ('Comedy||Drama', a '|' at either end) or '(no genres
    listed)' is no genre: it was kept, and the movie's creator, its first genre, had no name. A
    title that is empty once its year is gone ('(1995)') is null, as a missing one is, so the
    movie is named by its id (it was an empty title in prompts and reports)."""
    name = pl.element().str.strip_chars()
    return pl.DataFrame(
        {"item": item, "title": title, "genres": genres},
        schema_overrides={"genres": pl.List(pl.String)},
    ).with_columns(
        # a quoted title may hold a line break or a tab: one line of text in prompts and reports
        pl.col("title")
        .str.replace_all(r"\s+", " ")
        .str.replace(r"\s*\(\d{4}\)\s*$", "")
        .str.strip_chars()
        .replace("", None),
        pl.col("genres")
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))  # an empty field
        .list.eval(name.filter((name != "") & (name != NO_GENRES))),
        pl.col("title").str.extract(_YEAR.pattern, 1).cast(pl.Int32, strict=False).alias("year"),
    )


def _rated(
    name: str,
    ratings: pl.DataFrame,
    path: Path,
    items: pl.DataFrame,
    users: pl.DataFrame | None = None,
) -> InteractionData:
    """A MovieLens release from its checked ``user, item, rating, timestamp`` columns."""
    _check_ratings(ratings, path, ("user", "item", "rating", "timestamp"), first_line=1)
    return InteractionData(
        name=name,
        user=_integer_ids(ratings, "user", path),
        item=_integer_ids(ratings, "item", path),
        timestamp=ratings["timestamp"].to_numpy(),
        rating=ratings["rating"].to_numpy().astype(np.float32),
        items=items,
        licence=MOVIELENS_LICENCE,
        users=users,
        source=str(path),
    )


def _user_table(
    table: pl.DataFrame, path: Path, ages: np.ndarray, occupation: Any, persona: list[str]
) -> pl.DataFrame:
    """``InteractionData.users`` from a release's demographics file (1M's or 100K's)."""
    return pl.DataFrame(
        {
            "user": _unique_ids(_integer_ids(table, "user", path), path, "user"),
            "gender": table["gender"],
            "age": ages,
            "occupation": occupation,
            "zip": table["zip"],
            "persona": persona,
        }
    )


# ------------------------------------------------------------------------------ ML-100K
def recbole_ml100k_dir() -> Path:
    """Directory of the ML-100K atomic files inside the installed RecBole package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise RecarenaError(
            "ml-100k is read from the RecBole package, which is not installed; install recbole "
            f"or download MovieLens-100K from {MOVIELENS_PAGE}"
        )
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    return _require(path / "ml-100k.inter", "ML-100K in the RecBole package", True).parent


def load_ml100k() -> InteractionData:
    """MovieLens-100K (943 users, 1682 movies, 100,000 ratings) from RecBole's copy."""
    data = load_recbole(recbole_ml100k_dir(), "ml-100k")
    return InteractionData(
        name="ml-100k",
        user=data.user,
        item=data.item,
        timestamp=data.timestamp,
        rating=data.rating,
        items=data.items,
        licence=MOVIELENS_LICENCE,
        source=data.source,
    )


# --------------------------------------------------------------------------- MovieLens CSV
def _bad_line(path: Path, movielens: bool = True) -> str:
    """Where a CSV that polars refused goes wrong: the first line that is not UTF-8, breaks the
    quoting rules (:func:`_quote_problem`) or whose field count differs from the header's (only
    run on the error path)."""
    import csv
    import io

    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            return f"is a gzip-compressed file that cannot be read ({exc})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        hint = (
            "MovieLens .csv releases are UTF-8 (the latin-1 releases ship .dat files: keep "
            "their names)"
            if movielens
            else "save the file as UTF-8"
        )
        return f"line {line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); {hint}"
    problem = _quote_problem(text)
    if problem:
        return problem
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    for row in rows:
        if len(row) != len(header):
            return f"line {rows.line_num}: {len(row)} fields, the header has {len(header)}"
    return "cannot be read as CSV"


def _quote_problem(text: str, separator: str = ",") -> str:
    """The first line where a CSV's double quotes break the rules polars reads by (only run on
    the error path, from the first line holding a quote): a quote inside a field that does not
    start with one ('He"at (1995)': Python's csv module reads it, polars says 'CSV malformed'
    naming no line), a quoted field whose closing quote is followed by more text (a quote
    missing, or not doubled), and a quoted field that never closes. Empty if none."""
    first = text.find('"')
    if first < 0:
        return ""
    line = text.count("\n", 0, first) + 1
    state, opened = "start", line  # start of a field, unquoted, quoted, after_quote
    for char in text[text.rfind("\n", 0, first) + 1 :]:
        if state == "quoted":
            if char == '"':
                state = "after_quote"
            elif char == "\n":
                line += 1
            continue
        if state == "after_quote" and char not in (separator, "\n", "\r", '"'):
            where = f"line {opened}" + (f" (closing on line {line})" if line != opened else "")
            return (
                f"{where}: a quoted field goes on after its closing quote (a quote missing, or "
                'one inside the field not doubled: write "" for ")'
            )
        if char == '"':
            if state == "after_quote":  # a doubled quote inside a quoted field
                state = "quoted"
            elif state == "start":
                state, opened = "quoted", line
            else:
                return (
                    f"line {line}: a double quote inside a field that is not quoted (quote the "
                    "whole field and double the quote inside it)"
                )
        elif char == "\n":
            line, state = line + 1, "start"
        elif char == separator:
            state = "start"
        elif char != "\r" and state != "after_quote":
            state = "unquoted"
    if state == "quoted":
        return f"line {opened}: a quoted field that never closes (its closing quote is missing)"
    return ""


def _checked_header(
    frame: pl.DataFrame, path: Path, required: Sequence[str], roles: Sequence[str] = ()
) -> pl.DataFrame:
    """A CSV file's header (line 1) checked, for MovieLens and generic files alike. Spaces
    around a name ('userId, movieId') and a needed name in other letters ('UserID', as ML-1M's
    README writes it) are read as the name. Each problem is one error naming the file, line 1
    and the column: a column named twice, used or not (was: the first one read without a word,
    or an unused one let through), a missing column (the names found are listed, at most eight:
    a file with old Mac line endings is one line of thousands of names), lines ending in a bare
    carriage return, and a file with no header (its first line is a row of numbers).
    ``roles`` name what each required column is for (a generic file's 'user' column)."""
    names = frame.columns
    if any("\r" in name for name in names):
        raise RecarenaError(
            f"{path} line 1: the lines end in a bare carriage return (old Mac line endings); "
            "save the file with LF or CRLF line endings"
        )
    seen: set[str] = set()
    for name in names:  # polars renames a repeated name: 'rating_duplicated_0'
        base, mark, count = name.rpartition("_duplicated_")
        if mark and count.isdigit() and base in names:
            name = base
        name = name.strip()
        if name in seen:
            raise RecarenaError(
                f"{path} line 1: the header names column {name!r} twice (which one is meant?)"
            )
        seen.add(name)
    renamed = {name: name.strip() for name in names}
    folded = {name.strip().lower(): name for name in names}
    for needed in required:
        if needed not in seen and needed.lower() in folded:
            renamed[folded[needed.lower()]] = needed
    frame = frame.rename(renamed)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        first = names[0].strip()
        if first.lstrip("+-").replace(".", "", 1).isdigit():
            raise RecarenaError(
                f"{path} line 1: no header line (the file starts with the number {first!r}); "
                f"add the header {','.join(required)!r} as its first line"
            )
        found = [name.strip() for name in names]
        shown = f"{found[:8]}" + (f" and {len(found) - 8:,} more" if len(found) > 8 else "")
        hint = " (is the separator ','?)" if len(names) == 1 else ""
        if not roles and {"user", "item", "timestamp"} <= {n.lower() for n in found}:
            hint = f" (a generic log? give {path} with --format csv)"  # MovieLens names wanted
        role = f"{roles[list(required).index(missing[0])]} " if roles else ""
        raise RecarenaError(
            f"{path} line 1: header has no {role}column {missing[0]!r}; found {shown}{hint}"
        )
    return frame


def _typed_csv(path: Path, numeric: tuple[str, ...], separator: str) -> pl.DataFrame | None:
    """The file read with its ``numeric`` columns parsed as Float64 by the CSV reader, when
    every one of their cells is a finite number; None otherwise (or when polars refuses the
    file), and the caller reads it as text, where the checks quote the bad cell by its line.
    A release's 25-33M ratings read as text first took ~340 bytes a row (11 GB for ML-32M);
    parsed as they are read, far less. Both paths give the same numbers."""
    try:
        header = pl.read_csv(
            path, n_rows=0, infer_schema=False, separator=separator, glob=False
        ).columns
        folded = {name.strip().lower(): name for name in header}  # as _checked_header reads
        named = [folded.get(column.lower()) for column in numeric]
        if None in named or len(set(named)) != len(named):
            return None
        frame = pl.read_csv(
            path,
            infer_schema=False,
            separator=separator,
            glob=False,
            schema_overrides=dict.fromkeys([str(name) for name in named], pl.Float64),
        )
    except (pl.exceptions.PolarsError, OSError):
        return None
    return _finite_numbers([str(name) for name in named], frame)


def _finite_numbers(columns: Sequence[str], frame: pl.DataFrame) -> pl.DataFrame | None:
    """``frame`` without the blank lines at its end (they are not rows), when each of
    ``columns`` is Float64 and finite in every row (a null, from an empty cell or a short line,
    is NaN here); None otherwise: the fast readers' shared acceptance rule."""
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
    end = len(blank)
    while end and blank[end - 1]:
        end -= 1
    frame = frame.head(end)
    for column in columns:
        if (
            frame.schema.get(column) != pl.Float64
            or not np.isfinite(frame[column].to_numpy()).all()
        ):
            return None
    return frame


def _read_csv_checked(
    path: Path, required: tuple[str, ...], numeric: tuple[str, ...], separator: str = ","
) -> tuple[pl.DataFrame, Lines]:
    """A CSV with a header, every column as text, ``numeric`` columns cast to Float64, and
    where its rows are in the file (:func:`_row_lines`); every problem is one RecarenaError
    naming the file and the line (empty file, missing header column, wrong separator, invalid
    UTF-8, ragged line, non-numeric value, a blank line between rows); blank lines at the end
    are dropped."""
    if path.exists() and not path.is_file():
        raise RecarenaError(f"{path}: not a file ({_kind(path)})")
    try:
        if path.stat().st_size == 0:
            raise RecarenaError(f"{path}: the file is empty")
        with path.open("rb") as stream:
            check_narrow_text(path, stream.read(4096))
        frame = _typed_csv(path, numeric, separator)
        if frame is None:  # a cell the checks below name by its line, or a header to mend
            frame = pl.read_csv(path, infer_schema=False, separator=separator, glob=False)
    except pl.exceptions.NoDataError:
        raise RecarenaError(f"{path}: the file is empty") from None
    except (pl.exceptions.PolarsError, OSError):
        raise RecarenaError(f"{path} {_bad_line(path)}") from None
    frame = _checked_header(frame, path, required)
    lines = _row_lines(frame)
    frame = _without_blank_lines(frame, path, lines)
    return _as_numbers(frame, numeric, path, first_line=lines), lines


def _without_blank_lines(frame: pl.DataFrame, path: Path, lines: Lines = 2) -> pl.DataFrame:
    """A file read with a header line: blank lines at the end (an editor's) are dropped, and a
    blank line between rows is one error naming its line (a row of nothing, which was 'user is
    empty' in a generic or RecBole file); no rows at all is one too."""
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
    end = len(blank)
    while end and blank[end - 1]:  # blank lines at the end are not rows
        end -= 1
    frame = frame.head(end)
    if frame.height == 0:
        raise RecarenaError(f"{path}: no rows after the header")
    if blank[:end].any():
        line = _line(lines, int(np.flatnonzero(blank[:end])[0]))  # line 1 is the header
        raise RecarenaError(f"{path} line {line}: a blank line between rows")
    return frame


def load_movielens(path: str | Path) -> InteractionData:
    """A MovieLens CSV release: ``path`` is its directory or its ``ratings.csv``."""
    path = Path(path)
    directory = path.parent if path.suffix == ".csv" else path
    ratings_path = path if path.suffix == ".csv" else path / "ratings.csv"
    _require(directory, "MovieLens directory", True)
    check_link(ratings_path, "MovieLens ratings file")
    if not ratings_path.exists() and (directory / "ratings.dat").exists():
        return load_movielens_dat(directory)
    if not ratings_path.exists() and (directory / "u.data").exists():
        return load_movielens_100k(directory)
    if not ratings_path.exists():
        where = _renamed_ratings(directory) or f"; download MovieLens from {MOVIELENS_PAGE}"
        raise RecarenaError(
            f"MovieLens ratings file not found: no {ratings_path.name}, ratings.dat or u.data in "
            f"{directory}{where}"
        )
    columns = ("userId", "movieId", "rating", "timestamp")
    ratings, lines = _read_csv_checked(ratings_path, columns, columns)
    _check_ratings(ratings, ratings_path, columns, first_line=lines)
    items = _empty_items()
    movies_path = directory / "movies.csv"
    if _beside(movies_path):
        movies, movie_lines = _read_csv_checked(
            movies_path, ("movieId", "title", "genres"), ("movieId",)
        )
        items = _titled_items(
            _unique_ids(
                _integer_ids(movies, "movieId", movies_path, first_line=movie_lines),
                movies_path,
                "movie",
                first_line=movie_lines,
            ),
            movies["title"],
            movies["genres"].str.split("|"),
        )
    return InteractionData(
        name=directory.name or "movielens",
        user=_integer_ids(ratings, "userId", ratings_path, first_line=lines),
        item=_integer_ids(ratings, "movieId", ratings_path, first_line=lines),
        timestamp=ratings["timestamp"].to_numpy(),
        rating=ratings["rating"].cast(pl.Float32).to_numpy(),
        items=items,
        licence=MOVIELENS_LICENCE,
        source=str(ratings_path),
    )


# ------------------------------------------------------------------- MovieLens .dat (1M, 10M)
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


def _dat_fields(
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
    _require(path, what, True)
    if not path.is_file():
        raise RecarenaError(f"{path}: not a file ({_kind(path)})")
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
    return _as_numbers(frame, numeric, path, first_line=1)


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
    numbers = _finite_numbers(names, frame)
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


def _place(path: Path, row: int, first_line: Lines) -> str:
    """Where a frame's ``row`` is in its file: a Parquet file's row (it has no lines), else the
    file's line (``first_line``: where the frame's rows are, :data:`Lines`)."""
    if path.suffix == ".parquet":
        return f"{path} row {row + 1}"
    return f"{path} line {_line(first_line, row)}"


def _as_numbers(
    frame: pl.DataFrame,
    numeric: Sequence[str],
    path: Path,
    first_line: Lines,
    may_be_empty: Sequence[str] = (),
) -> pl.DataFrame:
    """The one rule for numbers read from any dataset file (MovieLens, RecBole, a generic CSV
    or Parquet file): each ``numeric`` column, as text stripped of spaces, to float64. The first
    cell that breaks it is one error naming the file and its line (a Parquet file's row): an
    empty cell (unless its column is in ``may_be_empty``: a generic file's exposure without a
    rating stays null), text that is not a number, or 'nan', 'inf' and '1e999', which parse as
    floats and end in NaN fits (a Parquet float column holds NaN and inf as they are)."""
    for column in numeric:
        kind = frame[column].dtype
        if kind.is_float() and np.isfinite(frame[column].to_numpy()).all():
            continue  # parsed by the reader (no empty cell: a null is NaN in numpy)
        if kind.is_integer() and not frame[column].null_count():  # a Parquet file's integers
            frame = frame.with_columns(frame[column].cast(pl.Float64))
            continue
        shown = frame[column].cast(pl.String)
        text = shown.str.strip_chars()
        values = text.cast(pl.Float64, strict=False)
        empty = (text.is_null() | (text == "")).to_numpy()
        checks = (
            (empty & (column not in may_be_empty), "is empty"),
            (values.is_null().to_numpy() & ~empty, "is not a number"),
            (~np.isfinite(values.fill_null(0.0).to_numpy()), "is not a finite number"),
        )
        for bad, text_of in checks:
            rows = np.flatnonzero(bad)
            if rows.size:
                row = int(rows[0])
                value = "" if text_of == "is empty" else f" {shown[row]!r}"
                if text_of == "is not a number" and _DATE.match(shown[row].strip()):
                    text_of += " (a date: timestamps are seconds since 1970)"
                elif text_of == "is not a number" and shown[row].strip() == column:
                    text_of += " (the header line again: two files joined into one?)"
                raise RecarenaError(f"{_place(path, row, first_line)}: {column}{value} {text_of}")
        frame = frame.with_columns(values.alias(column))
    return frame


_MAX_ID = 2.0**53
"""Ids are read as float64 first: beyond 2^53 neighbouring integers are the same float."""


def _integer_ids(frame: pl.DataFrame, column: str, path: Path, first_line: Lines = 1) -> np.ndarray:
    """A numeric column of ids as int64; a fractional or out-of-range id is one error naming
    the file and line (``first_line`` is the file line of the frame's first row)."""
    values = frame[column].to_numpy()
    fractional = np.flatnonzero(values != np.floor(values))
    if fractional.size:
        row = int(fractional[0])
        raise RecarenaError(
            f"{path} line {_line(first_line, row)}: {column} {frame[column][row]!r} is not an "
            "integer"
        )
    huge = np.flatnonzero(np.abs(values) >= _MAX_ID)  # 2^53 + 1 reads as 2^53: was taken
    if huge.size:  # for it, another id without a word
        row = int(huge[0])
        raise RecarenaError(
            f"{path} line {_line(first_line, row)}: {column} {values[row]:g} is too large for "
            "an id (ids must be below 2^53 = 9007199254740992, where every integer is exact)"
        )
    return values.astype(np.int64)


def _unique_ids(ids: np.ndarray, path: Path, what: str, first_line: Lines = 1) -> np.ndarray:
    """``ids`` of a file that lists each movie or user once (movies.csv, movies.dat, u.item,
    users.dat, u.user), checked: a repeated id (two files pasted together, a row copied) is one
    error naming both lines. Was: the first (movies) or last (users) row won without a word."""
    if np.unique(ids).size < ids.size:
        seen: dict[int, int] = {}
        for row, value in enumerate(ids.tolist()):  # error path only
            if value in seen:
                raise RecarenaError(
                    f"{path} line {_line(first_line, row)}: {what} {value} again (first on "
                    f"line {_line(first_line, seen[value])}); a MovieLens release lists each "
                    f"{what} once"
                )
            seen[value] = row
    return ids


def persona_line(gender: str, age: int, occupation: int) -> str:
    """One line of text from ML-1M demographics (codes as documented in its README)."""
    who = _person(gender)
    job = _OCCUPATIONS[occupation] if 0 <= occupation < len(_OCCUPATIONS) else "other"
    return f"a {who} aged {_AGES.get(age, str(age))}, {job}"


def _person(gender: str) -> str:
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
    _require(directory, "MovieLens directory", True)
    ratings_path = path if path.suffix == ".dat" else directory / "ratings.dat"
    fields = ("user", "item", "rating", "timestamp")
    ratings = _dat_fields(ratings_path, fields, fields, "MovieLens ratings file")
    items = _empty_items()
    movies_path = directory / "movies.dat"
    if _beside(movies_path):
        movies = _dat_fields(
            movies_path, ("item", "title", "genres"), ("item",), text_field="title"
        )
        items = _titled_items(
            _unique_ids(_integer_ids(movies, "item", movies_path), movies_path, "movie"),
            movies["title"],
            movies["genres"].str.split("|"),
        )
    users = None
    users_path = directory / "users.dat"
    if _beside(users_path):
        user_fields = ("user", "gender", "age", "occupation", "zip")
        table = _dat_fields(users_path, user_fields, ("user", "age", "occupation"))
        ages = _integer_ids(table, "age", users_path)
        jobs = _integer_ids(table, "occupation", users_path)
        genders = table["gender"].to_list()
        personas = [persona_line(g, a, o) for g, a, o in zip(genders, ages, jobs, strict=True)]
        users = _user_table(table, users_path, ages, jobs, personas)
    return _rated(directory.name or "movielens", ratings, ratings_path, items, users)


# ------------------------------------------------------------------ MovieLens-100K release
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The genre flags of u.item, in order (its README; u.genre says the same when present)."""


def _ml100k_genres(directory: Path) -> tuple[str, ...]:
    """Genre names by flag position: from u.genre when the folder has it, else the README's."""
    listing = directory / "u.genre"
    if not _beside(listing):
        return ML100K_GENRES
    table = _dat_fields(listing, ("genre", "index"), ("index",), "genre list", separator="|")
    names = dict(zip(_integer_ids(table, "index", listing).tolist(), table["genre"], strict=True))
    return tuple(names.get(i, f"genre {i}") for i in range(len(ML100K_GENRES)))


def load_movielens_100k(path: str | Path) -> InteractionData:
    """The MovieLens-100K release as GroupLens ships it: ``path`` is its folder or u.data.

    ``u.data``: ``user id \\t item id \\t rating \\t timestamp``; ``u.item`` (latin-1,
    ``|``-separated): id, title with year, release date, video release date, IMDb URL and 19
    genre flags; optional ``u.user``: ``id|age|gender|occupation|zip``, which becomes
    ``InteractionData.users`` with a persona line. (``ml-100k`` as a name reads RecBole's copy of
    the same data.)
    """
    path = Path(path)
    directory = path.parent if path.name == "u.data" else path
    _require(directory, "MovieLens-100K directory", True)
    ratings_path = directory / "u.data"
    fields = ("user", "item", "rating", "timestamp")
    ratings = _dat_fields(ratings_path, fields, fields, "MovieLens ratings file", separator="\t")
    items = _empty_items()
    items_path = directory / "u.item"
    if _beside(items_path):
        genres = _ml100k_genres(directory)
        names = ("item", "title", "released", "video", "url", *(f"g{i}" for i in range(19)))
        movies = _dat_fields(items_path, names, ("item",), separator="|", text_field="title")
        flags = np.column_stack(
            [movies[f"g{i}"].str.strip_chars().to_numpy() == "1" for i in range(19)]
        )
        items = _titled_items(
            _unique_ids(_integer_ids(movies, "item", items_path), items_path, "movie"),
            movies["title"],
            [[genres[g] for g in np.flatnonzero(row) if g > 0] for row in flags],
        )
    users = None
    users_path = directory / "u.user"
    if _beside(users_path):
        user_fields = ("user", "age", "gender", "occupation", "zip")
        table = _dat_fields(users_path, user_fields, ("user", "age"), separator="|")
        ages = _integer_ids(table, "age", users_path)
        jobs = table["occupation"]
        genders = table["gender"].to_list()
        personas = [
            f"a {_person(g)} aged {a}, {job.strip() or 'other'}"
            for g, a, job in zip(genders, ages, jobs.to_list(), strict=True)
        ]
        users = _user_table(table, users_path, ages, jobs, personas)
    return _rated(directory.name or "ml-100k", ratings, ratings_path, items, users)


# --------------------------------------------------------------------------- RecBole atomic
def _read_atomic(path: Path) -> pl.DataFrame:
    """A RecBole atomic file: tab-separated, header ``name:type`` (token, float, token_seq...)."""
    if path.exists() and not path.is_file():  # a pipe: polars would block, deaf to signals
        raise RecarenaError(f"{path}: not a file (a directory, a pipe or a device)")
    if path.is_file():
        with path.open("rb") as stream:
            check_narrow_text(path, stream.read(4096))
    try:
        frame = pl.read_csv(
            path,
            separator="\t",
            infer_schema=False,
            quote_char=None,
            truncate_ragged_lines=True,
            glob=False,
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RecarenaError(f"{path}: not a RecBole atomic file ({exc})") from None
    renamed: dict[str, str] = {}
    for column in frame.columns:
        name, _, kind = column.partition(":")
        if not kind:
            raise RecarenaError(f"{path}: header column {column!r} has no ':type' (RecBole format)")
        if name in renamed.values():  # was: "column 'rating' is duplicate", naming no file
            raise RecarenaError(
                f"{path} line 1: the header names column {name!r} twice (which one is meant?)"
            )
        renamed[column] = name
    return frame.rename(renamed)


def _id_keys(ids: np.ndarray, column: pl.Series) -> pl.Series:
    """``ids`` (from :func:`_ids` of ``column``) as a polars Series, cheaply: integer ids as
    they are, text ids as the column's stripped text they were made of (numpy's text arrays
    convert slowly)."""
    if ids.dtype.kind == "i":
        return pl.Series(ids)
    return column.cast(pl.String).str.strip_chars()


def _ids(series: pl.Series) -> np.ndarray:
    """Integer ids when every token is a whole number (smaller and faster), strings otherwise;
    text ids lose the spaces around them ('1, 2' is ids 1 and 2, as MovieLens's are). A whole
    number written as a float ('1.0', '1e1': a tool that wrote a column with gaps as floats) is
    that integer, as in a MovieLens release: was text, so '1' and '1.0' were two users."""
    if series.dtype == pl.String:
        series = series.str.strip_chars()
    as_int = series.cast(pl.Int64, strict=False)
    if as_int.null_count() == series.null_count():
        return as_int.to_numpy()
    if series.null_count() == 0:
        as_float = series.cast(pl.Float64, strict=False)
        if as_float.null_count() == 0:
            values = as_float.to_numpy()
            if (np.abs(values) < _MAX_ID).all() and (values == np.floor(values)).all():
                return values.astype(np.int64)
    return series.to_numpy().astype(str)


def load_recbole(path: str | Path, name: str | None = None) -> InteractionData:
    """A RecBole atomic dataset: ``path`` is the ``.inter`` file or the dataset directory."""
    path = Path(path)
    if path.suffix == ".inter":
        inter_path, name = path, name or path.stem
    else:
        name = name or path.name
        inter_path = path / f"{name}.inter"
    _require(inter_path.parent, "RecBole dataset directory")
    _require(inter_path, "RecBole interactions file")
    frame = _read_atomic(inter_path)
    for needed in ("user_id", "item_id"):
        if needed not in frame.columns:
            raise RecarenaError(f"{inter_path}: no '{needed}' column; found {frame.columns}")
    frame = _without_blank_lines(frame, inter_path)
    timed = ("timestamp",) if "timestamp" in frame.columns else ()
    numbers = (*timed, *(("rating",) if "rating" in frame.columns else ()))
    rated = "rating" if "rating" in frame.columns else None
    frame = _checked_columns(
        frame, inter_path, ("user_id", "item_id", *timed), numbers, rating=rated
    )
    if timed:
        _check_seconds(frame, "timestamp", inter_path)
    timestamp = (
        frame["timestamp"].cast(pl.Float64).to_numpy()
        if "timestamp" in frame.columns
        else np.arange(frame.height, dtype=np.float64)
    )
    rating = frame["rating"].cast(pl.Float32).to_numpy() if "rating" in frame.columns else None
    item_ids = _ids(frame["item_id"])
    items = _empty_items()
    item_path = inter_path.with_suffix(".item")
    if _beside(item_path):
        table = _without_blank_lines(_read_atomic(item_path), item_path)
        title = next((c for c in ("movie_title", "title", "name") if c in table.columns), None)
        genres = next((c for c in ("class", "genre", "genres") if c in table.columns), None)
        year = next((c for c in ("release_year", "year") if c in table.columns), None)
        items = pl.DataFrame(
            {
                "item": _ids(table["item_id"]),
                "title": table[title] if title else table["item_id"],
                "genres": (
                    table[genres].fill_null("").str.split(" ").list.filter(pl.element() != "")
                    if genres
                    else [[] for _ in range(table.height)]
                ),
                "year": (
                    table[year].cast(pl.Int32, strict=False)
                    if year
                    else pl.Series([None] * table.height, dtype=pl.Int32)
                ),
            },
            schema_overrides={"genres": pl.List(pl.String), "year": pl.Int32},
        )
        if items["item"].dtype != pl.Int64 and item_ids.dtype.kind == "i":
            item_ids = item_ids.astype(str)
    return InteractionData(
        name=name,
        user=_ids(frame["user_id"]),
        item=item_ids,
        timestamp=timestamp,
        rating=rating,
        items=items,
        licence="see the dataset's own licence",
        source=str(inter_path),
    )


# ------------------------------------------------------------------------- generic CSV/Parquet
@dataclass(frozen=True)
class Columns:
    """Column names of a generic interactions file (rating and click are both optional)."""

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    rating: str | None = "rating"
    click: str | None = "click"
    title: str | None = "title"
    genres: str | None = "genres"
    genre_separator: str = "|"


def load_interactions(path: str | Path, columns: Columns | None = None) -> InteractionData:
    """A generic interactions CSV or Parquet file, one row per event.

    Optional ``title``/``genres`` columns become the item table (first row per item wins).
    A ``click`` column marks exposures without a click (0/false); without it every row is a
    consumption.
    """
    path = Path(path)
    cols = columns or Columns()
    _require(path, "interactions file")
    if path.is_dir():  # polars read the folder's files as one glob: 'schema names differ'
        raise RecarenaError(
            f"{path} is a folder; the csv format reads one interactions file (.csv or .parquet): "
            "give the file, or leave --format out for a MovieLens or RecBole folder"
        )
    if not path.is_file():  # a pipe or a device: polars would block reading it, deaf to signals
        raise RecarenaError(f"{path}: not a file (a pipe or a device)")
    if path.suffix != ".parquet" and path.is_file():
        with path.open("rb") as stream:
            check_narrow_text(path, stream.read(4096))
    try:
        # a CSV is read as text, so that a bad cell is quoted as the file holds it (schema
        # inference read '1e999' as inf) and a column whose type changes past the rows polars
        # infers from is a named cell, not 'could not parse ... as dtype i64' naming no line
        frame = (
            pl.read_parquet(path, glob=False)
            if path.suffix == ".parquet"
            else pl.read_csv(path, infer_schema=False, glob=False)
        )
    except pl.exceptions.NoDataError:
        raise RecarenaError(f"{path}: the file is empty") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        if path.suffix != ".parquet":  # was polars' message, naming no line (and some of its
            # messages run over several lines)
            raise RecarenaError(f"{path} {_bad_line(path, movielens=False)}") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecarenaError(f"{path}: cannot read interactions ({reason})") from None
    required = (cols.user, cols.item, cols.timestamp)
    lines: Lines = 2  # a Parquet file's rows are named as rows
    if path.suffix != ".parquet":
        frame = _checked_header(frame, path, required, ("user", "item", "timestamp"))
        lines = _row_lines(frame)
        frame = _without_blank_lines(frame, path, lines)
    for role in ("user", "item", "timestamp"):
        name = getattr(cols, role)
        if name not in frame.columns:
            raise RecarenaError(f"{path}: no {role} column {name!r}; found {frame.columns}")

    def optional(name: str | None) -> str | None:
        return name if name and name in frame.columns else None

    rating_col, click_col = optional(cols.rating), optional(cols.click)
    title_col, genres_col = optional(cols.title), optional(cols.genres)
    kind = frame[cols.timestamp].dtype
    if kind == pl.Date or isinstance(kind, pl.Datetime):  # a Parquet file's dates: was 'not a
        # number'; seconds since 1970 (UTC for a time zone), as the timestamps are everywhere
        seconds = pl.col(cols.timestamp).dt.epoch("ms").cast(pl.Float64) / 1000.0
        frame = frame.with_columns(seconds.alias(cols.timestamp))
    numbers = (cols.timestamp, *([rating_col] if rating_col else []))
    frame = _checked_columns(frame, path, required, numbers, click_col, lines, rating_col)
    _check_seconds(frame, cols.timestamp, path, lines)
    items = _empty_items()
    if title_col or genres_col:
        first = frame.unique(subset=cols.item, keep="first", maintain_order=True)
        genres = (
            first[genres_col].cast(pl.String).fill_null("").str.split(cols.genre_separator)
            if genres_col
            else pl.Series([[] for _ in range(first.height)], dtype=pl.List(pl.String))
        )
        items = pl.DataFrame(
            {
                "item": _ids(first[cols.item].cast(pl.String)),
                "title": first[title_col].cast(pl.String) if title_col else first[cols.item],
                "genres": genres.list.filter(pl.element() != ""),
                "year": pl.Series([None] * first.height, dtype=pl.Int32),
            }
        )
    user, item = _ids(frame[cols.user].cast(pl.String)), _ids(frame[cols.item].cast(pl.String))
    consumed = frame[click_col].to_numpy() if click_col else np.ones(frame.height, bool)
    _check_events_once(
        path, lines, _id_keys(user, frame[cols.user]), _id_keys(item, frame[cols.item]),
        frame[cols.timestamp], consumed,
    )  # fmt: skip
    return InteractionData(
        name=path.stem,
        user=user,
        item=item,
        timestamp=frame[cols.timestamp].to_numpy(),
        rating=frame[rating_col].cast(pl.Float32).to_numpy() if rating_col else None,
        click=frame[click_col].to_numpy() if click_col else None,
        items=items,
        licence="see the dataset's own licence",
        source=str(path),
    )


def _check_events_once(
    path: Path,
    lines: Lines,
    user: pl.Series,
    item: pl.Series,
    time: pl.Series,
    consumed: np.ndarray,
) -> None:
    """A generic log's consumption written twice (same user, item and second: a file appended
    to itself, an export run twice) is one error naming both lines. Was: read as two, so a
    held-out movie was a training one too, which every recommender (never showing a user what
    they consumed) then missed: fidelity's real NDCG@10 ranked random first. A re-watch at
    another time, and an exposure (click 0) beside its click, are events of their own. Hashed
    by polars: numpy's sort of text ids took 10 s for 3M rows."""
    keys = pl.DataFrame({"user": user, "item": item, "time": time}).with_row_index("row")
    keys = keys.filter(pl.Series(consumed))
    repeats = keys.filter(~pl.struct("user", "item", "time").is_first_distinct())
    if repeats.height == 0:
        return
    again = repeats.row(0, named=True)  # rows keep file order: the first line that repeats
    first = keys.filter(
        (pl.col("user") == again["user"])
        & (pl.col("item") == again["item"])
        & (pl.col("time") == again["time"])
    )["row"][0]
    earlier = _place(path, int(first), lines).removeprefix(f"{path} ")
    raise RecarenaError(
        f"{_place(path, int(again['row']), lines)}: user {again['user']} consumed item "
        f"{again['item']} at {_number(again['time'])} again (first on {earlier}); a log holds "
        "each event once (was the file appended to itself?)"
    )


_CLICKS = {"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False}
"""What a generic file's click column may hold, as text (any case): 1/0 or true/false."""


def _checked_columns(
    frame: pl.DataFrame,
    path: Path,
    required: Sequence[str],
    numbers: Sequence[str],
    click: str | None = None,
    lines: Lines = 2,
    rating: str | None = None,
) -> pl.DataFrame:
    """A generic interactions file's columns checked cell by cell, each problem one error naming
    the file and the line (a CSV or RecBole file; a Parquet file's row): an empty ``required``
    cell (user, item, timestamp), an id that reads as a number but not a finite one ('nan',
    'inf': a float column's NaN), a cell of ``numbers`` that breaks :func:`_as_numbers`'s rule,
    a click that is not 1/0 or true/false, and a ``rating`` of a consumption (a click, or any
    row of a file without a click column) off the 0.5-5 star scale or empty: only an exposure
    (click 0) may be without one. Was: an empty one read as NaN, which fidelity's check 1
    counted as not liked without a word, and one off the scale named by the calibration as an
    interaction of fidelity's training split. Returns the frame with ``numbers`` as Float64
    and ``click`` as Boolean."""
    for column in required:
        text = frame[column].cast(pl.String).str.strip_chars()
        empty = np.flatnonzero((text.is_null() | (text == "")).to_numpy())
        if empty.size:
            raise RecarenaError(f"{_place(path, int(empty[0]), lines)}: {column} is empty")
        if column in numbers:
            continue
        infinite = ~np.isfinite(text.cast(pl.Float64, strict=False).fill_null(0.0).to_numpy())
        if infinite.any():  # a token such as 'u7' is an id; NaN is not one
            row = int(np.flatnonzero(infinite)[0])
            raise RecarenaError(
                f"{_place(path, row, lines)}: {column} {frame[column].cast(pl.String)[row]!r} is "
                "not a finite number (not an id)"
            )
    may_be_empty = [c for c in numbers if c not in required]
    frame = _as_numbers(frame, numbers, path, first_line=lines, may_be_empty=may_be_empty)
    if click:
        text = frame[click].cast(pl.String).str.strip_chars().str.to_lowercase()
        clicked = text.replace_strict(_CLICKS, default=None, return_dtype=pl.Boolean)
        bad = np.flatnonzero(clicked.is_null().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise RecarenaError(
                f"{_place(path, row, lines)}: {click} {frame[click].cast(pl.String)[row]!r} is not "
                "a click (1/0 or true/false)"
            )
        frame = frame.with_columns(clicked.alias(click))
    if rating is not None:
        consumed = frame[click].to_numpy() if click else np.ones(frame.height, bool)
        stars = frame[rating].to_numpy()  # null: NaN, outside neither bound
        off = np.flatnonzero(consumed & ((stars < 0.5) | (stars > 5)))
        if off.size:  # was the calibration's 'interaction N' of fidelity's training split,
            row = int(off[0])  # and never found among the held-out rows
            raise RecarenaError(
                f"{_place(path, row, lines)}: {rating} {_number(stars[row])} is outside the "
                "0.5-5 star scale the calibration fits (rescale the ratings, or leave the "
                "rating column out)"
            )
        unrated = frame[rating].is_null().to_numpy() & consumed
        if unrated.any():
            place = _place(path, int(np.flatnonzero(unrated)[0]), lines)
            raise RecarenaError(
                f"{place}: {rating} is empty on a click ({click} 1); only an exposure ({click} 0) "
                "may be without a rating"
                if click
                else f"{place}: {rating} is empty; with no click column every row is a "
                "consumption, and only an exposure (click 0) may be without a rating (a log "
                "without ratings leaves the rating column out)"
            )
    return frame


# ----------------------------------------------------------------------------------- dispatch
_RELEASE_FILES = {
    "movies.csv": "movie list",
    "movies.dat": "movie list",
    "u.item": "movie list",
    "users.dat": "user list",
    "u.user": "user list",
    "tags.csv": "tags",
    "tags.dat": "tags",
    "links.csv": "links to IMDb and TMDB",
    "genome-scores.csv": "tag genome",
    "genome-tags.csv": "tag genome",
    "u.genre": "genre list",
}
"""Files of a MovieLens release that are not its ratings, by name, and what they hold."""

_MOVIELENS_HEADER = ("userid", "movieid", "rating", "timestamp")


def _movielens_header(path: Path) -> bool:
    """Whether a .csv file's first line is a MovieLens ratings header (userId, movieId, rating,
    timestamp, in any letters, with spaces, gzip-compressed or not): such a file given alone
    (no movies.csv beside it) was read as a generic file, 'has no user column user'."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4096)
        if head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as packed:
                head = packed.read(4096)
    except (OSError, EOFError, zlib.error):
        return False
    first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("latin-1")
    names = {name.strip().strip('"').lower() for name in first.split(",")}
    return set(_MOVIELENS_HEADER) <= names


def _not_the_ratings(path: Path) -> None:
    """A release's other file (movies.csv, users.dat, ...) given as the dataset is named as
    what it is (it was read as ratings: 'expected 4 fields')."""
    what = _RELEASE_FILES.get(path.name)
    if what is not None and path.is_file():
        raise RecarenaError(
            f"{path} is a MovieLens release's {what}, not its ratings; give the release's "
            f"folder ({path.parent}) or its ratings file"
        )


_FORMAT_FILE = {
    "movielens": ("a ratings.csv", lambda path: path.suffix == ".csv"),
    "movielens-dat": ("a ratings.dat", lambda path: path.suffix == ".dat"),
    "movielens-100k": ("a u.data", lambda path: path.name == "u.data"),
    "recbole": ("a <name>.inter", lambda path: path.suffix == ".inter"),
}
"""The file each release format reads when it is given a file rather than a folder."""


def _check_file_fits(path: Path, fmt: Format) -> None:
    """A file given with a format that reads another kind of file, or a folder, is named with
    the format it reads as. Was: its loader took the file for a folder ('not found:
    ratings.csv/ratings.dat; download MovieLens', of a release at hand), or read a movie list
    as ratings. A generic file (format csv) may have any name."""
    if fmt not in _FORMAT_FILE:
        return
    if fmt != "recbole":
        _not_the_ratings(path)
    wanted, fits = _FORMAT_FILE[fmt]
    if fits(path):
        return
    try:
        other: str | None = detect_format(path)
    except RecarenaError:
        other = None
    hint = f"; it reads as format {other!r}: leave --format out, or give that one" if other else ""
    raise RecarenaError(
        f"{path}: format {fmt!r} reads {wanted} file or a release's folder, not this file{hint}"
    )


def _check_readable(path: Path) -> None:
    """A dataset file the user may not read is named as such before its format is guessed from
    its first bytes or name. Was: an unreadable release .zip 'cannot tell the format ... (no
    ratings.csv ...); pass --format', which no format fixes."""
    if not path.is_file():
        return
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise RecarenaError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def detect_format(path: Path) -> Format:
    """Guess a path's format; ambiguous paths need ``--format``."""
    _check_readable(path)
    _not_the_ratings(path)
    if path.is_dir():
        for name in ("ratings.csv", "movies.csv", "ratings.dat", "movies.dat", "u.data"):
            check_link(path / name, "dataset file")
    if path.suffix == ".inter" or (path.is_dir() and (path / f"{path.name}.inter").exists()):
        return "recbole"
    if path.is_dir() and (path / "ratings.csv").exists():
        return "movielens"
    if path.is_dir() and any((path / f).exists() for f in ("ratings.dat", "movies.dat")):
        return "movielens-dat"
    if path.is_dir() and (path / "movies.csv").exists():
        return "movielens"
    if path.name == "u.data" or (path.is_dir() and (path / "u.data").exists()):
        return "movielens-100k"
    if path.suffix == ".dat":
        return "movielens-dat"
    if path.name == "ratings.csv" and (path.parent / "movies.csv").exists():
        return "movielens"
    if path.suffix == ".csv" and path.is_file() and _movielens_header(path):
        return "movielens"
    if path.suffix in (".csv", ".parquet"):
        return "csv"
    _where_the_release_is(path)
    inside = (
        f"no ratings.csv, ratings.dat, u.data or <name>.inter in it{_renamed_ratings(path)}"
        if path.is_dir()  # a file was said to hold none of them, as if it were a folder
        else "a file, not named *.csv, *.parquet, *.dat, *.inter, u.data or *.zip"
    )
    raise RecarenaError(
        f"cannot tell the format of {path} ({inside}); pass "
        "--format movielens|movielens-dat|movielens-100k|recbole|csv "
        f"(MovieLens releases: {MOVIELENS_PAGE})"
    )


def _renamed_ratings(directory: Path) -> str:
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


def releases_inside(path: Path) -> list[Path]:
    """The child folders of ``path`` that hold a release's ratings file, when ``path`` holds
    none itself (the folder a release's zip was unpacked into: ``data/ml-1m/ml-1m``)."""
    if not path.is_dir() or any((path / name).exists() for name in RATINGS_FILES):
        return []
    try:
        children = sorted(path.iterdir())
    except OSError:
        return []
    return [
        child
        for child in children
        if child.is_dir() and any((child / name).exists() for name in RATINGS_FILES)
    ]


def release_folder(path: Path) -> Path:
    """``path``, or the one release folder inside it: a release unpacked one level down is read
    as it is (it was refused with the path to give, which is the only one it can mean)."""
    inside = releases_inside(path)
    return inside[0] if len(inside) == 1 else path


def _where_the_release_is(path: Path) -> None:
    """A folder holding several releases' folders and none itself: which ones (it was 'cannot
    tell the format ... pass --format', which no format fixes). One release inside is read
    (:func:`release_folder`), and so is a release's zip (simulator/data/archives.py)."""
    inside = releases_inside(path)
    if len(inside) > 1:
        shown = ", ".join(child.name for child in inside[:4])
        raise RecarenaError(
            f"{path} holds no ratings.csv, ratings.dat or u.data, but several releases' "
            f"folders do ({shown}): give one of them"
        )


def _check_format_fits(directory: Path, fmt: Format) -> None:
    """A folder given with a format whose file it lacks, while it reads as another format, is
    named with the format it reads as (was: '... ratings.dat not found; download MovieLens'
    for ML-25M's folder given --format movielens-dat, a release the user has)."""
    needed = {"movielens-dat": "ratings.dat", "movielens-100k": "u.data"}.get(fmt)
    if fmt == "recbole":
        needed = f"{directory.name}.inter"
    if needed is None or (directory / needed).exists():
        return
    try:
        other = detect_format(directory)
    except RecarenaError:
        return
    if other != fmt:
        raise RecarenaError(
            f"{directory} holds no {needed} for format {fmt!r}, but reads as format {other!r}: "
            "leave --format out, or give that one"
        )


def load_dataset(
    dataset: str | Path, fmt: Format = "auto", columns: Columns | None = None
) -> InteractionData:
    """``ml-100k`` (from the RecBole package) or a path in one of the supported formats."""
    if str(dataset) == "ml-100k" and fmt in ("auto", "movielens", "recbole"):
        return load_ml100k()  # RecBole's copy is a RecBole atomic dataset
    if str(dataset) == "ml-100k" and not Path(dataset).exists():  # was: 'not found: ml-100k;
        # download MovieLens', for the copy that is installed
        raise RecarenaError(
            f"dataset 'ml-100k' names the copy inside RecBole, which --format {fmt} does not "
            "read; leave --format out (or give a folder of the release)"
        )
    if not str(dataset).strip():  # Path("") is the working directory
        raise RecarenaError(
            "dataset: an empty path; give a dataset folder or file, or 'ml-100k' for the copy "
            "inside RecBole"
        )
    path = Path(dataset)
    check_link(path, "dataset")
    _check_readable(path)
    if is_zip(path) and fmt == "csv":  # was: 'ml.zip is a folder', of its unpacked release
        raise RecarenaError(
            f"{path} is a zip archive; the csv format reads one interactions file (.csv or "
            ".parquet): unpack it and give the file, or leave --format out for a MovieLens zip"
        )
    if is_zip(path):  # the archive GroupLens ships: its release, unpacked for the loader
        with unpacked_release(path) as release:
            data = load_dataset(release.folder, fmt, columns)
            return replace(data, source=release.named(data.source))
    if fmt in ("auto", "movielens", "movielens-dat", "movielens-100k"):
        path = release_folder(path)
    if fmt == "auto":
        if not path.exists():
            raise RecarenaError(
                f"dataset not found: {path} (use 'ml-100k' for the copy inside RecBole, or "
                f"download MovieLens from {MOVIELENS_PAGE})"
            )
        fmt = detect_format(path)
    elif path.is_dir():
        _check_format_fits(path, fmt)
    elif path.is_file():
        _check_file_fits(path, fmt)
    if fmt == "movielens":
        return load_movielens(path)
    if fmt == "movielens-dat":
        return load_movielens_dat(path)
    if fmt == "movielens-100k":
        return load_movielens_100k(path)
    if fmt == "recbole":
        return load_recbole(path)
    return load_interactions(path, columns)
