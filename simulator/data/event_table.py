"""A generic interactions CSV or Parquet file, one row per event, with configurable columns.

The format for a log that is neither a MovieLens release nor a RecBole dataset; its column
names are a :class:`Columns`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.file_checks import check_narrow_text, require
from recarena.simulator.data.interactions import InteractionData, empty_items
from recarena.simulator.data.parsing import (
    Lines,
    bad_line,
    check_seconds,
    checked_columns,
    checked_header,
    ids,
    number,
    place,
    row_lines,
    without_blank_lines,
)


def _id_keys(ids: np.ndarray, column: pl.Series) -> pl.Series:
    """``ids`` (from :func:`ids` of ``column``) as a polars Series, cheaply: integer ids as
    they are, text ids as the column's stripped text they were made of (numpy's text arrays
    convert slowly)."""
    if ids.dtype.kind == "i":
        return pl.Series(ids)
    return column.cast(pl.String).str.strip_chars()


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
    require(path, "interactions file")
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
            raise RecarenaError(f"{path} {bad_line(path, movielens=False)}") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecarenaError(f"{path}: cannot read interactions ({reason})") from None
    required = (cols.user, cols.item, cols.timestamp)
    lines: Lines = 2  # a Parquet file's rows are named as rows
    if path.suffix != ".parquet":
        frame = checked_header(frame, path, required, ("user", "item", "timestamp"))
        lines = row_lines(frame)
        frame = without_blank_lines(frame, path, lines)
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
    frame = checked_columns(frame, path, required, numbers, click_col, lines, rating_col)
    check_seconds(frame, cols.timestamp, path, lines)
    items = empty_items()
    if title_col or genres_col:
        first = frame.unique(subset=cols.item, keep="first", maintain_order=True)
        genres = (
            first[genres_col].cast(pl.String).fill_null("").str.split(cols.genre_separator)
            if genres_col
            else pl.Series([[] for _ in range(first.height)], dtype=pl.List(pl.String))
        )
        items = pl.DataFrame(
            {
                "item": ids(first[cols.item].cast(pl.String)),
                "title": first[title_col].cast(pl.String) if title_col else first[cols.item],
                "genres": genres.list.filter(pl.element() != ""),
                "year": pl.Series([None] * first.height, dtype=pl.Int32),
            }
        )
    user, item = ids(frame[cols.user].cast(pl.String)), ids(frame[cols.item].cast(pl.String))
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
    earlier = place(path, int(first), lines).removeprefix(f"{path} ")
    raise RecarenaError(
        f"{place(path, int(again['row']), lines)}: user {again['user']} consumed item "
        f"{again['item']} at {number(again['time'])} again (first on {earlier}); a log holds "
        "each event once (was the file appended to itself?)"
    )
