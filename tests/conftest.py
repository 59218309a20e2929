"""Shared fixtures: small scenarios that run in seconds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

TINY = {
    "name": "tiny",
    "seed": 3,
    "replicates": 2,
    "horizon": {"days": 2, "tick_seconds": 120},
    "catalog": {"initial_items": 300, "topics": 8},
    "population": {"users": 300},
    "creators": {"count": 5, "uploads_per_day": 2.0},
    "surface": {"k": 5},
    "arms": [
        {"name": "random", "recommender": {"type": "random"}},
        {"name": "popularity", "recommender": {"type": "popularity"}},
    ],
}


@pytest.fixture
def tiny_doc() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture
def write_scenario(tmp_path: Path):
    def write(doc: dict | str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
        return path

    return write
