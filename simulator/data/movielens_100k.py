"""MovieLens-100K: the release GroupLens ships, or ``ml-100k`` read in place from RecBole.

RecBole's copy is its atomic files inside ``recbole/dataset_example``. The package directory is
found with ``importlib.util.find_spec`` so RecBole itself is never imported (its import needs the
numpy shims of recommenders/recbole_support.py) and the data is never copied into the repo.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.file_checks import beside, require
from recarena.simulator.data.interactions import (
    MOVIELENS_LICENCE,
    MOVIELENS_PAGE,
    InteractionData,
    empty_items,
    rated,
    titled_items,
    user_table,
)
from recarena.simulator.data.movielens_dat import dat_fields, person
from recarena.simulator.data.parsing import integer_ids, unique_ids
from recarena.simulator.data.recbole_atomic import load_recbole


def recbole_ml100k_dir() -> Path:
    """Directory of the ML-100K atomic files inside the installed RecBole package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise RecarenaError(
            "ml-100k is read from the RecBole package, which is not installed; install recbole "
            f"or download MovieLens-100K from {MOVIELENS_PAGE}"
        )
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    return require(path / "ml-100k.inter", "ML-100K in the RecBole package", True).parent


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


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The genre flags of u.item, in order (its README; u.genre says the same when present)."""


def _ml100k_genres(directory: Path) -> tuple[str, ...]:
    """Genre names by flag position: from u.genre when the folder has it, else the README's."""
    listing = directory / "u.genre"
    if not beside(listing):
        return ML100K_GENRES
    table = dat_fields(listing, ("genre", "index"), ("index",), "genre list", separator="|")
    names = dict(zip(integer_ids(table, "index", listing).tolist(), table["genre"], strict=True))
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
    require(directory, "MovieLens-100K directory", True)
    ratings_path = directory / "u.data"
    fields = ("user", "item", "rating", "timestamp")
    ratings = dat_fields(ratings_path, fields, fields, "MovieLens ratings file", separator="\t")
    items = empty_items()
    items_path = directory / "u.item"
    if beside(items_path):
        genres = _ml100k_genres(directory)
        names = ("item", "title", "released", "video", "url", *(f"g{i}" for i in range(19)))
        movies = dat_fields(items_path, names, ("item",), separator="|", text_field="title")
        flags = np.column_stack(
            [movies[f"g{i}"].str.strip_chars().to_numpy() == "1" for i in range(19)]
        )
        items = titled_items(
            unique_ids(integer_ids(movies, "item", items_path), items_path, "movie"),
            movies["title"],
            [[genres[g] for g in np.flatnonzero(row) if g > 0] for row in flags],
        )
    users = None
    users_path = directory / "u.user"
    if beside(users_path):
        user_fields = ("user", "age", "gender", "occupation", "zip")
        table = dat_fields(users_path, user_fields, ("user", "age"), separator="|")
        ages = integer_ids(table, "age", users_path)
        jobs = table["occupation"]
        genders = table["gender"].to_list()
        personas = [
            f"a {person(g)} aged {a}, {job.strip() or 'other'}"
            for g, a, job in zip(genders, ages, jobs.to_list(), strict=True)
        ]
        users = user_table(table, users_path, ages, jobs, personas)
    return rated(directory.name or "ml-100k", ratings, ratings_path, items, users)
