"""Long-term, ecosystem-level metrics: homogenisation, echo chambers, taste drift, creators.

Short-term metrics (CTR, session length) can improve while the ecosystem degrades: users'
consumption converges (homogenisation), each user's diet narrows (echo chamber), tastes move
towards what is served (drift), and creators who are not shown early never get going. Each
metric here is one value per (arm, rep) cell where a scalar makes sense, registered in
``recarena.analysis.metrics``; the ``*_over_time`` functions return the time series behind them.

Definitions (all hand-checked in tests/test_metrics_longterm.py):

* **homogenization** (Chaney, Stewart & Engelhardt, RecSys 2018): mean Jaccard similarity
  |C_a ∩ C_b| / |C_a ∪ C_b| of the consumption sets (distinct items clicked) of sampled user
  pairs (a, b). Pairs are drawn once with a seeded Generator from every user who clicked
  anywhere in the run, so every arm is measured on the *same* pairs; a pair whose union is
  empty in a cell carries no information and is left out of that cell. Chaney et al. report it
  relative to an ideal recommender: :func:`homogenization_relative` divides each cell by the
  same replicate's value under a named (oracle) arm; ``compare --baseline oracle`` gives the
  same comparison with CIs.
* **entropy_trend**: per user, the slope (OLS, per day) of the Shannon entropy (nats) of the
  topic distribution of what they consumed each day (the normalised sum of the items' topic
  mixtures), over users with clicks on at least 3 days; averaged over users. Negative = diets
  narrow over time.
* **taste_drift**: mean ‖taste_end − taste_start‖₂ over users (``users_end`` table, written
  when ``population.taste_drift`` > 0).
* **creator_time_to_exposure**: per creator, days from its first item's ``created_at`` to the
  first impression of any of its items; creators never shown count as the horizon minus their
  first item's time (right-censored, so the mean is a lower bound); mean over creators.
* **item_exposure_unfairness** and **creator_exposure_unfairness**: total-variation distance
  ½ Σ |e − μ| between exposure shares e (impressions / all impressions) and merit shares μ,
  with item merit exp(quality_i) (positive and monotone in the true quality) and a creator's
  merit the sum of its items' merits. 0 = exposure exactly proportional to merit, the ideal of
  Singh & Joachims, "Fairness of Exposure in Rankings", KDD 2018; 1 = disjoint.
* **creator_envy**: share of ordered creator pairs (c, c') with merit per item μ_c > μ_c'
  but exposure per item e_c < e_c': c would rather have c'’s exposure although its items are
  better. Envy-freeness as in Patro et al., "FairRec", WWW 2020, applied to producers and
  normalised per item so that prolific creators are not "envied" for their volume.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from recarena.analysis.load import RunLogs, require_one_world
from recarena.analysis.metrics_base import (
    CELL,
    USER_SCHEMA,
    VALUE_SCHEMA,
    Metric,
    gini,
    item_topics,
)
from recarena.analysis.scalars import as_int
from recarena.simulator.core.types import DAY

N_PAIRS = 2000
PAIR_SEED = 0
MIN_ACTIVE_DAYS = 3
FIRST_K = 10


# ------------------------------------------------------------------ homogenisation
def sample_pairs(user_ids: np.ndarray, n_pairs: int = N_PAIRS, seed: int = PAIR_SEED) -> np.ndarray:
    """[P, 2] distinct-user pairs drawn with a seeded Generator (the same for every arm)."""
    users = np.unique(np.asarray(user_ids, dtype=np.int64))
    if users.size < 2:
        return np.empty((0, 2), np.int64)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, users.size, n_pairs)
    offset = rng.integers(1, users.size, n_pairs)  # never the same user twice in a pair
    return np.stack([users[first], users[(first + offset) % users.size]], axis=1)


def jaccard_pairs(user: np.ndarray, item: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, ...]:
    """(intersection, union) sizes of the pairs' distinct consumption sets, vectorised."""
    n_users = int(max(user.max(initial=-1), pairs.max(initial=-1))) + 1
    n_items = int(item.max(initial=-1)) + 1
    matrix = sp.csr_matrix(
        (np.ones(user.shape[0], np.float32), (user, item)), shape=(n_users, max(n_items, 1))
    )
    matrix.data[:] = 1.0  # repeated clicks on one item count once
    size = np.diff(matrix.indptr).astype(np.float64)
    inter = np.asarray(matrix[pairs[:, 0]].multiply(matrix[pairs[:, 1]]).sum(axis=1)).ravel()
    union = size[pairs[:, 0]] + size[pairs[:, 1]] - inter
    return inter, union


