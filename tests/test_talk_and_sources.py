"""Talking users and AI-generated content, checked on hand-computed examples, plus the promise that
scenarios without these features log exactly what they logged before."""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recarena.agents.creators.ai_adoption import (
    AIAdoption,
    AIStyle,
    adoption_probability,
    exposure_ratio,
)
from recarena.agents.users.talk import (
    Mentions,
    TalkState,
    friends_of,
    sentiment,
    talk_probability,
)
from recarena.analysis.metrics_social import cascade_forest
from recarena.recommenders.source_debias import source_quota_order
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.rng import combine, uniforms
from recarena.simulator.core.scenario import read_document
from recarena.simulator.core.scenario_features import AIContent, Talk
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario

ROOT = Path(__file__).resolve().parent.parent


class Sink:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}

    def append(self, table: str, columns: dict) -> None:
        self.rows.setdefault(table, []).append(columns)

    def column(self, table: str, name: str) -> np.ndarray:
        return np.concatenate([c[name] for c in self.rows.get(table, [])] or [np.zeros(0)])


def line_graph() -> sp.csr_matrix:
    """0 - 1 - 2 (user 3 has no friends)."""
    rows, cols = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])
    return sp.csr_matrix((np.ones(4, np.float32), (rows, cols)), shape=(4, 4))


# ------------------------------------------------------------------ the post/message model
def test_talk_probability_by_hand():
    # rate 0.3, extraversion 2, satisfaction 0.5, weight 1: 0.3 · 2 · e^0.5 = 0.98923...
    p = talk_probability(0.3, np.array([2.0, 1.0, 5.0]), np.array([0.5, 0.0, 1.0]), 1.0)
    assert p[0] == pytest.approx(0.6 * math.exp(0.5))
    assert p[1] == pytest.approx(0.3)
    assert p[2] == 1.0  # capped


def test_sentiment_of_ratings():
    got = sentiment(np.array([5.0, 4.0, 3.0, 2.0, 1.0, np.nan]))
    assert got.tolist() == [1, 1, 0, -1, -1, 0]


def test_friends_of_lists_every_neighbour():
    row, friend = friends_of(line_graph(), np.array([1, 3, 0]))
    assert list(zip(row.tolist(), friend.tolist(), strict=True)) == [(0, 0), (0, 2), (2, 1)]


def test_mentions_keep_the_latest_and_expire():
    m = Mentions()
    m.add(np.array([1, 2]), np.array([7, 7]), np.array([1, 1]), np.array([0, 1]), 3)
    m.add(np.array([1]), np.array([7]), np.array([-1]), np.array([5]), 4)  # user 1 hears again
    found = m.find(np.array([1, 2, 3]), np.array([7, 7, 7]))
    assert (found >= 0).tolist() == [True, True, False]
    assert m.gather(m.sentiment, found, 0).tolist() == [-1, 1, 0]
    assert m.gather(m.via, found, -1).tolist() == [5, 1, -1]
    m.expire(3)  # user 2's mention (expires day 3) is gone, user 1's (day 4) stays
    assert (m.find(np.array([1, 2]), np.array([7, 7])) >= 0).tolist() == [True, False]


def _talk(cfg: Talk, satisfaction=None) -> tuple[TalkState, Sink]:
    sink = Sink()
    sat = np.zeros(4) if satisfaction is None else satisfaction
    state = TalkState(cfg, line_graph(), np.ones(4), sat, hash_base=12345, log=sink)
    return state, sink


