"""Typed memory for LLM users (after ENGRAM): episodic, semantic and procedural records.

The TF-IDF memory (agents/users/llm_memory.py) keeps one list of lines and returns the ones
most similar to the slate. ENGRAM argues that an agent's memory has *kinds* that are worth
storing and retrieving differently:

* **episodic**: what happened ("watched The Silent Harbor (Drama), rated 4/5"), bounded and
  forgotten oldest first, retrieved by similarity to the slate;
* **semantic**: what the user has learnt about its own taste, consolidated from every episode
  and never forgotten: one line per genre ("Drama: liked, 4.2/5 over 6 films");
* **procedural**: how the user decides: its latest reflections.

A *router* reads the query (the slate) and decides which stores to consult: the semantic
records of the genres on the slate first (most information per token), then the latest
procedural record, then episodes about the slate's genres. The result has the
``UserMemory`` interface, so the LLM user's prompts do not change. ``llm_panel.memory: typed``
selects it (:func:`make_memory`).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from recarena.agents.users.llm_memory import Memory, UserMemory

_EPISODE = re.compile(r"\(([^()]*)\),\s*rated\s+(\d)(?:/5)?")
LIKED, DISLIKED = 4.0, 2.5


@dataclass
class GenreFact:
    """Consolidated experience with one genre."""

    rating_sum: float = 0.0
    count: int = 0

    def line(self, genre: str) -> str:
        mean = self.rating_sum / self.count
        verdict = "liked" if mean >= LIKED else "disliked" if mean <= DISLIKED else "mixed"
        films = "film" if self.count == 1 else "films"
        return f"{genre}: {verdict}, {mean:.1f}/5 over {self.count} {films}"


def parse_episode(text: str) -> tuple[list[str], float] | None:
    """Genres and rating of an interaction line ``watched T (G1/G2), rated r/5``; None if the
    line has another shape (then it stays episodic only)."""
    match = _EPISODE.search(text)
    if match is None:
        return None
    genres = [g.strip() for g in match.group(1).split("/") if g.strip()]
    return genres, float(match.group(2))


@dataclass
class TypedMemory:
    """One user's typed memory with the ``UserMemory`` interface."""

    capacity: int
    procedural_capacity: int = 3
    episodic: deque[Memory] = field(init=False)
    procedural: deque[Memory] = field(init=False)
    semantic: dict[str, GenreFact] = field(default_factory=dict)
    session: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.episodic = deque(maxlen=self.capacity)
        self.procedural = deque(maxlen=self.procedural_capacity)

    # ------------------------------------------------------------------ writing
    def add_interaction(self, text: str, time: float) -> None:
        self.episodic.append(Memory("interaction", text, time))
        self.session.append(text)
        parsed = parse_episode(text)
        if parsed is None:
            return
        genres, rating = parsed
        for genre in genres:
            fact = self.semantic.setdefault(genre, GenreFact())
            fact.rating_sum += rating
            fact.count += 1

    def add_reflection(self, text: str, time: float) -> None:
        self.procedural.append(Memory("reflection", text, time))

    def end_session(self) -> list[str]:
        session, self.session = self.session, []
        return session

    # ------------------------------------------------------------------ reading
    def route(self, query: str) -> list[str]:
        """The genres of the query the semantic store knows, in order of first mention."""
        lowered = query.lower()
        hits = []
        for genre in self.semantic:
            position = re.search(rf"\b{re.escape(genre.lower())}\b", lowered)
            if position is not None:
                hits.append((position.start(), genre))
        return [genre for _, genre in sorted(hits)]

    def retrieve(self, query: str, k: int, max_tokens: int | None = None) -> list[str]:
        """Up to ``k`` lines: semantic facts of the slate's genres, the latest procedural
        record, then the episodes most similar to the slate (within ``max_tokens``, about 4
        characters a token, as ``UserMemory`` counts)."""
        if k <= 0:
            return []
        genres = self.route(query)
        lines = [self.semantic[g].line(g) for g in genres[:k]]
        if self.procedural and len(lines) < k:
            lines.append(self.procedural[-1].text)
        if len(lines) < k:
            lines.extend(self._episodes(query, k - len(lines)))
        if max_tokens is None:
            return lines
        kept, budget = [], max_tokens * 4
        for line in lines:
            if len(line) + 3 > budget:
                break
            kept.append(line)
            budget -= len(line) + 3
        return kept

    def _episodes(self, query: str, k: int) -> list[str]:
        texts = [m.text for m in self.episodic]
        if not texts:
            return []
        # imported here: sklearn costs ~0.5 CPU-s per process, and every cell process imports
        # this module through the engine's wiring, while only LLM panels retrieve memories
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b[\w-]{2,}\b")
        try:
            matrix = vectorizer.fit_transform([*texts, query])
        except ValueError:
            return texts[-k:][::-1]
        scores = (matrix[:-1] @ matrix[-1].T).toarray().ravel()
        recency = np.arange(len(texts)) / len(texts) * 1e-6
        order = np.argsort(-(scores + recency), kind="stable")[:k]
        return [texts[i] for i in order.tolist() if scores[i] > 0]


def make_memory(kind: str, capacity: int) -> UserMemory | TypedMemory:
    """The memory an LLM user gets: ``tfidf`` (the default store) or ``typed``."""
    if kind == "typed":
        return TypedMemory(capacity)
    return UserMemory(capacity)
