"""The static taste factorisation of a calibration (agents/users/calibration.py runs it).

* **Taste, topic mixes and quality** come from one model, the engine's own utility:
  ``U(u, i) = taste_u · x_i + quality_i`` with ``x_i = softmax(z_i)``, so every item vector is a
  topic mix on the simplex by construction, exactly what ``Catalog.topics`` holds, and the fitted
  ``taste`` and ``quality`` drop into ``UserState`` and ``Catalog`` unchanged. It is trained in
  torch with an *implicit* objective, a sampled softmax over the catalog (each consumed item
  against uniformly drawn negatives): the engine's users choose items by multinomial logit, so
  the likelihood of "this item was chosen over the others" is the same model family as the
  engine, whereas a rating regression would fit how much a user liked what they chose, which the
  engine never uses to choose. Ratings are not used here. Its L2 weight is chosen on the
  held-out slice (:func:`choose_factors`): how much to shrink depends on how many ratings each
  user and movie has, which differs from one release to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from recarena.agents.users.calibration_config import CalibrationConfig


@dataclass(frozen=True)
class Factors:
    taste: np.ndarray  # [U, T]
    topics: np.ndarray  # [I, T] simplex rows
    quality: np.ndarray  # [I]
    final_loss: float


FACTOR_BATCH = 256
"""Rows per step of the factor fit. Small steps, many of them: one step per epoch of 8192 rows
(the old default) left the taste model no better than popularity at predicting a user's next
movies on the held-out slice of ml-latest-small's training split; 256 rows gave the lowest
held-out log-loss of the weighted user model on both MovieLens sets tried (256, 1024, rows/10)."""

FACTOR_STEPS = 400
"""Steps per epoch beyond which a larger dataset takes larger steps instead (time grows with
steps, and a few hundred per epoch is what the fit needs; ML-1M: about 2,000 rows a step)."""

REG_CANDIDATES = (1e-4, 1e-3, 1e-2)
"""The static taste's L2 weights tried on the validation slice; the first wins ties and a slice
that cannot decide. Why it is chosen, not fixed: at 1e-4 (the value it had) the taste overfits
ml-latest-small's long tail so much that it predicted a user's next movie worse than popularity
alone (held-out log-loss among the user's unseen movies 8.35 nats against 8.23), and users who
cannot tell one such movie from another judge recommenders by how popular their lists are.
How much to shrink depends on how many ratings each user and movie has, which differs between
releases, so each dataset chooses (ml-100k: 1e-3, ml-latest-small: 1e-2)."""

NLL_ROWS = 20_000
"""Validation rows scored per candidate (a seeded sample above that): the score of a row costs
one pass over the catalog, and a 1M-rating release has about 160,000 such rows."""


def factor_batch_size(rows: int) -> int:
    """:data:`FACTOR_BATCH` rows, more on a large dataset (at most :data:`FACTOR_STEPS` steps an
    epoch), fewer on a tiny one (at least ten steps an epoch)."""
    return max(1, min(FACTOR_BATCH, rows // 10), rows // FACTOR_STEPS)


def fit_factors(
    user: np.ndarray, item: np.ndarray, n_users: int, n_items: int, cfg: CalibrationConfig
) -> Factors:
    """Sampled-softmax MF with simplex item mixes (see module docstring). Deterministic: all
    draws come from one seeded torch generator and torch runs in this thread only."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order: the same factors on every machine
    try:
        return _train_factors(torch, user, item, n_users, n_items, cfg)
    finally:
        torch.set_num_threads(threads)


def _train_factors(torch, user, item, n_users: int, n_items: int, cfg: CalibrationConfig):
    gen = torch.Generator().manual_seed(cfg.seed)
    taste = (torch.randn(n_users, cfg.topics, generator=gen) * 0.1).requires_grad_()
    logits = (torch.randn(n_items, cfg.topics, generator=gen) * 0.1).requires_grad_()
    bias = torch.zeros(n_items, requires_grad=True)
    opt = torch.optim.Adam([taste, logits, bias], lr=cfg.lr)
    users_t = torch.as_tensor(user, dtype=torch.long)
    items_t = torch.as_tensor(item, dtype=torch.long)
    n = users_t.shape[0]
    size = cfg.batch_size or factor_batch_size(n)
    reg = REG_CANDIDATES[0] if cfg.reg is None else cfg.reg
    loss_value = float("nan")
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, size):
            batch = order[start : start + size]
            u, pos = users_t[batch], items_t[batch]
            neg = torch.randint(0, n_items, (cfg.negatives,), generator=gen)
            mix = torch.softmax(logits, dim=-1)  # all items at once: [I, T] is small
            t_u = taste[u]
            pos_score = (t_u * mix[pos]).sum(-1) + bias[pos]
            neg_score = t_u @ mix[neg].T + bias[neg]  # negatives shared across the batch
            score = torch.cat([pos_score[:, None], neg_score], dim=1)
            loss = torch.nn.functional.cross_entropy(score, torch.zeros_like(pos))
            loss = loss + reg * ((t_u**2).sum(1).mean() + (bias[pos] ** 2).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * batch.shape[0]
        loss_value = total / n
    with torch.no_grad():
        topics = torch.softmax(logits, dim=-1).numpy().astype(np.float32)
        quality = bias.numpy().astype(np.float32)
        return Factors(taste.detach().numpy().astype(np.float32), topics, quality, loss_value)


def held_out_nll(
    factors: Factors,
    fit_user: np.ndarray,
    fit_item: np.ndarray,
    user: np.ndarray,
    item: np.ndarray,
    seed: int,
) -> float:
    """Mean negative log-likelihood of each (``user``, ``item``) under the static utility's
    softmax over the movies that user had not consumed in the fit rows (NaN: none to score).
    Consumptions a user had already made in the fit rows are not scored."""
    n_users, n_items = factors.taste.shape[0], factors.topics.shape[0]
    if user.size > NLL_ROWS:
        keep = np.sort(np.random.default_rng([seed, 17]).choice(user.size, NLL_ROWS, False))
        user, item = user[keep], item[keep]
    seen = sp.csr_matrix(
        (np.ones(fit_user.size, np.int8), (fit_user, fit_item)), shape=(n_users, n_items)
    )
    chunk = max(1, (1 << 22) // max(n_items, 1))  # ~32 MB of float64 scores at a time
    total, count = 0.0, 0
    for start in range(0, user.size, chunk):
        u, i = user[start : start + chunk], item[start : start + chunk]
        score = factors.taste[u].astype(np.float64) @ factors.topics.T.astype(np.float64)
        score += factors.quality.astype(np.float64)
        score[seen[u].toarray() > 0] = -np.inf
        rows = np.arange(u.size)
        nll = logsumexp(score, axis=1) - score[rows, i]
        finite = np.isfinite(nll)
        total += float(nll[finite].sum())
        count += int(finite.sum())
    return total / count if count else float("nan")


def choose_factors(
    fit_user: np.ndarray,
    fit_item: np.ndarray,
    user: np.ndarray,
    item: np.ndarray,
    n_users: int,
    n_items: int,
    cfg: CalibrationConfig,
) -> tuple[Factors, float, list[dict[str, float]]]:
    """The factor fit on the fit rows, its L2 weight chosen by :func:`held_out_nll` on the
    validation rows (``user``/``item``) when ``cfg.reg`` is None; returns the chosen fit, its
    weight and every candidate's loss (empty when the weight was given)."""
    if cfg.reg is not None:
        return fit_factors(fit_user, fit_item, n_users, n_items, cfg), cfg.reg, []
    fits: list[Factors] = []
    losses: list[dict[str, float]] = []
    for reg in REG_CANDIDATES:
        fits.append(fit_factors(fit_user, fit_item, n_users, n_items, replace(cfg, reg=reg)))
        loss = held_out_nll(fits[-1], fit_user, fit_item, user, item, cfg.seed)
        losses.append({"reg": reg, "log_loss": loss})
    keys = [row["log_loss"] if math.isfinite(row["log_loss"]) else math.inf for row in losses]
    best = keys.index(min(keys))  # the first of equals; none finite: the first candidate
    return fits[best], REG_CANDIDATES[best], losses


def fold(factors: Factors, features: Any, weights: dict[str, float]) -> Factors:
    """Static terms of the user model folded into taste and quality, so the engine's arrays
    keep their meaning: taste·x + quality is then the weighted static utility."""
    w_mf = weights["mf"]
    quality = (
        w_mf * factors.quality
        + weights["log_pop"] * features.log_pop
        + weights["log_recent"] * features.log_recent
    )
    return Factors(
        (w_mf * factors.taste).astype(np.float32),
        factors.topics,
        quality.astype(np.float32),
        factors.final_loss,
    )
