"""The one container every loader returns, and what a command notes about it.

Calibration (agents/users/calibration.py) only ever sees :class:`InteractionData`, so adding a
format means adding a loader beside this module (dispatched by datasets.py) and nothing else.
Ids are kept as they appear in the file; calibration maps them to dense indices. The item and
user tables the MovieLens loaders build are made here, so that every release's are alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from recarena.simulator.data.parsing import check_ratings, integer_ids, number, unique_ids

MOVIELENS_PAGE = "https://grouplens.org/datasets/movielens/"
MOVIELENS_LICENCE = (
    "MovieLens data (GroupLens Research, University of Minnesota): research use only, no "
    "redistribution, cite Harper & Konstan (2015); see " + MOVIELENS_PAGE
)
Format = Literal["auto", "movielens", "movielens-dat", "movielens-100k", "recbole", "csv"]
FORMATS = ("auto", "movielens", "movielens-dat", "movielens-100k", "recbole", "csv")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


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
    items: pl.DataFrame = field(default_factory=lambda: empty_items())
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
    value = number(float(rated[0]))
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


def empty_items() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "item": pl.Int64,
            "title": pl.String,
            "genres": pl.List(pl.String),
            "year": pl.Int32,
        }
    )


NO_GENRES = "(no genres listed)"
"""What MovieLens's movie lists write for a movie without genres (ML-10M on): no genre."""


def titled_items(item: np.ndarray, title: pl.Series, genres: Any) -> pl.DataFrame:
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


def rated(
    name: str,
    ratings: pl.DataFrame,
    path: Path,
    items: pl.DataFrame,
    users: pl.DataFrame | None = None,
) -> InteractionData:
    """A MovieLens release from its checked ``user, item, rating, timestamp`` columns."""
    check_ratings(ratings, path, ("user", "item", "rating", "timestamp"), first_line=1)
    return InteractionData(
        name=name,
        user=integer_ids(ratings, "user", path),
        item=integer_ids(ratings, "item", path),
        timestamp=ratings["timestamp"].to_numpy(),
        rating=ratings["rating"].to_numpy().astype(np.float32),
        items=items,
        licence=MOVIELENS_LICENCE,
        users=users,
        source=str(path),
    )


def user_table(
    table: pl.DataFrame, path: Path, ages: np.ndarray, occupation: Any, persona: list[str]
) -> pl.DataFrame:
    """``InteractionData.users`` from a release's demographics file (1M's or 100K's)."""
    return pl.DataFrame(
        {
            "user": unique_ids(integer_ids(table, "user", path), path, "user"),
            "gender": table["gender"],
            "age": ages,
            "occupation": occupation,
            "zip": table["zip"],
            "persona": persona,
        }
    )
