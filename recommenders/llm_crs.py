"""An LLM-backed conversational recommender: ask about a facet, or recommend from a shortlist.

A small model cannot rank a whole catalog, so the work is split the way LLM CRS papers do:

1. the rule policy's belief (recommenders/crs.py): a base recommender (``params.base``) ranks
   ``candidates`` unseen items, reweighted by what the user said; the heaviest ``shortlist``
   of them are shown to the LLM;
2. one structured call per conversation and turn shows the LLM the conversation so far, what is
   known, the facets still open and the shortlist (title and facet values per item); it answers
   a ``move`` (``"ask <facet>"`` or ``"recommend"``) and shortlist numbers, best first.

The JSON schema of each call is tightened to that turn: the move is ONE enum of the moves open
now (``ask`` only for facets not yet asked, only ``recommend`` on the last turn) rather than an
action plus a facet, because a grammar cannot tie two fields together and SmolLM2-135M happily
writes ``{"action": "ask", "facet": "none"}``; item numbers are an enum of the shortlist. So a
grammar-constrained server (llama.cpp) cannot produce an impossible move. An answer that still
fails (transport errors after retries, invalid JSON after one repair) falls back to the rule
decision, the information-gain policy's move on the same belief (``info_gain``), and the call is
marked ``fallback`` in ``llm_calls``. Without an LLM client the policy *is* ``info_gain``.

A recommendation always fills ``k`` slots: the LLM's picks first, then the rest of the
candidates by weight, so a model that names one item (or none) still produces a full slate. The
policy writes no free text: the loop renders its move, and a 135M model's sentences were noise
that only lengthened the next prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from recarena.agents.llm.cache import CallCache
from recarena.agents.llm.choices import arm_salt, key_uniform, slot_labels, step_key
from recarena.agents.llm.client import CallContext, LLMClient, draw_index
from recarena.agents.llm.endpoint import endpoint_for
from recarena.agents.llm.item_text import SyntheticItemText
from recarena.agents.llm.prompts import render, text
from recarena.agents.users.calibrated_text import calibrated_item_text
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.crs import InfoGainCRS, InfoGainParams
from recarena.simulator.core.dialogue import (
    ASK,
    RECOMMEND,
    UNKNOWN,
    DialogueState,
    Facets,
    SystemActs,
)
from recarena.simulator.core.scenario import LLM_RECOMMENDERS
from recarena.simulator.core.types import PAD_ITEM, FeedbackBatch, Interactions, SlateBatch

RECOMMEND_MOVE = "recommend"
_U_MOVE = 0x5C21
"""Purpose of the counter-based uniform that draws a scored move."""


class LLMCRSParams(InfoGainParams):
    """The rule policy's params (base, candidates, answer_noise, ...) plus the shortlist size."""

    shortlist: int = Field(default=8, ge=1, le=30)
    """Candidates shown to the LLM (kept short: a 2k-token context holds ~8 lines comfortably)."""


class CRSAnswer(BaseModel):
    """The LLM's move (item numbers are 1-based shortlist positions)."""

    move: str = Field(pattern="^(ask .+|recommend)$")
    items: list[int] = Field(default_factory=list, max_length=30)


@dataclass(frozen=True)
class TurnView:
    """What one call is about: the moves the schema allows and the shortlist it names."""

    unasked: list[str]  # facet names still open
    shortlist: np.ndarray  # [C] item ids (no PAD)
    can_ask: bool

    @property
    def moves(self) -> list[str]:
        asks = [f"ask {name}" for name in self.unasked] if self.can_ask else []
        return [*asks, RECOMMEND_MOVE]


def crs_schema(view: TurnView, k: int) -> dict[str, Any]:
    """The answer schema tightened to this turn: only moves that are possible can be produced."""
    numbers = list(range(1, len(view.shortlist) + 1)) or [1]
    return {
        "type": "object",
        "properties": {
            "move": {"enum": view.moves},
            "items": {"type": "array", "items": {"enum": numbers}, "maxItems": k},
        },
        "required": ["move", "items"],
    }


def crs_check(view: TurnView):
    """Validation beyond the schema, for endpoints that treat the schema only as a hint."""

    def check(answer: CRSAnswer) -> str | None:
        if answer.move not in view.moves:
            return f"move: {answer.move!r} is not one of {view.moves}"
        bad = [i for i in answer.items if not 1 <= i <= len(view.shortlist)]
        if bad:
            return f"items: {bad} are not candidate numbers (1..{len(view.shortlist)})"
        return None

    return check


