"""Social graph, social influence, word of mouth and taste drift (agents/users/social.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from recarena.agents.users.population import UserState
from recarena.agents.users.rule_user import RuleUserPolicy
from recarena.agents.users.social import (
    SocialState,
    adjacency,
    generate_edges,
    read_edge_list,
    row_normalised,
    sbm_probabilities,
)
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.rng import generator
from recarena.simulator.core.scenario import Population, Social, SocialGraphSpec
from recarena.simulator.core.types import PAD_ITEM
from recarena.simulator.engine.arrivals import draw_day
from recarena.simulator.engine.surfaces import SurfaceState
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario

SOCIAL = {
    "graph": {"type": "sbm", "mean_degree": 6, "homophily": 0.8},
    "influence": 0.5,
    "word_of_mouth": 0.3,
}


def _taste(n: int, topics: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, topics)).astype(np.float32)


def _degrees(edges: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(adjacency(edges, n).sum(axis=1)).ravel()


def test_barabasi_albert_mean_degree_is_about_2m():
    spec = SocialGraphSpec(type="barabasi_albert", m=3)
    edges = generate_edges(spec, _taste(2000, 4), np.random.default_rng(1))
    # m(n − m) edges: mean degree 2m(n − m)/n = 5.991 for n = 2000
    assert _degrees(edges, 2000).mean() == pytest.approx(6.0, abs=0.05)


def test_watts_strogatz_keeps_degree_k_on_average():
    spec = SocialGraphSpec(type="watts_strogatz", k=4, p=0.2)
    degree = _degrees(generate_edges(spec, _taste(500, 4), np.random.default_rng(2)), 500)
    assert degree.mean() == 4.0  # rewiring moves edges, never adds or removes them
    assert degree.min() >= 2  # each node keeps its k/2 own edges


def test_sbm_probabilities_by_hand():
    # blocks 2 and 2: within pairs 1 + 1 = 2, between 6 − 2 = 4; E = 4·1/2 = 2 edges
    p_in, p_out = sbm_probabilities(np.array([2, 2]), mean_degree=1.0, homophily=0.5)
    assert (p_in, p_out) == (pytest.approx(0.5), pytest.approx(0.25))


def test_sbm_homophily_matches_the_expected_in_block_share():
    taste = _taste(3000, 6, seed=4)
    spec = SocialGraphSpec(type="sbm", mean_degree=8, homophily=0.7)
    edges = generate_edges(spec, taste, np.random.default_rng(3))
    block = taste.argmax(axis=1)  # blocks are the dominant taste topics
    in_block = (block[edges[:, 0]] == block[edges[:, 1]]).mean()
    assert in_block == pytest.approx(0.7, abs=0.02)
    assert 2 * len(edges) / 3000 == pytest.approx(8.0, rel=0.05)


def test_sbm_with_k_random_blocks_has_the_asked_degree():
    spec = SocialGraphSpec(type="sbm", blocks=4, mean_degree=5, homophily=0.9)
    edges = generate_edges(spec, _taste(2000, 3), np.random.default_rng(5))
    assert 2 * len(edges) / 2000 == pytest.approx(5.0, rel=0.06)
    # the same stream again: the networkx seed, then the users' random blocks
    rng = np.random.default_rng(5)
    rng.integers(0, 2**31 - 1)
    block = rng.integers(0, 4, 2000)
    in_block = (block[edges[:, 0]] == block[edges[:, 1]]).mean()
    assert in_block == pytest.approx(0.9, abs=0.02)


def test_edge_list_is_read_and_made_symmetric(tmp_path: Path):
    path = tmp_path / "friends.txt"
    path.write_text("# u v\n0 1\n1 2\n2 1\n3 3\n", encoding="utf-8")
    edges = read_edge_list(path, 4)
    matrix = adjacency(edges, 4).toarray()
    expected = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)  # duplicate 2–1 once, self-loop dropped
    np.testing.assert_allclose(
        row_normalised(sp.csr_matrix(expected)).toarray()[1], [0.5, 0, 0.5, 0]
    )


def test_missing_edge_list_names_the_path(tmp_path: Path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(RecarenaError, match=f"edge-list file not found: {missing}"):
        read_edge_list(missing, 10)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 7\n", encoding="utf-8")
    with pytest.raises(RecarenaError, match="user ids must be in"):
        read_edge_list(bad, 5)
    for text in ("", "# only a comment\n"):  # used to pass with numpy's warning on stderr
        empty = tmp_path / "empty.txt"
        empty.write_text(text, encoding="utf-8")
        with pytest.raises(RecarenaError, match="holds no edges"):
            read_edge_list(empty, 5)


@pytest.mark.parametrize(
    "text,line",
    [
        ("# friends\n0 1\n\n1 x\n", "line 4: 'x' is not an integer user id"),
        ("0 1\n1 2.0\n", "line 2: '2.0' is not an integer user id"),
        ("0 1 0.5\n1 2 0.25\n", "line 1: expected two user ids 'u v', got 3 fields"),
        ("0 1\n2\n", "line 2: expected two user ids 'u v', got 1 field:"),
    ],
)
def test_a_bad_edge_list_line_is_named_by_its_line_in_the_file(tmp_path: Path, text, line):
    """numpy's 'at row 1, column 2' counted from 0 past comments and blank lines, naming a
    good line; a weighted 'u v w' list was read with its weights dropped without a word."""
    path = tmp_path / "friends.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecarenaError) as info:
        read_edge_list(path, 5)
    assert str(info.value).startswith(f"{path}: {line}"), info.value


def test_edge_list_without_path_is_a_scenario_error(tiny_doc):
    tiny_doc["population"]["social"] = {"graph": {"type": "edge_list"}}
    with pytest.raises(RecarenaError, match=r"population\.social\.graph\.path"):
        parse_scenario(tiny_doc)


def _hand_state(influence: float = 0.5, wom: float = 0.3) -> SocialState:
    # users 0–1–2 in a path; user 3 alone
    cfg = Social(
        graph=SocialGraphSpec(type="barabasi_albert"),  # unused: the graph is given below
        influence=influence,
        word_of_mouth=wom,
        window_days=2,
    )
    matrix = adjacency(np.array([[0, 1], [1, 2]]), 4)
    zeros = np.zeros((4, 2), np.float32)
    from collections import deque

    return SocialState(
        cfg, matrix, row_normalised(matrix), deque(), zeros.copy(), zeros.copy(), zeros.copy(),
        np.zeros(4),
    )  # fmt: skip


def test_influence_raises_utility_of_the_friends_topic():
    state = _hand_state()
    state.record(np.array([0]), np.array([[0.9, 0.1]], np.float32))  # user 0 consumed topic 0
    # user 1: neighbours 0 and 2, half of them consumed topic 0 → signal 0.5 · 0.5 = 0.25
    np.testing.assert_allclose(state.topic_signal(np.array([1, 2, 3])), [[0.25, 0], [0, 0], [0, 0]])

    catalog = Catalog(2)
    catalog.add(np.array([[1, 0], [0, 1]], np.float32), np.zeros(2, np.float32),
                np.zeros(2, np.int32), 0.0)  # fmt: skip
    users = UserState(
        taste=np.zeros((4, 2), np.float32), activity=np.ones(4), explore_prob=np.zeros(4),
        satiation=np.zeros((4, 2), np.float32), familiarity=np.zeros((4, 2), np.float32),
        satisfaction=np.zeros(4), last_topic=np.full(4, -1),
    )  # fmt: skip
    cfg = Population(users=4)
    plain = RuleUserPolicy(cfg, users, catalog)
    social = RuleUserPolicy(cfg, users, catalog, social=state)
    items = np.array([[0, 1]])
    no_explore = np.zeros(1, bool)
    np.testing.assert_allclose(plain.utility(np.array([1]), items, no_explore), [[0, 0]])
    np.testing.assert_allclose(social.utility(np.array([1]), items, no_explore), [[0.25, 0]])


def test_window_forgets_after_window_days_and_word_of_mouth_uses_yesterday():
    state = _hand_state()  # window_days = 2: today and yesterday
    state.record(np.array([0]), np.array([[1.0, 0.0]], np.float32))
    state.end_of_day()  # day 0 closes: user 0 clicked once
    # user 1's neighbours clicked 1 and 0 times → mean 0.5 → boost 1 + 0.3·0.5
    np.testing.assert_allclose(state.visit_boost(), [1.0, 1.15, 1.0, 1.0])
    assert state.topic_signal(np.array([1]))[0, 0] == pytest.approx(0.25)  # still in window
    state.end_of_day()  # day 1 closes with no clicks: day 0 leaves the window
    assert state.topic_signal(np.array([1]))[0, 0] == 0.0
    np.testing.assert_allclose(state.visit_boost(), 1.0)


def test_word_of_mouth_only_adds_sessions_and_respects_the_cap():
    cfg = Population(users=400, max_rate_factor=3.0)
    rng = np.random.default_rng(0)
    users = UserState(
        taste=np.zeros((400, 2), np.float32), activity=rng.uniform(0.5, 2, 400),
        explore_prob=np.zeros(400), satiation=np.zeros((400, 2), np.float32),
        familiarity=np.zeros((400, 2), np.float32), satisfaction=np.zeros(400),
        last_topic=np.full(400, -1),
    )  # fmt: skip
    plain = draw_day(0, users, cfg, 1, 0)
    boosted = draw_day(0, users, cfg, 1, 0, rate_boost=np.full(400, 100.0))
    # same candidates and uniforms (CRN): boosted keeps a superset, up to every candidate
    assert set(plain.session_id) < set(boosted.session_id)
    same = draw_day(0, users, cfg, 1, 0, rate_boost=np.ones(400))
    np.testing.assert_array_equal(same.session_id, plain.session_id)


def test_taste_drift_update_by_hand():
    users = UserState(
        taste=np.array([[1.0, -1.0], [0.5, 0.5]], np.float32), activity=np.ones(2),
        explore_prob=np.zeros(2), satiation=np.zeros((2, 2), np.float32),
        familiarity=np.zeros((2, 2), np.float32), satisfaction=np.zeros(2),
        last_topic=np.full(2, -1),
    )  # fmt: skip
    users.drift(np.array([0]), np.array([[0.0, 1.0]], np.float32), 0.25)
    # 1 + 0.25·(0 − 1) = 0.75; −1 + 0.25·(1 + 1) = −0.5; user 1 untouched
    np.testing.assert_array_equal(users.taste, np.array([[0.75, -0.5], [0.5, 0.5]], np.float32))


# ----------------------------------------------------------------------------- end to end
def _run(doc: dict, out: Path) -> Path:
    run_experiment(parse_scenario(doc), out, executor="local")
    return out


def _tables(cell: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cell.glob("*.parquet"))}


@pytest.fixture
def social_doc(tiny_doc) -> dict:
    tiny_doc["replicates"] = 1
    tiny_doc["population"].update(taste_drift=0.1, social=SOCIAL)
    return tiny_doc


def test_graph_is_the_same_under_every_arm_and_deterministic(social_doc):
    scenario = parse_scenario(social_doc)
    taste = _taste(300, 8)

    def build() -> sp.csr_matrix:
        rng = generator(scenario.seed, 0, "social")
        return SocialState.build(scenario.population.social, taste, 8, rng).adjacency

    first, second = build(), build()
    assert (first != second).nnz == 0 and first.nnz > 0


def test_social_and_drift_run_is_deterministic_and_logs_drift(social_doc, tmp_path: Path):
    a = _run(social_doc, tmp_path / "a")
    b = _run(social_doc, tmp_path / "b")
    for arm in ("random", "popularity"):
        cell = Path(f"arm={arm}/rep=0")
        assert _tables(a / cell) == _tables(b / cell)
        drift = pq.read_table(a / cell / "users_end.parquet").to_pandas()
        assert len(drift) == 300
        clicked = drift["clicks"] > 0
        assert (drift.loc[clicked, "drift_distance"] > 0).all()
        assert (drift.loc[~clicked, "drift_distance"] == 0).all()


def test_without_social_or_drift_the_new_code_is_inert(tiny_doc, tmp_path: Path):
    """No social section, no drift: same logs as explicit zero influence, WoM and drift."""
    tiny_doc["replicates"] = 1
    tiny_doc["arms"] = tiny_doc["arms"][:1]
    plain = _run(tiny_doc, tmp_path / "plain")
    assert "social" not in parse_scenario(tiny_doc).model_dump()["population"]
    assert pq.read_table(plain / "arm=random/rep=0/users_end.parquet").num_rows == 0
    inert = dict(tiny_doc, population={**tiny_doc["population"], "social": {
        "graph": {"type": "barabasi_albert"}, "influence": 0.0, "word_of_mouth": 0.0}})  # fmt: skip
    other = _run(inert, tmp_path / "inert")
    before, after = _tables(plain / "arm=random/rep=0"), _tables(other / "arm=random/rep=0")
    for table in ("exposures", "interactions", "sessions", "items"):
        assert before[f"{table}.parquet"] == after[f"{table}.parquet"], table


def test_missing_edge_list_file_is_caught_when_the_scenario_is_read(tiny_doc, tmp_path: Path):
    missing = tmp_path / "friends.txt"
    tiny_doc["population"]["social"] = {"graph": {"type": "edge_list", "path": str(missing)}}
    with pytest.raises(
        RecarenaError, match=f"population.social.graph.path: edge-list file not found: {missing}"
    ):
        parse_scenario(tiny_doc)
    missing.write_text("0 1\n1 2\n", encoding="utf-8")
    assert parse_scenario(tiny_doc).population.social.graph.path == str(missing)


def test_friends_carousel_row_puts_the_friends_topics_first():
    from tests.test_carousel import Ranked, _catalog, _requests, _surface

    catalog = _catalog()  # item i has topic i % 4; the stub ranks items 0, 1, 2, ...
    surface = _surface([{"theme": "personalized"}, {"theme": "friends"}], cols=3)
    exclude = np.full((2, 1), PAD_ITEM)
    friends = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    state = SurfaceState(catalog, np.zeros(catalog.n), np.full(2, PAD_ITEM), friends)
    grid = surface.layout(Ranked(), _requests(catalog, exclude, surface.slots), state).items
    grid = grid.reshape(2, 2, 3)
    # user 0: friends consumed topic 2 → the next topic-2 items after the personalised row
    assert grid[0, 1].tolist() == [6, 10, 14]
    # user 1: no friends' signal → the recommender's order continues
    assert grid[1, 1].tolist() == [3, 4, 5]
    no_social = SurfaceState(catalog, np.zeros(catalog.n), np.full(2, PAD_ITEM))
    plain = surface.layout(Ranked(), _requests(catalog, exclude, surface.slots), no_social)
    assert plain.items.reshape(2, 2, 3)[0, 1].tolist() == [3, 4, 5]
