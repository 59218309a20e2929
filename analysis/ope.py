"""Off-policy evaluation (OPE): estimate a target arm's CTR from another arm's log, and check it.

A real platform can only *estimate* what a new policy would have achieved from the log of the
policy it ran. A simulation can also *run* the new policy, so every estimate here comes with the
target arm's true, simulated CTR on the same slice and the estimator's error.

What is estimated
    The target policy's click-through rate per impression, in the item-position model: context
    ``x`` = a page request, one action per slot ``j`` = the item shown there, reward = a click on
    that slot. The model assumes a click at slot ``j`` depends only on the request, the item and
    the slot. The simulated users violate this on purpose: they choose at most one item per page
    by multinomial logit among the examined slots, so an item's click chance also depends on its
    neighbours (a good item among a random slate's weak ones is clicked more often than among a
    strong target slate). That bias shows up in the ``error`` column; it is not estimation noise.

How the target's action is known
    Arms share common random numbers: the same ``request_id`` is the same arrival under every
    arm. For a request in the logging arm's log, the target arm's own log holds the slate the
    target showed for that request, and that slate is the target action. A stochastic target
    (epsilon-greedy, Thompson) is handled the same way: its shown item is one draw ``A ~ π_e``
    made with the target's own random stream (streams are keyed by arm name), independent of the
    logging draw, so ``E[1{a_log = A} | x] = π_e(a_log | x)`` and the indicator weight stays
    unbiased, only noisier. Weighting by the target's logged propensity instead would count
    ``π_e`` twice, so it is not used. The independence is why an arm cannot be evaluated from
    its own log here: its "target draw" would be the logged draw itself.

Which requests
    By default only page 0 of every session. Later pages exist only when the session continued,
    which depends on the arm's earlier pages, so "the same request" is well defined only for
    page 0. Even page-0 requests can be missing from one arm: after day 0, arrivals are thinned
    by the arm's user satisfaction. Logged requests the target never served are dropped and the
    share is reported as ``dropped``.

What remains different between the worlds
    The user's state at a request (what they have consumed, satiation, familiarity) evolves
    under the arm that served them. The estimate is therefore the target's CTR on the *logging
    arm's* context distribution, while the truth is the target's CTR in its own world. Real OPE
    has the same feedback-loop gap, it is just invisible there.

Support
    IPS is unbiased only if the logging arm could have shown every target item at its slot
    (``p_log > 0``). ``random`` can. ``epsilon_greedy`` cannot: its exploration excludes the
    base slate, so a base item can appear only at its own base slot, never at the slot another
    policy puts it. The log cannot reveal such zeros (only shown items have a propensity), so
    they surface as a large negative error, not as an exception.

Estimators (``w = 1{a_log = a_target} / p_log``, means over logged (request, slot) pairs):

* ``ips``: mean of ``w · click``.
* ``snips``: ``Σ w · click / Σ w`` (self-normalised; biased but lower variance).
* ``dr``: mean of ``q̂(a_target, j) + w · (click − q̂(a_log, j))`` with ``q̂`` a position-based
  click model fitted on the logging slice (:class:`PositionModel`).
* ``naive``: mean click over the matched pairs, unweighted (replay). Shown for contrast: it is
  biased whenever the logging propensities are not uniform.

Intervals are percentile bootstraps that resample sessions (a session's slots are correlated),
per replicate and pooled over replicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
from rich.table import Table

from recarena.analysis.load import RunLogs, require_one_world
from recarena.analysis.options import check_bootstrap, check_index, name_list
from recarena.analysis.scalars import as_float
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import Registry, must_be_callable, plugin_prints_to_stderr

DEFAULT_ESTIMATORS = ("ips", "snips", "dr")
NO_ITEM = -1
"""``target_item`` of a slot the target left empty (or a request it never served)."""

SLOT_COLUMNS = ("cluster", "position", "item_id", "propensity", "clicked", "target_item")
"""Columns of the per-slot frame the estimators read: one row per logged (request, slot)."""


@dataclass(frozen=True)
class PositionModel:
    """Direct model for DR: ``q̂(i, j) = slot_rate[j] · item_effect[i]``, clipped to [0, 1].

    ``slot_rate[j]`` is the logging slice's CTR at slot ``j``. ``item_effect[i]`` is the item's
    clicks over the clicks its shows would get at its slots' rates, shrunk towards 1 with
    ``prior_clicks`` pseudo-clicks: ``(clicks_i + m) / (expected_i + m)``. Items never logged
    get effect 1. The model is fitted on the same slice it corrects (no cross-fitting), which
    costs a little bias on small logs.
    """

    slot_rate: np.ndarray
    overall_rate: float
    items: np.ndarray  # sorted item ids
    item_effect: np.ndarray  # aligned with items

    @classmethod
    def fit(
        cls, item: np.ndarray, position: np.ndarray, clicked: np.ndarray, prior_clicks: float = 2.0
    ) -> PositionModel:
        clicked = clicked.astype(np.float64)
        overall = float(clicked.mean()) if clicked.size else 0.0
        slots = int(position.max()) + 1 if position.size else 0
        shows = np.bincount(position, minlength=slots).astype(np.float64)
        clicks = np.bincount(position, weights=clicked, minlength=slots)
        slot_rate = np.where(shows > 0, clicks / np.maximum(shows, 1), overall)
        items, inverse = np.unique(item, return_inverse=True)
        expected = np.bincount(inverse, weights=slot_rate[position], minlength=items.size)
        item_clicks = np.bincount(inverse, weights=clicked, minlength=items.size)
        effect = (item_clicks + prior_clicks) / (expected + prior_clicks)
        return cls(slot_rate, overall, items, effect)

    def predict(self, item: np.ndarray, position: np.ndarray) -> np.ndarray:
        """q̂ for each (item, slot); 0 where ``item`` is :data:`NO_ITEM`."""
        size = self.slot_rate.size
        rate = np.full(position.shape, self.overall_rate)
        if size:
            known_slot = position < size
            rate[known_slot] = self.slot_rate[position[known_slot]]
        effect = np.ones(item.shape, np.float64)
        if self.items.size:
            where = np.searchsorted(self.items, item).clip(0, self.items.size - 1)
            known = self.items[where] == item
            effect[known] = self.item_effect[where[known]]
        return np.where(item == NO_ITEM, 0.0, np.clip(rate * effect, 0.0, 1.0))


@dataclass(frozen=True)
class Estimate:
    estimator: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    matches: int
    ess: float


def slot_contributions(slots: pl.DataFrame, model: PositionModel | None = None) -> pl.DataFrame:
    """Per-slot terms of every estimator: ``w``, ``matched``, ``ips``, ``dr``, ``naive``.

    ``model`` defaults to a :class:`PositionModel` fitted on ``slots`` itself.
    """
    missing = [c for c in SLOT_COLUMNS if c not in slots.columns]
    if missing:
        raise RecarenaError(f"OPE slots: missing column(s) {', '.join(missing)}")
    item = slots["item_id"].to_numpy().astype(np.int64)
    target = slots["target_item"].to_numpy().astype(np.int64)
    position = slots["position"].to_numpy().astype(np.int64)
    p = slots["propensity"].to_numpy().astype(np.float64)
    click = slots["clicked"].to_numpy().astype(np.float64)
    if model is None:
        model = PositionModel.fit(item, position, click)
    matched = (item == target) & (target != NO_ITEM)
    w = np.where(matched, 1.0 / p, 0.0)
    dr = model.predict(target, position) + w * (click - model.predict(item, position))
    return pl.DataFrame(
        {
            "cluster": slots["cluster"],
            "w": w,
            "matched": matched.astype(np.float64),
            "ips": w * click,
            "dr": dr,
            "naive": matched * click,
        }
    )


SUM_COLUMNS = ("n", "w", "matched", "ips", "dr", "naive")
"""Per-cluster sums every estimator is a function of (bootstrap resamples these sums)."""


class Estimator(Protocol):
    """An off-policy estimator: a ratio of the per-cluster sums in ``SUM_COLUMNS``.

    ``sums`` maps each column to an array (one value, or one per bootstrap resample); the
    estimate must be computed elementwise so the same function serves point and bootstrap.
    """

    def __call__(self, sums: Mapping[str, np.ndarray]) -> np.ndarray: ...


def ips(sums: Mapping[str, np.ndarray]) -> np.ndarray:
    return sums["ips"] / sums["n"]


def snips(sums: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.where(sums["w"] > 0, sums["ips"] / sums["w"], np.nan)


def dr(sums: Mapping[str, np.ndarray]) -> np.ndarray:
    return sums["dr"] / sums["n"]


def naive(sums: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.where(sums["matched"] > 0, sums["naive"] / sums["matched"], np.nan)


REGISTRY = Registry(
    "ope_estimator",
    {
        "ips": (ips, "inverse propensity scoring (unbiased, high variance)"),
        "snips": (snips, "self-normalised IPS"),
        "dr": (dr, "doubly robust with the position model as direct method"),
        "naive": (naive, "CTR of logged slots the target would also show (biased)"),
    },
    must_be_callable("OPE estimator", "a function of the sums", "estimator(sums)", 1),
)
"""OPE estimators: built-ins, the ``recarena.ope_estimators`` entry points, or
``package.module:function`` in ``estimators`` (``--estimators``)."""


class EstimatorsError(RecarenaError):
    """An ``estimators`` value that cannot be used, worded for its Python caller (``estimators:
    ...``, the keyword they wrote); :meth:`for_cli` words it for ``recarena ope`` (``--estimators:
    ...``). Was: a notebook's ``off_policy_evaluation(..., estimators=["magic"])`` named
    ``--estimators``, an option the caller never wrote."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"estimators: {detail}")

    def for_cli(self) -> str:
        return f"--estimators: {self.detail}"


