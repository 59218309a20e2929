"""Legal but degenerate scenarios and the analysis of their runs.

Scenarios that validate fine and reach corner states (arms whose metrics the baseline has no
value for, ...): compare, report and the Python API must say what cannot be computed instead
of printing a wrong table or crashing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from rich.console import Console

from recarena.analysis import metrics_longterm as lt
from recarena.analysis.compare import baseline_of, compare, format_table
from recarena.analysis.grid import by_row
from recarena.analysis.load import load
from recarena.analysis.metrics import compute_metrics
from recarena.analysis.metrics_creators import drift_decomposition, topic_drift_to_popular
from recarena.analysis.metrics_retention import arm_preference
from recarena.analysis.ope import arm_layouts, off_policy_evaluation
from recarena.analysis.report import build_report, render_html
from recarena.analysis.report_data import Lorenz, lorenz_curve
from recarena.analysis.report_plots import lorenz_figure, to_svg
from recarena.recommenders.base import NoParams, RecommenderContext
from recarena.recommenders.registry import build
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.types import PAD_ITEM, SlateBatch
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_in_process import assert_refused, cli
from tests.test_metrics_library import make_logs, make_run
from tests.test_rerankers import N_ITEMS, _requests
from tests.test_validate_gate import base_doc, refused_everywhere

DAY = 86_400.0


def long_frame(values: dict[tuple[str, str, int], float]) -> pl.DataFrame:
    """A metric-values frame (metric, arm, rep, value) as compare() accepts it."""
    return pl.DataFrame(
        [{"metric": m, "arm": a, "rep": r, "value": v} for (m, a, r), v in values.items()],
        schema={"metric": pl.Utf8, "arm": pl.Utf8, "rep": pl.Int32, "value": pl.Float64},
    )


def table_text(frame: pl.DataFrame) -> str:
    console = Console(width=120, file=io.StringIO())
    console.print(format_table(frame))
    return console.file.getvalue()  # type: ignore[attr-defined]


# ------------------------------------------------------ a metric the baseline has no value for
def test_a_metric_only_other_arms_have_is_not_passed_off_as_the_baseline():
    """Was: a metric with values for a conversation arm but not for the list baseline (the
    conversation metrics) printed that arm's row with no Δ and no word, and when it came first
    the table was titled "A/B vs baseline 'conv'" although the deltas below were against
    'random'. Now every row names its baseline, the row says n/a, and a warning says why."""
    values = {
        ("conv_success_rate", "conv", 0): 0.5,
        ("conv_success_rate", "conv", 1): 0.6,
        ("ctr", "random", 0): 0.05,
        ("ctr", "random", 1): 0.06,
        ("ctr", "conv", 0): 0.08,
        ("ctr", "conv", 1): 0.09,
    }
    with pytest.warns(UserWarning, match=r"conv_success_rate \(conv\): no Δ, the baseline arm"):
        frame = compare(long_frame(values), baseline="random")
    assert baseline_of(frame) == "random"
    assert set(frame["baseline"]) == {"random"}
    text = table_text(frame)
    assert "A/B vs baseline 'random'" in text
    conv_row = next(line for line in text.splitlines() if "conv_success_rate" in line)
    assert "n/a" in conv_row


def test_replicates_that_do_not_pair_give_no_delta_rather_than_nan():
    """Was: an arm with a value only in replicate 1 against a baseline with a value only in
    replicate 0 (a rating mean where one arm's users never clicked in one world) got the mean
    of no differences: Δ = NaN, printed as '+nan%'."""
    values = {
        ("mean_rating", "random", 0): 3.0,
        ("mean_rating", "mf", 1): 4.0,
        ("ctr", "random", 0): 0.05,
        ("ctr", "random", 1): 0.06,
        ("ctr", "mf", 0): 0.07,
        ("ctr", "mf", 1): 0.08,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = compare(long_frame(values), baseline="random")
    assert any("mean_rating (mf): no Δ" in str(w.message) for w in caught)
    row = frame.filter(metric="mean_rating", arm="mf").row(0, named=True)
    assert row["delta"] is None and row["rel_delta"] is None
    assert not frame.select(pl.col(pl.Float64).is_nan().any()).row(0).count(True)
    assert "nan" not in table_text(frame).lower()


@pytest.fixture(scope="module")
def list_and_conversation_run(tmp_path_factory) -> Path:
    """A list baseline and a conversation arm: conversation metrics exist for one arm only."""
    root = tmp_path_factory.mktemp("mixed")
    doc = base_doc(root)
    doc["arms"].append(
        {
            "name": "conv",
            "recommender": {"type": "popularity"},
            "surface": {"type": "conversation", "k": 3, "max_turns": 3},
        }
    )
    doc["metrics"] = ["conv_success_rate", "ctr"]  # the one-arm metric first
    run_experiment(parse_scenario(doc), root / "run", executor="local")
    return root / "run"


def test_report_and_compare_name_the_real_baseline(list_and_conversation_run):
    run = list_and_conversation_run
    report = build_report(run)
    assert report.baseline == "random"
    assert any("conv_success_rate (conv): no Δ" in note for note in report.notes)
    conv = next(r for r in report.ab_rows if r.metric == "conv_success_rate")
    assert conv.arm == "conv" and conv.delta == "n/a"
    code, stderr = cli("compare", str(run), "-m", "conv_success_rate", "-m", "ctr")
    assert code == 0, stderr
    assert "warning: conv_success_rate (conv): no Δ" in stderr
    assert "Traceback" not in stderr


# ------------------------------------------------------------ a run in which nobody arrived
@pytest.fixture(scope="module")
def run_without_visits(tmp_path_factory) -> Path:
    """Legal, and empty: a visit rate so low that no user arrives in the horizon."""
    root = tmp_path_factory.mktemp("empty")
    doc = base_doc(root)
    doc["population"]["visits_per_day"] = 1e-6
    run_experiment(parse_scenario(doc), root / "run", executor="local")
    return root / "run"


def test_gini_of_a_cell_without_exposures_is_undefined_not_zero(run_without_visits):
    """Was: item and creator Gini 0 ("exposure shared perfectly equally") for cells with no
    exposure at all, compared as +0 [+0, +0] with p = 1; the daily series already called such
    a day undefined. Now the cells have no value and compare names the metrics in its warning."""
    logs = load(run_without_visits)
    assert not logs.exposures.select(pl.len()).collect().item()
    values = compute_metrics(logs, ["item_gini", "creator_gini", "click_gini", "coverage"])
    gini_values = values.filter(pl.col("metric") != "coverage")["value"]
    assert gini_values.len() and gini_values.null_count() == gini_values.len()
    assert values.filter(metric="coverage")["value"].to_list() == [0.0, 0.0]
    with pytest.warns(UserWarning, match="item_gini, creator_gini: no finished cell has a value"):
        frame = compare(logs, metrics=["item_gini", "creator_gini", "coverage"])
    assert frame["metric"].unique().to_list() == ["coverage"]


def test_report_of_a_run_without_exposures_says_so_instead_of_drawing(run_without_visits):
    """Was: empty CTR and Gini panels, Lorenz diagonals labelled "Gini 0.000" and a "CTR by
    position" heading over nothing, with no word on why."""
    report = build_report(run_without_visits)
    assert set(report.figure_notes) == {"series", "lorenz", "heatmap"}
    assert all("No exposures were logged" in note for note in report.figure_notes.values())
    assert not report.figures and not report.heatmaps
    html = render_html(report)
    assert "Gini 0.000" not in html and "<svg" not in html
    assert html.count("No exposures were logged in any finished cell") == 3
    assert any("item_gini" in note for note in report.notes)


def test_lorenz_of_an_arm_without_exposures_is_not_the_diagonal():
    """An arm with no exposure gets no curve and "(no exposures)" in the legend, not a
    diagonal "Gini 0.000" next to arms that have curves."""
    x, y = lorenz_curve(np.array([5, 1, 0, 0]))
    curves = [Lorenz("a", x, y, 0.6), Lorenz("b", *lorenz_curve(np.zeros(0)), None)]
    svg = to_svg(lorenz_figure(curves, curves, {"a": "#000000", "b": "#111111"}), "t")
    assert "a (Gini 0.600)" in svg and "b (no exposures)" in svg
    assert "b (Gini" not in svg


# ------------------------------------------------------------- creators never shown at all
def test_creators_never_shown_are_censored_at_the_scenarios_horizon():
    """Was: a creator never shown counted up to the last session's end, and with no session
    at all (nobody arrived) 0 days, as if shown at once: creator_time_to_exposure was 0.0,
    the best possible value, for a run that showed nothing."""
    items = {"item_id": [0, 1], "creator_id": [0, 1], "created_at": [0.0, 0.5 * DAY]}
    nobody = make_logs({"items": items}, days=2)
    first = lt.creator_first_exposure(nobody)
    assert first["days"].to_list() == pytest.approx([2.0, 1.5])
    assert first["censored"].to_list() == [True, True]
    assert compute_metrics(nobody, ["creator_time_to_exposure"])["value"].item() == 1.75
    # the horizon, not the last session's end (day 1), censors a creator never shown
    sessions = {"user_id": [0], "end_time": [1.0 * DAY]}
    exposures = {"item_id": [0], "creator_id": [0], "time": [0.25 * DAY]}
    some = make_logs({"items": items, "sessions": sessions, "exposures": exposures}, days=2)
    assert lt.creator_first_exposure(some)["days"].to_list() == pytest.approx([0.25, 1.5])
    # no scenario and no session: unknown, not 0
    unknown = make_logs({"items": items})
    assert lt.creator_first_exposure(unknown)["days"].to_list() == [None, None]


# ------------------------------------------------------------ PopREO without clicks or views
def test_pop_reo_without_a_click_or_an_exposure_is_undefined():
    """Was: 1 ("one group gets all of it") for a cell where nothing was clicked, so no item
    is popular, and 0 ("equal exposure") for one where nothing was shown."""
    items = {"item_id": [0, 1, 2, 3], "quality": [0.0, 1.0, 2.0, 3.0]}
    shown = {"item_id": [2, 3, 3], "request_id": [0, 0, 1], "clicked": [False] * 3}
    no_clicks = make_logs({"items": items, "exposures": shown})
    assert compute_metrics(no_clicks, ["pop_reo"])["value"].to_list() == [None]
    no_exposures = make_logs({"items": items})
    assert compute_metrics(no_exposures, ["pop_reo"])["value"].to_list() == [None]
    # with a click the head exists: item 3 (good, head) shown twice, item 2 (good, tail) once
    clicks = {"item_id": [3], "user_id": [0]}
    clicked = make_logs({"items": items, "exposures": shown, "interactions": clicks})
    assert compute_metrics(clicked, ["pop_reo"])["value"].item() == pytest.approx(1 / 3)


# -------------------------------------------------- undefined values in the Python analysis API
def test_compute_metrics_gives_null_for_every_cell_it_cannot_define():
    """Was: a correlation over one creator was NaN, a ratio with nothing to divide by had no
    row at all, for the same kind of cell: a notebook pivot got NaN, null and missing mixed."""
    items = {"item_id": [0, 1], "creator_id": [0, 0], "quality": [0.0, 1.0]}
    creators = {"creator_id": [0], "quality": [0.5]}
    shown = {"item_id": [0, 1], "creator_id": [0, 0], "request_id": [0, 0], "user_id": [0, 0]}
    logs = make_run(
        {
            ("a", 0): {"items": items, "creators": creators, "exposures": shown},
            ("b", 0): {"items": items, "creators": creators},  # nobody arrived in arm b
        }
    )
    values = compute_metrics(logs, ["exposure_merit", "ctr"])
    assert values.select("metric", "arm").rows() == [
        ("exposure_merit", "a"),
        ("exposure_merit", "b"),
        ("ctr", "a"),
        ("ctr", "b"),
    ]
    assert values["value"].to_list() == [None, None, 0.0, None]


def test_attention_unfairness_of_pages_nobody_examined_is_undefined():
    """Was: 1 (half the worst) for a carousel whose rows were all skipped: pages with no
    attention at all counted as every item denied its relevance."""
    unseen = {
        "item_id": [0, 1, 2, 3],
        "request_id": [0, 0, 1, 1],
        "position": [0, 1, 0, 1],
        "examined": [False] * 4,
        "true_utility": [0.0, 1.0, 0.5, 0.5],
    }
    logs = make_logs({"exposures": unseen})
    assert compute_metrics(logs, ["attention_unfairness"])["value"].to_list() == [None]
    # slot 0 always looked at, slot 1 never: w = (1, 0), so a = (1, 0) and r = (½, ½) on the
    # page: Σ|A − R| / pages = (½ + ½) / 1
    seen = {**unseen, "item_id": [0, 1], "request_id": [0, 0], "position": [0, 1],
            "examined": [True, False], "true_utility": [0.0, 0.0]}  # fmt: skip
    value = compute_metrics(make_logs({"exposures": seen}), ["attention_unfairness"])
    assert value["value"].item() == pytest.approx(1.0)


# --------------------------------------------------------------- OPE across different surfaces
@pytest.mark.parametrize(
    ("target", "logging", "fragment"),
    [
        ("conv", "random", "arm 'conv' shows a conversation of 3 items a turn and --logging arm "
         "'random' a list of 10"),
        ("random", "conv", "arm 'random' shows a list of 10 and --logging arm 'conv' a conv"),
    ],
)  # fmt: skip
def test_ope_between_arms_of_different_surfaces_is_refused(
    list_and_conversation_run, target, logging, fragment
):
    """Was: a conversation arm's CTR estimated from a list arm's log (or the reverse) came out
    as a table of numbers, exit 0, though the logged slots the target has no counterpart for
    could only count as misses."""
    code, stderr = cli("ope", str(list_and_conversation_run), "--target", target,
                       "--logging", logging)  # fmt: skip
    assert_refused(code, stderr, fragment)


def test_ope_between_arms_of_one_surface_still_runs(list_and_conversation_run):
    logs = load(list_and_conversation_run)
    assert arm_layouts(logs) == {"random": ("list", 10), "popularity": ("list", 10),
                                 "conv": ("conversation", 3)}  # fmt: skip
    table = off_policy_evaluation(logs, "popularity", "random")
    assert table.height and set(table["target"]) == {"popularity"}


# ------------------------------------------------------------------ sweeps of one and of two
@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory) -> dict[int, Path]:
    """The same tiny scenario swept over one value and over two."""
    root = tmp_path_factory.mktemp("sweeps")
    runs = {}
    for n in (1, 2):
        doc = base_doc(root)
        doc["sweep"] = {"population.explore_prob": [0.1, 0.9][:n]}
        runs[n] = root / f"sweep{n}"
        run_experiment(parse_scenario(doc), runs[n], executor="local")
    return runs


