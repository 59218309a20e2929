"""LLM users near leaving say what they want: one call decides the instruction (RecoWorld).

The rule user (agents/users/instructions.py) decides *when* a user speaks up (its leave
probability reaches the threshold) and, for rule users, *what* it asks for from its state. For
the users of the LLM panel the persona decides what: one call shows the page it just saw and the
instructions it can give, and the answer becomes the same structured instruction the
recommenders read and the ``instructions`` table logs:

* ``more <genre>`` for each topic (more_of_topic),
* ``less <genre>`` for the page's dominant topic (less_of_topic),
* ``something new, unlike what I usually watch`` (more_novel),
* ``something different from this page`` (something_different).

In scoring mode (the default) the answer is one token, read from the logprobs and drawn with the
page's counter-based uniform, so the same page under two arms gets the same instruction; in
``decision: generate`` it is a JSON answer under an enum of the option texts. A failed call
keeps the rule's instruction and is a ``fallback`` row of ``llm_calls`` (purpose
``instruction``). :func:`instruction_text` gives the words of any instruction, which the LLM
recommender variant (``llm_instructable``) reads.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from recarena.agents.llm.choices import key_uniform, slot_labels
from recarena.agents.llm.client import CallContext, draw_index
from recarena.agents.llm.item_text import compact_line, topic_names
from recarena.agents.llm.prompts import render
from recarena.agents.users.llm_user import tiredness
from recarena.simulator.core.instructions import (
    LESS_OF_TOPIC,
    MORE_NOVEL,
    MORE_OF_TOPIC,
    SOMETHING_DIFFERENT,
)
from recarena.simulator.core.types import PAD_ITEM, PageBatch

_U_INSTRUCT = 0x5C41
"""Purpose of a scored instruction's counter-based uniform."""
NOVEL_TEXT = "something new, unlike what I usually watch"
DIFFERENT_TEXT = "something different from this page"


def instruction_text(kind: int, topic: int, names: list[str]) -> str:
    """The words of a structured instruction (what a user would type)."""
    if kind == MORE_OF_TOPIC:
        return f"more {names[topic]}"
    if kind == LESS_OF_TOPIC:
        return f"less {names[topic]}"
    return NOVEL_TEXT if kind == MORE_NOVEL else DIFFERENT_TEXT


def instruction_options(dominant: int, n_topics: int) -> list[tuple[int, int]]:
    """(kind, topic) of every option a user about to leave is offered, in prompt order."""
    more = [(MORE_OF_TOPIC, t) for t in range(n_topics)]
    return [*more, (LESS_OF_TOPIC, dominant), (MORE_NOVEL, -1), (SOMETHING_DIFFERENT, -1)]


class InstructionAnswer(BaseModel):
    ask: str


class LLMInstructions:
    """What the panel's users ask for when they speak up."""

    def __init__(self, llm, n_topics: int) -> None:
        """``llm`` is the cell's :class:`recarena.agents.users.llm_user.LLMUsers`."""
        self.llm = llm
        self.client = llm.client
        self.names = topic_names(n_topics)
        self.n_topics = n_topics

    def decide(
        self, pages: PageBatch, rows: np.ndarray, page_mix: np.ndarray
    ) -> dict[int, tuple[int, int] | None]:
        """row -> (kind, topic) for the panel users among ``rows`` (who speak up); None where
        the call failed."""
        users = pages.requests.user
        panel_rows = [int(r) for r in rows.tolist() if int(users[r]) in self.llm.personas]
        answers = self.client.run([self._decide(pages, r, page_mix[r]) for r in panel_rows])
        return dict(zip(panel_rows, answers, strict=True))

    async def _decide(
        self, pages: PageBatch, row: int, page_mix: np.ndarray
    ) -> tuple[int, int] | None:
        requests = pages.requests
        user, page = int(requests.user[row]), int(requests.page[row])
        items = pages.slates.items[row]
        shown = items[items != PAD_ITEM]
        slate = [compact_line(line) for line in self.llm.item_text.lines(shown)]
        options = instruction_options(int(page_mix.argmax()), self.n_topics)
        texts = [instruction_text(kind, topic, self.names) for kind, topic in options]
        context = CallContext("instruction", user, int(requests.session[row]), page,
                              requests.time)  # fmt: skip
        values = {"page": page, "tiredness": tiredness(float(pages.fatigue[row])),
                  "slate": slate, "options": texts}  # fmt: skip
        if self.client.scoring:
            labels = slot_labels(len(options))
            prompt = render("instruct_score.j2", labels=labels, **values)
            messages = self.llm.profile_messages(user, slate, prompt)
            scored = await self.client.score(messages, [labels], context)
            if scored.probs is not None and scored.probs[0] is not None:
                key = int(pages.noise_key[row])
                choice = draw_index(scored.probs[0], key_uniform(key, _U_INSTRUCT))
                scored.records[-1].choice = choice
                return options[choice]
            if self.client.scoring:
                return None  # a logged fallback: the rule's instruction stands
        prompt = render(
            "instruct.j2",
            persona=self.llm.personas[user].text,
            memories=self.llm.memory[user].retrieve(" ".join(slate), self.llm.panel.retrieve),
            **values,
        )
        messages = self.llm.json_messages(prompt)
        schema = {"type": "object", "properties": {"ask": {"enum": texts}}, "required": ["ask"]}

        def check(answer: InstructionAnswer) -> str | None:
            return None if answer.ask in texts else f"ask: {answer.ask!r} is not an option"

        result = await self.client.structured(messages, InstructionAnswer, context, check, schema)
        return None if result.answer is None else options[texts.index(result.answer.ask)]
