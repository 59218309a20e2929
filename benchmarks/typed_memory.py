"""Typed vs TF-IDF memory on real histories: prompt tokens per page and decision consistency.

    python benchmarks/typed_memory.py /work/shared/data/ml-latest-small --users 150

Each user's MovieLens ratings are replayed in time order into both memories as the LLM user
writes them ("watched T (G1/G2), rated r/5"). At each of the user's last ``--pages`` ratings a
page of 10 films (the rated one and 9 others, in the slate's "Title (genres)" form) queries
each memory with the panel defaults (30 entries, 3 retrieved). Reported per memory:

* tokens per page: retrieved text / 4 characters, and as a share of the full history's
  ("full context": every interaction so far in the prompt);
* decision consistency: a fixed reader turns the retrieved lines into a like / dislike call on
  the rated film (mean rating of the evidence about its genres >= 3.5; no evidence: like) and
  we count how often that call equals the same reader's call on the full history; and how
  often it matches the user's actual rating (>= 4).

The reader is a deterministic stand-in for the LLM, so these figures measure how much of the
decision-relevant information each memory keeps per token, not what a given model would do.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recarena.agents.users.llm_memory import UserMemory
from recarena.agents.users.typed_memory import TypedMemory, parse_episode

_FACT = re.compile(r"^(.+?): \w+, ([\d.]+)/5 over (\d+) film")


def evidence(lines: list[str], genres: list[str]) -> float | None:
    """Mean rating of what the lines say about ``genres`` (None: nothing)."""
    total, weight = 0.0, 0.0
    for line in lines:
        fact = _FACT.match(line)
        if fact is not None:
            if fact.group(1) in genres:
                total += float(fact.group(2)) * int(fact.group(3))
                weight += int(fact.group(3))
            continue
        parsed = parse_episode(line)
        if parsed is not None and set(parsed[0]) & set(genres):
            total += parsed[1]
            weight += 1
    return total / weight if weight else None


def likes(lines: list[str], genres: list[str]) -> bool:
    mean = evidence(lines, genres)
    return True if mean is None else mean >= 3.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--users", type=int, default=150)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ratings = pd.read_csv(args.data / "ratings.csv").sort_values(["userId", "timestamp"])
    movies = pd.read_csv(args.data / "movies.csv").set_index("movieId")
    genres = {m: g.split("|") for m, g in movies["genres"].items()}
    titles = movies["title"].to_dict()
    rng = np.random.default_rng(args.seed)
    counts = ratings.groupby("userId").size()
    eligible = counts[counts >= 50].index.to_numpy()
    chosen = rng.choice(eligible, size=min(args.users, eligible.size), replace=False)
    all_movies = movies.index.to_numpy()
    stats: dict[str, list[float]] = {
        f"{m}_{s}": [] for m in ("tfidf", "typed", "full") for s in ("tokens", "agree", "right")
    }
    for user in chosen.tolist():
        rows = ratings[ratings["userId"] == user]
        stores = {"tfidf": UserMemory(30), "typed": TypedMemory(30)}
        history: list[str] = []
        n = len(rows)
        for index, (movie, rating) in enumerate(zip(rows["movieId"], rows["rating"], strict=True)):
            line = f"watched {titles[movie]} ({'/'.join(genres[movie])}), rated {round(rating)}/5"
            if index >= n - args.pages and history:
                others = rng.choice(all_movies, 9, replace=False)
                slate = [f"{titles[m]} ({'/'.join(genres[m])})" for m in [movie, *others]]
                query = " ".join(slate)
                target = genres[movie]
                full_call = likes(history, target)
                liked = rating >= 4
                retrieved = {name: s.retrieve(query, 3) for name, s in stores.items()}
                retrieved["full"] = history
                for name, lines in retrieved.items():
                    call = likes(lines, target)
                    stats[f"{name}_tokens"].append(sum(len(x) + 3 for x in lines) / 4)
                    stats[f"{name}_agree"].append(float(call == full_call))
                    stats[f"{name}_right"].append(float(call == liked))
            for store in stores.values():
                store.add_interaction(line, float(index))
            history.append(line)
    full_tokens = np.mean(stats["full_tokens"])
    print(f"{len(chosen)} users, {len(stats['full_tokens'])} pages")
    for name in ("tfidf", "typed", "full"):
        tokens = np.mean(stats[f"{name}_tokens"])
        print(
            f"{name:>6}: {tokens:7.1f} memory tokens per page "
            f"({100 * tokens / full_tokens:5.1f}% of full context); "
            f"same call as full context {np.mean(stats[f'{name}_agree']):.3f}; "
            f"call matches the rating {np.mean(stats[f'{name}_right']):.3f}"
        )


if __name__ == "__main__":
    main()
