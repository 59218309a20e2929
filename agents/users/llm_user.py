"""LLM-driven users: one structured call per page, reflections after sessions, rule fallback.

An LLM user is a user policy like the rule-based one: it answers a :class:`PageBatch` with a
:class:`ResponseBatch`. :class:`PanelPolicy` routes each row of a batch to the rule policy or,
for the users on the LLM panel, to :class:`LLMUsers`, so one scenario can hold 20 LLM users
inside 500 rule users and log both in the same tables.

The rule policy answers *every* row first (it is vectorised and cheap). Its answer is the
ground-truth utility the logs record for all users, and the fallback for a page whose LLM call
failed after retries and repair. A fallback is marked in ``llm_calls``.

Per page the LLM sees its persona, the memories most similar to the slate, the slate (title,
genres and rating per slot) and its session state (page number, tiredness). It answers which
slots it examined, which one it clicked (or none), a rating, and whether it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydantic import BaseModel, Field

from recarena.agents.llm.choices import (
    STARS,
    gumbel_index,
    key_gumbels,
    key_uniform,
    slot_labels,
)
from recarena.agents.llm.client import CallContext, LLMClient, Scored, draw_index
from recarena.agents.llm.item_text import ItemText, compact_line
from recarena.agents.llm.prompts import render, text
from recarena.agents.users.personas import Persona
from recarena.agents.users.typed_memory import make_memory
from recarena.simulator.core.scenario import LLMPanel, Population
from recarena.simulator.core.types import PAD_ITEM, PageBatch, ResponseBatch


class PageAnswer(BaseModel):
    """What an LLM user says about one page (slot numbers are 1-based as shown)."""

    examined: list[int] = Field(default_factory=list, max_length=200)
    click: int = Field(0, ge=0)
    rating: int = Field(3, ge=1, le=5)
    leave: bool = False
    reason: str = Field("", max_length=200)


class ReflectionAnswer(BaseModel):
    reflection: str = Field(min_length=1, max_length=280)  # fits in max_tokens 96


def _page_check(k: int):
    def check(answer: PageAnswer) -> str | None:
        if answer.click > k:
            return f"click: slot {answer.click} does not exist (slots 1..{k})"
        bad = [s for s in answer.examined if not 1 <= s <= k]
        if bad:
            return f"examined: slots {bad} do not exist (slots 1..{k})"
        return None

    return check


REASON_CHARS = 60


def page_schema(k: int) -> dict:
    """The page answer's JSON schema, tightened for a page of ``k`` slots.

    Slot numbers become enums of the slots that exist and the reason is capped, so a server that
    compiles the schema into a grammar (llama.cpp) cannot produce an out-of-range slot or run
    out of tokens mid-sentence; the pydantic model and :func:`_page_check` still validate
    whatever comes back from endpoints that only treat the schema as a hint.
    """
    slots = list(range(1, k + 1))
    return {
        "type": "object",
        "properties": {
            "examined": {"type": "array", "items": {"enum": slots}, "maxItems": k},
            "click": {"enum": [0, *slots]},
            "rating": {"enum": [1, 2, 3, 4, 5]},
            "leave": {"type": "boolean"},
            "reason": {"type": "string", "maxLength": REASON_CHARS},
        },
        "required": ["examined", "click", "rating", "leave", "reason"],
    }


_U_CLICK, _U_RATING, _U_LEAVE = 0x5C01, 0x5C02, 0x5C03
"""Purposes of the LLM panel's counter-based uniforms (far from slot indices and the rule
policy's purposes, so no stream is reused)."""


def rule_rating(cfg: Population, surplus: float) -> float:
    """The rule policy's rating of a chosen item (agents/users/rule_user.py), for one row:
    the surplus over not clicking, mapped to stars linearly or by calibrated cut points."""
    if cfg.rating_thresholds is None:
        return float(np.clip(np.rint(3.0 + 1.5 * surplus), 1, 5))
    return 1.0 + float(np.searchsorted(cfg.rating_thresholds, surplus, side="right"))