def test_everybody_posts_and_friends_hear_with_rate_one():
    cfg = Talk(post_rate=1.0, message_rate=0.0, reach=1.0, mention_boost=0.5, memory_days=2)
    state, sink = _talk(cfg)
    # user 1 liked item 9 (rating 5); user 3 (no friends) disliked item 4
    state.after_consume(60.0, 0, np.array([10, 11]), np.array([1, 3]), np.array([9, 4]),
                        np.array([5.0, 1.0]))  # fmt: skip
    assert sink.column("posts", "user_id").tolist() == [1, 3]
    assert sink.column("posts", "reached").tolist() == [2, 0]
    assert sink.column("posts", "sentiment").tolist() == [1, -1]
    assert sink.column("posts", "parent_id").tolist() == [-1, -1]
    # friends 0 and 2 now find item 9 worth 0.5 more; nobody else, no other item
    boost = state.boost(np.array([0, 2, 3]), np.array([[9, 4], [9, 9], [9, 4]]))
    assert boost.tolist() == [[0.5, 0.0], [0.5, 0.5], [0.0, 0.0]]
    # user 0 consumes item 9: a social click, and its own post names post 0 as its parent
    state.after_consume(120.0, 0, np.array([12]), np.array([0]), np.array([9]), np.array([4.0]))
    assert sink.column("social_clicks", "via_id").tolist() == [0]
    assert sink.column("posts", "parent_id").tolist() == [-1, -1, 0]
    state.end_of_day()
    state.end_of_day()  # memory_days = 2: forgotten by day 2
    assert state.boost(np.array([2]), np.array([[9]])).tolist() == [[0.0]]


def test_message_goes_to_the_friend_the_uniform_picks():
    cfg = Talk(post_rate=0.0, message_rate=1.0, reach=1.0)
    state, sink = _talk(cfg)
    request = np.array([77])
    state.after_consume(0.0, 0, request, np.array([1]), np.array([3]), np.array([4.0]))
    key = combine(np.uint64(12345), request.astype(np.uint64))
    u = uniforms(combine(key, 14))[0]  # user 1's friends are [0, 2]
    assert sink.column("messages", "receiver_id").tolist() == [[0, 2][int(u * 2)]]
    assert "posts" not in sink.rows


def test_talk_rate_follows_the_probability():
    """Over many consumptions the share that posts matches min(1, rate · e · exp(w·s))."""
    cfg = Talk(post_rate=0.2, message_rate=0.0, satisfaction_weight=1.0, reach=1.0)
    state, sink = _talk(cfg, satisfaction=np.array([0.0, math.log(2.0), 0.0, 0.0]))
    n = 20_000
    state.after_consume(0.0, 0, np.arange(n), np.ones(n, np.int64), np.arange(n),
                        np.full(n, 5.0))  # fmt: skip
    assert sink.column("posts", "user_id").size / n == pytest.approx(0.4, abs=0.02)


def test_cascade_forest_by_hand():
    # 0 <- 1 <- 3, 0 <- 2, 4 alone; ids given out of order
    root, depth = cascade_forest(np.array([3, 0, 4, 1, 2]), np.array([1, -1, -1, 0, 0]))
    assert root.tolist() == [0, 0, 0, 0, 4]
    assert depth.tolist() == [0, 1, 1, 2, 0]


# ------------------------------------------------------------------ sources and adoption
def test_ai_style_pulls_toward_the_centre():
    style = AIStyle(np.array([0.5, 0.5], np.float32), centrality=0.4, quality_shift=-0.25)
    topics, quality = style.apply(np.array([[1.0, 0.0]], np.float32), np.array([1.0], np.float32))
    assert topics[0].tolist() == pytest.approx([0.8, 0.2])
    assert quality.tolist() == [0.75]


def test_exposure_ratio_and_adoption_probability_by_hand():
    # human: 100 impressions over 10 items = 10 each; AI: 60 over 2 items = 30 each -> r = 3
    assert exposure_ratio(np.array([100, 60]), np.array([10, 2])) == pytest.approx(3.0)
    assert math.isnan(exposure_ratio(np.array([100, 0]), np.array([10, 0])))
    cfg = AIContent(base_rate=0.05, payoff=0.1, imitation=0.5)
    # 0.05 + 0.1 · (3 − 1) + 0.5 · 0.2 = 0.35
    assert adoption_probability(cfg, 3.0, 0.2) == pytest.approx(0.35)
    assert adoption_probability(cfg, 0.5, 0.0) == pytest.approx(0.05)  # no payoff below 1
    assert adoption_probability(cfg, math.nan, 0.0) == pytest.approx(0.05)
    assert adoption_probability(AIContent(payoff=1.0), 9.0, 0.0) == 1.0


