"""Numbers and lines read from dataset files, shared by the loaders so that one rule holds.

Every number read from any format passes one rule (:func:`as_numbers`), and every problem is
one RecarenaError naming the file and its line (a Parquet file's row): :data:`Lines` says where
a frame's rows are in the file they were read from.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from recarena.simulator.core.errors import RecarenaError

_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b")


Lines = int | np.ndarray
"""Where a frame's rows are in the file it was read from: the line of its first row when each
row is one line, else each row's own first line (:func:`row_lines`)."""


def _line(lines: Lines, row: int) -> int:
    """The file line of a frame's ``row`` (:data:`Lines`)."""
    return lines + row if isinstance(lines, int) else int(lines[row])


def row_lines(frame: pl.DataFrame, first_line: int = 2) -> Lines:
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

LATEST_SECONDS = _MILLISECONDS
"""The latest Unix time in seconds any reader takes (readers outside this module)."""

PAST_YEAR_5000 = (
    "is after the year 5000 read as seconds: milliseconds? (timestamps are seconds since 1970; "
    "divide by 1000)"
)


def check_seconds(frame: pl.DataFrame, column: str, path: Path, lines: Lines = 2) -> None:
    """A generic or RecBole file's timestamps are seconds since 1970 as a MovieLens release's
    are (calibration splits sessions at 30-minute gaps and counts visits a day), so one past the
    year 5000 (milliseconds) is named by file and line as it is in a MovieLens file. Was:
    calibrated without a word, every visit rate 1000 times too low."""
    time = frame[column].to_numpy()
    late = np.flatnonzero(time > _MILLISECONDS)
    if late.size:
        row = int(late[0])
        raise RecarenaError(
            f"{place(path, row, lines)}: {column} {number(time[row])} is after the year 5000 "
            "read as seconds: milliseconds? (timestamps are seconds since 1970; divide by 1000)"
        )


def check_ratings(
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
                f"{path} line {_line(first_line, row)}: {column} {number(frame[row, column])} "
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
            f"{path} line {_line(first_line, again)}: user {number(u)} rated movie "
            f"{number(i)} again (first on line {_line(first_line, first)}); a MovieLens release "
            "holds one rating per user and movie"
        )


def number(value: float) -> str:
    """A parsed number as the file most likely wrote it (964982703000, not 9.64983e+11)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else f"{value:g}"


def bad_line(path: Path, movielens: bool = True) -> str:
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


def checked_header(
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


def finite_numbers(columns: Sequence[str], frame: pl.DataFrame) -> pl.DataFrame | None:
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


def without_blank_lines(frame: pl.DataFrame, path: Path, lines: Lines = 2) -> pl.DataFrame:
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


def place(path: Path, row: int, first_line: Lines) -> str:
    """Where a frame's ``row`` is in its file: a Parquet file's row (it has no lines), else the
    file's line (``first_line``: where the frame's rows are, :data:`Lines`)."""
    if path.suffix == ".parquet":
        return f"{path} row {row + 1}"
    return f"{path} line {_line(first_line, row)}"


def as_numbers(
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
                raise RecarenaError(f"{place(path, row, first_line)}: {column}{value} {text_of}")
        frame = frame.with_columns(values.alias(column))
    return frame


_MAX_ID = 2.0**53
"""Ids are read as float64 first: beyond 2^53 neighbouring integers are the same float."""


def integer_ids(frame: pl.DataFrame, column: str, path: Path, first_line: Lines = 1) -> np.ndarray:
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


def unique_ids(ids: np.ndarray, path: Path, what: str, first_line: Lines = 1) -> np.ndarray:
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


def ids(series: pl.Series) -> np.ndarray:
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


_CLICKS = {"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False}
"""What a generic file's click column may hold, as text (any case): 1/0 or true/false."""


def checked_columns(
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
    'inf': a float column's NaN), a cell of ``numbers`` that breaks :func:`as_numbers`'s rule,
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
            raise RecarenaError(f"{place(path, int(empty[0]), lines)}: {column} is empty")
        if column in numbers:
            continue
        infinite = ~np.isfinite(text.cast(pl.Float64, strict=False).fill_null(0.0).to_numpy())
        if infinite.any():  # a token such as 'u7' is an id; NaN is not one
            row = int(np.flatnonzero(infinite)[0])
            raise RecarenaError(
                f"{place(path, row, lines)}: {column} {frame[column].cast(pl.String)[row]!r} is "
                "not a finite number (not an id)"
            )
    may_be_empty = [c for c in numbers if c not in required]
    frame = as_numbers(frame, numbers, path, first_line=lines, may_be_empty=may_be_empty)
    if click:
        text = frame[click].cast(pl.String).str.strip_chars().str.to_lowercase()
        clicked = text.replace_strict(_CLICKS, default=None, return_dtype=pl.Boolean)
        bad = np.flatnonzero(clicked.is_null().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise RecarenaError(
                f"{place(path, row, lines)}: {click} {frame[click].cast(pl.String)[row]!r} is not "
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
                f"{place(path, row, lines)}: {rating} {number(stars[row])} is outside the "
                "0.5-5 star scale the calibration fits (rescale the ratings, or leave the "
                "rating column out)"
            )
        unrated = frame[rating].is_null().to_numpy() & consumed
        if unrated.any():
            where = place(path, int(np.flatnonzero(unrated)[0]), lines)
            raise RecarenaError(
                f"{where}: {rating} is empty on a click ({click} 1); only an exposure ({click} 0) "
                "may be without a rating"
                if click
                else f"{where}: {rating} is empty; with no click column every row is a "
                "consumption, and only an exposure (click 0) may be without a rating (a log "
                "without ratings leaves the rating column out)"
            )
    return frame
