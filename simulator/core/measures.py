"""Summary measures that both recommenders (provider-fair re-ranking) and analysis need."""

from __future__ import annotations

import numpy as np


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, (n−1)/n when one holds all.

    G = Σ_i (2i − n − 1) x_(i) / (n Σ x), with x sorted ascending and i = 1..n.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.shape[0]
    total = x.sum()
    if n == 0 or total == 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(((2 * index - n - 1) * x).sum() / (n * total))