class FakeCreator:
    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.ai_style = None
        self.uploads_per_day = 1.0


def test_review_switches_creators_against_the_paired_uniforms():
    catalog = Catalog(2)
    catalog.add(np.array([[1.0, 0.0]] * 4), np.zeros(4), np.zeros(4, np.int32), 0.0)
    catalog.add(np.array([[0.0, 1.0]]), np.zeros(1), np.zeros(1, np.int32), 0.0, source=1)
    sink = Sink()
    cfg = AIContent(initial_share=0.0, speedup=3.0, base_rate=0.0, payoff=0.25, imitation=0.0)
    adoption = AIAdoption(cfg, seed=1, replicate=0, catalog=catalog, log=sink)
    creators = [FakeCreator(), FakeCreator(), FakeCreator(active=False)]
    adoption.start(creators)
    assert all(c.ai_style is None for c in creators)
    # 8 impressions on the 4 human items (2 each), 6 on the AI item: r = 3, p = 0.25 · 2 = 0.5
    adoption.count(np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4]), np.array([4]))
    expected_u = np.random.default_rng(np.random.SeedSequence(1, spawn_key=(0, 7, 4))).random(3)
    adoption.review(86_400.0, 0, creators)
    switched = [c.ai_style is not None for c in creators]
    assert switched == [bool(expected_u[0] < 0.5), bool(expected_u[1] < 0.5), False]
    assert [c.uploads_per_day for c in creators] == [3.0 if s else 1.0 for s in switched]
    row = sink.rows["source_periods"][0]
    assert row["exposure_ratio"][0] == pytest.approx(3.0)
    assert (row["ai_exposure"][0], row["exposure"][0], row["ai_clicks"][0]) == (6, 14, 1)
    assert row["adopted"][0] == sum(switched)
    adoption.review(2 * 86_400.0, 1, creators, final=True)
    assert sink.rows["item_sources"][0]["source"].tolist() == ["human"] * 4 + ["ai"]


def test_source_quota_gives_ai_its_share_in_base_order():
    is_ai = np.array([[True, True, True, False, False, False]])
    valid = np.ones_like(is_ai)
    # share 0.5, offset 0: quota after slot j = floor((j + 1) / 2) -> human, AI, human, AI
    got = source_quota_order(is_ai, valid, 0.5, 4, np.array([0.0]))
    assert got.tolist() == [[3, 0, 4, 1]]
    # offset 0.5: quota floor(0.5·(j+1) + 0.5) -> AI first
    got = source_quota_order(is_ai, valid, 0.5, 4, np.array([0.5]))
    assert got.tolist() == [[0, 3, 1, 4]]
    # no AI in the catalog: the base's order, PAD rows stay -1 where candidates run out
    got = source_quota_order(np.zeros((1, 3), bool), np.array([[True, True, False]]), 0.0, 3,
                             np.array([0.3]))  # fmt: skip
    assert got.tolist() == [[0, 1, -1]]


