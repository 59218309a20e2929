"""An LLM recommender that reads users' instructions (RecoWorld's agentic recommender).

``instructable`` turns a structured instruction into a re-ranking term. This variant also *reads*
it, as words: for a page served under a live instruction, one scored call shows the LLM what
the user said (``"less Comedy"``, ``"something new, unlike what I usually watch"``, ...) and the
top ``shortlist`` items of the instruction-aware ranking (title, genres, stars), and asks which
one the user should see first. The drawn item moves to the top of the page; the rest keep the
instructable order. The draw uses a counter-based uniform of the arm's seed and the (session,
page), so the arm is deterministic and replayable; a failed call (or no LLM client) leaves the
instructable page, and the call is a ``fallback`` row of ``llm_calls`` (purpose ``rerank``).
Pages of users without a live instruction cost no call.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from recarena.agents.llm.choices import arm_salt, key_uniform, slot_labels, step_key
from recarena.agents.llm.client import CallContext, draw_index
from recarena.agents.llm.item_text import SyntheticItemText, compact_line, topic_names
from recarena.agents.llm.prompts import render, text
from recarena.agents.users.llm_instructions import instruction_text
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.instructable import Instructable, InstructableParams
from recarena.simulator.core.instructions import NO_INSTRUCTION
from recarena.simulator.core.types import PAD_ITEM, RequestBatch, SlateBatch

_U_RERANK = 0x5C51


class FirstAnswer(BaseModel):
    first: int


class LLMInstructableParams(InstructableParams):
    shortlist: int = Field(default=8, ge=2, le=30)
    """Items of the instruction-aware ranking shown to the LLM."""


class LLMInstructable(Instructable):
    """Follows instructions by re-ranking; an LLM reads them and picks the first item."""

    Params = LLMInstructableParams

    def __init__(self, params: LLMInstructableParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "llm_instructable"
        self.params: LLMInstructableParams = params
        self.client = ctx.llm_client
        self.item_text = ctx.item_text
        self.names = topic_names(ctx.n_topics)
        self.n_topics = ctx.n_topics
        self._salt = arm_salt(ctx.rng)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        users = requests.user
        live = (self.pages_left[users] > 0) & (self.kind[users] != NO_INSTRUCTION)
        if self.client is None or not live.any():
            return slates
        item_text = self.item_text or SyntheticItemText(requests.catalog, self.n_topics)
        rows = np.flatnonzero(live).tolist()
        picks = self.client.run([self._pick(requests, slates, r, item_text) for r in rows])
        items, scores = slates.items.copy(), slates.scores.copy()
        propensity = slates.propensity.copy()
        for row, pick in zip(rows, picks, strict=True):
            if pick is None or pick == 0:
                continue
            order = [pick, *(j for j in range(items.shape[1]) if j != pick)]
            items[row], scores[row] = items[row, order], scores[row, order]
            propensity[row] = propensity[row, order]
        return SlateBatch(items, scores, propensity)

    async def _pick(self, requests: RequestBatch, slates: SlateBatch, row: int, item_text):
        """The slot (0-based) of the item the LLM puts first; None when the call failed."""
        user = int(requests.user[row])
        slots = np.flatnonzero(slates.items[row] != PAD_ITEM)[: self.params.shortlist]
        if slots.size < 2:
            return None
        words = instruction_text(int(self.kind[user]), int(self.topic[user]), self.names)
        labels = slot_labels(slots.size)
        lines = [compact_line(line) for line in item_text.lines(slates.items[row, slots])]
        prompt = render("instruct_rerank.j2", instruction=words, candidates=lines, labels=labels)
        messages = [
            {"role": "system", "content": text("instruct_rerank_system.txt")},
            {"role": "user", "content": prompt},
        ]
        session, page = int(requests.session[row]), int(requests.page[row])
        context = CallContext("rerank", user, session, page, requests.time)
        if not self.client.scoring:  # decision: generate, or an endpoint without logprobs
            numbers = list(range(1, slots.size + 1))
            schema = {"type": "object", "properties": {"first": {"enum": numbers}},
                      "required": ["first"]}  # fmt: skip
            json_messages = [
                messages[0],
                {"role": "user", "content": f'{prompt}\nJSON keys: "first" (a number).'},
            ]
            result = await self.client.structured(json_messages, FirstAnswer, context, None,
                                                  schema)  # fmt: skip
            answer = result.answer
            ok = answer is not None and 1 <= answer.first <= slots.size
            return int(slots[answer.first - 1]) if ok else None  # type: ignore[union-attr]
        scored = await self.client.score(messages, [labels], context)
        if scored.probs is None or scored.probs[0] is None:
            return None
        key = step_key(self._salt, session, page)
        choice = draw_index(scored.probs[0], key_uniform(key, _U_RERANK))
        scored.records[-1].choice = choice
        return int(slots[choice])