def homogenization_pairs(
    logs: RunLogs,
    n_pairs: int = N_PAIRS,
    seed: int = PAIR_SEED,
    until_day: int | None = None,
    first_k: int | None = None,
) -> pl.DataFrame:
    """``arm, rep, user_id, num, den``: Jaccard per pair (``user_id`` holds the pair index).

    Pairs are iid and identical across arms, so a bootstrap over them is paired across arms
    like a bootstrap over users; ``den`` is 0 for a pair with an empty union in that cell.
    ``first_k`` keeps only each user's first k distinct items consumed: sets of (at most) equal
    size under every arm, so an arm is not "more homogeneous" merely because its users consumed
    more of a small catalog.
    """
    clicks = logs.interactions
    if until_day is not None:
        clicks = clicks.filter(pl.col("day") <= until_day)
    frame = clicks.select(*CELL, "user_id", "item_id", "time")
    if first_k is not None:
        frame = (
            frame.sort([*CELL, "user_id", "time"], maintain_order=True)
            .unique([*CELL, "user_id", "item_id"], keep="first", maintain_order=True)
            .group_by([*CELL, "user_id"], maintain_order=True)
            .head(first_k)
        )
    consumed = frame.select(*CELL, "user_id", "item_id").unique().collect()
    universe = logs.interactions.select(pl.col("user_id").unique()).collect()["user_id"]
    pairs = sample_pairs(universe.to_numpy(), n_pairs, seed)
    rows = []
    for arm, rep in sorted({(a, r) for a, r in zip(*_cells(logs), strict=True)}):
        cell = consumed.filter((pl.col("arm") == arm) & (pl.col("rep") == rep))
        inter, union = jaccard_pairs(cell["user_id"].to_numpy(), cell["item_id"].to_numpy(), pairs)
        known = union > 0
        rows.append(
            pl.DataFrame(
                {
                    "arm": arm,
                    "rep": rep,
                    "user_id": np.arange(pairs.shape[0], dtype=np.int64),
                    "num": np.where(known, inter / np.maximum(union, 1), 0.0),
                    "den": known.astype(np.float64),
                },
                schema=USER_SCHEMA,
            )
        )
    return pl.concat(rows) if rows else pl.DataFrame(schema=USER_SCHEMA)


def _cells(logs: RunLogs) -> tuple[list[str], list[int]]:
    return [c.arm for c in logs.cells], [c.rep for c in logs.cells]


def _cell_ratio(per_user: pl.DataFrame) -> pl.DataFrame:
    return (
        per_user.group_by(CELL)
        .agg((pl.col("num").sum() / pl.col("den").sum()).alias("value"))
        .sort(CELL)
    )


def homogenization(logs: RunLogs) -> pl.DataFrame:
    """Mean Jaccard similarity of paired users' consumption sets, per cell."""
    return _cell_ratio(homogenization_pairs(logs))


def homogenization_relative(logs: RunLogs, reference_arm: str) -> pl.DataFrame:
    """``arm, rep, value``: each cell's homogenisation divided by ``reference_arm``'s, same rep.

    Chaney et al. plot homogenisation relative to the ideal recommender; 1 = as homogeneous as
    the reference, > 1 = more.
    """
    require_one_world(logs, "homogenization_relative")
    if reference_arm not in logs.arms:
        raise ValueError(f"no arm {reference_arm!r} in this run; arms: {', '.join(logs.arms)}")
    cells = homogenization(logs)
    reference = cells.filter(pl.col("arm") == reference_arm).select(
        "rep", pl.col("value").alias("reference")
    )
    return cells.join(reference, on="rep").select(
        *CELL, (pl.col("value") / pl.col("reference")).alias("value")
    )


def homogenization_over_time(logs: RunLogs, every_days: int = 1) -> pl.DataFrame:
    """``arm, rep, day, value``: homogenisation of the consumption sets up to each day."""
    require_one_world(logs, "homogenization_over_time")
    last = int(logs.interactions.select(pl.col("day").max()).collect().item() or 0)
    frames = [
        _cell_ratio(homogenization_pairs(logs, until_day=day)).with_columns(
            pl.lit(day, pl.Int32).alias("day")
        )
        for day in range(0, last + 1, every_days)
    ]
    return pl.concat(frames).select(*CELL, "day", "value")


