"""The "would you watch this?" rule of calibrated users: its terms computed by hand, saved and
loaded, recovered from known log-odds, and read by check 1."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recarena.agents.users.calibration import fit_watch_rule
from recarena.agents.users.sequential_interest import (
    InterestConfig,
    SequentialInterest,
    era_profile,
    fit_features,
    genre_affinity,
    genre_matrix,
    genre_rating_affinity,
    popularity_timeline,
)


def test_genre_matrix_and_affinity_by_hand() -> None:
    genres = [["Drama"], ["Comedy", "Drama"], [], ["Horror", "Horror"]]
    matrix = genre_matrix(genres)
    assert matrix is not None
    # columns in sorted order: Comedy, Drama, Horror; each row sums to 1 (0 without genres)
    expected = np.array([[0, 1, 0], [0.5, 0.5, 0], [0, 0, 0], [0, 0, 1]], np.float32)
    np.testing.assert_allclose(matrix, expected)
    assert genre_matrix([[], []]) is None
    # user 0 watched items 0 and 1 (Drama 1.5, Comedy 0.5); user 1 item 0 (Drama 1)
    lift = genre_affinity(np.array([0, 0, 1]), np.array([0, 1, 0]), 3, matrix, shrink=1.0)
    overall = np.array([0.5, 2.5, 0.0]) / 3.0
    user0 = (np.array([0.5, 1.5, 0.0]) + overall) / 3.0
    np.testing.assert_allclose(lift[0, :2], np.log(user0[:2] / overall[:2]), rtol=1e-6)
    user1 = (np.array([0.0, 1.0, 0.0]) + overall) / 2.0
    np.testing.assert_allclose(lift[1, :2], np.log(user1[:2] / overall[:2]), rtol=1e-6)
    np.testing.assert_allclose(lift[2], 0.0, atol=1e-7)  # nothing watched: the overall shares
    assert (lift[:, 2] == 0).all()  # nobody watched a horror movie: no lift either way


def interest_with_terms() -> SequentialInterest:
    transitions = sp.csr_matrix(np.array([[0, 1.0, 0], [0, 0, 0], [0, 0, 0]], np.float32))
    return SequentialInterest(
        transitions=transitions,
        log_pop=np.array([1.0, 0.0, -1.0], np.float32),
        recent=np.array([[0], [-1]]),
        conformity=np.array([0.5, -1.0], np.float32),
        rating_bias=np.zeros(2, np.float32),
        weights={"sequence": 1.0, "conformity": 1.0},
        ordinal={},
        config=InterestConfig(decay=0.5),
        item_rating=np.array([0.2, -0.4, 0.0], np.float32),
        genre_affinity=np.array([[1.0, -1.0], [0.0, 2.0]], np.float32),
        item_genres=np.array([[1, 0], [0.5, 0.5], [0, 0]], np.float32),
        genre_rating=np.array([[0.5, -0.5], [0.0, 1.0]], np.float32),
        log_recent=np.array([0.3, -0.2, 0.1], np.float32),
        local_popularity=np.array([[1.0, 2.0, -1.0], [-1.0, -2.0, 1.0]], np.float32),
        user_window=np.array([0, 1], np.int32),
        user_activity=np.array([1.0, -1.0], np.float32),
        item_year=np.array([1990.0, 2000.0, np.nan], np.float32),
        user_era=np.array([[1990.0, 5.0], [1995.0, 2.0]], np.float32),
    )


def test_genre_rating_affinity_by_hand() -> None:
    """How many stars above their own mean a user gives each genre, by genre share, shrunk."""
    genres = genre_matrix([["A"], ["A", "B"], ["B"]])
    assert genres is not None
    user = np.array([0, 0, 0, 1, 1])
    item = np.array([0, 1, 2, 0, 2])
    rating = np.array([5.0, 3.0, 1.0, 4.0, np.nan])  # user 1's second row is unrated
    liking = genre_rating_affinity(user, item, rating, 3, genres, shrink=1.0)
    # user 0: mean 3, offsets +2, 0, -2; genre A weighs item 0 by 1 and item 1 by 0.5:
    # (2 + 0) / (1.5 + 1); genre B weighs item 1 by 0.5 and item 2 by 1: (0 - 2) / (1.5 + 1)
    np.testing.assert_allclose(liking[0], [0.8, -0.8], rtol=1e-6)
    # user 1: one rated item, at their own mean; user 2 rated nothing
    np.testing.assert_allclose(liking[1:], 0.0, atol=1e-7)


def test_popularity_timeline_by_hand() -> None:
    """Rows in time order cut into 2 slices of 3; each window is one slice here. Each user
    gets the window around their last row, the last one without rows."""
    user = np.array([0, 0, 1, 1, 1, 2])  # sorted by user, then time
    item = np.array([0, 1, 1, 2, 1, 2])
    time = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 35.0])
    table, window = popularity_timeline(user, item, time, 4, 4, bins=2, slices=1)
    # in time order: 10 (item 0), 20 (1), 30 (1) | 35 (2), 40 (2), 50 (1)
    for row, counts in enumerate(([1, 2, 0, 0], [0, 1, 2, 0])):
        logs = np.log1p(np.array(counts, np.float64))
        np.testing.assert_allclose(table[row], (logs - logs.mean()) / logs.std(), rtol=1e-5)
    # last rows at 20 (2 of 6 rows by then), 50 (6 of 6), 35 (4 of 6); user 3 has none
    np.testing.assert_array_equal(window, [0, 1, 1, 1])
    # three slices of two, windows of two slices: the user at 2 of 6 rows is centred on the
    # first two slices, the others on the last two
    table, window = popularity_timeline(user, item, time, 4, 4, bins=3, slices=2)
    assert table.shape == (2, 4)
    np.testing.assert_array_equal(window, [0, 1, 1, 1])
    logs = np.log1p(np.array([1.0, 2.0, 1.0, 0.0]))  # rows at 10, 20, 30, 35
    np.testing.assert_allclose(table[0], (logs - logs.mean()) / logs.std(), rtol=1e-5)


def test_watch_terms_by_hand_and_saved(tmp_path) -> None:
    interest = interest_with_terms()
    users, items = np.array([0, 0, 1]), np.array([1, 2, 1])
    terms = interest.watch_terms(users, items)
    # user 0's last item 0 is followed by item 1 every time: log(1/3 + 1); never by item 2
    np.testing.assert_allclose(terms["sequence"], np.log(1 / 3 + np.array([1.0, 0.0, 0.0])))
    np.testing.assert_allclose(terms["log_pop"], [0.0, -1.0, 0.0])
    np.testing.assert_allclose(terms["conformity"], [0.0, -0.5, 0.0])
    np.testing.assert_allclose(terms["item_rating"], [-0.4, 0.0, -0.4], rtol=1e-6)
    np.testing.assert_allclose(terms["genre"], [0.0, 0.0, 1.0])  # half of 1-1, 0, half of 0+2
    # half of 0.5 - 0.5; no genres; half of 0 + 1
    np.testing.assert_allclose(terms["genre_rating"], [0.0, 0.0, 0.5])
    np.testing.assert_allclose(terms["log_recent"], [-0.2, 0.1, -0.2], rtol=1e-6)
    # user 0 reads window 0 (items 1, 2: 2, -1), user 1 window 1 (item 1: -2)
    np.testing.assert_allclose(terms["local_pop"], [2.0, -1.0, -2.0])
    np.testing.assert_allclose(terms["activity"], [1.0, 1.0, -1.0])  # the user's own, per pair
    # (2000 - 1990) / 5 squared; item 2 has no year: 1, the expected square; (2000 - 1995) / 2
    np.testing.assert_allclose(terms["era_gap"], [4.0, 1.0, 6.25])
    path = tmp_path / "interest.npz"
    interest.save(path)
    loaded = SequentialInterest.load(
        path, {"weights": interest.weights, "config": {"decay": 0.5}, "ordinal": {}}
    )
    for name, values in loaded.watch_terms(users, items).items():
        np.testing.assert_allclose(values, terms[name])
    bare = SequentialInterest(
        transitions=interest.transitions,
        log_pop=interest.log_pop,
        recent=interest.recent,
        conformity=interest.conformity,
        rating_bias=interest.rating_bias,
        weights=interest.weights,
        ordinal={},
        config=interest.config,
    )
    assert set(bare.watch_terms(users, items)) == {"sequence", "conformity", "log_pop"}
    bare.save(path)  # a population without ratings or genres saves and loads as before
    again = SequentialInterest.load(path, {"weights": {}, "config": {}, "ordinal": {}})
    assert again.item_rating is None and again.genre_affinity is None
    assert again.genre_rating is None and again.log_recent is None
    assert again.local_popularity is None and again.user_window is None
    assert again.user_activity is None
    assert again.item_year is None and again.user_era is None


def test_era_profile_by_hand() -> None:
    """Years 1990, 2000 and none; user 0 watched items 0 and 1, user 1 item 2 only, user 2
    nothing. All dated rows: mean 1995, second moment (1990² + 2000²) / 2."""
    year = np.array([1990.0, 2000.0, np.nan], np.float32)
    user, item = np.array([0, 0, 1]), np.array([0, 1, 2])
    raw = era_profile(user, item, 3, year, shrink=0.0)
    np.testing.assert_allclose(raw[0], [1995.0, 5.0])  # no shrinkage: the user's own years
    np.testing.assert_allclose(raw[1:], [[1995.0, 5.0]] * 2)  # nothing dated: everyone's
    shrunk = era_profile(np.array([0]), np.array([0]), 1, year[:1].copy(), shrink=1.0)
    np.testing.assert_allclose(shrunk[0], [1990.0, 1.0])  # spread floored at one year
    mixed = era_profile(np.array([0, 1]), np.array([0, 1]), 2, year, shrink=2.0)
    # user 0: (1990 + 2·1995) / 3; second moment (1990² + 2·(1990² + 2000²)/2) / 3
    m1 = (1990 + 2 * 1995) / 3
    m2 = (1990**2 + (1990**2 + 2000**2)) / 3
    np.testing.assert_allclose(mixed[0], [m1, np.sqrt(m2 - m1 * m1)], rtol=1e-6)
    assert (era_profile(user, item, 3, np.full(3, np.nan, np.float32), 10.0)[:, 1] == 1).all()


def test_fit_features_item_rating_is_a_shrunk_mean_offset() -> None:
    user = np.array([0, 0, 1, 1])
    item = np.array([0, 1, 0, 2])
    rating = np.array([5.0, 1.0, 5.0, 3.0])  # mean 3.5
    features = fit_features(
        user,
        item,
        np.arange(4.0),
        rating,
        2,
        4,
        None,
        InterestConfig(shrink=2.0, windows=(), memories=()),
        genre_matrix([["A"], ["B"], ["A"], []]),
    )
    interest = features.interest
    assert interest.item_rating is not None and interest.genre_affinity is not None
    # item 0: offsets 1.5 + 1.5 over 2 ratings + 2 pseudo-ratings; item 3: never rated
    np.testing.assert_allclose(interest.item_rating, [3.0 / 4, -2.5 / 3, -0.5 / 3, 0.0])
    assert interest.genre_affinity.shape == (2, 2)
    # user 0: mean 3, offsets +2 (genre A) and -2 (B), each over 1 item + 2 pseudo-items;
    # user 1: mean 4, offsets +1 and -1 both in genre A
    assert interest.genre_rating is not None
    np.testing.assert_allclose(interest.genre_rating, [[2 / 3, -2 / 3], [0.0, 0.0]], atol=1e-6)
    assert interest.log_recent is not None
    np.testing.assert_array_equal(interest.log_recent, features.log_recent)
    assert interest.local_popularity is not None and interest.user_window is not None
    assert interest.local_popularity.shape[1] == 4 and interest.user_window.shape == (2,)


def test_fit_features_user_activity_is_standardised_log_consumptions() -> None:
    """Users with 1, 3 and 0 fitting rows: log(1 + n) standardised over users."""
    user = np.array([0, 1, 1, 1])
    features = fit_features(
        user,
        np.array([0, 1, 2, 0]),
        np.arange(4.0),
        None,
        3,
        3,
        None,
        InterestConfig(windows=(), memories=()),
    )
    logs = np.log1p([1.0, 3.0, 0.0])
    expected = (logs - logs.mean()) / logs.std()
    activity = features.interest.user_activity
    assert activity is not None
    np.testing.assert_allclose(activity, expected, rtol=1e-6)
    assert activity[1] > activity[0] > activity[2]


def test_fit_watch_rule_recovers_known_log_odds() -> None:
    """Liked items and unseen ones differ by known log-odds in the static surplus and the
    genre term only: the fit gives those weights, and none to the terms that do not matter."""
    rng = np.random.default_rng(0)
    n_users, n_items = 400, 300
    static = rng.normal(0, 1, (n_users, n_items))
    # every user favours one genre as much as they shun the other, and half the items are of
    # each: each user's liked items have the same normaliser, so the log-odds are a logit
    side = rng.choice([-1.0, 1.0], n_users)
    genre = (side[:, None] * np.array([[1.0, -1.0]])).astype(np.float32)
    item_genres = np.eye(2, dtype=np.float32)[np.arange(n_items) % 2]
    interest = SequentialInterest(
        transitions=sp.csr_matrix((n_items, n_items), dtype=np.float32),
        log_pop=rng.normal(0, 1, n_items).astype(np.float32),
        recent=np.full((n_users, 1), -1),
        conformity=np.zeros(n_users, np.float32),
        rating_bias=np.zeros(n_users, np.float32),
        weights={"sequence": 0.0, "conformity": 0.0},
        ordinal={},
        config=InterestConfig(),
        item_rating=rng.normal(0, 1, n_items).astype(np.float32),
        genre_affinity=genre,
        item_genres=item_genres,
    )
    genre_term = (item_genres[None, :, :] * genre[:, None, :]).sum(axis=2)
    # P(liked | u, i) / P(unseen | u, i) ∝ exp(1.5 static + 0.8 genre): liked items drawn so
    log_odds = 1.5 * static + 0.8 * genre_term
    p = np.exp(log_odds - log_odds.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    held_user = np.repeat(np.arange(n_users), 30)
    held_item = np.array([rng.choice(n_items, p=p[u]) for u in held_user])
    rule = fit_watch_rule(
        lambda u, i: static[u, i],
        interest,
        held_user,
        held_item,
        None,
        np.zeros(0, np.int64),
        n_items,
        0.0,
        seed=1,
    )
    assert rule["slope"] == pytest.approx(1.5, abs=0.1)
    assert rule["terms"]["genre"] == pytest.approx(0.8, abs=0.1)
    assert rule["terms"]["item_rating"] == pytest.approx(0.0, abs=0.1)
    assert rule["terms"]["log_pop"] == pytest.approx(0.0, abs=0.1)
