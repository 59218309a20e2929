"""What decides a fidelity run's figures (kept apart so every fidelity stage can import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recarena.analysis.fidelity.ranking import DEFAULT_ARMS, ArmSpec
from recarena.simulator.data.sampling import DEFAULT_MAX_RATINGS


@dataclass(frozen=True)
class FidelityConfig:
    """Everything that decides the figures; written beside them as ``fidelity.config.yaml``."""

    dataset: str = "ml-100k"
    format: str = "auto"
    seed: int = 0
    users: int | None = None
    """Keep this many users (drawn with ``seed``) before splitting; None = all."""
    max_ratings: int | None = DEFAULT_MAX_RATINGS
    """Then keep whole users, in a seeded random order, while their rows fit this budget
    (None = all): check 3 trains seven recommenders, three times each for the tuned ones, so
    the run's time grows with the ratings; about 1M ratings (ML-1M) is what a 15-minute run on
    two cores affords. ML-10M and larger releases are sampled, and the report says so."""
    holdout: float = 0.2
    ratios: tuple[int, ...] = (1, 3, 9)
    per_user: bool = False
    """Check 1: also average accuracy/precision/recall/F1 per user (Agent4Rec's option)."""
    n_boot: int = 1000
    topics: int = 16
    calibration_epochs: int = 10
    calibration_batch_size: int | None = None
    """None: the calibration's rule (agents/users/calibration_factors.py ``factor_batch_size``: 256
    rows per step, fewer on a tiny dataset so that an epoch has ten steps)."""
    arms: tuple[ArmSpec, ...] = DEFAULT_ARMS
    simulation_days: float = 3.0
    simulation_visits_per_day: float = 1.0
    llm: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
