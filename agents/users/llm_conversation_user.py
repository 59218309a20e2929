"""LLM users in conversations: one structured call per conversation and turn, rule fallback.

The LLM conversational user wraps the rule agenda user, as
:class:`recarena.agents.users.llm_user.PanelPolicy`
wraps the rule page user:

* ``targets`` are the agenda user's, so every user model (and every arm) chases the same hidden
  target in the same session;
* ``respond`` lets the agenda user answer *every* row first (vectorised, cheap). Its answer
  supplies the true utilities the logs record, the patience bookkeeping, and the fallback for a
  turn whose LLM call failed after retries and repair (marked ``fallback`` in ``llm_calls``);
* for the panel users (the same users as the LLM page panel: ``population.llm_panel``), one call
  per turn, all of a turn batch's calls concurrent in one ``gather``, decides the act.

The LLM sees its persona, the memories most similar to the turn, what it is looking for (its
hidden target, in words), the conversation so far, and the system's move: a question with the
facet's values as options, or the recommended items it examined (title and facet values). The
answer's JSON schema is tightened per turn so that SmolLM2-135M's grammar-constrained output is
always a valid act: choices that depend on each other are ONE enum (``"accept 2"`` rather than an
act plus a slot number; the option, ``"any"`` or ``"quit"`` as the answer to a question), and
``facet=value`` critiques and the short free text are enums and capped strings.

Critiques are read leniently: ``want`` names the value wanted instead, ``avoid`` a value to drop;
when both name different facets the ``want`` wins; a critique that names nothing is a reject.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from recarena.agents.llm.choices import (
    NONE_LABEL,
    STARS,
    gumbel_index,
    key_gumbels,
    key_uniform,
    slot_labels,
)
from recarena.agents.llm.client import CallContext
from recarena.agents.llm.prompts import render
from recarena.simulator.core.dialogue import (
    ACCEPT,
    ASK,
    CRITIQUE,
    INFORM,
    QUIT,
    REJECT,
    UNKNOWN,
    Facets,
    TurnBatch,
    UserActs,
)
from recarena.simulator.core.types import PAD_ITEM

SAY_CHARS = 40
_CRITIQUE_OR_REJECT = -1
"""Placeholder act of a scored "none of them", replaced by the agenda user's objection."""
_U_ANSWER, _U_STARS = 0x5C11, 0x5C12
"""Purposes of a scored turn's counter-based uniforms (apart from the page panel's)."""
NONE = "none"
ANY = "any"
QUIT_WORD = "quit"


class QuestionAnswer(BaseModel):
    """The user's answer to "which <facet> would you like?": an option, "any" or "quit"."""

    answer: str = Field(min_length=1, max_length=200)
    say: str = Field("", max_length=SAY_CHARS * 4)


class RecommendationAnswer(BaseModel):
    """The user's answer to a recommendation: ``act`` is "accept <slot>" (1-based) or a word."""

    act: str = Field(pattern="^(accept [0-9]+|critique|reject|quit)$")
    want: str = NONE
    avoid: str = NONE
    rating: int = Field(3, ge=1, le=5)
    say: str = Field("", max_length=SAY_CHARS * 4)


def pair_labels(facets: Facets, pairs: list[tuple[int, int]]) -> list[str]:
    return [f"{facets.names[f]}={facets.values[f][v]}" for f, v in pairs]


def all_pairs(facets: Facets) -> list[tuple[int, int]]:
    return [(f, v) for f in range(len(facets.names)) for v in range(len(facets.values[f]))]


def shown_pairs(facets: Facets, items: np.ndarray) -> list[tuple[int, int]]:
    """The (facet, value) pairs present on the shown items, in facet then value order."""
    codes = facets.codes[items]
    return [
        (f, int(v))
        for f in range(len(facets.names))
        for v in np.unique(codes[:, f]).tolist()
        if v != UNKNOWN
    ]


def question_options(facets: Facets, facet: int) -> list[str]:
    return [*facets.values[facet], ANY, QUIT_WORD]


def recommendation_acts(n_slots: int) -> list[str]:
    return [*(f"accept {slot}" for slot in range(1, n_slots + 1)), "critique", "reject", "quit"]


def question_schema(facets: Facets, facet: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "answer": {"enum": question_options(facets, facet)},
            "say": {"type": "string", "maxLength": SAY_CHARS},
        },
        "required": ["answer", "say"],
    }


