"""Typed batches that flow between the engine, recommenders and user policies.

Everything is a struct of numpy arrays with a leading batch dimension ``B`` so that one Python
call serves a whole tick of page requests. Recommenders see only what a real platform would
log; ground truth the simulator knows (examination, true utility) never reaches them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recarena.simulator.core.instructions import Instructions

PAD_ITEM = -1
"""Filler for ragged item matrices (``exclude``, short slates). Never a real item id."""

DAY = 86_400.0
"""Seconds in a simulated day: the clock of the engine, the logs (``day`` = time // DAY) and
every module that turns times into days or back."""


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that cannot be written through.

    Why: plug-ins (recommenders, policies, RL agents) receive engine state (the catalog, the
    clicks a fit reads, a page's requests and outcomes). A plug-in that sorted or normalised
    one of those arrays in place corrupted the simulation silently; through this view the
    write fails at once, with numpy's "assignment destination is read-only". The engine
    keeps writing through its own reference; the view shows those changes."""
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class CatalogView:
    """Read-only view of the items published so far (ids ``0..n_items-1``).

    Recommenders that need item features (topics for diversity, creators for fairness) read them
    here. Arrays are read-only views into the engine's catalog (:func:`read_only`).
    """

    n_items: int
    topics: np.ndarray  # [n_items, n_topics] float32, non-negative rows summing to 1
    quality: np.ndarray  # [n_items] float32 (true quality; only oracle-style policies may use it)
    creator: np.ndarray  # [n_items] int32
    created_at: np.ndarray  # [n_items] float64 simulated seconds
    source: np.ndarray | None = None
    """[n_items] int8: 0 human-made, 1 AI-generated (all 0 unless creators use AI)."""


@dataclass(frozen=True)
class Interactions:
    """Clicks logged so far: the training data a recommender may ``fit`` on."""

    user: np.ndarray  # [N] int64
    item: np.ndarray  # [N] int64
    time: np.ndarray  # [N] float64 simulated seconds
    rating: np.ndarray  # [N] float32, 1..5

    @staticmethod
    def empty() -> Interactions:
        return Interactions(
            user=np.empty(0, np.int64),
            item=np.empty(0, np.int64),
            time=np.empty(0, np.float64),
            rating=np.empty(0, np.float32),
        )

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass(frozen=True)
class RequestBatch:
    """One page request per active session at the current tick."""

    time: float
    user: np.ndarray  # [B] int64, unique within a batch
    session: np.ndarray  # [B] int64
    page: np.ndarray  # [B] int32, 0 for the first page of a session
    k: int  # slate size to fill
    catalog: CatalogView
    exclude: np.ndarray  # [B, H] int64 items each user already consumed, padded with PAD_ITEM

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass(frozen=True)
class SlateBatch:
    """What a recommender returns: ``k`` distinct items per request.

    ``propensity[b, j]`` is the probability that the policy puts ``items[b, j]`` at position
    ``j`` for this request (1.0 for deterministic policies). It is logged so that off-policy
    estimators can later be checked against the simulator's ground truth.
    """

    items: np.ndarray  # [B, k] int64, PAD_ITEM where the catalog could not fill the slate
    scores: np.ndarray  # [B, k] float32 (NaN when the policy has no score)
    propensity: np.ndarray  # [B, k] float32 in [0, 1]


@dataclass(frozen=True)
class FeedbackBatch:
    """Observable outcome of a served batch, for online learners (``Recommender.update``)."""

    requests: RequestBatch
    slates: SlateBatch
    clicked: np.ndarray  # [B, k] bool
    # RL-ready signals, filled by the engine (simulator/engine/pages.py). They default to None
    # so recommenders and tests that build feedback by hand keep working.
    rating: np.ndarray | None = None  # [B] float32 1..5 stars of the consumed item, NaN if none
    leave: np.ndarray | None = None  # [B] bool the user left (fatigue) after this page
    session_end: np.ndarray | None = None  # [B] bool the session ended (left or max_pages)
    examined_count: np.ndarray | None = None  # [B] int32 slots looked at (viewport logging)
    reward: np.ndarray | None = None  # [B] float32 the page's reward (clicks by default)
    instructions: Instructions | None = None
    """What users about to leave asked for after this page (population.instructions); None when
    the scenario has no instructions."""


@dataclass(frozen=True)
class PageBatch:
    """A served batch as the user policy sees it: who, what, and the session state."""

    requests: RequestBatch
    slates: SlateBatch
    explore: np.ndarray  # [B] bool novelty-seeking intent of each session
    fatigue: np.ndarray  # [B] float32 fatigue accumulated before this page
    noise_key: np.ndarray  # [B] uint64 common-random-number key of (session, page)
    examined: np.ndarray  # [B, k] bool which slots the user looks at (the surface decides)


@dataclass(frozen=True)
class ResponseBatch:
    """How users reacted to a page. ``examined`` and ``utility`` are simulator-only truth."""

    examined: np.ndarray  # [B, k] bool
    clicked: np.ndarray  # [B, k] bool, at most one True per row
    utility: np.ndarray  # [B, k] float32 true utility of each shown item
    rating: np.ndarray  # [B] float32 rating of the consumed item, NaN when nothing was clicked
    leave: np.ndarray  # [B] bool the session ends after this page
    fatigue: np.ndarray  # [B] float32 fatigue after this page
    extra: dict[str, np.ndarray] = field(default_factory=dict)
