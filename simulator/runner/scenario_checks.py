"""Whole-scenario consistency: a scenario valid value by value can be impossible as a whole.

The schema (simulator/core/scenario.py) checks each value on its own. These checks compare
values with each other and with the population's sizes: a carousel with more slots than the
catalog has items, refits more often than a tick, a social graph asking for more neighbours
than there are users, and settings that nothing would read (a conversation with no
conversation surface, a daily_rhythm field its mode ignores, creators that can never leave, a
wrapper whose feature is off). Each was ignored without a word, or failed at run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from recarena.agents.llm.choices import MAX_OPTIONS
from recarena.agents.users.daily_rhythm import share_before
from recarena.recommenders.registry import REGISTRY, recommender_tree
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import (
    Arm,
    CarouselSurface,
    ConversationSurface,
    PluginSurface,
    Scenario,
)
from recarena.simulator.core.types import DAY
from recarena.simulator.engine.model import does_nothing
from recarena.simulator.runner.resource_estimate import Sizes
from recarena.simulator.runner.sweep import expand_sweep


def check_pages(scenario: Scenario, items: int) -> None:
    """A page cannot show more distinct items than the catalog starts with, nor, to LLM users
    reading their decision from one token's logprobs, more than that token can name."""
    scored = scenario.population.llm_users > 0 and scenario.llm.decision == "score"
    for index, arm in enumerate(scenario.arms):
        surface = scenario.surface_for(arm)
        where = f"arms[{index}].surface" if arm.surface is not None else "surface"
        if isinstance(surface, CarouselSurface):
            slots = len(surface.rows) * surface.cols
            if slots > items:
                raise RecarenaError(
                    f"{where}: a carousel of {len(surface.rows)} rows x {surface.cols} columns "
                    f"= {slots} slots exceeds the catalog's {items} initial items"
                )
        else:
            k = getattr(surface, "k", None)  # a plug-in surface may have no k
            if isinstance(k, int) and k > items:
                raise RecarenaError(
                    f"{where}.k: {k} slots exceed the catalog's {items} initial items"
                )
            slots = k if isinstance(k, int) else 0
        if scored and slots > MAX_OPTIONS:
            # was: validate passed and every cell failed on its first LLM page (exit 1)
            field = where if isinstance(surface, CarouselSurface) else f"{where}.k"
            raise RecarenaError(
                f"{field}: {slots} slots on a page, but LLM users in scoring mode "
                f"(llm.decision: score) name each slot by one token, 1-9 then A-Z: at most "
                f"{MAX_OPTIONS}; show fewer, or set llm.decision: generate"
            )


def check_retrain(scenario: Scenario) -> None:
    """A refit more often than a tick sees no click the last one did not: clicks are logged
    only at ticks, so the extra refits only cost time (mf every minute on 5-minute ticks fitted
    five times per tick's worth of data). Refused with the smallest useful value, one tick, so
    every refit that is run sees a tick more; a scenario still accepted runs as before."""
    tick = scenario.horizon.tick_seconds
    smallest = _one_tick_in_days(tick)
    for index, arm in enumerate(scenario.arms):
        every = scenario.retrain_days(arm)
        if every * DAY < tick * (1 - 1e-9):
            field = scenario.retrain_field(index)
            raise RecarenaError(
                f"{field}: a refit every {every:g} days ({every * DAY:g} s) is more "
                f"often than a tick (horizon.tick_seconds {tick:g}), and clicks arrive only at "
                f"ticks, so most refits would see nothing new; the smallest useful value is "
                f"{smallest:g} days (one tick)"
            )


def _fitted_leaf(type_name: str, params: dict[str, Any], where: str) -> str | None:
    """The innermost recommender of an arm's tree (the base every wrapper serves from), when it
    is a built-in that learns at refits (its ``fit`` does something): random, the bandits (which
    learn online) and a policy checkpoint do not. A plug-in's fit may load a pretrained model
    and ignore the clicks (fidelity's arms do, with a refit after the horizon on purpose), so
    plug-ins are left to their authors."""
    leaf = list(recommender_tree(where, type_name, params))[-1]
    if REGISTRY.get(leaf.type_name).source != "built-in":
        return None
    cls = REGISTRY.load(leaf.type_name)
    return None if does_nothing(getattr(cls, "fit", None)) else leaf.type_name


