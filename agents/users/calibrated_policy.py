"""The user policy of calibrated populations: the rule user plus the fitted extra terms.

A plug-in user policy (``population.policy``), built like the rule policy as
``CalibratedUserPolicy(population_cfg, user_state, catalog, topic_successor, social=...)``; it
reads the fitted :class:`~recarena.agents.users.sequential_interest.SequentialInterest` from
the calibrated population file named by ``population.path``. ``resolve_calibrated``
(agents/users/calibrated.py) selects it for calibrated populations whose file carries one;
generated populations never use it, so their logs do not change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from recarena.agents.users.calibration import CalibratedPopulation
from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.rng import combine, uniforms
from recarena.simulator.core.types import PageBatch, ResponseBatch

_RATE = 0x5EC5  # counter-based purpose of the rating noise (distinct from choose/leave)
POLICY = "recarena.agents.users.calibrated_policy:CalibratedUserPolicy"


class CalibratedUserPolicy(RuleUserPolicy):
    """The rule user plus short-term interest, conformity and ordinal ratings.

    The rating noise is counter-based (its own purpose key), so every arm shares it; each
    cell keeps its own copy of the users' recent items, which move with every click.
    """

    rows_independent = True
    """Each page is answered from its own row and its user's state (simulator/engine/waves.py)."""

    def __init__(self, cfg: Any, users: Any, catalog: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, users, catalog, *args, **kwargs)
        path = getattr(cfg, "path", None)
        population = CalibratedPopulation.load(path) if path else None
        if population is None or population.interest is None:
            raise RecarenaError(
                f"population.policy: the calibrated policy needs a calibrated population with a "
                f"fitted user model (population.path = {path!r}; re-run `recarena calibrate`)"
            )
        self.interest = population.interest.copy()

    def _utility(
        self, users: np.ndarray, items: np.ndarray, explore: np.ndarray, valid: np.ndarray
    ) -> np.ndarray:
        """The rule user's utility plus short-term interest and conformity. It overrides the
        hook both ``utility`` and ``respond`` call, so the choice on a page uses it too."""
        base = super()._utility(users, items, explore, valid)
        extra = self.interest.dynamic_utility(users, np.where(valid, items, 0))
        return np.where(valid, base + extra, -np.inf).astype(np.float32)

    def respond(self, pages: PageBatch) -> ResponseBatch:
        response = super().respond(pages)
        rows = np.flatnonzero(response.clicked.any(axis=1))
        slot = response.clicked[rows].argmax(axis=1)
        users = pages.requests.user[rows]
        chosen = pages.slates.items[rows, slot]
        rating = response.rating
        if self.interest.ordinal and rows.size:
            surplus = response.utility[rows, slot].astype(np.float64) - self.cfg.no_click_utility
            u = uniforms(combine(pages.noise_key, _RATE))[rows]
            rating = np.full(rating.shape, np.nan, np.float32)
            dynamic = self.interest.dynamic_utility(users, chosen[:, None])[:, 0]
            rating[rows] = self.interest.draw_ratings(surplus, users, u, dynamic)
        self.interest.push(users, chosen)
        return replace(response, rating=rating)
