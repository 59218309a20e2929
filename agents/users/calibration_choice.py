"""The choice model of a calibration, its pseudo exposures and the rating cut points
(agents/users/calibration.py runs them on the held-out slice).

* **Temperature and no-click utility** by maximum likelihood of the engine's MNL on held-out
  behaviour. MovieLens logs no exposures, so a *pseudo-exposure* protocol stands in: each user
  is shown ``slates_per_user`` uniform random slates of ``slate_size`` items they did not
  consume in training; a slate is "clicked" on an item the user consumed in the held-out
  period (the first such slot, slot order being random), otherwise it is a no-click. The
  assumption, stated plainly: a user would click a shown movie exactly when they watched it in
  the held-out period, and every slot is examined. It is what a uniform-random recommender with
  perfect recall of later viewing would observe; it makes ``no_click_utility`` reflect how
  rarely a random movie is wanted, and ``temperature`` how sharply fitted utility separates
  wanted from unwanted movies out of sample (a temperature above 1 undoes MF overfitting).
  Only ``U/temperature`` is identified, which is all the engine's choice uses.
* **Rating cut points.** The engine's fixed rating rule (3 stars at the no-click utility, 1.5
  stars per unit above it) assumes a utility scale the implicit MF does not have: on ML-100K it
  rated every consumed movie 1 star (rating TV distance 0.91). When the data has ratings, four
  cut points on the surplus ``U − u0`` are fitted on the training pairs by quantile matching
  (:func:`fit_rating_thresholds`) and stored as ``rating_thresholds``; a calibrated scenario
  then rates through them. Generated populations keep the fixed rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recarena.agents.users.calibration_config import CalibrationConfig


@dataclass(frozen=True)
class ChoiceFit:
    temperature: float
    no_click_utility: float
    nll: float  # mean negative log-likelihood per slate
    slates: int
    click_rate: float  # share of slates with a click


def fit_choice(utility: np.ndarray, clicked: np.ndarray) -> ChoiceFit:
    """MLE of (temperature, no-click utility) for the engine's MNL over examined slots.

    ``utility`` [S, m] holds the examined items' utilities (NaN for slots not examined);
    ``clicked`` [S] is the clicked slot or -1. P(slot j) = exp(U_j/τ) / (exp(u0/τ) + Σ exp(U/τ)).
    """
    import torch

    util = torch.as_tensor(np.nan_to_num(utility, nan=0.0), dtype=torch.float64)
    mask = torch.as_tensor(np.isnan(utility))
    target = torch.as_tensor(clicked.astype(np.int64) + 1)
    log_tau = torch.zeros((), dtype=torch.float64, requires_grad=True)
    u0 = torch.tensor(float(np.nanmean(utility)), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_tau, u0], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        scores = torch.cat([u0.expand(util.shape[0], 1), util], dim=1) / torch.exp(log_tau)
        scores = scores.masked_fill(torch.cat([torch.zeros_like(mask[:, :1]), mask], 1), -torch.inf)
        return torch.nn.functional.cross_entropy(scores, target)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    with torch.no_grad():
        return ChoiceFit(
            temperature=float(torch.exp(log_tau)),
            no_click_utility=float(u0),
            nll=float(nll()),
            slates=int(utility.shape[0]),
            click_rate=float((clicked >= 0).mean()),
        )


def pseudo_exposures(
    held_user: np.ndarray,
    held_item: np.ndarray,
    train_user: np.ndarray,
    train_item: np.ndarray,
    n_items: int,
    utility_of,
    cfg: CalibrationConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random slates of unseen-in-training items for every user with held-out data;
    the clicked slot is the first item the user consumed in the held-out period.
    ``utility_of(users [S, m], items [S, m])`` is the calibrated utility."""
    rng = np.random.default_rng([cfg.seed, 1])
    users = np.repeat(np.unique(held_user), cfg.slates_per_user)
    slates = rng.integers(0, n_items, (users.shape[0], cfg.slate_size))
    keys = users[:, None] * n_items + slates
    seen = np.isin(keys, np.unique(train_user * n_items + train_item))
    hit = np.isin(keys, np.unique(held_user * n_items + held_item)) & ~seen
    utility = utility_of(np.broadcast_to(users[:, None], slates.shape), slates)
    utility = np.array(utility, np.float64)
    utility[seen] = np.nan  # a consumed item would not be shown: the slot is empty
    clicked = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    return utility, clicked


def fit_rating_thresholds(surplus: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """[4] star cut points on utility surplus U − u0 by quantile matching: the share of
    consumed pairs whose surplus falls below cut k equals the share of ratings of at most k
    stars, so the engine's ratings of these pairs reproduce the real histogram. Only the order
    of utilities is used; their scale says nothing about stars (the MF is fitted on choices)."""
    stars = np.clip(np.floor(np.asarray(ratings, np.float64) + 0.5), 1, 5).astype(np.int64)
    share = np.cumsum(np.bincount(stars - 1, minlength=5))[:4] / stars.size
    return np.quantile(np.asarray(surplus, np.float64), share)