def _fitted_once(scenario: Scenario) -> Iterator[tuple[int, float, bool, str]]:
    """Each arm whose recommender learns at refits (popularity, mf, itemknn, content, the
    sequence models, and every wrapper over one) with no refit before the horizon: refits come
    every ``retrain.every_days`` (or the arm's ``retrain_every_days``) from the start, and the
    one at the start sees no click, so the arm serves an untrained ranking all run. Yields
    (arm index, days between refits, whether that is the default schedule, the learner)."""
    days = scenario.horizon.days
    default = type(scenario.retrain).model_fields["every_days"].default
    for index, arm in enumerate(scenario.arms):
        every = scenario.retrain_days(arm)
        if every * DAY < days * DAY:
            continue
        where = f"arms[{index}].recommender"
        learner = _fitted_leaf(arm.recommender.type, arm.recommender.params, where)
        if learner is not None:
            yield index, every, every == default, learner


def check_refits_happen(scenario: Scenario) -> None:
    """An arm fitted once, at the start (:func:`_fitted_once`), by a schedule the scenario
    wrote. Weekly refits over a 2-day horizon (or 24 written for hours) ran popularity as one
    fixed random order, the same for every user, and validate said ok.

    Only a schedule other than the default (one day) counts, as for the settings a resolved
    scenario writes out: short smoke tests of a day or less with the default schedule run as
    before (:func:`untrained_arms` names them in a note; docs/guide/scenarios.md)."""
    for index, every, default, learner in _fitted_once(scenario):
        if default:
            continue
        field = scenario.retrain_field(index)
        raise RecarenaError(
            f"{field}: a refit every {every:g} days and horizon.days is "
            f"{scenario.horizon.days:g}, so arms[{index}] ({scenario.arms[index].name!r}) would "
            f"fit its {learner} once, at the start, before any click, and serve that untrained "
            "ranking all run; refit more often than the horizon, or give more days"
        )


def untrained_arms(scenario: Scenario) -> list[str]:
    """What :func:`check_refits_happen` lets through on purpose: an arm fitted once, at the
    start, by the default daily schedule over a horizon of a day or less. Short smoke tests run
    like that, so it is said (a note), not refused; a user comparing popularity with random
    over half a day otherwise reads an untrained ranking as the learner's result. One phrase per
    such arm."""
    return [
        f"arms[{index}] ({scenario.arms[index].name!r}, {learner})"
        for index, _, default, learner in _fitted_once(scenario)
        if default
    ]


def _one_tick_in_days(tick: float) -> float:
    """One tick in days, to six digits, rounded up: the smallest useful period of a schedule
    that should see a tick's worth of pages."""
    one_tick = tick / DAY
    step = 10.0 ** (math.floor(math.log10(one_tick)) - 5)
    return math.ceil(one_tick / step) * step


def check_review_period(scenario: Scenario) -> None:
    """Creators' reviews more often than a tick: impressions and clicks are counted only at
    ticks, so a period between two ticks has none, and each creator reads it as a period with no
    exposure. With 5-minute ticks and reviews every 0.002 days (173 s) the first two periods
    ended before the first page, and leave_after_periods: 2 with min_exposure 1 retired every
    creator before a user saw an item; a strategy chased topics on zero counts. Refused with
    the smallest useful value, one tick, as a refit more often than a tick is."""
    tick = scenario.horizon.tick_seconds
    period = scenario.creators.period_days
    if period * DAY < tick * (1 - 1e-9):
        raise RecarenaError(
            f"creators.period_days: a review every {period:g} days ({period * DAY:g} s) is "
            f"more often than a tick (horizon.tick_seconds {tick:g}), and impressions are "
            "counted only at ticks, so most periods would have none (creators would read them "
            "as periods without exposure); the smallest useful value is "
            f"{_one_tick_in_days(tick):g} days (one tick)"
        )