def test_the_analysis_api_does_not_pool_the_points_of_a_sweep(sweep_runs):
    """Was: load() of a two-point sweep fed to compute_metrics, compare or
    off_policy_evaluation grouped both points' cells as one (arm, rep): a CTR pooled over two
    different worlds, n_reps 1, no word."""
    logs = load(sweep_runs[2])
    for call, name in [
        (lambda: compute_metrics(logs, ["ctr"]), "compute_metrics"),
        (lambda: compare(logs, metrics=["ctr"]), "compare"),
        (lambda: off_policy_evaluation(logs, "popularity", "random"), "off_policy_evaluation"),
    ]:
        with pytest.raises(RecarenaError, match=rf"sweep of 2 points and {name} would pool"):
            call()
    one = compute_metrics(load(sweep_runs[2], point=1), ["ctr"])
    assert one.height == 2  # one point at a time still works


def test_the_series_functions_do_not_pool_the_points_of_a_sweep(sweep_runs):
    """Was: drift_decomposition(load(sweep)) (the call docs/guide/creators-and-social.md showed
    on scenarios/creators.yaml, a two-point sweep) and the long-term series kept one point's
    cell per (arm, rep) or pooled both, without a word."""
    logs = load(sweep_runs[2])
    calls = {
        "drift_decomposition": lambda: drift_decomposition(logs),
        "topic_drift_to_popular": lambda: topic_drift_to_popular(logs),
        "homogenization_relative": lambda: lt.homogenization_relative(logs, "random"),
        "homogenization_over_time": lambda: lt.homogenization_over_time(logs),
        "entropy_by_user_day": lambda: lt.entropy_by_user_day(logs),
        "creator_gini_over_time": lambda: lt.creator_gini_over_time(logs),
        "creator_survival": lambda: lt.creator_survival(logs),
        "creator_first_exposure": lambda: lt.creator_first_exposure(logs),
        "creator_exposure_merit": lambda: lt.creator_exposure_merit(logs),
        "arm_preference": lambda: arm_preference(logs, "popularity", "random"),
    }
    for name, call in calls.items():
        with pytest.raises(RecarenaError, match=rf"sweep of 2 points and {name} would pool"):
            call()
    one = load(sweep_runs[2], point=1)
    assert lt.homogenization_relative(one, "random").height == 2
    assert lt.creator_survival(one).height > 0


