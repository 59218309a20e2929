"""``source_debias``: a black-box re-ranker that makes any recommender impartial to item source.

The base ranks ``candidates`` items; the re-ranker then fills the k slots so that, slot by slot,
AI-generated items take the share of the slate they have in the catalog: after slot j at most
``floor(s · (j + 1) + u)`` AI items, s = AI share of the catalog, u a uniform offset per page
(systematic sampling), each source keeping the base's own order. The random offset makes every
slot AI with probability s, so AI items are neither pushed to the top nor to the bottom of a
page (a fixed rounding would always put the first AI item at the same slot).

Nothing is learned and nothing of the base is touched, so it removes whatever source
preference the base acquired (from features or from clicks) while keeping its within-source
relevance. When one source runs out of candidates the other fills the rest. Without AI content
(every item human) it returns the base's top k unchanged.
"""

from __future__ import annotations

import numpy as np

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.rerankers import _Reranker, _WrapperParams
from recarena.simulator.core.types import PAD_ITEM, RequestBatch


class SourceDebiasParams(_WrapperParams):
    pass


def source_quota_order(
    is_ai: np.ndarray, valid: np.ndarray, share: float, k: int, offset: np.ndarray
) -> np.ndarray:
    """[B, k] candidate columns to show: per slot, AI while its cumulative quota is unmet.

    ``is_ai`` and ``valid`` are [B, C] in the base's order, ``offset`` [B] in [0, 1); the quota
    after slot j is floor(share · (j + 1) + offset); -1 where a row runs out.
    """
    batch, width = is_ai.shape
    rows = np.arange(batch)
    ai_cols = np.argsort(~(is_ai & valid), axis=1, kind="stable")  # AI columns first, in order
    human_cols = np.argsort(~(~is_ai & valid), axis=1, kind="stable")
    n_ai = (is_ai & valid).sum(axis=1)
    n_human = (~is_ai & valid).sum(axis=1)
    taken_ai = np.zeros(batch, np.int64)
    taken_human = np.zeros(batch, np.int64)
    chosen = np.full((batch, k), -1, np.int64)
    for slot in range(k):
        quota = np.floor(share * (slot + 1) + offset)
        ai_left, human_left = taken_ai < n_ai, taken_human < n_human
        pick_ai = ai_left & ((taken_ai < quota) | ~human_left)
        pick_human = ~pick_ai & human_left
        chosen[pick_ai, slot] = ai_cols[rows[pick_ai], np.minimum(taken_ai[pick_ai], width - 1)]
        chosen[pick_human, slot] = human_cols[
            rows[pick_human], np.minimum(taken_human[pick_human], width - 1)
        ]
        taken_ai += pick_ai
        taken_human += pick_human
    return chosen


class SourceDebias(_Reranker):
    """Slates hold AI items in the catalog's AI share, each source in the base's order."""

    Params = SourceDebiasParams

    def __init__(self, params: SourceDebiasParams, ctx: RecommenderContext) -> None:
        super().__init__(params, ctx)
        self.name = "source_debias"
        self.rng = ctx.rng

    def _select(self, requests: RequestBatch, candidates, relevance, k) -> np.ndarray:
        source = requests.catalog.source
        valid = (candidates != PAD_ITEM) & np.isfinite(relevance)
        if source is None or not source.any():
            is_ai = np.zeros(candidates.shape, bool)
            share = 0.0
        else:
            is_ai = source[np.maximum(candidates, 0)] == 1
            share = float(source.mean())
        offset = self.rng.random(candidates.shape[0])
        return source_quota_order(is_ai, valid, share, k, offset)
