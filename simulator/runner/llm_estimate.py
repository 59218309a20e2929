"""``recarena run --dry-run``: the LLM calls, tokens and cost a run would take, calling nothing.

How many pages the LLM panel will see is the figure everything else follows from, and it
depends on arrivals, fatigue and the slates. So the estimate *runs* the scenario's first cell
with the panel answered by the rule policy (its own fallback, so the same arrivals and the same
browsing model), in a temporary directory, and counts the panel users' pages, clicks and
sessions. Prompt tokens come from rendering the actual prompt templates for a page of ``k``
slots (about 4 characters a token) with the memory budget half used; completion tokens from the
decision mode (1-2 per scoring call, about 50 per JSON answer, about 40 per reflection, as
measured with SmolLM2), and users who talk add one call per panel user's consumption (a
talk prompt is counted as long as a page prompt). It is an estimate: an LLM user who leaves
earlier or clicks more than its rule twin changes the count, and LLM CRS or creator calls are
listed as not estimated.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from recarena.agents.llm.choices import slot_labels
from recarena.agents.llm.item_text import compact_line
from recarena.agents.llm.prompts import render, text
from recarena.agents.users.llm_panel import panel_users
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.runner.experiment import run_experiment

JSON_COMPLETION_TOKENS = 50
TALK_COMPLETION_TOKENS = 12  # {"action": ..., "opinion": ...}
REFLECTION_COMPLETION_TOKENS = 40
SAMPLE_LINE = "The Silent Harbor #1234 (Drama/Comedy) rated ★★★☆☆"
SAMPLE_PERSONA = (
    "Maya. Favourite genres: Comedy, Drama, Romance; not keen on Horror. Watches a few times a "
    "week; mostly favourites with some variety; open to something new at times; glances at "
    "ratings."
)


def _rule_only(scenario: Scenario) -> Scenario:
    """The first cell's scenario with every LLM decision taken by the rule fallback."""
    arm = scenario.arms[0]
    rule_twin = {"llm_crs": "info_gain", "llm_instructable": "instructable"}
    if arm.recommender.type in rule_twin:
        params = {k: v for k, v in arm.recommender.params.items() if k != "shortlist"}
        arm = arm.model_copy(
            update={"recommender": arm.recommender.model_copy(
                update={"type": rule_twin[arm.recommender.type], "params": params})}
        )  # fmt: skip
    population = scenario.population.model_copy(update={"model": "rule", "llm_panel": None})
    creators = scenario.creators
    if creators.strategy.type == "llm":
        creators = creators.model_copy(
            update={"strategy": creators.strategy.model_copy(update={"type": "static"})}
        )
    return scenario.model_copy(
        update={
            "population": population,
            "creators": creators,
            "arms": [arm],
            "replicates": 1,
            "sweep": None,
        }
    )


def _prompt_tokens(scenario: Scenario) -> tuple[int, int]:
    """(scoring, JSON) prompt tokens of one page, from the real templates."""
    k = min(scenario.surface.k if hasattr(scenario.surface, "k") else 10, 35)
    panel = scenario.population.llm_panel
    budget = (panel.memory_tokens if panel else 0) // 2
    memories = ["x" * 4 * budget] if budget else []
    lines = [compact_line(SAMPLE_LINE)] * k
    profile = render("profile.j2", persona=SAMPLE_PERSONA, memories=memories)
    score = text("system_score.txt") + profile + render(
        "page_score.j2", page=1, tiredness="fresh", explore=False, slate=lines,
        labels=slot_labels(k), rate=scenario.llm.ratings == "ask",
    )  # fmt: skip
    generate = text("system.txt") + render(
        "page.j2", persona=SAMPLE_PERSONA, memories=memories, page=1, tiredness="fresh",
        explore=False, slate=[SAMPLE_LINE] * k,
    )  # fmt: skip
    chat_overhead = 12  # role markers of two messages
    return len(score) // 4 + chat_overhead, len(generate) // 4 + chat_overhead


