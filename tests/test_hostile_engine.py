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