def recommendation_schema(facets: Facets, items: np.ndarray) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "act": {"enum": recommendation_acts(len(items))},
            "want": {"enum": [*pair_labels(facets, all_pairs(facets)), NONE]},
            "avoid": {"enum": [*pair_labels(facets, shown_pairs(facets, items)), NONE]},
            "rating": {"enum": [1, 2, 3, 4, 5]},
            "say": {"type": "string", "maxLength": SAY_CHARS},
        },
        "required": ["act", "want", "avoid", "rating", "say"],
    }


def _question_check(facets: Facets, facet: int):
    options = question_options(facets, facet)

    def check(answer: QuestionAnswer) -> str | None:
        if answer.answer not in options:
            return f"answer: {answer.answer!r} is not one of {options}"
        return None

    return check


def _recommendation_check(facets: Facets, n_slots: int):
    acts = recommendation_acts(n_slots)
    labels = set(pair_labels(facets, all_pairs(facets))) | {NONE}

    def check(answer: RecommendationAnswer) -> str | None:
        if answer.act not in acts:
            return f"act: {answer.act!r} is not one of {acts}"
        for key in ("want", "avoid"):
            if getattr(answer, key) not in labels:
                return f"{key}: {getattr(answer, key)!r} is not an attribute=value of the catalog"
        return None

    return check


def describe_target(facets: Facets, target: np.ndarray) -> str:
    wanted = [
        f"{name}: {facets.values[f][int(target[f])]}"
        for f, name in enumerate(facets.names)
        if int(target[f]) != UNKNOWN
    ]
    return "a film with " + ", ".join(wanted) if wanted else "any film that looks good"


def describe_items(facets: Facets, items: np.ndarray, titles: list[str]) -> list[str]:
    lines = []
    for item, title in zip(items.tolist(), titles, strict=True):
        parts = [
            f"{name}: {facets.values[f][code]}"
            for f, name in enumerate(facets.names)
            if (code := int(facets.codes[item, f])) != UNKNOWN
        ]
        lines.append(f"{title} ({', '.join(parts)})" if parts else title)
    return lines


def examined_items(turn: TurnBatch, row: int) -> np.ndarray:
    """The recommended items the row's user looked at, in slot order (as the agenda user)."""
    slots = turn.system.slates.items[row]
    return slots[turn.examined[row] & (slots != PAD_ITEM)]


@dataclass(frozen=True)
class LLMAct:
    """One row's decision, already mapped onto the contract's codes."""

    act: int
    facet: int = UNKNOWN
    value: int = UNKNOWN
    avoided_value: int = UNKNOWN
    accepted: int = PAD_ITEM
    rating: float = float("nan")
    text: str = ""


def _label_to_pair(facets: Facets, label: str) -> tuple[int, int] | None:
    if label == NONE or "=" not in label:
        return None
    name, _, value = label.partition("=")
    if name not in facets.names:
        return None
    f = facets.index(name)
    return (f, facets.values[f].index(value)) if value in facets.values[f] else None


def map_question(answer: QuestionAnswer, facets: Facets, facet: int) -> LLMAct:
    say = answer.say.strip()[:SAY_CHARS]
    if answer.answer == QUIT_WORD:
        return LLMAct(QUIT, text=say)
    value = facets.values[facet].index(answer.answer) if answer.answer != ANY else UNKNOWN
    return LLMAct(INFORM, facet, value, text=say)


def map_recommendation(answer: RecommendationAnswer, facets: Facets, items: np.ndarray) -> LLMAct:
    """Map an answer about the shown ``items`` (the slots the prompt listed, in order)."""
    say = answer.say.strip()[:SAY_CHARS]
    if answer.act == "quit":
        return LLMAct(QUIT, text=say)
    if answer.act.startswith("accept "):
        slot = int(answer.act.removeprefix("accept "))
        return LLMAct(ACCEPT, accepted=int(items[slot - 1]), rating=float(answer.rating),
                      text=say)  # fmt: skip
    if answer.act == "reject":
        return LLMAct(REJECT, text=say)
    want, avoid = _label_to_pair(facets, answer.want), _label_to_pair(facets, answer.avoid)
    if want is None and avoid is None:
        return LLMAct(REJECT, text=say)
    facet = want[0] if want is not None else avoid[0]  # type: ignore[index]
    value = want[1] if want is not None else UNKNOWN
    if avoid is not None and avoid[0] == facet:
        avoided = avoid[1]
    else:  # "not that": the first shown item's value of the criticised facet, if not wanted
        first = int(facets.codes[items[0], facet])
        avoided = first if first != value else UNKNOWN
    return LLMAct(CRITIQUE, facet, value, avoided, text=say)


