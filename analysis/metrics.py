"""Metrics by name. Each computes one value per (arm, rep) cell from the log frames.

Every metric is a plain function over :class:`recarena.analysis.load.RunLogs` with its formula, its
direction and a reference in the registry, so scenarios and ``compare`` can ask for it by name.
The functions live in ``metrics_engagement``, ``metrics_beyond`` and ``metrics_fairness``;
this module is the registry. Metrics that are ratios of per-user sums also expose per-user
values (``compute_user_metrics``), which ``compare`` resamples when replicates are few.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import polars as pl

from recarena.analysis import metrics_beyond as beyond
from recarena.analysis import metrics_engagement as engagement
from recarena.analysis import metrics_fairness as fairness
from recarena.analysis.load import RunLogs, require_one_world
from recarena.analysis.metrics_base import (
    CELL,
    Metric,
    PerUser,
    from_user_ratio,
    gini,
    ratio_of_sums,
)
from recarena.analysis.metrics_conversation import METRICS_CONVERSATION
from recarena.analysis.metrics_creators import METRICS_CREATORS
from recarena.analysis.metrics_engagement import RETENTION_DAY, retention_curve
from recarena.analysis.metrics_longterm import METRICS_LONGTERM, MIN_ACTIVE_DAYS
from recarena.analysis.metrics_retention import METRICS_RETENTION, RETURN_WINDOWS
from recarena.analysis.metrics_social import METRICS_SOCIAL
from recarena.analysis.metrics_source import METRICS_SOURCE
from recarena.analysis.options import name_list
from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.registry import Registry, check_signature, plugin_prints_to_stderr
from recarena.simulator.core.scenario import validate_document
from recarena.simulator.runner.sweep import expand_sweep

__all__ = [
    "CELL",
    "METRICS",
    "Metric",
    "compute_metrics",
    "compute_user_metrics",
    "get_metric",
    "gini",
    "known_metrics",
    "retention_curve",
]


def _coverage(logs: RunLogs) -> pl.DataFrame:
    exposed = logs.exposures.group_by(CELL).agg(pl.col("item_id").n_unique().alias("exposed"))
    catalog = logs.items.group_by(CELL).agg(pl.len().alias("items"))
    return (
        catalog.join(exposed, on=CELL, how="left")
        .select(*CELL, (pl.col("exposed").fill_null(0) / pl.col("items")).alias("value"))
        .collect()
    )


def _ratio(
    name: str, description: str, formula: str, higher: bool, per_user: PerUser, reference: str = ""
) -> Metric:
    """A ratio-of-sums metric: its cell value is derived from its per-user values."""
    return Metric(
        name, description, formula, higher, from_user_ratio(per_user), reference, per_user
    )


BIEGA = "Biega, Gummadi & Weikum, Equity of Attention, SIGIR 2018"
ABDOLLAHPOURI = "Abdollahpouri, Burke & Mobasher, Managing popularity bias ..., FLAIRS 2019"

_ALL = [
    # engagement
    _ratio("ctr", "click-through rate", "clicked exposures / exposures", True,
           engagement.ctr_users),
    _ratio("consumption_per_session", "items consumed per session",
           "mean over sessions of clicks", True, engagement.consumption_users),
    _ratio("session_length", "pages per session", "mean over sessions of pages", True,
           engagement.session_length_users),
    _ratio("return_rate", "share of users who came back on another day",
           "users with sessions on >= 2 days / users with >= 1 session", True,
           engagement.return_rate_users),
    _ratio("clicks_per_user", "items consumed per active user over the run",
           "Σ clicks / users with >= 1 session", True, engagement.clicks_per_user_users),
    _ratio("mean_rating", "rating of consumed items (1..5)", "mean over clicks of rating",
           True, engagement.rating_users),
    _ratio("satisfaction", "user satisfaction after a session (truth)",
           "mean over sessions of satisfaction", True, engagement.satisfaction_users),
    Metric("retention_d7", "day-7 retention of the day-0 users",
           "users active on day 0 and day 7 / users active on day 0 (null if < 8 days)",
           True, engagement.retention, "classic N-day retention; curve: retention_curve()",
           engagement.retention_users),
    # beyond accuracy
    Metric("coverage", "share of the catalog ever shown", "distinct exposed items / catalog size",
           True, _coverage, "Ge, Delgado-Battenfeld & Jannach, RecSys 2010"),
    _ratio("intra_list_diversity", "topic diversity within a page",
           "mean over pages of mean pairwise (1 − cos) of item topic mixtures", True,
           beyond.ild_users, "Ziegler et al., WWW 2005"),
    _ratio("novelty", "unfamiliarity of what is shown",
           "mean over exposures of −log2((consumers of i + 1) / (active users + 1))", True,
           beyond.novelty_users, "Zhou et al., PNAS 2010; Vargas & Castells, RecSys 2011"),
    _ratio("serendipity", "liked clicks outside the user's usual topics",
           "clicks (user has >= 1 earlier click) on a topic not in the user's top-3 earlier "
           "topics and rated >= 4 / such clicks", True, beyond.serendipity_users,
           "Ge, Delgado-Battenfeld & Jannach, RecSys 2010; Kaminskas & Bridge, TiiS 2016"),
    _ratio("calibration_kl", "topic mix served vs the user's history (miscalibration)",
           "mean over users of KL(p_history ‖ 0.99 q_served + 0.01 p_history)", False,
           beyond.calibration_users, "Steck, Calibrated Recommendations, RecSys 2018"),
    _ratio("arp", "average recommendation popularity",
           "mean over pages of mean item share of the cell's clicks", False, beyond.arp_users,
           ABDOLLAHPOURI),
    _ratio("aplt", "average share of long-tail items per page",
           "mean over pages of share of items outside the head (top items with 80% of clicks)",
           True, beyond.aplt_users, ABDOLLAHPOURI),
    Metric("pop_reo", "popularity-group opportunity gap for good items",
           "|r_head − r_tail| / (r_head + r_tail), r_g = exposures of above-median-quality "
           "items in g / such items", False, beyond.pop_reo,
           "Zhu, Wang & Caverlee, SIGIR 2020 (RSP/REO); Boratto et al., IP&M 2021"),
    # fairness
    Metric("item_gini", "inequality of item exposure",
           "Gini of exposure counts over all items (zeros included)", False,
           fairness.item_gini),
    Metric("creator_gini", "inequality of creator exposure",
           "Gini of exposure counts over all creators (zeros included)", False,
           fairness.creator_gini),
    Metric("exposure_merit", "creator exposure ordered by creator quality",
           "Spearman corr over creators of (exposures, true quality)", True,
           fairness.exposure_merit, "after Singh & Joachims, Fairness of Exposure, KDD 2018"),
    Metric("attention_unfairness", "attention vs relevance, amortised over pages",
           "Σ_items |Σ_pages a − Σ_pages r| / pages; a = slot examination share, "
           "r = softmax of true utility on the page", False, fairness.attention_unfairness,
           BIEGA),
    Metric("activity_gap", "satisfaction gap between most and least active users",
           "|mean satisfaction, top activity tertile − bottom tertile|", False,
           fairness.activity_gap, "user-group fairness, after Li et al., WWW 2021"),
    # regret (truth)
    _ratio("page_utility", "expected true utility looked at per page",
           "mean over pages of Σ_slots examination rate × true utility", True,
           fairness.page_utility_users, "compare --baseline <oracle arm> for regret vs oracle"),
    _ratio("ranking_regret", "utility lost to the order of a page's items",
           "mean over pages of Σ w_sorted U_sorted − Σ w U (best reordering − served)", False,
           fairness.ranking_regret_users, "rearrangement bound; oracle = reorder the page"),
    # long-term and ecosystem (analysis/metrics_longterm.py)
    *METRICS_LONGTERM,
    # creators (analysis/metrics_creators.py)
    *METRICS_CREATORS,
    # conversations (analysis/metrics_conversation.py)
    *METRICS_CONVERSATION,
    # retention, instructions, novelty intent (analysis/metrics_retention.py)
    *METRICS_RETENTION,
    # users who talk (analysis/metrics_social.py)
    *METRICS_SOCIAL,
    # human vs AI-generated content (analysis/metrics_source.py)
    *METRICS_SOURCE,
]  # fmt: skip

METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in _ALL})
"""The built-in metrics (installed and ad-hoc ones are reached through REGISTRY)."""


def _check_metric(obj: Any, name: str) -> None:
    """A metric plug-in is a :class:`Metric` (a name, a meaning and a ``compute`` function)."""
    if not isinstance(obj, Metric) or not callable(obj.compute):
        raise LookupError(f"{name!r} is not a metric: expected a recarena.analysis.Metric")
    check_signature(obj.compute, name, "metric", "compute(logs)", 1)


REGISTRY = Registry("metric", {m.name: (m, m.description) for m in _ALL}, _check_metric)
"""Metrics: built-ins, the ``recarena.metrics`` entry points, or ``package.module:METRIC`` in
a scenario's ``metrics:`` list (an instance of :class:`Metric`)."""