def check_graph(scenario: Scenario, sizes: Sizes | None) -> None:
    """A drawn social graph's neighbours (watts_strogatz's k) or attachments (barabasi_albert's
    m) must be fewer than the users: the graph builder cut them to users - 1 without a word, so a
    scenario asked for one graph and ran another (on a calibrated population, whose file sets
    the users, as on a generated one). sbm's ``blocks`` may be at most the users."""
    social = scenario.population.social
    if social is None or social.graph.type == "edge_list":
        return
    graph = social.graph
    if sizes is not None:
        users, whose = sizes.users, "the calibrated population (population.path) has {}"
    else:
        users, whose = scenario.population.users, "population.users is {}"
    if graph.type == "sbm":
        # more blocks than users leaves blocks empty, which the builder drops: another graph
        # than asked for; and it counted users per block over every block id, so 2^62 blocks
        # failed every cell ("array is too big")
        if graph.blocks is not None and graph.blocks > users:
            raise RecarenaError(
                f"population.social.graph.blocks: {graph.blocks} blocks (sbm) need at least "
                f"{graph.blocks} users; {whose.format(users)}"
            )
        _check_sbm_reachable(scenario, sizes, users, whose)
        return
    name, value, what = (
        ("k", graph.k, "neighbours per user")
        if graph.type == "watts_strogatz"
        else ("m", graph.m, "edges per new user")
    )
    if value >= users:
        raise RecarenaError(
            f"population.social.graph.{name}: {value} {what} ({graph.type}) need more than "
            f"{value} users; {whose.format(users)}"
        )


def _check_sbm_reachable(scenario: Scenario, sizes: Sizes | None, users: int, whose: str) -> None:
    """An sbm graph's edge probabilities were capped at 1 without a word: a mean degree past
    users - 1 (the most friends a user can have) drew a complete graph of a smaller degree, and
    with a single block (``blocks: 1``, or blocks by taste over one topic) there is no pair
    between blocks, so the share 1 - homophily of the edges was never drawn (homophily 0: no
    edge at all)."""
    social = scenario.population.social
    assert social is not None
    graph = social.graph
    if graph.mean_degree > users - 1:
        raise RecarenaError(
            f"population.social.graph.mean_degree: a mean degree of {graph.mean_degree:g} (sbm) "
            f"needs more than {graph.mean_degree:g} users (a user has at most users - 1 "
            f"friends); {whose.format(users)}"
        )
    topics = sizes.topics if sizes is not None and sizes.topics is not None else None
    topics = scenario.catalog.topics if topics is None else topics
    if graph.homophily < 1 and (graph.blocks == 1 or (graph.blocks is None and topics == 1)):
        why = "blocks: 1" if graph.blocks == 1 else "its blocks are dominant topics, of 1 topic"
        raise RecarenaError(
            f"population.social.graph.homophily: {graph.homophily:g} asks for "
            f"{(1 - graph.homophily) * 100:g}% of edges between blocks, and the sbm graph has a "
            f"single block ({why}), so they would not be drawn; set homophily: 1, or more blocks"
        )


_CALIBRATED_UNREAD = (
    ("population", "taste_scale"),
    ("population", "visits_per_day"),
    ("population", "activity_sd"),
)
"""Fields that draw generated users' tastes and visit rates (agents/users/population.py); a
calibrated population reads its users' own from population.path."""

_CALIBRATED_SIZED = (
    ("population", "users", "users"),
    ("catalog", "initial_items", "items"),
    ("catalog", "topics", "topics"),
    ("creators", "count", "creators"),
)
"""Fields a calibrated population sets from its file (agents/users/calibrated.py), each with
the size of the file (simulator/runner/resource_estimate.Sizes) it becomes."""


def check_calibrated_fields(scenario: Scenario, sizes: Sizes | None) -> None:
    """A calibrated population replaces population.users, catalog.initial_items,
    catalog.topics and creators.count with its file's sizes, and its users' tastes and visit
    rates with their fitted ones: `users: 100` written beside `from: calibrated` (to try a
    smaller run) ran the file's 943 users, `topics: 8` its 16 topics and `count: 5` its one
    creator per first genre, and taste_scale, visits_per_day and activity_sd were read by
    nothing, while the disk estimate counted visits_per_day. A value other than the default
    (which a resolved scenario writes) or the file's own is refused, in the scenario and at
    each sweep point."""
    if scenario.population.source != "calibrated" or sizes is None:
        return
    for world in _worlds(scenario):
        for section, name, size in _CALIBRATED_SIZED:
            value = getattr(getattr(world, section), name)
            default = type(getattr(world, section)).model_fields[name].default
            own = getattr(sizes, size)
            if own is not None and value not in (default, own):
                raise RecarenaError(
                    f"{section}.{name}: {value} would be replaced by the calibrated "
                    f"population's {getattr(sizes, size)} {size} (population.path sets them); "
                    "leave it out"
                )
        for section, name in _CALIBRATED_UNREAD:
            value = getattr(getattr(world, section), name)
            if value != type(getattr(world, section)).model_fields[name].default:
                raise RecarenaError(
                    f"{section}.{name}: read by nothing with from: calibrated (its users' "
                    "tastes and visit rates are fitted, in population.path); leave it out"
                )


