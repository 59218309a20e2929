"""One page batch, given the slates: the step the clock and the Gym environments share.

``SimulationModel`` asks the arm's recommender for slates at every tick; a Gymnasium environment
(recarena.gym) takes them from an agent's action instead. Everything after the slates is the
same and lives here, so a policy trained in the environment meets exactly the users, noise,
logging and state changes of an ordinary run:

1. ``show``: counter-based noise keys, the surface's examination draw, the user policy's answer,
   and which sessions end after the page (they left, or hit ``max_pages``);
2. ``feedback``: the observable part as a :class:`FeedbackBatch` with ratings, session ends,
   examined counts and a reward;
3. ``close``: log the exposures, consume the clicked items, advance the sessions and end those
   that stop.

``now`` may be one time for the whole batch (the engine's tick) or one per row (environments
whose sessions each run on their own clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recarena.agents.users.instructions import instructions_of
from recarena.simulator.core.types import (
    FeedbackBatch,
    PageBatch,
    RequestBatch,
    ResponseBatch,
    SlateBatch,
    read_only,
)
from recarena.simulator.engine.arrivals import DAY
from recarena.simulator.engine.behaviour_hooks import log_instructions
from recarena.simulator.engine.outcomes import Outcomes
from recarena.simulator.engine.sessions import ActiveSessions
from recarena.simulator.engine.world import World

PageReward = Literal["clicks", "value", "rating", "pages"]
"""Per-page rewards: a click (0/1), the consumed item's utility surplus (the value that feeds
satisfaction), its 1..5 rating (0 without a click), or 1 per page served (session length)."""

PAGE_REWARDS: tuple[str, ...] = ("clicks", "value", "rating", "pages")


@dataclass(frozen=True)
class ShownPage:
    """A page batch after the users answered it, before anything is logged or applied."""

    slates: SlateBatch
    request_id: np.ndarray  # [B] int64
    pages: PageBatch
    response: ResponseBatch
    ending: np.ndarray  # [B] bool the session ends after this page (left or max_pages)


def requests_for(world: World, active: ActiveSessions, now: float, k: int) -> RequestBatch:
    """The page requests of every active session (one per row of ``active``)."""
    return RequestBatch(  # read-only: the guard checks slates against these after recommend
        time=now,
        user=read_only(active.user),
        session=read_only(active.session_id),
        page=read_only(active.page),
        k=k,
        catalog=world.catalog_view(),
        exclude=read_only(world.consumed.for_users(active.user)),
    )


def show(
    world: World, active: ActiveSessions, requests: RequestBatch, slates: SlateBatch
) -> ShownPage:
    """Put the slates in front of the users: examination, choice, rating, leaving."""
    request_id = active.request_ids()
    noise_key = active.noise_keys(world.hash_base, request_id)
    examined = world.surface.examine(noise_key, slates.items)
    # read-only views: these are the sessions' own state, and a plug-in user policy that wrote
    # into pages.explore changed the sessions' intent for the rest of the run without a word
    explore, fatigue = read_only(active.explore), read_only(active.fatigue)
    pages = PageBatch(requests, slates, explore, fatigue, noise_key, examined)
    response = world.policy.respond(pages)
    ending = response.leave | (active.page + 1 >= world.scenario.population.max_pages)
    return ShownPage(slates, request_id, pages, response, ending)


def page_reward(kind: str, response: ResponseBatch) -> np.ndarray:
    """[B] float32 reward of each row of a page batch (see :data:`PageReward`)."""
    if kind == "clicks":
        return np.asarray(response.clicked.any(axis=1), np.float32)
    if kind == "value":
        return response.extra["value"].astype(np.float32)
    if kind == "rating":
        return np.asarray(np.nan_to_num(response.rating, nan=0.0), np.float32)
    if kind == "pages":
        return np.ones(response.leave.shape[0], np.float32)
    raise ValueError(f"unknown page reward {kind!r}; known: {', '.join(PAGE_REWARDS)}")


def feedback(requests: RequestBatch, shown: ShownPage, reward: str = "clicks") -> FeedbackBatch:
    """What an online recommender may learn from: clicks, ratings, session ends, the number of
    examined slots (what viewport logging reports) and the configured per-page reward."""
    response = shown.response
    return FeedbackBatch(  # read-only views: the page is logged from these arrays afterwards
        requests,
        shown.slates,
        read_only(response.clicked),
        rating=None if response.rating is None else read_only(response.rating),
        leave=read_only(response.leave),
        session_end=read_only(shown.ending),
        examined_count=response.examined.sum(axis=1, dtype=np.int32),
        reward=page_reward(reward, response),
        instructions=instructions_of(response),  # population.instructions, else None
    )


def close(
    world: World,
    active: ActiveSessions,
    outcomes: Outcomes,
    now: float | np.ndarray,
    shown: ShownPage,
    log_exposures: Callable[..., None] | None = None,
) -> None:
    """Log the page, consume the clicks, advance every session and end the ones that stop.
    ``log_exposures`` replaces ``outcomes.log_exposures`` (same arguments): page waves keep the
    rows to log them in the tick loop's order."""
    response, slates = shown.response, shown.slates
    surface = world.surface
    if isinstance(now, np.ndarray):
        day: int | np.ndarray = (now // DAY).astype(np.int32)
    else:
        day = int(now // DAY)
    exposures = outcomes.log_exposures if log_exposures is None else log_exposures
    exposures(now, day, shown.request_id, slates, response, surface.row, surface.col)
    clicked_rows = outcomes.consume(now, day, shown.request_id, slates, response)
    log_instructions(outcomes.log, now, shown.request_id, active, response)  # if any

    active.page = active.page + 1
    active.fatigue = response.fatigue
    active.clicks[clicked_rows] += 1
    active.value += response.extra["value"]
    ending = shown.ending
    if ending.any():
        reason = np.where(response.leave[ending], "fatigue", "max_pages")
        outcomes.end_sessions(ending, now, reason)