def known_metrics() -> list[str]:
    return REGISTRY.names()


def check_metrics(scenario: Any, source: str = "<scenario>") -> None:
    """The resolve step for ``metrics:`` (names live here, above the schema); a built-in metric
    that no cell of the scenario can have a value for is refused too (:func:`never_defined`);
    with a sweep, when no point of it can have one."""
    points: list[Any] | None = None
    for index, name in enumerate(scenario.metrics):
        try:
            get_metric(name)
        except LookupError as exc:
            raise RecarenaError(f"{source}: metrics[{index}]: {exc}") from None
        problem = never_defined(name, scenario)
        if problem is None and scenario.sweep:
            # never_defined leaves a metric to the run when the sweep touches the section that
            # decides it; a sweep over creators.strategy left topic_drift_to_popular over a
            # horizon shorter than creators.period_days to the run's 'no finished cell has a
            # value' after every cell. Each point is judged as the plain scenario it is.
            points = _sweep_worlds(scenario) if points is None else points
            problems = [never_defined(name, world) for world in points]
            if points and all(problems):
                problem = f"{problems[0]} (at each of the sweep's {len(points)} points)"
        if problem is not None:
            raise RecarenaError(f"{source}: metrics[{index}]: {problem}")


def _sweep_worlds(scenario: Any) -> list[Any]:
    """The scenarios of a sweep's points, or [] when the sweep itself is refused (preflight
    names that, in its own order)."""
    try:
        return [point.scenario for point in expand_sweep(scenario)]
    except RecarenaError:
        return []


