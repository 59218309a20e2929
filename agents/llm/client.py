"""The one LLM client: structured calls to any OpenAI-compatible endpoint, cached and accounted.

Why a client of our own around the official ``openai`` package:

* **One failed call never fails the run.** 429s, 5xx, timeouts and dropped connections are
  retried with exponential backoff (a ``Retry-After`` header wins); answers that are not valid
  JSON for the schema get one *repair* call that shows the model its own answer and the error;
  after that the caller falls back to the rule policy for that page and the call is counted.
* **Reproducible.** Every call goes through :class:`recarena.agents.llm.cache.CallCache`, so
  a run can be replayed with the endpoint switched off and gives the same logs bit for bit.
* **Accounted.** Each attempt at an answer becomes a :class:`CallRecord` (tokens, latency,
  cached, valid, fallback), written to the ``llm_calls`` table.
* **Concurrent but bounded.** Calls of one page batch run together on one event loop, at most
  ``llm.concurrency`` in flight.

The SDK's own retries are switched off (``max_retries=0``) so that every attempt is counted here.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from recarena.agents.llm.cache import CachedCall, CacheMiss, CallCache, call_key
from recarena.simulator.core.errors import RecarenaError

T = TypeVar("T", bound=BaseModel)
Check = Callable[[Any], str | None]
"""Extra validation of a parsed answer beyond its schema (e.g. slot numbers in range);
returns an error message, or None when the answer is fine."""

LOCAL_MODEL = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to call. The API key is read from the environment, never stored."""

    base_url: str | None
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    response_format: str = "json_object_schema"
    temperature: float = 0.0
    max_tokens: int = 160
    seed: int = 0
    concurrency: int = 4
    timeout_seconds: float = 60.0
    max_retries: int = 3
    backoff_seconds: float = 0.5


@dataclass(frozen=True)
class CallContext:
    """Who a call is for, for the accounting table and for error messages."""

    purpose: str  # page | reflection | repair:page | ...
    user_id: int = -1
    session_id: int = -1
    page: int = -1
    time: float = 0.0

    def describe(self) -> str:
        return (
            f"{self.purpose} call for user {self.user_id} "
            f"(session {self.session_id}, page {self.page})"
        )


@dataclass
class CallRecord:
    context: CallContext
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int
    cached: bool
    valid: bool
    fallback: bool = False
    error: str = ""


@dataclass
class Structured:
    """The outcome of :meth:`LLMClient.structured`: a parsed answer, or None (fall back)."""

    answer: Any | None
    records: list[CallRecord] = field(default_factory=list)


class _Transport(Exception):
    """A call that could not get an answer after its retries."""


def _parse(text: str | None, schema: type[T], check: Check | None) -> tuple[T | None, str | None]:
    if text is None:
        return None, "empty answer"
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at char {exc.pos}"
    try:
        answer = schema.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return None, f"{where}: {first['msg']}"
    problem = check(answer) if check else None
    return (None, problem) if problem else (answer, None)


