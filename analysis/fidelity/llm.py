"""Check 1 (taste discrimination) for an LLM panel: the same 1:1 test, answered by an LLM.

A panel of ``llm.users`` test users (drawn with the seed among users with liked held-out
movies) each get **one** structured call: the real titles and genres of up to ``profile``
movies they rated 4+ in training, then a shuffled numbered list of up to ``per_class`` of their
liked held-out movies mixed 1:1 with movies they never rated, and the question "which would you
watch?". The answer ``{"watch": [numbers]}`` labels the list; the scores are pooled as for rule
users. Calls go through the project's client (retries, one repair, validation) and its SQLite
cache, so a rerun with the same seed replays from the cache and gives the same figures even
though the model's sampling is not itself deterministic.

``llm.provider`` ``local`` (the default) starts SmolLM2-135M on 127.0.0.1 with
``recarena.agents.llm.server.LocalServer`` and stops it by PID in a ``finally``; any other
value is an
OpenAI-compatible ``base_url``. A 135M-parameter model is a smoke test of the plumbing, not a
claim about what LLM users can do; Agent4Rec and SimUSER used GPT-3.5/4-class models.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from recarena.agents.llm.cache import CallCache
from recarena.agents.llm.client import (
    LOCAL_MODEL,
    CallContext,
    Endpoint,
    EndpointRefused,
    LLMClient,
)
from recarena.agents.llm.server import LocalServer
from recarena.agents.users.calibration import CalibratedPopulation
from recarena.analysis.fidelity.checks import LIKED, Split
from recarena.analysis.fidelity.common import (
    classification_estimates,
    confusion_counts,
    renamed_options,
)
from recarena.simulator.core.errors import RecarenaError

if TYPE_CHECKING:
    from recarena.analysis.fidelity.config import FidelityConfig

SYSTEM_SCORE = "You are a movie viewer. Answer with a number only."
SYSTEM = (
    "You are a movie viewer. You answer only with a JSON object that follows the schema you "
    "are given."
)


class WatchAnswer(BaseModel):
    watch: list[int] = Field(default_factory=list, max_length=50)


def _schema(n: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "watch": {"type": "array", "items": {"type": "integer", "enum": list(range(1, n + 1))}}
        },
        "required": ["watch"],
    }


def _line(pop: CalibratedPopulation, item: int) -> str:
    genres = ", ".join(pop.genres[item]) or "unknown genre"
    return f"{pop.title[item]} ({genres})"


def panel_prompts(
    pop: CalibratedPopulation,
    split: Split,
    users: int,
    seed: int,
    per_class: int = 4,
    profile: int = 8,
) -> list[dict[str, Any]]:
    """The panel's users, their 1:1 lists (item, label) and the prompt text for each."""
    rng = np.random.default_rng([seed, 401])
    liked = split.liked()
    candidates = np.unique(split.test_user[liked])
    panel = np.sort(rng.choice(candidates, size=min(users, candidates.size), replace=False))
    rated = np.zeros((pop.n_users, pop.n_items), bool)
    rated[split.train_user, split.train_item] = True
    rated[split.test_user, split.test_item] = True
    prompts = []
    for u in panel.tolist():  # one prompt per panel user (10-20 of them)
        positives = split.test_item[liked & (split.test_user == u)]
        positives = rng.permutation(positives)[:per_class]
        negatives = rng.permutation(np.flatnonzero(~rated[u]))[: positives.size]
        items = np.concatenate([positives, negatives])
        label = np.concatenate([np.ones(positives.size, bool), np.zeros(negatives.size, bool)])
        order = rng.permutation(items.size)
        items, label = items[order], label[order]
        train_rows = split.train_user == u
        if split.train_rating is not None:
            train_rows &= split.train_rating >= LIKED
        history = split.train_item[train_rows][-profile:]
        text = (
            "Movies you watched and liked:\n"
            + "\n".join(f"- {_line(pop, i)}" for i in history.tolist())
            + "\n\nWhich of these movies would you watch? Pick every one you would.\n"
            + "\n".join(f"{n}. {_line(pop, i)}" for n, i in enumerate(items.tolist(), 1))
            + '\n\nAnswer as JSON: {"watch": [numbers of the movies you would watch]}'
        )
        listing = text.rsplit("\n\nAnswer as JSON", 1)[0]
        listing = listing.replace(
            "Pick every one you would.", "Pick the one you would watch first."
        )
        score_text = f"{listing}\n\nAnswer with its number only."
        prompts.append(
            {"user": u, "items": items, "label": label, "text": text, "score_text": score_text}
        )
    return prompts


