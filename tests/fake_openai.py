"""A scripted OpenAI-compatible endpoint on loopback, for fault tests without a real model.

Each request takes the next behaviour from a script (cycled):

* ``ok``: a page request gets a fixed valid JSON choice, a reflection a fixed sentence; a
  request that asks for ``logprobs`` gets, per answer position, top logprobs that are a pure
  function of the prompt (so two arms asking the same page get the same distribution);
* faults: ``429``, ``500``, ``401``, ``403`` and ``404`` (their message: ``refusal``),
  ``timeout`` (answers after ``slow_seconds``), ``malformed``
  (content that is not JSON), ``bad`` (JSON that breaks the schema);
* unusable 200s: ``html`` (text/html page), ``notjson`` (JSON content type, body not JSON),
  ``wrongtype`` (valid JSON sent as text/plain), ``empty`` (no choices), ``badutf8`` (bytes
  that are not UTF-8), ``truncated`` (the connection closes before the announced length);
* scoring: ``invalid`` (all probability on tokens that are no option), ``sparse`` (only the
  options 0 and 2 present), ``silent`` (no token generated: logprobs with empty content);
* slow or large 200s: ``trickle`` (the ``ok`` answer, its bytes spread over ``slow_seconds``),
  ``padded`` (the ``ok`` answer followed by ``padding`` bytes of whitespace; with
  ``announce = False`` its length is not announced, the body ending when the connection does).

``usage`` replaces every answer's usage object (None: counts from the prompt).

``logprobs=False`` makes an endpoint that never returns logprobs (it ignores the request).
``tokenize=True`` answers llama.cpp's ``/extras/tokenize`` (one id per digit or letter) and
then honours ``logit_bias`` as llama.cpp does: the generated token is the best biased one, the
logprobs stay the model's own. Without it that path is a 404 (no endpoint can steer).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from recarena.agents.llm.client import LLMClient

PAGE_OK = {"examined": [1, 2, 3], "click": 2, "rating": 4, "leave": False, "reason": "fun"}
REFLECTION_OK = {"reflection": "I like lively films and want more of them."}
DIGITS = [str(d) for d in range(10)]
TOKEN_IDS = {label: 100 + i for i, label in enumerate(DIGITS + [chr(65 + i) for i in range(26)])}


def fake_distribution(prompt: str, position: int) -> dict[str, float]:
    """Top logprobs at one answer position: digits with prompt-seeded weights, plus junk."""
    seed = int(hashlib.sha256(f"{position}|{prompt}".encode()).hexdigest()[:12], 16)
    rng = random.Random(seed)
    weights = {d: rng.uniform(0.05, 1.0) for d in (DIGITS if position == 0 else DIGITS[1:6])}
    weights |= {"The": 0.3, " I": 0.2, "\n": 0.1}
    total = sum(weights.values())
    return {token: math.log(w / total) for token, w in weights.items()}


class FakeOpenAI:
    def __init__(
        self,
        script=("ok",),
        slow_seconds: float = 2.0,
        logprobs: bool = True,
        tokenize: bool | str = False,
        padding: int = 0,
    ) -> None:
        self._script = cycle(script)
        self.tokenize = tokenize
        self._lock = threading.Lock()
        self.slow_seconds = slow_seconds
        self.logprobs = logprobs
        self.padding = padding
        self.announce = True  # padded: False sends no content-length
        self.usage: object = None
        self.retry_after = "0"  # the Retry-After header of a 429
        self.refusal = "Incorrect API key provided"  # the message of a 401, 403 or 404
        self.distribution = fake_distribution  # (prompt, position) -> top logprobs; replaceable
        self.requests: list[dict] = []
        self.behaviours: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # /v1/models
                self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/extras/tokenize"):  # not a completion: not scripted
                    token = TOKEN_IDS.get(body.get("input", ""))
                    if fake.tokenize == "trickle" and token is not None:
                        self._trickle(json.dumps({"tokens": [token]}).encode())
                    elif fake.tokenize and token is not None:
                        self._send(200, {"tokens": [token]})
                    else:
                        self._send(404, {"detail": "Not Found"})
                    return
                with fake._lock:
                    behaviour = next(fake._script)
                    fake.requests.append(body)
                    fake.behaviours.append(behaviour)
                if behaviour == "429":
                    headers = {"retry-after": fake.retry_after}
                    self._send(429, {"error": {"message": "slow down"}}, headers)
                elif behaviour == "500":
                    self._send(500, {"error": {"message": "boom"}})
                elif behaviour in ("401", "403", "404"):
                    self._send(int(behaviour), {"error": {"message": fake.refusal}})
                elif behaviour == "html":
                    self._raw(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
                elif behaviour == "notjson":
                    self._raw(200, b"upstream error {", "application/json")
                elif behaviour == "wrongtype":
                    data = json.dumps(fake._completion(body, "ok")).encode()
                    self._raw(200, data, "text/plain")
                elif behaviour == "empty":
                    self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
                elif behaviour == "badutf8":
                    self._raw(200, b'{"choices": [\xff\xfe]}', "application/json")
                elif behaviour == "trickle":
                    self._trickle(json.dumps(fake._completion(body, "ok")).encode())
                elif behaviour == "padded":
                    data = json.dumps(fake._completion(body, "ok")).encode()
                    data += b" " * fake.padding
                    if fake.announce:
                        self._raw(200, data, "application/json")
                    else:  # no content-length: the body ends when the connection closes
                        self.send_response(200)
                        self.send_header("content-type", "application/json")
                        self.end_headers()
                        self.wfile.write(data)
                        self.close_connection = True
                elif behaviour == "truncated":
                    data = json.dumps(fake._completion(body, "ok")).encode()
                    self._raw(200, data[: len(data) // 2], "application/json", len(data))
                else:
                    if behaviour == "timeout":
                        time.sleep(fake.slow_seconds)
                    self._send(200, fake._completion(body, behaviour))

            def _trickle(self, data):
                """A 200 whose bytes come one at a time over ``slow_seconds``."""
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(fake.slow_seconds / len(data))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up

            def _send(self, status, payload, headers=None):
                self._raw(status, json.dumps(payload).encode(), "application/json", None, headers)

            def _raw(self, status, data, content_type, length=None, headers=None):
                try:
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(length or len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                    if length is not None:  # a body cut short: drop the connection
                        self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _completion(self, body: dict, behaviour: str) -> dict:
        prompt = " ".join(m.get("content", "") for m in body.get("messages", []))
        wants_reflection = '"reflection"' in prompt
        logprobs = None
        if body.get("logprobs") and self.logprobs:
            positions = []
            for position in range(int(body.get("max_tokens") or 1)):
                top = self.distribution(prompt, position)
                if behaviour == "invalid":
                    top = {"The": -0.5, " I": -1.5, "You": -2.0}
                elif behaviour == "sparse" and position == 0:
                    top = {"2": -0.2, "The": -1.0, "0": -2.5}
                ranked = sorted(top.items(), key=lambda kv: -kv[1])
                ranked = ranked[: int(body.get("top_logprobs") or 1)]
                bias = {int(k): float(v) for k, v in (body.get("logit_bias") or {}).items()}
                generated = max(
                    top.items(), key=lambda kv: kv[1] + bias.get(TOKEN_IDS.get(kv[0], -1), 0.0)
                )
                positions.append(
                    {
                        "token": generated[0],
                        "logprob": generated[1],
                        "bytes": None,
                        "top_logprobs": [
                            {"token": t, "logprob": lp, "bytes": None} for t, lp in ranked
                        ],
                    }
                )
            if behaviour == "silent":  # the model ended its answer before any token
                positions = []
            content = "".join(p["token"] for p in positions)
            logprobs = {"content": positions}
        elif behaviour == "malformed":
            content = '{"examined": [1, 2'
        elif behaviour == "bad":
            content = json.dumps({"examined": [1], "click": 99, "rating": 9})
        else:
            content = json.dumps(REFLECTION_OK if wants_reflection else PAGE_OK)
        completion_tokens = int(body.get("max_tokens") or 20) if logprobs else 20
        return {
            "id": "fake-1",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt) // 4 + completion_tokens,
            }
            if self.usage is None
            else self.usage,  # fmt: skip
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def seen(self, attempts: int, patience: float = 10.0) -> list[str]:
        """The behaviours served, once ``attempts`` requests have reached the handler.

        An attempt the client abandoned (its timeout) may reach a busy server's handler
        thread after the run has finished; counting before it arrives undercounts.
        """
        deadline = time.monotonic() + patience
        while len(self.behaviours) < attempts and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            return list(self.behaviours)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_client(
    tmp_path: Path, base_url: str, mode: str = "off", decision: str = "score"
) -> LLMClient:
    """An LLMClient of a fake endpoint at ``base_url``: no retries, no backoff, a 5 s timeout,
    its call cache in ``tmp_path`` in ``mode`` (run id ``run-<mode>``)."""
    from recarena.agents.llm.cache import CallCache
    from recarena.agents.llm.client import Endpoint, LLMClient

    endpoint = Endpoint(
        base_url=base_url, model="fake", max_retries=0, backoff_seconds=0.0, timeout_seconds=5,
        decision=decision,
    )  # fmt: skip
    return LLMClient(endpoint, CallCache(tmp_path / "cache.sqlite", mode, f"run-{mode}"))


def record_and_replay(doc: dict, tmp_path, fake: FakeOpenAI) -> tuple:
    """Run ``doc`` against ``fake`` recording every call, then replay it with nothing listening.

    Returns the two run directories; the caller compares their tables.
    """
    import copy

    from recarena.simulator.runner.experiment import run_experiment
    from recarena.simulator.runner.resolve import parse_scenario

    def run(base_url: str, mode: str, name: str):
        run_doc = copy.deepcopy(doc)
        cache = {"path": str(tmp_path / "cache.sqlite"), "mode": mode}
        run_doc["llm"] = {**run_doc["llm"], "base_url": base_url, "cache": cache}
        return run_experiment(parse_scenario(run_doc), tmp_path / name, executor="local").run_dir

    with fake:
        recorded = run(fake.base_url, "record", "recorded")
    return recorded, run("http://127.0.0.1:9/v1", "replay", "replayed")


def cell_table(run_dir: Path, arm: str, table: str) -> pl.DataFrame:
    """One table of an arm's replicate 0 in a run directory."""
    import polars as pl

    return pl.read_parquet(run_dir / f"arm={arm}" / "rep=0" / f"{table}.parquet")


def differing_tables(a, b, arms, tables) -> list[tuple[str, str]]:
    """(arm, table) pairs whose replicate-0 Parquet files differ between two run directories."""
    return [
        (arm, t)
        for arm in arms
        for t in tables
        if not cell_table(a, arm, t).equals(cell_table(b, arm, t))
    ]


def scoring_fake(*per_position: dict[str, float]) -> FakeOpenAI:
    """A fake whose logprobs at answer position i are ``per_position[i]`` (token -> probability,
    the last one repeated), plus a little junk, whatever the prompt: a scored decision is then
    known by hand."""
    fake = FakeOpenAI()

    def distribution(prompt: str, position: int) -> dict[str, float]:
        weights = per_position[min(position, len(per_position) - 1)]
        return {token: math.log(w) for token, w in weights.items()} | {"The": math.log(0.01)}

    fake.distribution = distribution
    return fake
