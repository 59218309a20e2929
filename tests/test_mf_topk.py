"""mf's blocked top k (torch.topk plus a tie check) gives the answer of the exact reference
``top_k_from_scores``: ties to the lower id, exclusions skipped, PAD/NaN past the finite scores."""

from __future__ import annotations

import numpy as np
import pytest

from recarena.recommenders.mf import top_k_blocked
from recarena.recommenders.slates import top_k_from_scores
from recarena.simulator.core.types import PAD_ITEM


@pytest.mark.parametrize("seed", range(40))
def test_top_k_blocked_matches_the_exact_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, n, k = int(rng.integers(1, 30)), int(rng.integers(1, 60)), int(rng.integers(1, 12))
    kind = seed % 3
    if kind == 0:  # real-valued: ties are rare
        scores = rng.standard_normal((batch, n)).astype(np.float32)
    elif kind == 1:  # a few levels: ties at the k-th place are common
        scores = rng.integers(0, 4, (batch, n)).astype(np.float32)
    else:  # ties and -inf (items a policy rules out)
        scores = rng.integers(0, 3, (batch, n)).astype(np.float32)
        scores[rng.random((batch, n)) < 0.2] = -np.inf
    width = int(rng.integers(0, n + 2))
    exclude = np.full((batch, width), PAD_ITEM, np.int64)
    for row in range(batch):
        taken = rng.permutation(n)[: int(rng.integers(0, min(width, n) + 1))]
        exclude[row, : taken.size] = taken
    items, top = top_k_blocked(scores.copy(), exclude, k)
    want_items, want_top = top_k_from_scores(scores.copy(), exclude, k)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(top, want_top)
