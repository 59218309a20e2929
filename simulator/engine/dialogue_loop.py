"""The conversation turn loop: one turn for every active conversation per tick, as ONE batch.

An arm whose surface is ``conversation`` serves turns instead of pages (``SimulationModel._serve``
delegates here). Per tick:

1. new conversations get their hidden targets (``user.targets``) and full patience;
2. the engine builds the :class:`DialogueState` from its tracker and calls ``recommender.act``
   (a list recommender is wrapped by ``recarena.recommenders.crs.as_conversational``);
3. recommended slots are examined with list-style position attention (same counter-based keys
   as pages: ``combine(hash_base, session_id * 1024 + turn)``);
4. ``user.respond`` answers every conversation at once; the tracker absorbs the acts;
5. logging: two ``turns`` rows per turn (system, then user); recommended items as ``exposures``
   (page = turn, clicked = accepted) and accepted items as ``interactions``, through the
   engine's own helpers, so consumption, retraining and every existing metric work unchanged;
6. conversations end on accept (``accepted``), patience at zero (``patience``), a quit
   (``quit``) or after ``max_turns`` turns (``max_turns``).

Transcript strings are rendered only when the recommender or the user declares
``needs_transcript`` (LLM policies); rule policies run on arrays alone.

The user policy is chosen in :func:`build_conversational_user`, the one hook for other
conversational users (LLM, mixed populations).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recarena.agents.users.agenda_user import AgendaUser
from recarena.agents.users.calibrated import CalibratedPopulation
from recarena.agents.users.llm_conversation_user import LLMConversationUser
from recarena.recommenders.crs import as_conversational
from recarena.simulator.core.dialogue import (
    ACCEPT,
    ASK,
    QUIT,
    RECOMMEND,
    SYSTEM_ACTS,
    UNKNOWN,
    USER_ACTS,
    ConversationalUser,
    DialogueState,
    Facets,
    SystemActs,
    TurnBatch,
    UserActs,
)
from recarena.simulator.core.rng import combine
from recarena.simulator.core.scenario import ConversationSurface, ConversationUsers, ListSurface
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    RequestBatch,
    ResponseBatch,
    SlateBatch,
    read_only,
)
from recarena.simulator.engine.arrivals import DAY
from recarena.simulator.engine.facets import FacetIndex, RealAttributes
from recarena.simulator.engine.slate_guard import GuardedRecommender, as_checked
from recarena.simulator.engine.surfaces import ListView

if TYPE_CHECKING:
    from recarena.simulator.engine.outcomes import Outcomes
    from recarena.simulator.engine.sessions import ActiveSessions
    from recarena.simulator.engine.slate_guard import SlateGuard
    from recarena.simulator.engine.world import World

_FACET_SALT, _USER_SALT = 41, 42


def subkey(key: np.uint64, salt: int) -> np.uint64:
    """A derived counter-based key (array arithmetic: numpy warns on uint64 scalar wrap)."""
    return np.uint64(combine(np.array([key], np.uint64), salt)[0])


def build_conversational_user(world: World, active: ActiveSessions) -> ConversationalUser:
    """THE hook choosing the conversational user policy of a cell.

    Rule populations get the agenda user. In LLM and mixed populations (``population.model``)
    the LLM panel's users answer through the LLM (agents/users/llm_conversation_user.py), with the
    agenda user's targets and its answers as the fallback; everyone else stays an agenda user.
    """
    cfg = world.scenario.population
    conversation = cfg.conversation or ConversationUsers()

    def truth(requests: RequestBatch, items: np.ndarray) -> np.ndarray:
        return world.policy.utility(requests.user, items, active.explore)

    agenda = AgendaUser(
        conversation,
        world.user_state.taste,
        truth,
        subkey(world.hash_base, _USER_SALT),
        cfg.no_click_utility,
    )
    if world.panel is not None:  # added by the LLM layer: the panel converses through the LLM
        return LLMConversationUser(agenda, world.panel.llm, cfg.users)
    return agenda


@dataclass
class Tracker:
    """Dialogue state per active conversation, row-aligned with the active sessions."""

    target: np.ndarray  # [B, F] int16 hidden target (truth)
    patience: np.ndarray  # [B] float32
    asked: np.ndarray  # [B, F] bool
    preferred: np.ndarray  # [B, F] int16
    avoided: np.ndarray  # [B, F, V] bool
    shown: np.ndarray  # [B, S] int64, PAD_ITEM-padded, in order shown
    n_shown: np.ndarray  # [B] int32
    transcript: list[list[str]] | None  # [B] rendered utterances; None when no policy reads text

    @staticmethod
    def empty(n_facets: int, n_values: int, width: int, keep_text: bool) -> Tracker:
        return Tracker(
            target=np.zeros((0, n_facets), np.int16),
            patience=np.zeros(0, np.float32),
            asked=np.zeros((0, n_facets), bool),
            preferred=np.zeros((0, n_facets), np.int16),
            avoided=np.zeros((0, n_facets, n_values), bool),
            shown=np.zeros((0, width), np.int64),
            n_shown=np.zeros(0, np.int32),
            transcript=[] if keep_text else None,
        )

    def __len__(self) -> int:
        return int(self.patience.shape[0])

    def add(self, target: np.ndarray, patience: float) -> None:
        n = target.shape[0]
        new = {
            "target": target.astype(np.int16),
            "patience": np.full(n, patience, np.float32),
            "asked": np.zeros((n, *self.asked.shape[1:]), bool),
            "preferred": np.full((n, *self.preferred.shape[1:]), UNKNOWN, np.int16),
            "avoided": np.zeros((n, *self.avoided.shape[1:]), bool),
            "shown": np.full((n, self.shown.shape[1]), PAD_ITEM, np.int64),
            "n_shown": np.zeros(n, np.int32),
        }
        for name, array in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), array]))
        if self.transcript is not None:  # per-conversation lists only for text policies
            self.transcript.extend([] for _ in range(n))

    def keep(self, mask: np.ndarray) -> None:
        for name in ("target", "patience", "asked", "preferred", "avoided", "shown", "n_shown"):
            setattr(self, name, getattr(self, name)[mask])
        if self.transcript is not None:
            self.transcript = [t for t, m in zip(self.transcript, mask, strict=True) if m]

    def absorb(self, system: SystemActs, acts: UserActs) -> None:
        """Update from one turn: asked facets, stated preferences and avoidances, shown items."""
        rows = np.flatnonzero(system.act == ASK)
        self.asked[rows, system.facet[rows]] = True
        told = np.flatnonzero((acts.facet != UNKNOWN) & (acts.value != UNKNOWN))
        self.preferred[told, acts.facet[told]] = acts.value[told]
        avoid = np.flatnonzero((acts.facet != UNKNOWN) & (acts.avoided_value != UNKNOWN))
        self.avoided[avoid, acts.facet[avoid], acts.avoided_value[avoid]] = True
        items = system.slates.items
        k = items.shape[1]
        rec = np.flatnonzero(system.act == RECOMMEND)
        cols = self.n_shown[rec, None] + np.arange(k)
        self.shown[rec[:, None], cols] = items[rec]
        self.n_shown[rec] += k
        self.patience = acts.patience.astype(np.float32)


class DialogueLoop:
    """Serves conversation turns for a cell whose arm converses (instead of the page loop)."""

    def __init__(
        self,
        world: World,
        active: ActiveSessions,
        outcomes: Outcomes,
        guard: SlateGuard,
        recommender: Any,
        surface: ConversationSurface,
    ) -> None:
        self.world = world
        self.active = active
        self.outcomes = outcomes
        self.guard = guard
        self.k = surface.k
        self.max_turns = surface.max_turns
        cfg = world.scenario.population
        self.users_cfg = cfg.conversation or ConversationUsers()
        self.view = ListView(
            ListSurface(k=surface.k, position_decay=surface.position_decay), cfg.position_decay
        )
        real = None
        if isinstance(world.calibrated, CalibratedPopulation):
            real = RealAttributes(world.calibrated.title, world.calibrated.genres)
        key = subkey(world.hash_base, _FACET_SALT)
        self.facet_index = FacetIndex(world.catalog, key, real)
        self.recommender = as_conversational(recommender)
        own = self.recommender is recommender and isinstance(recommender, GuardedRecommender)
        # the arm's own act (a plug-in's failure one line, as recommend's is); a list
        # recommender's answers are guarded inside ListAsConversation's act
        self.act = recommender.converse if own else self.recommender.act
        # the guard has an update whatever it wraps; the contract asks a policy for fit and act
        self.updates = (
            recommender.implements("update")
            if own
            else callable(getattr(self.recommender, "update", None))
        )
        self.user = build_conversational_user(world, active)
        self.needs_transcript = bool(
            getattr(self.recommender, "needs_transcript", False)
            or getattr(self.user, "needs_transcript", False)
        )
        facets = self.facet_index.facets()
        self.tracker = Tracker.empty(
            len(facets.names), facets.max_values, self.max_turns * self.k, self.needs_transcript
        )

    # ------------------------------------------------------------------ serve
    def serve(self, now: float) -> None:
        world, tracker = self.world, self.tracker
        active, outcomes = self.active, self.outcomes
        facets = self.facet_index.facets()
        new = len(active) - len(tracker)
        if new:
            target = self.user.targets(active.user[-new:], active.session_id[-new:], facets)
            tracker.add(target, self.users_cfg.patience)
        started = time.perf_counter()
        # read-only views, as a list page's are: these are the sessions' and the tracker's own
        # arrays, so a conversational plug-in that wrote into state.shown could recommend an
        # item again past the guard, and one that wrote into requests.user moved sessions
        requests = RequestBatch(
            time=now,
            user=read_only(active.user),
            session=read_only(active.session_id),
            page=read_only(active.page),
            k=self.k,
            catalog=world.catalog.view(),
            exclude=read_only(world.consumed.for_users(active.user)),
        )
        state = DialogueState(
            requests=requests,
            facets=facets,
            max_turns=self.max_turns,
            asked=read_only(tracker.asked),
            preferred=read_only(tracker.preferred),
            avoided=read_only(tracker.avoided),
            shown=read_only(tracker.shown[:, : int(tracker.n_shown.max(initial=0))]),
            transcript=tuple(tuple(t) for t in tracker.transcript)
            if tracker.transcript is not None
            else ((),) * len(active),
        )
        system = self.act(state)
        self.guard.check_acts(state, system, self.k)
        system = _as_checked(system)
        recommends = system.act == RECOMMEND
        after_recommend = time.perf_counter()

        request_id = active.request_ids()
        noise_key = active.noise_keys(world.hash_base, request_id)
        examined = self.view.examine(noise_key, system.slates.items) & recommends[:, None]
        turn = TurnBatch(state, system, tracker.target, tracker.patience, noise_key, examined)
        acts = self.user.respond(turn)
        after_respond = time.perf_counter()
        for client in (world.recommender_llm, world.panel.llm.client if world.panel else None):
            if client is not None:  # this turn's LLM calls (CRS, then users) into llm_calls
                outcomes.log_llm_calls(client)

        items = system.slates.items
        clicked = (items == acts.accepted[:, None]) & (acts.accepted != PAD_ITEM)[:, None]
        rec_rows = np.flatnonzero(recommends)
        if rec_rows.size and self.updates:
            sub = _rows_of_requests(requests, rec_rows)
            slates = SlateBatch(
                items[rec_rows], system.slates.scores[rec_rows], system.slates.propensity[rec_rows]
            )
            self.recommender.update(FeedbackBatch(sub, slates, clicked[rec_rows]))
        after_update = time.perf_counter()

        day = int(now // DAY)
        self._log_turns(now, day, facets, system, acts)
        if self.needs_transcript:
            self._extend_transcript(facets, system, acts)
        tracker.absorb(system, acts)
        accepted = acts.act == ACCEPT
        no_click = world.scenario.population.no_click_utility
        value = np.where(accepted, _surplus(acts, clicked, no_click), 0.0)
        response = ResponseBatch(
            examined=examined,
            clicked=clicked,
            utility=acts.utility,
            rating=acts.rating,
            leave=np.zeros(len(active), bool),
            fatigue=active.fatigue,
            extra={"value": value},
        )
        row, col = world.surface.row, world.surface.col
        outcomes.log_exposures(now, day, request_id, system.slates, response, row, col)
        outcomes.consume(now, day, request_id, system.slates, response)

        active.page = active.page + 1
        active.clicks[accepted] += 1
        active.value += value
        out_of_patience = ~accepted & (acts.patience <= 0)
        quits = ~accepted & ~out_of_patience & (acts.act == QUIT)
        last = active.page >= self.max_turns
        ending = accepted | out_of_patience | quits | last
        if ending.any():
            reason = np.select(
                [accepted, out_of_patience, quits], ["accepted", "patience", "quit"], "max_turns"
            )[ending]
            tracker.keep(~ending)
            outcomes.end_sessions(ending, now, reason)
        outcomes.timings.split_batch(started, after_recommend, after_respond, after_update)

    # ------------------------------------------------------------------ logs
    def _log_turns(
        self, now: float, day: int, facets: Facets, system: SystemActs, acts: UserActs
    ) -> None:
        active, tracker = self.active, self.tracker
        batch = len(active)
        names, labels = _label_tables(facets)
        target = tracker.target.astype(np.int64)
        care = target != UNKNOWN
        target_text = np.full(batch, "", object)
        for f, name in enumerate(facets.names):  # F facets, not B conversations
            label = labels[f, np.where(care[:, f], target[:, f], 0)]  # object array of str
            part = np.where(care[:, f], f"{name}=" + label, "")
            sep = np.where((target_text != "") & care[:, f], "; ", "")
            target_text = target_text + sep.astype(object) + part.astype(object)
        items = system.slates.items
        valid = items != PAD_ITEM
        codes = facets.codes[np.where(valid, items, 0)].astype(np.int64)
        hit = ((codes == target[:, None, :]) | ~care[:, None, :]).all(axis=2) & valid
        shown = np.split(items[valid], np.cumsum(valid.sum(axis=1))[:-1])
        empty = np.zeros(0, np.int64)

        def interleave(system_col, user_col) -> np.ndarray:
            return np.stack([np.asarray(system_col), np.asarray(user_col)], axis=1).ravel()

        def facet_label(facet: np.ndarray) -> np.ndarray:
            return names[np.where(facet == UNKNOWN, -1, facet)]

        def value_label(facet: np.ndarray, value: np.ndarray) -> np.ndarray:
            return labels[np.maximum(facet, 0), np.where(value == UNKNOWN, -1, value)]

        none = np.full(batch, None, object)
        self.outcomes.log.append(
            "turns",
            {
                "session_id": np.repeat(active.session_id, 2),
                "user_id": np.repeat(active.user, 2),
                "turn": np.repeat(active.page.astype(np.int16), 2),
                "time": np.full(2 * batch, now),
                "day": np.full(2 * batch, day, np.int32),
                "speaker": np.tile(np.array(["system", "user"], object), batch),
                "act": interleave(
                    np.array(SYSTEM_ACTS, object)[system.act],
                    np.array(USER_ACTS, object)[acts.act],
                ),
                "facet": interleave(facet_label(system.facet), facet_label(acts.facet)),
                "value": interleave(none, value_label(acts.facet, acts.value)),
                "avoided_value": interleave(none, value_label(acts.facet, acts.avoided_value)),
                "items": [x for pair in zip(shown, [empty] * batch, strict=True) for x in pair],
                "accepted_item": interleave(np.full(batch, PAD_ITEM, np.int64), acts.accepted),
                "text": interleave(np.array(system.text, object), np.array(acts.text, object)),
                "patience": interleave(np.full(batch, np.nan, np.float32), acts.patience),
                "target": np.repeat(target_text, 2),
                "target_hits": interleave(
                    hit.sum(axis=1).astype(np.int16), np.zeros(batch, np.int16)
                ),
            },
        )

    def _extend_transcript(self, facets: Facets, system: SystemActs, acts: UserActs) -> None:
        """Render this turn's utterances (only for policies that read text)."""
        transcript = self.tracker.transcript
        assert transcript is not None, "the tracker keeps a transcript when needs_transcript"
        for b, history in enumerate(transcript):
            history.append(system.text[b] or render_system(facets, system, b))
            history.append(acts.text[b] or render_user(facets, acts, b))


