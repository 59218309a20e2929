"""Hour-of-day behaviour: when users start sessions and how their tastes swing with the clock.

Interest Clock (streaming recommendation) observed that what people want depends on the hour:
news in the morning, films at night; and that people keep regular hours. Both are modelled as
*smooth clock profiles*: 24 hourly values made smooth by a circular Gaussian kernel, so 23:00
and 01:00 are neighbours and a profile fitted from sparse timestamps has no jagged hours.

* ``start`` [U, 24]: each user's distribution of session-start hours. Arrivals are drawn
  uniformly over the day as before (the same uniforms under every arm), then mapped through the
  user's inverse CDF, so common random numbers survive: the same candidate starts at the same
  time under every arm.
* ``topic`` [U, 24, T]: each user's additive taste for each topic at each hour, zero-mean over
  the day; the engine moves users' taste to the current hour's once an hour
  (:meth:`DailyRhythm.retune`).

:func:`fit_clock_profiles` estimates both from a timestamped interaction table (the same
smoothing), which is how a rhythm is calibrated from real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recarena.simulator.core.behaviour_spec import DailyRhythmSpec
from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.types import DAY
from recarena.simulator.data.parsing import LATEST_SECONDS, PAST_YEAR_5000, number

HOURS = 24


def circular_kernel(width_hours: float) -> np.ndarray:
    """[24, 24] row-normalised circular Gaussian kernel: K[h, g] ∝ exp(−d(h, g)² / 2σ²),
    with d the distance around the clock (so hour 23 is one hour from hour 0)."""
    hours = np.arange(HOURS)
    diff = np.abs(hours[:, None] - hours[None, :])
    distance = np.minimum(diff, HOURS - diff)
    kernel = np.exp(-(distance**2) / (2.0 * width_hours**2))
    return kernel / kernel.sum(axis=1, keepdims=True)


def smooth_hours(counts: np.ndarray, width_hours: float) -> np.ndarray:
    """Smooth the hour axis (the second to last for [.., 24, T], the last for [.., 24])."""
    kernel = circular_kernel(width_hours)
    if counts.ndim >= 2 and counts.shape[-1] != HOURS:  # [..., 24, T]
        return np.einsum("hg,...gt->...ht", kernel, counts)
    return counts @ kernel.T


def bump(centres: np.ndarray, width_hours: float) -> np.ndarray:
    """[..., 24] circular Gaussian bumps around ``centres`` (hours), peak 1."""
    hours = np.arange(HOURS, dtype=np.float64)
    diff = np.abs(hours - np.asarray(centres, np.float64)[..., None]) % HOURS
    distance = np.minimum(diff, HOURS - diff)
    out = np.exp(-(distance**2) / (2.0 * width_hours**2))
    # a bump narrower than the hour grid can underflow at all 24 hours (width 1e-9 h, a centre
    # off the hour): its limit is a spike at the nearest hour, not a profile of zeros that a
    # user's start hours were then drawn from as 0/0 = NaN
    flat = out.max(axis=-1) == 0
    if flat.any():
        nearest = np.expand_dims(distance.argmin(axis=-1), -1)
        peak = np.where(flat[..., None], 1.0, np.take_along_axis(out, nearest, axis=-1))
        np.put_along_axis(out, nearest, peak, axis=-1)
    return out


def hour_of_day(seconds: np.ndarray | float, utc_offset_hours: float = 0.0) -> np.ndarray:
    """Integer hour 0..23 of simulated (or Unix) seconds."""
    shifted = np.asarray(seconds, np.float64) + utc_offset_hours * 3600.0
    return ((shifted % DAY) // 3600.0).astype(np.int64)


@dataclass(frozen=True)
class ClockProfiles:
    """Fitted clock profiles (rows are probability distributions over hours)."""

    start: np.ndarray  # [U, 24] each user's hour-of-activity distribution, smoothed
    pooled: np.ndarray  # [24] everyone's, smoothed
    topic: np.ndarray | None  # [U, 24, T] P(topic | user, hour), smoothed; None without topics


def fit_clock_profiles(
    user: np.ndarray,
    seconds: np.ndarray,
    n_users: int,
    width_hours: float = 1.5,
    topics: np.ndarray | None = None,
    prior: float = 1.0,
    utc_offset_hours: float = 0.0,
) -> ClockProfiles:
    """Estimate clock profiles from a timestamped interaction table.

    ``user`` [N] ids in 0..n_users-1, ``seconds`` [N] timestamps, ``topics`` [N, T] the topic
    mix of each interaction's item (optional). Hour histograms are smoothed with the circular
    kernel; each user's start profile shrinks towards the pooled one with ``prior``
    pseudo-interactions (users with few events look like everybody), and P(topic | user, hour)
    shrinks towards the user's all-day topic mix the same way.
    """
    user = np.asarray(user, np.int64)
    hour = hour_of_day(seconds, utc_offset_hours)
    counts = np.zeros((n_users, HOURS))
    np.add.at(counts, (user, hour), 1.0)
    pooled = smooth_hours(counts.sum(axis=0), width_hours)
    pooled = pooled / max(pooled.sum(), 1e-12)
    smoothed = smooth_hours(counts, width_hours) + prior * pooled
    start = smoothed / smoothed.sum(axis=1, keepdims=True)
    topic_profile = None
    if topics is not None:
        topics = np.asarray(topics, np.float64)
        by_hour = np.zeros((n_users, HOURS, topics.shape[1]))
        np.add.at(by_hour, (user, hour), topics)
        overall = by_hour.sum(axis=1)  # [U, T]
        overall = (overall + 1e-9) / (overall + 1e-9).sum(axis=1, keepdims=True)
        smoothed_topics = smooth_hours(by_hour, width_hours) + prior * overall[:, None, :]
        topic_profile = smoothed_topics / smoothed_topics.sum(axis=2, keepdims=True)
    return ClockProfiles(start=start, pooled=pooled, topic=topic_profile)


def pooled_profile_from_csv(path: str, width_hours: float, utc_offset_hours: float) -> np.ndarray:
    """[24] the smoothed hour profile of a CSV's ``timestamp`` column (Unix seconds). Anything
    wrong with the file is one RecarenaError naming the field and the file: a cell and
    ``validate`` (simulator/runner/input_file_checks.py) read it through here alike."""
    what = "population.daily_rhythm.start_hours_from"
    if not Path(path).is_file():
        raise RecarenaError(f"{what}: file not found: {path}")
    import pandas as pd  # read once per cell, only by scenarios that name a CSV

    try:
        columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        if "timestamp" not in columns:  # was pandas' "Usecols do not match columns ..."
            shown = ", ".join(columns[:10]) + (", ..." if len(columns) > 10 else "")
            raise RecarenaError(
                f"{what}: {path} has no 'timestamp' column (Unix seconds); "
                f"its columns: {shown or 'none'}"
            )
        seconds = pd.read_csv(path, usecols=["timestamp"])["timestamp"].to_numpy(np.float64)
    except (ValueError, TypeError, KeyError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise RecarenaError(f"{what}: {path}: {first_line(exc)}") from None
    if seconds.size == 0:
        raise RecarenaError(f"{what}: {path} has no timestamps")
    if not np.isfinite(seconds).all():
        raise RecarenaError(f"{what}: {path}: every timestamp must be a finite number")
    late = np.flatnonzero(seconds > LATEST_SECONDS)
    if late.size:  # was: milliseconds read as seconds, a profile of noise without a word
        row = int(late[0])
        raise RecarenaError(
            f"{what}: {path}: timestamp {number(seconds[row])} (data row {row + 1}) "
            f"{PAST_YEAR_5000}"
        )
    with np.errstate(all="ignore"):
        profiles = fit_clock_profiles(
            np.zeros(seconds.shape[0], np.int64),
            seconds,
            1,
            width_hours,
            None,
            0.0,
            utc_offset_hours,
        )
    if not np.isfinite(profiles.pooled).all() or profiles.pooled.sum() <= 0:
        raise RecarenaError(f"{what}: {path}: no usable timestamps")
    return profiles.pooled


def start_profile(hour: np.ndarray, spec: DailyRhythmSpec) -> np.ndarray:
    """[..., 24] start-hour distributions of users whose preferred hours are ``hour``: a bump of
    ``width_hours`` around each, with ``floor`` of the sessions spread over the day."""
    profile = bump(hour, spec.width_hours)
    profile = profile / profile.sum(axis=-1, keepdims=True)
    return (1.0 - spec.floor) * profile + spec.floor / HOURS


def share_before(spec: DailyRhythmSpec, hours: float) -> float | None:
    """The expected share of a day's sessions that start before ``hours`` o'clock (0-24), over
    users whose preferred hours are drawn as :meth:`DailyRhythm.generate` draws them (each
    peak's share of users, a normal spread around it on a fine grid out to 8 sd) and started
    as :meth:`DailyRhythm.warp` starts them (hourly bins, uniform within). None when
    ``start_hours_from`` sets the preferred hours (its file decides)."""
    if spec.start_hours_from is not None:
        return None
    modes = np.asarray(spec.peak_hours, np.float64)
    weights = np.asarray(spec.peak_weights or [1.0] * len(modes), np.float64)
    z = np.linspace(-8.0, 8.0, 641) if spec.spread_hours > 0 else np.zeros(1)
    density = np.exp(-(z**2) / 2.0)
    hour = (modes[:, None] + z[None, :] * spec.spread_hours) % HOURS  # [modes, grid]
    weight = (weights / weights.sum())[:, None] * (density / density.sum())[None, :]
    profile = start_profile(hour, spec)  # [modes, grid, 24]
    whole = int(min(max(hours, 0.0), HOURS))
    cdf = profile[..., :whole].sum(axis=-1)
    if whole < HOURS:
        cdf = cdf + (hours - whole) * profile[..., whole]
    return float((weight * cdf).sum())


@dataclass(frozen=True)
class DailyRhythm:
    """Per-user clock profiles of one cell: start-hour CDFs and hourly topic tastes."""

    start_cdf: np.ndarray  # [U, 25] cumulative start-hour distribution, 0 ... 1
    topic: np.ndarray | None  # [U, 24, T] float32 additive taste per hour; None = no topic clock
    preferred_hour: np.ndarray  # [U] float64 each user's preferred start hour

    @staticmethod
    def generate(
        spec: DailyRhythmSpec, n_users: int, n_topics: int, rng: np.random.Generator
    ) -> DailyRhythm:
        """Draw every user's profiles from the ``rhythm`` stream (the same under every arm)."""
        if spec.start_hours_from is not None:
            pooled = pooled_profile_from_csv(
                spec.start_hours_from, spec.width_hours, spec.utc_offset_hours
            )
            hour = rng.choice(HOURS, size=n_users, p=pooled) + rng.random(n_users)
        else:
            modes = np.asarray(spec.peak_hours, np.float64)
            weights = np.asarray(spec.peak_weights or [1.0] * len(modes), np.float64)
            mode = rng.choice(len(modes), size=n_users, p=weights / weights.sum())
            hour = modes[mode] + rng.standard_normal(n_users) * spec.spread_hours
        hour = hour % HOURS
        profile = start_profile(hour, spec)
        cdf = np.concatenate([np.zeros((n_users, 1)), np.cumsum(profile, axis=1)], axis=1)
        cdf[:, -1] = 1.0
        topic = None
        if spec.topic_amplitude > 0:
            topic_peak = rng.random(n_topics) * HOURS
            own_peak = topic_peak + rng.standard_normal((n_users, n_topics)) * (
                spec.topic_jitter_hours
            )
            shape = bump(own_peak, spec.topic_width_hours)  # [U, T, 24]
            shape = shape - shape.mean(axis=2, keepdims=True)  # zero mean over the day
            shape = shape / np.maximum(shape.max(axis=2, keepdims=True), 1e-12)
            topic = (spec.topic_amplitude * shape).transpose(0, 2, 1).astype(np.float32)
        return DailyRhythm(cdf, topic, hour)

    def warp(self, users: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Map uniform fractions of a day to fractions distributed by each user's profile.

        Inverse-CDF sampling over the piecewise-constant hourly density: the hour is the bin
        whose CDF interval holds the uniform, the minute is linear inside it. Monotone in the
        uniform, so the draw keeps its common-random-number meaning.
        """
        cdf = self.start_cdf[users]  # [n, 25]
        hour = (cdf[:, 1:-1] <= fraction[:, None]).sum(axis=1)  # [n] 0..23
        rows = np.arange(users.shape[0])
        low, high = cdf[rows, hour], cdf[rows, hour + 1]
        within = (fraction - low) / np.maximum(high - low, 1e-300)
        return (hour + np.clip(within, 0.0, 1.0 - 1e-9)) / HOURS

    def retune(self, taste: np.ndarray, from_hour: int | None, to_hour: int) -> None:
        """Move every user's taste (in place) from one hour's topic clock to another's.

        The clock term is linear in the item's topics, like taste, so adding it to the taste
        array once an hour is the same as adding x_i · topic[u, hour] to every utility, and
        every policy that reads taste (rule, plug-in, the LLM panel's fallback) and every
        ground-truth query sees it without knowing about clocks.
        """
        if self.topic is None:
            return
        delta = self.topic[:, to_hour]
        if from_hour is not None:
            delta = delta - self.topic[:, from_hour]
        taste += delta