# ---------------------------------------------------------------------- echo chamber
def entropy_by_user_day(logs: RunLogs) -> pl.DataFrame:
    """``arm, rep, user_id, day, entropy``: entropy (nats) of each user's daily topic diet."""
    require_one_world(logs, "entropy_by_user_day")
    wide, names = item_topics(logs)
    if not names:  # items without topic mixes (e.g. imported logs): no diet to measure
        schema = {"arm": pl.Utf8, "rep": pl.Int32, "user_id": pl.Int64, "day": pl.Int32}
        return pl.DataFrame(schema={**schema, "entropy": pl.Float64})
    summed = (
        logs.interactions.select(*CELL, "user_id", "day", "item_id")
        .join(wide, on=[*CELL, "item_id"], how="left")
        .group_by([*CELL, "user_id", "day"])
        .agg(*[pl.col(n).sum() for n in names])
    )
    total = pl.sum_horizontal(*[pl.col(n) for n in names])
    terms = [
        pl.when(pl.col(n) > 0).then(-(pl.col(n) / total) * (pl.col(n) / total).log()).otherwise(0.0)
        for n in names
    ]
    return (
        summed.select(*CELL, "user_id", "day", pl.sum_horizontal(*terms).alias("entropy"))
        .sort([*CELL, "user_id", "day"])
        .collect()
    )


def entropy_trend_users(logs: RunLogs) -> pl.DataFrame:
    """Per user: num = OLS slope of daily entropy over days (users with >= 3 active days)."""
    daily = entropy_by_user_day(logs).with_columns(pl.col("day").cast(pl.Float64))
    day_c = pl.col("day") - pl.col("day").mean()
    slopes = (
        daily.group_by([*CELL, "user_id"])
        .agg(
            pl.len().alias("days"),
            ((day_c * pl.col("entropy")).sum() / (day_c * day_c).sum()).alias("num"),
        )
        .filter(pl.col("days") >= MIN_ACTIVE_DAYS)
    )
    return slopes.select(
        pl.col("arm").cast(pl.Utf8),
        pl.col("rep").cast(pl.Int32),
        pl.col("user_id").cast(pl.Int64),
        pl.col("num").cast(pl.Float64),
        pl.lit(1.0).alias("den"),
    )


def entropy_trend(logs: RunLogs) -> pl.DataFrame:
    return _cell_ratio(entropy_trend_users(logs))


# ------------------------------------------------------------------------ taste drift
def taste_drift_users(logs: RunLogs) -> pl.DataFrame:
    """Per user: num = ‖taste_end − taste_start‖₂ (from ``users_end``), den = 1."""
    return logs.users_end.select(
        pl.col("arm").cast(pl.Utf8),
        pl.col("rep").cast(pl.Int32),
        pl.col("user_id").cast(pl.Int64),
        pl.col("drift_distance").cast(pl.Float64).alias("num"),
        pl.lit(1.0).alias("den"),
    ).collect()


def taste_drift(logs: RunLogs) -> pl.DataFrame:
    return _cell_ratio(taste_drift_users(logs))


# ------------------------------------------------------------------------ creators
def _creator_periods(logs: RunLogs) -> pl.DataFrame | None:
    """The creator-dynamics table when this run wrote one (else None)."""
    frame = getattr(logs, "creator_periods", None)
    if frame is None:
        return None
    try:
        table = frame.collect()
    except (pl.exceptions.ComputeError, FileNotFoundError, OSError):
        return None
    return table if table.height else None


