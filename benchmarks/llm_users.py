"""LLM users on the embedded local server: pages/s, tokens/page, calls/page, replay speed-up.

1. Runs a scenario (default ``scenarios/llm_panel.yaml``) in ``record`` mode against the local
   llama.cpp server (SmolLM2-135M-Instruct), with a fresh cache in a temporary directory.
2. Runs it again in ``replay`` mode: no server, every call from the cache.
3. Prints wall times, LLM pages per second of the recorded run, tokens per LLM page, calls per
   LLM page (reflections and repairs included), and the replay speed-up. Checks that the replay
   reproduced the recorded simulation tables exactly.

For scale, Agent4Rec reports 1,000 agents x up to 5 pages in 4,068 s and 6.9M tokens (about
1.2 pages/s and about 1,400 tokens per page, with a paid API); those figures are quoted, not run.

    python benchmarks/llm_users.py [--scenario scenarios/llm_panel.yaml] [--days N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIM_TABLES = ("exposures", "interactions", "sessions", "items", "personas")


def _timed_run(scenario, run_dir: Path, mode: str, cache: Path):
    from recarena.simulator.runner.experiment import run_experiment

    start = time.perf_counter()
    result = run_experiment(
        scenario, run_dir, executor="local", llm_cache_mode=mode, llm_cache_path=cache
    )
    return result, time.perf_counter() - start


def _same_tables(a: Path, b: Path) -> bool:
    import polars as pl

    for left in sorted(a.glob("arm=*/rep=*/*.parquet")):
        if left.stem not in SIM_TABLES:
            continue
        right = b / left.relative_to(a)
        if not pl.read_parquet(left).equals(pl.read_parquet(right)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "llm_panel.yaml"))
    parser.add_argument("--days", type=int, default=None, help="override horizon.days")
    args = parser.parse_args()

    from recarena.simulator.runner.resolve import load_scenario

    scenario = load_scenario(Path(args.scenario))
    if args.days is not None:
        scenario = scenario.model_copy(
            update={"horizon": scenario.horizon.model_copy(update={"days": args.days})}
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cache = tmp_path / "cache.sqlite"
        recorded, record_s = _timed_run(scenario, tmp_path / "recorded", "record", cache)
        replayed, replay_s = _timed_run(scenario, tmp_path / "replayed", "replay", cache)
        identical = _same_tables(recorded.run_dir, replayed.run_dir)
    acc = recorded.manifest["llm"]["accounting"]
    endpoint_s = acc["endpoint_seconds"]
    print(
        f"scenario: {scenario.name}, {scenario.population.users} users "
        f"({scenario.population.llm_users} LLM), {len(scenario.arms)} arms, "
        f"{scenario.horizon.days} days"
    )
    print(f"record run : {record_s:8.1f} s wall ({endpoint_s:.1f} s summed endpoint latency)")
    print(f"replay run : {replay_s:8.1f} s wall")
    print(f"replay speed-up: {record_s / replay_s:.1f}x; logs identical: {identical}")
    print(f"LLM pages: {acc['llm_pages']}, calls: {acc['calls']} {acc['by_purpose']}")
    print(f"calls per LLM page (incl. reflections, repairs): {acc['calls_per_page']}")
    print(f"LLM pages per second (recorded run wall): {acc['llm_pages'] / record_s:.2f}")
    print(
        f"tokens per LLM page: {acc['tokens_per_page']} "
        f"({acc['prompt_tokens']:,} prompt + {acc['completion_tokens']:,} completion in all)"
    )
    print(f"invalid answers: {acc['invalid']}, fallbacks to rules: {acc['fallbacks']}")


if __name__ == "__main__":
    main()