def test_a_sweep_of_one_point_needs_no_point(sweep_runs):
    """Was: report and ope refused a one-point sweep until --point 0 was given, though it
    holds one world; compare already took it."""
    run = sweep_runs[1]
    assert build_report(run).ab_rows
    code, stderr = cli("ope", str(run), "--target", "popularity")
    assert code == 0, stderr
    assert compute_metrics(load(run), ["ctr"]).height == 2


# ----------------------------------------------- built-in recommenders at the ends of their range
@pytest.mark.parametrize(
    "recommender",
    [
        {"type": "epsilon_greedy", "params": {"epsilon": 1.0}},
        {"type": "thompson_linear", "params": {"scale": 1e300}},
        {"type": "linucb", "params": {"alpha": 1e300}},
    ],
    ids=["always_explore", "huge_posterior_scale", "huge_ucb_bonus"],
)
def test_builtins_at_legal_extremes_run_what_validate_accepted(tmp_path, recommender):
    """Was: validate ok, then every cell of the arm failed (exit 2). epsilon 1 on a catalog the
    users had mostly seen showed the base item where nothing was left to explore, with
    propensity (1 − ε)·p = 0; a huge Thompson scale or UCB alpha gave float64 scores past
    float32's range, logged as -inf/inf, which the slate guard refuses."""
    doc = base_doc(tmp_path)
    doc["catalog"]["initial_items"] = 12  # k = 10: little is left to explore after a few clicks
    doc["population"]["visits_per_day"] = 8
    doc["arms"][1] = {"name": "extreme", "recommender": recommender}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assert cli("validate", str(path))[0] == 0
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(tmp_path / "o"))
    assert code == 0, stderr
    shown = load(tmp_path / "o").exposures.filter(pl.col("arm") == "extreme").collect()
    assert shown.height
    assert shown["propensity"].min() > 0 and shown["propensity"].max() <= 1
    scores = shown["score"].drop_nans().drop_nulls()
    assert scores.is_finite().all()