def tiredness(fatigue: float) -> str:
    """How a page prompt words the user's fatigue."""
    return "fresh" if fatigue < 0.3 else "a little tired" if fatigue < 0.8 else "tired"


@dataclass(frozen=True)
class LLMPage:
    """The LLM's decision for one row, already mapped onto slot indices (0-based)."""

    examined: np.ndarray  # [k] bool
    click: int  # -1 for none
    rating: float
    leave: bool | None  # None: the fatigue hazard decides (scoring mode)


class LLMUsers:
    """The panel's personas and memories, and the calls that make them act."""

    def __init__(
        self,
        panel: LLMPanel,
        personas: list[Persona],
        item_text: ItemText,
        client: LLMClient,
        ratings: str = "ask",
    ) -> None:
        self.panel = panel
        self.ratings = ratings  # ask: from logprobs; rule: the rule policy's rating model
        self.personas = {p.user_id: p for p in personas}
        self.item_text = item_text
        self.client = client
        self.memory = {p.user_id: make_memory(panel.memory, panel.memory_size) for p in personas}
        self.sessions_done = dict.fromkeys(self.personas, 0)
        self.system = text("system.txt")
        self.system_score = text("system_score.txt")

    def panel_mask(self, n_users: int) -> np.ndarray:
        """[n_users] bool: which users are on this panel."""
        mask = np.zeros(n_users, bool)
        mask[list(self.personas)] = True
        return mask

    def json_messages(self, prompt: str) -> list[dict[str, str]]:
        """Generate-mode messages: the JSON instructions as system, the prompt as user."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]

    def _memories(self, user: int, slate: list[str]) -> list[str]:
        panel = self.panel
        return self.memory[user].retrieve(" ".join(slate), panel.retrieve, panel.memory_tokens)

    async def _page(self, pages: PageBatch, row: int) -> LLMPage | None:
        if self.client.scoring:
            scored = await self._score_page(pages, row)
            if scored is not None or self.client.scoring:
                return scored  # else: the endpoint has no logprobs; answer in JSON instead
        requests = pages.requests
        user = int(requests.user[row])
        items = pages.slates.items[row]
        shown = items[items != PAD_ITEM]
        slate = self.item_text.lines(shown)
        memories = self._memories(user, slate)
        prompt = render(
            "page.j2",
            persona=self.personas[user].text,
            memories=memories,
            page=int(requests.page[row]),
            tiredness=tiredness(float(pages.fatigue[row])),
            explore=bool(pages.explore[row]),
            slate=slate,
        )
        context = CallContext(
            "page", user, int(requests.session[row]), int(requests.page[row]), requests.time
        )
        result = await self.client.structured(
            self.json_messages(prompt),
            PageAnswer,
            context,
            _page_check(len(shown)),
            page_schema(len(shown)),
        )
        answer: PageAnswer | None = result.answer
        if answer is None:
            return None
        # slots of the shown items map back onto the page's slots (PAD slots are never shown)
        slot_of = np.flatnonzero(items != PAD_ITEM)
        examined = np.zeros(items.shape[0], bool)
        examined[slot_of[[s - 1 for s in answer.examined]]] = True
        click = int(slot_of[answer.click - 1]) if answer.click else -1
        if click >= 0:
            examined[click] = True  # whoever clicks has looked
        return LLMPage(examined, click, float(answer.rating), bool(answer.leave))

    def profile_messages(self, user: int, slate: list[str], prompt: str) -> list[dict[str, str]]:
        """Scoring-mode messages: a stable prefix (instructions, persona, memories), then the page.

        Everything that is the same from page to page comes first, so a server that keeps the
        KV cache of the previous request (llama.cpp, vLLM prefix caching) only evaluates the
        page-specific tail.
        """
        profile = render(
            "profile.j2",
            persona=self.personas[user].text,
            memories=self._memories(user, slate),
        )
        return [
            {"role": "system", "content": f"{self.system_score}\n\n{profile}"},
            {"role": "user", "content": prompt},
        ]

    async def _score_page(self, pages: PageBatch, row: int) -> LLMPage | None:
        """One forward pass: the click from the first token's logprobs, the rating from the
        second; both drawn with the page's counter-based uniforms, so the same page under two
        arms gets the same decision whatever the cache holds. The click is a Gumbel-max draw
        whose noise also steers the endpoint's first token (:meth:`LLMClient.score`), so the
        second position rates the film drawn and no follow-up call is needed."""
        requests = pages.requests
        user = int(requests.user[row])
        items = pages.slates.items[row]
        slot_of = np.flatnonzero(items != PAD_ITEM)
        shown = items[slot_of]
        slate = [compact_line(line) for line in self.item_text.lines(shown)]
        labels = slot_labels(len(shown))
        prompt = render(
            "page_score.j2",
            page=int(requests.page[row]),
            tiredness=tiredness(float(pages.fatigue[row])),
            explore=bool(pages.explore[row]),
            slate=slate,
            labels=labels,
            rate=self.ratings == "ask",
        )
        messages = self.profile_messages(user, slate, prompt)
        session, page = int(requests.session[row]), int(requests.page[row])
        context = CallContext("page", user, session, page, requests.time)
        options = ["0", *labels]
        key = int(pages.noise_key[row])
        noise = key_gumbels(key, _U_CLICK, len(options))
        rate = self.ratings == "ask"
        asked = [options, STARS] if rate else [options]
        # steered when rating: the second position is then the rating of the drawn film
        scored = await self.client.score(messages, asked, context, noise if rate else None)
        if scored.probs is None:
            return None  # fallback to the rule answer, or no logprobs (caller switches mode)
        record = scored.records[-1]
        slots = scored.probs[0]
        assert slots is not None  # probs is None as a whole when the first position has none
        choice = gumbel_index(slots, noise)
        record.choice = choice
        examined = pages.examined[row].copy()
        if choice == 0:
            return LLMPage(examined, -1, float("nan"), None)
        click = int(slot_of[choice - 1])
        examined[click] = True  # whoever clicks has looked
        if self.ratings == "rule":  # NaN: the caller rates the choice with the rule model
            return LLMPage(examined, click, float("nan"), None)
        title = self.item_text.titles(shown[choice - 1 : choice])[0]
        rating_context = CallContext("rating", user, session, page, requests.time)
        stars = await self.scored_rating(
            messages, scored, options[choice], title, rating_context, key_uniform(key, _U_RATING)
        )
        if stars is None:
            return None  # the rating call's record carries the fallback
        return LLMPage(examined, click, stars, None)

    async def scored_rating(
        self,
        messages: list[dict[str, str]],
        scored: Scored,
        label: str,
        title: str,
        context: CallContext,
        u: float,
    ) -> float | None:
        """The stars for the option ``label`` that was drawn from ``scored``, drawn with ``u``.

        The answer's second position holds the rating distribution only if the model's own
        first token was ``label``; otherwise one follow-up call asks about that item, so the
        rating is always of the item the user actually chose. None when that call fails.
        """
        record = scored.records[-1]
        stars = None
        if scored.probs is not None and len(scored.probs) > 1 and scored.generated[:1] == [label]:
            stars = scored.probs[1]
        if stars is None:
            follow_up = [
                *messages,
                {"role": "assistant", "content": label},
                {"role": "user", "content": render("rating_score.j2", title=title)},
            ]
            rated = await self.client.score(follow_up, [STARS], context)
            if rated.probs is None or rated.probs[0] is None:
                return None
            stars, record = rated.probs[0], rated.records[-1]
        values = np.arange(1.0, 6.0)
        rating = draw_index(stars, u)
        record.expected = float(stars @ values)
        if record is not scored.records[-1]:
            record.choice = rating
        return float(values[rating])

    def respond(self, pages: PageBatch, rows: np.ndarray) -> list[LLMPage | None]:
        """One concurrent call per row; None where the call failed (the caller falls back)."""
        return self.client.run([self._page(pages, int(r)) for r in rows])

    def remember(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, now: float):
        titles = self.item_text.titles(items)
        genres = self.item_text.genres(items)
        for user, title, genre, rating in zip(
            users.tolist(), titles, genres, ratings.tolist(), strict=True
        ):
            self.memory[user].add_interaction(
                f"watched {title} ({'/'.join(genre)}), rated {int(rating)}/5", now
            )

    async def _reflect(self, user: int, session_id: int, lines: list[str], now: float):
        prompt = render("reflection.j2", persona=self.personas[user].text, session=lines)
        context = CallContext("reflection", user, session_id, -1, now)
        result = await self.client.structured(self.json_messages(prompt), ReflectionAnswer, context)
        if result.answer is not None:
            self.memory[user].add_reflection(result.answer.reflection.strip(), now)

    def end_sessions(self, users: np.ndarray, sessions: np.ndarray, now: float) -> None:
        """Close the panel users' sessions; every N-th session earns a reflection call."""
        every = self.panel.reflect_every_sessions
        calls = []
        for user, session in zip(users.tolist(), sessions.tolist(), strict=True):
            if user not in self.personas:
                continue
            lines = self.memory[user].end_session()
            self.sessions_done[user] += 1
            if every and self.sessions_done[user] % every == 0:
                calls.append(self._reflect(user, session, lines, now))
        self.client.run(calls)