def _creator_exposure_by_period(logs: RunLogs, period_days: float) -> pl.DataFrame:
    """``arm, rep, period, creator_id, n``: impressions per creator per period, zeros included
    for every creator that had published an item by the end of the period."""
    seconds = period_days * DAY
    exposures = (
        logs.exposures.select(
            *CELL, "creator_id", (pl.col("time") // seconds).cast(pl.Int32).alias("period")
        )
        .group_by([*CELL, "period", "creator_id"])
        .agg(pl.len().alias("n"))
        .collect()
    )
    first_item = (
        logs.items.group_by([*CELL, "creator_id"])
        .agg(pl.col("created_at").min().alias("first"))
        .collect()
    )
    last = as_int(exposures["period"].max() or 0) if exposures.height else 0
    periods = pl.DataFrame({"period": np.arange(last + 1, dtype=np.int32)})
    present = first_item.join(periods, how="cross").filter(
        pl.col("first") < (pl.col("period") + 1) * seconds
    )
    return (
        present.select(*CELL, "period", "creator_id")
        .join(exposures, on=[*CELL, "period", "creator_id"], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .sort([*CELL, "period", "creator_id"])
    )


def creator_gini_over_time(logs: RunLogs, period_days: float = 7.0) -> pl.DataFrame:
    """``arm, rep, period, value``: Gini of impressions over the creators present per period."""
    require_one_world(logs, "creator_gini_over_time")
    counts = _creator_exposure_by_period(logs, period_days)
    rows = [
        {"arm": arm, "rep": rep, "period": period, "value": gini(group["n"].to_numpy())}
        for (arm, rep, period), group in counts.group_by([*CELL, "period"], maintain_order=True)
    ]
    schema = {**VALUE_SCHEMA, "period": pl.Int32}
    return pl.DataFrame(rows, schema=schema).select(*CELL, "period", "value")


def creator_survival(logs: RunLogs, period_days: float = 7.0) -> pl.DataFrame:
    """``arm, rep, period, value``: share of creators still in the game per period.

    With a ``creator_periods`` table (creator dynamics on): share of the period's creators still
    ``active`` (uploading) after its review. Without one nobody leaves, so survival is read
    from exposure: the share of creators present in the period whose items got >= 1 impression
    in it (a creator nobody sees has, for its audience, churned).
    """
    require_one_world(logs, "creator_survival")
    periods = _creator_periods(logs)
    if periods is not None:
        return (
            periods.group_by([*CELL, "period"])
            .agg(pl.col("active").cast(pl.Float64).mean().alias("value"))
            .select(
                pl.col("arm").cast(pl.Utf8),
                pl.col("rep").cast(pl.Int32),
                pl.col("period").cast(pl.Int32),
                "value",
            )
            .sort([*CELL, "period"])
        )
    counts = _creator_exposure_by_period(logs, period_days)
    return (
        counts.group_by([*CELL, "period"])
        .agg((pl.col("n") > 0).cast(pl.Float64).mean().alias("value"))
        .sort([*CELL, "period"])
    )


def creator_first_exposure(logs: RunLogs) -> pl.DataFrame:
    """``arm, rep, creator_id, days, censored``: days from first item to first impression."""
    require_one_world(logs, "creator_first_exposure")
    first_item = logs.items.group_by([*CELL, "creator_id"]).agg(
        pl.col("created_at").min().alias("first_item")
    )
    first_seen = logs.exposures.group_by([*CELL, "creator_id"]).agg(
        pl.col("time").min().alias("first_seen")
    )
    days = logs.scenario.get("horizon", {}).get("days")  # a sweep point's own horizon
    if isinstance(days, int | float) and not isinstance(days, bool):
        # the scenario's horizon: the last session's end was read instead, and with no session
        # at all (nobody arrived) a creator never shown counted 0 days, as if shown at once
        horizon = (
            first_item.select(*CELL)
            .unique()
            .with_columns(pl.lit(float(days) * DAY).alias("horizon"))
        )
    else:  # logs without their scenario: the last session's end stands for it
        horizon = logs.sessions.group_by(CELL).agg(pl.col("end_time").max().alias("horizon"))
    return (
        first_item.join(first_seen, on=[*CELL, "creator_id"], how="left")
        .join(horizon, on=CELL, how="left")
        .select(
            *CELL,
            "creator_id",
            (
                pl.coalesce(
                    "first_seen",
                    # no horizon known (no session, no scenario): unknown, not 0 days
                    pl.when(pl.col("horizon").is_not_null()).then(
                        pl.max_horizontal("horizon", "first_item")
                    ),
                )
                - pl.col("first_item")
            )
            .truediv(DAY)
            .alias("days"),
            pl.col("first_seen").is_null().alias("censored"),
        )
        .sort([*CELL, "creator_id"])
        .collect()
    )


def creator_time_to_exposure(logs: RunLogs) -> pl.DataFrame:
    return (
        creator_first_exposure(logs)
        .group_by(CELL)
        .agg(pl.col("days").mean().alias("value"))
        .sort(CELL)
    )


# --------------------------------------------------------------- exposure vs merit
def _item_exposure_merit(logs: RunLogs) -> pl.LazyFrame:
    """Items with impressions ``n`` (zeros included) and merit ``m = exp(quality)``."""
    counts = logs.exposures.group_by([*CELL, "item_id"]).agg(pl.len().alias("n"))
    return (
        logs.items.select(*CELL, "item_id", "creator_id", "quality")
        .join(counts, on=[*CELL, "item_id"], how="left")
        .with_columns(
            pl.col("n").fill_null(0).cast(pl.Float64),
            pl.col("quality").cast(pl.Float64).exp().alias("m"),
        )
    )


def _tv_distance(frame: pl.LazyFrame) -> pl.DataFrame:
    """½ Σ |n/Σn − m/Σm| per cell."""
    share_n = pl.col("n") / pl.col("n").sum().over(CELL)
    share_m = pl.col("m") / pl.col("m").sum().over(CELL)
    return (
        frame.with_columns((share_n - share_m).abs().alias("gap"))
        .group_by(CELL)
        .agg((0.5 * pl.col("gap").sum()).alias("value"))
        .sort(CELL)
        .collect()
    )


def item_exposure_unfairness(logs: RunLogs) -> pl.DataFrame:
    return _tv_distance(_item_exposure_merit(logs))


def creator_exposure_merit(logs: RunLogs) -> pl.DataFrame:
    """``arm, rep, creator_id, items, n, m``: impressions and merit summed over creators."""
    require_one_world(logs, "creator_exposure_merit")
    return (
        _item_exposure_merit(logs)
        .group_by([*CELL, "creator_id"])
        .agg(pl.len().alias("items"), pl.col("n").sum(), pl.col("m").sum())
        .sort([*CELL, "creator_id"])
        .collect()
    )


def creator_exposure_unfairness(logs: RunLogs) -> pl.DataFrame:
    return _tv_distance(creator_exposure_merit(logs).lazy())


def envy_share(merit_per_item: np.ndarray, exposure_per_item: np.ndarray) -> float:
    """Share of ordered pairs (c, c') with merit_c > merit_c' but exposure_c < exposure_c'."""
    m = np.asarray(merit_per_item, dtype=np.float64)
    e = np.asarray(exposure_per_item, dtype=np.float64)
    n = m.shape[0]
    if n < 2:
        return 0.0
    envious = (m[:, None] > m[None, :]) & (e[:, None] < e[None, :])
    return float(envious.sum() / (n * (n - 1)))


def creator_envy(logs: RunLogs) -> pl.DataFrame:
    creators = creator_exposure_merit(logs)
    rows = [
        {
            "arm": arm,
            "rep": rep,
            "value": envy_share(
                (group["m"] / group["items"]).to_numpy(), (group["n"] / group["items"]).to_numpy()
            ),
        }
        for (arm, rep), group in creators.group_by(CELL, maintain_order=True)
    ]
    return pl.DataFrame(rows, schema=VALUE_SCHEMA)


# --------------------------------------------------------------------- registry
CHANEY = "Chaney, Stewart & Engelhardt, RecSys 2018 (algorithmic confounding)"
SINGH = "Singh & Joachims, Fairness of Exposure in Rankings, KDD 2018"


def _per_user_metric(
    name: str, description: str, formula: str, higher: bool, per_user, reference: str
) -> Metric:
    def compute(logs: RunLogs) -> pl.DataFrame:
        return _cell_ratio(per_user(logs))

    return Metric(name, description, formula, higher, compute, reference, per_user)


METRICS_LONGTERM = [
    _per_user_metric("homogenization", "how alike paired users' consumption is",
                     "mean over fixed sampled user pairs of |C_a ∩ C_b| / |C_a ∪ C_b|", False,
                     homogenization_pairs, CHANEY + "; relative: homogenization_relative()"),
    _per_user_metric("entropy_trend", "change per day of users' topic-diet entropy",
                     "mean over users (>= 3 active days) of the OLS slope of daily entropy",
                     True, entropy_trend_users, "echo chambers; series: entropy_by_user_day()"),
    _per_user_metric("taste_drift", "how far tastes moved over the run (truth)",
                     "mean over users of ‖taste_end − taste_start‖₂ (users_end table)", False,
                     taste_drift_users, "population.taste_drift"),
    _per_user_metric("homogenization_first10", "homogenization of users' first 10 items",
                     "as homogenization, on each user's first 10 distinct items consumed", False,
                     lambda logs: homogenization_pairs(logs, first_k=FIRST_K), CHANEY),
    Metric("creator_time_to_exposure", "days from a creator's first item to its first impression",
           "mean over creators (never shown: censored at the horizon)", False,
           creator_time_to_exposure, "series: creator_survival(), creator_gini_over_time()"),
    Metric("item_exposure_unfairness", "item exposure vs merit (total variation)",
           "½ Σ_i |impressions share − exp(quality) share|", False, item_exposure_unfairness,
           SINGH),
    Metric("creator_exposure_unfairness", "creator exposure vs merit (total variation)",
           "½ Σ_c |impressions share − Σ_items exp(quality) share|", False,
           creator_exposure_unfairness, SINGH),
    Metric("creator_envy", "creators out-exposed by creators with worse items",
           "share of creator pairs with merit/item higher but impressions/item lower", False,
           creator_envy, "envy-freeness after Patro et al., FairRec, WWW 2020"),
]  # fmt: skip
