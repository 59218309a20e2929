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
import contextlib
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from recarena.agents.llm.activity import CallStats, LiveLine
from recarena.agents.llm.cache import CachedCall, CacheMiss, CallCache, call_key
from recarena.simulator.core.errors import RecarenaError

T = TypeVar("T", bound=BaseModel)
Check = Callable[[Any], str | None]
"""Extra validation of a parsed answer beyond its schema (e.g. slot numbers in range);
returns an error message, or None when the answer is fine."""

LOCAL_MODEL = "SmolLM2-135M-Instruct"

MAX_BODY_BYTES = 8 << 20
"""The most bytes of one answer the client reads. A chat completion, even with the top
logprobs of every generated token, is a few kilobytes to a few hundred; past this the body is
an unusable answer (an endpoint that streamed hundreds of megabytes was read whole, once per
attempt and per call in flight)."""

MAX_WAIT_SECONDS = 60.0
"""The longest wait between two attempts of a call, whatever the backoff doubled to or a
Retry-After header asked for."""

STEER_BIAS = 50.0
"""Logit bias added to every option token of a steered first position (plus its Gumbel noise,
at most 27.7): enough that the endpoint generates an option, within OpenAI's limit of 100.
The options' relative order is the noise's alone, as in the client's own Gumbel-max draw."""


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
    decision: str = "score"
    """score: read decisions from the first answer token's logprobs (one forward pass, no
    grammar); generate: a JSON answer under the schema. Scoring falls back to generate for the
    rest of the cell when the endpoint returns no logprobs."""
    top_logprobs: int = 20


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
    decision: str = "generate"  # score | generate
    options: int = 0  # options the first answer token was read over (score)
    option_mass: float = float("nan")  # probability the endpoint put on those options
    entropy: float = float("nan")  # of the renormalised choice distribution, nats
    choice: int = -1  # option drawn (score), -1 when none
    expected: float = float("nan")  # expected value over the options' values (ratings)


@dataclass
class Structured:
    """The outcome of :meth:`LLMClient.structured`: a parsed answer, or None (fall back)."""

    answer: Any | None
    records: list[CallRecord] = field(default_factory=list)


@dataclass
class Scored:
    """The outcome of :meth:`LLMClient.score`.

    ``probs[i]`` is the renormalised distribution over ``options[i]`` at answer position i (None
    where that position put no probability on any option); ``generated`` the tokens the
    endpoint actually produced. ``probs`` is None when the call failed (fall back), and
    ``no_logprobs`` is set when the endpoint answered without logprobs (use generate mode).
    """

    probs: list[np.ndarray | None] | None
    generated: list[str]
    records: list[CallRecord] = field(default_factory=list)
    no_logprobs: bool = False


def option_distribution(
    top: dict[str, float], options: Sequence[str]
) -> tuple[np.ndarray, float, float]:
    """(renormalised probabilities over ``options``, mass on them, entropy) from one position.

    Tokens are matched after stripping whitespace (" 2" and "2" are the same answer); options
    missing from the returned top logprobs get probability 0. With no mass at all the
    probabilities are all zero and the caller must fall back.
    """
    index = {label: i for i, label in enumerate(options)}
    mass = np.zeros(len(options))
    for token, logprob in top.items():
        i = index.get(token.strip())
        if i is not None:
            mass[i] += math.exp(logprob)
    total = float(mass.sum())
    if total <= 0.0:
        return mass, 0.0, float("nan")
    probs = mass / total
    nonzero = probs[probs > 0]
    return probs, min(total, 1.0), float(-(nonzero * np.log(nonzero)).sum())


def draw_index(probs: np.ndarray, u: float) -> int:
    """Inverse-CDF draw of an option with the engine's uniform ``u`` (common random numbers)."""
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), len(probs) - 1))


REFUSING_STATUSES = (401, 403, 404)
"""HTTP statuses that no retry turns into an answer: a refused key, a key without access,
a model (or an API path) the endpoint does not have."""

REFUSED_CALLS = 3
"""When this many of a client's first endpoint attempts are all refused with one of
:data:`REFUSING_STATUSES`, the cell stops (:class:`EndpointRefused`) instead of falling back
on every decision. Was: a run with a wrong key or model name ran to its end as a run of rule
users (every call refused and fallen back) and then ended with exit code 3."""

