"""Round five of the hostile user: what validate passed, or the CLI took, and should not have.

Each case was found by writing scenarios and command lines a careless or hostile user would:
an output path holding a newline, a social graph whose density the memory estimate did not
count, and plug-in modules that fail in ways the registry did not expect.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cli_in_process import assert_refused, cli


def base_doc(tmp_path: Path) -> dict:
    return {
        "name": "round5",
        "replicates": 1,
        "horizon": {"days": 0.2, "tick_seconds": 600},
        "catalog": {"initial_items": 40, "topics": 4},
        "population": {"users": 20},
        "creators": {"count": 2},
        "arms": [
            {"name": "random", "recommender": {"type": "random"}},
            {"name": "popularity", "recommender": {"type": "popularity"}},
        ],
        "output": {"dir": str(tmp_path / "runs")},
    }


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def refused_everywhere(tmp_path: Path, doc: dict, fragment: str) -> None:
    """validate refuses; run refuses the same way and creates nothing."""
    path = write(tmp_path, doc)
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), fragment)
    assert not out.exists() and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------- paths a command makes
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("-o", "out\nrun", "'--output' / '-o'"),
        ("-o", "out\trun", "'--output' / '-o'"),
        ("--llm-cache", "cache\n.sqlite", "'--llm-cache'"),
    ],
)
def test_a_path_to_create_with_a_control_character_is_refused(tmp_path, option, value, named):
    """Was: ``run -o $'out\\nrun'`` made a folder whose name held a newline and printed 'run
    directory:' over two lines, though ``output.dir`` with the same newline is refused."""
    path = write(tmp_path, base_doc(tmp_path))
    code, stderr = cli("run", str(path), "--executor", "local", "-q", option, str(tmp_path / value))
    assert_refused(code, stderr, named)
    assert "control character" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_report_path_with_a_newline_is_refused(tmp_path):
    code, stderr = cli("report", str(tmp_path), "-o", str(tmp_path / "r\n.html"))
    assert_refused(code, stderr, "control character")
