"""Personas for LLM users: a short text plus named traits, from one of three sources.

* ``template``: traits read off the user's own simulated state (favourite genres from the taste
  vector, activity from the visit rate, diversity from how flat the taste is, novelty-seeking
  from the explore probability), so the LLM user and its rule twin want the same things.
* ``yaml``: personas written in the scenario, assigned to panel users in turn.
* ``data``: Agent4Rec-style traits derived from a real rating history (MovieLens
  ``ratings.csv`` with ``movies.csv`` beside it): activity (number of ratings), conformity (mean
  distance of the user's ratings from each movie's average), diversity (genre entropy) and
  favourite genres (most frequent among movies rated 4 or more).

Traits are bucketed into low / medium / high by population tertiles, as Agent4Rec does, because
a small model follows "watches often" better than "activity = 0.73".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recarena.agents.llm.item_text import topic_names
from recarena.agents.llm.prompts import render
from recarena.agents.users.population import UserState
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import PersonaSpec

MOVIELENS_DOWNLOAD = "https://grouplens.org/datasets/movielens/"
_FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Imani", "Jonas", "Kira",
    "Luis", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Wen", "Yusuf", "Zoe",
)  # fmt: skip
_ACTIVITY = {"low": "now and then", "medium": "a few times a week", "high": "almost every day"}
_DIVERSITY = {
    "low": "sticks to favourite genres",
    "medium": "mostly favourites with some variety",
    "high": "enjoys a wide variety of genres",
}
_NOVELTY = {
    "low": "prefers familiar kinds of films",
    "medium": "open to something new at times",
    "high": "loves discovering unfamiliar films",
}
_CONFORMITY = {
    "low": "trusts own taste over ratings",
    "medium": "glances at ratings",
    "high": "goes for well-rated, popular picks",
}


@dataclass(frozen=True)
class Persona:
    user_id: int
    source: str
    text: str
    traits: dict[str, Any]


def tertiles(values: np.ndarray) -> list[str]:
    """low / medium / high by the population's own tertiles."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return []
    low, high = np.quantile(values, [1 / 3, 2 / 3])
    return ["low" if v <= low else "high" if v > high else "medium" for v in values]


def _entropy(weights: np.ndarray) -> np.ndarray:
    p = weights / np.maximum(weights.sum(axis=-1, keepdims=True), 1e-12)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)


def _text(user: int, favourites: list[str], disliked: str, traits: dict[str, str]) -> str:
    described = {
        "activity": _ACTIVITY[traits["activity"]],
        "diversity_text": _DIVERSITY[traits["diversity"]],
        "novelty_text": _NOVELTY[traits["novelty"]],
        "conformity_text": _CONFORMITY[traits["conformity"]],
    }
    name = _FIRST_NAMES[user % len(_FIRST_NAMES)]
    return render("persona.j2", name=name, favourites=favourites, disliked=disliked,
                  traits=described).strip()  # fmt: skip


def from_state(users: np.ndarray, state: UserState, rng: np.random.Generator) -> list[Persona]:
    """Template personas whose traits are read off the simulated users themselves."""
    names = topic_names(state.taste.shape[1])
    taste = state.taste[users].astype(np.float64)
    softmax = np.exp(taste - taste.max(axis=1, keepdims=True))
    activity = tertiles(state.activity[users])
    diversity = tertiles(_entropy(softmax))
    novelty = tertiles(state.explore_prob[users])
    conformity = tertiles(rng.random(len(users)))  # not part of the rule model: a free trait
    personas = []
    for i, user in enumerate(np.asarray(users).tolist()):
        order = np.argsort(-taste[i], kind="stable")
        traits = {
            "activity": activity[i],
            "diversity": diversity[i],
            "novelty": novelty[i],
            "conformity": conformity[i],
        }
        favourites = [names[t] for t in order[:2]]
        text = _text(user, favourites, names[order[-1]], traits)
        personas.append(Persona(user, "template", text, {**traits, "favourites": favourites}))
    return personas


def from_yaml(users: np.ndarray, spec: PersonaSpec) -> list[Persona]:
    return [
        Persona(
            user,
            "yaml",
            spec.items[i % len(spec.items)]["text"].strip(),
            dict(spec.items[i % len(spec.items)].get("traits", {})),
        )  # fmt: skip
        for i, user in enumerate(np.asarray(users).tolist())
    ]


