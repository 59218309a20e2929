"""Calibration: hand-checked pieces, then recovery of known parameters from data the simulator
itself generated, then a calibrated population running in the engine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from recarena import analysis
from recarena.agents.users.calibration import (
    DAY,
    REG_CANDIDATES,
    CalibratedPopulation,
    CalibrationConfig,
    Factors,
    calibrate,
    creators_from_genres,
    fit_activity,
    fit_choice,
    held_out_nll,
    temporal_split,
)
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.datasets import load_interactions
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_subprocess import recarena

TRUE_TEMPERATURE, TRUE_NO_CLICK, TRUE_RATE = 0.5, 1.0, 1.0

# A stationary world where every user visits at exactly TRUE_RATE sessions/day (no activity
# spread, visits independent of satisfaction) and the random recommender shows uniform slates:
# the situation the pseudo-exposure protocol assumes.
KNOWN = {
    "name": "known",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 6, "tick_seconds": 120},
    "catalog": {"initial_items": 150, "topics": 4},
    "population": {
        "users": 150,
        "temperature": TRUE_TEMPERATURE,
        "no_click_utility": TRUE_NO_CLICK,
        "visits_per_day": TRUE_RATE,
        "activity_sd": 0.0,
        "return_sensitivity": 0.0,
    },
    "creators": {"count": 4, "uploads_per_day": 0.0},
    "surface": {"k": 5},
    "arms": [{"name": "random", "recommender": {"type": "random"}}],
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> analysis.RunLogs:
    run_dir = tmp_path_factory.mktemp("known") / "run"
    run_experiment(parse_scenario(KNOWN), run_dir, executor="local")
    return analysis.load(run_dir)


@pytest.fixture(scope="module")
def interactions_file(simulated, tmp_path_factory) -> Path:
    """The simulation's exposures as a generic interactions file: one row per impression,
    click = 1 when it was clicked (what a production log with impressions looks like)."""
    path = tmp_path_factory.mktemp("inter") / "interactions.csv"
    simulated.exposures.select(
        pl.col("user_id").alias("user"),
        pl.col("item_id").alias("item"),
        pl.col("time").alias("timestamp"),
        pl.col("clicked").cast(pl.Int8).alias("click"),
    ).collect().write_csv(path)
    return path


# ------------------------------------------------------------------------- by hand
def test_temporal_split_holds_out_each_users_latest_share() -> None:
    # rows sorted by user then time: user 0 has 5 rows, user 1 has 1, user 2 has 10
    user = np.array([0] * 5 + [1] + [2] * 10)
    held = temporal_split(user, 0.2)
    assert held[:5].tolist() == [False, False, False, False, True]  # floor(0.2*5) = 1
    assert held[5:6].tolist() == [False]  # a single row stays in training
    assert held[6:].tolist() == [False] * 8 + [True, True]


def test_activity_sessions_and_shrunk_rate() -> None:
    gap = 1800.0
    # user 0: sessions at t=0 (2 rows 10 s apart) and t=2 days; user 1: one row at t=3 days
    user = np.array([0, 0, 0, 1])
    ts = np.array([0.0, 10.0, 2 * DAY, 3 * DAY])
    consumed = np.array([True, True, False, True])
    act = fit_activity(user, ts, consumed, 2, gap, prior_days=1.0)
    assert act.sessions.tolist() == [2, 1]
    # exposure from first visit to the data's end: user 0 → 3 days, user 1 → 0 days
    # pooled rate = (2-1 + 0) / (3 + 0) = 1/3; alpha = 1/3 * 1, beta = 1
    assert act.pooled_rate == pytest.approx(1 / 3)
    assert act.rate.tolist() == pytest.approx([(1 + 1 / 3) / 4, (0 + 1 / 3) / 1])
    assert act.session_length.tolist() == pytest.approx([1.0, 1.0])  # (2 + 0)/2, 1/1


def test_fit_choice_on_hand_made_slates() -> None:
    # 2-slot slates, both slots equal utility 0: with u0 = 0 and any temperature the three
    # options are equally likely, so clicks on 1/3 of the slates per option must fit u0 ≈ 0
    utility = np.zeros((300, 2))
    clicked = np.repeat([-1, 0, 1], 100)
    fit = fit_choice(utility, clicked)
    assert fit.no_click_utility == pytest.approx(0.0, abs=1e-4)
    assert fit.nll == pytest.approx(np.log(3), rel=1e-6)
    assert fit.click_rate == pytest.approx(2 / 3)


def test_creators_are_first_genres() -> None:
    creator, names = creators_from_genres([["Drama", "War"], [], ["Comedy"], ["Drama"]])
    assert names == ["(none)", "Comedy", "Drama"]
    assert creator.tolist() == [2, 0, 1, 2]


# ------------------------------------------------------------- recovery from the simulator
def test_choice_model_recovered_from_simulated_exposures(simulated) -> None:
    """MLE on the simulator's own pages (examined slots, true utilities) recovers the
    temperature and no-click utility it ran with.

    Tolerance: ~2,000 pages with a ~40 % click rate give standard errors of about 2 % on the
    temperature and 0.05 on u0 (observed information at the optimum); 10 % and 0.15 are
    three standard errors, so a correct fitter passes and a biased one (e.g. ignoring
    examination, which changes T by > 20 %) fails."""
    pages = (
        simulated.exposures.filter(pl.col("examined"))
        .group_by("request_id")
        .agg(pl.col("true_utility"), pl.col("clicked"))
        .collect()
    )
    k = KNOWN["surface"]["k"]
    utility = np.full((pages.height, k), np.nan)
    clicked = np.full(pages.height, -1)
    for row, (u, c) in enumerate(
        zip(pages["true_utility"].to_list(), pages["clicked"].to_list(), strict=True)
    ):
        utility[row, : len(u)] = u
        if any(c):
            clicked[row] = c.index(True)
    fit = fit_choice(utility, clicked)
    assert pages.height > 1000
    assert fit.temperature == pytest.approx(TRUE_TEMPERATURE, rel=0.10)
    assert fit.no_click_utility == pytest.approx(TRUE_NO_CLICK, abs=0.15)


def test_calibrate_recovers_activity_from_simulated_log(simulated, interactions_file) -> None:
    """Sessionising the impressions log recovers the 1 session/day every user ran with.

    Tolerance 10 %: ~750 sessions after users' first ones give a Poisson standard error of
    ~4 % on the pooled rate, and two visits < 30 min apart merge into one session (about 3 %
    of visits at 1/day), a small downward bias."""
    data = load_interactions(interactions_file)
    pop = calibrate(data, CalibrationConfig(topics=4, epochs=3, slates_per_user=20))
    assert pop.n_users == KNOWN["population"]["users"]
    assert pop.scalars["pooled_sessions_per_day"] == pytest.approx(TRUE_RATE, rel=0.10)
    assert pop.activity.mean() == pytest.approx(TRUE_RATE, rel=0.10)
    sessions = simulated.sessions.collect()
    true_clicks = sessions["clicks"].mean()
    assert pop.scalars["mean_session_length"] == pytest.approx(true_clicks, rel=0.10)
    np.testing.assert_allclose(pop.topics.sum(axis=1), 1.0, rtol=1e-5)  # simplex rows
    # fitted quality follows the true quality (random slates: clicks rise with quality)
    truth = simulated.items.sort("item_id").collect()["quality"].to_numpy()
    fitted = pop.quality[np.argsort(pop.item_id.astype(int))]
    order = np.argsort(np.argsort(truth)), np.argsort(np.argsort(fitted))
    assert np.corrcoef(*order)[0, 1] > 0.5


# ---------------------------------------------------------------- engine on a calibrated file
def test_engine_runs_on_calibrated_population(interactions_file, tmp_path: Path) -> None:
    data = load_interactions(interactions_file)
    pop = calibrate(data, CalibrationConfig(topics=4, epochs=2, slates_per_user=10))
    path = tmp_path / "pop.parquet"
    pop.save(path)
    loaded = CalibratedPopulation.load(path)
    np.testing.assert_array_equal(loaded.taste, pop.taste)
    assert loaded.title == pop.title and loaded.scalars["temperature"] == pop.scalars["temperature"]

    doc = {
        "name": "cal",
        "seed": 1,
        "replicates": 1,
        "horizon": {"days": 1, "tick_seconds": 300},
        "population": {"from": "calibrated", "path": str(path), "temperature": 0.7},
        "creators": {"uploads_per_day": 0.0},
        "arms": [{"name": "pop", "recommender": {"type": "popularity"}}],
    }
    run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")
    logs = analysis.load(tmp_path / "run")
    resolved = logs.manifest["scenario"]
    assert resolved["population"]["users"] == pop.n_users
    assert resolved["population"]["temperature"] == 0.7  # set in YAML: kept
    assert resolved["population"]["no_click_utility"] == pytest.approx(
        pop.scalars["no_click_utility"]
    )  # not set: fitted
    assert resolved["catalog"]["topics"] == 4
    items = logs.items.collect()
    assert items.height == pop.n_items
    np.testing.assert_allclose(np.stack(items["topics"].to_list()), pop.topics, rtol=1e-6)
    assert logs.exposures.select(pl.len()).collect().item() > 0
    # the fitted user model answers the pages: ordinal stars 1..5 on every click
    assert loaded.interest is not None and loaded.interest.weights == pop.interest.weights
    assert resolved["population"]["policy"].endswith("calibrated_policy:CalibratedUserPolicy")
    stars = logs.interactions.collect()["rating"].to_numpy()
    assert stars.size > 0 and set(np.unique(stars).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_calibrated_users_choose_with_their_short_term_interest(
    interactions_file, tmp_path: Path
) -> None:
    """A page's choice uses the calibrated utility (rule utility + short-term interest +
    conformity), the same numbers ``utility`` answers: a respond that read only the rule
    user's part made every calibrated user click on every page."""
    from recarena.simulator.core.types import PageBatch, RequestBatch, SlateBatch
    from recarena.simulator.engine.eventlog import EventLog
    from recarena.simulator.engine.model import SimulationModel

    pop = calibrate(load_interactions(interactions_file), CalibrationConfig(topics=4, epochs=2))
    path = tmp_path / "pop.parquet"
    pop.save(path)
    doc = {
        "name": "cal",
        "seed": 1,
        "horizon": {"days": 1},
        "population": {"from": "calibrated", "path": str(path)},
        "arms": [{"name": "pop", "recommender": {"type": "popularity"}}],
    }
    (tmp_path / "cell").mkdir()
    from recarena.agents.users.calibrated import resolve_calibrated

    scenario = resolve_calibrated(parse_scenario(doc))
    model = SimulationModel(scenario, 0, 0, EventLog(tmp_path / "cell"))
    policy = model.world.policy
    rng = np.random.default_rng(0)
    users = np.arange(min(50, pop.n_users))
    items = np.stack([rng.choice(pop.n_items, 5, replace=False) for _ in users])
    explore = np.zeros(users.size, bool)
    expected = policy.utility(users, items, explore)
    from recarena.agents.users.rule_user import RuleUserPolicy

    rule_part = RuleUserPolicy._utility(policy, users, items, explore, np.ones(items.shape, bool))
    assert not np.allclose(expected, rule_part)  # the user model adds something here
    catalog = model.world.catalog.view()
    requests = RequestBatch(
        0.0,
        users,
        users,
        np.zeros(users.size, np.int32),
        5,
        catalog,
        np.full((users.size, 1), -1, np.int64),
    )
    pages = PageBatch(
        requests,
        SlateBatch(items, np.zeros(items.shape, np.float32), np.ones(items.shape, np.float32)),
        explore,
        np.zeros(users.size, np.float32),
        np.arange(users.size, dtype=np.uint64),
        np.ones(items.shape, bool),
    )
    response = policy.respond(pages)
    np.testing.assert_array_equal(response.utility, expected)


