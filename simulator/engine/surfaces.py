"""Surfaces: how a recommender's output becomes what a user sees, and how the user looks at it.

* ``list``: k slots; slot j is examined with probability ``1/(1+j)**position_decay``.
* ``carousel``: R themed rows of C columns. The arm's recommender supplies a ranked candidate
  list; the surface lays it out row by row, each row filtered and ordered by its theme. Users
  scan top-down and left-to-right (the golden-triangle / F-pattern that eye-tracking of carousel
  interfaces reports: de Leon-Martinez et al., RecGaze, SIGIR 2025; "Riding the Carousel",
  RecSys 2025): a row is reached with probability ``row_decay**r`` and skipped outright with its
  theme's ``skip`` probability, and inside a reached row column c is examined with probability
  ``col_decay**c``.

Every slot of a page has a (row, col); a list is a one-row grid. Examination uses the same
counter-based noise as the user policy, so arms share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from recarena.agents.users.choice import examination_probabilities
from recarena.recommenders.base import Recommender
from recarena.recommenders.slates import first_k_available
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import Registry, check_synchronous, must_be_callable
from recarena.simulator.core.rng import _GOLDEN, _mix64_owned, combine, operand, uniforms
from recarena.simulator.core.scenario import CarouselSurface, ListSurface, PluginSurface
from recarena.simulator.core.types import PAD_ITEM, RequestBatch, SlateBatch

_ROW_REACH, _ROW_SKIP, _SLOT = 11, 12, 13


@dataclass(frozen=True)
class SurfaceState:
    """What themed rows may use besides the recommender: recent clicks and the catalog."""

    catalog: Catalog
    recent_clicks: np.ndarray  # [n_items] clicks in the last day (for "trending")
    last_item: np.ndarray  # [B] last item each request's user consumed, PAD_ITEM if none
    friends_topics: np.ndarray | None = None  # [B, T] share of neighbours per recent topic


class Surface(Protocol):
    slots: int
    needs_state: bool  # whether layout() reads SurfaceState (lists do not; skip building it)
    row: np.ndarray  # [slots] int16
    col: np.ndarray  # [slots] int16

    def layout(
        self, recommender: Recommender, requests: RequestBatch, state: SurfaceState | None
    ) -> SlateBatch: ...

    def examine(self, noise_key: np.ndarray, items: np.ndarray) -> np.ndarray: ...


class ListView:
    needs_state = False

    def __init__(self, cfg: ListSurface, position_decay: float) -> None:
        self.slots = cfg.k
        self.row = np.zeros(cfg.k, np.int16)
        self.col = np.arange(cfg.k, dtype=np.int16)
        decay = cfg.position_decay if cfg.position_decay is not None else position_decay
        self.exam_p = examination_probabilities(cfg.k, decay)
        self._slot_ids = np.arange(cfg.k, dtype=np.uint64)[None, :]
        self._slot_offsets = self._slot_ids * _GOLDEN + _GOLDEN
        """combine(key, slot) = mix64(key + slot·G + G): the constant part, per slot."""
        self._purpose_offset = operand((_SLOT * int(_GOLDEN) + int(_GOLDEN)) % 2**64, np.uint64)
        self._exam_bits = _below_bits(self.exam_p)

    def layout(self, recommender, requests, state) -> SlateBatch:
        return recommender.recommend(requests)

    def examine(self, noise_key: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self._exam_bits is None:
            keys = combine(noise_key[:, None], self._slot_ids)
            examined = uniforms(combine(keys, _SLOT)) < self.exam_p
        else:  # the same draw, hashed in place in one [B, k] buffer and compared as bits
            bits = np.asarray(noise_key, np.uint64)[:, None] + self._slot_offsets
            _mix64_owned(bits)
            bits += self._purpose_offset
            _mix64_owned(_mix64_owned(bits))
            examined = bits <= self._exam_bits
        examined &= items != PAD_ITEM
        return examined


def _below_bits(p: np.ndarray) -> np.ndarray | None:
    """Integer thresholds ``t`` with ``bits <= t`` exactly when ``uniforms(bits) < p``.

    A uniform is ``m·2^-53`` with ``m = bits >> 11``, so ``u < p`` is ``m < ceil(p·2^53)`` and,
    for ``T = ceil(p·2^53) >= 1``, ``bits <= T·2^11 - 1``. None when some ``p`` has no such
    threshold (zero, negative or not finite): then the float comparison is used."""
    if not (np.isfinite(p).all() and (p > 0).all()):
        return None
    whole = [min(math.ceil(float(x) * 2.0**53), 2**53) for x in p]
    return np.array([t * 2**11 - 1 for t in whole], np.uint64)[None, :]


class CarouselView:
    needs_state = True

    def __init__(self, cfg: CarouselSurface) -> None:
        self.cfg = cfg
        n_rows, n_cols = len(cfg.rows), cfg.cols
        self.slots = n_rows * n_cols
        self.row = np.repeat(np.arange(n_rows, dtype=np.int16), n_cols)
        self.col = np.tile(np.arange(n_cols, dtype=np.int16), n_rows)
        self.reach_p = cfg.row_decay ** np.arange(n_rows, dtype=np.float64)
        self.skip_p = np.array([row.skip for row in cfg.rows])
        self.col_p = cfg.col_decay ** np.arange(n_cols, dtype=np.float64)

    # ------------------------------------------------------------------ layout
    def layout(
        self, recommender: Recommender, requests: RequestBatch, state: SurfaceState | None
    ) -> SlateBatch:
        # needs_state is True, so the engine always builds the state for a carousel
        assert state is not None, "a carousel lays out its rows from a SurfaceState"
        cfg = self.cfg
        batch, n_cols = len(requests), cfg.cols
        candidates = recommender.recommend(replace(requests, k=self.candidate_width(requests)))
        cand = candidates.items
        cand_scores = np.where(np.isnan(candidates.scores), 0.0, candidates.scores)
        # rank-based relevance keeps the recommender's order whatever its score scale
        rank_score = -np.arange(cand.shape[1], dtype=np.float64)[None, :].repeat(batch, 0)
        catalog = state.catalog
        main_topic = catalog.topics.argmax(axis=1)
        safe = np.maximum(cand, 0)
        cand_topic = np.where(cand >= 0, main_topic[safe], -1)
        topic_rank = self._topic_order(cand_topic, catalog.n_topics)

        items = np.full((batch, self.slots), PAD_ITEM, np.int64)
        scores = np.full((batch, self.slots), np.nan, np.float32)
        propensity = np.ones((batch, self.slots), np.float32)
        used = np.zeros(cand.shape, bool)
        catalog_used: list[np.ndarray] = []
        topic_rows_seen = 0
        # A slot's propensity is its candidate's only where the slot always takes the same
        # candidate rank: in a leading run of personalized rows. Elsewhere a row filters or
        # re-orders the candidates (topic, because_you_watched, friends) or skips the items
        # earlier rows placed, so for a random answer the chance of an item at that slot is not
        # the chance of it at its rank (a topic row over a random ranking logged 1/eligible for
        # items it shows far more often, and IPS doubled). A deterministic answer (propensity 1
        # everywhere) lays out deterministically: every slot keeps 1. Unknown is NaN.
        random_answer = ((candidates.propensity < 1) & (cand != PAD_ITEM)).any(axis=1)
        leading: str | None = ""  # kind of the leading run of rows so far; None once broken
        for r, row in enumerate(cfg.rows):
            cols = slice(r * n_cols, (r + 1) * n_cols)
            kind = {"personalized": "ranked", "trending": "catalog", "new": "catalog"}.get(
                row.theme
            )
            leading = kind if kind is not None and leading in ("", kind) else None
            if row.theme in ("trending", "new"):
                key = state.recent_clicks if row.theme == "trending" else catalog.created_at
                picked = self._from_catalog(key, requests.exclude, items, n_cols, catalog.n)
                items[:, cols] = picked
                scores[:, cols] = np.where(picked >= 0, key[np.maximum(picked, 0)], np.nan)
                if leading is None:  # placed around what the random rows above placed
                    unknown = random_answer[:, None] & (picked >= 0)
                    propensity[:, cols] = np.where(unknown, np.nan, 1.0)
                catalog_used.append(picked)
                continue
            priority = rank_score.copy()
            if row.theme == "topic":
                wanted = topic_rank[:, topic_rows_seen % topic_rank.shape[1]]
                topic_rows_seen += 1
                priority[cand_topic != wanted[:, None]] = -np.inf
            elif row.theme == "because_you_watched":
                anchor = catalog.topics[np.maximum(state.last_item, 0)]
                similarity = np.einsum("bct,bt->bc", catalog.topics[safe], anchor)
                priority = np.where(state.last_item[:, None] >= 0, similarity, rank_score)
            elif row.theme == "friends" and state.friends_topics is not None:
                # friends' recent topics first; the recommender's order breaks ties
                affinity = np.einsum("bct,bt->bc", catalog.topics[safe], state.friends_topics)
                priority = affinity * cand.shape[1] + rank_score
            blocked = used | (cand < 0) | _in_rows(cand, items)
            priority[blocked] = -np.inf
            order = np.argsort(-priority, axis=1, kind="stable")[:, :n_cols]
            chosen_ok = np.isfinite(np.take_along_axis(priority, order, axis=1))
            picked = np.where(chosen_ok, np.take_along_axis(cand, order, axis=1), PAD_ITEM)
            items[:, cols] = picked
            scores[:, cols] = np.where(
                chosen_ok, np.take_along_axis(cand_scores, order, axis=1), np.nan
            )
            row_p = np.take_along_axis(candidates.propensity, order, axis=1)
            if leading is None:
                row_p = np.where(random_answer[:, None], np.nan, row_p)
            else:  # a rank skipped (a gap in the answer) moves the later slots: unknown too
                moved = order != r * n_cols + np.arange(n_cols)
                row_p = np.where(random_answer[:, None] & moved, np.nan, row_p)
            propensity[:, cols] = np.where(chosen_ok, row_p, 1.0)
            rows = np.repeat(np.arange(batch), n_cols)[chosen_ok.ravel()]
            used[rows, order[chosen_ok]] = True
        return SlateBatch(items, scores, propensity)

    def candidate_width(self, requests: RequestBatch) -> int:
        """How many ranked items the rows ask the recommender for: ``candidates``, at most the
        items published, at least one row's ``cols``. A wider request is only padding (the
        rows draw from published items), and a re-ranker over it compared every pair: an mmr
        arm asked for 5,000 candidates over a 60-item catalog took minutes a page. The rows'
        order of real candidates is the same either way, so the logs are too."""
        return max(self.cfg.cols, min(self.cfg.candidates, requests.catalog.n_items))

    @staticmethod
    def _topic_order(cand_topic: np.ndarray, n_topics: int) -> np.ndarray:
        """[B, T] each user's topics, most frequent among their candidates first."""
        counts = np.zeros((cand_topic.shape[0], n_topics + 1))
        np.add.at(counts, (np.arange(cand_topic.shape[0])[:, None], cand_topic), 1.0)
        return np.argsort(-counts[:, :n_topics], axis=1, kind="stable")

    @staticmethod
    def _from_catalog(key, exclude, already, n_cols, n_items) -> np.ndarray:
        """Top items of the whole catalog by ``key``, minus consumed and already placed."""
        width = n_cols + exclude.shape[1] + already.shape[1]
        top = np.argsort(-key[:n_items], kind="stable")[:width]
        cand = np.broadcast_to(top, (exclude.shape[0], top.size))
        return first_k_available(cand, _in_rows(cand, exclude) | _in_rows(cand, already), n_cols)

    # -------------------------------------------------------------- attention
    def examine(self, noise_key: np.ndarray, items: np.ndarray) -> np.ndarray:
        n_rows = len(self.cfg.rows)
        row_keys = combine(noise_key[:, None], np.arange(n_rows, dtype=np.uint64)[None, :])
        reached = uniforms(combine(row_keys, _ROW_REACH)) < self.reach_p
        kept = uniforms(combine(row_keys, _ROW_SKIP)) >= self.skip_p
        row_seen = np.repeat(reached & kept, self.cfg.cols, axis=1)
        slot_keys = combine(noise_key[:, None], np.arange(self.slots, dtype=np.uint64)[None, :])
        col_p = np.tile(self.col_p, n_rows)
        return row_seen & (uniforms(combine(slot_keys, _SLOT)) < col_p) & (items != PAD_ITEM)


