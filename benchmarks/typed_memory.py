"""Typed vs TF-IDF memory on real histories: prompt tokens per page and decision consistency.

    python benchmarks/typed_memory.py /work/shared/data/ml-latest-small --users 150

Each user's MovieLens ratings are replayed in time order into both memories as the LLM user
writes them ("watched T (G1/G2), rated r/5"). At each of the user's last ``--pages`` ratings a
page of 10 films (the rated one and 9 others, in the slate's "Title (genres)" form) queries
each memory with the panel defaults (30 entries, 3 retrieved). Reported per memory:

* tokens per page: retrieved text / 4 characters, and as a share of the full history's
  ("full context": every interaction so far in the prompt);
* decision consistency: a fixed reader turns the retrieved lines into a like / dislike call on
  the rated film (mean rating of the evidence about its genres >= 3.5; no evidence: like) and
  we count how often that call equals the same reader's call on the full history; and how
  often it matches the user's actual rating (>= 4).

The reader is a deterministic stand-in for the LLM, so these figures measure how much of the
decision-relevant information each memory keeps per token, not what a given model would do.

``--llm N`` then asks an LLM the same question on N of those pages (drawn at random): the
memory's lines in the system prompt, "Would you watch T (genres)? 1 yes, 0 no" as the page,
the decision read from the logprobs of one token (scoring mode). Per memory it reports the
prompt tokens the endpoint counted, how often the yes/no call (P(yes) >= 0.5) equals the call
with the full history in the prompt, the mean |P(yes) - P(yes | full history)|, and how often
the call matches the rating. The full history is cut to its last ``--llm-history`` lines so it
fits a small model's context. Without ``--base-url`` the embedded llama.cpp server
(SmolLM2-135M, or ``--model-path``) is started for the run and stopped at the end.

    python benchmarks/typed_memory.py /work/shared/data/ml-latest-small --llm 60
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recarena.agents.llm.cache import CallCache
from recarena.agents.llm.client import LOCAL_MODEL, CallContext, Endpoint, LLMClient
from recarena.agents.llm.prompts import text
from recarena.agents.llm.server import LocalServer
from recarena.agents.users.llm_memory import UserMemory
from recarena.agents.users.typed_memory import TypedMemory, parse_episode

_FACT = re.compile(r"^(.+?): \w+, ([\d.]+)/5 over (\d+) film")


def evidence(lines: list[str], genres: list[str]) -> float | None:
    """Mean rating of what the lines say about ``genres`` (None: nothing)."""
    total, weight = 0.0, 0.0
    for line in lines:
        fact = _FACT.match(line)
        if fact is not None:
            if fact.group(1) in genres:
                total += float(fact.group(2)) * int(fact.group(3))
                weight += int(fact.group(3))
            continue
        parsed = parse_episode(line)
        if parsed is not None and set(parsed[0]) & set(genres):
            total += parsed[1]
            weight += 1
    return total / weight if weight else None


def likes(lines: list[str], genres: list[str]) -> bool:
    mean = evidence(lines, genres)
    return True if mean is None else mean >= 3.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--users", type=int, default=150)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", type=int, default=0, help="pages to ask an LLM (0: none)")
    parser.add_argument("--llm-history", type=int, default=40)
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint")
    parser.add_argument("--model", default=LOCAL_MODEL)
    parser.add_argument("--model-path", default=None, help="a GGUF file for the local server")
    args = parser.parse_args()
    ratings = pd.read_csv(args.data / "ratings.csv").sort_values(["userId", "timestamp"])
    movies = pd.read_csv(args.data / "movies.csv").set_index("movieId")
    genres = {m: g.split("|") for m, g in movies["genres"].items()}
    titles = movies["title"].to_dict()
    rng = np.random.default_rng(args.seed)
    counts = ratings.groupby("userId").size()
    eligible = counts[counts >= 50].index.to_numpy()
    chosen = rng.choice(eligible, size=min(args.users, eligible.size), replace=False)
    all_movies = movies.index.to_numpy()
    stats: dict[str, list[float]] = {
        f"{m}_{s}": [] for m in ("tfidf", "typed", "full") for s in ("tokens", "agree", "right")
    }
    pages: list[tuple[str, bool, dict[str, list[str]]]] = []
    for user in chosen.tolist():
        rows = ratings[ratings["userId"] == user]
        stores = {"tfidf": UserMemory(30), "typed": TypedMemory(30)}
        history: list[str] = []
        n = len(rows)
        for index, (movie, rating) in enumerate(zip(rows["movieId"], rows["rating"], strict=True)):
            line = f"watched {titles[movie]} ({'/'.join(genres[movie])}), rated {round(rating)}/5"
            if index >= n - args.pages and history:
                others = rng.choice(all_movies, 9, replace=False)
                slate = [f"{titles[m]} ({'/'.join(genres[m])})" for m in [movie, *others]]
                query = " ".join(slate)
                target = genres[movie]
                full_call = likes(history, target)
                liked = rating >= 4
                retrieved = {name: s.retrieve(query, 3) for name, s in stores.items()}
                retrieved["full"] = history
                pages.append((slate[0], liked, {k: list(v) for k, v in retrieved.items()}))
                for name, lines in retrieved.items():
                    call = likes(lines, target)
                    stats[f"{name}_tokens"].append(sum(len(x) + 3 for x in lines) / 4)
                    stats[f"{name}_agree"].append(float(call == full_call))
                    stats[f"{name}_right"].append(float(call == liked))
            for store in stores.values():
                store.add_interaction(line, float(index))
            history.append(line)
    full_tokens = np.mean(stats["full_tokens"])
    print(f"{len(chosen)} users, {len(stats['full_tokens'])} pages")
    for name in ("tfidf", "typed", "full"):
        tokens = np.mean(stats[f"{name}_tokens"])
        print(
            f"{name:>6}: {tokens:7.1f} memory tokens per page "
            f"({100 * tokens / full_tokens:5.1f}% of full context); "
            f"same call as full context {np.mean(stats[f'{name}_agree']):.3f}; "
            f"call matches the rating {np.mean(stats[f'{name}_right']):.3f}"
        )
    if args.llm:
        picked = rng.choice(len(pages), size=min(args.llm, len(pages)), replace=False)
        ask_llm(args, [pages[i] for i in sorted(picked.tolist())])


def ask_llm(args, pages: list[tuple[str, bool, dict[str, list[str]]]]) -> None:
    """The yes/no question on each page with each memory in the prompt, scored by an LLM."""
    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.base_url else LocalServer(model_path=args.model_path).start()
        try:
            base_url = args.base_url or server.base_url  # type: ignore[union-attr]
            endpoint = Endpoint(base_url=base_url, model=args.model, decision="score")
            client = LLMClient(endpoint, CallCache(Path(tmp) / "c.sqlite", "off", "bench"))
            system = text("system_score.txt")
            calls = []
            for number, (film, _, retrieved) in enumerate(pages):
                for name in ("tfidf", "typed", "full"):
                    lines = retrieved[name][-args.llm_history :]
                    memory = "".join(f"- {line}\n" for line in lines)
                    messages = [
                        {"role": "system", "content": f"{system}\n\nYou remember:\n{memory}"},
                        {"role": "user", "content": f"A film: {film}. Would you watch it? "
                                                    "Answer 1 for yes, 0 for no."},
                    ]  # fmt: skip
                    context = CallContext(name, number, -1, -1, 0.0)
                    calls.append(client.score(messages, [["0", "1"]], context))
            started = time.perf_counter()
            results = client.run(calls)
            seconds = time.perf_counter() - started
            client.close()
        finally:
            if server is not None:
                server.stop()
    yes: dict[str, list[float]] = {"tfidf": [], "typed": [], "full": []}
    tokens: dict[str, list[int]] = {"tfidf": [], "typed": [], "full": []}
    failed = 0
    for result in results:
        record = result.records[-1]
        name = record.context.purpose
        tokens[name].append(record.prompt_tokens)
        probs = result.probs[0] if result.probs is not None else None
        failed += probs is None
        yes[name].append(float(probs[1]) if probs is not None else float("nan"))
    liked = np.array([page[1] for page in pages])
    full = np.array(yes["full"])
    print(f"LLM ({args.model}, scoring): {len(pages)} pages x 3 memories, {len(results)} "
          f"calls in {seconds:.1f} s, {failed} without probability on 0/1")  # fmt: skip
    for name in ("tfidf", "typed", "full"):
        p = np.array(yes[name])
        ok = ~np.isnan(p) & ~np.isnan(full)
        agree = np.mean((p[ok] >= 0.5) == (full[ok] >= 0.5))
        gap = np.mean(np.abs(p[ok] - full[ok]))
        right = np.mean((p[~np.isnan(p)] >= 0.5) == liked[~np.isnan(p)])
        print(f"{name:>6}: {np.mean(tokens[name]):6.1f} prompt tokens per page; same call as "
              f"full history {agree:.3f}; mean |dP(yes)| {gap:.3f}; call matches the rating "
              f"{right:.3f}; mean P(yes) {np.nanmean(p):.3f}")  # fmt: skip


if __name__ == "__main__":
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    main()
    print(f"load average at the end: {os.getloadavg()}")