# ------------------------------------------------ re-rankers asking for more than the catalog
class WidthSpy:
    """A base that records how many items each request asked it for (padding past the catalog)."""

    Params = NoParams
    asked: list[int] = []

    def __init__(self, params, ctx) -> None:
        self.name = "spy"

    def fit(self, history) -> None:
        return None

    def update(self, feedback) -> None:
        return None

    def recommend(self, requests):
        WidthSpy.asked.append(requests.k)
        n, b = requests.catalog.n_items, len(requests)
        order = np.arange(min(n, requests.k))
        items = np.full((b, requests.k), PAD_ITEM, np.int64)
        items[:, : order.size] = order
        scores = np.where(items >= 0, -items.astype(np.float32), np.nan).astype(np.float32)
        return SlateBatch(items, scores, np.ones(items.shape, np.float32))


@pytest.mark.parametrize(
    "wrapper", ["mmr", "calibrated", "provider_fair", "cluster_explore", "novelty_aware"]
)
def test_rerankers_ask_their_base_for_no_more_than_the_catalog(wrapper):
    """Was: candidates 5000 (legal) over a 15-item catalog made mmr compare 5000 x 5000 pairs of
    padding per page: minutes a page, a run validate accepted that never ended."""
    WidthSpy.asked = []
    ctx = RecommenderContext(np.random.default_rng(0), 10, 3)
    rec = build(wrapper, {"base": "tests.test_hostile_legal:WidthSpy", "candidates": 5000}, ctx)
    slates = rec.recommend(_requests(3))
    assert WidthSpy.asked and max(WidthSpy.asked) == N_ITEMS
    shown = slates.items[slates.items != PAD_ITEM]
    assert shown.size and shown.max() < N_ITEMS