CONVERSATION_METRICS = frozenset(m.name for m in METRICS_CONVERSATION)


def _talks(scenario: Any) -> bool:
    social = scenario.population.social
    return social is not None and social.talk is not None


_AI = ("creators", lambda s: s.creators.ai is not None,
       "AI-generated items, and creators.ai is not set (every creator is human)")  # fmt: skip
_TALK = ("population", _talks, "talk between users, and population.social.talk is not set")
FEATURE_METRICS = {
    **dict.fromkeys(
        [
            "source_bias",
            "source_rank_gap",
            "ai_exposure_share",
            "ai_catalog_share_end",
            "ai_creator_share_end",
            "aigc_dominant_periods",
        ],
        _AI,
    ),  # fmt: skip
    **dict.fromkeys(["cascade_size", "cascade_depth_max", "cascade_multi_share"], _TALK),
    "instruction_heard": (
        "population",
        lambda s: s.population.instructions is not None,
        "instructions users give, and population.instructions is not set",
    ),
    "taste_drift": (
        "population",
        lambda s: s.population.taste_drift > 0,
        "how far tastes move, and population.taste_drift is 0 (fixed tastes: no users_end "
        "table is written)",
    ),
}
"""Built-in metrics of an opt-in feature: (the section a sweep could turn it on in, whether the
scenario has it, what the metric measures and which setting is missing)."""


