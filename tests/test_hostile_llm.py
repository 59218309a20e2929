"""Hostile LLM endpoints and settings: what an endpoint sends back must be a counted attempt
(never a hang, a cell's crash or a silently wrong decision), and what a user writes in
``llm:`` that no run can honour is refused by ``validate`` in one line, as ``run`` refuses it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from recarena.agents.llm import client as llm_client
from recarena.agents.llm.cache import CallCache
from recarena.agents.llm.client import CallContext, Endpoint, LLMClient, Scored
from tests.fake_openai import FakeOpenAI, fake_distribution

OPTIONS = [["0", "1", "2", "3"]]
MESSAGES = [{"role": "user", "content": "Which film? Answer with its number."}]


def _client(tmp_path: Path, base_url: str, timeout: float = 5.0) -> LLMClient:
    endpoint = Endpoint(
        base_url=base_url, model="fake", max_retries=0, backoff_seconds=0.0,
        timeout_seconds=timeout,
    )  # fmt: skip
    return LLMClient(endpoint, CallCache(tmp_path / "cache.sqlite", "auto", "run"))


def _score(client: LLMClient, steer: bool = False) -> Scored:
    """One scored page call (steered with zero noise when ``steer``); the client is closed."""
    noise = np.zeros(len(OPTIONS[0])) if steer else None
    call = client.score(MESSAGES, OPTIONS, CallContext("page", 1, 2, 3), noise)
    try:
        return client.run([call])[0]
    finally:
        client.close()


# ------------------------------------------------------------------ an endpoint's answers
def test_an_answer_trickled_past_the_timeout_is_a_timed_out_attempt(tmp_path):
    """Was: the SDK's timeout bounds each read only, so an endpoint that sent a byte every
    few seconds held the run past any timeout (a run stopped only by a signal)."""
    with FakeOpenAI(["trickle"], slow_seconds=4.0) as fake:
        scored = _score(_client(tmp_path, fake.base_url, timeout=0.5))
    (record,) = scored.records
    assert scored.probs is None and record.fallback and record.attempts == 1
    assert record.error == "timeout after 0.5s"


def test_a_tokenizer_answer_trickled_past_its_time_leaves_the_call_unsteered(tmp_path, monkeypatch):
    """The tokenizer path (llama.cpp's /extras/tokenize) had the same per-read timeout."""
    monkeypatch.setattr(llm_client, "TOKENIZE_SECONDS", 0.3)
    with FakeOpenAI(["ok"], slow_seconds=3.0, tokenize="trickle") as fake:
        client = _client(tmp_path, fake.base_url)
        scored = _score(client, steer=True)
        requests = list(fake.requests)
    assert scored.probs is not None and client._cannot_tokenize
    assert "logit_bias" not in requests[0]


@pytest.mark.parametrize(
    ("announce", "error"),
    [
        (True, "unusable response: a body of 9,"),
        (False, "unusable response: a body of more than 4,096 bytes"),
    ],
    ids=["announced", "unannounced"],
)
def test_an_oversized_answer_is_unusable(tmp_path, monkeypatch, announce, error):
    """Was: a body of any size was read whole, once per attempt and per call in flight."""
    monkeypatch.setattr(llm_client, "MAX_BODY_BYTES", 4096)
    with FakeOpenAI(["padded"], padding=8192) as fake:
        fake.announce = announce
        scored = _score(_client(tmp_path, fake.base_url))
    (record,) = scored.records
    assert scored.probs is None and record.fallback
    assert record.error.startswith(error), record.error
    with FakeOpenAI(["padded"], padding=100) as fake:  # whitespace within the limit is fine
        fake.announce = announce
        assert _score(_client(tmp_path / "small", fake.base_url)).probs is not None


@pytest.mark.parametrize(
    ("logprob", "shown"),
    [(math.nan, "logprob nan"), (math.inf, "logprob inf"), (50.0, "logprob 50")],
    ids=["nan", "inf", "above_zero"],
)
def test_a_logprob_that_is_no_probability_makes_the_answer_unusable(tmp_path, logprob, shown):
    """Was: an option at +inf got a NaN share and the draw landed on a zero-probability slot,
    a logprob of 50 took the whole renormalised mass, and NaN read as 'no probability on the
    options' (a model's weakness, not a broken answer)."""

    def broken(prompt: str, position: int) -> dict[str, float]:
        return {**fake_distribution(prompt, position), "1": logprob}

    with FakeOpenAI(["ok"]) as fake:
        fake.distribution = broken
        scored = _score(_client(tmp_path, fake.base_url))
    (record,) = scored.records
    assert scored.probs is None and record.fallback and not record.valid
    assert record.error == f"unusable response: {shown} for the token '1'"


def test_a_logprob_of_minus_infinity_is_a_probability_of_zero(tmp_path):
    def impossible_one(prompt: str, position: int) -> dict[str, float]:
        return {**fake_distribution(prompt, position), "1": -math.inf}

    with FakeOpenAI(["ok"]) as fake:
        fake.distribution = impossible_one
        scored = _score(_client(tmp_path, fake.base_url))
    assert scored.probs is not None and scored.probs[0] is not None
    assert scored.probs[0][1] == 0.0 and math.isclose(scored.probs[0].sum(), 1.0)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 1e300, "completion_tokens": 1},
        {"prompt_tokens": 2**70, "completion_tokens": 1},
        {"prompt_tokens": math.nan, "completion_tokens": 1},
        {"prompt_tokens": -5, "completion_tokens": 1},
        {"prompt_tokens": 7.5, "completion_tokens": 1},
        {"prompt_tokens": True, "completion_tokens": 1},
    ],
    ids=["1e300", "2**70", "nan", "negative", "fraction", "bool"],
)
def test_usage_that_is_no_token_count_is_read_as_unknown(tmp_path, usage):
    """Was: 1e300 or 2**70 stopped the cell (an integer SQLite cannot store, exit 1), NaN made
    a good answer unusable and -5 was summed into the bill."""
    with FakeOpenAI(["ok"]) as fake:
        fake.usage = usage
        scored = _score(_client(tmp_path, fake.base_url))
    (record,) = scored.records
    assert scored.probs is not None and record.valid, record.error
    assert (record.prompt_tokens, record.completion_tokens) == (0, 1)