REFUSED_PREFIX = "LLM endpoint refused the run: "
"""How an :class:`EndpointRefused` line begins (the run reads it in a cell's failure line,
which is all that crosses back from a worker process)."""


class EndpointRefused(RecarenaError):
    """The endpoint refused every one of a cell's first endpoint attempts (401, 403, 404)."""


def _refusal_line(endpoint: Endpoint, status: int, message: str) -> str:
    """One line naming the endpoint, the model and the key's variable, with what to check;
    the key itself, should the endpoint's message repeat it, is masked."""
    key = os.environ.get(endpoint.api_key_env, "")
    said = " ".join(str(message).split())
    if len(key) >= 4:
        said = said.replace(key, "***")
    said = said[:160]
    model, env = endpoint.model, endpoint.api_key_env
    if status == 401:
        hint = f"check the API key in the environment variable {env} (llm.api_key_env)"
    elif status == 403:
        hint = f"the key in {env} (llm.api_key_env) may not use model {model!r} (llm.model)"
    else:
        hint = (
            f"check llm.model (does the endpoint serve {model!r}?) and llm.base_url (the "
            "API's base, such as http://host:port/v1)"
        )
    return (
        f"{REFUSED_PREFIX}{endpoint.base_url} answered HTTP {status} ({said}) to each of the "
        f"first {REFUSED_CALLS} calls for model {model!r}; {hint}"
    )


class _Transport(Exception):
    """A call that could not get an answer after its retries."""


class _BodyCut(Exception):
    """The connection ended (or failed) before the answer's body did."""


class Unusable(Exception):
    """An HTTP 200 whose body the client cannot use (one failed attempt, retried like a 500)."""


@dataclass(frozen=True)
class Reply:
    """What one usable endpoint answer carried: the text and, when asked for, the logprobs.

    ``top`` holds one ``{token: logprob}`` dict per generated position, the generated token
    first (a steered one need not be the likeliest), or None when the endpoint returned no
    logprobs.
    """

    text: str
    top: list[dict[str, float]] | None
    prompt_tokens: int
    completion_tokens: int


