"""What an LLM user remembers: recent interactions, reflections, and retrieval by similarity.

Retrieval uses TF-IDF cosine similarity between the memories and the slate on screen
(scikit-learn, already installed with RecBole). A sentence-embedding model would rank a little
better, but costs a ~90 MB package and a second model in memory for a signal that, with short
memories like "watched The Silent Harbor (Drama), rated 4", is mostly about shared genre words,
which TF-IDF catches. The store sits behind :meth:`UserMemory.retrieve`, so a better one can
replace it without touching the prompts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Memory:
    kind: str  # interaction | reflection
    text: str
    time: float


class UserMemory:
    """One user's bounded memory (the oldest entries are forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self.entries: deque[Memory] = deque(maxlen=capacity)
        self.session: list[str] = []  # this session's interactions, for the reflection

    def add_interaction(self, text: str, time: float) -> None:
        self.entries.append(Memory("interaction", text, time))
        self.session.append(text)

    def add_reflection(self, text: str, time: float) -> None:
        self.entries.append(Memory("reflection", text, time))

    def end_session(self) -> list[str]:
        session, self.session = self.session, []
        return session

    def retrieve(self, query: str, k: int, max_tokens: int | None = None) -> list[str]:
        """The ``k`` memories most similar to ``query``, newest first on ties.

        The latest reflection is always included when there is one: it is the user's own
        summary of their taste, which matters more than lexical overlap with the slate.
        ``max_tokens`` bounds what they cost in the prompt (about 4 characters a token): the
        most relevant memories that fit are kept, in order of relevance.
        """
        chosen = self._retrieve(query, k)
        if max_tokens is None:
            return chosen
        kept, budget = [], max_tokens * 4
        for memory in chosen:
            if len(memory) + 3 > budget:  # "- " and a newline
                break
            kept.append(memory)
            budget -= len(memory) + 3
        return kept

    def _retrieve(self, query: str, k: int) -> list[str]:
        if k <= 0 or not self.entries:
            return []
        entries = list(self.entries)
        texts = [m.text for m in entries]
        # sklearn is imported here, where retrieval runs: every cell process imports this
        # module through the engine's wiring, and only LLM panels retrieve (~0.5 CPU-s each)
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b[\w-]{2,}\b")
        try:
            matrix = vectorizer.fit_transform([*texts, query])
        except ValueError:  # nothing but stop words
            return texts[-k:][::-1]
        scores = (matrix[:-1] @ matrix[-1].T).toarray().ravel()
        recency = np.arange(len(entries)) / max(len(entries), 1) * 1e-6  # ties: newest first
        order = np.argsort(-(scores + recency), kind="stable")
        chosen: list[int] = []
        reflections = [i for i, m in enumerate(entries) if m.kind == "reflection"]
        if reflections:
            chosen.append(reflections[-1])
        for index in order.tolist():
            if len(chosen) >= k:
                break
            if index not in chosen:
                chosen.append(index)
        return [texts[i] for i in chosen]
