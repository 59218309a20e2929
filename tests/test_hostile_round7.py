"""Round seven of the hostile user: numbers at their edges in every field, features combined,
run options, damaged run directories and plug-ins that misbehave in new ways.

Each case is one line, exit code 2, naming the field, and validate says it before run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere

GIB = 2**30


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round7", days=0.2)


# ------------------------------------------------------------------ an sbm graph's blocks
@pytest.mark.parametrize("blocks", [21, 2**63 - 1])
def test_sbm_blocks_past_the_users_are_refused(tmp_path, blocks):
    """Was: validate ok, then every cell failed with "ValueError: array is too big" (users per
    block were counted over every block id up to 2^63 - 1); 21 blocks over 20 users ran a graph
    of at most 20 blocks without a word."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": {"type": "sbm", "blocks": blocks}}
    refused_everywhere(
        tmp_path,
        doc,
        f"population.social.graph.blocks: {blocks} blocks (sbm) need at least {blocks} users; "
        "population.users is 20",
    )


def test_sbm_block_pairs_count_in_the_memory_estimate(tmp_path, monkeypatch):
    """Was: 30,000 blocks over 30,000 users passed validate; networkx's table of block pairs
    alone is ~50 bytes a pair, ~45 GB."""
    monkeypatch.setattr("recarena.simulator.runner.preflight.machine_memory", lambda: 16 * GIB)
    doc = base_doc(tmp_path)
    doc["population"] = {"users": 30_000, "social": {"graph": {"type": "sbm", "blocks": 30_000}}}
    refused_everywhere(tmp_path, doc, "most of it for the sbm graph's 30,000 x 30,000 block pairs")
