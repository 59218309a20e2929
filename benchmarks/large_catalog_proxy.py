"""A stand-in for a 1.1M-rating sample of a large MovieLens release, to time ``recarena fidelity``.

    python benchmarks/large_catalog_proxy.py OUT_DIR [--users 8000] [--movies 62000] [--seed 0]

``fidelity`` samples ML-10M and larger releases to about 1.1M ratings by whole users, which
bounds the ratings but not the movies: the sampled users of ML-20M or ML-25M (27,000 and 62,000
movies) still rate tens of thousands of them, and the arms' costs that grow with the catalog
(a sequence model's softmax, item-kNN's co-occurrences, the simulation's score matrices) grow
with it. The copies of ml-latest-small that ml1m_proxy.py writes keep its 9,700 movies, so they
cannot show this. Here ``--users`` users (activity log-normal around 90 ratings, 20 to 3,000)
rate movies drawn from a long-tailed popularity (log-normal weights, sigma 2.3, over
``--movies`` movies); with the defaults, ~990,000 ratings of ~38,000 distinct movies, with
half-star ratings, timestamps and three genres at most per movie, written as ``ratings.csv`` and
``movies.csv`` (the ml-latest layout). Tastes are random, so the fidelity figures of a run on it
say nothing: use it for time and memory only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--movies", type=int, default=62_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    weights = np.exp(rng.normal(0.0, 2.3, args.movies))
    popularity = weights / weights.sum()
    activity = np.clip(rng.lognormal(np.log(90), 1.0, args.users), 20, 3000).astype(int)
    users, movies, times = [], [], []
    for user, count in enumerate(activity, start=1):
        rated = np.unique(rng.choice(args.movies, count, p=popularity))
        rng.shuffle(rated)
        users.append(np.full(rated.size, user))
        movies.append(rated + 1)
        start = rng.integers(820_000_000, 1_560_000_000)  # 1996-2019, as ML-25M
        times.append(start + np.sort(rng.integers(0, 400 * 86_400, rated.size)))
    movie = np.concatenate(movies)
    bias = rng.normal(0.0, 0.6, args.movies)
    stars = np.round((3.5 + bias[movie - 1] + rng.normal(0.0, 0.9, movie.size)) * 2) / 2
    args.out.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        {
            "userId": np.concatenate(users),
            "movieId": movie,
            "rating": np.clip(stars, 0.5, 5.0),
            "timestamp": np.concatenate(times),
        }
    ).write_csv(args.out / "ratings.csv")
    genres = [
        "|".join(rng.choice(GENRES, rng.integers(1, 4), replace=False)) for _ in range(args.movies)
    ]
    titles = [f"Movie {m} ({1920 + m % 100})" for m in range(1, args.movies + 1)]
    pl.DataFrame(
        {"movieId": np.arange(1, args.movies + 1), "title": titles, "genres": genres}
    ).write_csv(args.out / "movies.csv")
    print(
        f"wrote {args.out}: {movie.size:,} ratings, {args.users:,} users, "
        f"{np.unique(movie).size:,} distinct movies rated"
    )


if __name__ == "__main__":
    main()
