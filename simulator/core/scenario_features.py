"""Scenario sections of two opt-in ecosystem features: talking users and AI-generated content.

They live apart from ``scenario.py`` so the main schema stays readable; ``scenario.py`` only
hangs them on ``population.social.talk`` and ``creators.ai``. Both default to absent, and a
scenario without them resolves, runs and logs exactly as before they existed.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from recarena.simulator.core.section import NonNegFloat, Probability, Section, SignedFloat


class Talk(Section):
    """Users who post about what they consumed and message friends (agents/users/talk.py).

    After consuming an item a user posts about it with probability
    ``min(1, post_rate · e_u · exp(satisfaction_weight · s_u))`` and messages one friend about it
    with probability ``min(1, message_rate · e_u · exp(satisfaction_weight · s_u))``, where
    ``e_u`` is the user's extraversion (log-normal, mean 1, spread ``extraversion_sd``) and
    ``s_u`` its satisfaction. The post's sentiment is the sign of (rating − 3). A post reaches
    each friend with probability ``reach``; a message reaches its one friend. Whoever hears of
    an item adds ``sentiment · mention_boost`` to that item's utility for ``memory_days`` days.
    """

    post_rate: NonNegFloat = 0.3
    """Mean posts per consumed item (scaled by extraversion and satisfaction)."""
    message_rate: NonNegFloat = 0.1
    """Mean one-to-one messages per consumed item."""
    extraversion_sd: NonNegFloat = 0.75
    """Spread of the per-user extraversion trait (log-normal)."""
    satisfaction_weight: SignedFloat = 1.0
    """How much satisfaction raises the rate of talking."""
    reach: Probability = 0.5
    """Share of friends a post reaches."""
    mention_boost: NonNegFloat = 1.0
    """Utility added to a positively mentioned item (subtracted for a negative mention)."""
    memory_days: Annotated[int, Field(ge=1, le=365)] = 3
    """How long a heard mention keeps moving utility."""


class AIContent(Section):
    """Creators who may switch to AI generation (agents/creators/ai_adoption.py).

    An AI creator uploads ``speedup`` times as often; its items' topic mixes are pulled toward
    the initial catalog's mean mix by ``centrality`` (AIGC is more "central") and their quality
    shifts by ``quality_shift``. At every creators' review a human creator adopts AI with
    probability ``min(1, base_rate + payoff · max(0, r − 1) + imitation · a)``, where ``r`` is
    the exposure per AI item over the exposure per human item in the period just ended (what the
    creator can see of the platform) and ``a`` the share of active creators already on AI.
    """

    initial_share: Probability = 0.1
    """Share of the initial creators on AI from the start (drawn once per replicate)."""
    speedup: Annotated[float, Field(ge=1, le=1e6)] = 2.0
    """How many times as often an AI creator uploads."""
    centrality: Probability = 0.5
    """How far AI items' topic mixes are pulled toward the catalog's mean mix."""
    quality_shift: SignedFloat = 0.0
    """Shift of AI items' quality relative to their creator's."""
    base_rate: Probability = 0.0
    """Chance per review that a human creator adopts AI regardless of what it sees."""
    payoff: NonNegFloat = 0.5
    """Weight of the observed exposure advantage of AI items on adoption."""
    imitation: NonNegFloat = 0.2
    """Weight of the share of creators already on AI on adoption."""
