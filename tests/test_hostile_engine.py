"""The engine, its surfaces and the runner's checks of recommender, surface and retrain settings
at extreme but valid-looking values: validate refuses what a run would trip over (one line
naming the field), and what validate accepts runs, in bounded time, with honest logs."""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.types import PAD_ITEM, RequestBatch, SlateBatch
from tests.test_carousel import Ranked, _catalog, _requests, _surface


class Counting(Ranked):
    """The stub ranking, recording the k of every request."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        self.asked.append(requests.k)
        return super().recommend(requests)


def test_carousel_asks_for_no_more_candidates_than_the_catalog_holds():
    """Was: a carousel with candidates: 5000 over a 60-item catalog asked its recommender for
    5,000 items a page, so an mmr arm compared 5,000² pairs per page: 6 simulated hours of 100
    users did not finish in 300 s (2.5 s now). The rows' items are the same either way."""
    from recarena.simulator.engine.surfaces import SurfaceState

    catalog = _catalog(n=60)
    rows = [{"theme": "personalized"}, {"theme": "topic"}, {"theme": "because_you_watched"}]
    exclude = np.array([[0, 5, PAD_ITEM], [59, PAD_ITEM, PAD_ITEM]])
    state = SurfaceState(catalog, np.zeros(catalog.n), last_item=np.array([6, PAD_ITEM]))
    wide, narrow = _surface(rows, candidates=5000), _surface(rows, candidates=60)
    asked = Counting()
    shown = wide.layout(asked, _requests(catalog, exclude, wide.slots), state)
    assert asked.asked == [60]
    same = narrow.layout(Ranked(), _requests(catalog, exclude, narrow.slots), state)
    assert np.array_equal(shown.items, same.items)
    # never fewer than a row's columns, so a row can still be filled on a tiny catalog
    tiny = _catalog(n=3)
    small = _surface([{"theme": "personalized"}], cols=5, candidates=200)
    asked = Counting()
    state = SurfaceState(tiny, np.zeros(tiny.n), last_item=np.array([PAD_ITEM]))
    small.layout(asked, _requests(tiny, np.full((1, 1), PAD_ITEM), small.slots), state)
    assert asked.asked == [5]


class Uncertain(Ranked):
    """The stub ranking, answered as if drawn at random (propensity 0.25 on filled slots)."""

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        slates = super().recommend(requests)
        p = np.where(slates.items != PAD_ITEM, 0.25, 0.0).astype(np.float32)
        return SlateBatch(slates.items, slates.scores, p)


def _propensity_grid(rows, recommender) -> np.ndarray:
    from recarena.simulator.engine.surfaces import SurfaceState

    catalog = _catalog(n=60)
    surface = _surface(rows, cols=4)
    state = SurfaceState(catalog, np.arange(catalog.n, dtype=float), last_item=np.array([6]))
    requests = _requests(catalog, np.full((1, 1), PAD_ITEM), surface.slots)
    return surface.layout(recommender, requests, state).propensity.reshape(len(rows), 4)


def test_carousel_propensities_are_the_recommenders_only_where_they_hold():
    """Was: every carousel slot logged its candidate's propensity, so a topic row over a random
    recommender logged 1/eligible for items it shows far more often (it keeps one topic's
    candidates), and IPS of a random arm from another random arm's log came out at 0.095 for a
    true CTR of 0.046. Now only a leading run of personalized rows (each slot always the same
    candidate rank) or of trending/new rows (no candidates read) keeps a random answer's
    propensities; the rest are unknown (NaN), and a deterministic answer keeps 1 everywhere."""
    themes = ["personalized", "personalized", "topic", "trending", "because_you_watched"]
    rows = [{"theme": theme} for theme in themes]
    grid = _propensity_grid(rows, Uncertain())
    assert (grid[:2] == 0.25).all()
    assert np.isnan(grid[2:]).all()
    assert (_propensity_grid(rows, Ranked()) == 1.0).all()
    leading_catalog = [{"theme": "new"}, {"theme": "trending"}, {"theme": "personalized"}]
    grid = _propensity_grid(leading_catalog, Uncertain())
    assert (grid[:2] == 1.0).all() and np.isnan(grid[2]).all()