def _worlds(scenario: Scenario) -> list[Scenario]:
    """The scenarios its cells run: each sweep point's, or the scenario itself."""
    return [point.scenario for point in expand_sweep(scenario)] or [scenario]


def _on_pages(world: Scenario, arm: Arm) -> bool:
    """Whether an arm's users see pages (a list, a carousel or a plug-in surface), where the
    page step and the user policies' ``respond`` read max_pages and the fatigue settings; a
    conversation's length is surface.max_turns and population.conversation's patience."""
    return not isinstance(world.surface_for(arm), ConversationSurface)


def _reads_population_decay(world: Scenario, arm: Arm) -> bool:
    """Whether an arm's surface examines slots by population.position_decay: a list or a
    conversation without a position_decay of its own, or a plug-in factory (it is given it); a
    carousel has its row_decay and col_decay."""
    surface = world.surface_for(arm)
    if isinstance(surface, CarouselSurface):
        return False
    return isinstance(surface, PluginSurface) or surface.position_decay is None


def _in_conversation(world: Scenario, arm: Arm) -> bool:
    """Whether an arm's users converse, where the dialogue loop reads population.conversation."""
    return isinstance(world.surface_for(arm), ConversationSurface)


_PAGES_UNREAD = (
    "every arm is on a conversation surface, whose length is surface.max_turns and "
    "population.conversation's patience, so this page setting would be read by nothing; "
    "remove it or give an arm a page surface"
)

_POPULATION_READERS: tuple[tuple[str, Callable[[Scenario, Arm], bool], str], ...] = (
    # after the resolve step (preflight), so a conversational recommender on a list is named
    # first; a personas path that no source reads is refused alike
    ("conversation", _in_conversation, (
        "no arm has a conversation surface, so these settings would be read by nothing; "
        "remove them or give an arm surface: {type: conversation}"
    )),
    # the page step alone reads them (simulator/engine/pages.py): a user in a conversation
    # never speaks up, and the instructions table stayed empty in every cell
    ("instructions", _on_pages, (
        "every arm is on a conversation surface, and users give instructions only on pages "
        "(lists, carousels), so these settings would be read by nothing; remove them or give "
        "an arm a page surface"
    )),
    ("max_pages", _on_pages, _PAGES_UNREAD),
    ("fatigue_per_page", _on_pages, _PAGES_UNREAD),
    ("fatigue_no_click", _on_pages, _PAGES_UNREAD),
    ("position_decay", _reads_population_decay, (
        "every arm's surface examines its slots by a decay of its own (a carousel's row_decay "
        "and col_decay, a surface's position_decay), so it would be read by nothing; remove it "
        "or leave some list's position_decay out"
    )),
    # the rule policy's novelty bonus is novelty_weight x the session's explore draw, and a
    # plug-in policy is handed the population's settings (it may read the weight itself)
    ("novelty_weight",
     lambda world, arm: world.population.explore_prob > 0 or world.population.policy != "rule", (
        "explore_prob is 0, so no session is novelty-seeking and the novelty bonus would be "
        "read by nothing; remove it or set explore_prob above 0"
    )),
    ("satiation_decay_per_day", lambda world, arm: world.population.satiation_gain > 0, (
        "satiation_gain is 0, so there is no satiation to wear off and this would be read by "
        "nothing; remove it or set satiation_gain above 0"
    )),
)  # fmt: skip
"""Population fields that only some arms, or only some settings of another field, read: each
with whether an arm of a scenario reads it."""


