"""How items look to an LLM user: a title, genres and a one-line description per slot.

The synthetic catalog has no text, so it gets some: topics are named after the MovieLens genres
(so personas written for real data read naturally), and titles and descriptions are a pure
function of the item id, topic mix and quality. Nothing random is drawn, so the same item reads
the same under every arm and in every replay. A catalog with real text (e.g. calibrated from
MovieLens) supplies its own :class:`ItemText`.
"""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
_ADJECTIVES = (
    "Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Distant", "Wild",
    "Frozen", "Electric", "Quiet", "Lost", "Burning", "Secret", "Paper", "Iron", "Velvet",
    "Hollow", "Bright", "Northern", "Restless", "Glass", "Lucky",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Garden", "Signal", "Kingdom", "Echo", "Road", "Letter", "Machine", "River",
    "Summer", "Witness", "Island", "Promise", "Frontier", "Orchestra", "Detective", "Comet",
    "Carnival", "Mountain", "Alibi", "Voyage", "Lighthouse", "Heist", "Reunion",
)  # fmt: skip


def topic_names(n_topics: int) -> list[str]:
    return [GENRES[t] if t < len(GENRES) else f"Genre {t + 1}" for t in range(n_topics)]


class ItemText(Protocol):
    def titles(self, items: np.ndarray) -> list[str]: ...

    def lines(self, items: np.ndarray) -> list[str]:
        """One compact line per item, as a slate shows it."""
        ...

    def genres(self, items: np.ndarray) -> list[list[str]]: ...


class SyntheticItemText:
    """Text for the synthetic catalog; reads the live catalog, so new uploads have text too."""

    def __init__(self, catalog, n_topics: int) -> None:
        self.catalog = catalog
        self.names = topic_names(n_topics)

    def titles(self, items: np.ndarray) -> list[str]:
        out = []
        for item in np.asarray(items, np.int64).tolist():
            adjective = _ADJECTIVES[(item * 7 + 3) % len(_ADJECTIVES)]
            noun = _NOUNS[(item * 13 + item // len(_ADJECTIVES)) % len(_NOUNS)]
            out.append(f"The {adjective} {noun} #{item}")
        return out

    def genres(self, items: np.ndarray) -> list[list[str]]:
        topics = self.catalog.topics[np.asarray(items, np.int64)]
        order = np.argsort(-topics, axis=1, kind="stable")[:, :2]
        return [
            [self.names[t] for t, share in zip(row, topics[i, row], strict=True) if share >= 0.15]
            or [self.names[row[0]]]
            for i, row in enumerate(order)
        ]

    def lines(self, items: np.ndarray) -> list[str]:
        return slate_lines(self, self.catalog.quality, items)


def slate_lines(text, quality: np.ndarray, items: np.ndarray) -> list[str]:
    """One compact line per item for a page prompt: title, genres and a 1-5 star rating.

    Quality (synthetic, or a fitted item bias) is centred near 0 with sd ~1, so 3 + quality
    rounded and clipped gives the stars.
    """
    items = np.asarray(items, np.int64)
    stars = np.clip(np.rint(3.0 + quality[items]), 1, 5).astype(int)
    return [
        f"{title} ({'/'.join(genres)}) rated {'★' * s}{'☆' * (5 - s)}"
        for title, genres, s in zip(text.titles(items), text.genres(items), stars, strict=True)
    ]


_STARS = re.compile(r"rated (★*)☆*")


def compact_line(line: str) -> str:
    """A slate line with its star bar as ``4/5``: the same information in 2 tokens, not ~10."""
    return _STARS.sub(lambda match: f"{len(match.group(1))}/5", line)
