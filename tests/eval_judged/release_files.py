"""Small benchmark files in exactly the released layouts (field names, nesting, id types, file
syntax), built by the tests: the releases' licences do not let us commit their rows.

- TRACE: JSONL, string ids, ``messages`` with the system message, ``constraints`` as one string,
  ``constraints_splits`` / ``constraints_num``, ``input`` ``"NULL"`` when absent.
- SysBench: one JSON array; int ``system_id``; ``prompt_infos`` keyed by the user text with
  numbered ``criteria`` carrying ``criteria_id`` / ``criteria_content`` / ``criteria_type``.
- CFBench: one JSON array indented by 4; int ``idx``; ``criteria`` as ``[text, 主需|次需, type, subtype]``;
  includes the release's odd row (idx 810 has an empty prompt).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def trace_row(item_id: int, description: str, constraints: Sequence[str], task_input: str = "NULL") -> dict:
    numbered = [f"{n}. {c}" for n, c in enumerate(constraints, start=1)]
    text = "\n".join(numbered)
    user = f"{description}\n{text}\n" + ("" if task_input == "NULL" else f"# Inputs:\n{task_input}\n")
    return {
        "id": str(item_id),
        "messages": [SYSTEM, {"role": "user", "content": user}],
        "type": "trace",
        "description": description,
        "constraints": text,
        "input": task_input,
        "constraints_num": len(numbered),
        "constraints_splits": numbered,
        "levels2": ["包含约束"] * len(numbered),
        "category": "trace1.0",
    }


def write_trace(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def sysbench_row(
    system_id: int, system_prompt: str, turns: Sequence[tuple[str, str, Sequence[tuple[str, str]]]]
) -> dict:
    """``turns``: (user text, reference answer, [(criterion, type), ...]) per turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    infos = {}
    for n, (user, reference, criteria) in enumerate(turns):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reference}]
        infos[user] = {
            "alignment": "align" if n % 2 == 0 else "misalign",
            "criteria": {
                str(k): {"criteria_id": k, "criteria_content": text, "criteria_type": kind}
                for k, (text, kind) in enumerate(criteria, start=1)
            },
        }
    return {
        "system_id": system_id,
        "system_prompt": system_prompt,
        "messages": messages,
        "prompt_infos": infos,
        "rounds_related": True,
        "领域": "测试",
        "场景": "测试",
    }


def write_json_array(path: Path, rows: Sequence[dict], indent: int) -> Path:
    path.write_text(json.dumps(list(rows), ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def cfbench_row(
    idx: int, prompt: str, criteria: Sequence[tuple[str, str]], split: str = "easy", gold: str = ""
) -> dict:
    return {
        "idx": idx,
        "prompt": prompt,
        "isanswer": "否",
        "gold": gold,
        "doamin": "测试",
        "scenario": "测试",
        "source": "tob",
        "split": split,
        "criteria": [[text, need, "内容约束", "内容约束"] for text, need in criteria],
    }


# The release's item 810: an empty prompt and one secondary criterion.
CFBENCH_EMPTY_PROMPT_ROW = {
    "idx": 810,
    "prompt": "",
    "isanswer": "",
    "gold": "",
    "doamin": "Couplet",
    "scenario": "Couplet",
    "source": "nlp_firefly",
    "split": "hard",
    "criteria": [["上联字数7个字 'couplet'", "次需", "不合理约束", "不合理约束"]],
}
