"""Calibrate a simulated population to real interaction data (MovieLens and friends).

``calibrate`` runs every step; each fitted piece lives in a module of its own, whose docstring
says what it fits and why that way:

* the config, :class:`CalibrationConfig`: agents/users/calibration_config.py;
* taste, topic mixes and quality (the static factorisation, its L2 weight chosen on the
  held-out slice): agents/users/calibration_factors.py;
* temperature and no-click utility (the engine's MNL on pseudo exposures) and the rating cut
  points: agents/users/calibration_choice.py;
* the "would you watch this?" rule: agents/users/watch_rule.py;
* the result and its files, :class:`CalibratedPopulation`:
  agents/users/calibrated_population.py.

This module keeps the data helpers (indices, the split, activity, creators, the checks run
before fitting) and the orchestration:

* **Split.** Each user's interactions are sorted by time and the last ``holdout`` share (20 %,
  at least one) is held out. A per-user temporal split keeps every user in both halves (a
  global time cut would leave most ML-100K users with no held-out data, since they rated in
  one sitting) while still never training on a user's future.
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

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from recarena.agents.users.calibrated_population import CalibratedPopulation, population_frame
from recarena.agents.users.calibration_choice import (
    ChoiceFit,
    fit_choice,
    fit_rating_thresholds,
    pseudo_exposures,
)
from recarena.agents.users.calibration_config import CalibrationConfig
from recarena.agents.users.calibration_factors import (
    FACTOR_BATCH,
    FACTOR_STEPS,
    NLL_ROWS,
    REG_CANDIDATES,
    Factors,
    choose_factors,
    factor_batch_size,
    fit_factors,
    fold,
    held_out_nll,
)
from recarena.agents.users.sequential_interest import (
    choose_memory,
    fit_features,
    fit_ordinal,
    fit_weights,
    genre_matrix,
    last_items,
)
from recarena.agents.users.watch_rule import WATCH_NEGATIVES, fit_watch_rule
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.types import DAY
from recarena.simulator.data.datasets import InteractionData

__all__ = [
    # defined here
    "DAY",
    "SEED_MAX",
    "MIN_HELD_OUT",
    "MIN_USERS",
    "Indexed",
    "index",
    "temporal_split",
    "Activity",
    "fit_activity",
    "creators_from_genres",
    "check_interactions",
    "calibrate",
    # moved out when this module was split, imported above from their homes, so that
    # `from recarena.agents.users.calibration import X` keeps working for every one of them
    "CalibrationConfig",
    "CalibratedPopulation",
    "population_frame",
    "Factors",
    "FACTOR_BATCH",
    "FACTOR_STEPS",
    "REG_CANDIDATES",
    "NLL_ROWS",
    "factor_batch_size",
    "fit_factors",
    "held_out_nll",
    "choose_factors",
    "fold",
    "ChoiceFit",
    "fit_choice",
    "pseudo_exposures",
    "fit_rating_thresholds",
    "WATCH_NEGATIVES",
    "fit_watch_rule",
]

SEED_MAX = 2**64 - 1
"""The largest calibration seed: the factor fit seeds a torch generator, which holds 64 bits."""


# ------------------------------------------------------------------------ data helpers
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


def item_text(data: InteractionData, ix: Indexed) -> tuple[list[str], list[list[str]], np.ndarray]:
    """Each item's title, genres and year ([I] float32, NaN unknown), aligned with the dense
    item index; the genres also name the calibrated population's creators (its first genre,
    :func:`creators_from_genres`), which ``validate`` counts before a run calibrates."""
    n_items = ix.item_ids.shape[0]
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
    return title, genres, year


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

    title, genres, year = item_text(data, ix)
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