def data_traits(ratings_csv: str | Path) -> list[dict[str, Any]]:
    """Agent4Rec-style traits for every user of a MovieLens ratings file, ordered by user id."""
    import polars as pl

    ratings_path = Path(ratings_csv)
    movies_path = ratings_path.with_name("movies.csv")
    for path in (ratings_path, movies_path):
        if not path.is_file():
            raise RecarenaError(
                f"personas.path: {path} not found (MovieLens CSVs can be downloaded from "
                f"{MOVIELENS_DOWNLOAD})"
            )
    try:
        ratings = pl.read_csv(ratings_path, columns=["userId", "movieId", "rating"], glob=False)
        movies = pl.read_csv(movies_path, columns=["movieId", "genres"], glob=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RecarenaError(f"personas.path: cannot read {ratings_path}: {exc}") from None
    item_mean = ratings.group_by("movieId").agg(pl.col("rating").mean().alias("item_mean"))
    rated = ratings.join(item_mean, on="movieId").join(movies, on="movieId", how="left")
    per_user = (
        rated.group_by("userId")
        .agg(
            pl.len().alias("n"),
            (pl.col("rating") - pl.col("item_mean")).abs().mean().alias("deviation"),
        )
        .sort("userId")
    )
    genres = (
        rated.with_columns(pl.col("genres").fill_null("").str.split("|"))
        .explode("genres")
        .filter(pl.col("genres").is_in(["", "(no genres listed)"]).not_())
    )
    counts = genres.group_by("userId", "genres").agg(
        pl.len().alias("all"), (pl.col("rating") >= 4).sum().alias("liked")
    )
    entropy = (
        counts.with_columns((pl.col("all") / pl.col("all").sum().over("userId")).alias("p"))
        .group_by("userId")
        .agg((-(pl.col("p") * pl.col("p").log())).sum().alias("entropy"))
    )
    ranked = counts.sort(
        ["userId", "liked", "all", "genres"], descending=[False, True, True, False]
    )
    favourites = ranked.group_by("userId", maintain_order=True).agg(pl.col("genres").head(2))
    least = ranked.group_by("userId", maintain_order=True).agg(pl.col("genres").last())
    table = (
        per_user.join(entropy, on="userId", how="left")
        .join(favourites.rename({"genres": "favourites"}), on="userId", how="left")
        .join(least.rename({"genres": "disliked"}), on="userId", how="left")
        .sort("userId")
    )
    activity = tertiles(table["n"].to_numpy())
    conformity = tertiles(-table["deviation"].to_numpy())  # close to the average = conformist
    diversity = tertiles(table["entropy"].fill_null(0).to_numpy())
    rows = table.to_dicts()
    return [
        {
            "data_user": row["userId"],
            "ratings": row["n"],
            "activity": activity[i],
            "conformity": conformity[i],
            "diversity": diversity[i],
            "favourites": list(row["favourites"] or ["Drama"]),
            "disliked": row["disliked"] or "Horror",
        }
        for i, row in enumerate(rows)
    ]


def from_data(users: np.ndarray, spec: PersonaSpec) -> list[Persona]:
    """Panel user i takes the i-th data user's traits (cycling when the panel is larger)."""
    assert spec.path is not None
    table = data_traits(spec.path)
    if not table:
        raise RecarenaError(f"personas.path: {spec.path} holds no ratings")
    personas = []
    for i, user in enumerate(np.asarray(users).tolist()):
        row = table[i % len(table)]
        traits = {key: row[key] for key in ("activity", "conformity", "diversity")}
        traits["novelty"] = {"low": "low", "medium": "medium", "high": "high"}[row["diversity"]]
        text = _text(user, row["favourites"], row["disliked"], traits)
        personas.append(
            Persona(
                user,
                "data",
                text,
                {**traits, "favourites": row["favourites"], "data_user": row["data_user"]},
            )  # fmt: skip
        )
    return personas


def build_personas(
    users: np.ndarray, spec: PersonaSpec, state: UserState, rng: np.random.Generator
) -> list[Persona]:
    if spec.source == "yaml":
        return from_yaml(users, spec)
    if spec.source == "data":
        return from_data(users, spec)
    return from_state(users, state, rng)
