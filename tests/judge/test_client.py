"""JudgeClient against loopback servers started by the test: retries, cache, concurrency, secrets."""
# ruff: noqa: SIM117  (nested `with` keeps server-side asserts outside the client lifetime)

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from ifpo.judge import JudgeClient, JudgeConfig, JudgeError, JudgeRequest
from tests.fake_chat_server import FakeChatServer, Reply, completion, keyword_judge

SECRET = "sk-test-DO-NOT-LEAK-4242"
KEY_ENV = "IFPO_TEST_JUDGE_KEY"


def make_config(server: FakeChatServer, tmp_path: Path | None, **overrides) -> JudgeConfig:
    fields = {
        "base_url": server.base_url,
        "model": "fake-judge",
        "api_key_env": KEY_ENV,
        "timeout_s": 0.3,
        "max_retries": 3,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "concurrency": 2,
        "cache_dir": str(tmp_path / "cache") if tmp_path else None,
    }
    fields.update(overrides)
    return JudgeConfig(**fields)


def ok(text: str = "hello") -> Reply:
    return Reply(completion(text))


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def test_chat_returns_text_and_sends_model_and_key(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: ok("pong")) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "ping"}], max_tokens=7) == "pong"
        assert server.requests[0]["model"] == "fake-judge"
        assert server.requests[0]["max_tokens"] == 7  # per-call params override the config
        assert server.requests[0]["temperature"] == 0.0
        assert server.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_no_authorization_header_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with FakeChatServer(lambda i, body: ok()) as server:
        with JudgeClient(make_config(server, None), show_progress=False) as client:
            client.chat([{"role": "user", "content": "x"}])
        assert "authorization" not in server.headers[0]


def test_timeout_then_success_retries_once(tmp_path: Path) -> None:
    def slow_first(index: int, body: dict) -> Reply:
        return Reply(completion("late"), delay_s=1.0) if index == 0 else ok("on time")

    with FakeChatServer(slow_first) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "x"}]) == "on time"
            assert client.stats.retries == 1
        assert server.request_count == 2


def test_server_errors_are_retried_with_growing_backoff(tmp_path: Path) -> None:
    sleeps: list[float] = []

    def flaky(index: int, body: dict) -> Reply:
        return Reply({"error": "overloaded"}, status=500) if index < 3 else ok("finally")

    with FakeChatServer(flaky) as server:
        config = make_config(server, tmp_path, backoff_s=1.0, max_backoff_s=100.0)
        with JudgeClient(config, sleep=sleeps.append, show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "x"}]) == "finally"
            assert client.stats.retries == 3
        assert server.request_count == 4
    # Equal jitter keeps each delay within [base/2, base] for base = 1, 2, 4 seconds.
    assert [0.5 <= sleeps[0] <= 1.0, 1.0 <= sleeps[1] <= 2.0, 2.0 <= sleeps[2] <= 4.0] == [True] * 3


def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    sleeps: list[float] = []

    def limited(index: int, body: dict) -> Reply:
        return (
            Reply({"error": "slow down"}, status=429, headers={"Retry-After": "0.04"}) if index == 0 else ok()
        )

    with FakeChatServer(limited) as server:
        with JudgeClient(
            make_config(server, tmp_path, backoff_s=0.001), sleep=sleeps.append, show_progress=False
        ) as client:
            client.chat([{"role": "user", "content": "x"}])
    assert sleeps and sleeps[0] >= 0.04


def test_gives_up_after_max_retries_with_clear_error(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: Reply({"error": "down"}, status=503)) as server:
        with JudgeClient(make_config(server, tmp_path, max_retries=2), show_progress=False) as client:
            with pytest.raises(JudgeError, match=r"failed after 3 attempt\(s\).*HTTP 503") as info:
                client.chat([{"role": "user", "content": "x"}])
        assert info.value.attempts == 3
        assert server.request_count == 3


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: Reply({"error": "bad model"}, status=400)) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            with pytest.raises(JudgeError, match="HTTP 400"):
                client.chat([{"role": "user", "content": "x"}])
        assert server.request_count == 1


def test_connection_refused_is_retried_then_raises(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: ok()) as server:
        config = make_config(server, tmp_path, max_retries=1)
    # The server is closed now: every attempt is a connection error.
    with JudgeClient(config, show_progress=False) as client:
        with pytest.raises(JudgeError, match="connection error"):
            client.chat([{"role": "user", "content": "x"}])
        assert client.stats.http_requests == 2


def test_malformed_body_is_retried(tmp_path: Path) -> None:
    def garbage_first(index: int, body: dict) -> Reply:
        return Reply("this is not json {") if index == 0 else ok("fine")

    with FakeChatServer(garbage_first) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "x"}]) == "fine"
        assert server.request_count == 2


def _verdict_text(flags: list[bool]) -> str:
    return json.dumps(
        {"results": [{"id": i + 1, "reason": "r", "satisfied": f} for i, f in enumerate(flags)]}
    )


def test_judge_retries_malformed_verdict_json_then_parses(tmp_path: Path) -> None:
    def judge(index: int, body: dict) -> Reply:
        if index == 0:
            return ok('{"results": [{"id": 1, "satisfied": tru')  # truncated JSON
        if index == 1:
            return ok(_verdict_text([True]))  # wrong count for two constraints
        return ok("Sure!\n```json\n" + _verdict_text([True, False]) + "\n```")

    request = JudgeRequest("Write a poem.", "Roses are red.", ("rhymes", "has 14 lines"))
    with FakeChatServer(judge) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            verdict = client.judge(request)
            assert client.stats.retries == 2
        assert server.request_count == 3
    assert verdict.ok and verdict.satisfied == (True, False)
    assert verdict.constraints == ("rhymes", "has 14 lines")


