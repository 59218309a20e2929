"""Behaviour of the rule-based user policy on hand-built catalogs."""

import numpy as np

from recarena.agents.users.population import generate_users
from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.rng import combine
from recarena.simulator.core.scenario import ListSurface, Population
from recarena.simulator.core.types import CatalogView, PageBatch, RequestBatch, SlateBatch
from recarena.simulator.engine.surfaces import ListView


def _catalog(n_items: int, n_topics: int, rng) -> Catalog:
    catalog = Catalog(n_topics)
    topics = np.eye(n_topics, dtype=np.float32)[rng.integers(0, n_topics, n_items)]
    catalog.add(
        topics, rng.normal(0, 0.3, n_items).astype(np.float32), np.zeros(n_items, np.int32), 0.0
    )
    return catalog


def _pages(users, items, explore=None, key_offset=0) -> PageBatch:
    batch, k = items.shape
    view = CatalogView(1, np.zeros((1, 1)), np.zeros(1), np.zeros(1, np.int32), np.zeros(1))
    requests = RequestBatch(
        0.0,
        users,
        np.arange(batch),
        np.zeros(batch, np.int32),
        k,
        view,
        np.empty((batch, 0), np.int64),
    )
    slates = SlateBatch(items, np.zeros(items.shape, np.float32), np.ones(items.shape, np.float32))
    explore = np.zeros(batch, bool) if explore is None else explore
    keys = combine(np.uint64(12345), np.arange(batch, dtype=np.uint64) + np.uint64(key_offset))
    examined = ListView(ListSurface(k=k), position_decay=0.7).examine(keys, items)
    return PageBatch(requests, slates, explore, np.zeros(batch, np.float32), keys, examined)


def test_clicks_fall_with_rank():
    rng = np.random.default_rng(1)
    cfg = Population(users=4000)
    catalog = _catalog(500, 8, rng)
    users = generate_users(cfg, 8, rng)
    policy = RuleUserPolicy(cfg, users, catalog)
    clicks = np.zeros(10)
    for rep in range(10):
        items = np.stack([rng.permutation(500)[:10] for _ in range(4000)]).astype(np.int64)
        response = policy.respond(_pages(np.arange(4000), items, key_offset=rep * 4000))
        clicks += response.clicked.sum(axis=0)
    ctr = clicks / (10 * 4000)
    # items are shuffled at random, so only position bias can make top slots win
    assert ctr[0] > ctr[2] > ctr[5] > ctr[9]
    assert ctr[0] > 2 * ctr[9]


def test_satiation_lowers_utility_of_consumed_topic():
    rng = np.random.default_rng(2)
    cfg = Population(users=10, satiation_gain=0.5)
    catalog = _catalog(40, 4, rng)
    users = generate_users(cfg, 4, rng)
    policy = RuleUserPolicy(cfg, users, catalog)
    topic0 = np.flatnonzero(catalog.topics[:, 0] == 1)[:3]
    topic1 = np.flatnonzero(catalog.topics[:, 1] == 1)[:3]
    slate = np.concatenate([topic0, topic1])[None, :]
    before = policy.utility(np.array([0]), slate, np.array([False]))
    for _ in range(3):
        users.consume(np.array([0]), catalog.topics[topic0[:1]], cfg.satiation_gain)
    after = policy.utility(np.array([0]), slate, np.array([False]))
    assert np.allclose(before[0, :3] - after[0, :3], 1.5)  # 3 consumptions x gain 0.5
    assert np.allclose(before[0, 3:], after[0, 3:])  # other topics untouched
    users.end_of_day(cfg)
    decayed = policy.utility(np.array([0]), slate, np.array([False]))
    assert np.all(decayed[0, :3] > after[0, :3])  # boredom wears off


def test_explore_intent_favours_unfamiliar_topics():
    rng = np.random.default_rng(3)
    cfg = Population(users=2, novelty_weight=1.0, satiation_gain=0.0)
    catalog = _catalog(40, 4, rng)
    users = generate_users(cfg, 4, rng)
    policy = RuleUserPolicy(cfg, users, catalog)
    familiar = np.flatnonzero(catalog.topics[:, 0] == 1)[:1]
    novel = np.flatnonzero(catalog.topics[:, 2] == 1)[:1]
    users.consume(np.array([0]), catalog.topics[familiar], 0.0)
    slate = np.concatenate([familiar, novel])[None, :]
    exploit = policy.utility(np.array([0]), slate, np.array([False]))[0]
    explore = policy.utility(np.array([0]), slate, np.array([True]))[0]
    assert np.isclose(explore[0] - exploit[0], 0.0, atol=1e-5)  # fully familiar: no novelty bonus
    assert np.isclose(explore[1] - exploit[1], 1.0, atol=1e-5)  # unfamiliar: full bonus


def test_fatigue_accumulates_and_ends_sessions():
    rng = np.random.default_rng(4)
    cfg = Population(users=3000, fatigue_per_page=0.5, fatigue_no_click=0.5)
    catalog = _catalog(100, 4, rng)
    users = generate_users(cfg, 4, rng)
    policy = RuleUserPolicy(cfg, users, catalog)
    items = np.tile(np.arange(10, dtype=np.int64), (3000, 1))
    response = policy.respond(_pages(np.arange(3000), items))
    clicked = response.clicked.any(axis=1)
    assert np.allclose(response.fatigue[clicked], 0.5)
    assert np.allclose(response.fatigue[~clicked], 1.0)
    leave_rate_tired = response.leave[~clicked].mean()
    leave_rate_fresh = response.leave[clicked].mean()
    assert leave_rate_tired > leave_rate_fresh
    assert abs(leave_rate_tired - (1 - np.exp(-1.0))) < 0.05


def test_sequel_bonus_follows_the_last_topic():
    rng = np.random.default_rng(5)
    cfg = Population(users=2, satiation_gain=0.0, novelty_weight=0.0, sequel_weight=2.0)
    catalog = _catalog(60, 4, rng)
    users = generate_users(cfg, 4, rng)
    policy = RuleUserPolicy(cfg, users, catalog, topic_successor=np.array([2, 3, 0, 1]))
    by_topic = [np.flatnonzero(catalog.topics[:, t] == 1)[:1] for t in range(4)]
    slate = np.concatenate(by_topic)[None, :]
    before = policy.utility(np.array([0]), slate, np.array([False]))[0]
    users.consume(np.array([0]), catalog.topics[by_topic[1]], 0.0)  # consumed topic 1
    after = policy.utility(np.array([0]), slate, np.array([False]))[0]
    assert np.allclose(after - before, [0, 0, 0, 2.0], atol=1e-5)  # succ(1) = 3
