"""Conversations: the typed contract between the dialogue loop, conversational recommenders and
conversational users.

A conversation is a session whose pages are *turns*. At each turn the system either asks about
one item facet (genre, era, mood, ...) or recommends ``k`` items; the user answers with one act.
Like pages, turns are served in batches: one ``act`` call for every active conversation at a
tick, one vectorised ``respond``.

The engine, not the policies, keeps the dialogue state (what has been asked, what the user said
they want or do not want, what was shown). That makes every policy a function of the same
observable state, so arms differ only in their decisions, and an LLM policy sees exactly what a
rule policy sees. Simulator-only truth (each user's hidden target) lives in :class:`TurnBatch`,
which only users receive.

Codes are small integers so that batches stay numpy arrays; the labels are in ``SYSTEM_ACTS``,
``USER_ACTS`` and :class:`Facets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from recarena.simulator.core.types import Interactions, RequestBatch, SlateBatch

SYSTEM_ACTS = ("ask", "recommend")
ASK, RECOMMEND = 0, 1

USER_ACTS = ("inform", "critique", "accept", "reject", "quit")
INFORM, CRITIQUE, ACCEPT, REJECT, QUIT = 0, 1, 2, 3, 4

UNKNOWN = -1
"""Facet value code for 'not known / not applicable' in every int16 facet array."""


@dataclass(frozen=True)
class Facets:
    """Categorical item facets a system can ask about.

    ``codes[i, f]`` is item ``i``'s value of facet ``f`` (an index into ``values[f]``). Facets are
    computed from the catalog (``genre`` from the dominant topic; others from item attributes, or
    from a deterministic hash of the item id where a synthetic catalog has no such attribute), so
    they cost no draws from any random stream.
    """

    names: tuple[str, ...]  # [F]
    values: tuple[tuple[str, ...], ...]  # [F][V_f] labels
    codes: np.ndarray  # [n_items, F] int16

    @property
    def max_values(self) -> int:
        return max(len(v) for v in self.values)

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass(frozen=True)
class DialogueState:
    """What a conversational recommender may know about each active conversation.

    ``requests.page`` is the turn index (0 = first turn); ``requests.exclude`` holds items the user
    consumed before this conversation. The arrays below are the engine's dialogue-state tracker,
    updated from the user's acts: an ``inform`` sets ``preferred``, a ``critique`` sets ``avoided``
    (and ``preferred`` when the critique names a wanted value), every recommendation extends
    ``shown``.
    """

    requests: RequestBatch
    facets: Facets
    max_turns: int
    asked: np.ndarray  # [B, F] bool the system has asked about facet f
    preferred: np.ndarray  # [B, F] int16 value the user said they want, UNKNOWN if none
    avoided: np.ndarray  # [B, F, V] bool values the user said they do not want
    shown: np.ndarray  # [B, S] int64 items recommended earlier in this conversation, PAD_ITEM
    transcript: tuple[tuple[str, ...], ...]  # [B] earlier utterances, rendered, oldest first


@dataclass(frozen=True)
class SystemActs:
    """The system's move at this turn, one per conversation.

    ``slates`` has shape ``[B, k]`` for every row; rows that ask are all ``PAD_ITEM``.
    ``text`` is the utterance when the policy produced one (LLM policies), else ``""``.
    """

    act: np.ndarray  # [B] int8 ASK | RECOMMEND
    facet: np.ndarray  # [B] int16 facet asked about, UNKNOWN when recommending
    slates: SlateBatch
    text: tuple[str, ...]  # [B]


@dataclass(frozen=True)
class TurnBatch:
    """A turn as a conversational user sees it: the state, the system's move, and the truth.

    ``target[b, f]`` is the value of facet ``f`` the user is looking for (``UNKNOWN`` when the
    user does not care about that facet). It is drawn at the start of the conversation from the
    user's taste (and counter-based noise), so every arm faces the same target.
    """

    state: DialogueState
    system: SystemActs
    target: np.ndarray  # [B, F] int16
    patience: np.ndarray  # [B] float32 patience left before this turn
    noise_key: np.ndarray  # [B] uint64 common-random-number key of (session, turn)
    examined: np.ndarray  # [B, k] bool which recommended slots the user looks at


@dataclass(frozen=True)
class UserActs:
    """The user's answer at this turn, one per conversation.

    ``facet``/``value``: for ``inform`` the facet asked and the value given; for ``critique`` the
    facet criticised and the value the user wants instead (``UNKNOWN`` if only a rejection of
    ``avoided_value``). ``accepted`` is the accepted item (``PAD_ITEM`` otherwise); acceptance,
    ``quit`` and running out of patience end the conversation.
    """

    act: np.ndarray  # [B] int8 INFORM | CRITIQUE | ACCEPT | REJECT | QUIT
    facet: np.ndarray  # [B] int16
    value: np.ndarray  # [B] int16 wanted value, UNKNOWN if none
    avoided_value: np.ndarray  # [B] int16 value the user rejects, UNKNOWN if none
    accepted: np.ndarray  # [B] int64
    utility: np.ndarray  # [B, k] float32 true utility of each recommended item (NaN if asked)
    rating: np.ndarray  # [B] float32 rating of the accepted item, NaN otherwise
    patience: np.ndarray  # [B] float32 patience left after this turn
    text: tuple[str, ...]  # [B] the utterance, "" when the user policy does not produce text


@runtime_checkable
class ConversationalRecommender(Protocol):
    """A policy that decides, per conversation and turn, to ask or to recommend."""

    name: str

    def fit(self, history: Interactions) -> None:
        """(Re)train on every accepted item logged so far (the retrain schedule)."""

    def act(self, state: DialogueState) -> SystemActs:
        """One move per conversation; recommended items must be distinct, not excluded/shown."""


@runtime_checkable
class ConversationalUser(Protocol):
    """A simulated user in a conversation (rule agenda user or LLM user)."""

    def targets(self, users: np.ndarray, session_ids: np.ndarray, facets: Facets) -> np.ndarray:
        """[B, F] int16 hidden target of each new conversation (deterministic per session)."""

    def respond(self, turn: TurnBatch) -> UserActs:
        """One act per conversation."""
