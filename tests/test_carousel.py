"""The carousel surface: layout by row theme and the 2-D attention model."""

from __future__ import annotations

import numpy as np
import pytest

from recarena.analysis import load
from recarena.analysis.grid import by_col, by_row
from recarena.recommenders.base import NoParams
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.scenario import CarouselSurface
from recarena.simulator.core.types import PAD_ITEM, CatalogView, RequestBatch, SlateBatch
from recarena.simulator.engine.surfaces import CarouselView, SurfaceState
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario


class Ranked:
    """Stub recommender: a fixed ranking 0, 1, 2, ... minus exclusions."""

    Params = NoParams

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        from recarena.recommenders.slates import top_k_from_ranking

        ranking = np.arange(requests.catalog.n_items, dtype=np.int64)
        items = top_k_from_ranking(ranking, requests.exclude, requests.k)
        scores = -items.astype(np.float32)
        return SlateBatch(items, scores, np.ones(items.shape, np.float32))


def _catalog(n=120, topics=4) -> Catalog:
    catalog = Catalog(topics)
    topic = np.arange(n) % topics
    catalog.add(
        np.eye(topics, dtype=np.float32)[topic],
        np.zeros(n, np.float32),
        np.zeros(n, np.int32),
        0.0,
    )
    catalog._created_at[:n] = np.arange(n, dtype=np.float64)  # item id = publication order
    return catalog


def _surface(rows, cols=5, **kw) -> CarouselView:
    return CarouselView(CarouselSurface(type="carousel", rows=rows, cols=cols, **kw))


def _requests(catalog, exclude, k) -> RequestBatch:
    b = exclude.shape[0]
    view = CatalogView(
        catalog.n, catalog.topics, catalog.quality, catalog.creator, catalog.created_at
    )
    return RequestBatch(0.0, np.arange(b), np.arange(b), np.zeros(b, np.int32), k, view, exclude)


def test_layout_follows_row_themes():
    catalog = _catalog()
    surface = _surface(
        [
            {"theme": "personalized"},
            {"theme": "topic"},
            {"theme": "new"},
            {"theme": "trending"},
            {"theme": "because_you_watched"},
        ]
    )
    exclude = np.array([[0, 5, PAD_ITEM], [119, PAD_ITEM, PAD_ITEM]])
    recent = np.zeros(catalog.n)
    recent[[50, 60, 70]] = [3, 2, 1]
    state = SurfaceState(catalog, recent, last_item=np.array([6, PAD_ITEM]))
    slates = surface.layout(Ranked(), _requests(catalog, exclude, surface.slots), state)
    grid = slates.items.reshape(2, 5, 5)
    assert grid[0, 0].tolist() == [1, 2, 3, 4, 6]  # the ranking minus consumed 0 and 5
    topics = catalog.topics.argmax(axis=1)
    assert len(set(topics[grid[0, 1]].tolist())) == 1  # a topic row holds one topic
    assert grid[0, 2].tolist() == [119, 118, 117, 116, 115]  # newest first
    assert grid[1, 2, 0] == 118  # user 1 consumed 119
    assert grid[0, 3, :3].tolist() == [50, 60, 70]  # yesterday's most clicked
    assert (topics[grid[0, 4]] == topics[6]).all()  # like the last item user 0 consumed
    for row, excl in zip(slates.items, exclude, strict=True):
        shown = row[row != PAD_ITEM].tolist()
        assert len(shown) == len(set(shown)), "an item appears once per page"
        assert not set(shown) & set(excl.tolist())


def test_attention_decays_along_rows_and_columns_and_skips_by_theme():
    surface = _surface(
        [{"theme": "personalized"}, {"theme": "personalized"}, {"theme": "new", "skip": 0.5}],
        cols=4,
        row_decay=0.8,
        col_decay=0.6,
    )
    n = 60_000
    keys = np.arange(n, dtype=np.uint64) * np.uint64(7919)
    examined = surface.examine(keys, np.zeros((n, surface.slots), np.int64)).reshape(n, 3, 4)
    col0 = examined[:, :, 0].mean(axis=0)
    assert col0 == pytest.approx([1.0, 0.8, 0.64 * 0.5], abs=0.01)
    assert examined[:, 0, :].mean(axis=0) == pytest.approx(0.6 ** np.arange(4), abs=0.01)
    # row-level skipping: a skipped row has no examined slot at all
    row2_any = examined[:, 2, :].any(axis=1).mean()
    assert row2_any == pytest.approx(0.64 * 0.5, abs=0.01)


def test_carousel_run_logs_rows_and_columns(tmp_path, tiny_doc):
    tiny_doc["replicates"] = 1
    tiny_doc["arms"] = [
        {"name": "list", "recommender": {"type": "popularity"}},
        {
            "name": "carousel",
            "recommender": {"type": "popularity"},
            "surface": {
                "type": "carousel",
                "cols": 4,
                "rows": [{"theme": "personalized"}, {"theme": "topic"}, {"theme": "new"}],
            },
        },
    ]
    run_experiment(parse_scenario(tiny_doc), tmp_path / "run", executor="local")
    logs = load(tmp_path / "run")
    rows = by_row(logs).filter(arm="carousel")
    assert rows["row"].to_list() == [0, 1, 2]
    assert rows["examination"].to_list() == sorted(rows["examination"].to_list(), reverse=True)
    cols = by_col(logs).filter(arm="carousel")
    assert cols["examination"][0] > cols["examination"][3]
    assert set(by_row(logs).filter(arm="list")["row"].to_list()) == {0}
