"""An ML-1M-sized stand-in in the ``.dat`` format, to time ``recarena fidelity`` at 1M ratings.

    python benchmarks/ml1m_proxy.py OUT_DIR [--source ../shared/data/ml-latest-small]
        [--copies 12] [--keep 0.9] [--min-ratings 5] [--seed 0]

No 1M-rating MovieLens release is available on this machine, and the fidelity target for one
("finishes within 15 minutes") is about time, so this builds one of the same shape from the
redistributable ml-latest-small: movies with at least ``--min-ratings`` ratings (about 3,600,
ML-1M has 3,706), every user copied ``--copies`` times (12) under new ids (about 7,300 users, ML-1M
has 6,040), each copy keeping a random ``--keep`` share of the ratings with their timestamps
shifted by up to a day, stars rounded up to whole numbers (ML-1M has no half stars). It writes
``ratings.dat``, ``movies.dat`` and ``users.dat`` with ``::`` separators in latin-1, as ML-1M
ships them. The copies share tastes, so the figures of a fidelity run on it say nothing about
fidelity: use it for time and memory only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "ml-latest-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--keep", type=float, default=0.9)
    parser.add_argument("--min-ratings", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    ratings = pl.read_csv(args.source / "ratings.csv")
    movies = pl.read_csv(args.source / "movies.csv")
    counts = ratings.group_by("movieId").len()
    kept_movies = counts.filter(pl.col("len") >= args.min_ratings)["movieId"]
    ratings = ratings.filter(pl.col("movieId").is_in(kept_movies.to_list()))
    n_users = int(ratings["userId"].max())
    parts = []
    for copy in range(args.copies):
        keep = rng.random(ratings.height) < args.keep
        shift = rng.integers(0, 86_400, ratings.height)
        part = ratings.filter(pl.Series(keep)).with_columns(
            (pl.col("userId") + copy * n_users).alias("userId"),
            (pl.col("timestamp") + pl.Series(shift[keep])).alias("timestamp"),
            pl.col("rating").ceil().cast(pl.Int64).alias("rating"),
        )
        parts.append(part)
    out = pl.concat(parts).sort(["userId", "timestamp"])
    args.out.mkdir(parents=True, exist_ok=True)
    lines = (
        out["userId"].cast(pl.Utf8)
        + "::"
        + out["movieId"].cast(pl.Utf8)
        + "::"
        + out["rating"].cast(pl.Utf8)
        + "::"
        + out["timestamp"].cast(pl.Utf8)
    )
    (args.out / "ratings.dat").write_bytes(("\n".join(lines.to_list()) + "\n").encode("latin-1"))
    movies = movies.filter(pl.col("movieId").is_in(kept_movies.to_list()))
    movie_lines = [
        f"{m}::{t}::{g}" for m, t, g in movies.select("movieId", "title", "genres").iter_rows()
    ]
    text = "\n".join(movie_lines) + "\n"
    (args.out / "movies.dat").write_bytes(text.encode("latin-1", errors="replace"))
    users = np.unique(out["userId"].to_numpy())
    ages = np.array([1, 18, 25, 35, 45, 50, 56])
    user_lines = [
        f"{u}::{'MF'[int(rng.integers(2))]}::{ages[rng.integers(ages.size)]}::"
        f"{int(rng.integers(21))}::{int(rng.integers(10_000, 99_999))}"
        for u in users
    ]
    (args.out / "users.dat").write_bytes(("\n".join(user_lines) + "\n").encode("latin-1"))
    print(
        f"{args.out}: {out.height:,} ratings, {users.size:,} users, {movies.height:,} movies "
        "(ML-1M: 1,000,209 ratings, 6,040 users, 3,706 movies)"
    )


if __name__ == "__main__":
    main()