@contextmanager
def panel_endpoint(llm: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    """``(base_url, local)`` of the panel's endpoint for the duration of the block.

    ``provider: local`` (the default) starts SmolLM2 on 127.0.0.1 once for every LLM part of the
    report and stops it by PID when the block ends, however it ends.
    """

    if llm.get("provider", "local") != "local":
        yield llm["base_url"], False
        return
    server = LocalServer(threads=2)
    try:
        yield server.start().base_url, True
    finally:
        server.stop()


def llm_taste_discrimination(
    pop: CalibratedPopulation, split: Split, cfg: FidelityConfig, work_dir: Path, progress=None
) -> dict[str, Any]:
    """Run the LLM panel's 1:1 test; returns the report section (scores and call accounting)."""
    with panel_endpoint(dict(cfg.llm or {})) as (base_url, local):
        return taste_on_endpoint(pop, split, cfg, base_url, local, work_dir, progress)


def taste_on_endpoint(
    pop: CalibratedPopulation,
    split: Split,
    cfg: FidelityConfig,
    base_url: str,
    local: bool,
    work_dir: Path,
    progress=None,
) -> dict[str, Any]:
    """The 1:1 test against an endpoint that is already up."""
    llm = dict(cfg.llm or {})
    prompts = panel_prompts(pop, split, int(llm.get("users", 10)), cfg.seed)
    report = progress or (lambda _d, _f: None)
    report("llm panel", 0.0)
    cache_path = Path(llm.get("cache", "runs/fidelity_llm_cache.sqlite"))
    endpoint = Endpoint(
        base_url=base_url,
        model=llm.get("model", LOCAL_MODEL),
        api_key_env=llm.get("api_key_env", "OPENAI_API_KEY"),
        response_format="json_object_schema" if local else "json_schema",
        temperature=0.0,
        max_tokens=48,
        seed=cfg.seed,
        concurrency=2,
    )
    cache = CallCache(cache_path, "auto", f"fidelity-{cfg.seed}")
    client = LLMClient(endpoint, cache)
    try:
        if llm.get("decision", "score") == "score":
            scored = _scored_watch(client, prompts)
            if scored is not None:  # else: the endpoint has no logprobs; ask for JSON instead
                report("llm panel", 1.0)
                return _report(pop, cfg, endpoint, prompts, *scored, cache_path, "score")
        calls = [
            client.structured(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p["text"]}],
                WatchAnswer,
                CallContext("fidelity:taste", int(p["user"])),
                _check(len(p["items"])),
                _schema(len(p["items"])),
            )
            for p in prompts
        ]
        answers = client.run(calls)
    except EndpointRefused as exc:  # named as the user wrote the endpoint: fidelity's options
        raise RecarenaError(renamed_options(str(exc))) from None
    finally:
        client.close()
        cache.close()
    report("llm panel", 1.0)
    watch, failed = [], 0
    for p, result in zip(prompts, answers, strict=True):
        chosen = set(result.answer.watch) if result.answer is not None else set()
        failed += result.answer is None  # a failed call counts as "watch nothing"
        watch.append(np.array([n in chosen for n in range(1, len(p["items"]) + 1)]))
    records = [r for a in answers for r in a.records]
    del work_dir
    return _report(pop, cfg, endpoint, prompts, watch, records, failed, cache_path, "generate")


def _scored_watch(
    client: LLMClient, prompts: list[dict[str, Any]]
) -> tuple[list[np.ndarray], list[Any], int] | None:
    """Scoring mode: one forward pass per user over the list's numbers; the liked half is read
    as the items with the most probability (the lists are 1:1 by design, so "watch" is the top
    half). Returns (watch flags per user, records, failed users), or None without logprobs."""
    calls = [
        client.score(
            [
                {"role": "system", "content": SYSTEM_SCORE},
                {"role": "user", "content": p["score_text"]},
            ],
            [[str(n) for n in range(1, len(p["items"]) + 1)]],
            CallContext("fidelity:taste", int(p["user"])),
        )  # fmt: skip
        for p in prompts
    ]
    results = client.run(calls)
    if any(r.no_logprobs for r in results):
        return None
    watch, failed = [], 0
    for p, result in zip(prompts, results, strict=True):
        flags = np.zeros(len(p["items"]), bool)
        if result.probs is None:
            failed += 1  # a failed call counts as "watch nothing"
        else:
            top = np.argsort(-result.probs[0], kind="stable")[: int(p["label"].sum())]
            flags[top] = True
        watch.append(flags)
    return watch, [r for res in results for r in res.records], failed


def _report(pop, cfg, endpoint, prompts, watch, records, failed, cache_path, decision):
    user = [np.full(len(p["items"]), p["user"]) for p in prompts]
    label = [p["label"] for p in prompts]
    counts = confusion_counts(
        np.concatenate(label), np.concatenate(watch), np.concatenate(user), pop.n_users
    )
    counts = counts[counts.sum(axis=1) > 0]
    scores = classification_estimates(counts, np.random.default_rng([cfg.seed, 402]), cfg.n_boot)
    return {
        "model": endpoint.model,
        "decision": decision,
        "users": len(prompts),
        "calls": len(records),
        "cached_calls": sum(r.cached for r in records),
        "failed_users": int(failed),
        "cache": str(cache_path),
        "taste_discrimination": [
            {
                "m": 1,
                "users": int(counts.shape[0]),
                "items": int(counts.sum()),
                **{name: e.as_dict() for name, e in scores.items()},
            }
        ],
    }


def _check(n: int):
    def check(answer: WatchAnswer) -> str | None:
        bad = [x for x in answer.watch if not 1 <= x <= n]
        return f"watch: numbers must be 1..{n}, got {bad}" if bad else None

    return check
