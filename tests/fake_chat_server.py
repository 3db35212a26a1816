"""A loopback OpenAI-compatible chat server for tests (no network, no model).

Tests script its behaviour per request (delays, status codes, garbage bodies)
and read back what it saw: every request body and header, and the most
requests it ever had in flight at once. It binds 127.0.0.1 on a random port.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self


@dataclass
class Reply:
    """What the server sends for one request."""

    body: str | dict[str, Any]
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(text: str) -> dict[str, Any]:
    """A minimal chat-completions response body carrying ``text``."""
    return {
        "id": "fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


_QUOTED = re.compile(r"'([^']+)'")


def keyword_judge(body: dict[str, Any]) -> Reply:
    """Grade a judge prompt: a constraint passes iff every 'quoted' word in it occurs in the response.

    Deterministic stand-in for a real judge so benchmark tests have hand-computable scores.
    """
    user = body["messages"][-1]["content"]
    response = user.split("## Response to grade\n", 1)[1].split("\n\n## Constraints (", 1)[0]
    constraint_block = user.split("\n\n## Constraints (", 1)[1].split(")\n", 1)[1].split("\n\n", 1)[0]
    results = []
    for line in constraint_block.splitlines():
        number, text = line.split(". ", 1)
        words = _QUOTED.findall(text)
        results.append(
            {"id": int(number), "reason": "keyword check", "satisfied": all(w in response for w in words)}
        )
    return Reply(completion(json.dumps({"results": results})))


Responder = Callable[[int, dict[str, Any]], Reply]


class FakeChatServer:
    """``with FakeChatServer(responder) as server: ... server.base_url ...``.

    ``responder(index, body)`` gets the 0-based request number and the parsed JSON body.
    """

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server._responder(index, body)
                    if reply.delay_s:
                        threading.Event().wait(reply.delay_s)
                    payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                    data = payload.encode("utf-8")
                finally:
                    # Out of flight before the reply is sent: once the client has the reply it may
                    # send its next request before this thread would run again, which a busy
                    # machine turned into a phantom fourth request under a limit of three.
                    with server._lock:
                        server.in_flight -= 1
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test); nothing to do

        return Handler
