"""Wiring: build everything one cell simulates, from the scenario, in a fixed order.

RecSim NG's idea of one story that wires symmetric entities, kept as plain construction: the
users (rule policy, optional LLM panel), the corpus (catalog and creators), the social graph and
the recommender with its surface. ``SimulationModel`` then only runs the clock over a World.

Every random stream is derived from (seed, replicate, name), never from the arm, except the
recommender's own stream; so two arms build the same users, items and graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mesa
import numpy as np
from mesa.agent import AgentSet

from recarena.agents.creators.agent import CreatorAgent, creator_profiles
from recarena.agents.creators.dynamics import CreatorDynamics, creator_llm_client
from recarena.agents.llm.client import LLMClient
from recarena.agents.llm.endpoint import LLMRuntime
from recarena.agents.users.calibrated import add_calibrated_items, calibrated_users
from recarena.agents.users.calibration import CalibratedPopulation
from recarena.agents.users.daily_rhythm import DailyRhythm
from recarena.agents.users.instructions import InstructingPolicy
from recarena.agents.users.llm_instructions import LLMInstructions
from recarena.agents.users.llm_panel import build_panel_policy
from recarena.agents.users.llm_talk import LLMTalk
from recarena.agents.users.llm_user import PanelPolicy
from recarena.agents.users.memory import ConsumedItems
from recarena.agents.users.policies import REGISTRY as USER_POLICIES
from recarena.agents.users.population import UserState, generate_users
from recarena.agents.users.social import SocialState
from recarena.agents.users.talk import TalkState, draw_extraversion
from recarena.recommenders.base import Recommender, RecommenderContext
from recarena.recommenders.llm_crs import recommender_llm_resources
from recarena.recommenders.registry import build, build_plugin, plugins_in
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.errors import RecarenaError, exception_line
from recarena.simulator.core.rng import arm_key, generator, hash_base
from recarena.simulator.core.scenario import Arm, PluginSurface, Scenario
from recarena.simulator.core.types import CatalogView, RequestBatch
from recarena.simulator.engine.eventlog import EventLog
from recarena.simulator.engine.response_guard import GuardedPolicy
from recarena.simulator.engine.slate_guard import GuardedSurface, SlateGuard, guard_plugin_bases
from recarena.simulator.engine.surfaces import Surface, build_surface

Truth = Callable[[RequestBatch, np.ndarray], np.ndarray]


@dataclass
class World:
    """What one cell simulates. Arrays are shared with the collaborators that update them."""

    scenario: Scenario
    arm: Arm
    replicate: int
    catalog: Catalog
    calibrated: CalibratedPopulation | None
    creators: AgentSet
    user_state: UserState
    consumed: ConsumedItems
    social: SocialState | None
    taste_start: np.ndarray | None
    """Tastes at the start (kept only when tastes drift, for the users_end table)."""
    policy: Any
    """The user policy answering pages: the rule policy, or the LLM panel wrapping it."""
    panel: PanelPolicy | None
    hash_base: np.uint64
    recommender: Recommender
    recommender_llm: LLMClient | None
    surface: Surface
    creator_llm: LLMClient | None
    creator_dynamics: CreatorDynamics
    rhythm: DailyRhythm | None = None
    """Hour-of-day profiles (population.daily_rhythm); None = users keep no hours."""
    _catalog_view: tuple[Catalog, CatalogView] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def catalog_view(self) -> CatalogView:
        """The catalog as recommenders see it. Every page request carries one, and building it
        (six slices and a frozen dataclass) costs more than the rest of a small request, so it
        is rebuilt only when items were published: the slices are views, so anything else that
        changes in place is visible through the kept one."""
        kept = self._catalog_view
        if kept is None or kept[0] is not self.catalog or kept[1].n_items != self.catalog.n:
            kept = self._catalog_view = (self.catalog, self.catalog.view())
        return kept[1]

    def llm_clients(self) -> list[LLMClient]:
        clients = [self.panel.llm.client] if self.panel is not None else []
        return clients + [c for c in (self.creator_llm, self.recommender_llm) if c is not None]


def build_world(
    model: mesa.Model,
    scenario: Scenario,
    arm_index: int,
    replicate: int,
    log: EventLog,
    truth: Truth,
    llm_runtime: LLMRuntime | None,
) -> World:
    """Build a cell's world. ``model`` owns the Mesa agents; ``truth`` answers oracle queries."""
    seed = scenario.seed
    arm = scenario.arms[arm_index]
    cfg_cat, cfg_pop = scenario.catalog, scenario.population
    people = build_people(model, scenario, replicate)
    catalog, calibrated, creators = people.catalog, people.calibrated, people.creators
    user_state, social = people.user_state, people.social
    consumed = ConsumedItems(cfg_pop.users)
    if social is not None and social.cfg.talk is not None:  # users who post and message
        talk = social.cfg.talk
        trait_rng = generator(seed, replicate, "social", 1)
        social.talk = TalkState(
            talk,
            social.adjacency,
            draw_extraversion(cfg_pop.users, talk.extraversion_sd, trait_rng),
            user_state.satisfaction,
            hash_base(seed, replicate),
            log,
        )
    taste_start = user_state.taste.copy() if cfg_pop.taste_drift > 0 else None
    policy: Any = build_user_policy(scenario, people)
    rhythm = (  # its own arm-independent stream: the population's draws are untouched
        DailyRhythm.generate(
            cfg_pop.daily_rhythm,
            cfg_pop.users,
            cfg_cat.topics,
            generator(seed, replicate, "rhythm"),
        )
        if cfg_pop.daily_rhythm is not None
        else None
    )
    panel = None
    if cfg_pop.llm_users > 0:
        if llm_runtime is None:
            raise ValueError("a scenario with LLM users needs an LLMRuntime")
        panel = build_panel_policy(
            scenario, replicate, user_state, catalog, policy, llm_runtime, f"arm={arm.name}"
        )
        policy = panel
        if social is not None and social.talk is not None:  # LLM users decide what they say
            social.talk.speaker = LLMTalk(panel.llm, np.diff(social.adjacency.indptr))
    if cfg_pop.instructions is not None:  # users near leaving say what they want
        # outside the panel, so that LLM users speak up after their own decisions
        policy = InstructingPolicy(policy, user_state, catalog, cfg_pop.instructions)
        if panel is not None:  # and the LLM decides what they ask for
            policy.voice = LLMInstructions(panel.llm, cfg_cat.topics)
    # an LLM recommender's arm gets the run's LLM client and item text (None for the others)
    recommender_llm, crs_text = recommender_llm_resources(scenario, arm, catalog, llm_runtime)
    context = RecommenderContext(
        rng=generator(seed, replicate, "recommender", arm_key(arm.name)),
        n_users=cfg_pop.users,
        n_topics=cfg_cat.topics,
        truth=truth,
        llm_client=recommender_llm,
        item_text=crs_text,
        social_feed=social.talk if social is not None else None,
        exploration_setting=user_state.explore_prob,
        guard_base=guard_plugin_bases(arm),
    )
    spec = arm.recommender
    if plugins_in("", spec.type, spec.params):  # code we do not control: its failure is one line
        where = f"arms[{arm_index}].recommender (arm {arm.name!r})"
        recommender = build_plugin(spec.type, spec.params, context, where)
    else:
        recommender = build(spec.type, spec.params, context)
    surface_cfg = scenario.surface_for(arm)
    surface = build_surface(surface_cfg, cfg_pop.position_decay)
    if isinstance(surface_cfg, PluginSurface):  # code we do not control: its answers checked
        surface = GuardedSurface(surface, SlateGuard.of_surface(arm, surface_cfg.type))
    creator_llm = creator_llm_client(scenario, llm_runtime)
    creator_dynamics = CreatorDynamics(
        scenario,
        replicate,
        arm.name,
        catalog,
        list(creators),
        people.topic_weights,
        log,
        creators.add,
        creator_llm,
    )
    return World(
        scenario=scenario,
        arm=arm,
        replicate=replicate,
        catalog=catalog,
        calibrated=calibrated,
        creators=creators,
        user_state=user_state,
        consumed=consumed,
        social=social,
        taste_start=taste_start,
        policy=policy,
        panel=panel,
        hash_base=hash_base(seed, replicate),
        recommender=recommender,
        recommender_llm=recommender_llm,
        surface=surface,
        creator_llm=creator_llm,
        creator_dynamics=creator_dynamics,
        rhythm=rhythm,
    )