def describe_item(facets: Facets, item: int, title: str) -> str:
    parts = [
        f"{name}: {facets.values[f][code]}"
        for f, name in enumerate(facets.names)
        if (code := int(facets.codes[item, f])) != UNKNOWN
    ]
    return f"{title} ({', '.join(parts)})" if parts else title


def known_lines(state: DialogueState, row: int) -> list[str]:
    facets = state.facets
    lines = []
    for f, name in enumerate(facets.names):
        wanted = int(state.preferred[row, f])
        if wanted != UNKNOWN:
            lines.append(f"wants {name}: {facets.values[f][wanted]}")
        avoided = np.flatnonzero(state.avoided[row, f, : len(facets.values[f])])
        if avoided.size:
            names = ", ".join(facets.values[f][v] for v in avoided.tolist())
            lines.append(f"does not want {name}: {names}")
    return lines


def conversation_values(state: DialogueState, row: int) -> dict[str, Any]:
    """What both CRS prompts say about the conversation so far."""
    return {
        "turn": int(state.requests.page[row]),
        "max_turns": state.max_turns,
        "transcript": list(state.transcript[row]),
        "known": known_lines(state, row),
    }


class LLMCRS:
    """Conversational recommender whose move is decided by one LLM call per conversation."""

    Params = LLMCRSParams
    surfaces = frozenset({"conversation"})
    needs_transcript = True

    def __init__(self, params: LLMCRSParams, ctx: RecommenderContext) -> None:
        self.name = "llm_crs"
        self.params = params
        self.rule = InfoGainCRS(params, ctx)
        self.client = ctx.llm_client
        item_text = ctx.item_text
        if item_text is None:
            item_text = SyntheticItemText(None, ctx.n_topics)  # titles need only the item id
        self.item_text = item_text
        self.fallbacks = 0
        self._salt = arm_salt(ctx.rng)  # keys the scored moves' uniforms with the conversation

    # ------------------------------------------------------------------ protocol
    def fit(self, history: Interactions) -> None:
        self.rule.fit(history)

    def update(self, feedback: FeedbackBatch) -> None:
        self.rule.update(feedback)

    def act(self, state: DialogueState) -> SystemActs:
        rule, cand, weight = self.rule.decide(state)
        if self.client is None or len(state.requests) == 0:
            return rule
        requests = state.requests
        batch, k = len(requests), requests.k
        order = np.argsort(-weight, axis=1, kind="stable")
        ranked = np.take_along_axis(cand, order, axis=1)
        views = [self._view(state, row, ranked[row]) for row in range(batch)]

        if self.client.scoring:
            answers = self.client.run([self._score(state, row, views[row]) for row in range(batch)])
        if not self.client.scoring:  # generate mode, or the endpoint turned out to lack logprobs
            system = text("crs_system.txt")
            answers = self.client.run(
                [self._call(state, row, views[row], system) for row in range(batch)]
            )
        act, facet = rule.act.copy(), rule.facet.copy()
        items = rule.slates.items.copy()
        scores = rule.slates.scores.copy()
        for row, answer in enumerate(answers):
            if answer is None:
                self.fallbacks += 1
                continue  # the rule's move for this conversation stands
            items[row], scores[row] = PAD_ITEM, np.nan
            if answer.move != RECOMMEND_MOVE:
                act[row] = ASK
                facet[row] = state.facets.index(answer.move.removeprefix("ask "))
                continue
            shortlist = views[row].shortlist
            chosen = [int(shortlist[i - 1]) for i in dict.fromkeys(answer.items)]
            rest = [i for i in ranked[row].tolist() if i != PAD_ITEM and i not in chosen]
            fill = (chosen + rest)[:k]
            act[row], facet[row] = RECOMMEND, UNKNOWN
            items[row, : len(fill)] = fill
        propensity = np.where(items != PAD_ITEM, 1.0, 0.0).astype(np.float32)
        slates = SlateBatch(items, scores.astype(np.float32), propensity)
        return SystemActs(act.astype(np.int8), facet.astype(np.int16), slates, ("",) * batch)

    # ------------------------------------------------------------------ pieces
    def _view(self, state: DialogueState, row: int, ranked: np.ndarray) -> TurnView:
        facets = state.facets
        open_facets = ~state.asked[row] & (state.preferred[row] == UNKNOWN)
        names = [name for f, name in enumerate(facets.names) if open_facets[f]]
        last_turn = int(state.requests.page[row]) >= state.max_turns - 1
        shortlist = ranked[ranked != PAD_ITEM][: self.params.shortlist]
        return TurnView(names, shortlist, bool(names) and not last_turn)

    def _lines(self, state: DialogueState, view: TurnView) -> list[str]:
        titles = self.item_text.titles(view.shortlist)
        return [
            describe_item(state.facets, int(item), title)
            for item, title in zip(view.shortlist.tolist(), titles, strict=True)
        ]

    async def _score(self, state: DialogueState, row: int, view: TurnView) -> CRSAnswer | None:
        """One forward pass: the first answer token picks a candidate or a facet to ask about.

        Candidates are numbered first, the open facets after them, so the move and the top
        item are one choice. The choice is drawn with a counter-based uniform of the
        (session, turn); a recommendation puts the drawn candidate first, then the other
        candidates the model gave probability to, most probable first (the caller fills the
        rest of the slate by the belief's weights).
        """
        requests = state.requests
        asks = [move.removeprefix("ask ") for move in view.moves if move != RECOMMEND_MOVE]
        n_candidates = len(view.shortlist)
        labels = slot_labels(n_candidates + len(asks))
        turn = int(requests.page[row])
        prompt = render(
            "crs_score.j2",
            **conversation_values(state, row),
            candidates=self._lines(state, view),
            asks=asks,
            labels=labels,
        )
        session = int(requests.session[row])
        context = CallContext("crs", int(requests.user[row]), session, turn, requests.time)
        messages = [
            {"role": "system", "content": text("crs_system_score.txt")},
            {"role": "user", "content": prompt},
        ]
        scored = await self.client.score(messages, [labels], context)
        if scored.probs is None or scored.probs[0] is None:
            return None
        probs = scored.probs[0]
        key = step_key(self._salt, session, turn)
        choice = draw_index(probs, key_uniform(key, _U_MOVE))
        scored.records[-1].choice = choice
        if choice >= n_candidates:
            return CRSAnswer(move=f"ask {asks[choice - n_candidates]}", items=[])
        others = [i for i in np.argsort(-probs[:n_candidates], kind="stable").tolist()
                  if i != choice and probs[i] > 0]  # fmt: skip
        return CRSAnswer(move=RECOMMEND_MOVE, items=[choice + 1, *(i + 1 for i in others)])

    async def _call(
        self, state: DialogueState, row: int, view: TurnView, system: str
    ) -> CRSAnswer | None:

        requests = state.requests
        lines = self._lines(state, view)
        turn = int(requests.page[row])
        prompt = render(
            "crs.j2",
            **conversation_values(state, row),
            moves=view.moves,
            candidates=lines,
            k=requests.k,
        )
        context = CallContext(
            "crs", int(requests.user[row]), int(requests.session[row]), turn, requests.time
        )
        result = await self.client.structured(
            [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            CRSAnswer,
            context,
            crs_check(view),
            crs_schema(view, requests.k),
        )
        return result.answer


def recommender_llm_resources(scenario, arm, catalog, runtime) -> tuple[Any, Any]:
    """The LLM client and item text of an arm whose recommender calls the LLM (``llm_crs``,
    ``llm_instructable``), (None, None) for any other arm.

    Built like the user panel's client (agents/users/llm_panel.py): the run's endpoint and its
    SQLite
    record/replay cache. The cell closes the client and logs its calls.
    """
    if arm.recommender.type not in LLM_RECOMMENDERS or runtime is None:
        return None, None
    from pathlib import Path

    mode = runtime.cache_mode or scenario.llm.cache.mode
    cache = CallCache(Path(runtime.cache_path), mode, runtime.run_id)
    client = LLMClient(endpoint_for(scenario, runtime.base_url), cache)
    if scenario.population.source == "calibrated":  # real titles (e.g. MovieLens)
        return client, calibrated_item_text(scenario.population.path, catalog)
    return client, SyntheticItemText(catalog, catalog.n_topics)
