"""Where optional user behaviours meet the clock: the daily rhythm's arrival times and the
instructions table. Kept out of model.py so the page loop only gains one call per feature, and
a scenario without the features never reaches this code.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from recarena.agents.users.daily_rhythm import DailyRhythm, hour_of_day
from recarena.agents.users.instructions import instructions_of
from recarena.simulator.core.instructions import KINDS
from recarena.simulator.core.types import ResponseBatch
from recarena.simulator.engine.arrivals import DAY, Arrivals
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.sessions import ActiveSessions
from recarena.simulator.engine.world import World

HOUR = 3600.0


def behaviour_processes(env: simpy.Environment, world: World) -> list[Generator[Any, Any, None]]:
    """SimPy processes the optional behaviours need (none without them)."""
    rhythm = world.rhythm
    if rhythm is None or rhythm.topic is None:
        return []
    return [_hour_process(env, rhythm, world.user_state.taste)]


def _hour_process(
    env: simpy.Environment, rhythm: DailyRhythm, taste: np.ndarray
) -> Generator[Any, Any, None]:
    """On the hour, move tastes to the new hour's topic clock. It schedules a whole hour ahead,
    so at an hour boundary the retune comes before that tick's pages."""
    previous: int | None = None
    while True:
        hour = int(hour_of_day(env.now))
        rhythm.retune(taste, previous, hour)
        previous = hour
        yield env.timeout(HOUR)


def rhythm_draw_length(world: World, length: float) -> float:
    """The seconds of a day to draw arrival candidates over: the whole day with a daily rhythm,
    which moves them to users' hours and then drops those past a partial day's ``length``;
    else ``length`` itself."""
    return DAY if world.rhythm is not None else length


def arrivals_for_day(world: World, arrivals: Arrivals, day: int, length: float) -> Arrivals:
    """The day's arrivals, moved to users' hours when the scenario has a daily rhythm."""
    if world.rhythm is None:
        return arrivals
    return reshape_arrivals(world.rhythm, arrivals, day, length)


def reshape_arrivals(rhythm: DailyRhythm, arrivals: Arrivals, day: int, length: float) -> Arrivals:
    """Move a day's arrivals to the hours each user keeps.

    ``draw_day`` places candidates uniformly over the whole day, a partial last day included
    (:func:`rhythm_draw_length`); the uniform is recovered from the start time and mapped
    through the user's start-hour profile (``DailyRhythm.warp``), so the same candidate starts
    at the same moment under every arm. On a partial last day of ``length`` seconds, sessions
    the profile moves past the horizon are dropped, so the day keeps the sessions its users'
    hours put before the horizon. (Candidates drawn over the partial day alone were spread
    over the whole clock and then cut again: a horizon ending at noon kept a quarter of a
    day's sessions where users' hours put half of them, and a 6-hour trial before evening
    peaks a sixteenth of the night's few.)
    """
    if len(arrivals) == 0:
        return arrivals
    fraction = (arrivals.start - day * DAY) / DAY
    start = day * DAY + rhythm.warp(arrivals.user, fraction) * DAY
    keep = start < day * DAY + length
    order = np.argsort(start[keep], kind="stable")
    return Arrivals(
        user=arrivals.user[keep][order],
        start=start[keep][order],
        explore=arrivals.explore[keep][order],
        session_id=arrivals.session_id[keep][order],
    )


def log_instructions(
    log: EventLog,
    now: float | np.ndarray,
    request_id: np.ndarray,
    active: ActiveSessions,
    response: ResponseBatch,
) -> None:
    """Append a page batch's instructions (rows that gave one) to the ``instructions`` table;
    nothing without the feature. Call before the sessions' page counters advance."""
    instructions = instructions_of(response)
    if instructions is None:
        return
    rows = np.flatnonzero(instructions.given)
    if rows.size == 0:
        return
    when = np.broadcast_to(np.asarray(now, np.float64), instructions.kind.shape)[rows]
    leave_probability = response.extra["leave_probability"]
    names = np.array(KINDS, dtype=object)
    log.append(
        "instructions",
        {
            "request_id": request_id[rows],
            "session_id": active.session_id[rows],
            "user_id": active.user[rows],
            "time": when,
            "day": (when // DAY).astype(np.int32),
            "page": active.page[rows].astype(np.int16),
            "kind": names[instructions.kind[rows]],
            "topic": instructions.topic[rows].astype(np.int16),
            "leave_probability": leave_probability[rows].astype(np.float32),
        },
    )
