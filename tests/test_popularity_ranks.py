"""Popularity's fast top-k over a cached inverse ranking gives the slates of the generic
ranking helper (recommenders/slates.py), exclusions, short catalogs and PAD rows included."""

from __future__ import annotations

import numpy as np
import pytest

from recarena.recommenders.popularity import top_k_ranks
from recarena.recommenders.slates import top_k_from_ranking
from recarena.simulator.core.types import PAD_ITEM


def _via_ranks(ranking: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    n = ranking.shape[0]
    rank_of = np.empty(n + 1, np.int64)
    rank_of[ranking] = np.arange(n)
    rank_of[n] = n
    ranks = top_k_ranks(rank_of, exclude, k, n)
    return np.where(ranks >= 0, ranking[np.maximum(ranks, 0)], PAD_ITEM)


@pytest.mark.parametrize("seed", range(20))
def test_top_k_ranks_matches_top_k_from_ranking(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    k = int(rng.integers(1, 12))
    batch, width = int(rng.integers(1, 9)), int(rng.integers(0, 30))
    ranking = rng.permutation(n)
    exclude = np.full((batch, width), PAD_ITEM, np.int64)
    for row in range(batch):  # distinct consumed items, then padding, as ConsumedItems keeps them
        taken = rng.permutation(n)[: int(rng.integers(0, min(width, n) + 1))]
        exclude[row, : taken.size] = taken
    np.testing.assert_array_equal(
        _via_ranks(ranking, exclude, k), top_k_from_ranking(ranking, exclude, k)
    )
