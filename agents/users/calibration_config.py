"""What a calibration fits and how hard it tries: one frozen config, read by every part of the
fit (agents/users/calibration.py orchestrates it; calibration_factors.py, calibration_choice.py
read their own fields). It has a module of its own so that those parts can read it without
importing the orchestrator that imports them."""

from __future__ import annotations

from dataclasses import dataclass, field

from recarena.agents.users.sequential_interest import InterestConfig


@dataclass(frozen=True)
class CalibrationConfig:
    topics: int = 16
    holdout: float = 0.2
    epochs: int = 10
    lr: float = 0.05
    reg: float | None = None
    """L2 weight on the static taste (and the chosen movies' quality) in the factor fit; None =
    chosen among :data:`REG_CANDIDATES` by held-out log-loss (:func:`choose_factors`; both in
    agents/users/calibration_factors.py)."""
    negatives: int = 256
    batch_size: int | None = None
    """Rows per optimiser step of the factor fit; None = :func:`factor_batch_size`
    (agents/users/calibration_factors.py)."""
    slate_size: int = 10
    slates_per_user: int = 100
    session_gap_seconds: float = 1800.0
    prior_days: float = 7.0
    seed: int = 0
    refit: bool = True
    """Refit the user model's components on all rows after its weights were chosen."""
    interest: InterestConfig | None = field(default_factory=InterestConfig)
    """The calibrated user model's extra terms (agents/users/sequential_interest.py);
    None = taste and quality only (the model before sequential interest was added)."""
