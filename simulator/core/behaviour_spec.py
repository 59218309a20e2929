"""Scenario sections for optional user behaviours: the daily rhythm and instructions.

Both are ``population`` sub-sections that default to absent. Absent means the engine never
builds the mechanism, so a scenario that does not name them keeps its logs bit for bit. They
live in their own module so the main schema only gains two optional fields.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from recarena.simulator.core.paths import PathText
from recarena.simulator.core.section import NonNegFloat, PositiveFloat, Section

Hour = Annotated[float, Field(ge=0, lt=24)]


class DailyRhythmSpec(Section):
    """When in the day users start sessions, and how their topic tastes swing with the hour.

    Each user gets a preferred start hour (drawn around one of ``peak_hours``) and a smooth
    circular-Gaussian profile around it; sessions start at hours drawn from that profile. Each
    topic gets a peak hour (drawn once per replicate) and each user a jittered copy of it; the
    user's taste for the topic rises by up to ``topic_amplitude`` near that hour and falls away
    from it (zero mean over the day, so the daily average taste is unchanged).
    """

    peak_hours: Annotated[list[Hour], Field(min_length=1, max_length=24)] = [8.0, 20.0]
    """Modes of users' preferred session-start hours (0-24, local time)."""
    peak_weights: list[PositiveFloat] | None = None
    """Share of users around each mode; null = equal shares."""
    spread_hours: Annotated[float, Field(ge=0, le=12)] = 1.5
    """Standard deviation of a user's preferred hour around its mode."""
    width_hours: Annotated[float, Field(gt=0, le=12)] = 2.0
    """Width (sd) of the Gaussian bump of a user's start-hour profile."""
    floor: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Share of a user's sessions spread uniformly over the day."""
    start_hours_from: PathText | None = None
    """A CSV with a ``timestamp`` column (Unix seconds, e.g. MovieLens ratings.csv): its pooled,
    smoothed hour-of-day profile replaces ``peak_hours`` as the distribution users' preferred
    hours are drawn from (recarena.agents.users.daily_rhythm.fit_clock_profiles)."""
    utc_offset_hours: Annotated[float, Field(ge=-12, le=14)] = 0.0
    """Added to the data's UTC timestamps before taking the hour (start_hours_from only)."""
    topic_amplitude: Annotated[float, Field(ge=0, le=10)] = 0.0
    """Peak-to-mean swing of hour-of-day topic tastes (utility units); 0 = no topic clock."""
    topic_width_hours: Annotated[float, Field(gt=0, le=12)] = 3.0
    """Width (sd) of the bump around a topic's peak hour."""
    topic_jitter_hours: Annotated[float, Field(ge=0, le=12)] = 2.0
    """Standard deviation of a user's own peak hour for a topic around the topic's peak."""

    @model_validator(mode="after")
    def _weights_match(self) -> DailyRhythmSpec:
        if self.peak_weights is not None and len(self.peak_weights) != len(self.peak_hours):
            raise ValueError(
                f"@peak_weights: {len(self.peak_weights)} weights for "
                f"{len(self.peak_hours)} peak_hours"
            )
        return self


class InstructionSpec(Section):
    """Users who are about to leave say what they want instead (RecoWorld-style).

    After a page, a user whose leave probability ``1 − exp(−fatigue)`` reaches ``threshold``
    emits one structured instruction (more_novel, less_of_topic, more_of_topic or
    something_different, chosen by agents/users/instructions.py from the page and the user's
    state). Recommenders see it in ``FeedbackBatch.instructions``; it is logged to the
    ``instructions`` table.
    """

    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Leave probability at which a user speaks up."""
    max_per_session: Annotated[int, Field(ge=1, le=100)] = 1
    """Instructions a user may give per session."""
    grace: bool = True
    """A user who speaks up stays for one more page to see whether the system listened."""
    relief: NonNegFloat = 0.5
    """Fatigue removed when the page right after an instruction gets a click (being heard)."""
    satiation_cut: NonNegFloat = 0.3
    """less_of_topic: satiation on the page's dominant topic must reach this."""
    concentration: Annotated[float, Field(gt=0, le=1)] = 0.4
    """less_of_topic: the dominant topic's share of the page must reach this."""
    familiar_cut: Annotated[float, Field(ge=0, le=1)] = 0.5
    """more_novel (novelty-seeking sessions): the page's mean familiarity must reach this."""
    missing_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    """more_of_topic: the user's best topic is asked for when its page share is below this."""
