"""Conversations: the agenda user, information gain, the turn loop, its logs and metrics."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from recarena.agents.users.agenda_user import AgendaUser
from recarena.analysis.load import load
from recarena.analysis.metrics import compute_metrics
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.crs import InfoGainCRS, InfoGainParams, information_gain
from recarena.simulator.core.dialogue import (
    ACCEPT,
    ASK,
    CRITIQUE,
    INFORM,
    RECOMMEND,
    REJECT,
    UNKNOWN,
    DialogueState,
    Facets,
    SystemActs,
    TurnBatch,
)
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import ConversationUsers
from recarena.simulator.core.types import PAD_ITEM, RequestBatch, SlateBatch
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.catalog_view import topics_catalog

# --------------------------------------------------------------------------- helpers
FACETS = Facets(
    names=("genre", "era", "mood"),
    values=(("g0", "g1", "g2", "g3"), ("e0", "e1", "e2"), ("m0", "m1")),
    codes=np.zeros((0, 3), np.int16),
)


def _facets(codes: list[list[int]]) -> Facets:
    return Facets(FACETS.names, FACETS.values, np.array(codes, np.int16))


def _requests(batch: int, n_items: int, k: int, page: int = 0) -> RequestBatch:
    catalog = topics_catalog(np.full((n_items, 2), 0.5, np.float32))
    return RequestBatch(
        time=0.0,
        user=np.arange(batch, dtype=np.int64),
        session=np.arange(batch, dtype=np.int64),
        page=np.full(batch, page, np.int32),
        k=k,
        catalog=catalog,
        exclude=np.zeros((batch, 0), np.int64),
    )


def _state(requests: RequestBatch, facets: Facets, max_turns: int = 10) -> DialogueState:
    b, f = len(requests), len(facets.names)
    return DialogueState(
        requests=requests,
        facets=facets,
        max_turns=max_turns,
        asked=np.zeros((b, f), bool),
        preferred=np.full((b, f), UNKNOWN, np.int16),
        avoided=np.zeros((b, f, facets.max_values), bool),
        shown=np.zeros((b, 0), np.int64),
        transcript=((),) * b,
    )


def _user(utility: np.ndarray | None = None, **cfg) -> AgendaUser:
    def truth(requests, items):
        if utility is None:
            return np.zeros(items.shape, np.float32)
        return np.where(items >= 0, utility[np.maximum(items, 0)], -np.inf)

    taste = np.zeros((100_000, 4), np.float32)
    return AgendaUser(ConversationUsers(**cfg), taste, truth, np.uint64(12345), 1.0)


def _asks(batch: int, facet: np.ndarray, k: int = 2) -> SystemActs:
    return SystemActs(
        act=np.full(batch, ASK, np.int8),
        facet=facet.astype(np.int16),
        slates=SlateBatch(
            np.full((batch, k), PAD_ITEM, np.int64),
            np.full((batch, k), np.nan, np.float32),
            np.ones((batch, k), np.float32),
        ),
        text=("",) * batch,
    )


def _turn(state, system, target, patience=6.0, examined=None) -> TurnBatch:
    b, k = system.slates.items.shape
    return TurnBatch(
        state=state,
        system=system,
        target=np.asarray(target, np.int16),
        patience=np.full(b, patience, np.float32),
        noise_key=np.arange(b, dtype=np.uint64) * np.uint64(7919) + np.uint64(1),
        examined=np.ones((b, k), bool) if examined is None else examined,
    )


# --------------------------------------------------------------------------- agenda user
def _ask_everything(noise: float, batch: int = 20_000):
    rng = np.random.default_rng(0)
    target = np.stack(
        [rng.integers(0, 4, batch), rng.integers(0, 3, batch), rng.integers(0, 2, batch)], 1
    )
    facet = rng.integers(0, 3, batch)
    facets = _facets([[0, 0, 0]])
    state = _state(_requests(batch, 1, 2), facets)
    user = _user(answer_noise=noise, target_facets=["genre", "era", "mood"])
    acts = user.respond(_turn(state, _asks(batch, facet), target))
    return acts, target[np.arange(batch), facet], facet


def test_agenda_user_without_noise_always_answers_its_target():
    acts, truth, facet = _ask_everything(0.0)
    assert (acts.act == INFORM).all()
    np.testing.assert_array_equal(acts.facet, facet)
    np.testing.assert_array_equal(acts.value, truth)


def test_agenda_user_answer_noise_rate_matches_the_setting():
    acts, truth, facet = _ask_everything(0.2)
    wrong = acts.value != truth
    # 20 000 answers: the standard error of a 0.2 rate is 0.0028, so ±0.012 is > 4 s.e.
    assert abs(wrong.mean() - 0.2) < 0.012
    n_values = np.array([4, 3, 2])[facet]
    assert ((acts.value >= 0) & (acts.value < n_values)).all()  # a wrong answer is a real value


def test_agenda_user_says_no_preference_for_facets_outside_its_target():
    batch = 50
    target = np.tile([2, UNKNOWN, UNKNOWN], (batch, 1))
    state = _state(_requests(batch, 1, 2), _facets([[0, 0, 0]]))
    user = _user(answer_noise=0.5)
    acts = user.respond(_turn(state, _asks(batch, np.full(batch, 1)), target))
    assert (acts.act == INFORM).all() and (acts.value == UNKNOWN).all()


def test_agenda_user_accepts_critiques_or_rejects_recommendations():
    # items: 0 on target (genre 1, era 2), 1 wrong era, 2 wrong genre
    facets = _facets([[1, 2, 0], [1, 0, 0], [0, 2, 0]])
    utility = np.array([2.0, 3.0, 5.0], np.float32)
    user = _user(
        utility, target_facets=["genre", "era"], critique_prob=1.0, answer_noise=0.0,
        accept_threshold=1.5,
    )  # fmt: skip
    slates = np.array([[1, 0], [1, 2], [2, PAD_ITEM]], np.int64)
    system = SystemActs(
        act=np.full(3, RECOMMEND, np.int8),
        facet=np.full(3, UNKNOWN, np.int16),
        slates=SlateBatch(slates, np.zeros((3, 2), np.float32), np.ones((3, 2), np.float32)),
        text=("",) * 3,
    )
    target = np.tile([1, 2, UNKNOWN], (3, 1))
    acts = user.respond(_turn(_state(_requests(3, 3, 2), facets), system, target, patience=6.0))
    # row 0: item 0 matches and clears the threshold -> accepted
    assert acts.act[0] == ACCEPT and acts.accepted[0] == 0 and acts.patience[0] == 5.0
    # row 1: best examined item is 2 (utility 5), wrong genre -> critique genre: want g1, not g0
    assert acts.act[1] == CRITIQUE
    assert (acts.facet[1], acts.value[1], acts.avoided_value[1]) == (0, 1, 0)
    assert acts.patience[1] == 4.0  # turn cost 1 + rejection cost 1
    # row 2, nothing examined -> plain rejection
    examined = np.array([[True, True], [True, True], [False, False]])
    acts = user.respond(
        _turn(_state(_requests(3, 3, 2), facets), system, target, examined=examined)
    )
    assert acts.act[2] == REJECT and acts.accepted[2] == PAD_ITEM


def test_agenda_targets_follow_taste_and_always_have_items():
    # genre 3 has no items; mood 1 exists only for genre 0 / era 1
    facets = _facets([[0, 0, 0], [0, 1, 1], [1, 2, 0], [2, 0, 0]])
    user = _user(target_facets=["genre", "era", "mood"], target_temperature=0.01)
    user.taste[:3] = [[5, 0, 0, 9], [0, 5, 0, 0], [0, 0, 5, 0]]  # user 0 likes genre 3 most
    target = user.targets(np.arange(3), np.arange(3), facets)
    assert target[:, 0].tolist() == [0, 1, 2]  # genre 3 has no items, so user 0 gets genre 0
    codes = facets.codes
    for row in target:  # each target is matched by at least one item
        assert ((codes == row).all(axis=1)).any()


def test_agenda_target_at_the_lowest_temperature_when_the_favourite_genre_has_no_items():
    """Was: at target_temperature 0.001 every genre but the favourite got exp(-huge) = 0, the
    favourite had no items, so the row's weights were all zero: a RuntimeWarning (invalid value
    in divide) and a target drawn from NaNs."""
    import warnings

    facets = _facets([[0, 0, 0], [1, 1, 1], [2, 2, 0]])  # genre 3 has no items
    user = _user(target_temperature=0.001)
    user.taste[:2] = [[1, 0, 0, 9], [0, 0, 2, 9]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        target = user.targets(np.arange(2), np.arange(2), facets)
    assert target[:, 0].tolist() == [0, 2]  # the best genre that has items


# --------------------------------------------------------------------------- information gain
def test_information_gain_by_hand():
    # 8 equally weighted candidates: genre splits 4/4, era 6/2, mood 7/1 (two values each)
    p = np.array([[[0.5, 0.5], [0.75, 0.25], [0.875, 0.125]]])
    gains = information_gain(p, np.array([2, 2, 2]), 0.0)
    np.testing.assert_allclose(gains[0], [0.693147, 0.562335, 0.376770], atol=1e-6)
    # with 10% answer noise: IG = H(0.9p + 0.1(1 - p)) - H_b(0.1); e.g. mood: q = 0.8
    noisy = information_gain(p, np.array([2, 2, 2]), 0.1)
    np.testing.assert_allclose(noisy[0], [0.693147 - 0.325083, 0.610864 - 0.325083,
                                          0.500402 - 0.325083], atol=1e-6)  # fmt: skip


def test_info_gain_asks_the_most_discriminating_facet():
    # 8 items: era is the same for all (worthless), mood 7/1, genre alternates over 4 values
    codes = [[i % 4, 0, int(i == 7)] for i in range(8)]
    facets = _facets(codes)
    ctx = RecommenderContext(rng=np.random.default_rng(0), n_users=4, n_topics=2)
    params = InfoGainParams(candidates=8, answer_noise=0.0, confidence=1.0)
    crs = InfoGainCRS(params, ctx)
    state = _state(_requests(2, 8, 2), facets)
    weights = np.ones((1, 8))
    gains = crs.facet_gains(np.array(codes)[None], weights, facets)
    np.testing.assert_allclose(gains[0], [np.log(4), 0.0, 0.376770], atol=1e-6)
    acts = crs.act(state)
    assert (acts.act == ASK).all() and (acts.facet == 0).all()
    assert (acts.slates.items == PAD_ITEM).all()
    # once genre is known and era is useless, mood is next; then nothing is worth asking
    asked = np.array([[True, False, False]] * 2)
    acts = crs.act(DialogueState(**{**state.__dict__, "asked": asked}))
    assert (acts.facet == 2).all()
    asked = np.array([[True, False, True]] * 2)
    acts = crs.act(DialogueState(**{**state.__dict__, "asked": asked}))
    assert (acts.act == RECOMMEND).all()
    assert (np.sort(acts.slates.items, axis=1) >= 0).all()
    # the last turn always recommends
    last = _state(_requests(2, 8, 2, page=9), facets, max_turns=10)
    assert (crs.act(last).act == RECOMMEND).all()


def test_preferences_reweight_the_recommendation():
    codes = [[i % 4, 0, 0] for i in range(8)]
    ctx = RecommenderContext(rng=np.random.default_rng(0), n_users=4, n_topics=2)
    crs = InfoGainCRS(InfoGainParams(candidates=8, answer_noise=0.0), ctx)
    state = _state(_requests(1, 8, 2), _facets(codes))
    preferred = np.array([[3, UNKNOWN, UNKNOWN]], np.int16)
    asked = np.array([[True, True, True]])
    acts = crs.act(DialogueState(**{**state.__dict__, "asked": asked, "preferred": preferred}))
    assert sorted(acts.slates.items[0].tolist()) == [3, 7]  # the two items of genre 3


# --------------------------------------------------------------------------- the loop
CONV = {
    "name": "conv",
    "seed": 4,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 120},
    "catalog": {"initial_items": 300, "topics": 6},
    "population": {"users": 200, "conversation": {"accept_threshold": 0.0}},
    "creators": {"count": 6, "uploads_per_day": 1.0},
    "surface": {"type": "conversation", "k": 3, "max_turns": 5},
    "arms": [
        {"name": "ig", "recommender": {"type": "info_gain"}},
        {"name": "pop", "recommender": {"type": "popularity"}},
    ],
    "metrics": ["conv_success_rate"],
}


def _run(doc: dict, out: Path):
    run_experiment(parse_scenario(doc), out, executor="local")
    return load(out)


@pytest.fixture(scope="module")
def conv_logs(tmp_path_factory):
    return _run(copy.deepcopy(CONV), tmp_path_factory.mktemp("conv") / "run")


def _last_user_rows(logs) -> pl.DataFrame:
    users = logs.turns.filter(pl.col("speaker") == "user")
    last = users.filter(pl.col("turn") == pl.col("turn").max().over("arm", "session_id"))
    sessions = logs.sessions.select("arm", "session_id", "exit_reason", "pages")
    return last.join(sessions, on=["arm", "session_id"]).collect()


def test_dialogue_ends_on_acceptance(conv_logs):
    last = _last_user_rows(conv_logs)
    accepted = last.filter(pl.col("exit_reason") == "accepted")
    assert accepted.height > 0
    assert (accepted["act"] == "accept").all()
    assert (accepted["pages"] == accepted["turn"] + 1).all()
    # the accepted item was on that turn's list and is an interaction at that position
    shown = conv_logs.turns.filter(pl.col("act") == "recommend").select(
        "arm", "session_id", "turn", "items"
    )
    keys = ["arm", "session_id", "turn"]
    joined = accepted.select(*keys, "accepted_item").join(shown.collect(), on=keys)
    assert joined.height == accepted.height
    pairs = zip(joined["accepted_item"].to_list(), joined["items"].to_list(), strict=True)
    assert all(a in items for a, items in pairs)
    clicks = conv_logs.interactions.select("arm", "session_id", "item_id").collect()
    accepted_rows = zip(
        accepted["arm"], accepted["session_id"], accepted["accepted_item"], strict=True
    )
    click_rows = zip(clicks["arm"], clicks["session_id"], clicks["item_id"], strict=True)
    assert sorted(accepted_rows) == sorted(click_rows)


def test_dialogue_ends_on_max_turns_and_on_patience(tmp_path):
    doc = copy.deepcopy(CONV)
    doc["arms"] = [{"name": "ro", "recommender": {"type": "recommend_only"}}]
    doc["population"]["conversation"] = {"accept_threshold": 1e6, "patience": 1000.0}
    last = _last_user_rows(_run(doc, tmp_path / "t"))
    assert set(last["exit_reason"]) <= {"max_turns", "horizon"}
    ended = last.filter(pl.col("exit_reason") == "max_turns")
    assert ended.height > 0 and (ended["turn"] == 4).all()  # T = 5 turns: 0..4
    # patience 2.5, 1 per turn + 1 per rejected list: 0.5 after turn 0, -1.5 after turn 1
    doc["population"]["conversation"] = {"accept_threshold": 1e6, "patience": 2.5}
    last = _last_user_rows(_run(doc, tmp_path / "p"))
    ended = last.filter(pl.col("exit_reason") == "patience")
    assert set(last["exit_reason"]) <= {"patience", "horizon"} and ended.height > 0
    assert (ended["turn"] == 1).all() and (ended["act"] == "quit").all()
    np.testing.assert_allclose(ended["patience"].to_numpy(), -1.5)


def test_turns_and_exposures_agree(conv_logs):
    shown = (
        conv_logs.turns.filter(pl.col("act") == "recommend")
        .explode("items")
        .select("arm", "session_id", pl.col("turn").alias("page"), pl.col("items").alias("item_id"))
        .sort(pl.all())
        .collect()
    )
    exposed = (
        conv_logs.exposures.select("arm", "session_id", "page", "item_id").sort(pl.all()).collect()
    )
    assert shown.height > 0
    assert shown.equals(exposed.select(shown.columns))
    # every turn has a system row then a user row; asks carry no items
    per_turn = conv_logs.turns.group_by("arm", "session_id", "turn").agg(
        pl.col("speaker"), pl.col("items").list.len().sum().alias("n")
    )
    speakers = per_turn.collect()["speaker"].to_list()
    assert all(s == ["system", "user"] for s in speakers)
    asks = conv_logs.turns.filter(pl.col("act") == "ask").collect()
    assert asks.height > 0 and (asks["items"].list.len() == 0).all()
    # informs agree with the logged hidden target when the user cares about the facet
    informs = conv_logs.turns.filter(pl.col("act") == "inform", pl.col("value").is_not_null())
    informs = informs.collect()
    agree = [
        f"{f}={v}" in t
        for f, v, t in zip(informs["facet"], informs["value"], informs["target"], strict=True)
    ]
    assert 0.8 < np.mean(agree) < 1.0  # answer_noise 0.1 by default


def test_conversation_metrics_by_hand(conv_logs):
    values = compute_metrics(
        conv_logs,
        ["conv_success_rate", "conv_turns_to_success", "conv_questions_per_success"],
    )
    turns = conv_logs.turns.filter(pl.col("arm") == "ig").collect()
    conversations = turns["session_id"].n_unique()
    success = turns.filter(pl.col("act") == "accept")
    accepted_sessions = set(success["session_id"])
    turns_of_success = turns.filter(pl.col("session_id").is_in(accepted_sessions))
    n_turns = turns_of_success.group_by("session_id").agg(pl.col("turn").max() + 1)["turn"].sum()
    asks = turns.filter(pl.col("act") == "ask").height
    got = {r["metric"]: r["value"] for r in values.filter(arm="ig").iter_rows(named=True)}
    assert got["conv_success_rate"] == pytest.approx(success.height / conversations)
    assert got["conv_turns_to_success"] == pytest.approx(n_turns / success.height)
    assert got["conv_questions_per_success"] == pytest.approx(asks / success.height)
    pop = values.filter(arm="pop", metric="conv_questions_per_success")["value"].item()
    assert pop == 0.0  # a list recommender never asks


def test_same_seed_gives_identical_turns(conv_logs, tmp_path):
    again = _run(copy.deepcopy(CONV), tmp_path / "again")
    for arm in ("ig", "pop"):
        a = pq.read_table(conv_logs.run_dir / f"arm={arm}/rep=0/turns.parquet")
        b = pq.read_table(again.run_dir / f"arm={arm}/rep=0/turns.parquet")
        assert a.num_rows > 0 and a.equals(b)


def test_conversational_recommender_on_a_list_surface_is_a_clear_error():
    doc = copy.deepcopy(CONV)
    doc["surface"] = {"k": 5}
    with pytest.raises(RecarenaError) as info:
        parse_scenario(doc, "conv.yaml")
    message = str(info.value)
    assert message.startswith("conv.yaml: arms[0].recommender.type: 'info_gain'")
    assert "surface is a list" in message and "\n" not in message
    doc["arms"][0]["surface"] = {"type": "carousel", "rows": [{"theme": "personalized"}]}
    with pytest.raises(RecarenaError, match=r"arms\[0\].surface is a carousel"):
        parse_scenario(doc, "conv.yaml")


def test_unknown_target_facet_names_the_path():
    doc = copy.deepcopy(CONV)
    doc["population"]["conversation"] = {"target_facets": ["genre", "colour"]}
    with pytest.raises(RecarenaError, match=r"population\.conversation\.target_facets\[1\]"):
        parse_scenario(doc)


# --------------------------------------------------------------------------- facets
def test_facets_from_real_attributes_and_hash():
    from recarena.simulator.core.catalog import Catalog
    from recarena.simulator.engine.facets import (
        ERAS,
        MOODS,
        FacetIndex,
        RealAttributes,
        era_of_title,
    )

    assert [era_of_title(t) for t in ("Heat (1995)", "Psycho (1960)", "Alien (1979)", "Up")] == [
        4, 0, 1, -1,
    ]  # fmt: skip
    catalog = Catalog(2)
    topics = np.array([[0.9, 0.1]] * 6 + [[0.2, 0.8]] * 6, np.float32)
    catalog.add(topics, np.zeros(12, np.float32), np.zeros(12, np.int32), 0.0)
    genres = [["Horror"]] * 6 + [["Comedy", "Drama"]] * 6
    titles = ["Scream (1996)"] * 6 + ["Big (1988)"] * 5 + ["No year"]
    index = FacetIndex(catalog, np.uint64(99), RealAttributes(titles, genres))
    facets = index.facets()
    assert facets.values[0] == ("Horror", "Comedy")  # topic 1's most over-represented genre
    assert facets.values[1] == ERAS and facets.values[2] == MOODS
    np.testing.assert_array_equal(facets.codes[:11, 1], [4] * 6 + [2] * 5)
    np.testing.assert_array_equal(facets.codes[:, 2], [1] * 6 + [0] * 6)  # dark, light
    # new uploads get codes (hashed era and mood), earlier codes stay, nothing is drawn
    catalog.add(np.array([[0.1, 0.9]], np.float32), np.zeros(1, np.float32), np.zeros(1), 5.0)
    grown = index.facets()
    assert grown.codes.shape == (13, 3) and grown.codes[12, 0] == 1
    np.testing.assert_array_equal(grown.codes[:12], facets.codes)
    again = FacetIndex(catalog, np.uint64(99), RealAttributes(titles, genres)).facets()
    np.testing.assert_array_equal(again.codes, grown.codes)


@pytest.mark.parametrize("kind", ["info_gain", "recommend_only", "llm_crs"])
def test_conversational_contract(kind):
    # every conversational type, on the same hand-built state: one move per conversation,
    # asks carry no items, recommendations are k distinct items never excluded or shown before
    from recarena.recommenders.registry import build

    codes = [[i % 4, (i // 4) % 2, int(i % 3 == 0)] for i in range(40)]
    ctx = RecommenderContext(rng=np.random.default_rng(0), n_users=6, n_topics=2)
    crs = build(kind, {"candidates": 40}, ctx)
    base = _state(_requests(6, 40, 3, page=1), _facets(codes))
    requests = base.requests.__class__(
        **{**base.requests.__dict__, "exclude": np.array([[0, 1, PAD_ITEM]] * 6)}
    )
    shown = np.array([[2, 3, 4]] * 6)
    state = DialogueState(**{**base.__dict__, "requests": requests, "shown": shown})
    acts = crs.act(state)
    assert acts.act.shape == acts.facet.shape == (6,) and len(acts.text) == 6
    assert acts.slates.items.shape == (6, 3)
    asks = acts.act == ASK
    assert (acts.slates.items[asks] == PAD_ITEM).all() and (acts.facet[asks] >= 0).all()
    for row in acts.slates.items[~asks]:
        assert len(set(row.tolist())) == 3 and not set(row.tolist()) & {0, 1, 2, 3, 4}
    assert (acts.facet[~asks] == UNKNOWN).all()
    # the last turn recommends
    last = DialogueState(
        **{**state.__dict__, "requests": requests.__class__(
            **{**requests.__dict__, "page": np.full(6, 9, np.int32)})}
    )  # fmt: skip
    assert (crs.act(last).act == RECOMMEND).all()


def test_conversation_settings_without_a_conversation_surface_are_refused(tmp_path):
    """population.conversation is read only by an arm on a conversation surface; with every arm
    on a list it was ignored without a word. validate and run name it, and nothing is written."""
    from tests.cli_in_process import assert_refused, cli

    doc = copy.deepcopy(CONV)
    doc["surface"] = {"type": "list", "k": 5}
    doc["arms"] = [{"name": "pop", "recommender": {"type": "popularity"}}]
    doc["metrics"] = ["ctr"]
    doc["output"] = {"dir": str(tmp_path / "runs")}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    fragment = "population.conversation: no arm has a conversation surface"
    assert_refused(*cli("validate", str(path)), fragment)
    assert_refused(*cli("run", str(path), "-o", str(tmp_path / "out")), fragment)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()
    swept = copy.deepcopy(doc)  # a sweep over surfaces whose second point converses
    swept["arms"] = [{"name": "pop", "recommender": {"type": "popularity"}}]
    swept["sweep"] = {"arms[0].surface": [{"type": "list"}, CONV["surface"]]}
    del swept["surface"]  # every point's arm has its own: the scenario's would be read by nothing
    doc["arms"].append({"name": "ig", "recommender": {"type": "info_gain"}})
    doc["arms"][1]["surface"] = CONV["surface"]  # one arm converses: the settings are read
    for readable in (doc, swept):
        path.write_text(yaml.safe_dump(readable), encoding="utf-8")
        code, stderr = cli("validate", str(path))
        assert code == 0, stderr
