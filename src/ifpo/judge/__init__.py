"""LLM-as-judge: an OpenAI-compatible client with retries, caching and clean secrets.

Public API::

    from ifpo.judge import JudgeConfig, JudgeClient, JudgeRequest
    with JudgeClient(JudgeConfig(base_url=..., model=...)) as client:
        judgements = client.judge_many([JudgeRequest(instruction, response, constraints)])
"""

from ifpo.judge.cache import ResponseCache, request_key
from ifpo.judge.client import CallStats, JudgeClient
from ifpo.judge.config import JudgeConfig
from ifpo.judge.errors import JudgeError
from ifpo.judge.reverser import LLMConstraintReverser, ReversalError
from ifpo.judge.verdicts import (
    ConstraintJudgement,
    JudgeRequest,
    MalformedAnswer,
    build_judge_messages,
    parse_verdicts,
)

__all__ = [
    "CallStats",
    "ConstraintJudgement",
    "JudgeClient",
    "JudgeConfig",
    "JudgeError",
    "JudgeRequest",
    "LLMConstraintReverser",
    "MalformedAnswer",
    "ResponseCache",
    "ReversalError",
    "build_judge_messages",
    "parse_verdicts",
    "request_key",
]