def check_population_fields_are_read(scenario: Scenario) -> None:
    """A population field nothing reads was ignored without a word: a conversation section
    with no arm in conversation, instructions where every arm is, ``max_pages: 1`` written
    for short sessions ran conversations of max_turns turns, ``position_decay: 2`` over
    carousels examined by row_decay and col_decay, ``novelty_weight: 5`` with explore_prob 0
    sessions of which none seeks novelty, with the same logs as without it. A
    value other than the default (which a resolved scenario writes) is refused unless some
    sweep point that sets it has an arm that reads it."""
    defaults = type(scenario.population).model_fields
    worlds = _worlds(scenario)
    for name, reads, why in _POPULATION_READERS:
        default = defaults[name].default
        settings = [world for world in worlds if getattr(world.population, name) != default]
        if settings and not any(reads(world, arm) for world in settings for arm in world.arms):
            swept = f"population.{name}" in (scenario.sweep or {})
            raise RecarenaError(f"{'sweep.' if swept else ''}population.{name}: {why}")


_OVERRIDDEN_BY_ARMS = (
    ("surface", "surface", "surface"),
    ("retrain", "retrain_every_days", "retrain schedule"),
)
"""Scenario sections an arm may replace with a field of its own (Scenario.surface_for,
Scenario.retrain_days): the section, the arm's field and what it sets."""


def check_sections_are_read(scenario: Scenario) -> None:
    """The scenario's surface or retrain with every arm setting its own (arms[i].surface,
    arms[i].retrain_every_days) was read by nothing; a sweep over it was refused so
    (simulator/runner/sweep.py), the section written by hand was not. A section other than
    its default (which a resolved scenario writes) is refused unless some sweep point has an
    arm that reads it."""
    worlds = _worlds(scenario)
    for section, field, what in _OVERRIDDEN_BY_ARMS:
        default = type(scenario).model_fields[section].default
        settings = [world for world in worlds if getattr(world, section) != default]
        if settings and all(
            getattr(arm, field) is not None for world in settings for arm in world.arms
        ):
            raise RecarenaError(
                f"{section}: every arm sets its own {what} (arms[i].{field}), so the "
                f"scenario's {section} would be read by nothing; remove it, or leave some "
                f"arm's {field} out"
            )


_RHYTHM_READERS: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (("utc_offset_hours",), lambda r: r.start_hours_from is not None,
     "it shifts start_hours_from's timestamps, and none is given"),
    (("peak_hours", "peak_weights", "spread_hours"), lambda r: r.start_hours_from is None,
     "start_hours_from's profile replaces the peaks"),
    (("topic_width_hours", "topic_jitter_hours"), lambda r: r.topic_amplitude > 0,
     "topic_amplitude is 0, so there is no topic clock"),
)  # fmt: skip
"""Settings of population.daily_rhythm, what reads them (agents/users/daily_rhythm.py), and
why it does not."""


def check_rhythm_is_read(scenario: Scenario) -> None:
    """A daily_rhythm setting nothing reads was ignored without a word (utc_offset_hours with
    no start_hours_from, the peaks beside one, the topic clock's shape with topic_amplitude 0):
    refused unless some sweep point that sets it reads it (an ablation that turns the topic
    clock off at one point still runs). Only a value other than the default counts as set
    (a resolved scenario writes every default), as for the social graph's parameters."""
    worlds = _worlds(scenario)
    rhythms = [w.population.daily_rhythm for w in worlds if w.population.daily_rhythm]
    if not rhythms:
        return
    fields = type(rhythms[0]).model_fields
    for names, reads, why in _RHYTHM_READERS:
        for name in names:
            setting = [r for r in rhythms if getattr(r, name) != fields[name].default]
            if setting and not any(reads(r) for r in setting):
                raise RecarenaError(
                    f"population.daily_rhythm.{name}: read by nothing ({why}); leave it out"
                )


NO_SESSION_SHARE = 1e-9
"""A share of a day's sessions below which a rhythm's users start none before the horizon (a
billion users visiting once a day would start one)."""


def rhythm_before_peaks(world: Scenario) -> tuple[float, float] | None:
    """A horizon shorter than a day that ends before every peak of population.daily_rhythm:
    (the hour it ends at, the expected share of a day's sessions users' hours put before it);
    None otherwise, or when start_hours_from sets the hours (its file decides the peaks)."""
    rhythm = world.population.daily_rhythm
    days = world.horizon.days
    if rhythm is None or days >= 1:
        return None
    end = days * 24.0
    if any(peak < end for peak in rhythm.peak_hours):
        return None
    share = share_before(rhythm, end)
    return None if share is None else (end, share)