@dataclass
class People:
    """The users and the corpus a cell starts with, before any arm's recommender: the same
    under every arm (streams keyed by seed and replicate)."""

    catalog: Catalog
    calibrated: CalibratedPopulation | None
    creators: AgentSet
    topic_weights: np.ndarray
    user_state: UserState
    successor: np.ndarray
    """Each topic's successor (a permutation of the topics), for the user policy."""
    social: SocialState | None
    """The social graph (its talk, when users talk, is added by build_world)."""


def build_people(model: mesa.Model, scenario: Scenario, replicate: int) -> People:
    """The catalog and its creators, the users and their social graph, as a cell starts."""
    seed = scenario.seed
    cfg_cat, cfg_pop = scenario.catalog, scenario.population
    catalog = Catalog(cfg_cat.topics, capacity=max(1024, 2 * cfg_cat.initial_items))
    calibrated: CalibratedPopulation | None = None  # None = generated
    if cfg_pop.source == "calibrated":  # a real population (agents/users/calibrated.py)
        assert cfg_pop.path is not None, "the scenario schema requires a path for 'calibrated'"
        calibrated = CalibratedPopulation.load(cfg_pop.path)
    creators, topic_weights = _make_creators(model, scenario, replicate, catalog, calibrated)
    if calibrated is not None:
        user_state = calibrated_users(calibrated, cfg_pop, generator(seed, replicate, "population"))
    else:
        user_state = generate_users(
            cfg_pop, cfg_cat.topics, generator(seed, replicate, "population")
        )
    successor = generator(seed, replicate, "catalog", 0).permutation(cfg_cat.topics)
    social = (  # the same graph under every arm: its own arm-independent stream
        SocialState.build(
            cfg_pop.social, user_state.taste, cfg_cat.topics, generator(seed, replicate, "social")
        )
        if cfg_pop.social is not None
        else None
    )
    return People(catalog, calibrated, creators, topic_weights, user_state, successor, social)


