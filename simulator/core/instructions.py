"""The instructions users give when they are about to leave, as the recommender observes them.

Dense per page batch: one entry per row (session) of the batch, ``NO_INSTRUCTION`` where the
user said nothing. Dense arrays keep the batch the unit of work: a recommender reads them with
one mask instead of matching sparse rows back to requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_INSTRUCTION = -1
KINDS: tuple[str, ...] = ("more_novel", "less_of_topic", "more_of_topic", "something_different")
"""Instruction kinds by code: ``KINDS[kind]`` is the name logged in ``instructions.kind``."""
MORE_NOVEL, LESS_OF_TOPIC, MORE_OF_TOPIC, SOMETHING_DIFFERENT = range(len(KINDS))


@dataclass(frozen=True)
class Instructions:
    """[B] what each session of a page batch asked for after the page (observable)."""

    kind: np.ndarray  # [B] int8, NO_INSTRUCTION or an index into KINDS
    topic: np.ndarray  # [B] int16, the topic named (less/more_of_topic), else -1

    @property
    def given(self) -> np.ndarray:
        """[B] bool: the rows that gave an instruction."""
        return self.kind != NO_INSTRUCTION
