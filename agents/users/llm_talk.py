"""LLM users who talk: one call per consumption decides whether, where and how they talk about it.

The rule model (agents/users/talk.py) draws posts and messages from extraversion and
satisfaction. For the users of the LLM panel the persona decides instead, RecAgent-style: after
each item it consumed, an LLM user is asked whether it posts to all friends, messages one
friend, or says nothing, and whether it recommends the item or warns against it.

* **Scoring mode** (``llm.decision: score``): the five answers are numbered options
  (nothing; post + recommend; post + warn; message + recommend; message + warn), read from the
  logprobs of one answer token and drawn with the consumption's counter-based uniform, so the
  same consumption under two arms gets the same answer without a cache.
* **Generate mode**: a JSON answer (``action``, ``opinion``) under a schema of enums.

A failed call (after retries and repair) leaves the rule model's decision for that user and
consumption, and is a ``fallback`` row in ``llm_calls`` (purpose ``talk``). Who hears it, and
what hearing does, is the rule model's for everybody (reach, friend draw, mention boost); an
LLM user who hears of an item also remembers it ("a friend recommended T"), so the mention can
come back in its prompts when the item is on a page: what it hears changes what it seeks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

from recarena.agents.llm.choices import key_uniform
from recarena.agents.llm.client import CallContext, draw_index
from recarena.agents.llm.prompts import render

_U_TALK = 0x5C31
"""Purpose of a scored talk decision's counter-based uniform."""

OPTIONS = (
    "say nothing",
    "post to all your friends: recommend it",
    "post to all your friends: warn them off it",
    "send one friend a message: recommend it",
    "send one friend a message: warn them off it",
)
_POST = (False, True, True, False, False)
_SEND = (False, False, False, True, True)
_SIGN = (0, 1, -1, 1, -1)


class TalkAnswer(BaseModel):
    """What an LLM user does after consuming an item (generate mode)."""

    action: Literal["post", "message", "none"]
    opinion: Literal["recommend", "warn"] = "recommend"


TALK_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["post", "message", "none"]},
        "opinion": {"enum": ["recommend", "warn"]},
    },
    "required": ["action", "opinion"],
}


@dataclass(frozen=True)
class TalkChoice:
    """One LLM user's decision: post to all friends, message one, and with which sentiment."""

    post: bool
    send: bool
    sign: int

    @staticmethod
    def of_option(option: int) -> TalkChoice:
        return TalkChoice(_POST[option], _SEND[option], _SIGN[option])

    @staticmethod
    def of_answer(answer: TalkAnswer) -> TalkChoice:
        sign = 1 if answer.opinion == "recommend" else -1
        return TalkChoice(answer.action == "post", answer.action == "message", sign)


class LLMTalk:
    """The panel's talk decisions (``decide``) and what its users hear (``heard``)."""

    def __init__(self, llm, degree: np.ndarray) -> None:
        """``llm`` is the cell's :class:`recarena.agents.users.llm_user.LLMUsers`; ``degree``
        [U] the users' numbers of friends."""
        self.llm = llm
        self.client = llm.client
        self.degree = degree
        self.on_panel = llm.panel_mask(degree.shape[0])

    def decide(
        self,
        now: np.ndarray,
        keys: np.ndarray,
        users: np.ndarray,
        items: np.ndarray,
        rating: np.ndarray,
    ) -> tuple[np.ndarray, list[TalkChoice | None]]:
        """(rows of panel users, their decisions; None where the call failed)."""
        rows = np.flatnonzero(self.on_panel[users])
        if rows.size == 0:
            return rows, []
        titles = self.llm.item_text.titles(items[rows])
        calls = [
            self._decide(float(now[r]), int(keys[r]), int(users[r]), title, float(rating[r]))
            for r, title in zip(rows.tolist(), titles, strict=True)
        ]
        return rows, self.client.run(calls)

    async def _decide(
        self, now: float, key: int, user: int, title: str, rating: float
    ) -> TalkChoice | None:
        stars = None if np.isnan(rating) else int(rating)
        context = CallContext("talk", user, -1, -1, now)
        friends = int(self.degree[user])
        if self.client.scoring:
            prompt = render("talk_score.j2", title=title, rating=stars, friends=friends,
                            options=OPTIONS)  # fmt: skip
            messages = self.llm.profile_messages(user, [title], prompt)
            labels = [str(i) for i in range(len(OPTIONS))]
            scored = await self.client.score(messages, [labels], context)
            if scored.probs is not None and scored.probs[0] is not None:
                option = draw_index(scored.probs[0], key_uniform(key, _U_TALK))
                scored.records[-1].choice = option
                return TalkChoice.of_option(option)
            if self.client.scoring:
                return None  # a logged fallback: the rule model decides
        prompt = render(
            "talk.j2",
            persona=self.llm.personas[user].text,
            memories=self.llm.memory[user].retrieve(title, self.llm.panel.retrieve),
            title=title,
            rating=stars,
            friends=friends,
        )
        result = await self.client.structured(
            self.llm.json_messages(prompt), TalkAnswer, context, json_schema=TALK_SCHEMA
        )
        return None if result.answer is None else TalkChoice.of_answer(result.answer)

    def heard(
        self, users: np.ndarray, items: np.ndarray, sign: np.ndarray, via: str, now: np.ndarray
    ) -> None:
        """Panel users among ``users`` remember what a friend said about ``items``."""
        rows = np.flatnonzero(self.on_panel[users] & (sign != 0))
        if rows.size == 0:
            return
        titles = self.llm.item_text.titles(items[rows])
        for r, title in zip(rows.tolist(), titles, strict=True):
            verb = "recommended" if sign[r] > 0 else "warned me off"
            self.llm.memory[int(users[r])].add_interaction(
                f"a friend {verb} {title} in a {via}", float(now[r])
            )