def is_plugin_policy(scenario: Scenario) -> bool:
    """``population.policy`` names code from outside (an entry point or package.module:Class)."""
    return USER_POLICIES.get(scenario.population.policy).source != "built-in"


def build_user_policy(scenario: Scenario, people: People) -> Any:
    """The base user policy (``population.policy``); a plug-in's is wrapped in the response
    guard, and its constructor's failure is one line (a user error, exit 2)."""
    cfg_pop = scenario.population
    plugin_policy = is_plugin_policy(scenario)
    try:
        policy: Any = USER_POLICIES.load(cfg_pop.policy)(
            cfg_pop, people.user_state, people.catalog, people.successor, social=people.social
        )
    except RecarenaError:
        raise  # already one line naming its field (the calibrated policy without its population)
    except (Exception, SystemExit) as exc:
        if not plugin_policy:
            raise
        # code we do not control (a raise or a sys.exit): one line (a user error, exit 2), not
        # a traceback per cell
        raise RecarenaError(
            f"population.policy: {cfg_pop.policy!r} cannot be built: {exception_line(exc)}"
        ) from None
    if plugin_policy:
        policy = GuardedPolicy(policy, cfg_pop.policy)
    return policy


def _make_creators(
    model: mesa.Model,
    scenario: Scenario,
    replicate: int,
    catalog: Catalog,
    calibrated: CalibratedPopulation | None,
) -> tuple[AgentSet, np.ndarray]:
    """The creators as Mesa agents, and the catalog's initial items published by them."""
    cfg = scenario.catalog
    n = scenario.creators.count
    profile_rng = generator(scenario.seed, replicate, "catalog")
    profiles = creator_profiles(n, cfg, scenario.creators.uploads_per_day, profile_rng)
    creators = [
        CreatorAgent(
            model,
            creator_id=c,
            topic=int(profiles["topic"][c]),
            quality=float(profiles["quality"][c]),
            uploads_per_day=float(profiles["uploads_per_day"][c]),
            rng=generator(scenario.seed, replicate, "catalog", c + 1),
        )
        for c in range(n)
    ]
    shares = profiles["share"] / profiles["share"].sum()
    initial = profile_rng.multinomial(cfg.initial_items, shares)
    if calibrated is not None:  # the dataset's items instead of drawn ones
        add_calibrated_items(catalog, calibrated)
        initial[:] = 0
    for creator, count in zip(creators, initial, strict=True):
        if count:
            creator.publish(catalog, cfg, int(count), 0.0)
    return AgentSet(creators, random=model.random), profiles["topic_weights"]