def _peaks(world: Scenario) -> str:
    rhythm = world.population.daily_rhythm
    assert rhythm is not None
    return ", ".join(f"{peak:g}" for peak in rhythm.peak_hours)


def check_rhythm_starts_sessions(scenario: Scenario) -> None:
    """A daily rhythm whose users start no session before the horizon: the run served no page
    and compared arms on empty logs, and validate said ok. With a floor above 0 some sessions
    always start (a night's browsing is a legitimate, if odd, trial: noted, not refused, by
    :func:`rhythm_before_peaks`); with floor 0 and hours kept close to peaks after the
    horizon's end, none does. Refused in the scenario and at each sweep point."""
    for world in _worlds(scenario):
        before = rhythm_before_peaks(world)
        if before is None or before[1] >= NO_SESSION_SHARE:
            continue
        rhythm = world.population.daily_rhythm
        assert rhythm is not None
        raise RecarenaError(
            f"population.daily_rhythm.peak_hours: horizon.days {world.horizon.days:g} ends at "
            f"hour {before[0]:g} of the first day, before every peak hour ({_peaks(world)}), "
            f"and with floor {rhythm.floor:g} no user's hours start a session before it, so "
            "no page would be served; lengthen horizon.days past a peak or give daily_rhythm "
            "a floor"
        )


def rhythm_note(scenario: Scenario) -> str | None:
    """What :func:`check_rhythm_starts_sessions` lets through: a horizon before every peak with
    some sessions before it. One line (the first such world of a sweep) for the CLI's note."""
    for world in _worlds(scenario):
        before = rhythm_before_peaks(world)
        if before is None:
            continue
        end, share = before
        days = world.horizon.days
        return (
            f"population.daily_rhythm: horizon.days {days:g} ends at hour {end:g} of the first "
            f"day, before every peak hour ({_peaks(world)}), so users start only the sessions "
            f"their hours put before it, about {share:.1%} of a day's ({days:.0%} without a "
            "rhythm); lengthen horizon.days past the peaks to simulate them"
        )
    return None


def check_leaving_can_happen(scenario: Scenario) -> None:
    """``creators.leave_after_periods`` with ``min_exposure`` 0 (the default): a period is low
    when a creator's exposure is below min_exposure, never below 0, so no creator ever left and
    the setting was read by nothing. Refused unless some sweep point that sets it has a
    min_exposure above 0."""
    worlds = _worlds(scenario)
    leaving = [w.creators for w in worlds if w.creators.leave_after_periods is not None]
    if leaving and not any(creators.min_exposure > 0 for creators in leaving):
        raise RecarenaError(
            f"creators.leave_after_periods: {leaving[0].leave_after_periods} low periods, but "
            "with creators.min_exposure 0 no period is low (exposure is never below 0), so no "
            "creator would leave; set min_exposure, the impressions a period needs"
        )


def _reviews_before_horizon(world: Scenario) -> bool:
    """Whether a cell has a creators' review before its horizon: reviews come every
    ``period_days`` and the horizon's own closing review applies nothing (the engine's
    ``review(final=True)``), so a period no shorter than the horizon leaves none."""
    return world.creators.period_days * DAY < world.horizon.days * DAY


def _ai_at_start(world: Scenario) -> bool:
    """Whether some creator is on AI from the start (round(initial_share x creators), as
    agents/creators/ai_adoption.py draws it; a calibrated population's own creators: not 0)."""
    ai = world.creators.ai
    if ai is None:
        return False
    if world.population.source == "calibrated":
        return ai.initial_share > 0
    return math.floor(ai.initial_share * world.creators.count + 0.5) > 0


_AT_REVIEWS: tuple[tuple[str, Callable[[Scenario], bool], str], ...] = (
    ("creators.strategy", lambda w: w.creators.strategy.type != "static",
     "creators change their topic mix only at a review, so none would adapt"),
    ("creators.join_rate_per_period", lambda w: w.creators.join_rate_per_period > 0,
     "creators join only at a review, so none would join"),
    ("creators.leave_after_periods", lambda w: w.creators.leave_after_periods is not None,
     "creators leave only at a review, so none would leave"),
    ("creators.ai", lambda w: w.creators.ai is not None and not _ai_at_start(w),
     "no creator is on AI at the start and creators adopt AI only at a review, so none "
     "would ever be on AI"),
)  # fmt: skip
"""Creator settings that act only at a review before the horizon (agents/creators/dynamics.py:
strategy updates, leaving, joining and AI adoption are all skipped by the closing review)."""


