"""Deterministic stand-ins for GPT-4o that read the *official* judge prompts and answer in the
official formats, so the judge-scored benchmarks run end to end against a loopback server.

Each grades a criterion as met iff every 'single-quoted' word in it occurs in the response,
which keeps the expected scores hand-computable. They parse the prompts the way a reader of
the official templates would: if a template changes, these fail loudly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fake_chat_server import Reply, completion

_QUOTED = re.compile(r"'([^']+)'")


def met(criterion: str, response: str) -> bool:
    return all(word in response for word in _QUOTED.findall(criterion))


def _between(text: str, start: str, end: str) -> str:
    return text.rsplit(start, 1)[1].split(end, 1)[0]


def trace_answer(body: dict[str, Any]) -> str:
    """The TRACE template's answer: explanation, Fine Grained Score JSON, Constraints Overall Score."""
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    prompt = body["messages"][-1]["content"]
    assert prompt.startswith("[System]\nYou are a fair judge") and prompt.endswith("—OUTPUT—")
    constraints = _between(prompt, "< constraints >:\n", "\n< response >:\n").split("\n")
    response = _between(prompt, "\n< response >:\n", "\n\n—OUTPUT—")
    scores = {c: 10 if met(c, response) else 0 for c in constraints}
    overall = round(sum(scores.values()) / len(scores))
    lines = [f"{n}. {c}: score {s}" for n, (c, s) in enumerate(scores.items(), start=1)]
    return (
        "Explanation: \n"
        + "\n".join(lines)
        + f"\nFine Grained Score: {json.dumps([scores], ensure_ascii=False)}"
        f"\nConstraints Overall Score: [[{overall}]]"
    )


def trace_judge(body: dict[str, Any]) -> Reply:
    return Reply(completion(trace_answer(body)))


def sysbench_answer(body: dict[str, Any]) -> str:
    """SysBench's answer: a fenced dict literal with 评判理由 and 评判结果 (bare integer keys, as GPT-4o
    writes)."""
    prompt = body["messages"][-1]["content"]
    current = prompt.split("## 当前待评估的对话轮次", 1)[1]
    answer = current.split("<role:>\nassistant\n</role>\n<content>\n", 1)[1].split("\n</content>", 1)[0]
    criteria = _between(prompt, "<评判细则>\n", "\n</评判细则>").split("\n")
    verdicts = []
    for line in criteria:
        number, rest = line.split(". ", 1)
        content = rest.rsplit(" | ", 1)[0]
        verdicts.append(f'    {number}: "{"是" if met(content, answer) else "否"}"')
    return '```json\n{\n  "评判理由": "逐条核对",\n  "评判结果": {\n' + ",\n".join(verdicts) + "\n  }\n}\n```"


def sysbench_judge(body: dict[str, Any]) -> Reply:
    return Reply(completion(sysbench_answer(body)))


def cfbench_answer(body: dict[str, Any]) -> str:
    """CFBench's answer: one ``criterion<TAB>0/1`` block per criterion, blocks split by blank lines."""
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    prompt = body["messages"][0]["content"]
    response = _between(prompt, "\n[模型答案]: ", "\n\n[评估标准]: ")
    criteria = _between(prompt, "\n[评估标准]: ", "\n\n[你的评估]: ").split("\n\n")
    return "\n\n".join(f"{c}\t{int(met(c, response))}" for c in criteria)


def cfbench_judge(body: dict[str, Any]) -> Reply:
    return Reply(completion(cfbench_answer(body)))
