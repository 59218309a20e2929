"""The LLM bill of a run: calls, tokens, cache hits, failures and estimated cost.

Read from the ``llm_calls`` tables of the finished cells, so the figures are what was logged,
not what the client believes it did. "Calls per page" counts every call (repairs and
reflections included) per page an LLM user was shown: the figure that decides cost. In
conversations the unit is the turn with at least one LLM decision (an LLM CRS move or an LLM
user's answer), so "calls per turn" is the same figure for dialogue runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recarena.simulator.core.scenario import Scenario


def summarize_llm_calls(run_dir: Path, scenario: Scenario) -> dict[str, Any]:
    # a sweep's cells are under point=<i>/: its bill said 0 calls
    cells = ("arm=*/rep=*/llm_calls.parquet", "point=*/arm=*/rep=*/llm_calls.parquet")
    files = sorted(file for pattern in cells for file in Path(run_dir).glob(pattern))
    if not files:
        return {"calls": 0}
    calls = pl.concat(
        [
            pl.read_parquet(f, glob=False).with_columns(pl.lit(i).alias("cell"))
            for i, f in enumerate(files)
        ]
    )
    if calls.height == 0:
        return {"calls": 0}
    pages = calls.filter(pl.col("purpose") == "page").height
    turns = (
        calls.filter(pl.col("purpose").is_in(["crs", "turn"]))
        .select("cell", "session_id", "page")
        .unique()
        .height
    )
    prompt = int(calls["prompt_tokens"].sum())
    completion = int(calls["completion_tokens"].sum())
    live = calls.filter(~pl.col("cached"))
    cost = (
        prompt * scenario.llm.price_input_per_million
        + completion * scenario.llm.price_output_per_million
    ) / 1e6
    by_purpose = calls.group_by("purpose").len().sort("purpose")
    if "decision" in calls.columns:  # score (logprobs) or generate (JSON): which mode ran
        by_decision = calls.group_by("decision").len().sort("decision")
        decisions = dict(zip(by_decision["decision"], by_decision["len"], strict=True))
    else:
        decisions = {"generate": calls.height}
    return {
        "calls": calls.height,
        "by_purpose": dict(zip(by_purpose["purpose"], by_purpose["len"], strict=True)),
        "llm_pages": pages,
        "calls_per_page": round(calls.height / pages, 3) if pages else None,
        "llm_turns": turns,
        "calls_per_turn": round(calls.height / turns, 3) if turns else None,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens_per_page": round((prompt + completion) / pages, 1) if pages else None,
        "tokens_per_turn": round((prompt + completion) / turns, 1) if turns else None,
        "cached": int(calls["cached"].sum()),
        "invalid": int((~calls["valid"]).sum()),
        "fallbacks": int(calls["fallback"].sum()),
        "decisions": decisions,
        "endpoint_seconds": round(float(live["latency_s"].sum()), 2),
        "estimated_cost_usd": round(cost, 6),
    }


def format_accounting(summary: dict[str, Any]) -> str:
    if not summary.get("calls"):
        return "LLM: no calls"
    purposes = ", ".join(f"{k} {v}" for k, v in summary["by_purpose"].items())
    unit = "turn" if summary.get("llm_turns") and not summary["llm_pages"] else "page"
    return (
        f"LLM: {summary['calls']} calls ({purposes}); {summary[f'llm_{unit}s']} LLM {unit}s, "
        f"{summary[f'calls_per_{unit}']} calls/{unit}; tokens {summary['prompt_tokens']:,} "
        f"prompt + {summary['completion_tokens']:,} completion "
        f"({summary[f'tokens_per_{unit}']}/{unit}); "
        f"cached {summary['cached']}, invalid {summary['invalid']}, "
        f"fallbacks {summary['fallbacks']}; endpoint time {summary['endpoint_seconds']} s; "
        f"estimated cost ${summary['estimated_cost_usd']:.4f}"
    )
