"""MovieLens CSV releases: ``ratings.csv`` + ``movies.csv`` (latest-small, latest, 20M, 25M, 32M).

A folder given as one that holds a ``.dat`` or 100K release instead is read by that loader.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.file_checks import (
    beside,
    check_link,
    check_narrow_text,
    kind,
    renamed_ratings,
    require,
)
from recarena.simulator.data.interactions import (
    MOVIELENS_LICENCE,
    MOVIELENS_PAGE,
    InteractionData,
    empty_items,
    titled_items,
)
from recarena.simulator.data.movielens_100k import load_movielens_100k
from recarena.simulator.data.movielens_dat import load_movielens_dat
from recarena.simulator.data.parsing import (
    Lines,
    as_numbers,
    bad_line,
    check_ratings,
    checked_header,
    finite_numbers,
    integer_ids,
    row_lines,
    unique_ids,
    without_blank_lines,
)


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
        folded = {name.strip().lower(): name for name in header}  # as checked_header reads
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
    return finite_numbers([str(name) for name in named], frame)


def _read_csv_checked(
    path: Path, required: tuple[str, ...], numeric: tuple[str, ...], separator: str = ","
) -> tuple[pl.DataFrame, Lines]:
    """A CSV with a header, every column as text, ``numeric`` columns cast to Float64, and
    where its rows are in the file (:func:`row_lines`); every problem is one RecarenaError
    naming the file and the line (empty file, missing header column, wrong separator, invalid
    UTF-8, ragged line, non-numeric value, a blank line between rows); blank lines at the end
    are dropped."""
    if path.exists() and not path.is_file():
        raise RecarenaError(f"{path}: not a file ({kind(path)})")
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
        raise RecarenaError(f"{path} {bad_line(path)}") from None
    frame = checked_header(frame, path, required)
    lines = row_lines(frame)
    frame = without_blank_lines(frame, path, lines)
    return as_numbers(frame, numeric, path, first_line=lines), lines


def load_movielens(path: str | Path) -> InteractionData:
    """A MovieLens CSV release: ``path`` is its directory or its ``ratings.csv``."""
    path = Path(path)
    directory = path.parent if path.suffix == ".csv" else path
    ratings_path = path if path.suffix == ".csv" else path / "ratings.csv"
    require(directory, "MovieLens directory", True)
    check_link(ratings_path, "MovieLens ratings file")
    if not ratings_path.exists() and (directory / "ratings.dat").exists():
        return load_movielens_dat(directory)
    if not ratings_path.exists() and (directory / "u.data").exists():
        return load_movielens_100k(directory)
    if not ratings_path.exists():
        where = renamed_ratings(directory) or f"; download MovieLens from {MOVIELENS_PAGE}"
        raise RecarenaError(
            f"MovieLens ratings file not found: no {ratings_path.name}, ratings.dat or u.data in "
            f"{directory}{where}"
        )
    columns = ("userId", "movieId", "rating", "timestamp")
    ratings, lines = _read_csv_checked(ratings_path, columns, columns)
    check_ratings(ratings, ratings_path, columns, first_line=lines)
    items = empty_items()
    movies_path = directory / "movies.csv"
    if beside(movies_path):
        movies, movie_lines = _read_csv_checked(
            movies_path, ("movieId", "title", "genres"), ("movieId",)
        )
        items = titled_items(
            unique_ids(
                integer_ids(movies, "movieId", movies_path, first_line=movie_lines),
                movies_path,
                "movie",
                first_line=movie_lines,
            ),
            movies["title"],
            movies["genres"].str.split("|"),
        )
    return InteractionData(
        name=directory.name or "movielens",
        user=integer_ids(ratings, "userId", ratings_path, first_line=lines),
        item=integer_ids(ratings, "movieId", ratings_path, first_line=lines),
        timestamp=ratings["timestamp"].to_numpy(),
        rating=ratings["rating"].cast(pl.Float32).to_numpy(),
        items=items,
        licence=MOVIELENS_LICENCE,
        source=str(ratings_path),
    )