def never_defined(name: str, scenario: Any) -> str | None:
    """Why built-in metric ``name`` has no value in any cell of ``scenario``, or None. Was:
    the run went through every cell and then said 'no finished cell has a value' and left the
    metric out of the A/B table: conv_* without a conversation surface (they read the turns
    table), retention_d7 over fewer than 8 days (day 7 never comes), return_1d/return_7d over
    a horizon no longer than their window, entropy_trend under 3 days (it needs 3 active
    days), topic_drift_to_popular with no creator review before the horizon, AI-source metrics
    without creators.ai, cascades without population.social.talk, instruction_heard without
    population.instructions and taste_drift without population.taste_drift. A sweep over
    what decides it (surfaces, arms, the horizon, the creators or population section) is left
    to the run's own line."""
    swept = {path.split(".")[0].split("[")[0] for path in scenario.sweep or {}}
    if name in CONVERSATION_METRICS and not swept & {"surface", "arms"}:
        if not any(
            getattr(scenario.surface_for(arm), "type", None) == "conversation"
            for arm in scenario.arms
        ):
            return (
                f"{name} measures conversations, and no arm has a conversation surface "
                "(surface: {type: conversation}), so no cell would have a value"
            )
    feature = FEATURE_METRICS.get(name)
    if feature is not None and feature[0] not in swept and not feature[1](scenario):
        return f"{name} measures {feature[2]}, so no cell would have a value"
    if "horizon" in swept:
        return None
    days = scenario.horizon.days
    if name == "retention_d7" and int(days) <= RETENTION_DAY:
        return (
            f"retention_d7 needs day {RETENTION_DAY} to be simulated (horizon.days "
            f"{RETENTION_DAY + 1} or more); horizon.days is {days:g}, so no cell would "
            "have a value"
        )
    window = RETURN_WINDOWS.get(name)
    if window is not None and days <= window:
        return (
            f"{name} counts sessions that end at least {window:g} day(s) before the horizon; "
            f"horizon.days is {days:g}, so no cell would have a value"
        )
    if name == "entropy_trend" and math.ceil(days) < MIN_ACTIVE_DAYS:
        return (
            f"entropy_trend needs users active on {MIN_ACTIVE_DAYS} different days; "
            f"horizon.days is {days:g}, so no cell would have a value"
        )
    period = scenario.creators.period_days
    if name == "topic_drift_to_popular" and "creators" not in swept and days <= period:
        return (
            "topic_drift_to_popular scores creators' reviews, and the first comes after "
            f"creators.period_days ({period:g}); horizon.days is {days:g}, so no cell would "
            "have a value"
        )
    return None


def why_no_value(name: str, scenario: Mapping[str, Any]) -> str | None:
    """Why built-in metric ``name`` has no value in a finished run of ``scenario`` (the
    resolved scenario its manifest holds), as :func:`never_defined` tells it; None when the
    scenario does not say (the logs do: nothing to divide by) or cannot be read here."""
    try:
        world = validate_document(dict(scenario), scanned=True)
    except RecarenaError:
        return None
    reason = never_defined(name, world)
    return None if reason is None else reason.removesuffix(", so no cell would have a value")


def run_metrics(logs: RunLogs, remedy: str = "choose metrics with --metric") -> list[str] | None:
    """The metrics a run was made with (its manifest), each still computable here; a plug-in
    metric this environment cannot import is one line naming it and ``remedy``, not an
    internal error."""
    names = logs.manifest.get("metrics")
    for name in names or []:
        try:
            get_metric(name)
        except LookupError as exc:
            raise RecarenaError(
                f"{logs.run_dir}: the run's metric {name!r} cannot be computed here "
                f"({exc.args[0] if exc.args else exc}); {remedy}"
            ) from None
    return names


def get_metric(name: str) -> Metric:
    metric: Metric = REGISTRY.load(name)
    return metric


_CELL_VALUES = {"arm": pl.Utf8, "rep": pl.Int32, "value": pl.Float64}
_USER_VALUES = {"arm": pl.Utf8, "rep": pl.Int32, "user_id": pl.Int64, "num": pl.Float64,
                "den": pl.Float64}  # fmt: skip


def _one_row_per_cell(frame: pl.DataFrame) -> None:
    """A metric's value of a cell is one number. A plug-in that forgot to aggregate (a row per
    day or per position) was taken as it was: compare's mean and its CI 'over replicates' were
    over those rows instead, with no word."""
    counts = frame.group_by(CELL).len().filter(pl.col("len") > 1).sort(CELL)
    if counts.height:
        arm, rep, rows = counts.row(0)
        raise ValueError(
            f"returned {rows} rows for arm {arm!r} rep {rep}, expected one value per (arm, rep)"
        )


def _only_finished_cells(frame: pl.DataFrame, logs: RunLogs) -> None:
    """A metric's rows are values of the run's finished cells. A plug-in that named another
    arm (or a replicate past the run's) matched no cell: its metric was left out of the A/B
    table with no word, or its values were joined to nothing."""
    finished = pl.DataFrame(
        {"arm": [c.arm for c in logs.cells], "rep": [c.rep for c in logs.cells]},
        schema={"arm": pl.Utf8, "rep": pl.Int32},
    )
    stray = frame.select(CELL).unique().join(finished, on=CELL, how="anti").sort(CELL)
    if stray.height:
        arm, rep = stray.row(0)
        raise ValueError(
            f"returned a value for arm {arm!r} rep {rep}, which is not a finished cell of the run"
        )


