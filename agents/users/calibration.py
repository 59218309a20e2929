"""Calibrate a simulated population to real interaction data (MovieLens and friends).

What is fitted, and why this way:

* **Split.** Each user's interactions are sorted by time and the last ``holdout`` share (20 %,
  at least one) is held out. A per-user temporal split keeps every user in both halves (a
  global time cut would leave most ML-100K users with no held-out data, since they rated in
  one sitting) while still never training on a user's future.
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
* **Rating cut points.** The engine's fixed rating rule (3 stars at the no-click utility, 1.5
  stars per unit above it) assumes a utility scale the implicit MF does not have: on ML-100K it
  rated every consumed movie 1 star (rating TV distance 0.91). When the data has ratings, four
  cut points on the surplus ``U − u0`` are fitted on the training pairs by quantile matching
  (:func:`fit_rating_thresholds`) and stored as ``rating_thresholds``; a calibrated scenario
  then rates through them. Generated populations keep the fixed rule.
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
* **The calibrated user model** (agents/users/sequential_interest.py) adds short-term
  interest (item-to-item transitions from the last few items), fitted popularity, recency and
  conformity terms and an ordinal rating model. Their weights, the temperature, the no-click
  utility, the "would you watch this?" rule (``watch_rule``) and the rating model are all
  fitted on the held-out slice above, with utilities computed from the rest; the components
  are then refitted on every row (``refit``). Rating cut points are likewise fitted on the
  held-out slice's utilities, not in sample.
* **Activity.** Interactions are split into sessions at gaps longer than
  ``session_gap_seconds``; a user observed from their first session for ``E`` days with ``n``
  sessions gets rate ``(n − 1 + α) / (E + β)`` sessions/day: the Poisson rate after the first
  visit (the first visit only marks when the user joined), shrunk by a Gamma(α, β) prior with
  ``β = prior_days`` and the pooled rate as its mean, so a user seen once is not given a rate
  of zero or of one a day. Session length (consumptions per session) is kept per user.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from scipy.special import logsumexp

from recarena.agents.users.sequential_interest import (
    InterestConfig,
    SequentialInterest,
    choose_memory,
    fit_features,
    fit_ordinal,
    fit_weights,
    genre_matrix,
    last_items,
)
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.publish import discard, new_token, publish, staging_name
from recarena.simulator.data.datasets import InteractionData

DAY = 86_400.0
SEED_MAX = 2**64 - 1
"""The largest calibration seed: the factor fit seeds a torch generator, which holds 64 bits."""


@dataclass(frozen=True)
class CalibrationConfig:
    topics: int = 16
    holdout: float = 0.2
    epochs: int = 10
    lr: float = 0.05
    reg: float | None = None
    """L2 weight on the static taste (and the chosen movies' quality) in the factor fit; None =
    chosen among :data:`REG_CANDIDATES` by held-out log-loss (:func:`choose_factors`)."""
    negatives: int = 256
    batch_size: int | None = None
    """Rows per optimiser step of the factor fit; None = :func:`factor_batch_size`."""
    slate_size: int = 10
    slates_per_user: int = 100
    session_gap_seconds: float = 1800.0
    prior_days: float = 7.0
    seed: int = 0
    refit: bool = True
    """Refit the user model's components on all rows after its weights were chosen."""
    interest: InterestConfig | None = field(default_factory=InterestConfig)
    """The calibrated user model's extra terms (agents/users/sequential_interest.py);
    None = taste and quality only (the model before sequential interest was added)."""


@dataclass
class CalibratedPopulation:
    """Everything the engine needs to run on a calibrated population, plus its provenance."""

    user_id: np.ndarray  # [U] str: the dataset's ids, in the engine's user order
    taste: np.ndarray  # [U, T] float32
    activity: np.ndarray  # [U] float64 sessions per day
    session_length: np.ndarray  # [U] float64 mean consumptions per session
    item_id: np.ndarray  # [I] str
    topics: np.ndarray  # [I, T] float32, rows on the simplex
    quality: np.ndarray  # [I] float32
    creator: np.ndarray  # [I] int32: index into creator_names (first genre)
    creator_names: list[str]
    title: list[str]
    genres: list[list[str]]
    scalars: dict[str, Any] = field(default_factory=dict)
    interest: SequentialInterest | None = None
    """Short-term interest, conformity and ordinal ratings; None = the plain rule user."""
    persona: list[str] | None = None
    """[U] one line of demographics per user when the dataset has them (ML-1M users.dat)."""

    @property
    def n_users(self) -> int:
        return int(self.taste.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.topics.shape[0])

    @property
    def n_topics(self) -> int:
        return int(self.topics.shape[1])

    def non_finite(self) -> str | None:
        """The first fitted quantity the engine would choke on that is NaN or infinite (a
        visit rate of NaN, a temperature of NaN), named; None when every one is finite."""
        scalars = {name: self.scalars.get(name) for name in ("temperature", "no_click_utility")}
        for name, value in scalars.items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                return f"{name} {value}"
        cuts = self.scalars.get("rating_thresholds")
        if cuts is not None and not all(isinstance(c, int | float) for c in cuts):
            return f"rating_thresholds {cuts}"
        arrays = {
            "rating_thresholds": np.asarray(cuts if cuts is not None else [], np.float64),
            "activity": self.activity,
            "session_length": self.session_length,
            "taste": self.taste,
            "topics": self.topics,
            "quality": self.quality,
        }
        for name, array in arrays.items():
            bad = ~np.isfinite(array)
            if bad.any():
                return f"{name} {array[bad].ravel()[0]} ({int(bad.sum())} value(s))"
        return None

    # ---------------------------------------------------------------- files
    @staticmethod
    def paths(path: str | Path) -> tuple[Path, Path, Path]:
        """Users file, items file beside it (``<stem>.items.parquet``) and the JSON sidecar."""
        path = Path(path)
        return path, path.with_suffix(".items.parquet"), path.with_suffix(".json")

    @staticmethod
    def interest_path(path: str | Path) -> Path:
        return Path(path).with_suffix(".interest.npz")

    def save(self, path: str | Path) -> None:
        """Write the users, items, JSON and interest files, then publish them together
        (simulator/core/publish.py): a stop or an error while writing leaves the population that
        was there as it was. Was: each written in place, so a stop while the items file was
        written left this fit's users beside a truncated or older items file."""
        users_path, items_path, json_path = self.paths(path)
        interest_path = self.interest_path(path)
        users_path.parent.mkdir(parents=True, exist_ok=True)
        token = new_token()
        new_users, new_items, new_json, new_interest = (
            staging_name(target, token)
            for target in (users_path, items_path, json_path, interest_path)
        )
        staged: dict[Path, Path | None] = {
            users_path: new_users,
            items_path: new_items,
            json_path: new_json,
            interest_path: new_interest if self.interest is not None else None,
        }
        try:
            meta = {b"recarena.calibration": json.dumps(self.scalars).encode()}
            columns = {
                "user_id": pa.array(self.user_id.astype(str)),
                "taste": pa.array(list(self.taste), pa.list_(pa.float32())),
                "activity": pa.array(self.activity, pa.float64()),
                "session_length": pa.array(self.session_length, pa.float64()),
            }
            if self.persona is not None:
                columns["persona"] = pa.array(self.persona, pa.string())
            users = pa.table(columns).replace_schema_metadata(meta)
            items = pa.table(
                {
                    "item_id": pa.array(self.item_id.astype(str)),
                    "title": pa.array(self.title, pa.string()),
                    "genres": pa.array(self.genres, pa.list_(pa.string())),
                    "topics": pa.array(list(self.topics), pa.list_(pa.float32())),
                    "quality": pa.array(self.quality, pa.float32()),
                    "creator": pa.array(self.creator, pa.int32()),
                    "creator_name": pa.array([self.creator_names[c] for c in self.creator]),
                }
            ).replace_schema_metadata(meta)
            pq.write_table(users, new_users)
            pq.write_table(items, new_items)
            if self.interest is not None:
                self.interest.save(new_interest)
            new_json.write_text(json.dumps(self.scalars, indent=2) + "\n", encoding="utf-8")
            publish(staged, str(path))  # an old interest file goes when this fit has none
        finally:
            discard(staged)

    @classmethod
    def load(cls, path: str | Path) -> CalibratedPopulation:
        users_path, items_path, _ = cls.paths(path)
        for p in (users_path, items_path):
            if not p.exists():
                raise RecarenaError(
                    f"calibrated population file not found: {p} (make it with "
                    "`recarena calibrate DATASET -o FILE`)"
                )
        try:
            users = pq.read_table(users_path)
            items = pq.read_table(items_path)
            scalars = json.loads(users.schema.metadata[b"recarena.calibration"])
        except (pa.ArrowException, OSError, KeyError, TypeError) as exc:
            raise RecarenaError(f"{users_path}: not a calibrated population ({exc})") from None
        creator = items["creator"].to_numpy().astype(np.int32)
        names = items["creator_name"].to_pylist()
        creator_names = [""] * (int(creator.max()) + 1 if creator.size else 0)
        for c, name in zip(creator.tolist(), names, strict=True):
            creator_names[c] = name
        interest_path = cls.interest_path(path)
        interest = (
            SequentialInterest.load(interest_path, scalars["interest"])
            if "interest" in scalars and interest_path.exists()
            else None
        )
        population = cls(
            user_id=np.asarray(users["user_id"].to_pylist()),
            taste=np.stack(users["taste"].to_numpy(zero_copy_only=False)).astype(np.float32),
            activity=users["activity"].to_numpy(),
            session_length=users["session_length"].to_numpy(),
            item_id=np.asarray(items["item_id"].to_pylist()),
            topics=np.stack(items["topics"].to_numpy(zero_copy_only=False)).astype(np.float32),
            quality=items["quality"].to_numpy().astype(np.float32),
            creator=creator,
            creator_names=creator_names,
            title=items["title"].to_pylist(),
            genres=items["genres"].to_pylist(),
            scalars=scalars,
            interest=interest,
            persona=users["persona"].to_pylist() if "persona" in users.column_names else None,
        )
        problem = population.non_finite()
        if problem is not None:
            raise RecarenaError(
                f"{users_path}: fitted {problem} is not a finite number; calibrate it again "
                "from a larger dataset"
            )
        return population


# ------------------------------------------------------------------------------ pieces
@dataclass(frozen=True)
class Indexed:
    """Interactions on dense indices, sorted by (user, time)."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    timestamp: np.ndarray  # float64
    consumed: np.ndarray  # bool
    user_ids: np.ndarray
    item_ids: np.ndarray


def index(data: InteractionData) -> Indexed:
    item_universe = data.item
    if data.items.height:
        table_ids = data.items["item"].to_numpy()
        if table_ids.dtype.kind == data.item.dtype.kind:
            item_universe = np.concatenate([data.item, table_ids])
    user_ids, user = np.unique(data.user, return_inverse=True)
    item_ids = np.unique(item_universe)
    item = np.searchsorted(item_ids, data.item)
    order = np.lexsort((data.timestamp, user))
    return Indexed(
        user=user[order].astype(np.int64),
        item=item[order].astype(np.int64),
        timestamp=data.timestamp[order].astype(np.float64),
        consumed=data.consumed()[order],
        user_ids=user_ids,
        item_ids=item_ids,
    )


def temporal_split(user: np.ndarray, holdout: float) -> np.ndarray:
    """Mask of held-out rows: the last ``holdout`` share of each user's rows (rows sorted by
    user then time); users with one row keep it in training."""
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(user.shape[0]) - starts[user]
    n_test = np.where(counts > 1, np.maximum(1, np.floor(holdout * counts)), 0).astype(np.int64)
    return rank >= (counts - n_test)[user]


@dataclass(frozen=True)
class Activity:
    sessions: np.ndarray  # [U] sessions observed
    rate: np.ndarray  # [U] sessions per day (shrunk Poisson rate)
    session_length: np.ndarray  # [U] mean consumptions per session
    pooled_rate: float


def fit_activity(
    user: np.ndarray,
    timestamp: np.ndarray,
    consumed: np.ndarray,
    n_users: int,
    gap_seconds: float,
    prior_days: float,
) -> Activity:
    """Sessionise (rows sorted by user, time) and estimate each user's visit rate."""
    new_user = np.concatenate([[True], user[1:] != user[:-1]])
    gap = np.concatenate([[np.inf], np.diff(timestamp)])
    new_session = new_user | (gap > gap_seconds)
    session_of_row = np.cumsum(new_session) - 1
    sessions = np.bincount(user[new_session], minlength=n_users).astype(np.float64)
    first = np.full(n_users, np.inf)
    np.minimum.at(first, user, timestamp)
    end = float(timestamp.max())
    exposure = np.where(sessions > 0, (end - first) / DAY, 0.0)
    events = np.maximum(sessions - 1, 0)
    pooled = float(events.sum() / max(exposure.sum(), 1e-9))
    alpha, beta = pooled * prior_days, prior_days
    rate = (events + alpha) / (exposure + beta)
    clicks_per_session = np.bincount(session_of_row, weights=consumed.astype(np.float64))
    session_user = user[new_session]
    length = np.bincount(session_user, weights=clicks_per_session, minlength=n_users)
    length = np.divide(length, sessions, out=np.zeros(n_users), where=sessions > 0)
    return Activity(sessions=sessions, rate=rate, session_length=length, pooled_rate=pooled)


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


