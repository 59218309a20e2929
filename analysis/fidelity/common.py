"""Fidelity metrics: the pure, hand-checkable pieces of ``recarena fidelity``.

Three checks compare a calibrated simulation with the real data it was calibrated on
(analysis/fidelity/checks.py runs them, analysis/fidelity/report.py writes the report):

1. **taste discrimination** (Agent4Rec's 1:m protocol) is a binary classification of items
   into "would watch" / "would not", scored with :func:`classification_scores`;
2. **rating distribution**: total-variation distance ``TV(p, q) = ½ Σ_r |p_r − q_r|`` between
   rating histograms over the star levels 1..5 (0 = identical, 1 = disjoint). TV rather than KL
   because it is bounded, symmetric and defined when one side has an empty level (SUBER reports
   it for the same reason);
3. **ranking agreement**: Kendall's tau (tau-b, ties allowed) between two orderings of the
   same recommenders.

Every figure gets a percentile-bootstrap 95 % CI over *users*: the user is the unit that was
sampled (by MovieLens), and every metric here is a ratio of per-user sums, so a bootstrap
replicate is one matrix product of resampling counts with the per-user sums
(:func:`user_bootstrap`), never a per-replicate Python loop over users.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import ConstantInputWarning, kendalltau, spearmanr

from recarena.simulator.data.datasets import InteractionData

LEVELS = np.arange(1, 6)


# ----------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile-bootstrap interval (None bounds: too few users)."""

    value: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def format(self, digits: int = 3) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, n]`` how often each of ``n`` users is drawn in each bootstrap replicate."""
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def user_bootstrap(
    per_user: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
) -> Estimate:
    """Point estimate and CI of ``statistic`` of per-user sums.

    ``per_user`` is ``[U, ...]`` (anything additive over users: counts, histograms, sums of a
    score); ``statistic`` maps the summed array ``[R, ...]`` to ``[R]`` values. The point
    estimate is the statistic of the plain sum; replicates resample users with replacement.
    A replicate whose statistic is not finite (a ratio whose draw holds only users with a zero
    denominator, e.g. no simulated views) is dropped, silently: with few users it is expected.
    """
    per_user = np.asarray(per_user, np.float64)
    n = per_user.shape[0]
    if n == 0:  # no user to measure (a small sample where no simulated user clicked): n/a, not
        # a figure (the statistic of zeros is 0, 'the same'), and not numpy's reshape error
        return Estimate(float("nan"), None, None)
    flat = per_user.reshape(n, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(statistic(flat.sum(axis=0).reshape((1,) + per_user.shape[1:]))[0])
    if n < 2:
        return Estimate(value, None, None)
    sums = resample_counts(n, n_boot, rng) @ flat
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = np.asarray(statistic(sums.reshape((n_boot,) + per_user.shape[1:])), np.float64)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return Estimate(value, None, None)
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high))


# ------------------------------------------------------------------- 1. taste discrimination
CLASSIFICATION = ("accuracy", "precision", "recall", "f1")


def confusion_counts(label: np.ndarray, predicted: np.ndarray, group: np.ndarray, n: int):
    """``[n, 4]`` per-group counts of (true positive, false positive, false negative, true
    negative) for boolean ``label`` (really liked) and ``predicted`` (simulated "would watch")."""
    label, predicted = np.asarray(label, bool), np.asarray(predicted, bool)
    cells = np.stack(
        [label & predicted, ~label & predicted, label & ~predicted, ~label & ~predicted], axis=1
    )
    return np.stack([np.bincount(group, weights=c, minlength=n) for c in cells.T], axis=1)


def classification_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall, F1 from ``[..., 4]`` (tp, fp, fn, tn) counts.

    Pooled over users (micro-averaged), as Agent4Rec reports them. Precision is NaN when nothing
    was predicted positive; F1 is 0 when precision and recall are both 0.
    """
    counts = np.asarray(counts, np.float64)
    tp, fp, fn, tn = (counts[..., i] for i in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (tp + tn) / (tp + fp + fn + tn)
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def classification_estimates(
    counts: np.ndarray, rng: np.random.Generator, n_boot: int = 1000
) -> dict[str, Estimate]:
    """Every classification score of per-user ``[U, 4]`` counts, with user-bootstrap CIs."""

    def score(name: str) -> Callable[[np.ndarray], np.ndarray]:
        return lambda sums: classification_scores(sums)[name]

    return {name: user_bootstrap(counts, score(name), rng, n_boot) for name in CLASSIFICATION}


# ---------------------------------------------------------------------- 2. rating distribution
def star_levels(ratings: np.ndarray) -> np.ndarray:
    """Ratings as integer stars 1..5; half stars round up (MovieLens 0.5..5)."""
    return np.clip(np.floor(np.asarray(ratings, np.float64) + 0.5), 1, 5).astype(np.int64)


def rating_histogram(ratings: np.ndarray) -> np.ndarray:
    """[5] share of ratings at each star level; half stars round up (MovieLens 0.5..5)."""
    ratings = np.asarray(ratings, np.float64)
    ratings = ratings[~np.isnan(ratings)]
    if ratings.size == 0:
        raise ValueError("no ratings to compare")
    counts = np.bincount(star_levels(ratings) - 1, minlength=5).astype(np.float64)
    return counts / counts.sum()


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def per_user_histograms(user: np.ndarray, ratings: np.ndarray, n_users: int) -> np.ndarray:
    """``[U, 5]`` counts of each star level per user (NaN ratings skipped)."""
    ratings = np.asarray(ratings, np.float64)
    keep = ~np.isnan(ratings)
    cell = np.asarray(user)[keep] * 5 + star_levels(ratings[keep]) - 1
    return np.bincount(cell, minlength=n_users * 5).reshape(n_users, 5).astype(np.float64)


def tv_estimate(
    simulated: np.ndarray, real: np.ndarray, rng: np.random.Generator, n_boot: int = 1000
) -> Estimate:
    """TV distance between pooled histograms of per-user ``[U, 5]`` counts, users resampled
    jointly (the same users' simulated and real ratings go into a replicate)."""

    def statistic(sums: np.ndarray) -> np.ndarray:
        sim, truth = sums[:, 0], sums[:, 1]
        sim = sim / np.maximum(sim.sum(axis=1, keepdims=True), 1e-12)
        truth = truth / np.maximum(truth.sum(axis=1, keepdims=True), 1e-12)
        return 0.5 * np.abs(sim - truth).sum(axis=1)

    return user_bootstrap(np.stack([simulated, real], axis=1), statistic, rng, n_boot)


def rating_tv(real: InteractionData, interactions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per arm of a run: the simulated rating histogram, the real one and their TV distance.

    ``interactions`` is ``recarena.analysis.load(run_dir).interactions`` (columns ``arm``,
    ``rating``);
    replicates are pooled, since the question is about the user model, not the arms' noise.
    """
    if real.rating is None:
        raise ValueError(f"dataset {real.name!r} has no ratings")
    frame = interactions.lazy().select("arm", "rating").collect()
    truth = rating_histogram(real.rating[real.consumed()])
    rows = []
    for arm in frame["arm"].unique(maintain_order=True).to_list():
        sim = rating_histogram(frame.filter(pl.col("arm") == arm)["rating"].to_numpy())
        rows.append(
            {
                "arm": arm,
                "tv_distance": tv_distance(sim, truth),
                "simulated": sim.tolist(),
                "real": truth.tolist(),
            }
        )
    return pl.DataFrame(rows)


# ------------------------------------------------------------------------ 3. ranking agreement
def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b between two score vectors over the same recommenders (NaN if constant)."""
    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation between two score vectors (NaN if one is constant: two arms
    with the same simulated CTR, which scipy's ConstantInputWarning printed as two raw lines on
    the stderr of ``recarena fidelity``; the report shows the NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


RANK_CORRELATIONS = {"kendall": kendall_tau, "spearman": spearman_rho}


def tau_estimate(
    real: np.ndarray,
    sim_clicks: np.ndarray,
    sim_views: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = 1000,
    method: str = "kendall",
) -> Estimate:
    """Kendall tau (or Spearman rho) between recommenders ranked by real accuracy and by
    simulated CTR.

    ``real`` is ``[U, A]`` per-user accuracy (e.g. NDCG@10) of each of A recommenders;
    ``sim_clicks`` / ``sim_views`` are ``[U, A]`` per-user clicks and impressions of each arm in
    the simulation. A replicate resamples users once for both sides: real accuracy is the mean
    over drawn users, simulated CTR their pooled clicks over pooled impressions.
    """
    n_users = real.shape[0]
    stacked = np.stack([real, sim_clicks, sim_views, np.ones_like(real)], axis=1)  # [U, 4, A]

    def statistic(sums: np.ndarray) -> np.ndarray:
        accuracy = sums[:, 0] / sums[:, 3]
        with np.errstate(invalid="ignore", divide="ignore"):
            ctr = sums[:, 1] / sums[:, 2]
        correlation = RANK_CORRELATIONS[method]
        return np.array([correlation(a, c) for a, c in zip(accuracy, ctr, strict=True)])

    del n_users
    return user_bootstrap(stacked, statistic, rng, n_boot)


# -------------------------------------------------------------------------- ranking accuracy
def ndcg_recall_at_k(recommended: np.ndarray, relevant: list[np.ndarray], k: int):
    """Per-user NDCG@k and Recall@k of ``recommended`` [U, ≥k] item lists against each user's
    ``relevant`` items (binary relevance; the ideal DCG has min(k, |relevant|) hits; recall is
    hits / |relevant|, as RecBole computes it)."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg = np.zeros(len(relevant))
    recall = np.zeros(len(relevant))
    for u, rel in enumerate(relevant):  # fidelity evaluation, once per user: not a hot path
        rel = np.asarray(rel)
        if rel.size == 0:
            continue
        hit = np.isin(recommended[u, :k], rel)
        ideal = discount[: min(k, rel.size)].sum()
        ndcg[u] = (hit * discount).sum() / ideal
        recall[u] = hit.sum() / rel.size
    return ndcg, recall


FIDELITY_OPTIONS = {
    "llm.base_url": "--llm-base-url",
    "llm.model": "--llm-model",
    "llm.api_key_env": "--llm-api-key-env",
}
"""The panel's scenario fields that an endpoint's refusal names, as ``recarena fidelity``'s
user wrote them: the panel's scenario is built from these options, and has no file to edit."""


def renamed_options(line: str) -> str:
    """``line`` with every field of :data:`FIDELITY_OPTIONS` named by its option."""
    for field, option in FIDELITY_OPTIONS.items():
        line = line.replace(field, option)
    return line