def read_reply(content_type: str, body: bytes, want_logprobs: bool) -> Reply:
    """Parse a raw chat-completion body; anything unusable raises :class:`Unusable`.

    The SDK's own parsing is bypassed on purpose: a 200 with an HTML page, a JSON body with
    no choices, bytes that are not UTF-8 or a cut-off body must each become one counted,
    retried attempt, never an exception inside the engine's event loop.
    """
    kind = content_type.split(";")[0].strip().lower()
    if "json" not in kind:
        raise Unusable(f"unusable response: content type {kind or 'missing'!r}")
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusable(f"unusable response: invalid UTF-8 at byte {exc.start}") from None
    try:
        payload = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise Unusable(
            f"unusable response: body is not JSON ({exc.msg} at char {exc.pos})"
        ) from None
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Unusable("unusable response: no choices")
    message = choices[0].get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise Unusable("unusable response: choice without text content")
    top = _read_logprobs(choices[0].get("logprobs")) if want_logprobs else None
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    return Reply(text, top, _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


MAX_TOKENS_REPORTED = 1 << 31
"""More tokens than any call's prompt and answer hold; a usage count at or past this (or
negative, or not a whole number) is read as unknown (0)."""


def _int(value: Any) -> int:
    """A token count from an answer's usage, 0 when it is not one. Was: 1e300 stopped the cell
    (an integer SQLite could not store), NaN made a good answer an unusable one, and -5 was
    summed into the bill."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value) or value != int(value) or not 0 <= value < MAX_TOKENS_REPORTED:
        return 0
    return int(value)


def _read_logprobs(logprobs: Any) -> list[dict[str, float]] | None:
    """``choices[0].logprobs.content`` as one {token: logprob} dict per position, or None
    when the endpoint gave no logprobs. Logprobs of no token (the answer ended at once) are
    :class:`Unusable`: they were read as an endpoint without logprobs, and one empty answer
    switched the rest of the cell to JSON mode."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    if not content:
        raise Unusable("unusable response: logprobs of no token (an empty answer)")
    positions = []
    for entry in content:
        if not isinstance(entry, dict):
            return None
        alternatives = entry.get("top_logprobs") or []
        if not isinstance(alternatives, list):
            raise Unusable("unusable response: top_logprobs is not a list")
        seen: dict[str, float] = {}
        for alt in [entry, *alternatives]:
            if not isinstance(alt, dict):
                raise Unusable("unusable response: a top_logprobs entry is not an object")
            token, logprob = alt.get("token"), alt.get("logprob")
            if isinstance(token, str) and isinstance(logprob, int | float) and token not in seen:
                seen[token] = _logprob(token, logprob)
        positions.append(seen)
    return positions


LOGPROB_SLACK = 1e-3
"""How far above 0 a reported log-probability may round (a probability of at most 1.001)."""


def _logprob(token: str, value: float) -> float:
    """A log-probability as reported, or :class:`Unusable`: NaN, +inf or a value above 0 is no
    probability (-inf is: zero). Was: an option at +inf got a NaN share that the draw could
    land on, so a slot the distribution did not support was clicked; a logprob of 50 took all
    the mass it was renormalised over."""
    logprob = float(value)
    if math.isnan(logprob) or logprob > LOGPROB_SLACK:
        raise Unusable(f"unusable response: logprob {logprob:g} for the token {token!r}")
    return min(logprob, 0.0)


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


TOKENIZE_SECONDS = 5.0
"""The time the tokenizer path gets for all a page's option labels together."""


def _read_by(reply: Any, deadline: float, limit: int = 1 << 16) -> bytes:
    """A tokenizer answer read to its end by ``deadline`` and within ``limit`` bytes, else
    ``TimeoutError``/``ValueError``: a socket timeout bounds each read only, so an answer
    trickled a byte at a time held the run's first page forever."""
    chunks: list[bytes] = []
    size = 0
    while chunk := reply.read1(limit):
        size += len(chunk)
        if size > limit:
            raise ValueError("tokenizer answer too large")
        if time.monotonic() > deadline:
            raise TimeoutError("tokenizer answer too slow")
        chunks.append(chunk)
    return b"".join(chunks)


_DAMAGED: Any = object()
"""What :func:`_stored_top` answers for a stored scoring answer it cannot read."""


def _stored_top(stored: str | None) -> list[dict[str, float]] | None:
    """The top logprobs of a stored scoring answer (None: the endpoint gave none), or
    ``_DAMAGED`` unless ``stored`` is what :meth:`LLMClient.score` stores: a JSON object with
    its ``text`` and its ``top``, one {token: log-probability} object per answer position."""
    try:
        answer = json.loads(stored) if isinstance(stored, str) else None
    except ValueError:
        return _DAMAGED
    if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
        return _DAMAGED
    top = answer.get("top", _DAMAGED)
    if top is None:
        return None
    if not isinstance(top, list) or not top:
        return _DAMAGED
    for position in top:
        if not isinstance(position, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v <= LOGPROB_SLACK
            for v in position.values()
        ):  # NaN fails the comparison
            return _DAMAGED
    return top


class LLMClient:
    """Async structured calls with retries, repair, cache and accounting; one per cell."""

    def __init__(self, endpoint: Endpoint, cache: CallCache) -> None:
        self.endpoint = endpoint
        self.cache = cache
        self.records: list[CallRecord] = []
        self._loop = asyncio.new_event_loop()
        self._semaphore: asyncio.Semaphore | None = None
        self._sdk = None
        self._logprobs: bool | None = None  # unknown until the endpoint first answers a score
        self._token_ids: dict[str, int] = {}  # option label -> the endpoint's token id
        self._cannot_tokenize = False  # set when the endpoint could not name a label's token
        self._tokenize_lock: asyncio.Lock | None = None
        self.stats = CallStats()
        self.live: LiveLine | None = None  # set by the cell's builder to print a live line
        self._first_attempts = 0  # endpoint attempts seen, up to REFUSED_CALLS
        self._all_refused = True  # every one of them refused (401, 403, 404)
        self.refused: str | None = None  # the line of EndpointRefused, once that is so

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

        results = self._loop.run_until_complete(gather())
        if self.live is not None:
            self.live.maybe_print(self.stats)
        if self.refused is not None:  # after the batch: no call is left pending in the loop
            raise EndpointRefused(self.refused)
        return results

    def _attempted(self, status: int | None, message: str = "") -> None:
        """Count one endpoint attempt (``status``: the HTTP status of a refusal it ended in,
        None for any other outcome) towards the first :data:`REFUSED_CALLS`."""
        if self._first_attempts >= REFUSED_CALLS:
            return
        self._first_attempts += 1
        if status not in REFUSING_STATUSES:
            self._all_refused = False
        elif self._all_refused and self._first_attempts == REFUSED_CALLS:
            self.refused = _refusal_line(self.endpoint, status, message)

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
        self, messages: list[dict[str, str]], request: dict[str, Any], want_logprobs: bool = False
    ) -> tuple[Reply, int]:
        """One usable answer from the endpoint, and the attempts it took.

        Every attempt that does not give a usable answer (429, 5xx, timeout, dropped
        connection, or a 200 the client cannot read) is counted and retried with backoff;
        after the last one :class:`_Transport` carries the last reason.
        """
        import openai

        endpoint = self.endpoint
        client = self._client()  # a missing base_url is the user's mistake: let it through
        assert self._semaphore is not None
        last_error = ""
        for attempt in range(endpoint.max_retries + 1):
            wait = min(endpoint.backoff_seconds * 2**attempt, MAX_WAIT_SECONDS)
            try:
                async with self._semaphore:
                    # the whole attempt, answer read to its end, within the timeout: the SDK's
                    # own timeout bounds each read, so an endpoint sending a byte every few
                    # seconds held the run forever
                    async with asyncio.timeout(endpoint.timeout_seconds):
                        content_type, body = await self._post(client, messages, request)
                self._attempted(None)
                return read_reply(content_type, body, want_logprobs), attempt + 1
            except Unusable as exc:
                last_error = str(exc)
            except (openai.APITimeoutError, TimeoutError):
                last_error = f"timeout after {endpoint.timeout_seconds:g}s"
            except openai.APIConnectionError as exc:
                last_error = f"connection error: {exc.__class__.__name__}"
            except _BodyCut as exc:
                last_error = f"connection error: the body was cut short ({exc})"
            except openai.APIStatusError as exc:
                status = exc.status_code
                last_error = f"HTTP {status}"
                self._attempted(status, exc.message)
                if status != 429 and status < 500:
                    raise _Transport(f"{last_error}: {exc.message}"[:300], attempt + 1) from None
                retry_after = exc.response.headers.get("retry-after") if exc.response else None
                if retry_after:
                    with contextlib.suppress(ValueError):
                        asked = float(retry_after)
                        # 'nan' parses, and a sleep of NaN seconds never ends: was a hang
                        if math.isfinite(asked) or asked > 0:
                            wait = min(max(asked, 0.0), MAX_WAIT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - whatever the transport raised, one attempt
                last_error = f"unusable response: {exc.__class__.__name__}: {exc}"[:300]
            if attempt < endpoint.max_retries:
                await asyncio.sleep(wait)
        raise _Transport(last_error, endpoint.max_retries + 1)

    async def _post(
        self, client: Any, messages: list[dict[str, str]], request: dict[str, Any]
    ) -> tuple[str, bytes]:
        """One request: the answer's content type and body, read up to ``MAX_BODY_BYTES``."""
        async with client.chat.completions.with_streaming_response.create(
            model=self.endpoint.model,
            messages=messages,
            timeout=self.endpoint.timeout_seconds,
            **request,
        ) as raw:
            content_type = raw.headers.get("content-type", "")
            announced = raw.headers.get("content-length", "")
            if announced.isdigit() and int(announced) > MAX_BODY_BYTES:
                raise Unusable(f"unusable response: a body of {int(announced):,} bytes")
            chunks: list[bytes] = []
            size = 0
            try:
                async for chunk in raw.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise Unusable(
                            f"unusable response: a body of more than {MAX_BODY_BYTES:,} bytes"
                        )
                    chunks.append(chunk)
            except (Unusable, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - the body stopped before its end
                raise _BodyCut(exc.__class__.__name__) from None
        return content_type, b"".join(chunks)

    def _not_recorded(self, context: CallContext, key: str) -> CacheMiss:
        """A replay's call that the cache never recorded (a structured call's or a scored
        one's: both are worded the same)."""
        return CacheMiss(
            f"llm.cache.mode replay: no recorded answer for the {context.describe()} "
            f"(key {key[:16]}) in {self.cache.path}"
        )

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
        answer: T | None
        problem: str | None
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
            raise self._not_recorded(context, key)
        try:
            reply, attempts = await self._complete(messages, params)
            text, prompt_tokens = reply.text, reply.prompt_tokens
            completion_tokens, transport_error = reply.completion_tokens, None
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
        self._keep(records)
        return Structured(answer, records)

    @property
    def scoring(self) -> bool:
        """Whether decisions are read from logprobs (until the endpoint shows it has none)."""
        return self.endpoint.decision == "score" and self._logprobs is not False

    async def _label_ids(self, labels: Sequence[str]) -> dict[str, int] | None:
        """The endpoint's token id of each label, from llama.cpp's ``/extras/tokenize``; None
        when the endpoint cannot tell (then nothing is steered) or a label is not one token."""
        if self._tokenize_lock is None:
            self._tokenize_lock = asyncio.Lock()
        async with self._tokenize_lock:  # the first page calls of a batch ask at once
            if self._cannot_tokenize:
                return None
            missing = [label for label in labels if label not in self._token_ids]
            if missing:
                found = await self._tokenize(missing)
                if found is None:
                    self._cannot_tokenize = True
                    return None
                self._token_ids.update(found)
        return {label: self._token_ids[label] for label in labels}

    async def _tokenize(self, labels: Sequence[str]) -> dict[str, int] | None:
        tokens = await asyncio.to_thread(self._tokenize_blocking, labels)
        if tokens is None:
            return None
        # one token per label, after a start-of-text token the tokenizer may put first
        prefix = {tuple(t[:-1]) for t in tokens}
        ids = [t[-1] for t in tokens if t]
        if len(ids) != len(labels) or len(prefix) != 1 or len(set(ids)) != len(ids):
            return None
        if len(next(iter(prefix))) > 1:
            return None
        return dict(zip(labels, ids, strict=True))

    def _tokenize_blocking(self, labels: Sequence[str]) -> list[list[int]] | None:
        import urllib.request

        root = (self.endpoint.base_url or "").rstrip("/").removesuffix("/v1")
        if not root.startswith(("http://", "https://")):
            return None
        tokens: list[list[int]] = []
        deadline = time.monotonic() + TOKENIZE_SECONDS
        try:
            for label in labels:
                body = json.dumps({"input": label, "model": self.endpoint.model}).encode()
                request = urllib.request.Request(
                    f"{root}/extras/tokenize", body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=TOKENIZE_SECONDS) as reply:
                    tokens.append([int(t) for t in json.loads(_read_by(reply, deadline))["tokens"]])
        except Exception:  # noqa: BLE001 - no tokenizer endpoint: the answer is "cannot steer"
            return None
        return tokens

    async def score(
        self,
        messages: list[dict[str, str]],
        options: Sequence[Sequence[str]],
        context: CallContext,
        steer: np.ndarray | None = None,
    ) -> Scored:
        """One forward pass: the distribution over ``options[i]`` at answer position ``i``.

        ``max_tokens`` is ``len(options)``, there is no grammar and no schema; the endpoint is
        asked for the top logprobs of every generated token. The answer's text is never parsed.
        A call whose first position puts no probability on any option is a logged fallback;
        an endpoint that answers without logprobs switches this client to generate mode.

        ``steer``: the Gumbel noise of each first-position option with which the caller draws
        (:func:`recarena.agents.llm.choices.gumbel_index`). Where the endpoint can name its
        option tokens, they get a logit bias of ``STEER_BIAS`` + noise, so the token generated
        first is (but for float ties) the option the caller draws, and the next position is
        conditioned on it: a rating of the chosen item comes from the same call. Logprobs are
        read before the bias (llama.cpp and vLLM report them so), so the distributions are
        the model's own. The noise is part of the cache key; the token ids are not.
        """
        endpoint = self.endpoint
        params: dict[str, Any] = {
            "temperature": 0.0,
            "max_tokens": len(options),
            "seed": endpoint.seed,
            "logprobs": True,
            "top_logprobs": endpoint.top_logprobs,
        }
        keyed = params if steer is None else {**params, "steer": [float(g) for g in steer]}
        key = call_key(endpoint.model, messages, keyed)
        started = time.perf_counter()
        record = CallRecord(
            context, endpoint.model, 0, 0, 0.0, 0, cached=False, valid=False,
            decision="score", options=len(options[0]),
        )  # fmt: skip
        hit = self.cache.lookup(key)
        if hit is not None and hit.error is None and _stored_top(hit.completion) is _DAMAGED:
            # not what this client stores (edited, or written by another program): a replay
            # cannot go on; otherwise the call is asked again and the entry replaced. Was: the
            # cell failed on the JSON (exit 1)
            if self.cache.mode == "replay":
                raise CacheMiss(
                    f"llm.cache.mode replay: the recorded answer for the {context.describe()} "
                    f"(key {key[:16]}) in {self.cache.path} is damaged (not a scoring answer)"
                )
            hit = None
        error: str | None
        if hit is not None:
            record.cached = True
            record.prompt_tokens, record.completion_tokens = (
                hit.prompt_tokens,
                hit.completion_tokens,
            )
            stored, error = hit.completion, hit.error
        elif self.cache.mode == "replay":
            raise self._not_recorded(context, key)
        else:
            request = params
            if steer is not None:
                ids = await self._label_ids(options[0])
                if ids is not None:
                    bias = {
                        str(ids[o]): STEER_BIAS + float(g)
                        for o, g in zip(options[0], steer, strict=True)
                    }
                    request = {**params, "logit_bias": bias}
            try:
                reply, record.attempts = await self._complete(messages, request, True)
                stored, error = json.dumps({"text": reply.text, "top": reply.top}), None
                record.prompt_tokens = reply.prompt_tokens
                record.completion_tokens = reply.completion_tokens
            except _Transport as exc:
                stored, error, record.attempts = None, str(exc.args[0]), int(exc.args[1])
        record.latency_s = time.perf_counter() - started
        result = Scored(None, [], [record])
        if error is None and stored is not None:
            top = _stored_top(stored)
            assert top is not _DAMAGED  # a fresh answer is written by this client, a hit checked
            if top is None:  # the endpoint cannot score: generate mode from now on
                self._logprobs = False
                result.no_logprobs = True
                error = "no logprobs from the endpoint; generate mode from now on"
            else:
                # each position's dict starts with the token the endpoint generated
                result.generated = [next(iter(position), "") for position in top]
                result.probs = []
                for i, labels in enumerate(options):
                    probs, mass, entropy = option_distribution(
                        top[i] if i < len(top) else {}, labels
                    )
                    result.probs.append(probs if mass > 0 else None)
                    if i == 0:
                        record.option_mass, record.entropy = mass, entropy
                if result.probs[0] is None:
                    shown = ", ".join(repr(t) for t in list(top[0])[:5])
                    error = f"no probability on the options {list(options[0])} (top: {shown})"
                    result.probs = None
                else:
                    self._logprobs = True
        if hit is None:
            self.cache.store(
                key,
                endpoint.model,
                {"messages": messages, **keyed},
                CachedCall(
                    stored,
                    error is None,
                    None if stored is not None else error,
                    record.prompt_tokens,
                    record.completion_tokens,
                    record.latency_s,
                    self.cache.run_id,
                ),
            )
        record.valid = error is None
        record.error = error or ""
        record.fallback = result.probs is None and not result.no_logprobs
        self._keep([record])
        return result

    def _keep(self, records: list[CallRecord]) -> None:
        for r in records:
            self.stats.add(r.cached, r.fallback, r.prompt_tokens, r.completion_tokens,
                           r.context.time)  # fmt: skip
        self.records.extend(records)

    def drain_records(self) -> list[CallRecord]:
        records, self.records = self.records, []
        return records