def creators_from_genres(genres: list[list[str]]) -> tuple[np.ndarray, list[str]]:
    """Creator of an item = its first listed genre (items without genres share '(none)').

    MovieLens has no studio field; the first genre groups items the way the synthetic catalog's
    creators do (one main topic each), so creator-fairness metrics stay meaningful."""
    first = [g[0] if g else "(none)" for g in genres]
    names = sorted(set(first))
    lookup = {name: c for c, name in enumerate(names)}
    return np.array([lookup[f] for f in first], np.int32), names


MIN_HELD_OUT = 5
"""Fewest consumptions in each of the training and held-out slices a calibration accepts."""


MIN_USERS = 2
"""Fewest users with held-out consumptions a calibration accepts: popularity, conformity and
the choice weights are fitted across users, and one user's own history is all they would see."""


def check_interactions(
    data: InteractionData, holdout: float = CalibrationConfig.holdout, visits: bool = True
) -> None:
    """What calibration cannot fit, found before fitting (``recarena validate`` runs it on a
    ``population.dataset`` too): no rows, a timestamp that is not finite, a consumption's
    rating off the star scale, too few rows for the training and held-out slices, no user
    whose interactions have two different times (the time split would be file order), fewer
    than :data:`MIN_USERS` users in the held-out slice and, with ``visits``, no user who came
    back after a session (every visit rate would be 0: a simulation with no visits; fidelity
    sets its own visit rate and passes False). RecarenaError names the dataset and what is
    missing."""
    if data.n_interactions == 0:
        raise RecarenaError(f"dataset {data.name!r} has no interactions")
    infinite = np.flatnonzero(~np.isfinite(data.timestamp))
    if infinite.size:  # every loader's timestamps (a CSV may hold 'inf' or 'nan')
        row = int(infinite[0])
        raise RecarenaError(
            f"dataset {data.name!r}: timestamp {data.timestamp[row]} of interaction "
            f"{row + 1} is not a finite number"
        )
    if data.rating is not None:  # stars are clipped to 1..5: a 1-10 scale would be mangled
        rating = data.rating.astype(np.float64)
        outside = ~np.isnan(rating) & ((rating < 0.5) | (rating > 5)) & data.consumed()
        outside = np.flatnonzero(outside)  # an exposure's rating (often 0) is never read
        if outside.size:
            row = int(outside[0])
            raise RecarenaError(
                f"dataset {data.name!r}: rating {rating[row]:g} of interaction {row + 1} is "
                "outside the 0.5-5 star scale the calibration fits (rescale the ratings, or "
                "leave the rating column out)"
            )
    ix = index(data)
    held = temporal_split(ix.user[ix.consumed], holdout)
    if held.sum() < MIN_HELD_OUT or (~held).sum() < MIN_HELD_OUT:
        # every fitted quantity (temperature, no-click utility, cut points) is fitted on a
        # held-out slice; with a handful of rows it would be NaN, not an estimate
        raise RecarenaError(
            f"dataset {data.name!r} is too small to calibrate: {ix.user_ids.shape[0]} users, "
            f"{ix.item_ids.shape[0]} items, {int(ix.consumed.sum())} consumptions, "
            f"{int(held.sum())} of them held out; need at least {MIN_HELD_OUT} in each of the "
            "training and held-out slices"
        )
    cu, ct = ix.user[ix.consumed], ix.timestamp[ix.consumed]
    if not ((cu[1:] == cu[:-1]) & (ct[1:] != ct[:-1])).any():  # rows sorted by (user, time)
        raise RecarenaError(
            f"dataset {data.name!r} cannot be calibrated: no user's interactions have two "
            f"different timestamps ({ix.user_ids.shape[0]} users), so the time split cannot tell "
            "which came last; give each interaction the time it happened"
        )
    held_users = np.unique(cu[held])
    if held_users.shape[0] < MIN_USERS:
        raise RecarenaError(
            f"dataset {data.name!r} cannot be calibrated: {held_users.shape[0]} user with "
            f"held-out interactions (of {ix.user_ids.shape[0]}); need at least {MIN_USERS} "
            "(popularity, conformity and the choice model are fitted across users)"
        )
    n_items = ix.item_ids.shape[0]
    pairs = np.unique(cu * n_items + ix.item[ix.consumed])
    chosen = np.bincount(pairs // n_items, minlength=ix.user_ids.shape[0])
    if not (chosen[held_users] < n_items).any():
        raise RecarenaError(
            f"dataset {data.name!r} cannot be calibrated: each of its {held_users.shape[0]} "
            f"users with held-out interactions consumed all {n_items} items; the choice and "
            "watch models contrast what users chose with items they never did"
        )
    if visits:
        gap, n_users = CalibrationConfig.session_gap_seconds, ix.user_ids.shape[0]
        sessions = fit_activity(ix.user, ix.timestamp, ix.consumed, n_users, gap, 1.0).sessions
        if sessions.sum() <= n_users:  # one session per user: nobody came back
            raise RecarenaError(
                f"dataset {data.name!r} cannot be calibrated: no user came back after a gap of "
                f"more than {gap / 60:g} minutes (each of its {n_users} users has "
                "one session), so every visit rate would be 0 and a simulation would have no "
                "visits; the timestamps must span the users' visits (seconds since 1970)"
            )


def calibrate(
    data: InteractionData, cfg: CalibrationConfig | None = None, visits: bool = True
) -> CalibratedPopulation:
    """Fit a population to ``data`` (see the module docstring for every step). ``visits``:
    refuse data from which no visit rate can be fitted (see :func:`check_interactions`)."""
    cfg = cfg or CalibrationConfig()
    if not 0 <= cfg.seed <= SEED_MAX:  # torch's generator: 'Overflow when unpacking long long'
        raise RecarenaError(f"seed {cfg.seed}: a calibration's seed is 0 to 2^64-1")
    check_interactions(data, cfg.holdout, visits)
    ix = index(data)
    n_users, n_items = ix.user_ids.shape[0], ix.item_ids.shape[0]
    activity = fit_activity(
        ix.user, ix.timestamp, ix.consumed, n_users, cfg.session_gap_seconds, cfg.prior_days
    )
    cu, ci = ix.user[ix.consumed], ix.item[ix.consumed]
    ct = ix.timestamp[ix.consumed]
    held = temporal_split(cu, cfg.holdout)
    factors, reg, reg_losses = choose_factors(
        cu[~held], ci[~held], cu[held], ci[held], n_users, n_items, cfg
    )
    cfg = replace(cfg, reg=reg)  # the refit below and the stored config use the chosen weight
    rating_all = None
    if data.rating is not None:
        _, user_of_row = np.unique(data.user, return_inverse=True)
        rating_all = data.rating[np.lexsort((data.timestamp, user_of_row))][ix.consumed]
        rating_all = rating_all.astype(np.float64)

    def mf_utility(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return (factors.taste[u] * factors.topics[i]).sum(axis=-1) + factors.quality[i]

    # item text, aligned with the dense item index
    title = [str(i) for i in ix.item_ids]
    genres: list[list[str]] = [[] for _ in range(n_items)]
    year = np.full(n_items, np.nan, np.float32)
    if data.items.height:
        table = data.items.unique(subset="item", keep="first")
        ids = table["item"].to_numpy()
        if ids.dtype.kind == ix.item_ids.dtype.kind:
            pos = np.searchsorted(ix.item_ids, ids)
            inside = pos < n_items
            inside[inside] = ix.item_ids[pos[inside]] == ids[inside]
            for p, t, g, ok in zip(
                pos.tolist(),
                table["title"].to_list(),
                table["genres"].to_list(),
                inside.tolist(),
                strict=True,
            ):
                if ok:
                    title[p] = t if t is not None else title[p]
                    genres[p] = list(g or [])
            if "year" in table.columns:
                dated = table["year"].cast(pl.Float32).fill_null(np.nan).to_numpy()
                year[pos[inside]] = dated[inside]
    item_genres = genre_matrix(genres)
    interest = None
    weights: dict[str, float] = {}
    memory_losses: list[dict[str, float]] = []
    if cfg.interest is not None:  # the calibrated user model's extra terms, weighted on `held`
        features = fit_features(
            cu[~held],
            ci[~held],
            ct[~held],
            None if rating_all is None else rating_all[~held],
            n_users,
            n_items,
            mf_utility,
            cfg.interest,
            item_genres,
            year if np.isfinite(year).any() else None,
        )
        seen = np.unique(cu * n_items + ci)
        features, memory_losses = choose_memory(
            features, cu[~held], ci[~held], n_users, cu[held], ci[held], seen, n_items, cfg.seed
        )
        chosen = features.interest.config  # the memory length the held-out slice chose
        weights = fit_weights(features, cu[held], ci[held], seen, n_items, chosen, cfg.seed)
        interest = replace(features.interest, weights=weights)
        factors = fold(factors, features, weights)

    def static_utility(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """The static part (taste · topic mix + quality) of pairs ``u``/``i``."""
        return (factors.taste[u] * factors.topics[i]).sum(axis=-1) + factors.quality[i]

    def full_utility(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Utility of pairs ``u``/``i`` of equal shape [S, m] (or [N]) with the fitting-time
        recent items (what the user had consumed before the held-out slice)."""
        out = static_utility(u, i)
        if interest is not None:
            flat_u, flat_i = u.reshape(-1), i.reshape(-1, 1)
            out = out + interest.dynamic_utility(flat_u, flat_i).reshape(out.shape)
        return out.astype(np.float64)

    utility, clicked = pseudo_exposures(
        cu[held], ci[held], cu[~held], ci[~held], n_items, full_utility, cfg
    )
    if not np.isfinite(utility).any():  # fit_choice would fit NaN (and warn) on nothing
        raise RecarenaError(
            f"dataset {data.name!r} cannot be calibrated: no pseudo-exposure slate has an item "
            f"its user had not consumed in training ({n_users} users, {n_items} items); it "
            "needs more users and items"
        )
    choice = fit_choice(utility, clicked)
    held_surplus = full_utility(cu[held], ci[held]) - choice.no_click_utility
    watch = fit_watch_rule(
        static_utility,
        interest,
        cu[held],
        ci[held],
        None if rating_all is None else rating_all[held],
        np.unique(cu * n_items + ci),
        n_items,
        choice.no_click_utility,
        cfg.seed,
    )

    creator, creator_names = creators_from_genres(genres)
    thresholds = None
    ordinal: dict[str, Any] = {}
    if rating_all is not None:  # ratings: cut points and ordinal model on HELD-OUT utilities
        rated = ~np.isnan(rating_all[held])
        if rated.any():
            thresholds = fit_rating_thresholds(
                held_surplus[rated], rating_all[held][rated]
            ).tolist()
            if interest is not None:
                # ratings weigh the static part of the surplus only: short-term interest and
                # conformity say what is watched next, not how much it is liked, and a
                # simulated user steered by them to a strong recommender's list would
                # otherwise rate it up (in-simulation TV 0.112 against 0.049 on ml-100k)
                held_dynamic = interest.dynamic_utility(cu[held], ci[held][:, None])[:, 0]
                ordinal = fit_ordinal(
                    held_surplus[rated] - held_dynamic[rated],
                    interest.rating_bias[cu[held][rated]],
                    rating_all[held][rated],
                )
                ordinal["dynamic_slope"] = 0.0
    if interest is not None and cfg.interest is not None and cfg.refit:
        # weights, temperature, no-click utility, watch rule and rating model were fitted out
        # of sample above; the components they weigh are now refitted on every training row,
        # as a validated model is retrained on all its data before it is deployed
        raw = fit_factors(cu, ci, n_users, n_items, cfg)
        full = fit_features(
            cu,
            ci,
            ct,
            rating_all,
            n_users,
            n_items,
            None,
            interest.config,
            item_genres,
            year if np.isfinite(year).any() else None,
        )
        factors = fold(raw, full, weights)
        interest = replace(full.interest, weights=weights)
    if interest is not None:
        # deployed state: each user's last consumptions over the whole training data
        recent = last_items(cu, ci, n_users, interest.config.recent_items)
        interest = replace(interest, recent=recent, ordinal=ordinal)
    persona = None
    if data.users is not None and data.users.height:
        lookup = dict(
            zip(
                data.users["user"].cast(pl.String).to_list(),
                data.users["persona"].to_list(),
                strict=True,
            )
        )
        persona = [lookup.get(str(u), "") for u in ix.user_ids.tolist()]
    scalars = {
        "dataset": data.name,
        "licence": data.licence,
        "temperature": choice.temperature,
        "no_click_utility": choice.no_click_utility,
        **({"rating_thresholds": thresholds} if thresholds is not None else {}),
        **({"interest": interest.scalars()} if interest is not None else {}),
        **({"memory_choice": memory_losses} if memory_losses else {}),
        **({"taste_regularisation": reg_losses} if reg_losses else {}),
        "watch_rule": watch,
        "pseudo_exposure": {
            "slates": choice.slates,
            "slate_size": cfg.slate_size,
            "click_rate": choice.click_rate,
            "nll_per_slate": choice.nll,
        },
        "pooled_sessions_per_day": activity.pooled_rate,
        "mean_activity": float(activity.rate.mean()),
        "mean_session_length": float(
            activity.session_length[activity.sessions > 0].mean() if n_users else 0.0
        ),
        "train_interactions": int((~held).sum()),
        "heldout_interactions": int(held.sum()),
        "mf_final_loss": factors.final_loss,
        "factor_batch_size": cfg.batch_size or factor_batch_size(int((~held).sum())),
        "config": asdict(cfg),  # no timing: it made two calibrations of one dataset two files
    }
    population = CalibratedPopulation(
        user_id=ix.user_ids.astype(str),
        taste=factors.taste,
        activity=activity.rate,
        session_length=activity.session_length,
        item_id=ix.item_ids.astype(str),
        topics=factors.topics,
        quality=factors.quality,
        creator=creator,
        creator_names=creator_names,
        title=title,
        genres=genres,
        scalars=scalars,
        interest=interest,
        persona=persona,
    )
    problem = population.non_finite()
    if problem is not None:  # e.g. one user: no held-out slates to fit the choice model on
        raise RecarenaError(
            f"dataset {data.name!r} cannot be calibrated: the fitted {problem} is not a finite "
            f"number ({n_users} users, {n_items} items, {int(ix.consumed.sum())} consumptions)"
        )
    return population


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


def population_frame(pop: CalibratedPopulation) -> pl.DataFrame:
    """Users as a polars frame (for quick looks and the fidelity report)."""
    return pl.DataFrame(
        {"user_id": pop.user_id, "activity": pop.activity, "session_length": pop.session_length}
    )