def check_reviews_happen(scenario: Scenario) -> None:
    """A creators setting that acts only at reviews (a strategy other than static, joining,
    leaving, AI adoption with no AI creator at the start) over a horizon no longer than
    ``creators.period_days``: the first review would come at or after the horizon, whose closing
    review logs the period and applies nothing, so the setting ran as if it were absent (2 days
    with the default weekly period: no creator joined, adapted or adopted AI). Refused unless
    some sweep point that sets it has a review before its horizon."""
    worlds = _worlds(scenario)
    for field, sets, why in _AT_REVIEWS:
        setting = [w for w in worlds if sets(w)]
        if setting and not any(_reviews_before_horizon(w) for w in setting):
            world = setting[0]
            raise RecarenaError(
                f"{field}: creators review every {world.creators.period_days:g} days "
                f"(creators.period_days) and horizon.days is {world.horizon.days:g}, so no "
                f"review comes before the horizon: {why}; give a period_days shorter than the "
                "horizon, or leave it out"
            )


def _graph_unread(world: Scenario) -> bool:
    """population.social set, and nothing reads its graph: influence and word_of_mouth at 0,
    no talk, and no arm with a carousel row of theme 'friends' (or a plug-in surface, which may
    read the friends' topics it is handed)."""
    social = world.population.social
    if social is None or social.talk is not None or social.influence or social.word_of_mouth:
        return False
    for arm in world.arms:
        surface = world.surface_for(arm)
        if isinstance(surface, PluginSurface):
            return False
        if isinstance(surface, CarouselSurface) and any(
            row.theme == "friends" for row in surface.rows
        ):
            return False
    return True


def _nobody_talks(world: Scenario) -> bool:
    talk = world.population.social.talk if world.population.social else None
    return talk is not None and talk.post_rate == 0 and talk.message_rate == 0


def _no_ai_ever(world: Scenario) -> bool:
    """creators.ai set, and no creator on AI at the start (round(initial_share x creators) is
    0, agents/creators/ai_adoption.py) nor ever after: with no AI creator and no AI item,
    payoff and imitation have nothing to go on, so only base_rate could start adoption."""
    ai = world.creators.ai
    if ai is None or ai.base_rate > 0:
        return False
    if world.population.source == "calibrated":  # its own creators: only 0 is sure
        return ai.initial_share == 0
    return math.floor(ai.initial_share * world.creators.count + 0.5) == 0


def check_features_act(scenario: Scenario) -> None:
    """A feature section set so that it can never act: population.social with influence and
    word_of_mouth both 0, no talk and no carousel 'friends' row (a graph built and read by
    nothing: every cell ran as without it), population.social.talk with post_rate
    and message_rate both 0 (no user ever talks), or creators.ai where no creator is on AI at
    the start and base_rate is 0 (none ever adopts it). Each ran as if the section were absent:
    a social_feed or source_debias arm served its base unchanged, and the cascade or AI-source
    metrics had no value in any cell. Refused unless some sweep point gives it something to
    do."""
    worlds = _worlds(scenario)
    social = [w for w in worlds if w.population.social is not None]
    if social and all(_graph_unread(w) for w in social):
        raise RecarenaError(
            "population.social: influence and word_of_mouth are both 0, users do not talk "
            "(no talk) and no arm has a carousel row of theme 'friends', so the graph would be "
            "read by nothing; give influence or word_of_mouth a weight, or leave social out"
        )
    talking = [w for w in worlds if w.population.social and w.population.social.talk]
    if talking and all(_nobody_talks(w) for w in talking):
        raise RecarenaError(
            "population.social.talk: post_rate and message_rate are both 0, so no user would "
            "ever post or message; give one of them a rate, or leave talk out"
        )
    ai_worlds = [w for w in worlds if w.creators.ai is not None]
    if ai_worlds and all(_no_ai_ever(w) for w in ai_worlds):
        ai = ai_worlds[0].creators.ai
        assert ai is not None
        raise RecarenaError(
            f"creators.ai: initial_share {ai.initial_share:g} puts no creator on AI at the "
            "start and base_rate is 0, so no creator would ever adopt AI (payoff and imitation "
            "need AI items or AI creators to start from); raise one of them, or leave ai out"
        )


