"""Which endpoint a run talks to, decided once per run and shared by users, creators and CRSs.

Kept in the LLM infrastructure layer so that recommenders and creator strategies reach the same
endpoint as the user panel without importing user code.
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from recarena.agents.llm.client import LOCAL_MODEL, Endpoint
from recarena.simulator.core.scenario import Scenario


@dataclass(frozen=True)
class LLMRuntime:
    """What a run decides once and hands to every cell (never part of the scenario file)."""

    run_id: str
    cache_path: str
    base_url: str | None = None
    cache_mode: str | None = None  # overrides llm.cache.mode (CLI --llm-cache-mode)
    live_seconds: float | None = 10.0  # a live line on stderr this often per cell; None: quiet


def model_name(scenario: Scenario) -> str:
    """The model name sent to the endpoint (and the server's alias for a local GGUF file)."""
    llm = scenario.llm
    if llm.model:
        return llm.model
    if llm.provider != "local":
        return "gpt-4o-mini"
    return Path(llm.model_path).stem if llm.model_path else LOCAL_MODEL


def endpoint_for(scenario: Scenario, base_url: str | None) -> Endpoint:
    llm = scenario.llm
    local = llm.provider == "local"
    return Endpoint(
        base_url=base_url or llm.base_url,
        model=model_name(scenario),
        api_key_env=llm.api_key_env,
        response_format=llm.response_format or ("json_object_schema" if local else "json_schema"),
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        seed=scenario.seed,
        concurrency=llm.concurrency,
        timeout_seconds=llm.timeout_seconds,
        max_retries=llm.max_retries,
        backoff_seconds=llm.backoff_seconds,
        decision=llm.decision,
    )


def _no_tls(sock: socket.socket, host: str, port: int) -> str | None:
    """Why an https:// endpoint's port does not speak TLS (None when a handshake completes).
    The certificate is not checked here (the calls check it against their own trust store):
    only a server that answers the handshake with no TLS at all, such as a plain http://
    server behind an https:// URL, is named. Was: its connection passed this probe and every
    call failed ('connection error: APIConnectionError'), retried and fell back, to exit 3."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=host or None):
            return None
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or str(exc)
        return (
            f"no TLS at {host}:{port} ({reason}); is it a plain http:// endpoint? Then write "
            "http:// in llm.base_url"
        )
    except OSError as exc:  # closed or reset during the handshake
        return f"no TLS handshake with {host}:{port}: {exc.strerror or exc or 'closed'}"


PROBE_SECONDS = 5.0
"""How long :func:`unreachable` waits for a connection (name lookup included)."""


def unreachable(base_url: str, seconds: float = PROBE_SECONDS) -> str | None:
    """Why no connection opens to ``base_url``'s host and port, or None when one does (or when a
    proxy from the environment would carry the calls: only the proxy is reachable from here).

    Nothing is sent, so nothing is billed or logged. Was: a run against an endpoint that is down
    retried and fell back on every LLM decision, minutes for a handful of calls (hours when the
    host drops packets: each attempt waits ``timeout_seconds``), and ended with exit 3.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return None
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=seconds) as sock:
                outcome.append(_no_tls(sock, host, port) if parts.scheme == "https" else None)
        except socket.gaierror as exc:
            outcome.append(f"cannot resolve host {host!r}: {exc.strerror or exc}")
        except OSError as exc:  # refused, no route, timed out
            outcome.append(f"cannot connect to {host}:{port}: {exc.strerror or exc or 'failed'}")

    # a thread, because a name lookup ignores the socket's timeout (a dead resolver blocks)
    thread = threading.Thread(target=connect, name="endpoint-probe", daemon=True)
    thread.start()
    thread.join(2 * seconds + 1.0)  # the connection, then a TLS handshake
    if not outcome:
        return f"no connection to {host}:{port} within {seconds:g} s"
    return outcome[0]
