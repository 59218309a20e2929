"""Every recommender answer passes the slate guard: a plug-in that breaks a rule is stopped with
one line naming the arm and the recommender type, and honest recommenders run unchanged."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from recarena.simulator.core.types import PAD_ITEM, SlateBatch
from recarena.simulator.engine import slate_guard
from recarena.simulator.engine.slate_guard import (
    PluginRecommenderFailed,
    SlateGuard,
    SlateViolation,
)
from recarena.simulator.runner.cell import run_cell
from recarena.simulator.runner.plan import Cell
from recarena.simulator.runner.resolve import parse_scenario

PLUGINS = "tests.slate_plugins"

SMALL = {
    "name": "guard",
    "seed": 5,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 300},
    "catalog": {"initial_items": 60, "topics": 4},
    "population": {"users": 80, "visits_per_day": 3.0, "max_pages": 6},
    "creators": {"count": 3, "uploads_per_day": 1.0},
    "surface": {"k": 5},
    "arms": [{"name": "honest", "recommender": {"type": f"{PLUGINS}:Honest"}}],
}


def _run_arm(tmp_path, kind: str, arm: str = "suspect", **overrides):
    doc = copy.deepcopy(SMALL) | overrides
    doc["arms"].append({"name": arm, "recommender": {"type": f"{PLUGINS}:{kind}"}})
    scenario = parse_scenario(doc)
    index = len(scenario.arms) - 1
    return run_cell(scenario.model_dump(mode="json"), Cell(0, index, arm, 0), str(tmp_path))


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("SameItemEverywhere", "appears twice in a slate"),
        ("IgnoresExclude", "already consumed by this user"),
        ("OutOfRange", "is not a published item"),
        ("FloatIds", "dtype float64"),
        ("WrongShape", "has shape"),
        ("BadPropensity", "propensity 0.0"),
        # was: a ValueError/UFuncTypeError naming no arm, or a ComplexWarning and a run that
        # logged the real part
        ("StringScores", "scores have dtype <U"),
        ("ComplexScores", "scores have dtype complex128"),
        ("ObjectPropensity", "propensities have dtype object"),
        # was: np.matrix passed the shape check and failed the cell with "ValueError: object
        # too deep for desired array", a list was "shape None", a masked array's mask ignored
        ("MatrixItems", "items is a numpy.matrix, expected a numpy.ndarray"),
        ("ListItems", "items is a list, expected a numpy.ndarray"),
        ("MaskedItems", "items is a numpy.ma.MaskedArray, expected a numpy.ndarray"),
    ],
)
def test_each_slate_rule_stops_the_cell_naming_arm_and_type(tmp_path, kind, fragment):
    with pytest.raises(SlateViolation) as caught:
        _run_arm(tmp_path, kind)
    message = str(caught.value)
    assert "\n" not in message
    assert "arm 'suspect'" in message
    assert f"{PLUGINS}:{kind}" in message
    assert fragment in message
    if kind in ("SameItemEverywhere", "IgnoresExclude", "OutOfRange", "BadPropensity"):
        # whole-batch faults (a dtype, a shape) name no single request
        assert "request user=" in message and "page=" in message


def test_honest_plugin_and_builtins_pass(tmp_path):
    manifest = _run_arm(tmp_path, "Honest", arm="honest_too")
    assert manifest["rows"]["exposures"] > 0
    doc = copy.deepcopy(SMALL)
    doc["arms"] = [
        {"name": name, "recommender": {"type": name}}
        for name in ("random", "popularity", "epsilon_greedy", "oracle")
    ]
    scenario = parse_scenario(doc)
    for index, arm in enumerate(scenario.arms):
        out = tmp_path / arm.name
        out.mkdir()
        cell = Cell(index, index, arm.name, 0)
        assert run_cell(scenario.model_dump(mode="json"), cell, str(out))["rows"]["exposures"] > 0


class _Requests:
    """The fields of a RequestBatch the guard reads."""

    def __init__(self, exclude: np.ndarray, k: int, n_items: int) -> None:
        batch = exclude.shape[0]
        self.user = np.arange(batch, dtype=np.int64)
        self.session = np.arange(batch, dtype=np.int64)
        self.page = np.zeros(batch, np.int32)
        self.k = k
        self.catalog = SimpleNamespace(n_items=n_items)
        self.exclude = exclude

    def __len__(self) -> int:
        return len(self.user)


def _guard() -> SlateGuard:
    world = SimpleNamespace(arm=SimpleNamespace(name="a", recommender=SimpleNamespace(type="t")))
    return SlateGuard(world)


def _slates(items: np.ndarray) -> SlateBatch:
    propensity = np.where(items == PAD_ITEM, 0.0, 1.0).astype(np.float32)
    return SlateBatch(items, np.zeros(items.shape, np.float32), propensity)


@pytest.mark.parametrize("broadcast_cells", [slate_guard._BROADCAST_CELLS, 0])
def test_empty_slots_are_not_duplicates_and_long_histories_are_checked(
    monkeypatch, broadcast_cells
):
    """Both consumed-item checks: the [B, k, H] comparison and, past its bound, isin."""
    monkeypatch.setattr(slate_guard, "_BROADCAST_CELLS", broadcast_cells)
    n, k = 500, 6
    rng = np.random.default_rng(3)
    exclude = np.full((4, 100), PAD_ITEM, np.int64)
    exclude[:, :80] = rng.permutation(n)[:80]
    fresh = np.setdiff1d(np.arange(n), exclude[0])[:k]
    items = np.tile(fresh, (4, 1))
    items[1, -2:] = PAD_ITEM  # a row the catalog could not fill: pads repeat, propensity 0
    _guard().check(_Requests(exclude, k, n), _slates(items))
    items[2, 0] = exclude[2, 79]
    with pytest.raises(SlateViolation, match="already consumed"):
        _guard().check(_Requests(exclude, k, n), _slates(items))
    items[2, 0] = fresh[0]
    propensity = _slates(items).propensity
    propensity[3, 1] = np.nan
    with pytest.raises(SlateViolation, match="propensity nan in slot 1"):
        _guard().check(
            _Requests(exclude, k, n),
            SlateBatch(items, np.zeros(items.shape, np.float32), propensity),
        )


def test_an_answer_that_is_not_a_slate_batch_is_named(tmp_path):
    with pytest.raises(SlateViolation, match="recommend returned tuple, expected a SlateBatch"):
        _run_arm(tmp_path, "ReturnsTuple")


@pytest.mark.parametrize("kind", ["ClearsExclude", "NormalisesCatalog", "SortsHistory"])
def test_engine_state_handed_to_a_recommender_is_read_only(tmp_path, kind):
    """A write into the request, the catalog or the fitted clicks fails at the write, instead
    of changing what users see or what the next fit reads (and fooling the guard); the cell's
    error names the arm, the type and the method."""
    with pytest.raises(PluginRecommenderFailed, match="read-only") as caught:
        _run_arm(tmp_path, kind, retrain={"every_days": 0.25})  # fits on clicks, not on none
    assert f"arm 'suspect' (recommender '{PLUGINS}:{kind}'): " in str(caught.value)
    message = str(caught.value)
    assert "raised ValueError: " in message and "copy one to change it" in message


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("FitRaises", "fit raised KeyError: 'user_id'"),
        # was: a GeneratorExit passed every handler and ended the run with a traceback
        ("UpdateRaisesGeneratorExit", "update raised GeneratorExit"),
    ],
)
def test_a_plugin_method_that_raises_is_named_with_arm_type_and_method(tmp_path, kind, fragment):
    """Was: the cell's line was the bare ``KeyError: 'user_id'``, naming neither the arm, the
    class nor the method, and the run exited 1 as for a bug of the simulator."""
    from recarena.simulator.core.errors import RecarenaError
    from recarena.simulator.runner.cell import failure_line

    with pytest.raises(PluginRecommenderFailed) as caught:
        _run_arm(tmp_path, kind, retrain={"every_days": 0.25})
    line = failure_line(caught.value)
    assert line == f"arm 'suspect' (recommender '{PLUGINS}:{kind}'): {fragment}"
    assert isinstance(caught.value, RecarenaError)  # a user's code: exit 2


def test_a_builtin_that_raises_is_named_but_not_a_user_error(tmp_path):
    from recarena.simulator.core.errors import RecarenaError
    from recarena.simulator.engine.slate_guard import RecommenderFailed

    world = SimpleNamespace(
        arm=SimpleNamespace(name="pop", recommender=SimpleNamespace(type="popularity"))
    )

    class Broken:
        def fit(self, history):
            raise IndexError("index 3 is out of bounds")

    guarded = SlateGuard(world).wrap(Broken())
    with pytest.raises(RecommenderFailed, match="arm 'pop' .*'popularity'.*fit raised IndexError"):
        guarded.fit(None)
    with pytest.raises(RecommenderFailed) as caught:
        guarded.fit(None)
    assert not isinstance(caught.value, RecarenaError)


def test_feedback_is_read_only_and_a_failure_line_says_why(tmp_path):
    from recarena.simulator.runner.cell import failure_line

    with pytest.raises(PluginRecommenderFailed, match="read-only") as caught:
        _run_arm(tmp_path, "RewritesClicks")
    line = failure_line(caught.value)
    assert "read-only views of the engine's arrays" in line and "\n" not in line


def test_what_was_checked_is_what_is_logged_when_a_recommender_reuses_its_buffer(tmp_path):
    import polars as pl

    reused = tmp_path / "reused"
    honest = tmp_path / "honest"
    reused.mkdir()
    honest.mkdir()
    _run_arm(reused, "ReusesItsBuffer", arm="same")
    _run_arm(honest, "Honest", arm="same")  # the same slates, never scribbled on
    logs = [pl.read_parquet(next(d.rglob("exposures.parquet"))) for d in (reused, honest)]
    assert logs[0].height > 0 and logs[0].equals(logs[1])


def test_scores_beyond_float32_are_refused_or_held_without_a_warning(tmp_path):
    """Was: a RuntimeWarning (overflow encountered in cast) and its source line on stderr, from
    the engine's log for a plug-in's float64 scores and from top_k_from_scores for a built-in's
    (thompson_linear with scale 1e300): two extra lines around a run that otherwise succeeded.
    A plug-in's are refused by the slate guard, which judges them as float32, the log's type
    (they were logged as inf, which the guard refuses); a built-in's are held at float32's
    largest value."""
    import warnings

    from recarena.recommenders.slates import top_k_from_scores

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SlateViolation, match=r"score 1e\+300 \(inf in the engine's float32\)"):
            _run_arm(tmp_path, "HugeScores")
        items, scores = top_k_from_scores(
            np.array([[1e300, -1e300, 1.0]]), np.zeros((1, 0), np.int64), 3
        )
    # a built-in's own scores are held at float32's largest finite value (the slate guard
    # refuses an infinite score on a filled slot, which failed every cell of such an arm)
    top = float(np.finfo(np.float32).max)
    assert items.tolist() == [[0, 2, 1]] and scores.tolist() == [[top, 1.0, -top]]