_FED_BY: dict[str, tuple[str | None, str, Callable[[Scenario], bool], str]] = {
    "social_feed": ("slots", "population.social.talk is not set", lambda w: bool(
        w.population.social and w.population.social.talk), "users do not talk, so no friend "
        "recommends anything"),
    "instructable": ("strength", "population.instructions is not set",
                     lambda w: w.population.instructions is not None, "users give no "
                     "instructions"),
    "llm_instructable": ("strength", "population.instructions is not set",
                         lambda w: w.population.instructions is not None, "users give no "
                         "instructions"),
    "source_debias": (None, "creators.ai is not set", lambda w: w.creators.ai is not None,
                      "every item is human-made, so there is no source share to balance"),
    "cluster_explore": ("exploration", "population.explore_prob is 0",
                        lambda w: w.population.explore_prob > 0, "no user ever seeks novelty, "
                        "so knob 'user' gives every user an exploration share of 0"),
}  # fmt: skip
"""Wrappers that act only on what a scenario feature makes (recommenders/social_feed.py,
instructable.py, source_debias.py, exploration.py): their knob (None: none asks for the base),
what is missing, whether a scenario has it, and why it matters."""

_PAGES_ONLY = frozenset({"instructable", "llm_instructable"})
"""Wrappers of _FED_BY fed by what users give on pages only: instructions come from the page
step, never from a conversation's turns."""

_FED_WHEN: dict[str, Callable[[dict[str, Any]], bool]] = {
    "cluster_explore": lambda params: params.get("knob") == "user",
}
"""Wrappers of _FED_BY that need the feature only with some params (cluster_explore's knob
'user' scales each user's share by its novelty-seeking rate; knob 'arm' needs none)."""


def check_wrapper_is_fed(scenario: Scenario) -> None:
    """A social_feed arm without talking users, an instructable one without instructions, a
    source_debias one without creators.ai (every item human) or a cluster_explore one of knob
    'user' where no user seeks novelty served its base unchanged: an A/B of two identical arms,
    read as "no effect". Refused unless its knob is 0 (the ablation that
    asks for the base) or some sweep point has the feature.
    The arms of each sweep point are walked too: a sweep that set a wrapper's base (or an arm's
    type) to social_feed or instructable was not, and its points served the base unchanged."""
    points = expand_sweep(scenario)
    worlds = [point.scenario for point in points] or [scenario]
    labelled = [("", scenario)] + [
        (
            f"sweep point {point.index} ("
            + ", ".join(f"{k}={v!r}" for k, v in point.params.items())
            + "): ",
            point.scenario,
        )
        for point in points
    ]
    for label, world in labelled:
        for index, arm in enumerate(world.arms):
            where = f"arms[{index}].recommender"
            for node in recommender_tree(where, arm.recommender.type, arm.recommender.params):
                fed = _FED_BY.get(node.type_name)
                if fed is None:
                    continue
                knob, missing, has, why = fed
                if knob and node.params.get(knob) == 0:
                    continue
                field = f"{where}.type" if node.type_field == where else node.type_field
                if node.type_name in _PAGES_ONLY and isinstance(
                    world.surface_for(arm), ConversationSurface
                ):
                    # was: an instructable arm on a conversation surface ran without a single
                    # instruction (users speak up on pages only) while a list arm got them
                    raise RecarenaError(
                        f"{label}{field}: {node.type_name} would serve its base unchanged: "
                        f"arms[{index}] is on a conversation surface, and users give "
                        "instructions only on pages (lists, carousels); put the arm on a page "
                        "surface, or compare the base itself"
                    )
                if any(has(w) for w in worlds):
                    continue
                needs = _FED_WHEN.get(node.type_name)
                if needs is not None and not needs(node.params):
                    continue
                raise RecarenaError(
                    f"{label}{field}: {node.type_name} would serve its base unchanged: "
                    f"{missing} ({why}); set it, or compare the base itself"
                )
