"""Metrics against hand computations and the statistical behaviour of compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recarena.analysis import compare, compute_metrics, gini, load
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.logschema import SCHEMAS


def _write(cell: Path, table: str, rows: dict) -> None:
    schema = SCHEMAS[table]
    n = len(next(iter(rows.values())))
    columns = {f.name: rows.get(f.name, [None] * n) for f in schema}
    pq.write_table(pa.table(columns, schema=schema), cell / f"{table}.parquet")


def _fake_run(root: Path, cells: dict[tuple[str, int], dict[str, dict]], incomplete=()) -> Path:
    arms = list(dict.fromkeys(a for a, _ in cells))
    entries = []
    for (arm, rep), tables in cells.items():
        cell = root / f"arm={arm}/rep={rep}"
        cell.mkdir(parents=True)
        for table in SCHEMAS:
            _write(cell, table, tables.get(table, {SCHEMAS[table][0].name: []}))
        (cell / "manifest.json").write_text("{}")
        if (arm, rep) in incomplete:
            (cell / "_INCOMPLETE").write_text("")
        entries.append({"arm": arm, "rep": rep, "path": f"arm={arm}/rep={rep}"})
    manifest = {"arms": arms, "baseline": arms[0], "cells": entries, "metrics": ["ctr"]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


HAND = {
    # 3 users, 4 items (2 creators); 5 exposures, 2 clicks
    "exposures": {
        "user_id": [0, 0, 1, 1, 2],
        "item_id": [0, 1, 0, 2, 0],
        "creator_id": [0, 0, 0, 1, 0],
        "clicked": [True, False, False, True, False],
    },
    "sessions": {
        "user_id": [0, 0, 1, 2],
        "day": [0, 1, 0, 0],
        "pages": [1, 2, 3, 2],
        "clicks": [1, 0, 1, 0],
    },
    "items": {"item_id": [0, 1, 2, 3], "creator_id": [0, 0, 1, 1]},
    "creators": {"creator_id": [0, 1]},
}


def test_metrics_by_hand(tmp_path):
    logs = load(_fake_run(tmp_path, {("a", 0): HAND}))
    values = dict(compute_metrics(logs).select("metric", "value").iter_rows())
    assert values["ctr"] == pytest.approx(2 / 5)
    assert values["consumption_per_session"] == pytest.approx(2 / 4)
    assert values["session_length"] == pytest.approx(8 / 4)
    assert values["return_rate"] == pytest.approx(1 / 3)  # only user 0 came back on day 1
    assert values["coverage"] == pytest.approx(3 / 4)
    assert values["item_gini"] == pytest.approx(gini(np.array([3, 1, 1, 0])))
    assert values["creator_gini"] == pytest.approx(gini(np.array([4, 1])))


def test_gini_by_hand():
    assert gini(np.array([1.0, 1.0, 1.0])) == 0.0
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    # [1, 3]: (−1·1 + 1·3) / (2·4) = 0.25
    assert gini(np.array([3, 1])) == pytest.approx(0.25)
    assert gini(np.array([0, 0])) == 0.0


def test_load_skips_and_lists_incomplete_cells(tmp_path):
    run = _fake_run(tmp_path, {("a", 0): HAND, ("a", 1): HAND}, incomplete=[("a", 1)])
    with pytest.warns(UserWarning, match=r"1 cell\(s\) left out: arm=a/rep=1 \(unfinished\)"):
        logs = load(run)
    assert [(c.arm, c.rep) for c in logs.incomplete] == [("a", 1)]
    frame = logs.exposures.collect()
    assert frame.columns[:2] == ["arm", "rep"] and set(frame["rep"]) == {0}


def test_load_errors(tmp_path):
    with pytest.raises(RecarenaError, match="run directory not found"):
        load(tmp_path / "nope")
    with pytest.raises(RecarenaError, match="no manifest.json"):
        load(tmp_path)


def _long(values: dict[str, list[float]], metric: str = "m") -> pl.DataFrame:
    rows = [(metric, arm, rep, v) for arm, vs in values.items() for rep, v in enumerate(vs)]
    return pl.DataFrame(rows, schema=["metric", "arm", "rep", "value"], orient="row")


def test_true_difference_is_detected():
    rng = np.random.default_rng(0)
    base = rng.normal(0.10, 0.01, 5)
    frame = compare(_long({"a": list(base), "b": list(base + 0.02 + rng.normal(0, 0.002, 5))}))
    b = frame.filter(pl.col("arm") == "b").row(0, named=True)
    assert b["significant"] and 0 < b["delta_ci_low"] < b["delta"] < b["delta_ci_high"]
    assert b["rel_delta"] == pytest.approx(b["delta"] / base.mean())


def test_pairing_removes_shared_noise():
    # replicate-to-replicate swings are large, the paired difference is constant
    swings = np.array([0.05, 0.30, 0.10, 0.25, 0.15, 0.20])
    frame = compare(_long({"a": list(swings), "b": list(swings + 0.01)}))
    b = frame.filter(pl.col("arm") == "b").row(0, named=True)
    assert b["delta_ci_low"] == pytest.approx(0.01) and b["delta_ci_high"] == pytest.approx(0.01)
    assert b["significant"]
    assert b["ci_high"] - b["ci_low"] > 0.05  # the unpaired spread is much wider


def test_aa_comparisons_mostly_contain_zero():
    # A/A: both arms drawn from one distribution. The percentile bootstrap over 10 replicates
    # under-covers a little (nominal 95%); require at least 85% over 200 synthetic experiments.
    covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        shared = rng.normal(0.1, 0.02, 10)
        arms = {
            "a": list(shared + rng.normal(0, 0.01, 10)),
            "b": list(shared + rng.normal(0, 0.01, 10)),
        }
        row = compare(_long(arms), seed=seed).filter(pl.col("arm") == "b").row(0, named=True)
        covered += row["delta_ci_low"] <= 0 <= row["delta_ci_high"]
    assert covered / 200 >= 0.85


def test_compare_is_deterministic_and_checks_baseline():
    data = _long({"a": [1.0, 2.0, 3.0], "b": [2.0, 2.5, 3.9]})
    assert compare(data).equals(compare(data))
    with pytest.raises(RecarenaError, match="unknown arm 'z'; arms: a, b"):
        compare(data, baseline="z")
    single = compare(_long({"a": [1.0], "b": [2.0]}))
    assert single["delta_ci_low"].is_null().all()
