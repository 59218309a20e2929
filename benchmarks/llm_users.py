"""LLM users, scoring mode against JSON (grammar) mode: one machine, one run, a server per mode.

1. Starts the embedded llama.cpp server (default SmolLM2-135M; ``--model-path`` for any GGUF
   file) afresh for each mode and warms it up with one call, so no mode inherits another's
   prompt cache (``--prompt-cache-mb``, 0 for none) or pays the model's first load.
2. Runs the scenario (default ``scenarios/llm_panel.yaml``, shrunk by ``--days``,
   ``--llm-users`` and ``--arms``) with ``llm.decision: score`` in ``record`` mode, then the
   same with ``decision: generate``; then replays the scoring run from its cache (no endpoint)
   and checks that the simulation tables are bit-identical.
3. Prints, per mode: LLM pages, wall seconds, LLM pages per second, calls per page (ratings,
   reflections and repairs included), prompt and completion tokens per page, fallbacks; and
   the speed-up of scoring over JSON mode against the issue's targets.

    python benchmarks/llm_users.py [--days 0.5] [--llm-users 4] [--arms 1] [--model-path F]

For scale, Agent4Rec reports 1,000 agents x up to 5 pages in 4,068 s and 6.9M tokens (about
1.2 pages/s and about 1,400 tokens per page, with a paid API); those figures are quoted, not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIM_TABLES = ("exposures", "interactions", "sessions", "items", "personas")
HEADER = "mode       pages   wall s  pages/s  calls/page  prompt tok/p  compl tok/p  fallbacks"
MODES = (  # (row name, llm.decision, llm.ratings)
    ("score", "score", "ask"),
    ("score-rr", "score", "rule"),
    ("generate", "generate", "ask"),
)


def _same_tables(a: Path, b: Path) -> bool:
    import polars as pl

    for left in sorted(a.glob("arm=*/rep=*/*.parquet")):
        if left.stem not in SIM_TABLES:
            continue
        right = b / left.relative_to(a)
        if not pl.read_parquet(left).equals(pl.read_parquet(right)):
            return False
    return True


def _scenario(args, base_url, alias, decision, cache: Path, mode: str, ratings: str = "ask"):
    import yaml

    from recarena.simulator.runner.resolve import parse_scenario

    doc = yaml.safe_load(Path(args.scenario).read_text(encoding="utf-8"))
    doc["horizon"] = dict(doc.get("horizon") or {}, days=args.days)
    panel = doc["population"].setdefault("llm_panel", {})
    panel["users"] = args.llm_users
    doc["arms"] = doc["arms"][: args.arms]
    doc["baseline"] = doc["arms"][0]["name"]
    llm = dict(doc.get("llm") or {})
    llm |= {
        "provider": "openai",
        "base_url": base_url,
        "model": alias,
        "response_format": "json_object_schema",  # llama.cpp: a grammar from the schema
        "decision": decision,
        "ratings": ratings,
        "cache": {"path": str(cache), "mode": mode},
    }
    doc["llm"] = llm
    return parse_scenario(doc)


def _run(scenario, run_dir: Path) -> tuple[dict, float]:
    from recarena.simulator.runner.experiment import run_experiment

    started = time.perf_counter()
    result = run_experiment(scenario, run_dir, executor="local")
    return result.manifest["llm"]["accounting"], time.perf_counter() - started


def _row(name: str, acc: dict, wall: float) -> str:
    if not acc.get("calls"):
        raise SystemExit(f"{name}: no LLM calls at all; run more --days or --llm-users")
    pages = acc["llm_pages"] or 1
    return (
        f"{name:<9} {acc['llm_pages']:>6} {wall:>8.1f} {acc['llm_pages'] / wall:>8.2f} "
        f"{acc['calls'] / pages:>10.3f} {acc['prompt_tokens'] / pages:>12.1f} "
        f"{acc['completion_tokens'] / pages:>11.2f} {acc['fallbacks']:>9}"
    )


def _warm_up(base_url: str, model: str) -> None:
    """One tiny completion, so the first timed call does not pay for loading the model."""
    import json
    import urllib.request

    body = {"model": model, "max_tokens": 1,
            "messages": [{"role": "user", "content": "Say 1."}]}  # fmt: skip
    request = urllib.request.Request(
        f"{base_url}/chat/completions", json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as reply:
        reply.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "llm_panel.yaml"))
    parser.add_argument("--days", type=float, default=0.5)
    parser.add_argument("--llm-users", type=int, default=4)
    parser.add_argument("--arms", type=int, default=1)
    parser.add_argument("--model-path", default=None, help="a GGUF file (default SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--prompt-cache-mb", type=int, default=0,
                        help="llama.cpp's RAM cache of prompt states (0: off)")  # fmt: skip
    args = parser.parse_args()

    from recarena.agents.llm.client import LOCAL_MODEL
    from recarena.agents.llm.server import LocalServer

    alias = Path(args.model_path).stem if args.model_path else LOCAL_MODEL
    threads = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        results = {}
        print(HEADER, flush=True)
        for name, decision, ratings in MODES:
            # a fresh server per mode, warmed up by one call: no mode inherits another's
            # prompt cache or pays the model's first load
            server = LocalServer(threads=args.threads, model_path=args.model_path, alias=alias,
                                 prompt_cache_mb=args.prompt_cache_mb)  # fmt: skip
            with server:
                threads = server.threads
                _warm_up(server.base_url, alias)
                cache = tmp_path / f"{name}.sqlite"
                scenario = _scenario(args, server.base_url, alias, decision, cache, "record",
                                     ratings)  # fmt: skip
                results[name] = _run(scenario, tmp_path / name)
            print(_row(name, *results[name]), flush=True)  # as soon as it is known
        replay = _scenario(args, "http://127.0.0.1:9/v1", alias, "score",
                           tmp_path / "score.sqlite", "replay")  # fmt: skip
        _, replay_s = _run(replay, tmp_path / "replay")
        identical = _same_tables(tmp_path / "score", tmp_path / "replay")
    print(
        f"scenario: {Path(args.scenario).name}, {args.days:g} days, {args.llm_users} LLM users, "
        f"{args.arms} arm(s); model {alias}, {threads} threads, prompt cache "
        f"{args.prompt_cache_mb} MB"
    )
    print(HEADER)
    for name, (acc, wall) in results.items():
        print(_row(name, acc, wall))
    gen, gen_s = results["generate"]
    for name in ("score", "score-rr"):
        acc, wall = results[name]
        print(f"{name} by purpose: {acc['by_purpose']}; decisions: {acc['decisions']}")
    score, score_s = results["score"]
    speedup = (score["llm_pages"] / score_s) / max(gen["llm_pages"] / gen_s, 1e-9)
    pages = score["llm_pages"] or 1
    print("targets, for 'score' (ratings read from logprobs):")
    checks = [
        ("pages/s scoring >= 5x JSON mode", speedup >= 5, f"{speedup:.1f}x"),
        ("completion tokens/page <= 2", score["completion_tokens"] / pages <= 2,
         f"{score['completion_tokens'] / pages:.2f}"),
        ("prompt tokens/page <= 350", score["prompt_tokens"] / pages <= 350,
         f"{score['prompt_tokens'] / pages:.1f}"),
        ("calls/page <= 1.05", score["calls"] / pages <= 1.05, f"{score['calls'] / pages:.3f}"),
        ("replay bit-identical", identical, f"replay {replay_s:.1f} s"),
    ]  # fmt: skip
    for name, ok, figure in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {name}: {figure}")
    rr, rr_s = results["score-rr"]
    rr_pages = rr["llm_pages"] or 1
    rr_speedup = (rr["llm_pages"] / rr_s) / max(gen["llm_pages"] / gen_s, 1e-9)
    print(
        f"'score-rr' (llm.ratings: rule): {rr_speedup:.1f}x JSON mode's pages/s, "
        f"{rr['calls'] / rr_pages:.3f} calls/page, {rr['prompt_tokens'] / rr_pages:.1f} prompt "
        f"and {rr['completion_tokens'] / rr_pages:.2f} completion tokens/page"
    )


if __name__ == "__main__":
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    main()
    print(f"load average at the end: {os.getloadavg()}")
