"""JudgeConfig validation and the LLM constraint reverser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ifpo.judge import JudgeClient, JudgeConfig, JudgeError, LLMConstraintReverser, ReversalError
from tests.fake_chat_server import FakeChatServer, Reply, completion


@pytest.mark.parametrize(
    "field, value",
    [
        ("timeout_s", 0),
        ("max_retries", -1),
        ("concurrency", 0),
        ("max_tokens", 0),
        ("base_url", ""),
        ("api_key_env", ""),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        JudgeConfig(**{field: value})


def test_config_has_no_secret_field_and_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {f.name for f in dataclasses.fields(JudgeConfig)}
    assert "api_key" not in names
    monkeypatch.setenv("MY_JUDGE_KEY", "  k-123 ")
    assert JudgeConfig(api_key_env="MY_JUDGE_KEY").read_api_key() == "k-123"
    monkeypatch.delenv("MY_JUDGE_KEY")
    assert JudgeConfig(api_key_env="MY_JUDGE_KEY").read_api_key() is None


RULES = "Rewrite the constraint so that it demands the opposite. Reply with the constraint only."


def _client(server: FakeChatServer, tmp_path: Path, **overrides: object) -> JudgeClient:
    config = JudgeConfig(
        base_url=server.base_url,
        model="rev",
        timeout_s=1.0,
        max_retries=2,
        backoff_s=0.0,
        cache_dir=str(tmp_path / "cache"),
        **overrides,
    )
    return JudgeClient(config, show_progress=False)


def test_reverser_sends_rules_and_caches_per_instruction(tmp_path: Path) -> None:
    def reverse(index: int, body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        return Reply(completion(f"  Do not {text.lower()}\n"))

    with FakeChatServer(reverse) as server:
        with _client(server, tmp_path) as client:
            reverser = LLMConstraintReverser(client, RULES)
            assert reverser("Use bullet points") == "Do not use bullet points"
            assert reverser("Use bullet points") == "Do not use bullet points"
            assert reverser("Be brief") == "Do not be brief"
        assert server.request_count == 2
        assert server.requests[0]["messages"][0] == {"role": "system", "content": RULES}
        with _client(server, tmp_path) as client:  # a new run: served from the disk cache
            assert LLMConstraintReverser(client, RULES)("Be brief") == "Do not be brief"
        assert server.request_count == 2


def test_reverser_retries_identical_or_empty_answers(tmp_path: Path) -> None:
    answers = ["use  BULLET points", "   ", "Avoid bullet points"]
    with FakeChatServer(lambda i, body: Reply(completion(answers[min(i, 2)]))) as server:
        with _client(server, tmp_path) as client:
            assert LLMConstraintReverser(client, RULES)("Use bullet points") == "Avoid bullet points"
        assert server.request_count == 3


def test_reverser_raises_when_model_keeps_echoing(tmp_path: Path) -> None:
    with FakeChatServer(lambda i, body: Reply(completion("Use bullet points"))) as server:
        with _client(server, tmp_path) as client, pytest.raises(JudgeError, match="unchanged"):
            LLMConstraintReverser(client, RULES)("Use bullet points")
        assert server.request_count == 3


def test_reverser_validates_answers_from_any_backend() -> None:
    class Echo:
        def chat(self, messages: list[dict[str, str]], **params: object) -> str:
            return messages[-1]["content"]

    with pytest.raises(ReversalError, match="unchanged"):
        LLMConstraintReverser(Echo(), RULES)("Keep it short")
    with pytest.raises(ValueError, match="rules prompt"):
        LLMConstraintReverser(Echo(), "  ")