def test_malformed_verdicts_raise_or_are_recorded(tmp_path: Path) -> None:
    requests = [JudgeRequest("i", "r", ("c1",)), JudgeRequest("i2", "r2", ("c2",))]
    with FakeChatServer(lambda i, body: ok("I refuse to answer in JSON.")) as server:
        with JudgeClient(make_config(server, tmp_path, max_retries=1), show_progress=False) as client:
            with pytest.raises(JudgeError, match="malformed answer"):
                client.judge_many(requests)
            recorded = client.judge_many(requests, on_error="record")
    assert [r.ok for r in recorded] == [False, False]
    assert all("malformed answer" in r.error for r in recorded)
    assert recorded[1].constraints == ("c2",)  # order and identity kept for failures too


def test_second_run_hits_cache_and_makes_no_requests(tmp_path: Path) -> None:
    requests = [JudgeRequest(f"ins {i}", f"resp 'k{i % 2}'", ("has 'k0'", "has 'resp'")) for i in range(4)]
    with FakeChatServer(lambda i, body: keyword_judge(body)) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            first = client.judge_many(requests)
        assert server.request_count == 4
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            second = client.judge_many(requests)
            assert client.stats.cache_hits == 4 and client.stats.http_requests == 0
        assert server.request_count == 4
    assert first == second
    assert [j.satisfied for j in first] == [(True, True), (False, True)] * 2


def test_cache_key_ignores_base_url_but_not_model(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: ok("a")) as first, FakeChatServer(lambda i, body: ok("b")) as second:
        with JudgeClient(make_config(first, tmp_path), show_progress=False) as client:
            client.chat([{"role": "user", "content": "same"}])
        with JudgeClient(make_config(second, tmp_path), show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "same"}]) == "a"
        with JudgeClient(make_config(second, tmp_path, model="other"), show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "same"}]) == "b"
        assert (first.request_count, second.request_count) == (1, 1)


def test_concurrency_limit_is_honoured(tmp_path: Path) -> None:
    def slow_judge(index: int, body: dict) -> Reply:
        reply = keyword_judge(body)
        reply.delay_s = 0.1
        return reply

    with FakeChatServer(slow_judge) as server:
        config = make_config(server, None, concurrency=3, timeout_s=2.0)
        with JudgeClient(config, show_progress=False) as client:
            requests = [JudgeRequest(f"i{n}", "r", ("c",)) for n in range(12)]
            judgements = client.judge_many(requests)
        assert all(j.ok for j in judgements)
        assert server.request_count == 12
        assert server.max_in_flight == 3  # reached, never exceeded


def test_interrupted_run_resumes_from_cache(tmp_path: Path) -> None:
    """A batch that dies half-way keeps finished answers; the rerun only asks for the rest."""
    requests = [JudgeRequest(f"ins {i}", "resp 'a'", ("has 'a'",)) for i in range(6)]

    def dies_after_three(index: int, body: dict) -> Reply:
        return keyword_judge(body) if index < 3 else Reply({"error": "gone"}, status=400)

    with FakeChatServer(dies_after_three) as server:
        with JudgeClient(make_config(server, tmp_path, concurrency=1), show_progress=False) as client:
            with pytest.raises(JudgeError):
                client.judge_many(requests)
    with FakeChatServer(lambda i, body: keyword_judge(body)) as server:
        with JudgeClient(make_config(server, tmp_path), show_progress=False) as client:
            result = client.judge_many(requests)
            assert client.stats.cache_hits == 3
        assert server.request_count == 3
    assert all(j.satisfied == (True,) for j in result)


def test_api_key_never_reaches_cache_logs_repr_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo_auth(index: int, body: dict) -> Reply:
        # A hostile/buggy server echoing the credentials back in its error text.
        return Reply({"error": f"denied for {SECRET}"}, status=500) if index % 2 == 0 else ok("fine")

    with FakeChatServer(echo_auth) as server:
        config = make_config(server, tmp_path, max_retries=1)
        with JudgeClient(config, show_progress=False) as client:
            assert client.chat([{"role": "user", "content": "q1"}]) == "fine"  # retried once, logged
            description = repr(client) + str(config) + repr(client.stats)
        with JudgeClient(make_config(server, tmp_path, max_retries=0), show_progress=False) as client:
            with pytest.raises(JudgeError) as info:
                client.chat([{"role": "user", "content": "q2"}])
    assert caplog.records, "the retry should have been logged"
    assert SECRET not in caplog.text
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert "***" in str(info.value)
    assert SECRET not in description and KEY_ENV in description
    cache_files = list((tmp_path / "cache").rglob("*"))
    assert any(p.is_file() for p in cache_files)
    for path in cache_files:
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8")


def test_many_threads_share_one_client_safely(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: ok(body["messages"][0]["content"].upper())) as server:
        with JudgeClient(make_config(server, tmp_path, concurrency=4), show_progress=False) as client:
            out: dict[int, str] = {}

            def work(n: int) -> None:
                out[n] = client.chat([{"role": "user", "content": f"m{n}"}])

            threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=10)
    assert out == {n: f"M{n}" for n in range(8)}