def test_ope_refuses_a_carousel_log_whose_propensities_are_unknown(tmp_path):
    """Was: `recarena ope` read the wrong propensities of a topic-row carousel (above) and
    printed an IPS estimate twice the truth, exit 0. Now one line says why it cannot."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_hostile_scenarios import Case, base_doc, dump, write_case

    doc = base_doc()
    doc["population"]["users"] = 60
    doc["surface"] = {
        "type": "carousel",
        "cols": 4,
        "rows": [{"theme": "topic"}, {"theme": "personalized"}],
    }
    doc["arms"].append({"name": "random_b", "recommender": {"type": "random"}})
    path = write_case(Case(dump(doc)), tmp_path)
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert code == 0, stderr
    assert_refused(
        *cli("ope", str(out), "--target", "random_b", "--logging", "random"),
        "--logging: arm 'random' logged no propensity (NaN) on ",
    )


def test_a_refit_more_often_than_a_tick_is_refused(tmp_path):
    """Was: retrain.every_days 0.000694 (a minute) with 5-minute ticks passed validate and the
    run refitted five times for every tick of new clicks (clicks are logged only at ticks), so
    an mf arm spent most of the run refitting on data it had already fitted. Refused now, in
    one line naming the field and the smallest useful value; one tick is accepted."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_hostile_scenarios import Case, base_doc, dump, write_case

    doc = base_doc()
    doc["retrain"] = {"every_days": 0.000694}
    path = write_case(Case(dump(doc)), tmp_path)
    fragment = (
        "retrain.every_days: a refit every 0.000694 days (59.9616 s) is more often than a tick "
        "(horizon.tick_seconds 300)"
    )
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "--executor", "local", "-o", str(out))
    assert_refused(code, stderr, "the smallest useful value is 0.00347223 days (one tick)")
    assert not out.exists()
    doc["retrain"] = {"every_days": 1}
    doc["arms"][1]["retrain_every_days"] = 0.0001
    path = write_case(Case(dump(doc)), tmp_path)
    assert_refused(*cli("validate", str(path)), "arms[1].retrain_every_days: a refit every")
    doc["arms"][1]["retrain_every_days"] = 0.00347223  # one tick: every refit sees a tick more
    path = write_case(Case(dump(doc)), tmp_path)
    assert cli("validate", str(path))[0] == 0


def test_ope_names_why_an_asking_conversation_cannot_be_evaluated(tmp_path):
    """Was: `recarena ope --target info_gain` on a conversation run said the arm 'has no
    exposures on page 0' (its first turn asks), and with --all-pages that it 'served none of
    the requests' the random arm logged, as if it had served nobody. Now one line says that an
    arm that asks cannot be paired; a list recommender in a conversation still can."""
    from tests.cli_in_process import assert_refused, cli
    from tests.test_hostile_features import conversation_doc
    from tests.test_hostile_scenarios import Case, dump, write_case

    doc = conversation_doc()
    doc["arms"].append({"name": "random", "recommender": {"type": "random"}})
    path = write_case(Case(dump(doc)), tmp_path)
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(out))
    assert code == 0, stderr
    fragment = "arm 'info_gain' asks questions in its conversations ("
    for pages in ((), ("--all-pages",)):
        args = ("ope", str(out), *pages)
        assert_refused(*cli(*args, "--target", "info_gain", "--logging", "random"), fragment)
        assert_refused(*cli(*args, "--target", "popularity", "--logging", "info_gain"), fragment)
    assert cli("ope", str(out), "--target", "popularity", "--logging", "random")[0] == 0


def test_a_wide_carousel_lays_out_without_a_pairwise_mask():
    """Was: each row checked its candidates against every item placed so far with one
    [requests, candidates, placed] boolean mask: 25M booleans a request for 5,000 candidates on
    a 50 x 100 carousel (the schema's largest) over a 5,000-item catalog, so a 10-row carousel
    of 200 users and a tenth of a day ran 57.6 s (9.5 s now, the same bytes)."""
    import tracemalloc

    from recarena.simulator.engine.surfaces import SurfaceState

    catalog = _catalog(n=5000)
    rows = [{"theme": "personalized"}, {"theme": "topic"}] * 25
    surface = _surface(rows, cols=100, candidates=5000)
    state = SurfaceState(catalog, np.zeros(catalog.n), last_item=np.array([6, PAD_ITEM]))
    requests = _requests(catalog, np.full((2, 1), PAD_ITEM), surface.slots)
    tracemalloc.start()
    try:
        slates = surface.layout(Ranked(), requests, state)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB"
    for row in slates.items:  # no item twice on a page
        placed = row[row != PAD_ITEM]
        assert placed.size > 4000 and np.unique(placed).size == placed.size