_PAIRWISE_CELLS = 4096
"""Up to this many (candidate, excluded) pairs a row, membership is one broadcast compare."""


def _in_rows(candidates: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """[B, C] True where a candidate is among its row's valid (non-pad) ``exclude``.

    Small rows compare every pair. Wide ones (a carousel of 5,000 candidates against the
    thousands of items its rows placed) search one sorted array of row-offset keys instead:
    the pairwise ``[B, C, H]`` mask was 25M booleans a request and most of a run's time."""
    if exclude.shape[1] == 0 or candidates.shape[1] == 0:
        return np.zeros(candidates.shape, bool)
    if candidates.shape[1] * exclude.shape[1] <= _PAIRWISE_CELLS:
        valid = exclude != PAD_ITEM
        return ((candidates[:, :, None] == exclude[:, None, :]) & valid[:, None, :]).any(axis=2)
    # keys row·span + item + 1: a pad candidate (-1) maps to row·span, which no valid
    # exclusion reaches, and a pad exclusion to row·span + span − 1, which no candidate does
    top = max(int(candidates.max()), int(exclude.max()), 0)
    span = top + 3
    offset = np.arange(candidates.shape[0], dtype=np.int64)[:, None] * span
    excluded = np.where(exclude != PAD_ITEM, exclude + 1, span - 1) + offset
    keys = np.sort(excluded, axis=None)
    query = (candidates.astype(np.int64) + 1 + offset).ravel()
    at = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return (keys[at] == query).reshape(candidates.shape)


def _list(cfg: Any, position_decay: float) -> Surface:
    return ListView(cfg, position_decay)


def _carousel(cfg: Any, position_decay: float) -> Surface:
    return CarouselView(cfg)


REGISTRY = Registry(
    "surface",
    {
        "list": (_list, "a ranked list of k items"),
        "carousel": (_carousel, "themed rows of items, scanned top-down, left-to-right"),
        "conversation": (_list, "a dialogue: each turn ask about a facet or recommend k items"),
    },
    must_be_callable("surface", "a callable (params, decay)", "Factory(params, position_decay)", 2),
)
"""Surfaces: built-ins, the ``recarena.surfaces`` entry points, or ``package.module:Factory``.
A plug-in factory is called as ``Factory(params: dict, position_decay: float)`` and must return
an object honouring :class:`Surface`. (A conversation's turns are laid out as a list.)"""


def build_surface(cfg: Any, position_decay: float) -> Surface:
    if isinstance(cfg, PluginSurface):
        surface: Surface = REGISTRY.load(cfg.type)(dict(cfg.params), position_decay)
        required = ("slots", "needs_state", "row", "col", "layout", "examine")
        missing = [name for name in required if not hasattr(surface, name)]
        if missing:
            raise RecarenaError(f"surface {cfg.type!r} does not honour the contract: no {missing}")
        try:
            check_synchronous(surface, cfg.type, "surface", ("layout", "examine"))
        except LookupError as exc:
            raise RecarenaError(str(exc)) from None
        return surface
    factory = REGISTRY.load(cfg.type)
    built: Surface = factory(cfg, position_decay)
    return built
