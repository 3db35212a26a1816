"""The judge's timeout_s is a total per attempt and item_deadline_s a total per item (issue 15, item 6).

A loopback server accepts the request and then trickles its answer one byte a second: each
socket read succeeds well within the read timeout, so only a wall-clock deadline ends it.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time

import pytest

from ifpo.judge import JudgeClient, JudgeConfig, JudgeError

TRICKLE_S = 8  # how long the server trickles before it gives up (the old client waited all of it)


class _Trickle(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(next(v for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
                          if k.strip().lower() == b"content-length"))
        while len(body) < length:
            body += conn.recv(4096)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": "x" * 200}}]}).encode()
        headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
            payload
        )
        stream = (headers + payload) if self.server.mode == "headers" else payload  # type: ignore[attr-defined]
        if self.server.mode == "body":  # type: ignore[attr-defined]
            conn.sendall(headers)
        try:
            for i in range(TRICKLE_S):
                if self.server.stop.is_set():  # type: ignore[attr-defined]
                    return
                conn.sendall(stream[i : i + 1])
                time.sleep(1.0)
        except OSError:
            return  # the client hung up: what the deadline should make it do


class TrickleServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Trickle)
        self.mode, self.stop = mode, threading.Event()
        self.attempts = 0
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def process_request(self, request, client_address) -> None:
        self.attempts += 1
        super().process_request(request, client_address)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def _client(server: TrickleServer, **fields) -> JudgeClient:
    config = JudgeConfig(
        base_url=server.base_url,
        model="m",
        api_key_env="IFPO_TEST_NO_KEY",
        cache_dir=None,
        backoff_s=0.01,
        max_backoff_s=0.01,
        **fields,
    )
    return JudgeClient(config, show_progress=False)


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_one_attempt_ends_near_timeout_s_against_a_trickling_server(mode):
    with TrickleServer(mode) as server, _client(server, timeout_s=2.0, max_retries=0) as client:
        started = time.monotonic()
        with pytest.raises(JudgeError, match=r"timed out after 2\.\ds \(limit 2s per attempt\)"):
            client.chat([{"role": "user", "content": "hi"}])
        elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 3.0, elapsed
    assert server.attempts == 1


def test_item_deadline_bounds_all_attempts_together():
    with (
        TrickleServer("body") as server,
        _client(server, timeout_s=1.0, max_retries=20, item_deadline_s=2.5) as client,
    ):
        started = time.monotonic()
        with pytest.raises(JudgeError) as err:
            client.chat([{"role": "user", "content": "hi"}])
        elapsed = time.monotonic() - started
    assert 2.3 <= elapsed < 3.5, elapsed
    assert 2 <= err.value.attempts <= 3 and server.attempts == err.value.attempts
    assert "timed out" in str(err.value)


def test_item_deadline_must_be_positive():
    with pytest.raises(ValueError, match="item_deadline_s must be > 0"):
        JudgeConfig(item_deadline_s=0)
