"""A scripted OpenAI-compatible endpoint on loopback, for fault tests without a real model.

Each request takes the next behaviour from a script (cycled): ``ok``, ``429``, ``500``,
``timeout`` (answers after ``slow_seconds``), ``malformed`` (content that is not JSON), ``bad``
(JSON that breaks the schema). ``ok`` answers a page with a fixed valid choice and a reflection
with a fixed sentence, so runs against it are deterministic when the script is all ``ok``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import cycle

PAGE_OK = {"examined": [1, 2, 3], "click": 2, "rating": 4, "leave": False, "reason": "fun"}
REFLECTION_OK = {"reflection": "I like lively films and want more of them."}


class FakeOpenAI:
    def __init__(self, script=("ok",), slow_seconds: float = 2.0) -> None:
        self._script = cycle(script)
        self._lock = threading.Lock()
        self.slow_seconds = slow_seconds
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
                with fake._lock:
                    behaviour = next(fake._script)
                    fake.requests.append(body)
                    fake.behaviours.append(behaviour)
                if behaviour == "429":
                    self._send(429, {"error": {"message": "slow down"}}, {"retry-after": "0"})
                elif behaviour == "500":
                    self._send(500, {"error": {"message": "boom"}})
                else:
                    if behaviour == "timeout":
                        time.sleep(fake.slow_seconds)
                    self._send(200, fake._completion(body, behaviour))

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _completion(body: dict, behaviour: str) -> dict:
        prompt = " ".join(m.get("content", "") for m in body.get("messages", []))
        wants_reflection = '"reflection"' in prompt
        if behaviour == "malformed":
            content = '{"examined": [1, 2'
        elif behaviour == "bad":
            content = json.dumps({"examined": [1], "click": 99, "rating": 9})
        else:
            content = json.dumps(REFLECTION_OK if wants_reflection else PAGE_OK)
        return {
            "id": "fake-1",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": 20,
                "total_tokens": len(prompt) // 4 + 20,
            },  # fmt: skip
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
