"""The "would you watch this?" rule a calibration fits (agents/users/calibration.py stores it
as ``watch_rule``), which ``recarena fidelity``'s watch check asks. It is fitted apart from the
choice model because it answers a different question: whether one movie shown out of context
would be watched and liked, not which movie comes next among all."""

from __future__ import annotations

from typing import Any

import numpy as np

from recarena.agents.users.sequential_interest import SequentialInterest

WATCH_NEGATIVES = 4
"""Unseen items drawn per liked held-out item for the watch rule's fit (weighted back to an
even prior): more contrasts than positives steady the weights at no cost in bias."""


def fit_watch_rule(
    static_utility,
    interest: SequentialInterest | None,
    held_user: np.ndarray,
    held_item: np.ndarray,
    held_rating: np.ndarray | None,
    seen: np.ndarray,
    n_items: int,
    no_click_utility: float,
    seed: int,
) -> dict[str, Any]:
    """ "Would you watch this?" as a logistic log-likelihood ratio, fitted on the held-out
    slice of the training split: liked held-out items (4+ stars; every held-out item without
    ratings) against ``WATCH_NEGATIVES`` × as many uniformly drawn unseen items, weighted to
    an even prior, so the fitted log-odds are a likelihood ratio at even prior. A 1:m test
    adds log(1/m) for its own prior (analysis/fidelity/checks.py).

    The inputs are the user model's own terms, each with its own weight: the static surplus
    (taste · topic mix + quality − u0, ``static_utility``) and, with ``interest``, what
    :meth:`SequentialInterest.watch_terms` gives: short-term interest, conformity, popularity
    (asked about one movie out of context, a user knows of popular ones), how well liked the
    movie is (its shrunk mean rating), how much the user favours its genres and how well they
    rate them, recent popularity on its own (the static surplus holds it only at the choice
    model's weight), and the movie's popularity around the user's own time (what was being
    watched when the user was), the user's activity, and the squared distance of the movie's
    release year from the user's (standardised by the spread of the years they watch). The
    choice weights (``fit_weights``) answer "which movie next,
    among all"; this answers "is this one movie one I would watch and like", so it weighs the
    same terms afresh. In a simulation the choice among shown items keeps using the utility
    alone."""
    from sklearn.linear_model import LogisticRegression

    liked = np.ones(held_user.size, bool) if held_rating is None else held_rating >= 4.0
    pos_user, pos_item = held_user[liked], held_item[liked]
    rng = np.random.default_rng([seed, 23])
    neg_user = np.repeat(pos_user, WATCH_NEGATIVES)
    neg_item = rng.integers(0, n_items, neg_user.size)
    fresh = ~np.isin(neg_user * n_items + neg_item, seen)
    neg_user, neg_item = neg_user[fresh], neg_item[fresh]
    if pos_user.size == 0 or neg_user.size == 0:
        return {"slope": 1.0, "intercept": 0.0, "terms": {}, "pairs": 0}
    user = np.concatenate([pos_user, neg_user])
    item = np.concatenate([pos_item, neg_item])
    columns = {"static": np.asarray(static_utility(user, item), np.float64) - no_click_utility}
    if interest is not None:
        columns.update(interest.watch_terms(user, item))
    names = list(columns)
    x = np.column_stack([columns[name] for name in names])
    y = np.concatenate([np.ones(pos_user.size), np.zeros(neg_user.size)])
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-9)  # for the optimiser only
    model = LogisticRegression(C=1e4, max_iter=1000, class_weight="balanced")
    model.fit((x - mean) / scale, y)
    coef = model.coef_[0] / scale
    return {
        "slope": float(coef[0]),
        "intercept": float(model.intercept_[0] - (coef * mean).sum()),
        "terms": {name: float(w) for name, w in zip(names[1:], coef[1:], strict=True)},
        "pairs": int(y.size),
    }
