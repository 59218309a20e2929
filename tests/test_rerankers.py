"""Re-rankers on a hand-built catalog with a stub base recommender."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.registry import build, get_entry
from recarena.recommenders.rerankers import intra_list_diversity
from recarena.simulator.core.types import (
    PAD_ITEM,
    CatalogView,
    Interactions,
    RequestBatch,
    SlateBatch,
)

N_ITEMS, K = 30, 5
TOPIC = np.arange(N_ITEMS) % 3  # items 0, 3, 6, ... are topic 0
CREATOR = np.arange(N_ITEMS) % 6


class StubBase:
    """Scores favour topic 0, then lower ids: its top-k is all topic 0."""

    Params = NoParams

    def __init__(self, params, ctx) -> None:
        self.name = "stub"

    def fit(self, history) -> None:
        return None

    def update(self, feedback) -> None:
        return None

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        score = np.where(TOPIC == 0, 10.0, 0.0) - np.arange(N_ITEMS) * 0.01
        order = np.argsort(-score)[: requests.k]
        b = len(requests)
        items = np.tile(order, (b, 1))
        return SlateBatch(
            items,
            np.tile(score[order], (b, 1)).astype(np.float32),
            np.ones(items.shape, np.float32),
        )


def _catalog() -> CatalogView:
    topics = np.eye(3, dtype=np.float32)[TOPIC]
    return CatalogView(
        N_ITEMS, topics, np.zeros(N_ITEMS, np.float32), CREATOR.astype(np.int32), np.zeros(N_ITEMS)
    )


def _requests(b=4) -> RequestBatch:
    return RequestBatch(
        0.0,
        np.arange(b),
        np.arange(b),
        np.zeros(b, np.int32),
        K,
        _catalog(),
        np.full((b, 1), PAD_ITEM),
    )


def _build(kind, **params):
    ctx = RecommenderContext(np.random.default_rng(0), 10, 3)
    return build(kind, {"base": "tests.test_rerankers:StubBase", "candidates": 30, **params}, ctx)


def _topics_of(items):
    return [set(TOPIC[row].tolist()) for row in items]


def test_mmr_trades_relevance_for_diversity():
    base = StubBase(None, None).recommend(_requests()).items
    same = _build("mmr", **{"lambda": 1.0}).recommend(_requests()).items
    assert np.array_equal(same, base)  # lambda 1: pure relevance
    mmr = _build("mmr", **{"lambda": 0.3})
    diverse = mmr.recommend(_requests()).items
    assert all(len(t) == 3 for t in _topics_of(diverse)) and all(
        len(t) == 1 for t in _topics_of(base)
    )
    effect = mmr.effect()
    assert effect["diversity_reranked"] > effect["diversity_base"]
    catalog = _catalog()
    assert intra_list_diversity(catalog.topics, diverse).mean() > 0.5


def test_calibrated_matches_the_users_topic_mix():
    rec = _build("calibrated", **{"lambda": 0.9})
    # user 0 clicked topics 0, 1, 2 evenly; the base only offers topic 0 at the top
    clicks = np.array([0, 1, 2, 3, 4, 5])
    rec.fit(Interactions(np.zeros(6, np.int64), clicks, np.zeros(6), np.ones(6, np.float32)))
    items = rec.recommend(_requests(1)).items[0]
    q = np.bincount(TOPIC[items], minlength=3) / K
    base_q = np.bincount(TOPIC[StubBase(None, None).recommend(_requests(1)).items[0]], minlength=3)
    p = np.full(3, 1 / 3)

    def kl(p, q):
        q = 0.99 * q + 0.01 * p
        return float((p * np.log(p / q)).sum())

    assert kl(p, q) < kl(p, base_q / K)


def test_provider_fair_lowers_creator_gini_within_the_relevance_constraint():
    rec = _build("provider_fair", beta=1.0, min_relevance=0.9)
    for _ in range(6):
        slates = rec.recommend(_requests())
        assert (TOPIC[slates.items] == 0).all()  # topic 1/2 items fail the relevance constraint
    effect = rec.effect()
    assert effect["creator_gini_reranked"] < effect["creator_gini_base"]


def test_contract_and_validation():
    for kind in ("mmr", "calibrated", "provider_fair"):
        slates = _build(kind).recommend(_requests())
        assert slates.items.shape == (4, K)
        for row in slates.items:
            assert len(set(row.tolist())) == K
    with pytest.raises(ValidationError):
        get_entry("mmr").params.model_validate({"lambda": 2})
    with pytest.raises(ValidationError, match="unknown recommender 'nope'"):
        get_entry("calibrated").params.model_validate({"base": "nope"})


def test_effect_is_written_to_the_cell_manifest(tmp_path, tiny_doc):
    import json

    from recarena.simulator.runner.experiment import run_experiment
    from recarena.simulator.runner.resolve import parse_scenario

    tiny_doc["replicates"] = 1
    tiny_doc["arms"] = [
        {"name": "mmr", "recommender": {"type": "mmr", "params": {"base": "popularity"}}}
    ]
    run_experiment(parse_scenario(tiny_doc), tmp_path / "run", executor="local")
    manifest = json.loads((tmp_path / "run/arm=mmr/rep=0/manifest.json").read_text())
    effect = manifest["recommender_effect"]
    assert effect["diversity_reranked"] > effect["diversity_base"]


def test_unbounded_base_scores_are_read_by_rank():
    """A base whose scores are ±inf (another reranker's gains) gives finite relevance in
    [0, 1], by rank where the score is unbounded, and no NaN (which would rank nothing)."""
    import warnings

    from recarena.recommenders.rerankers import _relevance

    pool = SlateBatch(
        np.array([[4, 7, 9, 2]]),
        np.array([[np.inf, 0.5, -np.inf, 0.2]], np.float32),
        np.ones((1, 4), np.float32),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # min-max over ±inf warned and gave NaN
        relevance = _relevance(pool)
    assert np.isfinite(relevance).all() and (relevance >= 0).all() and (relevance <= 1).all()
    # unbounded scores read as their rank's (1, 2/3, 1/3, 0): [1, .5, 1/3, .2] min-max scaled
    np.testing.assert_allclose(relevance[0], [1.0, 0.375, 1 / 6, 0.0])
