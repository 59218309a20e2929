"""A newcomer's usual mistakes get an error line that says how to fix them."""

from __future__ import annotations

import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.preflight import preflight
from recarena.simulator.runner.resolve import parse_scenario


def _refusal(doc) -> str:
    with pytest.raises(RecarenaError) as info:
        preflight(parse_scenario(doc, "x.yaml"))
    return str(info.value)


def test_a_relative_path_not_found_names_the_directory_it_was_read_from(
    tiny_doc, tmp_path, monkeypatch
):
    """Paths in a scenario are read from the working directory, not the scenario's folder."""
    monkeypatch.chdir(tmp_path)
    tiny_doc["population"]["social"] = {"graph": {"type": "edge_list", "path": "edges.txt"}}
    assert _refusal(tiny_doc).endswith(
        f"edge-list file not found: edges.txt (a relative path is read from the working "
        f"directory, {tmp_path})"
    )
    tiny_doc["population"] = {"from": "calibrated", "path": "data/pop.parquet"}
    assert (
        f"data/pop.parquet not found (a relative path is read from the working directory, "
        f"{tmp_path}) and population.dataset is not set" in _refusal(tiny_doc)
    )
    tiny_doc["population"] = {"from": "calibrated", "path": str(tmp_path / "pop.parquet")}
    assert "working directory" not in _refusal(tiny_doc)  # an absolute path says nothing more