def _label_tables(facets: Facets) -> tuple[np.ndarray, np.ndarray]:
    """Facet names and [F, V + 1] value labels as object arrays; index -1 (UNKNOWN) is None."""
    names = np.array([*facets.names, None], object)
    labels = np.full((len(facets.names), facets.max_values + 1), None, object)
    for f, values in enumerate(facets.values):
        labels[f, : len(values)] = values
    return names, labels


def render_system(facets: Facets, system: SystemActs, b: int) -> str:
    """A plain-language system utterance for row ``b`` (used when the policy gave no text)."""
    if system.act[b] == ASK:
        return f"System: Which {facets.names[system.facet[b]]} would you like?"
    items = [int(i) for i in system.slates.items[b] if i != PAD_ITEM]
    return "System: How about " + ", ".join(f"item {i}" for i in items) + "?"


def render_user(facets: Facets, acts: UserActs, b: int) -> str:
    """A plain-language user utterance for row ``b`` (used when the policy gave no text)."""
    act, f = USER_ACTS[acts.act[b]], int(acts.facet[b])
    if act == "inform":
        if acts.value[b] == UNKNOWN:
            return f"User: Any {facets.names[f]} is fine."
        return f"User: {facets.values[f][acts.value[b]]}, please."
    if act == "critique":
        wanted = acts.value[b]
        avoided = facets.values[f][acts.avoided_value[b]]
        if wanted == UNKNOWN:
            return f"User: Not {avoided}."
        return f"User: Not {avoided}; something {facets.values[f][wanted]} instead."
    if act == "accept":
        return f"User: I'll take item {int(acts.accepted[b])}."
    if act == "reject":
        return "User: None of these."
    return "User: I'm done."


def _surplus(acts: UserActs, clicked: np.ndarray, no_click_utility: float) -> np.ndarray:
    """[B] utility of the accepted item above the no-click utility (session value), else 0."""
    chosen = np.where(clicked, np.nan_to_num(acts.utility, neginf=0.0), 0.0).sum(axis=1)
    return chosen - no_click_utility


def _as_checked(system: SystemActs) -> SystemActs:
    """A read-only copy of a checked move: the user answers it, the tracker keeps it and the
    turn is logged from it after the policy's ``update``, so a policy that reused its arrays
    and changed them there had the turn logged with slates it never showed (a list page's
    answer is copied by its guard the same way)."""
    return SystemActs(
        act=read_only(system.act.copy()),
        facet=read_only(system.facet.copy()),
        slates=as_checked(system.slates),
        text=tuple(system.text),
    )


def _rows_of_requests(requests: RequestBatch, rows: np.ndarray) -> RequestBatch:
    return RequestBatch(
        time=requests.time,
        user=requests.user[rows],
        session=requests.session[rows],
        page=requests.page[rows],
        k=requests.k,
        catalog=requests.catalog,
        exclude=requests.exclude[rows],
    )
