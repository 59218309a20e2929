"""Instructions near disengagement: users about to leave say what they want instead.

RecoWorld's simulated user reviews what it is shown and, when it senses it is about to
disengage, writes a reflective instruction ("less of the same", "something funny") that the
recommender may act on. Here the rule user does the same from its own state, as a structured
instruction, so the effect of listening can be measured on retention:

* a user speaks up after a page when its leave probability ``1 − exp(−fatigue)`` reaches
  ``threshold`` (at most ``max_per_session`` times a session);
* what it says is decided by :func:`decide_instructions` from the page and the user's state, in
  this order: **more_novel** (a novelty-seeking session shown a page that looks like what the
  user already consumed), **less_of_topic** (the page is dominated by a topic the user is
  satiated with), **more_of_topic** (the user's currently best topic is nearly absent),
  else **something_different**;
* with ``grace`` the user stays for the next page to see whether it was heard; a click on that
  page keeps the user (the leave draw is waived) and takes ``relief`` off its fatigue.

Whether anything improves therefore depends only on the recommender: one that ignores the
instruction serves the same kind of page, one that follows it may earn the click.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from recarena.agents.users.population import UserState
from recarena.simulator.core.behaviour_spec import InstructionSpec
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.instructions import (
    LESS_OF_TOPIC,
    MORE_NOVEL,
    MORE_OF_TOPIC,
    NO_INSTRUCTION,
    SOMETHING_DIFFERENT,
    Instructions,
)
from recarena.simulator.core.types import PAD_ITEM, PageBatch, ResponseBatch


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def decide_instructions(
    page_mix: np.ndarray,
    satiation: np.ndarray,
    taste: np.ndarray,
    familiarity: np.ndarray,
    explore: np.ndarray,
    spec: InstructionSpec,
) -> Instructions:
    """What each user would ask for, given the page's topic mix [B, T] (mean of the shown
    items' topic vectors), satiation, taste and consumed-topic totals [B, T] and the session's
    novelty intent [B]. Every row gets an instruction; the caller masks who speaks."""
    batch = page_mix.shape[0]
    rows = np.arange(batch)
    kind = np.full(batch, SOMETHING_DIFFERENT, np.int8)
    topic = np.full(batch, -1, np.int16)

    best = (taste - satiation).argmax(axis=1)
    wants_best = page_mix[rows, best] < spec.missing_share
    kind[wants_best] = MORE_OF_TOPIC
    topic[wants_best] = best[wants_best]

    dominant = page_mix.argmax(axis=1)
    tired = (page_mix[rows, dominant] >= spec.concentration) & (
        satiation[rows, dominant] >= spec.satiation_cut
    )
    kind[tired] = LESS_OF_TOPIC
    topic[tired] = dominant[tired]

    stale = explore & (_cosine(page_mix, familiarity) >= spec.familiar_cut)
    kind[stale] = MORE_NOVEL
    topic[stale] = -1
    return Instructions(kind=kind, topic=topic)


class InstructingPolicy:
    """Wraps any user policy: its answer, plus an instruction from users about to leave.

    Adds ``instruction_kind``, ``instruction_topic`` and ``leave_probability`` [B] to the
    response's ``extra``; the engine turns them into ``FeedbackBatch.instructions`` and rows of
    the ``instructions`` table.
    """

    def __init__(
        self, inner: Any, users: UserState, catalog: Catalog, spec: InstructionSpec
    ) -> None:
        self.inner = inner
        self.users = users
        self.catalog = catalog
        self.spec = spec
        n = users.n_users
        self._session = np.full(n, -1, np.int64)
        self._spoken = np.zeros(n, np.int32)
        self._waiting = np.zeros(n, bool)
        """The user spoke after its previous page and is judging this one."""
        self.voice: Any = None
        """The LLM panel's :class:`recarena.agents.users.llm_instructions.LLMInstructions`, or
        None: it decides what panel users ask for when they speak up."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def utility(self, users: np.ndarray, items: np.ndarray, explore: np.ndarray) -> np.ndarray:
        return self.inner.utility(users, items, explore)

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = self.inner.respond(pages)
        spec = self.spec
        users = pages.requests.user
        session = pages.requests.session
        fresh = self._session[users] != session
        self._spoken[users[fresh]] = 0
        self._waiting[users[fresh]] = False
        self._session[users] = session

        clicked = response.clicked.any(axis=1)
        heard = self._waiting[users] & clicked
        fatigue = response.fatigue.copy()
        fatigue[heard] = np.maximum(fatigue[heard] - np.float32(spec.relief), 0.0)
        leave = response.leave & ~heard
        self._waiting[users] = False

        leave_probability = 1.0 - np.exp(-fatigue.astype(np.float64))
        speak = (leave_probability >= spec.threshold) & (self._spoken[users] < spec.max_per_session)
        page_mix = self._page_mix(pages)
        decided = decide_instructions(
            page_mix,
            self.users.satiation[users],
            self.users.taste[users],
            self.users.familiarity[users],
            pages.explore,
            spec,
        )
        if self.voice is not None:  # LLM users say what they want; failures keep the rule's
            answers = self.voice.decide(pages, np.flatnonzero(speak), page_mix)
            for row, answer in answers.items():
                if answer is not None:
                    decided.kind[row], decided.topic[row] = answer
        kind = np.where(speak, decided.kind, NO_INSTRUCTION).astype(np.int8)
        topic = np.where(speak, decided.topic, -1).astype(np.int16)
        spoke = users[speak]
        self._spoken[spoke] += 1
        self._waiting[spoke] = True
        if spec.grace:
            leave = leave & ~speak
        extra = {
            **response.extra,
            "instruction_kind": kind,
            "instruction_topic": topic,
            "leave_probability": leave_probability.astype(np.float32),
        }
        return replace(response, leave=leave, fatigue=fatigue, extra=extra)

    def _page_mix(self, pages: PageBatch) -> np.ndarray:
        """[B, T] mean topic vector of the items shown on each page."""
        items = pages.slates.items
        valid = (items != PAD_ITEM).astype(np.float32)
        topics = self.catalog.topics[np.maximum(items, 0)] * valid[:, :, None]
        return topics.sum(axis=1) / np.maximum(valid.sum(axis=1), 1.0)[:, None]


def instructions_of(response: ResponseBatch) -> Instructions | None:
    """The batch's instructions from a response's extra fields (None without the feature)."""
    kind = response.extra.get("instruction_kind")
    if kind is None:
        return None
    return Instructions(kind=kind, topic=response.extra["instruction_topic"])
