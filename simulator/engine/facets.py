"""Item facets a conversational system can ask about: genre, era and mood.

* ``genre`` is the item's dominant topic, so it agrees with the users' taste vectors (a user's
  hidden target genre is drawn from taste). Topics are labelled with MovieLens genre names for a
  synthetic catalog (agents/llm/item_text.py) and, for a calibrated population, with the real genre
  most common among the items whose dominant topic it is.
* ``era`` comes from the release year in a real title ("Heat (1995)"); ``mood`` from the real
  genres (Comedy → light, Horror → dark, ...). Where an item has no such attribute (synthetic
  items, uploads during the run, titles without a year) the value is a counter-based hash of the
  item id (simulator/core/rng.py), so facets cost no draw from any random stream and every arm sees
  the same facets.

The catalog grows while a run goes on; :class:`FacetIndex` extends the codes for new items only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from recarena.agents.llm.item_text import topic_names
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.dialogue import Facets
from recarena.simulator.core.rng import combine, uniforms

FACET_NAMES = ("genre", "era", "mood")
ERAS = ("before 1970", "1970s", "1980s", "early 1990s", "late 1990s or later")
ERA_BOUNDS = np.array([1970, 1980, 1990, 1995])  # a year's era = searchsorted(bounds, year)
MOODS = ("light", "dark", "serious", "exciting")
GENRE_MOOD = {
    "Comedy": "light", "Animation": "light", "Children": "light", "Children's": "light",
    "Musical": "light", "Fantasy": "light",
    "Horror": "dark", "Thriller": "dark", "Crime": "dark", "Film-Noir": "dark",
    "Mystery": "dark",
    "Drama": "serious", "War": "serious", "Documentary": "serious", "Romance": "serious",
    "Action": "exciting", "Adventure": "exciting", "Sci-Fi": "exciting", "Western": "exciting",
}  # fmt: skip
_ERA_SALT, _MOOD_SALT = 101, 102
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_MIN_ITEMS = 5


@dataclass(frozen=True)
class RealAttributes:
    """What a real catalog says about its first ``len(titles)`` items."""

    titles: list[str]
    genres: list[list[str]]


def era_of_title(title: str) -> int:
    """Era code of a title ending in "(YYYY)", or -1 when it has no year."""
    match = _YEAR.search(title)
    if match is None:
        return -1
    return int(np.searchsorted(ERA_BOUNDS, int(match.group(1)), side="right"))


def mood_of_genres(genres: list[str]) -> int:
    """Mood code of the first genre with a known mood, or -1."""
    for genre in genres:
        if genre in GENRE_MOOD:
            return MOODS.index(GENRE_MOOD[genre])
    return -1


def genre_labels(n_topics: int, topics: np.ndarray, real: RealAttributes | None) -> list[str]:
    """One distinct label per topic: for a real catalog, the genre most over-represented among
    the items whose dominant topic it is (lift = share in the topic / share overall, at least
    ``_MIN_ITEMS`` items), matched greedily by lift so no two topics share a label ("Topic t"
    for topics left over); a synthetic catalog uses agents/llm/item_text.py's genre names."""
    labels = topic_names(n_topics)
    if real is None:
        return labels
    dominant = topics[: len(real.genres)].argmax(axis=1)
    names = sorted({g for genres in real.genres for g in genres})
    counts = np.zeros((n_topics, len(names)))
    for t, genres in zip(dominant, real.genres, strict=True):
        for genre in genres:
            counts[t, names.index(genre)] += 1
    expected = counts.sum(axis=1, keepdims=True) * counts.sum(axis=0) / max(counts.sum(), 1)
    lift = np.where(counts >= _MIN_ITEMS, counts / np.maximum(expected, 1e-12), 0.0)
    taken_topics, taken_genres = set(), set()
    for flat in np.argsort(-lift, axis=None, kind="stable"):
        t, g = divmod(int(flat), len(names))
        if lift[t, g] <= 0:
            break
        if t not in taken_topics and g not in taken_genres:
            labels[t] = names[g]
            taken_topics.add(t)
            taken_genres.add(g)
    for t in range(n_topics):  # no genre stands out: a neutral name, never a genre's
        if t not in taken_topics:
            labels[t] = f"Topic {t + 1}"
    return labels


class FacetIndex:
    """Facet codes of every item published so far, extended lazily as the catalog grows."""

    def __init__(self, catalog: Catalog, key: np.uint64, real: RealAttributes | None = None):
        self.catalog = catalog
        self.key = np.uint64(key)
        self.real = real
        self.genres = tuple(genre_labels(catalog.n_topics, catalog.topics, real))
        self._codes = np.zeros((0, len(FACET_NAMES)), np.int16)
        self._facets: Facets | None = None

    def _hashed(self, items: np.ndarray, salt: int, n_values: int) -> np.ndarray:
        u = uniforms(combine(combine(self.key, items.astype(np.uint64)), salt))
        return np.minimum((u * n_values).astype(np.int64), n_values - 1)

    def _codes_for(self, items: np.ndarray) -> np.ndarray:
        codes = np.empty((items.size, len(FACET_NAMES)), np.int16)
        codes[:, 0] = self.catalog.topics[items].argmax(axis=1)
        era = self._hashed(items, _ERA_SALT, len(ERAS))
        mood = self._hashed(items, _MOOD_SALT, len(MOODS))
        if self.real is not None:
            n_real = len(self.real.titles)
            real_rows = np.flatnonzero(items < n_real)
            real_era = np.array([era_of_title(self.real.titles[i]) for i in items[real_rows]])
            real_mood = np.array([mood_of_genres(self.real.genres[i]) for i in items[real_rows]])
            if real_rows.size:
                era[real_rows] = np.where(real_era >= 0, real_era, era[real_rows])
                mood[real_rows] = np.where(real_mood >= 0, real_mood, mood[real_rows])
        codes[:, 1] = era
        codes[:, 2] = mood
        return codes

    def facets(self) -> Facets:
        """The facets of the catalog as it is now (the same object while nothing was added)."""
        n = self.catalog.n
        if self._facets is None or self._codes.shape[0] != n:
            new = np.arange(self._codes.shape[0], n, dtype=np.int64)
            self._codes = np.concatenate([self._codes, self._codes_for(new)])
            self._facets = Facets(FACET_NAMES, (self.genres, ERAS, MOODS), self._codes)
        return self._facets