def _mood(patience: float) -> str:
    return "impatient: this may be your last try" if patience <= 2.0 else ""


class LLMConversationUser:
    """ConversationalUser: panel users answer through the LLM, everyone else by the rules.

    ``rule`` is the agenda user (its ``cfg`` prices patience for the LLM's acts too); ``llm``
    is the page panel's :class:`recarena.agents.users.llm_user.LLMUsers` (personas, memories,
    item text and the cell's LLM client), so a user has one persona and one memory across list pages
    and conversations: an accepted item enters the memory through the engine's
    ``PanelPolicy.after_page`` like a clicked one, and reflections follow the panel's schedule.
    """

    needs_transcript = True  # the dialogue loop renders utterances only for policies that read

    def __init__(self, rule, llm, n_users: int) -> None:
        self.rule = rule
        self.llm = llm
        self.client = llm.client
        self.is_llm = llm.panel_mask(n_users)

    def targets(self, users: np.ndarray, session_ids: np.ndarray, facets: Facets) -> np.ndarray:
        return self.rule.targets(users, session_ids, facets)

    def respond(self, turn: TurnBatch) -> UserActs:
        base = self.rule.respond(turn)
        users = turn.state.requests.user
        rows = np.flatnonzero(self.is_llm[users])
        if rows.size == 0:
            return base
        answers = self.client.run([self._turn(turn, int(r)) for r in rows])
        act, facet, value = base.act.copy(), base.facet.copy(), base.value.copy()
        avoided, accepted, rating = (
            base.avoided_value.copy(),
            base.accepted.copy(),
            base.rating.copy(),
        )
        text = list(base.text)
        patience = base.patience.copy()
        cfg = self.rule.cfg
        recommended = turn.system.act != ASK
        for row, answer in zip(rows.tolist(), answers, strict=True):
            if answer is None:
                continue  # fallback: the agenda user's act for this turn stands
            if answer.act == _CRITIQUE_OR_REJECT:  # scored "none of them": the rule's objection
                answer = _objection(base, row)
            elif answer.act == ACCEPT and np.isnan(answer.rating):
                answer = replace(answer, rating=self._rule_rating(turn, base, row, answer.accepted))
            rejected = recommended[row] and answer.act != ACCEPT
            lost = cfg.turn_cost + (cfg.rejection_cost if rejected else 0.0)
            patience[row] = turn.patience[row] - lost  # the agenda user's rule, for the LLM's act
            act[row], facet[row], value[row] = answer.act, answer.facet, answer.value
            avoided[row], accepted[row], rating[row] = (
                answer.avoided_value,
                answer.accepted,
                answer.rating,
            )
            text[row] = answer.text
        return replace(
            base,
            act=act,
            facet=facet,
            value=value,
            avoided_value=avoided,
            accepted=accepted,
            rating=rating.astype(np.float32),
            patience=patience.astype(np.float32),
            text=tuple(text),
        )

    async def _turn(self, turn: TurnBatch, row: int) -> LLMAct | None:
        if self.client.scoring:
            scored = await self._score_turn(turn, row)
            if scored is not None or self.client.scoring:
                return scored  # else: the endpoint has no logprobs; answer in JSON instead
        state = turn.state
        requests, facets = state.requests, state.facets
        user = int(requests.user[row])
        wants = describe_target(facets, turn.target[row])
        asking = int(turn.system.act[row]) == ASK
        values: dict[str, Any] = {"question": None, "options": [], "slate": []}
        model: type[QuestionAnswer] | type[RecommendationAnswer]
        if asking:
            facet = int(turn.system.facet[row])
            values |= {"question": facets.names[facet], "options": list(facets.values[facet])}
            schema, model, check = (
                question_schema(facets, facet),
                QuestionAnswer,
                _question_check(facets, facet),
            )
            query = f"{facets.names[facet]} {wants}"
        else:
            items = examined_items(turn, row)
            if items.size == 0:
                return None  # nothing looked at: the agenda user's answer stands
            lines = describe_items(facets, items, self.llm.item_text.titles(items))
            values["slate"] = lines
            schema, model, check = (
                recommendation_schema(facets, items),
                RecommendationAnswer,
                _recommendation_check(facets, len(items)),
            )
            query = " ".join(lines)
        panel = self.llm.panel
        prompt = render(
            "conversation_user.j2",
            persona=self.llm.personas[user].text,
            memories=self.llm.memory[user].retrieve(query, panel.retrieve),
            wants=wants,
            patience=_mood(float(turn.patience[row])),
            transcript=list(state.transcript[row]),
            **values,
        )
        context = CallContext(
            "turn", user, int(requests.session[row]), int(requests.page[row]), requests.time
        )
        messages = [
            {"role": "system", "content": self.llm.system},
            {"role": "user", "content": prompt},
        ]
        result = await self.client.structured(messages, model, context, check, schema)
        if result.answer is None:
            return None
        if asking:
            return map_question(result.answer, facets, int(turn.system.facet[row]))
        return map_recommendation(result.answer, facets, items)

    def _rule_rating(self, turn: TurnBatch, base: UserActs, row: int, item: int) -> float:
        """The agenda user's rating of an accepted ``item`` (``llm.ratings: rule``)."""
        slot = int(np.flatnonzero(turn.system.slates.items[row] == item)[0])
        surplus = float(base.utility[row, slot]) - self.rule.no_click_utility
        return float(np.clip(np.rint(3.0 + 1.5 * surplus), 1, 5))

    async def _score_turn(self, turn: TurnBatch, row: int) -> LLMAct | None:
        """One forward pass: the first answer token chooses among numbered options.

        A question lists the facet's values (0: no preference); a recommendation lists the
        examined items (0: none of them), and with ``llm.ratings: ask`` the second token is
        the rating. The choice and the rating are drawn with the turn's counter-based uniforms,
        so the same turn under two arms gets the same answer whatever the cache holds.
        Quitting is not an option: the loop ends a conversation whose patience runs out, by the
        agenda user's costs applied to the LLM's act. "None of them" is answered with the agenda
        user's objection (its critique, else a reject), because which attribute to criticise is
        a second choice the single scored token does not make.
        """
        state = turn.state
        requests, facets = state.requests, state.facets
        user = int(requests.user[row])
        wants = describe_target(facets, turn.target[row])
        asking = int(turn.system.act[row]) == ASK
        rate = False
        if asking:
            facet = int(turn.system.facet[row])
            options = list(facets.values[facet])
            values: dict[str, Any] = {"question": facets.names[facet], "options": options,
                                      "slate": []}  # fmt: skip
            query = [f"{facets.names[facet]} {wants}"]
        else:
            items = examined_items(turn, row)
            if items.size == 0:
                return None  # nothing looked at: the agenda user's answer stands
            lines = describe_items(facets, items, self.llm.item_text.titles(items))
            options = lines
            values = {"question": None, "options": [], "slate": lines}
            query = lines
            rate = self.llm.ratings == "ask"
        labels = slot_labels(len(options))
        prompt = render(
            "conversation_score.j2",
            wants=wants,
            patience=_mood(float(turn.patience[row])),
            transcript=list(state.transcript[row]),
            labels=labels,
            rate=rate,
            **values,
        )
        messages = self.llm.profile_messages(user, query, prompt)
        session, page = int(requests.session[row]), int(requests.page[row])
        context = CallContext("turn", user, session, page, requests.time)
        choices = [NONE_LABEL, *labels]
        key = int(turn.noise_key[row])
        # a Gumbel-max draw whose noise steers the endpoint when a rating follows (one call)
        noise = key_gumbels(key, _U_ANSWER, len(choices))
        asked = [choices, STARS] if rate else [choices]
        scored = await self.client.score(messages, asked, context, noise if rate else None)
        if scored.probs is None or scored.probs[0] is None:
            return None  # fallback to the agenda user, or no logprobs (caller switches mode)
        choice = gumbel_index(scored.probs[0], noise)
        scored.records[-1].choice = choice
        if asking:
            value = choice - 1 if choice > 0 else UNKNOWN
            return LLMAct(INFORM, int(turn.system.facet[row]), value)
        if choice == 0:
            return LLMAct(_CRITIQUE_OR_REJECT)
        accepted = int(items[choice - 1])
        if rate:
            title = self.llm.item_text.titles(items[choice - 1 : choice])[0]
            rating = await self.llm.scored_rating(
                messages, scored, choices[choice], title,
                CallContext("rating", user, session, page, requests.time),
                key_uniform(key, _U_STARS),
            )  # fmt: skip
            if rating is None:
                return None
        else:
            rating = float("nan")  # llm.ratings: rule; respond rates it as the agenda user does
        return LLMAct(ACCEPT, accepted=accepted, rating=rating)


def _objection(base: UserActs, row: int) -> LLMAct:
    """The agenda user's critique of this turn if it made one, else a reject."""
    if int(base.act[row]) == CRITIQUE:
        return LLMAct(
            CRITIQUE, int(base.facet[row]), int(base.value[row]), int(base.avoided_value[row])
        )
    return LLMAct(REJECT)
