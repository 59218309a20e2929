"""Whole-user samples of a dataset that fit a ratings budget.

``calibrate`` and ``fidelity`` read releases from 100,000 to 25,000,000+ ratings; their cost
(and calibration's peak memory, about 1 KB a rating) grows with the ratings, so both keep
whole users, in a seeded random order, while their rows fit a budget. Whole users keep every
kept user's history complete, which the time split and the sequence models need.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recarena.simulator.data.datasets import InteractionData

DEFAULT_MAX_RATINGS = 1_100_000
"""About ML-1M's size: what a 15-minute ``fidelity`` on two cores affords, and what
``calibrate`` fits in a few GB. ML-10M and larger releases are sampled, and both say so."""


def subsample_users(
    data: InteractionData, n: int | None, seed: int, max_ratings: int | None = None
) -> InteractionData:
    """The interactions of ``n`` users drawn without replacement (all users when n is None),
    then, when they hold more than ``max_ratings`` rows, of as many of them (in a seeded random
    order) as fit in that budget: whole users, so every kept user's history stays complete."""
    ids, counts = np.unique(data.user, return_counts=True)
    rng = np.random.default_rng([seed, 1])
    keep = ids
    if n is not None and n < ids.size:
        keep = rng.choice(ids, size=n, replace=False)
        counts = counts[np.searchsorted(ids, keep)]
    if max_ratings is not None and int(counts.sum()) > max_ratings:
        order = np.random.default_rng([seed, 2]).permutation(keep.size)
        fits = np.cumsum(counts[order]) <= max_ratings
        fits[0] = True  # at least one user, whatever the budget
        keep = keep[order[fits]]
    if keep.size == ids.size:
        return data
    rows = np.isin(data.user, keep)

    def take(array):
        return None if array is None else array[rows]

    users = data.users
    if users is not None:
        kept = users["user"].cast(pl.String).is_in([str(u) for u in keep.tolist()])
        users = users.filter(kept)
    return InteractionData(
        name=data.name,
        user=data.user[rows],
        item=data.item[rows],
        timestamp=data.timestamp[rows],
        rating=take(data.rating),
        click=take(data.click),
        items=data.items,
        licence=data.licence,
        users=users,
        source=data.source,
    )


def sampled_line(full: InteractionData, kept: InteractionData, budget: int) -> str:
    """What a budget kept, for a note on stderr (empty when it kept everything)."""
    if kept.n_interactions >= full.n_interactions:
        return ""
    if kept.n_interactions > budget:  # was '... to fit the budget', of a sample past it
        return (
            f"sampled {kept.n_users:,} of {full.n_users:,} users ({kept.n_interactions:,} of "
            f"{full.n_interactions:,} ratings): no user's ratings fit the budget of {budget:,} "
            "ratings, so the first user drawn is kept whole"
        )
    return (
        f"sampled {kept.n_users:,} of {full.n_users:,} users ({kept.n_interactions:,} of "
        f"{full.n_interactions:,} ratings) to fit the budget of {budget:,} ratings"
    )