def test_missing_calibrated_file_without_dataset_is_one_error(tmp_path: Path) -> None:
    from recarena.agents.users.calibrated import resolve_calibrated

    path = tmp_path / "absent.parquet"
    doc = {
        "name": "cal",
        "population": {"from": "calibrated", "path": str(path)},
        "arms": [{"name": "r", "recommender": {"type": "random"}}],
    }
    with pytest.raises(RecarenaError, match=f"{path} not found.*recarena calibrate"):
        resolve_calibrated(parse_scenario(doc))


@pytest.fixture(scope="module")
def population_file(interactions_file, tmp_path_factory) -> Path:
    """A small calibrated population (4 topics) with its fitted user model."""
    pop = calibrate(load_interactions(interactions_file), CalibrationConfig(topics=4, epochs=2))
    path = tmp_path_factory.mktemp("population") / "pop.parquet"
    pop.save(path)
    return path


def _calibrated_scenario(folder: Path, population: Path, **sections: dict) -> Path:
    """A one-cell, one-day scenario on ``population``; ``sections`` are merged into it."""
    doc: dict = {
        "name": "cal",
        "seed": 1,
        "replicates": 1,
        "horizon": {"days": 1, "tick_seconds": 300},
        "population": {"from": "calibrated", "path": str(population)},
        "creators": {"uploads_per_day": 0.0},
        "arms": [{"name": "pop", "recommender": {"type": "popularity"}}],
    }
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    path = folder / "cal.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_seed_on_the_command_line_keeps_the_fitted_user_model(population_file, tmp_path):
    """``run --seed`` (and ``--replicates``) read the scenario back from a dump holding every
    default, as if the YAML had written them all: the run then kept the schema's temperature
    (0.5), no-click utility (1.0) and rule user instead of the fitted ones, without a word."""
    from recarena.agents.users.calibrated import CALIBRATED_POLICY

    scenario = _calibrated_scenario(tmp_path, population_file)
    run_dir = tmp_path / "run"
    done = recarena("run", str(scenario), "-o", str(run_dir), "--seed", "3", "-r", "1", "-q")
    assert done.returncode == 0, done.stderr
    resolved = json.loads((run_dir / "manifest.json").read_text())["scenario"]
    fitted = CalibratedPopulation.load(population_file).scalars
    assert resolved["seed"] == 3
    assert resolved["population"]["temperature"] == pytest.approx(fitted["temperature"])
    assert resolved["population"]["no_click_utility"] == pytest.approx(fitted["no_click_utility"])
    assert resolved["population"]["policy"] == CALIBRATED_POLICY


