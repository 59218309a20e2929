"""Fidelity of a calibrated simulation to the real data it was calibrated on.

Check 2 of the fidelity report (the others come later): the distribution of ratings users give
in the simulation against the real one, as a total-variation distance
``TV(p, q) = ½ Σ_r |p_r − q_r|`` over the star levels 1..5 (0 = identical, 1 = disjoint). TV is
used rather than KL because it is bounded, symmetric and defined when a level is empty on one
side (the simulator can give no 1-star ratings at all).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulator.datasets import InteractionData

LEVELS = np.arange(1, 6)


def rating_histogram(ratings: np.ndarray) -> np.ndarray:
    """[5] share of ratings at each star level; half stars round up (MovieLens 0.5..5)."""
    ratings = np.asarray(ratings, np.float64)
    ratings = ratings[~np.isnan(ratings)]
    if ratings.size == 0:
        raise ValueError("no ratings to compare")
    stars = np.clip(np.floor(ratings + 0.5), 1, 5).astype(np.int64)
    counts = np.bincount(stars - 1, minlength=5).astype(np.float64)
    return counts / counts.sum()


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def rating_tv(real: InteractionData, interactions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per arm: the simulated rating histogram, the real one and their TV distance.

    ``interactions`` is ``analysis.load(run_dir).interactions`` (columns ``arm``, ``rating``);
    replicates are pooled, since the question is about the user model, not the arms' noise.
    """
    if real.rating is None:
        raise ValueError(f"dataset {real.name!r} has no ratings")
    frame = interactions.lazy().select("arm", "rating").collect()
    truth = rating_histogram(real.rating[real.consumed()])
    rows = []
    for arm in frame["arm"].unique(maintain_order=True).to_list():
        sim = rating_histogram(frame.filter(pl.col("arm") == arm)["rating"].to_numpy())
        rows.append(
            {
                "arm": arm,
                "tv_distance": tv_distance(sim, truth),
                "simulated": sim.tolist(),
                "real": truth.tolist(),
            }
        )
    return pl.DataFrame(rows)
