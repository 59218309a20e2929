"""How much of a run's "LLM" behaviour was really the rule fallback.

The LLM client turns every failed call (endpoint down, key missing, garbage answers) into a
logged fallback so that a flaky endpoint degrades a run instead of killing it. The price is that
an endpoint that is down makes a run of rule users that *looks* like an LLM run. So after a run
with LLM decisions the share that fell back is measured from the logs (``llm_calls.fallback``)
and compared with a threshold (``llm.max_fallback_share``, CLI ``--max-fallback``); above it
the run ends with its own exit code (3) unless ``--allow-fallback``.

A *decision* is one ``llm_calls`` row that is not a repair (a page, a reflection, a
conversational turn, a creator's review...): repairs are retries of a decision, not decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

DEFAULT_MAX_SHARE = 0.2
EXIT_FALLBACK = 3


def shares_by_arm(calls: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """``arm, decisions, fallbacks, share`` from ``llm_calls`` rows carrying an ``arm`` column."""
    frame = calls.lazy() if isinstance(calls, pl.DataFrame) else calls
    return (
        frame.filter(~pl.col("purpose").str.starts_with("repair"))
        .group_by("arm")
        .agg(
            pl.len().alias("decisions"), pl.col("fallback").sum().cast(pl.Int64).alias("fallbacks")
        )
        .with_columns((pl.col("fallbacks") / pl.col("decisions")).alias("share"))
        .sort("arm")
        .collect()
    )


def calls_of_cells(cells: list[tuple[str, Path]]) -> pl.LazyFrame | None:
    """The ``llm_calls`` of ``(arm, cell_dir)`` cells, with an ``arm`` column; None if none."""
    frames = [
        pl.scan_parquet(path / "llm_calls.parquet", glob=False)  # 'runs/exp[1]' is a path
        .select("purpose", "fallback")
        .with_columns(pl.lit(arm, pl.Utf8).alias("arm"))
        for arm, path in cells
        if (path / "llm_calls.parquet").is_file()
    ]
    return pl.concat(frames) if frames else None


@dataclass(frozen=True)
class FallbackCheck:
    decisions: int
    fallbacks: int
    threshold: float
    per_arm: dict[str, tuple[int, int]]
    """arm -> (fallbacks, decisions)."""

    @property
    def share(self) -> float:
        return self.fallbacks / self.decisions if self.decisions else 0.0

    @property
    def exceeded(self) -> bool:
        return self.decisions > 0 and self.share > self.threshold

    def per_arm_text(self) -> str:
        return ", ".join(
            f"{arm} {f / d:.0%} ({f}/{d})" for arm, (f, d) in self.per_arm.items() if d
        )

    def warning(self) -> str:
        return (
            f"{self.fallbacks} of {self.decisions} LLM decisions ({self.share:.0%}) fell back to "
            f"the rule policy, above the {self.threshold:.0%} threshold ({self.per_arm_text()}): "
            "these are mostly rule-user results. Check the endpoint (llm.base_url, the API key "
            "variable, the llm_calls.error column); --allow-fallback accepts the run, "
            "--max-fallback changes the threshold"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "decisions": self.decisions,
            "fallbacks": self.fallbacks,
            "share": round(self.share, 6),
            "threshold": self.threshold,
            "exceeded": self.exceeded,
            "per_arm": {a: {"fallbacks": f, "decisions": d} for a, (f, d) in self.per_arm.items()},
        }


def check_fallback(cells: list[tuple[str, Path]], threshold: float) -> FallbackCheck:
    calls = calls_of_cells(cells)
    if calls is None:
        return FallbackCheck(0, 0, threshold, {})
    table = shares_by_arm(calls)
    per_arm = {
        r["arm"]: (int(r["fallbacks"]), int(r["decisions"])) for r in table.iter_rows(named=True)
    }
    return FallbackCheck(
        sum(d for _, d in per_arm.values()), sum(f for f, _ in per_arm.values()), threshold, per_arm
    )