class PanelPolicy:
    """Routes a page batch: panel users to the LLM, everyone else (and fallbacks) to rules."""

    def __init__(self, rule_policy, llm: LLMUsers, cfg: Population, n_users: int) -> None:
        self.rule = rule_policy
        self.llm = llm
        self.cfg = cfg
        self.is_llm = llm.panel_mask(n_users)

    def utility(self, users, items, explore):
        return self.rule.utility(users, items, explore)

    def respond(self, pages: PageBatch) -> ResponseBatch:
        base = self.rule.respond(pages)
        rows = np.flatnonzero(self.is_llm[pages.requests.user])
        if rows.size == 0:
            return base
        answers = self.llm.respond(pages, rows)
        examined, clicked = base.examined.copy(), base.clicked.copy()
        rating, leave = base.rating.copy(), base.leave.copy()
        fatigue, value = base.fatigue.copy(), base.extra["value"].copy()
        cfg = self.cfg
        for row, answer in zip(rows.tolist(), answers, strict=True):
            if answer is None:
                continue  # fallback: the rule answer for this page stands
            examined[row] = answer.examined
            clicked[row] = False
            has_click = answer.click >= 0
            if has_click:
                clicked[row, answer.click] = True
                chosen = base.utility[row, answer.click]
                value[row] = chosen - cfg.no_click_utility
                rating[row] = (
                    rule_rating(cfg, value[row]) if np.isnan(answer.rating) else answer.rating
                )
            else:
                value[row] = 0.0
                rating[row] = np.nan
            fatigue[row] = (
                pages.fatigue[row]
                + cfg.fatigue_per_page
                + (0.0 if has_click else cfg.fatigue_no_click)
            )
            if answer.leave is None:  # scoring mode: the fatigue hazard, with the page's uniform
                u = key_uniform(int(pages.noise_key[row]), _U_LEAVE)
                leave[row] = u < 1.0 - np.exp(-float(fatigue[row]))
            else:
                leave[row] = answer.leave
        llm_rows = np.zeros(len(pages.requests), bool)
        llm_rows[rows] = [a is not None for a in answers]
        extra = {**base.extra, "value": value, "llm": llm_rows}
        return replace(
            base,
            examined=examined,
            clicked=clicked,
            rating=rating,
            leave=leave,
            fatigue=fatigue.astype(np.float32),
            extra=extra,
        )

    def after_page(self, users, items, ratings, now: float) -> None:
        """Clicked items enter the panel users' memories."""
        panel = self.is_llm[users]
        if panel.any():
            self.llm.remember(users[panel], items[panel], ratings[panel], now)

    def end_sessions(self, users: np.ndarray, sessions: np.ndarray, now: float) -> None:
        panel = self.is_llm[users]
        if panel.any():
            self.llm.end_sessions(users[panel], sessions[panel], now)
