"""RecBole adapter (five model families) and the native SASRec-style model."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pydantic import ValidationError

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.registry import build, get_entry
from recarena.simulator.core.types import (
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
)
from tests.catalog_view import topics_catalog

N_USERS, N_ITEMS, K = 60, 40, 5


def _cycle_history(rng, n_users=N_USERS, length=15) -> Interactions:
    """Each user clicks i, i+1, i+2, ... (mod N_ITEMS): order is everything."""
    users, items, times = [], [], []
    for u in range(n_users):
        start = int(rng.integers(N_ITEMS))
        for t in range(length):
            users.append(u)
            items.append((start + t) % N_ITEMS)
            times.append(1000.0 * u + t)
    n = len(users)
    return Interactions(
        np.array(users), np.array(items), np.array(times), np.full(n, 4.0, np.float32)
    )


def _requests(users, exclude=None) -> RequestBatch:
    b = len(users)
    catalog = topics_catalog(np.eye(4, dtype=np.float32)[np.arange(N_ITEMS) % 4])
    exclude = np.empty((b, 0), np.int64) if exclude is None else np.asarray(exclude, np.int64)
    return RequestBatch(
        0.0, np.asarray(users, np.int64), np.arange(b), np.zeros(b, np.int32), K, catalog, exclude
    )


def _build(kind, params, seed=0, n_users=N_USERS + 5):
    return build(kind, params, RecommenderContext(np.random.default_rng(seed), n_users, 4))


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "BERT4Rec", "BPR", "LightGCN"])
def test_recbole_models_train_and_serve(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = _build("recbole", {"model": model, "epochs": 1, "max_seq_len": 10})
    history = _cycle_history(np.random.default_rng(1))
    rec.fit(history)
    assert rec.model is not None
    assert os.listdir(tmp_path) == [], "RecBole must not write into the working directory"
    exclude = np.full((N_USERS + 5, 3), PAD_ITEM)
    exclude[:, 0] = np.arange(N_USERS + 5) % N_ITEMS
    users = np.arange(N_USERS + 5)  # the last five have no history
    slates = rec.recommend(_requests(users, exclude))
    assert slates.items.shape == (N_USERS + 5, K)
    for row, excl in zip(slates.items, exclude, strict=True):
        assert len(set(row.tolist())) == K and (row >= 0).all() and (row < N_ITEMS).all()
        assert not set(row.tolist()) & set(excl[excl >= 0].tolist())
    cold = rec.popularity.recommend(_requests(users[-5:], exclude[-5:])).items
    assert np.array_equal(slates.items[-5:], cold)


def test_recbole_serves_fresh_clicks_to_sequential_models():
    rec = _build("recbole", {"model": "SASRec", "epochs": 1, "max_seq_len": 10})
    rec.fit(_cycle_history(np.random.default_rng(2)))
    before = rec.seq_len[0]
    requests = _requests([0])
    slates = rec.recommend(requests)
    clicked = np.zeros((1, K), bool)
    clicked[0, 0] = True
    rec.update(FeedbackBatch(requests, slates, clicked))
    assert rec.seq_len[0] == min(before + 1, 10)
    assert rec.external_item[rec.seq[0, rec.seq_len[0] - 1]] == slates.items[0, 0]


def test_unknown_recbole_model_is_a_validation_error():
    with pytest.raises(ValidationError, match="unknown RecBole model 'SASRecc'"):
        get_entry("recbole").params.model_validate({"model": "SASRecc"})


def test_native_sasrec_learns_the_next_item():
    rec = _build("sasrec_native", {"epochs": 40, "max_len": 5, "dim": 32, "lr": 5e-3})
    rec.fit(_cycle_history(np.random.default_rng(3)))
    slates = rec.recommend(_requests(np.arange(N_USERS)))
    last = rec.recent[np.arange(N_USERS), -1] - 1
    expected_next = (last + 1) % N_ITEMS
    hit = (slates.items[:, :3] == expected_next[:, None]).any(axis=1)
    assert hit.mean() > 0.8


def test_native_sasrec_is_deterministic():
    history = _cycle_history(np.random.default_rng(4))
    a = _build("sasrec_native", {"epochs": 2}, seed=7)
    b = _build("sasrec_native", {"epochs": 2}, seed=7)
    a.fit(history)
    b.fit(history)
    requests = _requests(np.arange(N_USERS))
    assert np.array_equal(a.recommend(requests).items, b.recommend(requests).items)


@pytest.mark.parametrize(
    "kind", ["sasrec_native", "recarena.recommenders.native_gru4rec:NativeGRU4Rec"]
)
def test_sampled_softmax_still_learns_the_next_item(kind):
    """Above ``softmax_items`` an example's target is scored against a uniform sample of items
    (here 35 draws from the 40), not the whole catalog; the next item is still learnt."""
    params = {"epochs": 8, "max_len": 5, "dim": 32, "lr": 1e-2, "batch_size": 32}
    params |= {"softmax_items": 36, "negatives": 35}
    history = _cycle_history(np.random.default_rng(3))
    rec = _build(kind, params)
    rec.fit(history)
    full = _build(kind, params | {"softmax_items": N_ITEMS})
    full.fit(history)
    requests = _requests(np.arange(N_USERS))
    assert not np.array_equal(rec.recommend(requests).scores, full.recommend(requests).scores)
    slates = rec.recommend(_requests(np.arange(N_USERS)))
    last = rec.recent[np.arange(N_USERS), -1] - 1
    hit = (slates.items[:, :3] == ((last + 1) % N_ITEMS)[:, None]).any(axis=1)
    assert hit.mean() > 0.8


def test_softmax_items_at_or_above_the_catalog_changes_nothing():
    """The full softmax up to ``softmax_items`` items: the same fit, draw for draw."""
    history = _cycle_history(np.random.default_rng(4))
    requests = _requests(np.arange(N_USERS))
    fits = []
    for softmax_items in (N_ITEMS, 16_384):
        rec = _build("sasrec_native", {"epochs": 2, "softmax_items": softmax_items}, seed=7)
        rec.fit(history)
        fits.append(rec.recommend(requests))
    assert np.array_equal(fits[0].items, fits[1].items)
    assert np.array_equal(fits[0].scores, fits[1].scores)


def test_sampled_softmax_fit_is_deterministic():
    history = _cycle_history(np.random.default_rng(4))
    requests = _requests(np.arange(N_USERS))
    slates = []
    for _ in range(2):
        params = {"epochs": 2, "batch_size": 8, "softmax_items": 16, "negatives": 15}
        rec = _build("sasrec_native", params, seed=7)
        rec.fit(history)
        slates.append(rec.recommend(requests))
    assert np.array_equal(slates[0].scores, slates[1].scores)


def test_training_windows_make_every_later_click_a_target_once():
    """Windows tile each user's clicks from the latest back; position j of a window predicts
    the click after its input j, a user's first click is never a target and padding predicts
    nothing. Checked against the clicks written out by hand."""
    rec = _build("sasrec_native", {"max_len": 3}, n_users=3)
    captured = {}
    rec._train = lambda windows, targets: captured.update(windows=windows, targets=targets)
    user = np.array([0, 0, 0, 0, 0, 0, 1, 2, 2])
    item = np.array([10, 11, 12, 13, 14, 15, 16, 17, 18])
    order = np.random.default_rng(0).permutation(user.size)  # fit sorts by (user, time)
    time = np.arange(9.0)
    rec.fit(Interactions(user[order], item[order], time[order], np.ones(9, np.float32)))
    # 1-based inputs (0 = pad) and 0-based targets (-1 = none)
    assert captured["windows"].tolist() == [[0, 11, 12], [13, 14, 15], [0, 0, 18]]
    assert captured["targets"].tolist() == [[-1, 11, 12], [13, 14, 15], [-1, -1, 18]]
    assert rec.recent.tolist() == [[14, 15, 16], [0, 0, 17], [0, 18, 19]]


def test_an_epoch_holds_epoch_samples_targets_in_batches_of_batch_size():
    """An epoch takes windows in a random order while their targets fit ``epoch_samples`` and
    closes a batch at the window whose running total reaches a multiple of ``batch_size``."""
    counts = np.array([3, 1, 2, 2, 3, 1])
    rec = _build("sasrec_native", {"batch_size": 4, "epoch_samples": 9}, seed=5)
    batches = rec._epoch_batches(counts)
    order = _build("sasrec_native", {}, seed=5).rng.permutation(counts.size)  # the same draw
    taken = np.concatenate(batches)
    assert taken.tolist() == order[: taken.size].tolist()
    assert counts[taken].sum() <= 9 < counts[order[: taken.size + 1]].sum()
    running = np.cumsum(counts[taken])
    closing = np.cumsum([len(b) for b in batches]) - 1
    assert ((running[closing] - 1) // 4).tolist() == list(range(len(batches)))