def _plugin_safe(
    name: str, compute: Callable[[RunLogs], Any], logs: RunLogs, columns: dict[str, Any]
) -> pl.DataFrame:
    """A metric's frame, its columns checked; a plug-in metric that raises or returns another
    shape is one line naming it and the run (was: an "internal error", exit 1, after a whole
    run whose logs were fine). A built-in's failure stays an internal error: it is our bug."""
    try:
        with plugin_prints_to_stderr():  # stdout is the command's table or path
            frame = compute(logs)
        if not isinstance(frame, pl.DataFrame):
            raise TypeError(f"returned {type(frame).__name__}")
        frame = frame.with_columns(pl.col(c).cast(kind) for c, kind in columns.items())
        if REGISTRY.get(name).source != "built-in":
            if columns is _CELL_VALUES:
                _one_row_per_cell(frame)
            _only_finished_cells(frame, logs)
        return frame
    except (Exception, SystemExit) as exc:
        if REGISTRY.get(name).source == "built-in":
            raise
        wanted = ", ".join(columns)
        raise RecarenaError(
            f"{logs.run_dir}: metric {name!r} failed ({type(exc).__name__}: {first_line(exc)}); "
            f"a metric returns a polars DataFrame with columns {wanted} (the run's logs are "
            "complete: compare it with other --metric choices)"
        ) from None


def compute_metrics(
    logs: RunLogs, names: Sequence[str] | None = None, per_user: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Long frame: metric, arm, rep, value — one row per metric and cell.

    ``per_user`` (from :func:`compute_user_metrics`) saves recomputing the metrics it holds:
    their cell values are Σnum/Σden over its rows. A value a cell does not define (a ratio with
    nothing to divide by, a correlation of constants) is null: some metrics gave NaN, others
    no row at all, for the same kind of cell.
    """
    require_one_world(logs, "compute_metrics")
    names = name_list(names, "names")
    held = set(per_user["metric"].unique()) if per_user is not None else set()
    finished = pl.DataFrame(
        {"arm": [c.arm for c in logs.cells], "rep": [c.rep for c in logs.cells]},
        schema={"arm": pl.Utf8, "rep": pl.Int32},
    ).unique(maintain_order=True)
    frames = []
    for name in names or known_metrics():
        if name in held and per_user is not None:
            computed = ratio_of_sums(per_user.filter(metric=name))
        else:
            computed = _plugin_safe(name, get_metric(name).compute, logs, _CELL_VALUES)
        values = computed.select(
            pl.col("arm").cast(pl.Utf8),
            pl.col("rep").cast(pl.Int32),
            pl.col("value").cast(pl.Float64),
        )
        values = (
            values.join(finished, on=CELL, how="full", coalesce=True)
            .select(
                pl.lit(name).alias("metric"),
                *CELL,
                pl.when(pl.col("value").is_finite()).then(pl.col("value")).alias("value"),
            )
            .sort("arm", "rep")
        )
        frames.append(values)
    return pl.concat(frames)  # metrics in the order asked for


def compute_user_metrics(logs: RunLogs, names: Sequence[str] | None = None) -> pl.DataFrame:
    """Long frame: metric, arm, rep, user_id, num, den — for the metrics that have per-user values.

    Σnum / Σden over a cell's users equals the metric's cell value; metrics without per-user
    values (Gini, coverage, correlations) are left out.
    """
    require_one_world(logs, "compute_user_metrics")
    names = name_list(names, "names")
    frames = []
    for name in names or known_metrics():
        metric = get_metric(name)
        if metric.per_user is None:
            continue
        frames.append(
            _plugin_safe(name, metric.per_user, logs, _USER_VALUES).select(
                pl.lit(name).alias("metric"),
                pl.col("arm").cast(pl.Utf8),
                pl.col("rep").cast(pl.Int32),
                pl.col("user_id").cast(pl.Int64),
                pl.col("num").cast(pl.Float64),
                pl.col("den").cast(pl.Float64),
            )
        )
    schema = {"metric": pl.Utf8, "arm": pl.Utf8, "rep": pl.Int32, "user_id": pl.Int64,
              "num": pl.Float64, "den": pl.Float64}  # fmt: skip
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
