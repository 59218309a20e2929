"""ARCHITECTURE.md is checked against the code: every package has a line, every path exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "ARCHITECTURE.md").read_text()


def test_every_installed_package_is_described():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    described = set(re.findall(r"\| `(recarena[\w.]*)` \|", TEXT))
    # prompts are data: described with their parent
    missing = [p for p in packages if p not in described and not p.endswith(".prompts")]
    assert missing == []


def test_every_file_named_exists():
    paths = set(
        re.findall(
            r"`((?:simulator|agents|recommenders|analysis|benchmarks|tests)/[\w/]+\.py)`", TEXT
        )
    )
    engine_files = re.findall(
        r"`(\w+\.py)`", TEXT.split("| `recarena.simulator.engine` |")[1].split("\n")[0]
    )
    paths |= {f"simulator/engine/{name}" for name in engine_files}
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert paths and missing == []


def test_no_path_outside_the_repository():
    assert "../shared" not in TEXT and "/work/" not in TEXT