def _ratios(sums: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Estimators from column sums [..., SUM_COLUMNS]."""
    columns = dict(zip(SUM_COLUMNS, np.moveaxis(sums, -1, 0), strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {name: _estimate(name, columns, sums.shape[:-1]) for name in names}


def _estimate(name: str, columns: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """One estimator's values; a plug-in that raises or answers with something other than real
    numbers of the sums' shape is one line naming it (was: an internal error, exit 1)."""
    estimator = REGISTRY.load(name)
    if REGISTRY.get(name).source == "built-in":
        return np.asarray(estimator(columns))
    try:
        with plugin_prints_to_stderr():  # stdout is the command's table
            value = np.asarray(estimator(columns))
        if value.dtype.kind not in "iuf" or value.shape != shape:
            raise TypeError(
                f"returned {value.dtype} of shape {value.shape}, expected numbers of shape {shape}"
            )
    except (Exception, SystemExit) as exc:
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EstimatorsError(
            f"{name!r} failed ({type(exc).__name__}: {text}); an estimator maps "
            "the column sums (arrays of one shape) to numbers of that shape"
        ) from None
    return value


def summarise(
    contributions: pl.DataFrame,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    n_boot: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> list[Estimate]:
    """Point estimates and session-clustered percentile-bootstrap CIs (None with < 2 clusters)."""
    check_bootstrap(n_boot, level)
    rng = rng if rng is not None else np.random.default_rng(0)
    per_cluster = (
        contributions.group_by("cluster")
        .agg(
            pl.len().cast(pl.Float64).alias("n"),
            *(pl.col(c).sum() for c in ("w", "matched", "ips", "dr", "naive")),
        )
        .sort("cluster")
    )
    table = per_cluster.select(SUM_COLUMNS).to_numpy().astype(np.float64)
    point = _ratios(table.sum(axis=0), estimators)
    n_clusters = table.shape[0]
    boots: dict[str, np.ndarray] | None = None
    if n_clusters >= 2 and n_boot > 0:
        chunks = []
        chunk = max(1, min(n_boot, 4_000_000 // n_clusters))
        uniform = np.full(n_clusters, 1.0 / n_clusters)
        for start in range(0, n_boot, chunk):
            counts = rng.multinomial(n_clusters, uniform, size=min(chunk, n_boot - start))
            chunks.append(counts @ table)
        boots = _ratios(np.concatenate(chunks), estimators)
    w = contributions["w"].to_numpy()
    matched = int(contributions["matched"].sum())
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    alpha = (1 - level) / 2
    out = []
    for name in estimators:
        value = float(point[name])
        low = high = None
        if boots is not None and np.isfinite(boots[name]).sum() >= 2:
            lo, hi = np.nanquantile(boots[name], [alpha, 1 - alpha])
            low, high = float(lo), float(hi)
        out.append(
            Estimate(
                name,
                value if np.isfinite(value) else None,
                low,
                high,
                contributions.height,
                matched,
                float(matched) if name == "naive" else ess,
            )
        )
    return out


def estimate_policy_value(
    slots: pl.DataFrame,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    n_boot: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
    model: PositionModel | None = None,
) -> list[Estimate]:
    """Every requested estimator on one per-slot frame (columns :data:`SLOT_COLUMNS`)."""
    check_estimators(estimators)
    return summarise(slot_contributions(slots, model), estimators, n_boot, level, rng)


def check_estimators(estimators: Sequence[str]) -> None:
    estimators = name_list(estimators, "estimators") or []
    if not estimators:
        raise EstimatorsError(f"empty list; known: {', '.join(REGISTRY.names())}")
    twice = [name for i, name in enumerate(estimators) if name in estimators[:i]]
    if twice:  # was: the estimator's rows printed twice, as if two estimates agreed
        raise EstimatorsError(f"{twice[0]!r} is named twice; name each one once")
    for name in estimators:
        try:
            REGISTRY.load(name)
        except LookupError as exc:
            raise EstimatorsError(str(exc)) from None


def _slice(logs: RunLogs, arm: str, page: int | None) -> pl.DataFrame:
    frame = logs.exposures.filter(pl.col("arm") == arm)
    if page is not None:
        frame = frame.filter(pl.col("page") == page)
    return frame.select(
        "rep", "session_id", "request_id", "position", "item_id", "propensity", "clicked"
    ).collect()


def logged_slots(logging: pl.DataFrame, target: pl.DataFrame) -> tuple[pl.DataFrame, float]:
    """Join one replicate's logging slice to the target's slates; returns (slots, dropped share).

    ``cluster`` is the session id. Logged slots of requests the target never served are dropped;
    a slot the target served a shorter slate for gets ``target_item`` = :data:`NO_ITEM`.
    """
    served = target.select("request_id").unique().with_columns(pl.lit(True).alias("_served"))
    joined = logging.join(served, on="request_id", how="left")
    kept = joined.filter(pl.col("_served").is_not_null())
    dropped = 1.0 - kept.height / logging.height if logging.height else 0.0
    shown = target.select("request_id", "position", pl.col("item_id").alias("target_item"))
    slots = kept.join(shown, on=["request_id", "position"], how="left").select(
        pl.col("session_id").alias("cluster"),
        "position",
        "item_id",
        "propensity",
        "clicked",
        pl.col("target_item").fill_null(NO_ITEM),
    )
    return slots, dropped


def arm_layouts(logs: RunLogs) -> dict[str, tuple]:
    """Each arm's slots as the logs number them: ``(type, k)`` for lists and conversations,
    ``("carousel", rows, cols)``, or a plug-in surface's type and params."""
    scenario = logs.scenario  # a sweep point's own
    default = scenario.get("surface") or {"type": "list"}
    layouts: dict[str, tuple] = {}
    for arm in scenario.get("arms") or []:
        if not isinstance(arm, dict) or not isinstance(arm.get("name"), str):
            continue
        surface = arm.get("surface") or default
        if not isinstance(surface, dict):
            continue
        kind = surface.get("type", "list")
        if kind == "carousel":
            layouts[arm["name"]] = (kind, len(surface.get("rows") or []), surface.get("cols"))
        elif kind in ("list", "conversation"):
            layouts[arm["name"]] = (kind, surface.get("k"))
        else:
            layouts[arm["name"]] = (kind, repr(surface.get("params")))
    return layouts


def _layout_text(layout: tuple) -> str:
    if layout[0] == "carousel":
        return f"a carousel of {layout[1]}×{layout[2]}"
    if layout[0] == "list":
        return f"a list of {layout[1]}"
    if layout[0] == "conversation":
        return f"a conversation of {layout[1]} items a turn"
    return f"a {layout[0]} surface with params {layout[1]}"


def _reps(reps: set[int]) -> str:
    return ", ".join(map(str, sorted(reps)))


def off_policy_evaluation(
    logs: RunLogs,
    target: str,
    logging: str | None = None,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    page: int | None = 0,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """Estimate ``target``'s CTR from ``logging``'s log, per replicate and pooled, with the truth.

    One row per (replicate, estimator) plus pooled rows (``rep`` null): the estimate, its
    session-bootstrap CI, the target's true CTR on the same page slice, the error, the logged
    slots used (``n``), how many matched the target's item (``matches``), the effective sample
    size ``(Σw)²/Σw²`` and the share of logged slots dropped because the target never served
    that request. ``page=None`` uses every page (see the module docstring for why page 0 is the
    clean default). ``logging`` defaults to the run's baseline arm.
    """
    check_estimators(estimators)
    check_bootstrap(n_boot, level, seed)
    check_index(page, "page")
    require_one_world(logs, "off_policy_evaluation")
    arms = logs.arms
    logging = logs.baseline if logging is None else logging
    for option, arm in (("--target", target), ("--logging", logging)):
        if arm in logs.unfinished_arms:  # an interrupted run
            default = " (the baseline, the default --logging)" if option == "--logging" else ""
            raise RecarenaError(
                f"{option}: arm {arm!r}{default} has no finished cells; arms with finished "
                f"cells: {', '.join(arms)}"
            )
        if arm not in arms:
            raise RecarenaError(f"{option}: unknown arm {arm!r}; arms: {', '.join(arms)}")
    if target == logging:
        # Not a degenerate case of the formula: the arm's "target draw" would be its logged draw
        # itself, not an independent one, so the indicator weight would no longer be unbiased.
        raise RecarenaError(
            f"--target and --logging are both {target!r}; pick another logging arm (an arm's "
            "own CTR is the truth column)"
        )
    layouts = arm_layouts(logs)
    for option, arm in (("--target", target), ("--logging", logging)):
        if layouts.get(arm, ("",))[0] == "conversation":
            _refuse_asking(logs, option, arm)
    if target in layouts and logging in layouts and layouts[target] != layouts[logging]:
        # a conversation or a shorter list evaluated from a list's log: the logged slots the
        # target has no counterpart for counted as misses, and a number came out without a word
        raise RecarenaError(
            f"--target: arm {target!r} shows {_layout_text(layouts[target])} and --logging arm "
            f"{logging!r} {_layout_text(layouts[logging])}; OPE matches the item at the same "
            "request and slot, so both arms need the same surface"
        )
    where = f"page {page}" if page is not None else "all pages"
    log_frame = _slice(logs, logging, page)
    target_frame = _slice(logs, target, page)
    if log_frame.is_empty():
        raise RecarenaError(f"--logging: arm {logging!r} has no exposures on {where}")
    if target_frame.is_empty():
        raise RecarenaError(f"--target: arm {target!r} has no exposures on {where}")
    unknown = log_frame.filter(pl.col("propensity").is_nan()).height
    if unknown:  # logged by a carousel whose rows re-order a random answer (surfaces.py)
        raise RecarenaError(
            f"--logging: arm {logging!r} logged no propensity (NaN) on {unknown} of "
            f"{log_frame.height} exposures on {where}: its carousel rows filter or re-order a "
            "random recommender's candidates, so the chance of an item at those slots is "
            "unknown; IPS needs it for every logged item (only a leading run of personalized "
            "rows keeps the recommender's propensities)"
        )
    bad = log_frame.filter(pl.col("propensity").is_null() | (pl.col("propensity") <= 0)).height
    if bad:
        raise RecarenaError(
            f"--logging: arm {logging!r} logged a missing or zero propensity on {bad} of "
            f"{log_frame.height} exposures; IPS needs the probability of every logged item"
        )

    rng = np.random.default_rng(seed)
    per_rep: list[tuple[int | None, pl.DataFrame, float, float, int]] = []
    pooled_parts, logged_total, kept_total = [], 0, 0
    logged_reps, target_reps = set(log_frame["rep"].to_list()), set(target_frame["rep"].to_list())
    if not logged_reps & target_reps:  # an interrupted run: was "served none of the requests"
        raise RecarenaError(
            f"--logging: arm {logging!r} (replicates {_reps(logged_reps)}) and --target arm "
            f"{target!r} (replicates {_reps(target_reps)}) have no replicate both finished; "
            "requests are paired within a replicate (--resume the run to finish its cells)"
        )
    for rep in sorted(logged_reps & target_reps):
        log_rep = log_frame.filter(pl.col("rep") == rep)
        tgt_rep = target_frame.filter(pl.col("rep") == rep)
        slots, dropped = logged_slots(log_rep, tgt_rep)
        truth = as_float(tgt_rep["clicked"].cast(pl.Float64).mean())
        logged_total += log_rep.height
        kept_total += slots.height
        if slots.is_empty():
            continue
        contrib = slot_contributions(slots).with_columns(
            (pl.lit(rep, pl.Int64) * (1 << 52) + pl.col("cluster")).alias("cluster")
        )
        per_rep.append((rep, contrib, truth, dropped, tgt_rep.height))
        pooled_parts.append(contrib)
    if not per_rep:
        raise RecarenaError(
            f"no overlap: arm {target!r} served none of the requests arm {logging!r} logged on "
            f"{where}"
        )
    pooled = pl.concat(pooled_parts)
    if pooled["matched"].sum() == 0:
        # an arm that explores logs propensities below 1: it is the log that is too short
        # (was: "use a logging arm that explores" said to a random logging arm)
        explores = bool((log_frame["propensity"] < 1.0).any())
        advice = (
            f"its {kept_total:,} slots are too few for a match: log more requests (users, "
            "days or replicates)"
            if explores
            else "use a logging arm that explores (random, epsilon_greedy)"
        )
        raise RecarenaError(
            f"no overlap: arm {target!r} never showed the item arm {logging!r} logged at the "
            f"same request and slot ({where}); {advice}"
        )
    pooled_truth = as_float(target_frame["clicked"].cast(pl.Float64).mean())
    pooled_dropped = 1.0 - kept_total / logged_total if logged_total else 0.0
    groups = [*per_rep, (None, pooled, pooled_truth, pooled_dropped, target_frame.height)]

    rows = []
    for rep, contrib, truth, dropped, _ in groups:
        for est in summarise(contrib, estimators, n_boot, level, rng):
            rows.append(
                {
                    "target": target,
                    "logging": logging,
                    "rep": rep,
                    "estimator": est.estimator,
                    "estimate": est.estimate,
                    "ci_low": est.ci_low,
                    "ci_high": est.ci_high,
                    "truth": truth,
                    "error": None if est.estimate is None else est.estimate - truth,
                    "n": est.n,
                    "matches": est.matches,
                    "ess": est.ess,
                    "dropped": dropped,
                }
            )
    schema = {
        "target": pl.Utf8,
        "logging": pl.Utf8,
        "rep": pl.Int32,
        "estimator": pl.Utf8,
        "estimate": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "truth": pl.Float64,
        "error": pl.Float64,
        "n": pl.Int64,
        "matches": pl.Int64,
        "ess": pl.Float64,
        "dropped": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def _refuse_asking(logs: RunLogs, option: str, arm: str) -> None:
    """A conversational policy that asks cannot be paired: was 'has no exposures on page 0'
    (its first turn asks) or, with --all-pages, 'served none of the requests' (its later turns
    are other requests), as if the arm had served nobody."""
    system = logs.turns.filter((pl.col("arm") == arm) & (pl.col("speaker") == "system"))
    counts = system.select(
        (pl.col("act") == "ask").sum().alias("asks"), pl.len().alias("turns")
    ).collect()
    asks, turns = int(counts["asks"][0] or 0), int(counts["turns"][0])
    if asks:
        raise RecarenaError(
            f"{option}: arm {arm!r} asks questions in its conversations ({asks} of its {turns} "
            "turns ask); OPE compares the items two arms show at the same request and slot, "
            "and a turn that asks shows none while what follows depends on the user's answers, "
            "so a conversational policy that asks can be neither target nor logging arm (a list "
            "recommender in a conversation can)"
        )


def _f(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def format_ope_table(frame: pl.DataFrame, level: float = 0.95) -> Table:
    """Terminal table: one row per replicate and estimator, pooled rows last."""
    first = frame.row(0, named=True) if frame.height else {"target": "", "logging": ""}
    table = Table(
        title=f"OPE: target '{first['target']}' from the log of '{first['logging']}'",
        caption=(
            f"estimate of the target's CTR per impression; {level:.0%} CI = session bootstrap; "
            "truth = the target arm's simulated CTR on the same pages; ESS = (Σw)²/Σw²; "
            "dropped = logged slots whose request the target never served"
        ),
    )
    for name in ("rep", "estimator", "estimate", "CI", "truth", "error", "n", "matches", "ESS"):
        table.add_column(name, justify="left" if name in ("rep", "estimator") else "right")
    table.add_column("dropped", justify="right")
    for row in frame.iter_rows(named=True):
        ci = "—" if row["ci_low"] is None else f"[{_f(row['ci_low'])}, {_f(row['ci_high'])}]"
        table.add_row(
            "pooled" if row["rep"] is None else str(row["rep"]),
            row["estimator"],
            _f(row["estimate"]),
            ci,
            _f(row["truth"]),
            "—" if row["error"] is None else f"{row['error']:+.4f}",
            f"{row['n']:,}",
            f"{row['matches']:,}",
            f"{row['ess']:,.1f}",
            f"{row['dropped']:.1%}",
        )
    return table
