"""The catalog view of the unit tests that tell items apart by their topics alone."""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.types import CatalogView


def topics_catalog(topics: np.ndarray) -> CatalogView:
    """``len(topics)`` items with these topic rows (as float32) and nothing else to tell them
    apart: quality 0, creator 0, all published at time 0."""
    n = topics.shape[0]
    return CatalogView(
        n, topics.astype(np.float32), np.zeros(n, np.float32), np.zeros(n, np.int32), np.zeros(n)
    )