def estimate_llm_calls(scenario: Scenario, cells: int) -> dict[str, Any]:
    """Expected LLM pages, calls, tokens and cost of the whole run (``cells`` cells)."""
    started = time.perf_counter()
    notes = []
    if any(arm.recommender.type == "llm_crs" for arm in scenario.arms):
        notes.append("LLM CRS calls (one per conversation turn) not estimated")
    if any(arm.recommender.type == "llm_instructable" for arm in scenario.arms):
        notes.append("llm_instructable calls (one per page under an instruction) not estimated")
    if scenario.creators.strategy.type == "llm":
        notes.append("creator strategy calls (one per creator and review) not estimated")
    pages = clicks = sessions = 0
    if scenario.population.llm_users:
        probe = _rule_only(scenario)
        with tempfile.TemporaryDirectory(prefix="recarena-dry-run-") as tmp:
            run_dir = run_experiment(probe, Path(tmp) / "run", executor="local").run_dir
            cell = next(run_dir.glob("arm=*/rep=0"))
            panel = pl.Series("user_id", panel_users(scenario, 0))
            table = pl.read_parquet(cell / "sessions.parquet", glob=False).filter(
                pl.col("user_id").is_in(panel.implode())
            )
        pages, clicks, sessions = (
            int(table["pages"].sum()),
            int(table["clicks"].sum()),
            table.height,
        )
    llm, panel_cfg = scenario.llm, scenario.population.llm_panel
    every = panel_cfg.reflect_every_sessions if panel_cfg else 0
    reflections = sessions // every if every else 0
    score_prompt, json_prompt = _prompt_tokens(scenario)
    if llm.decision == "score":
        rating_calls = clicks if llm.ratings == "ask" else 0  # at most: see the module doc
        page_calls = pages + rating_calls
        prompt = page_calls * score_prompt
        completion = pages * (2 if llm.ratings == "ask" else 1) + rating_calls
    else:
        page_calls, prompt = pages, pages * json_prompt
        completion = pages * JSON_COMPLETION_TOKENS
    social = scenario.population.social
    talk_calls = clicks if social is not None and social.talk is not None else 0
    calls = page_calls + reflections + talk_calls  # talk: one call per LLM user's consumption
    prompt += reflections * json_prompt // 2 + talk_calls * score_prompt
    completion += reflections * REFLECTION_COMPLETION_TOKENS
    completion += talk_calls * (1 if llm.decision == "score" else TALK_COMPLETION_TOKENS)
    per_cell = {"pages": pages, "calls": calls, "prompt": prompt, "completion": completion}
    total = {key: value * cells for key, value in per_cell.items()}
    cost = (
        total["prompt"] * llm.price_input_per_million
        + total["completion"] * llm.price_output_per_million
    ) / 1e6
    return {
        "cells": cells,
        "decision": llm.decision,
        "per_cell": per_cell,
        "total": total,
        "estimated_cost_usd": round(cost, 4),
        "probe_seconds": round(time.perf_counter() - started, 1),
        "notes": notes,
    }


def format_estimate(estimate: dict[str, Any]) -> str:
    total, cell = estimate["total"], estimate["per_cell"]
    lines = [
        f"dry run ({estimate['decision']} mode, {estimate['cells']} cells; nothing was called):",
        f"  LLM pages {total['pages']:,} ({cell['pages']:,} per cell), LLM calls "
        f"{total['calls']:,}, tokens {total['prompt']:,} prompt + {total['completion']:,} "
        f"completion, estimated cost ${estimate['estimated_cost_usd']:.4f} "
        f"(llm.price_*_per_million)",
        f"  from a rule-only run of the first cell ({estimate['probe_seconds']} s)",
    ]
    lines += [f"  note: {note}" for note in estimate["notes"]]
    return "\n".join(lines)
