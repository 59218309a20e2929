"""Valid-looking scenarios that validate passed and run did not finish.

Found by drawing scenarios from the schema (every surface, user option, creator strategy and
built-in recommender, params at the edges of their ranges) and running each that validate
passed: whatever validate says ok must run to exit 0, or be refused by validate first with the
one line run would give. Each test here is one case the fuzzing found, kept small.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from recarena.agents.users.daily_rhythm import DailyRhythm, bump
from recarena.agents.users.population import UserState
from recarena.agents.users.talk import talk_probability
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.native_gru4rec import NativeGRU4RecParams
from recarena.recommenders.registry import build
from recarena.simulator.core.behaviour_spec import DailyRhythmSpec
from recarena.simulator.core.scenario import Population
from recarena.simulator.core.types import Interactions, RequestBatch
from recarena.simulator.runner.preflight import preflight
from recarena.simulator.runner.resolve import parse_scenario
from tests.catalog_view import topics_catalog
from tests.cli_in_process import assert_refused, cli
from tests.test_rerankers import TOPIC as RERANK_TOPIC
from tests.test_rerankers import _build as rerank_build
from tests.test_rerankers import _requests as rerank_requests

BASE = {
    "name": "fuzz",
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 300},
    "catalog": {"initial_items": 60, "topics": 4},
    "population": {"users": 20},
    "creators": {"count": 2},
    "arms": [{"name": "random", "recommender": {"type": "random"}}],
}


def write(tmp_path: Path, **changes: object) -> Path:
    doc = copy.deepcopy(BASE) | {"output": {"dir": str(tmp_path / "runs")}} | changes
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def assert_refused_first(tmp_path: Path, path: Path, fragment: str) -> None:
    """validate refuses with one line naming ``fragment``; run refuses alike, writing nothing."""
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-q", "-o", str(out)), fragment)
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("dim", "heads"), [(3, 2), (2, 16), (30, 4)])
def test_sasrec_heads_that_do_not_divide_dim_are_refused(tmp_path, dim, heads):
    """Was: validate passed, then every fit raised 'embed_dim must be divisible by num_heads'
    and every cell of the arm failed (exit 1)."""
    arm = {"name": "seq", "recommender": {"type": "sasrec_native", "params": {"dim": dim}}}
    arm["recommender"]["params"]["heads"] = heads
    path = write(tmp_path, arms=[arm])
    fragment = f"arms[0].recommender.params.dim: {dim} is not a multiple of heads ({heads})"
    assert_refused_first(tmp_path, path, fragment)


def test_gru4rec_has_no_heads_to_divide_dim():
    """The GRU encoder shares the params but has no attention: any dim goes with any heads."""
    assert NativeGRU4RecParams.model_validate({"dim": 3, "heads": 2}).dim == 3


def test_sasrec_fit_where_no_user_clicked_twice_serves_popularity():
    """Was: two clicks by two users passed the fit's 'fewer than 2 clicks' guard, made no
    training window, and an epoch of one empty batch raised in the encoder ('cannot reshape
    tensor of 0 elements'), failing the cell at its first refit."""
    rec = build("sasrec_native", {}, RecommenderContext(np.random.default_rng(0), 4, 4))
    history = Interactions(
        np.array([0, 1]), np.array([5, 7]), np.array([1.0, 2.0]), np.full(2, 4.0, np.float32)
    )
    rec.fit(history)
    assert rec.net is None
    catalog = topics_catalog(np.eye(4, dtype=np.float32)[np.arange(10) % 4])
    users = np.array([0, 1, 2])
    requests = RequestBatch(
        0.0, users, np.arange(3), np.zeros(3, np.int32), 3, catalog, np.empty((3, 0), np.int64)
    )
    slates = rec.recommend(requests)
    assert np.array_equal(slates.items, rec.popularity.recommend(requests).items)
    assert set(slates.items[:, 0].tolist()) <= {5, 7}  # the two clicked items rank first


def test_creator_periods_past_the_limit_are_refused(tmp_path):
    """Was: 30 creators, 50 joining at each of 1,000 reviews a day: neither the reviews (1,000)
    nor the joins (50,000) reached the limit, but every review steps and logs every creator
    (~25M creator-periods), and one day of 60 users ran for minutes. --force lifts it."""
    creators = {"count": 30, "period_days": 0.001, "join_rate_per_period": 50}
    path = write(tmp_path, creators=creators)
    assert_refused_first(tmp_path, path, "~25,030,000 creator-periods per cell")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["horizon"]["tick_seconds"] = 60  # force lifts the count, not reviews between ticks
    assert preflight(parse_scenario(doc), "s.yaml", force=True).creators == 50_030
    # many creators reviewed weekly over a year, or a few reviewed hourly: both pass
    for creators, days in (({"count": 10_000, "period_days": 7}, 365), ({"period_days": 0.04}, 1)):
        doc["creators"] = creators | {"uploads_per_day": 0.1}
        doc["horizon"]["days"] = days
        preflight(parse_scenario(doc), "s.yaml")


def test_a_visit_rate_past_the_cap_does_not_warn():
    """Was: return_sensitivity 10^6 and a satisfied user (items of creator quality sd 10^6)
    overflowed exp and printed 'RuntimeWarning: overflow encountered in exp' mid-run; the rate
    was capped at max_rate_factor all the same, and still is."""
    state = UserState.new(np.ones((3, 2), np.float32), np.array([1.0, 2.0, 0.5]), np.zeros(3))
    state.satisfaction[:] = [1e6, -1e6, 0.0]
    cfg = Population(return_sensitivity=1e6, max_rate_factor=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rate = state.visit_rate(cfg)
    assert rate.tolist() == [3.0, 0.0, 0.5]


def test_a_talk_boost_that_overflows_does_not_warn():
    """satisfaction_weight 10^6: a satisfied user's boost overflows; the chance is 1, and a
    zero rate or extraversion stays 0 (0 x inf was NaN with an 'invalid value' warning)."""
    extraversion = np.array([1.0, 0.0, 1.0])
    satisfaction = np.array([1e6, 1e6, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chance = talk_probability(0.3, extraversion, satisfaction, 1e6)
        silent = talk_probability(0.0, extraversion, satisfaction, 1e6)
    assert chance.tolist() == [1.0, 0.0, 0.3]
    assert silent.tolist() == [0.0, 0.0, 0.0]


def test_calibrated_with_one_topic_items_ranks_by_the_users_mix():
    """One-topic items (catalog.topic_spread 0) and a user who clicked one topic: the KL term of
    a topic neither the user nor the slate has was 0 x log(0/0) = NaN for every candidate, so
    argmax took the first (the base's order, none of the user's topic) with a RuntimeWarning
    mid-run. Such a topic adds nothing; with lambda 1 the slate is the user's topic."""
    rec = rerank_build("calibrated", **{"lambda": 1.0})
    clicks = np.array([1, 4, 7])  # topic 1 only
    rec.fit(Interactions(np.zeros(3, np.int64), clicks, np.zeros(3), np.ones(3, np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        items = rec.recommend(rerank_requests(1)).items[0]
    assert (RERANK_TOPIC[items] == 1).all()


def test_a_start_hour_bump_narrower_than_the_hour_grid_is_a_spike():
    """daily_rhythm.width_hours 1e-9: a user's bump underflowed to 0 at all 24 hours, and the
    start-hour profile was 0/0 = NaN ('invalid value encountered in divide' mid-run). Its
    limit is a spike at the nearest hour; ordinary widths are untouched."""
    centres = np.array([3.4, 5.0, 23.7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = DailyRhythmSpec(peak_hours=[3.4], spread_hours=0, width_hours=1e-9, floor=0)
        rhythm = DailyRhythm.generate(spec, 2, 4, np.random.default_rng(0))
    assert np.isfinite(rhythm.start_cdf).all()
    assert rhythm.start_cdf[:, 3:5].tolist() == [[0.0, 1.0]] * 2  # every start in hour 3
    assert bump(centres, 1e-9).argmax(axis=1).tolist() == [3, 5, 0]
    assert bump(centres, 1e-9).sum(axis=1).tolist() == [1.0, 1.0, 1.0]
    wide = bump(centres, 1.5)
    assert (wide > 0).all() and wide.argmax(axis=1).tolist() == [3, 5, 0]
    assert wide[1].max() == 1.0 and wide[0].max() < 1.0  # a centre off the hour peaks below 1


def test_an_instruction_strength_past_float32_is_refused(tmp_path):
    """Was: strength 1e300 passed validate, the re-ranked scores were infinite in float32 and
    the slate guard failed every cell of the arm ('score inf ... is not finite')."""
    arm = {"name": "heard", "recommender": {"type": "instructable", "params": {"strength": 1e300}}}
    path = write(tmp_path, arms=[arm])
    assert_refused_first(tmp_path, path, "arms[0].recommender.params.strength")