class LLMClient:
    """Async structured calls with retries, repair, cache and accounting; one per cell."""

    def __init__(self, endpoint: Endpoint, cache: CallCache) -> None:
        self.endpoint = endpoint
        self.cache = cache
        self.records: list[CallRecord] = []
        self._loop = asyncio.new_event_loop()
        self._semaphore: asyncio.Semaphore | None = None
        self._sdk = None

    # ------------------------------------------------------------------ plumbing
    def _client(self):
        if self._sdk is None:
            from openai import AsyncOpenAI

            if not self.endpoint.base_url:
                raise RecarenaError(
                    "llm.base_url: no endpoint to call (set llm.base_url or OPENAI_BASE_URL)"
                )
            key = os.environ.get(self.endpoint.api_key_env) or "not-needed"
            self._sdk = AsyncOpenAI(
                api_key=key,
                base_url=self.endpoint.base_url,
                max_retries=0,
                timeout=self.endpoint.timeout_seconds,
            )
        return self._sdk

    def run(self, calls: Sequence[Awaitable[Any]]) -> list[Any]:
        """Run a batch of coroutines concurrently (bounded) and return results in order."""
        if not calls:
            return []

        async def gather():
            if self._semaphore is None:
                self._semaphore = asyncio.Semaphore(self.endpoint.concurrency)
            return await asyncio.gather(*calls)

        return self._loop.run_until_complete(gather())

    def close(self) -> None:
        if self._sdk is not None:
            self._loop.run_until_complete(self._sdk.close())
        self._loop.close()
        self.cache.close()

    def _response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        kind = self.endpoint.response_format
        if kind == "json_object_schema":  # llama.cpp: a grammar built from the schema
            return {"type": "json_object", "schema": schema}
        if kind == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        return {"type": "json_object"}

    # ------------------------------------------------------------------ calls
    async def _complete(
        self, messages: list[dict[str, str]], response_format: dict[str, Any]
    ) -> tuple[str | None, int, int, int]:
        """One answer from the endpoint: (text, prompt tokens, completion tokens, attempts)."""
        import openai

        endpoint = self.endpoint
        client = self._client()
        assert self._semaphore is not None
        last_error = ""
        for attempt in range(endpoint.max_retries + 1):
            wait = endpoint.backoff_seconds * 2**attempt
            try:
                async with self._semaphore:
                    response = await client.chat.completions.create(
                        model=endpoint.model,
                        messages=messages,
                        temperature=endpoint.temperature,
                        max_tokens=endpoint.max_tokens,
                        seed=endpoint.seed,
                        response_format=response_format,
                        timeout=endpoint.timeout_seconds,
                    )
            except openai.APITimeoutError:
                last_error = f"timeout after {endpoint.timeout_seconds:g}s"
            except openai.APIConnectionError as exc:
                last_error = f"connection error: {exc.__class__.__name__}"
            except openai.APIStatusError as exc:
                status = exc.status_code
                last_error = f"HTTP {status}"
                if status != 429 and status < 500:
                    raise _Transport(f"{last_error}: {exc.message}"[:300], attempt + 1) from None
                retry_after = exc.response.headers.get("retry-after") if exc.response else None
                if retry_after:
                    try:
                        wait = min(float(retry_after), 60.0)
                    except ValueError:
                        pass
            else:
                usage = response.usage
                text = response.choices[0].message.content if response.choices else None
                return (
                    text,
                    int(usage.prompt_tokens) if usage else 0,
                    int(usage.completion_tokens) if usage else 0,
                    attempt + 1,
                )
            if attempt < endpoint.max_retries:
                await asyncio.sleep(wait)
        raise _Transport(last_error, endpoint.max_retries + 1)

    async def _answer(
        self,
        messages: list[dict[str, str]],
        schema: type[T],
        check: Check | None,
        context: CallContext,
        json_schema: dict[str, Any] | None = None,
    ) -> tuple[T | None, str | None, str | None, CallRecord]:
        """One cached call: (parsed answer, raw text, problem, record)."""
        json_schema = json_schema or schema.model_json_schema()
        response_format = self._response_format(schema.__name__, json_schema)
        endpoint = self.endpoint
        params = {
            "temperature": endpoint.temperature,
            "max_tokens": endpoint.max_tokens,
            "seed": endpoint.seed,
            "response_format": response_format,
        }
        key = call_key(endpoint.model, messages, params)
        started = time.perf_counter()
        hit = self.cache.lookup(key)
        if hit is not None:
            if hit.error:  # a recorded transport failure replays as the same failure
                answer, problem = None, hit.error
            else:
                answer, problem = _parse(hit.completion, schema, check)
            record = CallRecord(
                context,
                endpoint.model,
                hit.prompt_tokens,
                hit.completion_tokens,
                time.perf_counter() - started,
                attempts=0,
                cached=True,
                valid=answer is not None,
                error=problem or "",
            )
            return answer, hit.completion, problem, record
        if self.cache.mode == "replay":
            raise CacheMiss(
                f"llm.cache.mode replay: no recorded answer for the {context.describe()} "
                f"(key {key[:16]}) in {self.cache.path}"
            )
        try:
            text, prompt_tokens, completion_tokens, attempts = await self._complete(
                messages, response_format
            )
            transport_error = None
        except _Transport as exc:
            text, prompt_tokens, completion_tokens = None, 0, 0
            transport_error, attempts = str(exc.args[0]), int(exc.args[1])
        latency = time.perf_counter() - started
        if transport_error:
            answer, problem = None, transport_error
        else:
            answer, problem = _parse(text, schema, check)
        self.cache.store(
            key,
            endpoint.model,
            {"messages": messages, **params},
            CachedCall(
                text,
                answer is not None,
                transport_error,
                prompt_tokens,
                completion_tokens,
                latency,
                self.cache.run_id,
            ),
        )
        record = CallRecord(
            context,
            endpoint.model,
            prompt_tokens,
            completion_tokens,
            latency,
            attempts,
            cached=False,
            valid=answer is not None,
            error=problem or "",
        )
        return answer, text, problem, record

    async def structured(
        self,
        messages: list[dict[str, str]],
        schema: type[T],
        context: CallContext,
        check: Check | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Structured:
        """Ask for an answer matching ``schema``; repair once; None means fall back.

        ``json_schema`` (default: the pydantic model's) is what the endpoint is asked to follow.
        A caller can tighten it per call, e.g. slot numbers as an enum of the slots on this
        page, so that a grammar-constrained server cannot even produce an out-of-range answer.
        """
        answer, text, problem, record = await self._answer(
            messages, schema, check, context, json_schema
        )
        records = [record]
        if answer is None and text is not None:  # the model answered, but wrongly: repair once
            repair = [
                *messages,
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That answer is invalid ({problem}). Reply again with only a "
                    "JSON object that follows the schema.",
                },
            ]
            repair_context = CallContext(
                f"repair:{context.purpose}",
                context.user_id,
                context.session_id,
                context.page,
                context.time,
            )
            answer, _, _, repair_record = await self._answer(
                repair, schema, check, repair_context, json_schema
            )
            records.append(repair_record)
        if answer is None:
            records[-1].fallback = True
        self.records.extend(records)
        return Structured(answer, records)

    def drain_records(self) -> list[CallRecord]:
        records, self.records = self.records, []
        return records
