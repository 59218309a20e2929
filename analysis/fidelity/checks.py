"""The three fidelity checks, on a population calibrated on the training part of a time split.

Why the split comes first: ``calibrate`` holds out the last 20 % of each user's training rows
for its own choice-model fit, so calling it on the *whole* dataset would let the test period
shape the temperature and no-click utility. Here the dataset is split by time per user
(:func:`split_by_time`, the same rule as ``recarena.agents.users.calibration.temporal_split``),
only the
training rows are given to ``calibrate``, and every check is scored on the untouched test rows.

* :func:`taste_discrimination`: Agent4Rec's 1:m protocol, for rule users;
* :func:`rating_distribution`: rating-histogram TV distance;
* ranking agreement lives in analysis/fidelity/ranking.py (it trains recommenders and runs the
  engine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recarena.agents.users.calibration import CalibratedPopulation, temporal_split
from recarena.analysis.fidelity.common import (
    CLASSIFICATION,
    Estimate,
    classification_estimates,
    classification_scores,
    confusion_counts,
    per_user_histograms,
    rating_histogram,
    tv_estimate,
    user_bootstrap,
)
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.datasets import InteractionData

LIKED = 4.0
"""A held-out rating of 4 or more stars counts as liked: check 1's positives. Agent4Rec counts
every rating as an interaction (its "more than 3 stars" chooses users); docs/fidelity.md gives
the figures both ways."""


@dataclass(frozen=True)
class Split:
    """A time split on the population's dense indices (user = row of the population)."""

    train: InteractionData  # training rows with the dataset's own ids (what calibrate sees)
    train_user: np.ndarray  # [N] int64, dense
    train_item: np.ndarray
    train_time: np.ndarray  # float64 seconds
    train_rating: np.ndarray | None
    test_user: np.ndarray
    test_item: np.ndarray
    test_rating: np.ndarray | None

    def liked(self) -> np.ndarray:
        """Held-out rows the user liked (every held-out row for implicit data)."""
        if self.test_rating is None:
            return np.ones(self.test_user.shape[0], bool)
        return self.test_rating >= LIKED


def no_liked_line(name: str) -> str:
    """The refusal of a dataset none of whose held-out interactions is liked (check 1 asks
    about liked movies): said by the split, before the calibration's minutes, as well as by
    check 1 itself (which drops held-out rows of movies the calibration never saw)."""
    return (
        f"dataset {name!r}: no held-out interaction is liked (rated {LIKED:g} stars or more), "
        "so check 1 has no movie a user would watch to ask about"
    )


def nothing_unseen_line(name: str, n_items: int) -> str:
    """The refusal of a dataset in which every user with a liked held-out movie rated every
    movie (check 1 mixes liked movies with unseen ones): said by the split, before the
    calibration's minutes (:func:`nothing_unseen`), as well as by check 1 itself."""
    return (
        f"dataset {name!r}: every user with a liked held-out movie has rated all {n_items} "
        "movies, so check 1 has no unseen movie to ask about"
    )


