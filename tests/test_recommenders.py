"""Every recommender's contract: shape, distinct items, exclusions, propensities, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.random import RandomRecommender
from recarena.recommenders.registry import build, get_entry, known_types
from recarena.recommenders.slates import (
    sample_distinct_excluding,
    sample_distinct_keyed,
    top_k_from_ranking,
    top_k_from_scores,
    top_k_over_fallback,
)
from recarena.simulator.core.types import (
    PAD_ITEM,
    CatalogView,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)

N_ITEMS, N_USERS, K = 200, 50, 10


def _catalog(n_items: int = N_ITEMS) -> CatalogView:
    rng = np.random.default_rng(0)
    topics = rng.dirichlet(np.ones(8), n_items).astype(np.float32)
    return CatalogView(
        n_items,
        topics,
        rng.normal(size=n_items).astype(np.float32),
        rng.integers(0, 5, n_items).astype(np.int32),
        np.zeros(n_items),
    )


def _history(rng, n=2000) -> Interactions:
    """Two user groups clicking two disjoint item groups (even users: items < 100)."""
    user = rng.integers(0, N_USERS, n)
    item = np.where(user % 2 == 0, rng.integers(0, 90, n), rng.integers(100, 190, n))
    return Interactions(
        user.astype(np.int64),
        item.astype(np.int64),
        np.sort(rng.random(n)) * 1e5,
        np.full(n, 4.0, np.float32),
    )


def _requests(users, exclude, k=K, n_items=N_ITEMS) -> RequestBatch:
    b = len(users)
    return RequestBatch(
        0.0,
        np.asarray(users, np.int64),
        np.arange(b),
        np.zeros(b, np.int32),
        k,
        _catalog(n_items),
        np.asarray(exclude, np.int64),
    )


def _truth(requests: RequestBatch, items: np.ndarray) -> np.ndarray:
    """A fixed ground truth for the oracle: users prefer items near (user id * 4)."""
    return -np.abs(items - 4 * requests.user[:, None]).astype(np.float64)


REQUIRED_PARAMS = {"policy": {"checkpoint": "tests.test_gym:lowest_ids_first"}}
"""Types with a required param get a small valid value in the contract tests."""


def _build(kind: str, seed: int = 1, params: dict | None = None):
    ctx = RecommenderContext(np.random.default_rng(seed), N_USERS, 8, truth=_truth)
    return build(kind, params or REQUIRED_PARAMS.get(kind, {}), ctx)


LIST_TYPES = [t for t in known_types() if "list" in get_entry(t).factory.surfaces]


def test_every_type_serves_lists_or_conversations():
    conversational = {t for t in known_types() if "conversation" in get_entry(t).factory.surfaces}
    assert conversational == {"info_gain", "recommend_only", "llm_crs"}
    assert set(LIST_TYPES) | conversational == set(known_types())


@pytest.mark.parametrize("kind", LIST_TYPES)
def test_contract(kind):
    rng = np.random.default_rng(5)
    rec = _build(kind)
    rec.fit(Interactions.empty())
    rec.fit(_history(rng))
    exclude = np.full((N_USERS, 30), PAD_ITEM)
    exclude[:, :20] = rng.integers(0, N_ITEMS, (N_USERS, 20))
    requests = _requests(np.arange(N_USERS), exclude)
    slates = rec.recommend(requests)
    clicked = np.zeros(slates.items.shape, bool)
    clicked[::3, 0] = True
    rec.update(FeedbackBatch(requests, slates, clicked))  # online learners must accept feedback
    slates = rec.recommend(requests)
    assert slates.items.shape == slates.scores.shape == slates.propensity.shape == (N_USERS, K)
    assert ((slates.items >= 0) & (slates.items < N_ITEMS)).all()
    for row, excl in zip(slates.items, exclude, strict=True):
        assert len(set(row.tolist())) == K
        assert not set(row.tolist()) & set(excl[excl >= 0].tolist())
    assert ((slates.propensity > 0) & (slates.propensity <= 1)).all()
    again = _build(kind)
    again.fit(Interactions.empty())
    again.fit(_history(np.random.default_rng(5)))
    first = again.recommend(requests)
    again.update(FeedbackBatch(requests, first, clicked))
    same = again.recommend(requests)
    assert np.array_equal(slates.items, same.items), "same seed must give the same slates"


def test_random_propensity_is_the_exact_marginal():
    rec = _build("random")
    exclude = np.array([[0, 1, 2, PAD_ITEM, 2]] * 20_000)  # 3 distinct exclusions
    slates = rec.recommend(_requests(np.zeros(20_000, int), exclude, k=5, n_items=50))
    assert np.allclose(slates.propensity, 1 / 47)
    freq = np.bincount(slates.items[:, 3], minlength=50) / 20_000
    assert freq[:3].sum() == 0
    assert np.abs(freq[3:] - 1 / 47).max() < 0.006


def test_epsilon_greedy_propensities_match_frequencies():
    eps, n = 0.3, 40_000
    rec = _build("epsilon_greedy", params={"epsilon": eps, "base": "popularity"})
    rec.fit(Interactions.empty())
    exclude = np.empty((n, 0), np.int64)
    slates = rec.recommend(_requests(np.zeros(n, int), exclude, k=5, n_items=60))
    base = rec.base.recommend(_requests(np.zeros(1, int), exclude[:1], k=5, n_items=60)).items[0]
    exploit = slates.items == base[None, :]
    assert abs(exploit.mean() - (1 - eps)) < 0.01
    assert np.allclose(slates.propensity[exploit], 1 - eps)
    assert np.allclose(slates.propensity[~exploit], eps / 55)
    explored = slates.items[:, 0][~exploit[:, 0]]
    some_item = np.setdiff1d(np.arange(60), base)[0]
    assert abs((explored == some_item).sum() / n - eps / 55) < 0.002


def test_popularity_ranks_clicked_items_first():
    rec = _build("popularity")
    item = np.array([7] * 50 + [3] * 20 + [9] * 5)
    history = Interactions(np.zeros(75, np.int64), item, np.zeros(75), np.ones(75, np.float32))
    rec.fit(history)
    slates = rec.recommend(_requests([0, 1], [[PAD_ITEM], [7]]))
    assert slates.items[0, :3].tolist() == [7, 3, 9]
    assert slates.items[1, :2].tolist() == [3, 9]
    assert slates.scores[0, 0] == 50


def test_mf_learns_group_structure():
    rng = np.random.default_rng(3)
    rec = _build("mf", params={"epochs": 30, "dim": 8})
    rec.fit(_history(rng))
    slates = rec.recommend(_requests(np.arange(N_USERS), np.empty((N_USERS, 0))))
    own_group = np.where(
        np.arange(N_USERS)[:, None] % 2 == 0, slates.items < 100, slates.items >= 100
    )
    assert own_group.mean() > 0.9


def test_mf_dense_adam_is_torch_adam_bit_for_bit(monkeypatch):
    """mf's own dense Adam (it avoids torch.optim's import of torch._dynamo) gives the same
    embeddings, to the bit, as torch.optim.Adam over warm-started refits."""
    import torch

    from recarena.recommenders import mf

    class TorchAdam:
        def __init__(self, params, lr):
            self.optimizer = torch.optim.Adam(params, lr=lr)

        def step(self):
            self.optimizer.step()

        def zero_grad(self):
            self.optimizer.zero_grad(set_to_none=True)

    fitted = []
    for optimizer in (mf._DenseAdam, TorchAdam):
        monkeypatch.setattr(mf, "_DenseAdam", optimizer)
        rec = _build("mf", params={"epochs": 4, "dim": 8, "batch_size": 256})
        for n in (500, 1500):
            rec.fit(_history(np.random.default_rng(3), n))
        fitted.append((rec.user_emb.numpy().tobytes(), rec.item_emb.numpy().tobytes()))
    assert fitted[0] == fitted[1]


def test_mf_auto_fit_is_dense_for_small_populations_and_lazy_for_large(monkeypatch):
    """``optimizer: auto`` keeps the dense fit (and its bytes) below LAZY_FROM_USERS users and
    fits lazily from there on; a named optimizer is taken as given at any size."""
    from recarena.recommenders import mf

    calls: list[str] = []
    monkeypatch.setattr(mf.MatrixFactorization, "_fit_dense", lambda self, h: calls.append("d"))
    monkeypatch.setattr(mf.MatrixFactorization, "_fit_lazy", lambda self, h: calls.append("l"))
    history = Interactions(np.array([0]), np.array([3]), np.zeros(1), np.ones(1, np.float32))
    cases = [
        ({}, mf.LAZY_FROM_USERS - 1, "adam", "d"),
        ({}, mf.LAZY_FROM_USERS, "lazy_adam", "l"),
        ({"optimizer": "adam"}, 10 * mf.LAZY_FROM_USERS, "adam", "d"),
        ({"optimizer": "lazy_adam"}, 10, "lazy_adam", "l"),
    ]
    for params, n_users, resolved, fitted in cases:
        ctx = RecommenderContext(np.random.default_rng(0), n_users, 8)
        rec = build("mf", {"dim": 2, **params}, ctx)
        rec.fit(history)
        assert (rec.optimizer, calls.pop()) == (resolved, fitted)


def test_mf_serves_cold_users_by_popularity():
    rec = _build("mf")
    rec.fit(Interactions(np.array([0, 0]), np.array([5, 5]), np.zeros(2), np.ones(2, np.float32)))
    slates = rec.recommend(_requests([1], [[PAD_ITEM]]))
    assert slates.items[0, 0] == 5  # user 1 has no history: the most clicked item comes first


def _brute_top_k(ranking, exclude, k):
    out = []
    for row in exclude:
        chosen = [i for i in ranking if i not in set(row.tolist())][:k]
        out.append(chosen + [PAD_ITEM] * (k - len(chosen)))
    return np.array(out)


def test_slate_helpers_match_brute_force():
    rng = np.random.default_rng(11)
    for _ in range(20):
        n, b, k, h = rng.integers(5, 40), rng.integers(1, 8), rng.integers(1, 6), rng.integers(0, 8)
        exclude = np.where(rng.random((b, h)) < 0.3, PAD_ITEM, rng.integers(0, n, (b, h)))
        ranking = rng.permutation(n)
        assert np.array_equal(
            top_k_from_ranking(ranking, exclude, k), _brute_top_k(ranking, exclude, k)
        )
        scores = rng.integers(0, 5, (b, n)).astype(float)  # many ties
        items, top = top_k_from_scores(scores, exclude, k)
        for r in range(b):
            order = sorted(range(n), key=lambda i, r=r: (-scores[r, i], i))
            assert items[r].tolist() == _brute_top_k(order, exclude[r : r + 1], k)[0].tolist()
        sampled, eligible = sample_distinct_excluding(rng, n, exclude, k)
        for r in range(b):
            allowed = set(range(n)) - set(exclude[r].tolist())
            assert eligible[r] == len(allowed)
            got = [i for i in sampled[r].tolist() if i != PAD_ITEM]
            assert len(got) == len(set(got)) == min(k, len(allowed))
            assert set(got) <= allowed


def test_model_slates_replace_the_fallback_only_where_they_fill_the_page():
    fallback = SlateBatch(
        np.array([[7, 8], [7, 8], [7, 8]]),
        np.full((3, 2), 0.5, np.float32),
        np.full((3, 2), 0.25, np.float32),
    )
    requests = _requests([0, 1, 2], [[PAD_ITEM], [PAD_ITEM], [3]], k=2, n_items=5)
    scores = np.array([[-np.inf, -np.inf, 1.0, -np.inf, -np.inf], [0.0, 1.0, -np.inf, 3.0, 2.0]])
    # request 0 is not served by the model; request 1 has one scored item (too few for a
    # page of 2); request 2's best item 3 is excluded, so it gets 4 then 1
    slates = top_k_over_fallback(fallback, np.array([1, 2]), scores, requests)
    assert slates.items.tolist() == [[7, 8], [7, 8], [4, 1]]
    assert slates.scores.tolist() == [[0.5, 0.5], [0.5, 0.5], [2.0, 1.0]]
    assert (slates.propensity == 1).all()
    assert fallback.items.tolist() == [[7, 8], [7, 8], [7, 8]]  # the fallback is not written


def test_keyed_sampler_rows_are_their_own_and_uniform():
    """sample_distinct_keyed: distinct, unexcluded items and exact eligible counts; a row's
    slate depends on its key alone (the same in any batch, whichever pass filled it); and
    each eligible item is shown at a slot with probability 1/eligible."""
    meta = np.random.default_rng(123)
    for _ in range(200):
        n = int(meta.choice([30, 60, 200, 2000]))
        b, k = int(meta.integers(1, 12)), int(meta.integers(1, 12))
        h = int(meta.integers(0, min(n, 160)))
        exclude = np.where(meta.random((b, h)) < 0.2, PAD_ITEM, meta.integers(0, n, (b, h)))
        keys = meta.integers(0, 2**63, b).astype(np.uint64)
        items, eligible = sample_distinct_keyed(keys, n, exclude, k)
        for r in range(b):
            allowed = set(range(n)) - set(exclude[r].tolist())
            assert eligible[r] == len(allowed)
            got = [i for i in items[r].tolist() if i != PAD_ITEM]
            assert len(got) == len(set(got)) == min(k, len(allowed)) and set(got) <= allowed
            alone, _ = sample_distinct_keyed(keys[r : r + 1], n, exclude[r : r + 1], k)
            assert alone[0].tolist() == items[r].tolist()
    # uniform: 12 eligible of 15 items, 3 slots, 40,000 keys; every slot of every item 1/12
    exclude = np.tile(np.array([[2, 7, 11]]), (40_000, 1))
    keys = np.arange(40_000, dtype=np.uint64) * np.uint64(7919)
    items, eligible = sample_distinct_keyed(keys, 15, exclude, 3)
    assert (eligible == 12).all() and not np.isin(items, [2, 7, 11]).any()
    for slot in range(3):
        share = np.bincount(items[:, slot], minlength=15)[
            [i for i in range(15) if i not in (2, 7, 11)]
        ]
        assert np.abs(share / 40_000 - 1 / 12).max() < 0.006  # ~4 standard errors


def test_random_slate_is_keyed_by_arm_session_and_page():
    def ask(rec, sessions, pages):
        b = len(sessions)
        requests = RequestBatch(
            0.0,
            np.arange(b, dtype=np.int64),
            np.asarray(sessions, np.int64),
            np.asarray(pages, np.int32),
            4,
            _catalog(500),
            np.full((b, 1), PAD_ITEM, np.int64),
        )
        return rec.recommend(requests).items.tolist()

    def arm(seed):
        return RandomRecommender(NoParams(), RecommenderContext(np.random.default_rng(seed), 4, 8))

    alone = ask(arm(5), [9], [2])[0]
    assert ask(arm(5), [1, 4, 9, 7], [0, 2, 2, 2])[2] == alone  # the same in any batch
    assert ask(arm(5), [9], [3])[0] != alone  # the next page of the session draws anew
    assert ask(arm(6), [9], [2])[0] != alone  # another arm's stream, another slate


def test_registry_errors_and_plugins():
    with pytest.raises(
        LookupError,
        match="unknown recommender 'mff'; did you mean 'mf'\\? known: random, popularity, mf",
    ):
        get_entry("mff")
    with pytest.raises(LookupError, match="cannot import"):
        get_entry("nowhere.module:Thing")
    assert get_entry("tests.plugins:NewestFirst").factory.__name__ == "NewestFirst"
    with pytest.raises(ValidationError):
        get_entry("epsilon_greedy").params.model_validate(
            {"base": "mf", "base_params": {"dim": -1}}
        )
    with pytest.raises(ValidationError, match="unknown recommender 'nope'"):
        get_entry("epsilon_greedy").params.model_validate({"base": "nope"})


def test_oracle_ranks_by_truth():
    slates = _build("oracle").recommend(_requests([10, 20], [[40], [PAD_ITEM]], k=3))
    assert slates.items[0].tolist() == [39, 41, 38]  # 40 is excluded; ties break to lower id
    assert slates.items[1, 0] == 80


def test_thompson_propensity_matches_slot_frequencies():
    rec = _build("thompson_beta", params={"propensity_samples": 200})
    requests = _requests(np.zeros(4000, int), np.empty((4000, 0)), k=3, n_items=6)
    item = np.array([[0, 1, 2]] * 200)
    fake = RequestBatch(
        0.0,
        np.zeros(200, np.int64),
        np.arange(200),
        np.zeros(200, np.int32),
        3,
        _catalog(6),
        np.empty((200, 0), np.int64),
    )
    shows = SlateBatch(item, np.zeros(item.shape, np.float32), np.ones(item.shape, np.float32))
    clicked = np.zeros(item.shape, bool)
    clicked[:, 0] = np.arange(200) % 4 == 0  # item 0: 25% CTR, items 1, 2: 0%, others unseen
    rec.update(FeedbackBatch(fake, shows, clicked))
    slates = rec.recommend(requests)
    for item_id in (0, 3):
        at_top = slates.items[:, 0] == item_id
        assert abs(at_top.mean() - slates.propensity[at_top, 0].mean()) < 0.03


def test_linucb_learns_a_users_topic():
    rec = _build("linucb", params={"alpha": 0.1})
    catalog = _catalog()
    topic = catalog.topics.argmax(axis=1)
    users = np.arange(N_USERS)
    for _ in range(30):  # every user clicks whatever of topic 2 it is shown
        requests = _requests(users, np.empty((N_USERS, 0)))
        slates = rec.recommend(requests)
        clicked = topic[slates.items] == 2
        clicked &= np.cumsum(clicked, axis=1) == 1
        rec.update(FeedbackBatch(requests, slates, clicked))
    final = rec.recommend(_requests(users, np.empty((N_USERS, 0))))
    assert (topic[final.items] == 2).mean() > 0.8


def test_mf_lazy_fit_moves_only_history_users_and_ignores_everyone_else():
    """The lazy fit works on the history's users alone: users outside it keep their rows bit
    for bit, and the fitted rows are the same floats as a population made of those users only
    (same starting rows, ids renumbered in order), whatever the population's size."""
    import torch

    rng = np.random.default_rng(4)
    n_users, active = 400, np.array([3, 17, 40, 41, 200, 399])
    picks = rng.integers(0, active.size, 1500)
    history = Interactions(
        active[picks].astype(np.int64),
        rng.integers(0, 150, 1500).astype(np.int64),
        np.sort(rng.random(1500)) * 1e5,
        np.full(1500, 4.0, np.float32),
    )
    small_history = Interactions(picks.astype(np.int64), history.item, history.time, history.rating)
    params = {"epochs": 3, "dim": 8, "batch_size": 128, "optimizer": "lazy_adam"}
    big = build("mf", params, RecommenderContext(np.random.default_rng(9), n_users, 8))
    small = build("mf", params, RecommenderContext(np.random.default_rng(9), active.size, 8))
    big._grow_items(150)  # both start from the same rows (torch draws depend on sizes)
    small.user_emb = big.user_emb[torch.from_numpy(active)].clone()
    small.item_emb = big.item_emb.clone()
    before = big.user_emb.clone()
    big.fit(history)
    small.fit(small_history)
    others = np.setdiff1d(np.arange(n_users), active)
    assert torch.equal(big.user_emb[others], before[others])
    assert not torch.equal(big.user_emb[active], before[active])
    assert big.user_emb[active].numpy().tobytes() == small.user_emb.numpy().tobytes()
    assert big.item_emb.numpy().tobytes() == small.item_emb.numpy().tobytes()