# ------------------------------------------------------------------ defaults keep the bytes
def _digests(run: Path) -> dict[str, str]:
    return {
        str(f.relative_to(run)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(run.rglob("*.parquet"))
    }


def test_absent_features_keep_existing_logs_byte_identical(tmp_path, tiny_doc):
    """A scenario with a social graph and creators, run with the new keys absent, and again with
    them spelled out as null, writes the same bytes; and the features' tables stay empty."""
    doc = copy.deepcopy(tiny_doc)
    doc["replicates"] = 1
    doc["horizon"] = {"days": 1, "tick_seconds": 300}
    doc["population"]["social"] = {"graph": {"type": "watts_strogatz", "k": 4}}
    plain, spelled = tmp_path / "a", tmp_path / "b"
    run_experiment(parse_scenario(doc), plain, executor="local")
    doc["population"]["social"]["talk"] = None
    doc["creators"]["ai"] = None
    run_experiment(parse_scenario(doc), spelled, executor="local")
    a, b = _digests(plain), _digests(spelled)
    assert a and a == b
    for table in ("posts", "messages", "social_clicks", "item_sources", "source_periods"):
        cell = Path(plain) / "arm=popularity" / "rep=0" / f"{table}.parquet"
        assert pl.read_parquet(cell).height == 0
    exposures = pl.read_parquet(Path(plain) / "arm=popularity" / "rep=0" / "exposures.parquet")
    assert exposures.height > 0


def test_features_on_write_their_tables(tmp_path, tiny_doc):
    doc = copy.deepcopy(tiny_doc)
    doc["replicates"] = 1
    doc["horizon"] = {"days": 2, "tick_seconds": 300}
    doc["population"]["social"] = {
        "graph": {"type": "watts_strogatz", "k": 4},
        "talk": {"post_rate": 1.0, "message_rate": 0.5},
    }
    doc["creators"] = {"count": 5, "uploads_per_day": 2.0, "period_days": 1,
                       "ai": {"initial_share": 0.4}}  # fmt: skip
    run = tmp_path / "r"
    run_experiment(parse_scenario(doc), run, executor="local")
    cell = run / "arm=popularity" / "rep=0"
    posts = pl.read_parquet(cell / "posts.parquet")
    clicks = pl.read_parquet(cell / "interactions.parquet")
    assert 0 < posts.height <= clicks.height  # at most one post per consumption
    about = posts.join(clicks, on=["user_id", "item_id"], how="anti")
    assert about.height == 0  # every post is about an item its author consumed
    sources = pl.read_parquet(cell / "item_sources.parquet")
    items = pl.read_parquet(cell / "items.parquet")
    assert sources.height == items.height
    assert set(sources["source"].unique()) <= {"human", "ai"}
    periods = pl.read_parquet(cell / "creator_periods.parquet")["period"].n_unique()
    assert pl.read_parquet(cell / "source_periods.parquet").height == periods  # one per review


def test_paper_scenarios_validate():
    for path in sorted((ROOT / "scenarios" / "papers").glob("*.yaml")):
        read_document(path)


def test_feed_lists_positive_mentions_newest_first():
    cfg = Talk(post_rate=0.0, message_rate=0.0)
    state, _ = _talk(cfg)
    m = state.mentions
    m.add(np.array([0, 0, 0, 2]), np.array([5, 6, 7, 5]), np.array([1, -1, 1, 1]),
          np.array([3, 4, 9, 1]), 5)  # fmt: skip
    # user 0: item 7 (via 9) then 5 (via 3); item 6 was disliked; user 1 heard nothing
    assert state.feed(np.array([0, 1, 2]), 3).tolist() == [[7, 5, -1], [-1, -1, -1], [5, -1, -1]]
    assert state.feed(np.array([0]), 1).tolist() == [[7]]


def test_merge_feed_puts_friends_items_first_without_duplicates():
    from recarena.recommenders.social_feed import merge_feed

    feed = np.array([[7, -1], [-1, -1]])
    ranked = np.array([[3, 7, 4, 5], [1, 2, 3, 4]])
    items, from_feed = merge_feed(feed, ranked, 3)
    assert items.tolist() == [[7, 3, 4], [1, 2, 3]]
    assert from_feed.tolist() == [[True, False, False], [False, False, False]]


# ------------------------------------------------------------------ metrics, by hand
def _value(logs, name: str) -> float:
    from recarena.analysis.metrics import compute_metrics

    return compute_metrics(logs, [name])["value"].item()


def test_social_metrics_by_hand():
    from tests.test_metrics_library import check_per_user, make_logs

    logs = make_logs(
        {
            # events 0..4: 0 <- 1 <- 3 (a chain of two retellings), 0 <- 2, 4 alone
            "posts": {"post_id": [0, 1, 4], "parent_id": [-1, 0, -1], "user_id": [1, 2, 1],
                      "item_id": [7, 7, 8]},
            "messages": {"message_id": [2, 3], "parent_id": [0, 1], "sender_id": [3, 4],
                         "receiver_id": [1, 1], "item_id": [7, 7]},
            # 4 clicks by 2 users on items 7, 7, 8, 9; user 2's click on 7 followed a mention
            "interactions": {"user_id": [1, 2, 2, 2], "item_id": [7, 7, 8, 9]},
            "social_clicks": {"user_id": [2], "item_id": [7], "via_id": [0], "sentiment": [1]},
            "items": {"item_id": [7, 8, 9, 10]},
        }
    )  # fmt: skip
    assert _value(logs, "cascade_size") == pytest.approx(2.5)  # sizes 4 and 1
    assert _value(logs, "cascade_depth_max") == 2
    assert _value(logs, "cascade_multi_share") == pytest.approx(0.5)
    assert _value(logs, "social_consumption_share") == pytest.approx(0.25)
    check_per_user(logs, "social_consumption_share")
    assert _value(logs, "talk_per_user") == pytest.approx(5 / 2)
    # clicks per item [2, 1, 1, 0]: G = Σ(2i − n − 1)x_(i) / (n Σx) over sorted [0, 1, 1, 2]
    # = (−3·0 − 1·1 + 1·1 + 3·2) / (4 · 4) = 6 / 16
    assert _value(logs, "click_gini") == pytest.approx(6 / 16)


def test_source_metrics_by_hand():
    from tests.test_metrics_library import make_logs, one_hot

    day = 86_400.0
    logs = make_logs(
        {
            # items 0, 1 human on day 0; item 2 AI on day 0; item 3 AI published on day 1
            "item_sources": {"item_id": [0, 1, 2, 3], "creator_id": [0, 0, 1, 1],
                             "created_at": [0.0, 0.0, 0.0, day + 5], "source": ["human",
                             "human", "ai", "ai"]},
            "items": {"item_id": [0, 1, 2, 3], "topic": [0, 1, 0, 1],
                      "topics": [one_hot(0, 2), one_hot(1, 2), one_hot(0, 2), one_hot(1, 2)]},
            # day 0, page 1: AI item 2 at slot 0, human 0 (same topic) at slot 2, human 1 at 1
            # day 1, page 2: human 1 at slot 0, AI 3 (same topic) at slot 1
            "exposures": {"request_id": [1, 1, 1, 2, 2], "day": [0, 0, 0, 1, 1],
                          "item_id": [2, 1, 0, 1, 3], "position": [0, 1, 2, 0, 1]},
            "source_periods": {"period": [0, 1], "active_creators": [4, 4],
                               "ai_creators": [1, 3], "exposure": [3, 2],
                               "ai_exposure": [1, 2]},
        }
    )  # fmt: skip
    # day 0: catalog AI share 1/3, exposures [1, 0, 0] -> deviations 2/3, −1/3, −1/3
    # day 1: catalog AI share 2/4, exposures [0, 1]    -> deviations −1/2, +1/2; mean over 5
    assert _value(logs, "source_bias") == pytest.approx((2 / 3 - 2 / 3 + 0) / 5)
    # page 1 topic 0: human 2 − AI 0 = 2; page 2 topic 1: human 0 − AI 1 = −1; mean 0.5
    assert _value(logs, "source_rank_gap") == pytest.approx(0.5)
    assert _value(logs, "ai_exposure_share") == pytest.approx(2 / 5)
    assert _value(logs, "ai_catalog_share_end") == pytest.approx(0.5)
    assert _value(logs, "ai_creator_share_end") == pytest.approx(0.75)
    # AI share of exposure by period: 1/3 (coexistence at the cut), 1.0 (AIGC-dominant)
    assert _value(logs, "aigc_dominant_periods") == pytest.approx(0.5)