# --------------------------------------------------------- torch models' steps past float32
@pytest.mark.parametrize(
    ("recommender", "field"),
    [
        ({"type": "mf", "params": {"lr": 1e300}}, "lr"),
        ({"type": "mf", "params": {"reg": 1e300}}, "reg"),
        ({"type": "sasrec_native", "params": {"lr": 1e300}}, "lr"),
    ],
    ids=["mf_lr", "mf_reg", "sasrec_lr"],
)
def test_a_torch_step_past_float32_is_refused_by_validate(tmp_path, recommender, field):
    """Was: validate ok, then every fit raised "value cannot be converted to type float without
    overflow" and every cell of the arm failed."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = {"name": "torch", "recommender": recommender}
    refused_everywhere(tmp_path, doc, f"arms[1].recommender.params.{field}: Input should be less")


@pytest.mark.parametrize("field", ["weight", "prior"])
def test_hour_aware_weights_past_a_million_are_refused(tmp_path, field):
    """Was: validate ok for weight or prior 1e300, then RuntimeWarnings (overflow in cast,
    invalid value in multiply) and their source lines in the middle of the run's output."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = {"name": "clock", "recommender": {"type": "hour_aware",
                                                        "params": {field: 1e300}}}  # fmt: skip
    refused_everywhere(tmp_path, doc, f"arms[1].recommender.params.{field}: Input should be less")