def test_calibrate_command(interactions_file, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recarena.simulator.cli import app

    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(
        app, ["calibrate", str(interactions_file), "-o", str(out), "--topics", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "150 users" in result.output and out.exists()
    assert out.with_suffix(".items.parquet").exists() and out.with_suffix(".json").exists()
    assert CalibratedPopulation.load(out).n_topics == 3
    # the closing line names every file written (the .interest.npz a run reads was left out)
    written = result.output.strip().splitlines()[-1].removeprefix("wrote ").split(", ")
    assert sorted(written) == sorted(str(p) for p in tmp_path.iterdir()), result.output


@pytest.mark.parametrize("share", [3, 0])
def test_calibrate_keeps_whole_users_within_max_ratings(interactions_file, tmp_path, share):
    """--max-ratings keeps whole users while their ratings fit (and says so on stderr); 0
    keeps everyone. Calibrating a 25M-rating release whole would peak near 25 GB."""
    import polars as pl
    from typer.testing import CliRunner

    from recarena.simulator.cli import app

    ratings = pl.read_csv(interactions_file)
    budget = str(ratings.height // share) if share else "0"  # a third of the rows, or all
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(
        app,
        ["calibrate", str(interactions_file), "-o", str(out), "--topics", "2",
         "--max-ratings", budget],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    kept = CalibratedPopulation.load(out).n_users
    users = ratings["user"].n_unique()
    if budget == "0":
        assert kept == users and "sampled" not in result.output
    else:
        assert "sampled" in result.output and f"budget of {int(budget):,} ratings" in result.output
        assert 0 < kept < users
        assert f"{kept} users" in result.output


# ------------------------------------------------------------- fidelity check 2: ratings
def test_rating_tv_distance_by_hand() -> None:
    from recarena.analysis.fidelity.common import rating_histogram, rating_tv
    from recarena.simulator.data.datasets import InteractionData

    # half stars round up: 0.5 → 1, 2.5 → 3, 4.5 → 5
    assert rating_histogram(np.array([0.5, 1.0, 2.5, 3.0, 4.5, 5.0])).tolist() == pytest.approx(
        [2 / 6, 0, 2 / 6, 0, 2 / 6]
    )
    real = InteractionData(
        name="r",
        user=np.zeros(4, np.int64),
        item=np.arange(4),
        timestamp=np.zeros(4),
        rating=np.array([5.0, 5.0, 4.0, 1.0], np.float32),
    )
    sim = pl.DataFrame({"arm": ["a", "a", "b", "b"], "rating": [5.0, 4.0, 3.0, 3.0]})
    out = rating_tv(real, sim.lazy())
    # real = [.25, 0, 0, .25, .5]; a = [0, 0, 0, .5, .5] → TV = (.25 + .25)/2 = .25
    # b = [0, 0, 1, 0, 0] → TV = (.25 + 1 + .25 + .5)/2 = 1.0
    assert out["arm"].to_list() == ["a", "b"]
    assert out["tv_distance"].to_list() == pytest.approx([0.25, 1.0])


def test_calibrated_item_text_real_titles_then_synthetic_fallback() -> None:
    from recarena.agents.users.calibrated_text import CalibratedItemText
    from recarena.simulator.core.catalog import Catalog

    catalog = Catalog(2)
    topics = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], np.float32)
    catalog.add(topics, np.array([1.6, -2.4, 0.0], np.float32), np.zeros(3, np.int32), 0.0)
    text = CalibratedItemText(["Heat", "Brazil"], [["Crime"], []], catalog, 2)
    titles = text.titles(np.array([1, 0, 2]))
    assert titles[:2] == ["Brazil", "Heat"]
    assert titles[2].endswith("#2")  # item 2 was uploaded during the run: synthetic title
    assert text.genres(np.array([0, 1])) == [["Crime"], ["Unknown"]]
    # stars = clip(rint(3 + quality), 1, 5): 1.6 → 5, -2.4 → 1
    assert text.lines(np.array([0, 1])) == [
        "Heat (Crime) rated ★★★★★",
        "Brazil (Unknown) rated ★☆☆☆☆",
    ]


# --------------------------------------------------------- the calibrated user model's pieces
def test_transition_matrix_and_last_items_by_hand() -> None:
    from recarena.agents.users.sequential_interest import last_items, transition_matrix

    # user 0 watches 0, 1, 2; user 1 watches 1, 2 (rows sorted by user, then time)
    user, item = np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 1, 2])
    counts = transition_matrix(user, item, 4, window=2, smoothing=0.0).toarray()
    # within two steps: 0->1, 0->2, 1->2 (twice); rows normalised by their totals
    np.testing.assert_allclose(counts[0], [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(counts[1], [0, 0, 1, 0])
    assert counts[2].sum() == 0 and counts[3].sum() == 0  # never followed by anything
    smoothed = transition_matrix(user, item, 4, window=1, smoothing=2.0).toarray()
    np.testing.assert_allclose(smoothed[1], [0, 0, 2 / 4, 0])  # 2 of 2, plus 2 pseudo-counts
    assert last_items(user, item, 3, 2).tolist() == [[1, 2], [1, 2], [-1, -1]]
    assert last_items(user, item, 2, 4).tolist() == [[-1, 0, 1, 2], [-1, -1, 1, 2]]


def test_sequence_affinity_weights_recent_items_by_decay() -> None:
    import scipy.sparse as sp

    from recarena.agents.users.sequential_interest import InterestConfig, SequentialInterest

    transitions = sp.csr_matrix(np.array([[0, 0.5, 0.5], [0, 0, 1.0], [0, 0, 0]], np.float32))
    interest = SequentialInterest(
        transitions=transitions,
        log_pop=np.zeros(3, np.float32),
        recent=np.array([[0, 1], [-1, 0]]),
        conformity=np.zeros(2, np.float32),
        rating_bias=np.zeros(2, np.float32),
        weights={"sequence": 1.0, "conformity": 0.0},
        ordinal={},
        config=InterestConfig(decay=0.5),
    )
    got = interest.sequence_affinity(interest.recent, np.array([[2, 1], [2, 1]]))
    # user 0: weights 0.5 (item 0, older) and 1 (item 1), normalised to 1/3 and 2/3
    # P(->2) = 1/3*0.5 + 2/3*1 = 5/6, P(->1) = 1/3*0.5 = 1/6; user 1 only has item 0
    np.testing.assert_allclose(got[0], np.log(1 / 3 + np.array([5 / 6, 1 / 6])), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.log(1 / 3 + np.array([0.5, 0.5])), rtol=1e-6)
    interest.push(np.array([1]), np.array([2]))
    assert interest.recent.tolist() == [[0, 1], [0, 2]]
    # an item uploaded during the run (id 3, past the fitted matrix) once consumed: it keeps
    # its weight and leads nowhere (it was an IndexError that failed the cell)
    interest.push(np.array([0]), np.array([3]))
    got = interest.sequence_affinity(interest.recent, np.array([[2, 1], [2, 3]]))
    # user 0: item 1 (1/3) then item 3 (2/3, unknown): P(->2) = 1/3, P(->1) = 0
    np.testing.assert_allclose(got[0], np.log(1 / 3 + np.array([1 / 3, 0.0])), rtol=1e-6)
    # user 1: item 0 (1/3) then item 2 (2/3): P(->2) = 1/6; item 3 is not in the fit: 0
    np.testing.assert_allclose(got[1], np.log(1 / 3 + np.array([1 / 6, 0.0])), rtol=1e-6)


def test_sequence_affinity_is_the_same_in_chunks_dense_and_by_sorted_keys(monkeypatch) -> None:
    import pickle

    import scipy.sparse as sp

    from recarena.agents.users import sequential_interest as si

    rng = np.random.default_rng(3)
    transitions = sp.random(40, 40, density=0.3, format="csr", dtype=np.float32, random_state=3)
    recent = rng.integers(-1, 40, (25, 6))

    def interest() -> si.SequentialInterest:
        return si.SequentialInterest(
            transitions=transitions,
            log_pop=np.zeros(40, np.float32),
            recent=recent,
            conformity=np.zeros(25, np.float32),
            rating_bias=np.zeros(25, np.float32),
            weights={"sequence": 1.0, "conformity": 0.0},
            ordinal={},
            config=si.InterestConfig(decay=0.8),
        )

    users = rng.integers(0, 25, 300)
    items = rng.integers(-1, 41, (300, 4))  # -1 and 40: not items, no transition mass
    rows, cols = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    expected = np.asarray(transitions[rows, cols]).ravel()  # SciPy's own lookup
    dense = interest()
    assert dense.read_transitions().dense is not None
    assert np.array_equal(dense.read_transitions()(rows, cols), expected)
    whole = dense.sequence_affinity(recent[users], items)
    monkeypatch.setattr(si, "LOOKUPS_PER_CHUNK", 50)  # two users' pages per chunk
    assert np.array_equal(dense.user_sequence_affinity(users, items), whole)
    assert dense.copy().read_transitions() is dense.read_transitions()  # one copy per process
    assert pickle.loads(pickle.dumps(dense))._reader is None  # not shipped to workers
    monkeypatch.setattr(si, "DENSE_BYTES", 0)  # too big to copy: binary search in the keys
    keyed = interest()
    assert keyed.read_transitions().dense is None
    assert np.array_equal(keyed.read_transitions()(rows, cols), expected)
    assert np.array_equal(keyed.user_sequence_affinity(users, items), whole)
    assert np.isclose(whole[items == -1], np.log(1 / 40)).all()


def test_ordinal_rating_model_by_hand_and_recovered() -> None:
    from scipy.stats import norm

    from recarena.agents.users.sequential_interest import (
        InterestConfig,
        SequentialInterest,
        fit_ordinal,
    )

    rng = np.random.default_rng(0)
    surplus = rng.normal(0, 2, 20000)
    bias = rng.normal(0, 0.5, 20000)
    cuts = np.array([-1.5, -0.5, 0.5, 1.2])
    latent = 0.4 * surplus + 1.0 * bias + rng.standard_normal(20000)
    stars = 1 + (latent[:, None] >= cuts[None, :]).sum(axis=1)
    fit = fit_ordinal(surplus, bias, stars)
    assert fit["slope"] == pytest.approx(0.4, abs=0.03)
    assert fit["bias_weight"] == pytest.approx(1.0, abs=0.08)
    np.testing.assert_allclose(fit["cuts"], cuts, atol=0.06)
    assert fit["noise_scale"] == pytest.approx(1 / fit["slope"])

    interest = SequentialInterest(
        transitions=None,  # type: ignore[arg-type]
        log_pop=np.zeros(1, np.float32),
        recent=np.zeros((1, 1), np.int64),
        conformity=np.zeros(1, np.float32),
        rating_bias=np.array([0.5], np.float32),
        weights={},
        ordinal={"slope": 2.0, "bias_weight": 1.0, "cuts": [-1.0, 0.0, 1.0, 2.0]},
        config=InterestConfig(),
    )
    # latent mean 2*0.25 + 0.5 = 1: P(1 star) = Φ(-2), P(5) = 1 - Φ(1)
    probs = interest.rating_probabilities(np.array([0.25]), np.array([0]))[0]
    expected = np.diff([0, norm.cdf(-2), norm.cdf(-1), norm.cdf(0), norm.cdf(1), 1])
    np.testing.assert_allclose(probs, expected, rtol=1e-9)
    # the uniform at Φ(0.5) puts latent at 1.5: 4 stars (cuts -1, 0, 1 at or below)
    assert interest.draw_ratings(np.array([0.25]), np.array([0]), np.array([norm.cdf(0.5)])) == 4
    # with a dynamic slope of 0 the short-term part of a surplus leaves the stars alone: a
    # surplus of 0.25 of which 0.25 came from short-term interest rates like a surplus of 0
    steered = replace(interest, ordinal={**interest.ordinal, "dynamic_slope": 0.0})
    np.testing.assert_allclose(
        steered.rating_probabilities(np.array([0.25]), np.array([0]), np.array([0.25])),
        interest.rating_probabilities(np.array([0.0]), np.array([0])),
        rtol=1e-12,
    )


def test_weights_are_a_choice_model_corrected_for_how_contrasts_were_drawn() -> None:
    """Users choose one of 200 items by a known multinomial logit on two features; contrasts
    are drawn half uniformly, half by popularity, as the weight fit draws them. The conditional
    logit with the log q correction recovers the true weights; without it (what a logistic
    regression of consumed against drawn items estimates) the contrasts' own popularity is
    subtracted and the weight of log popularity comes out far too low (about 0.1 for 0.6)."""
    from recarena.agents.users.sequential_interest import (
        ChoiceSample,
        conditional_nll,
        fit_conditional_logit,
    )

    rng = np.random.default_rng(3)
    n_items, n_sets, k = 200, 6000, 8
    log_pop = rng.normal(0, 1, n_items)
    taste = rng.normal(0, 1, (n_sets, n_items))  # a per-(user, item) feature
    true_w = np.array([0.8, 0.6])  # taste, log popularity
    logits = true_w[0] * taste + true_w[1] * log_pop[None, :]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    chosen = (p.cumsum(axis=1) > rng.random((n_sets, 1))).argmax(axis=1)
    pop = np.exp(log_pop) / np.exp(log_pop).sum()
    q = 0.5 / n_items + 0.5 * pop
    drawn = rng.choice(n_items, (n_sets, k), p=q)
    sets = np.arange(n_sets)
    item = np.concatenate([chosen, drawn.ravel()])
    group = np.concatenate([sets, np.repeat(sets, k)])
    sample = ChoiceSample(
        user=group,
        item=item,
        group=group,
        chosen=np.arange(item.size) < n_sets,
        log_q=np.log(q[item]),
    )
    x = np.stack([taste[group, item], log_pop[item]], axis=1)
    w, loss = fit_conditional_logit(x, sample)
    np.testing.assert_allclose(w, true_w, atol=0.08)
    assert loss == pytest.approx(conditional_nll(x @ w, sample), rel=1e-3)
    uncorrected = replace(sample, log_q=np.zeros(item.size))
    w_raw, _ = fit_conditional_logit(x, uncorrected)
    assert w_raw[1] < true_w[1] - 0.3


def test_a_dataset_too_small_to_calibrate_is_one_line(tmp_path):
    """One interaction cannot be split into training and held-out slices: refuse, don't NaN."""
    data = tmp_path / "one.csv"
    data.write_text("user,item,timestamp,rating\n1,2,100,4\n")
    done = recarena("calibrate", str(data), "-o", str(tmp_path / "pop.parquet"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "too small to calibrate" in lines[0]
    assert not (tmp_path / "pop.parquet").exists()


def test_factor_batch_size_by_hand() -> None:
    from recarena.agents.users.calibration import factor_batch_size

    assert factor_batch_size(50) == 5  # tiny: ten steps an epoch
    assert factor_batch_size(80_000) == 256  # ml-100k / ml-latest-small sizes
    assert factor_batch_size(800_000) == 2_000  # large: at most 400 steps an epoch


def test_choose_memory_finds_a_lag_the_shortest_candidates_cannot_see() -> None:
    from recarena.agents.users.sequential_interest import (
        InterestConfig,
        choose_memory,
        fit_features,
    )

    # each user's movie t is f(movie t-4) for a fixed permutation f: only a window of at least
    # four next items and a memory reaching four items back carry the signal
    rng = np.random.default_rng(0)
    n_users, n_items, length, lag = 300, 40, 14, 4
    f = rng.permutation(n_items)
    seqs = np.zeros((n_users, length), np.int64)
    seqs[:, :lag] = rng.integers(0, n_items, (n_users, lag))
    for t in range(lag, length):
        seqs[:, t] = f[seqs[:, t - lag]]
    user = np.repeat(np.arange(n_users), length)
    item = seqs.ravel()
    held = np.tile(np.arange(length) >= length - 2, n_users)
    cfg = InterestConfig(windows=(1, 5), memories=((1, 0.5), (6, 0.9)))
    features = fit_features(
        user[~held],
        item[~held],
        np.arange(user.size, dtype=np.float64)[~held],
        None,
        n_users,
        n_items,
        lambda u, i: np.zeros(np.shape(u)),
        cfg,
    )
    seen = np.unique(user[~held] * n_items + item[~held])
    chosen, losses = choose_memory(
        features, user[~held], item[~held], n_users, user[held], item[held], seen, n_items, 0
    )
    # coordinate search: both windows at the first memory, then the other memory
    assert [(c["window"], c["recent_items"]) for c in losses] == [(1, 1), (5, 1), (5, 6)]
    assert (chosen.interest.config.window, chosen.interest.config.recent_items) == (5, 6)
    assert losses[2]["log_loss"] < losses[1]["log_loss"] < losses[0]["log_loss"]
    assert chosen.interest.recent.shape == (n_users, 6)


def _small_ratings(users: int, items: int) -> str:
    """Users rate most items (not all: calibration needs unseen ones) in two visits a day
    apart (one visit each leaves no visit rate to fit)."""
    rows = [
        f"{u},{i},{1 + (u + i) % 5},{1000 * u + 600 * i + 86_400 * (2 * i > items)}"
        for u in range(1, users + 1)
        for i in range(1, items + 1)
        if (3 * u + i) % 5
    ]
    return "user,item,rating,timestamp\n" + "\n".join(rows) + "\n"


def test_a_dataset_that_fits_to_nan_is_one_line(tmp_path):
    """One user who consumed every item leaves no unseen item to fit the choice model on; the
    fit used to come out NaN, the files were written, validate passed and every cell failed."""
    from tests.cli_in_process import assert_refused, cli

    data = tmp_path / "one_user.csv"
    rows = [f"1,{1 + n % 10},4,{600 * n}" for n in range(40)]  # 8 held out: not too small
    data.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    out = tmp_path / "pop.parquet"
    assert_refused(*cli("calibrate", str(data), "-o", str(out), "--topics", "2"), "'one_user'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one_user.csv"]


def test_non_finite_timestamps_are_refused_by_calibrate(tmp_path):
    """A generic CSV's 'inf' timestamp used to give every user a NaN visit rate. The loader
    now names its line; calibrate still refuses one in data built by other code."""
    data = tmp_path / "inf.csv"
    data.write_text(_small_ratings(users=3, items=6).replace(",1600\n", ",inf\n", 1))
    with pytest.raises(RecarenaError, match=r"inf.csv line 2: timestamp 'inf' is not a finite"):
        load_interactions(data)
    data.write_text(_small_ratings(users=3, items=6))
    loaded = load_interactions(data)
    timestamp = loaded.timestamp.copy()
    timestamp[0] = np.inf
    with pytest.raises(RecarenaError, match=r"timestamp inf of interaction 1 is not a finite"):
        calibrate(replace(loaded, timestamp=timestamp), CalibrationConfig(topics=2, epochs=1))


@pytest.mark.parametrize("field", ["temperature", "activity"])
def test_a_population_file_with_nan_fits_is_refused_by_validate(tmp_path, field):
    """A population file with a NaN fit (written before calibrate refused one, or edited) passed
    validate; the run then failed every cell (Poisson 'lam value too large', or a NaN
    temperature the scenario schema refuses inside the cell)."""
    import yaml

    from tests.cli_in_process import assert_refused, cli

    data = tmp_path / "ok.csv"
    data.write_text(_small_ratings(users=8, items=12))
    pop = calibrate(load_interactions(data), CalibrationConfig(topics=2, epochs=1, batch_size=8))
    if field == "temperature":
        pop.scalars["temperature"] = float("nan")
    else:
        pop.activity[3] = float("nan")
    pop.save(tmp_path / "pop.parquet")
    doc = {
        "name": "nan_fit",
        "replicates": 1,
        "horizon": {"days": 0.5, "tick_seconds": 600},
        "population": {"from": "calibrated", "path": str(tmp_path / "pop.parquet")},
        "surface": {"k": 5},
        "arms": [{"name": "random", "recommender": {"type": "random"}}],
        "output": {"dir": str(tmp_path / "runs")},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    fragment = f"pop.parquet: fitted {field} nan"
    assert_refused(*cli("validate", str(path)), fragment)
    assert_refused(*cli("run", str(path), "--executor", "local", "-q"), fragment)
    assert not (tmp_path / "runs").exists()


def test_ratings_off_the_star_scale_are_refused_by_calibrate(tmp_path):
    """A rating of 99 (or a 1-10 scale) used to be clipped to 5 stars without a word. A file's
    is named by its line as it is read; data built in code, by the calibration."""
    data = tmp_path / "stars.csv"
    data.write_text(_small_ratings(users=3, items=6).replace("1,1,3,1600", "1,1,99,1600"))
    with pytest.raises(RecarenaError, match=r"stars.csv line 2: rating 99 is outside the 0.5-5"):
        load_interactions(data)
    data.write_text(_small_ratings(users=3, items=6))
    read = load_interactions(data)
    assert read.rating is not None
    built = replace(read, rating=np.where(np.arange(read.n_interactions) == 0, 99.0, read.rating))
    with pytest.raises(RecarenaError, match=r"rating 99 of interaction 1 is outside the 0.5-5"):
        calibrate(built, CalibrationConfig(topics=2, epochs=1))


def _release(folder: Path, rows: list[tuple[int, int, float, int]]) -> Path:
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
    )
    return folder


DAY_S = 86_400


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("one_user", "1 user with held-out interactions (of 1); need at least 2"),
        ("every_item", "each of its 2 users with held-out interactions consumed all 30 items"),
        ("one_time", "no user's interactions have two different timestamps (12 users)"),
        ("one_visit", "no user came back after a gap of more than 30 minutes (each of its 12"),
    ],
)
def test_datasets_that_calibrate_to_nothing_are_one_line(tmp_path, case, fragment):
    """Each calibrated to figures that meant nothing, exit 0: one user (popularity and conformity
    were that user's own history), two users who rated every movie (a negative rating slope,
    no-click utility -15), every rating at one time (the time split was file order) or each
    user's ratings in one sitting (every visit rate 0: a simulation without visits). validate
    refuses the same data as a scenario's population.dataset."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_validate_gate import base_doc, refused_everywhere

    def stars(u: int, i: int) -> int:
        return 1 + (u * 7 + i * 3) % 5

    if case == "one_user":
        rows = [(1, i, stars(1, i), i * DAY_S) for i in range(1, 41)]
    elif case == "every_item":
        rows = [(u, i, stars(u, i), i * DAY_S + u) for u in (1, 2) for i in range(1, 31)]
    else:
        # 12 users, 10 of 40 movies each: one time for all, or ten minutes apart
        rows = [
            (
                u,
                1 + (u * 3 + k * 4) % 40,
                stars(u, k),
                10**6 + (0 if case == "one_time" else 600 * k),
            )
            for u in range(1, 13)
            for k in range(10)
        ]
    folder = _release(tmp_path / case, rows)
    out = tmp_path / "pop.parquet"
    assert_refused(*cli("calibrate", str(folder), "-o", str(out)), f"dataset '{case}'")
    assert_refused(*cli("calibrate", str(folder), "-o", str(out)), fragment)
    assert not out.exists()
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": str(out), "dataset": str(folder)}
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, fragment)
    assert not out.exists()


def test_fidelity_refuses_a_taste_check_with_nothing_to_ask(tmp_path):
    """Two users who rated every movie calibrate on the training split (the held-out movies are
    unseen there), but check 1 had no unseen movie to draw ('cannot reshape array of size 0',
    an internal error); held-out ratings all below 4 stars left it no liked movie."""
    from tests.cli_in_process import assert_refused, cli

    every = [(u, i, 1 + (u * 7 + i * 3) % 5, i * DAY_S + u) for u in (1, 2) for i in range(1, 31)]
    low = [
        (u, 1 + (u * 3 + k * 4) % 40, 1 + (u + k) % 3, 10**6 + DAY_S * k)
        for u in range(1, 13)
        for k in range(10)
    ]
    for name, rows, fragment in (
        ("every", every, "every user with a liked held-out movie has rated all 30 movies"),
        ("low", low, "no held-out interaction is liked (rated 4 stars or more)"),
    ):
        folder = _release(tmp_path / name, rows)
        movies = "".join(f"{i},Movie {i} (1999),Drama\n" for i in range(1, 31))
        (folder / "movies.csv").write_text("movieId,title,genres\n" + movies)
        out = tmp_path / f"fid_{name}"
        args = (
            "fidelity",
            "--dataset",
            str(folder),
            "-o",
            str(out),
            "-q",
            "--arms",
            "random,popularity",
        )
        assert_refused(*cli(*args), f"dataset '{name}': {fragment}")
        assert not out.exists()


def test_a_seed_past_64_bits_is_refused_before_any_work(tmp_path):
    """calibrate and fidelity take any non-negative --seed, but the factor fit seeds a torch
    generator: --seed 2^64 was an internal error ('Overflow when unpacking long long') after the
    dataset was read. python benchmarks/fidelity.py printed tracebacks for a missing dataset or
    a negative seed."""
    import subprocess
    import sys

    from tests.cli_in_process import assert_refused, cli

    data = tmp_path / "ok.csv"
    data.write_text(_small_ratings(users=8, items=12))
    out = tmp_path / "pop.parquet"
    big = str(2**64)
    assert_refused(*cli("calibrate", str(data), "-o", str(out), "--seed", big), "'--seed'")
    fid = tmp_path / "fid"
    assert_refused(*cli("fidelity", "--dataset", str(data), "-o", str(fid), "-s", big), "'--seed'")
    assert not out.exists() and not fid.exists()
    with pytest.raises(RecarenaError, match=r"seed 18446744073709551616: a calibration's seed"):
        calibrate(load_interactions(data), CalibrationConfig(topics=2, epochs=1, seed=2**64))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "fidelity.py"
    for args, line in (
        (["--dataset", str(tmp_path / "nope")], f"error: dataset not found: {tmp_path / 'nope'}"),
        (["--dataset", str(data), "--seed", "-1"], "error: --seed -1: 0 to 2^64-1"),
    ):
        done = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(line)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_folder_that_takes_no_file_is_refused_before_the_fit(tmp_path):
    """calibrate -o /proc/pop.parquet fitted the population, then failed writing it ('Failed to
    open local file'); a scenario calibrating into /proc/pop.parquet passed validate and run
    failed the same way after calibrating. Both are refused first, with the folder."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_validate_gate import base_doc, refused_everywhere

    data = tmp_path / "ok.csv"
    data.write_text(_small_ratings(users=8, items=12))
    line = "cannot create a file in /proc"
    assert_refused(*cli("calibrate", str(data), "-o", "/proc/pop.parquet"), line)
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": "/proc/pop.parquet", "dataset": str(data)}
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, f"population.path /proc/pop.parquet: {line}")


def test_rated_movies_missing_from_the_movie_list_are_noted(tmp_path):
    """Movies rated but absent from movies.csv calibrated without a word; their titles were
    their ids in every report and prompt. A note on stderr says how many, exit 0."""
    from tests.cli_in_process import cli

    rows = [
        (u, 1 + (u * 3 + k * 4) % 40, 1 + (u + k) % 5, 10**6 + DAY_S * k)
        for u in range(1, 13)
        for k in range(10)
    ]
    folder = _release(tmp_path / "ml", rows)
    movies = "".join(f"{i},Movie {i} (1999),Drama\n" for i in range(1, 21))  # 21-40 missing
    (folder / "movies.csv").write_text("movieId,title,genres\n" + movies)
    code, stderr = cli("calibrate", str(folder), "-o", str(tmp_path / "pop.parquet"))
    assert code == 0, stderr
    missing = len({i for _, i, _, _ in rows if i > 20})
    rated = len({i for _, i, _, _ in rows})
    assert stderr.splitlines() == [
        f"note: {missing} of the {rated} rated items of 'ml' are not in its item table "
        "(movies.csv, movies.dat or u.item; first: 21): their titles are their ids and they "
        "have no genres"
    ]
    full = "".join(f"{i},Movie {i} (1999),Drama\n" for i in range(1, 41))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + full)
    code, stderr = cli("calibrate", str(folder), "-o", str(tmp_path / "pop2.parquet"))
    assert code == 0 and stderr == "", stderr


def test_one_rating_value_throughout_is_calibrated_with_a_note(tmp_path):
    """A release whose every rating is 4 (watched marks, or a column filled in by a script)
    calibrated without a word: the cut points were fitted to one value, so every simulated
    rating is 4 and fidelity's rating check holds by construction. It is still calibrated
    (the choice model needs no ratings), with one note naming the ratings file, exit 0."""
    from tests.cli_in_process import cli

    rows = [
        (u, 1 + (u * 3 + k * 4) % 40, 4.0, 10**6 + DAY_S * k)
        for u in range(1, 13)
        for k in range(10)
    ]
    movies = "movieId,title,genres\n" + "".join(f"{i},M{i} (1999),Drama\n" for i in range(1, 41))
    folder = _release(tmp_path / "ml", rows)
    (folder / "movies.csv").write_text(movies)
    code, stderr = cli("calibrate", str(folder), "-o", str(tmp_path / "pop.parquet"))
    assert code == 0, stderr
    assert stderr.splitlines() == [
        f"note: every one of the 120 ratings in {folder / 'ratings.csv'} is 4: the rating "
        "model has one value to fit, so simulated users rate (almost) every movie 4 and the "
        "rating distribution check holds by construction"
    ]
    cuts = CalibratedPopulation.load(tmp_path / "pop.parquet").scalars["rating_thresholds"]
    assert cuts[0] == cuts[1] == cuts[2]  # 1-3 stars: no share; the fit is what it was
    rows[0] = (1, rows[0][1], 3.5, rows[0][3])  # one other value: ratings say something
    (folder / "ratings.csv").unlink()
    (folder / "movies.csv").unlink()
    folder.rmdir()
    _release(folder, rows)
    (folder / "movies.csv").write_text(movies)
    code, stderr = cli("calibrate", str(folder), "-o", str(tmp_path / "pop2.parquet"))
    assert code == 0 and stderr == "", stderr


@pytest.mark.parametrize("name", ["pop.json", "pop.csv", "pop"])
def test_a_population_written_under_another_name_than_parquet_is_refused_first(tmp_path, name):
    """calibrate -o pop.json wrote the population and then its JSON sidecar over it (the same
    name); -o pop.csv wrote Parquet under a CSV name. Refused before the fit, as is a scenario
    that would calibrate into such a population.path; nothing is written."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_validate_gate import base_doc, refused_everywhere

    data = tmp_path / "ok.csv"
    data.write_text(_small_ratings(users=8, items=12))
    out = tmp_path / "out" / name
    assert_refused(*cli("calibrate", str(data), "-o", str(out)), f"--output {out}: ")
    assert not (tmp_path / "out").exists()
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": str(out), "dataset": str(data)}
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, f"population.path {out}: ")


def test_a_population_named_as_another_populations_item_table_is_refused(tmp_path):
    """calibrate -o pop.items.parquet wrote a population's users over the item table of the
    population pop.parquet beside it (which then read users as items), and its own items to
    pop.items.items.parquet. Refused before the fit, as is a scenario that would calibrate into
    such a population.path; pop.parquet's files stay as they were."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_validate_gate import base_doc, refused_everywhere

    data = tmp_path / "ok.csv"
    data.write_text(_small_ratings(users=8, items=12))
    pop = tmp_path / "pop.parquet"
    code, stderr = cli("calibrate", str(data), "-o", str(pop))
    assert code == 0, stderr
    items = tmp_path / "pop.items.parquet"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    line = (
        f"--output {items}: a name ending in .items.parquet is the item table of the "
        f"population {pop}; give the population's own name"
    )
    assert_refused(*cli("calibrate", str(data), "-o", str(items)), line)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    doc = base_doc(tmp_path)
    new = tmp_path / "new.items.parquet"
    doc["population"] = {"from": "calibrated", "path": str(new), "dataset": str(data)}
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, f"population.path {new}: a name ending in .items.parquet")


def test_held_out_nll_by_hand() -> None:
    """Two users, three movies: each row's softmax over the movies its user had not consumed in
    the fit rows, computed by hand; a row whose movie the user had consumed is not scored."""
    factors = Factors(
        taste=np.array([[1.0, 0.0], [0.0, 2.0]], np.float32),
        topics=np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], np.float32),
        quality=np.array([0.0, 0.5, -1.0], np.float32),
        final_loss=0.0,
    )
    fit_user, fit_item = np.array([0, 1]), np.array([0, 1])  # user 0 saw movie 0, user 1 movie 1
    user, item = np.array([0, 1, 1]), np.array([2, 0, 1])  # the last row: already seen
    got = held_out_nll(factors, fit_user, fit_item, user, item, seed=0)
    u0 = np.array([0.0 + 0.5, 0.5 - 1.0])  # user 0 over movies 1, 2: scores 0.5, -0.5
    u1 = np.array([0.0 + 0.0, 1.0 - 1.0])  # user 1 over movies 0, 2: scores 0, 0
    nll0 = np.log(np.exp(u0).sum()) - u0[1]
    nll1 = np.log(np.exp(u1).sum()) - u1[0]
    assert got == pytest.approx((nll0 + nll1) / 2)


def test_the_taste_regularisation_is_the_candidate_with_the_least_held_out_loss(
    interactions_file,
) -> None:
    """Each candidate's validation loss is reported, the least one is chosen, the stored config
    says which, and a given weight is used as it is (no candidates fitted)."""
    data = load_interactions(interactions_file)
    cfg = CalibrationConfig(topics=4, epochs=2, interest=None)
    pop = calibrate(data, cfg)
    losses = pop.scalars["taste_regularisation"]
    assert [row["reg"] for row in losses] == list(REG_CANDIDATES)
    best = min(losses, key=lambda row: row["log_loss"])
    assert pop.scalars["config"]["reg"] == best["reg"]
    assert all(np.isfinite(row["log_loss"]) for row in losses)
    fixed = calibrate(data, replace(cfg, reg=best["reg"]))
    assert "taste_regularisation" not in fixed.scalars
    np.testing.assert_array_equal(fixed.taste, pop.taste)  # the same fit, chosen or given