def nothing_unseen(train: InteractionData, test: dict) -> str | None:
    """:func:`nothing_unseen_line` when no user with a liked held-out movie has an unseen one,
    read from the split alone: the movies are those the calibration of ``train`` will know
    (``recarena.agents.users.calibration.index``: every training row's and the item table's),
    a user's rated ones their training consumptions and held-out rows among them, as
    :func:`discrimination_sets` counts them. None otherwise (check 1 keeps its own check)."""
    universe = train.item
    if train.items.height:
        table = train.items["item"].to_numpy()
        if table.dtype.kind == train.item.dtype.kind:
            universe = np.concatenate([universe, table])
    universe = np.unique(universe)
    liked = np.ones(len(test["item"]), bool)
    if test["rating"] is not None:
        liked = np.asarray(test["rating"], np.float64) >= LIKED
    takers = np.unique(test["user"][liked & np.isin(test["item"], universe)])
    if takers.size == 0:
        return None  # check 1 says what is missing
    consumed = train.consumed()
    user = np.concatenate([train.user[consumed], test["user"]])
    item = np.concatenate([train.item[consumed], test["item"]])
    known = np.isin(item, universe) & np.isin(user, takers)
    row = np.searchsorted(takers, user[known])
    pairs = np.unique(row * universe.size + np.searchsorted(universe, item[known]))
    rated = np.bincount(pairs // universe.size, minlength=takers.size)
    if (rated < universe.size).any():
        return None
    return nothing_unseen_line(train.name, int(universe.size))


def split_by_time(data: InteractionData, holdout: float) -> tuple[InteractionData, dict]:
    """Training rows (as an InteractionData) and the raw test rows of a per-user time split.

    Rows are ordered by (user, time) exactly as ``recarena.agents.users.calibration.index``
    orders them, and only consumptions are split (bare exposures of click data stay in training).
    """
    if data.n_interactions == 0:
        raise RecarenaError(f"dataset {data.name!r} has no interactions")
    _, user = np.unique(data.user, return_inverse=True)
    order = np.lexsort((data.timestamp, user))
    consumed = data.consumed()[order]
    held = np.zeros(order.shape[0], bool)
    held[consumed] = temporal_split(user[order][consumed], holdout)
    if not held.any():
        what = "interactions"
        if data.click is not None:  # exposures are not split: 'interactions' misled there
            what = (
                f"consumptions ({int(consumed.sum()):,} of its {data.n_interactions:,} "
                "interactions are clicks)"
            )
        raise RecarenaError(
            f"dataset {data.name!r}: no user has two or more {what}, so nothing can be held "
            "out for the fidelity checks"
        )
    train_rows, test_rows = order[~held], order[held]

    def take(array: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
        return None if array is None else array[rows]

    train = InteractionData(
        name=data.name,
        user=data.user[train_rows],
        item=data.item[train_rows],
        timestamp=data.timestamp[train_rows],
        rating=take(data.rating, train_rows),
        click=take(data.click, train_rows),
        items=data.items,
        licence=data.licence,
    )
    test = {
        "user": data.user[test_rows],
        "item": data.item[test_rows],
        "rating": take(data.rating, test_rows),
    }
    return train, test


def align(pop: CalibratedPopulation, train: InteractionData, test: dict) -> Split:
    """Map the dataset's ids onto the population's rows; test rows on items the population
    never saw (possible without an item table) are dropped, since no model can score them."""
    users = {u: i for i, u in enumerate(pop.user_id.tolist())}
    items = {v: i for i, v in enumerate(pop.item_id.tolist())}

    def dense(ids: np.ndarray, lookup: dict[str, int]) -> np.ndarray:
        return np.array([lookup.get(str(x), -1) for x in ids.tolist()], np.int64)

    consumed = train.consumed()
    tu, ti = dense(test["user"], users), dense(test["item"], items)
    known = (tu >= 0) & (ti >= 0)
    rating = test["rating"]
    return Split(
        train=train,
        train_user=dense(train.user[consumed], users),
        train_item=dense(train.item[consumed], items),
        train_time=train.timestamp[consumed].astype(np.float64),
        train_rating=None if train.rating is None else train.rating[consumed],
        test_user=tu[known],
        test_item=ti[known],
        test_rating=None if rating is None else np.asarray(rating, np.float64)[known],
    )


def utility(pop: CalibratedPopulation, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Calibrated utility of (user, item) pairs: the engine's utility for a user with no
    satiation or familiarity yet in a non-exploring session, right after their training
    history (``taste_u · x_i + quality_i`` plus, for the calibrated user model, short-term
    interest from the last training items and conformity)."""
    out = (pop.taste[user] * pop.topics[item]).sum(axis=1) + pop.quality[item]
    if pop.interest is not None:
        out = out + pop.interest.dynamic_utility(user, item[:, None])[:, 0]
    return out.astype(np.float64)


def static_utility(pop: CalibratedPopulation, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """The static part of :func:`utility`: ``taste_u · x_i + quality_i``."""
    return ((pop.taste[user] * pop.topics[item]).sum(axis=1) + pop.quality[item]).astype(np.float64)


def watch_log_odds(pop: CalibratedPopulation, user: np.ndarray, item: np.ndarray, m: int):
    """Log-odds that the user would watch each item of a 1:m test: the likelihood ratio fitted
    on the held-out slice of the training split (``watch_rule``, even prior) plus the honest
    prior of the condition, log(1/m) (one liked item per m unseen ones). The rule weighs the
    static surplus and each of the user model's other terms (``terms``: short-term interest,
    conformity, popularity, the movie's mean rating, the user's genre affinity and genre
    rating affinity, recent popularity, popularity around the user's time) apart."""
    rule = pop.scalars.get("watch_rule")
    u0 = float(pop.scalars["no_click_utility"])
    if not rule:  # a population calibrated before the watch rule: the engine's binary logit
        return (utility(pop, user, item) - u0) / float(pop.scalars["temperature"])
    if "terms" in rule:
        odds = float(rule["slope"]) * (static_utility(pop, user, item) - u0)
        odds = odds + float(rule["intercept"]) - np.log(m)
        terms = rule["terms"]
        if terms and pop.interest is not None:
            values = pop.interest.watch_terms(user, item)
            for name, weight in terms.items():
                odds = odds + float(weight) * values[name]
        return odds
    # a population calibrated before the rule weighed the terms apart: one slope on the surplus
    surplus = utility(pop, user, item) - u0
    odds = float(rule["slope"]) * surplus + float(rule["intercept"]) - np.log(m)
    if "popularity_slope" in rule and pop.interest is not None:
        odds = (
            odds + float(rule["popularity_slope"]) * pop.interest.popularity_of(item[:, None])[:, 0]
        )
    return odds


def accept_probability(pop: CalibratedPopulation, user: np.ndarray, item: np.ndarray):
    """P(watch) of one item shown alone: the engine's MNL between the item and the no-click
    option, ``σ((U − u0) / τ)``, at the calibrated temperature and no-click utility."""
    tau = float(pop.scalars["temperature"])
    u0 = float(pop.scalars["no_click_utility"])
    return 1.0 / (1.0 + np.exp(-(utility(pop, user, item) - u0) / tau))


# ------------------------------------------------------------------- 1. taste discrimination
@dataclass(frozen=True)
class TasteResult:
    ratio: int  # m
    users: int
    items: int
    scores: dict[str, Estimate]  # pooled over users (micro), Agent4Rec's report
    auc: Estimate  # threshold-free 2AFC: mean per-user P(liked item's log-odds > an unseen's)
    per_user: dict[str, Estimate] | None = None  # scores averaged per user (macro), optional
    popularity_auc: Estimate | None = None
    """Reference: the same AUC when every user answers by the movie's training popularity
    alone, what a user who knows nothing of their own taste would score."""
    best_threshold_accuracy: float | None = None
    """Reference (an oracle): the pooled accuracy of the watch log-odds at the threshold that
    suits the test answers best. Near ``accuracy``, it says the fitted threshold is not what
    keeps accuracy down; only a better-ranking score would raise it."""


def discrimination_sets(
    split: Split, n_items: int, ratios: tuple[int, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every test user with liked held-out items: the positives and ``max(ratios)`` × as
    many negatives the user never rated (train or test), drawn without replacement.

    Returns flat arrays ``user, item, label, rank`` where ``rank`` numbers each user's negatives
    0, 1, ... so the 1:m set is positives plus negatives with ``rank < m · positives``: the sets
    for m = 1, 3, 9 are nested, and their differences come from m alone.
    """
    liked = split.liked()
    pos_user, pos_item = split.test_user[liked], split.test_item[liked]
    rated_user = np.concatenate([split.train_user, split.test_user])
    rated_item = np.concatenate([split.train_item, split.test_item])
    rated = np.zeros((int(rated_user.max(initial=0)) + 1, n_items), bool)
    rated[rated_user, rated_item] = True
    m = max(ratios)
    out_user, out_item, out_label, out_rank = [pos_user], [pos_item], [np.ones_like(pos_user)], []
    out_rank.append(np.full(pos_user.shape[0], -1))
    users, n_pos = np.unique(pos_user, return_counts=True)
    for u, n in zip(users.tolist(), n_pos.tolist(), strict=True):  # once per user, not per tick
        unseen = np.flatnonzero(~rated[u])
        chosen = rng.permutation(unseen)[: m * n]
        out_user.append(np.full(chosen.size, u))
        out_item.append(chosen)
        out_label.append(np.zeros(chosen.size, np.int64))
        out_rank.append(np.arange(chosen.size))
    return (
        np.concatenate(out_user).astype(np.int64),
        np.concatenate(out_item).astype(np.int64),
        np.concatenate(out_label).astype(bool),
        np.concatenate(out_rank),
    )


def taste_discrimination(
    pop: CalibratedPopulation,
    split: Split,
    ratios: tuple[int, ...] = (1, 3, 9),
    seed: int = 0,
    n_boot: int = 1000,
    per_user: bool = False,
) -> list[TasteResult]:
    """Agent4Rec's 1:m test for calibrated users: "would you watch this?" for each item of a
    user's 1:m set (liked held-out items and m times as many unseen ones).

    The decision is the Bayes rule of the watch model: yes when the log-odds
    (:func:`watch_log_odds`: a likelihood ratio fitted on the held-out slice of the *training*
    split, plus log(1/m), the prior the protocol itself sets) is positive. Accuracy /
    precision / recall / F1 are pooled over users (and, with ``per_user``, also averaged per
    user); ``auc`` is the two-alternative forced choice, free of any threshold or prior: the
    share of (liked, unseen) pairs of the same user in which the liked one has the higher
    watch log-odds (the utility, plus the movie's popularity when the watch rule weighs it),
    averaged over users."""
    rng = np.random.default_rng([seed, 101])
    user, item, label, rank = discrimination_sets(split, pop.n_items, ratios, rng)
    name = split.train.name
    if not label.any():
        raise RecarenaError(no_liked_line(name))
    if label.all():
        raise RecarenaError(nothing_unseen_line(name, pop.n_items))
    score = watch_log_odds(pop, user, item, 1)  # the prior shifts all alike: AUC ignores it
    popularity = np.bincount(split.train_item, minlength=pop.n_items)[item].astype(np.float64)
    reference_rng = np.random.default_rng([seed, 103])  # the headline figures' streams untouched
    n_pos = np.bincount(user[label], minlength=pop.n_users)
    results = []
    boot_rng = np.random.default_rng([seed, 102])
    for m in ratios:
        keep = label | (rank < m * n_pos[user])
        watch = watch_log_odds(pop, user[keep], item[keep], m) > 0
        counts = confusion_counts(label[keep], watch, user[keep], pop.n_users)
        counts = counts[n_pos > 0]  # the users who take the test
        auc = per_user_auc(user[keep], score[keep], label[keep])
        results.append(
            TasteResult(
                ratio=m,
                users=int(counts.shape[0]),
                items=int(keep.sum()),
                scores=classification_estimates(counts, boot_rng, n_boot),
                auc=user_mean(auc, boot_rng, n_boot),
                per_user=per_user_scores(counts, boot_rng, n_boot) if per_user else None,
                popularity_auc=user_mean(
                    per_user_auc(user[keep], popularity[keep], label[keep]), reference_rng, n_boot
                ),
                best_threshold_accuracy=best_threshold_accuracy(score[keep], label[keep]),
            )
        )
    return results


def best_threshold_accuracy(score: np.ndarray, label: np.ndarray) -> float:
    """The highest pooled accuracy any single threshold on ``score`` reaches (saying yes to
    everything above it), ties kept together: an oracle, fitted on the answers it scores."""
    if label.size == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    ordered, labels = score[order], label[order]
    last_of_tie = np.append(ordered[1:] != ordered[:-1], True)  # cut only between distinct scores
    true_yes = np.cumsum(labels)[last_of_tie]
    false_yes = np.cumsum(~labels)[last_of_tie]
    negatives = int((~label).sum())
    correct = np.concatenate([[negatives], true_yes + negatives - false_yes])  # [0]: all "no"
    return float(correct.max() / label.size)


def user_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> Estimate:
    """Mean over users with a user-bootstrap CI."""
    stacked = np.stack([values, np.ones_like(values)], 1)
    return user_bootstrap(stacked, lambda s: s[:, 0] / s[:, 1], rng, n_boot)


def per_user_scores(counts: np.ndarray, rng: np.random.Generator, n_boot: int):
    """Each classification score computed per user, then averaged (users where a score is
    undefined, e.g. precision with no "yes", are left out of that score's mean)."""
    scores = classification_scores(counts)
    out = {}
    for name in CLASSIFICATION:
        values = scores[name][np.isfinite(scores[name])]
        out[name] = user_mean(values, rng, n_boot)
    return out


def per_user_auc(user: np.ndarray, score: np.ndarray, label: np.ndarray) -> np.ndarray:
    """[users with both classes] ROC AUC of ``score`` separating label from non-label items,
    per user (Mann-Whitney: the share of (positive, negative) pairs in the right order, ties
    count one half)."""
    from scipy.stats import rankdata

    order = np.argsort(user, kind="stable")
    user, score, label = user[order], score[order], label[order]
    users, starts = np.unique(user, return_index=True)
    out = []
    for u_rows in np.split(np.arange(user.size), starts[1:]):  # once per test user, at report
        lab = label[u_rows]
        n_pos, n_neg = int(lab.sum()), int((~lab).sum())
        if n_pos and n_neg:  # Mann-Whitney U from mid-ranks: ties count one half
            ranks = rankdata(score[u_rows])
            u_stat = ranks[lab].sum() - n_pos * (n_pos + 1) / 2
            out.append(u_stat / (n_pos * n_neg))
    del users
    return np.asarray(out, np.float64)


# ---------------------------------------------------------------------- 2. rating distribution
def engine_rating(surplus: np.ndarray) -> np.ndarray:
    """The rule user's fixed rating rule (agents/users/rule_user.py, generated populations): 3 stars
    at the no-click utility, 1.5 stars per unit of utility above it, clipped to 1..5."""
    return np.clip(np.rint(3.0 + 1.5 * surplus), 1, 5)


def threshold_rating(surplus: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The rule user's rating through calibrated cut points (``population.rating_thresholds``):
    1 + the number of cut points at or below the surplus."""
    return 1.0 + np.searchsorted(np.asarray(thresholds), surplus, side="right")


@dataclass(frozen=True)
class RatingResult:
    name: str
    description: str
    tv: Estimate
    simulated: list[float]
    real: list[float]


def rating_distribution(
    pop: CalibratedPopulation,
    split: Split,
    seed: int = 0,
    n_boot: int = 1000,
    simulated: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[RatingResult]:
    """TV distance between simulated and real held-out ratings, three ways.

    * ``fixed rule, held-out pairs``: the uncalibrated rating rule of generated populations
      applied to the exact (user, item) pairs the real users rated in the test period. Both
      sides rate the same movies, so choice plays no part: this isolates the rating model.
    * ``calibrated cut points, held-out pairs``: the same pairs rated through the cut points
      ``calibrate`` fitted on the *training* ratings (``rating_thresholds``), which is what a
      calibrated scenario's users use. Out of sample: a low TV is earned, not copied.
    * ``simulation`` (when ``simulated`` = (user, rating) of the clicks of the ranking-agreement
      run): what SUBER reports, the ratings simulated users gave to what they *chose* (through
      the calibrated cut points), against the real held-out ratings of the same users. This one
      also carries the choice model: simulated users pick what their utility ranks high.
    """
    if split.test_rating is None or split.train_rating is None:
        raise RecarenaError(f"dataset {split.train.name!r} has no ratings: check 2 needs them")
    rng = np.random.default_rng([seed, 201])
    u0 = float(pop.scalars["no_click_utility"])
    n = pop.n_users
    real = per_user_histograms(split.test_user, split.test_rating, n)
    test_surplus = utility(pop, split.test_user, split.test_item) - u0
    variants = [
        (
            "fixed rule, held-out pairs",
            "uncalibrated rule 3 + 1.5 (U - u0) on the real held-out (user, item) pairs",
            engine_rating(test_surplus),
        )
    ]
    thresholds = pop.scalars.get("rating_thresholds")
    if thresholds is not None:
        variants.append(
            (
                "calibrated cut points, held-out pairs",
                "cut points fitted on held-out training utilities, applied to the test pairs",
                threshold_rating(test_surplus, thresholds),
            )
        )
    results = []
    for name, description, ratings in variants:
        sim = per_user_histograms(split.test_user, ratings, n)
        results.append(_rating_result(name, description, sim, real, rng, n_boot))
    if pop.interest is not None and pop.interest.ordinal:
        dynamic = pop.interest.dynamic_utility(split.test_user, split.test_item[:, None])[:, 0]
        probs = pop.interest.rating_probabilities(test_surplus, split.test_user, dynamic)
        sim = np.stack(
            [np.bincount(split.test_user, weights=probs[:, k], minlength=n) for k in range(5)],
            axis=1,
        )
        results.append(
            _rating_result(
                "ordinal model, held-out pairs",
                "ordered probit (fitted noise scale, per-user bias) on the test pairs; "
                "expected histogram",
                sim,
                real,
                rng,
                n_boot,
            )
        )
    if simulated is not None:
        sim_user, sim_rating = simulated
        sim = per_user_histograms(sim_user, sim_rating, n)
        both = (sim.sum(axis=1) > 0) & (real.sum(axis=1) > 0)
        results.append(
            _rating_result(
                "simulation",
                "ratings simulated users gave to what they clicked (all arms pooled)",
                sim[both],
                real[both],
                rng,
                n_boot,
            )
        )
    return results


def _rating_result(name, description, sim, real, rng, n_boot) -> RatingResult:
    rows = (sim.sum(axis=1) > 0) | (real.sum(axis=1) > 0)
    sim, real = sim[rows], real[rows]
    return RatingResult(
        name=name,
        description=description,
        tv=tv_estimate(sim, real, rng, n_boot),
        simulated=rating_histogram_from_counts(sim.sum(axis=0)),
        real=rating_histogram_from_counts(real.sum(axis=0)),
    )


def rating_histogram_from_counts(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return [float(c) / total if total else 0.0 for c in counts]


__all__ = [
    "Split",
    "TasteResult",
    "RatingResult",
    "accept_probability",
    "align",
    "discrimination_sets",
    "engine_rating",
    "rating_distribution",
    "rating_histogram",
    "split_by_time",
    "taste_discrimination",
    "threshold_rating",
    "utility",
]