def test_a_metric_without_a_value_is_not_blamed_on_an_empty_log():
    """Was: "nothing to divide by: no exposures, sessions or clicks were logged" for every
    metric without a value, also retention_d7 on a 2-day run full of sessions."""
    sessions = {"session_id": [0, 1], "user_id": [0, 1], "day": [0, 1], "pages": [2, 3],
                "clicks": [1, 0], "satisfaction": [0.1, 0.2]}  # fmt: skip
    logs = make_run({("a", 0): {"sessions": sessions}, ("b", 0): {"sessions": sessions}}, days=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = compare(logs, metrics=["retention_d7", "session_length"])
    lines = [str(w.message) for w in caught if "retention_d7" in str(w.message)]
    assert len(lines) == 1 and "8 days for retention_d7" in lines[0]
    assert "no exposures, sessions or clicks were logged" not in lines[0]
    assert frame["metric"].unique().to_list() == ["session_length"]


def test_ctr_when_examined_of_a_slot_nobody_examined_is_null():
    """Was: NaN (0/0) in by_slot, by_row and by_col for a carousel whose rows were skipped."""
    shown = {"item_id": [0, 1, 2], "request_id": [0, 0, 1], "row": [0, 1, 0], "col": [0, 0, 0],
             "position": [0, 1, 0], "examined": [True, False, True],
             "clicked": [True, False, False]}  # fmt: skip
    frame = by_row(make_logs({"exposures": shown}))
    assert frame["ctr_when_examined"].to_list() == [0.5, None]
    assert frame["ctr"].to_list() == [0.5, 0.0]
