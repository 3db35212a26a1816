"""CFBench (Zhang et al., 2024, arXiv 2408.01122): CSR, ISR and PSR from judged checklists.

The released ``data/cfbench_data.json`` (PKU-Baichuan-MLSystemLab/CFBench) is one JSON array of
1,000 objects:

- ``idx``       int    item id (0..999)
- ``prompt``    str    the instruction given to the model; item 810's is empty, and is kept:
                       the official inference sends it as it is
- ``criteria``  list   ``[text, "主需"|"次需", type, subtype]`` (primary / secondary need)
- ``gold``      str    reference answer, ``""`` when none
- ``split``     str    ``"easy"`` / ``"hard"`` (500 each)
- ``isanswer``, ``doamin`` (sic), ``scenario``, ``source``   kept, not used

Judging (``code/evalaute.py``): one call per item with the authors' Chinese prompt (two worked
examples) listing the criteria joined by blank lines; the judge answers one ``criterion\\t0/1``
line per criterion. Strict parse: blocks split on blank lines, as many as criteria, each text
equal to its criterion and a 0/1 score. An answer that fails is asked again; when no answer
parses, the official fallback reads single ``text\\tscore`` lines and keeps those scoring 1
(``judge_parsing`` "0": ISR/PSR then follow from CSR), and with none at all the item scores 0
everywhere (``judge_parsing`` "-1"). Judge: ``gpt-4o`` at temperature 0.01.

Scores per item, rounded as the authors do: CSR = round(mean, 2); ISR = 1 iff CSR == 1;
PSR = 0 if a primary criterion fails, 1 if all are primary, CSR > 0.8 if all are secondary,
else 0.5 + 0.5 * round(mean(secondary), 2) > 0.8. Benchmark scores are the item means rounded to
2 places, overall and per split (``CSR_easy`` ...); ``*_exact`` keep the unrounded means.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ifpo.eval.judged import LoadedItems, OnBadRow, OnFailed, load_rows, require, split_failed

PRIMARY, SECONDARY = "主需", "次需"


@dataclass(frozen=True)
class CFBenchItem:
    id: int | str
    prompt: str
    criteria: tuple[str, ...]
    priorities: tuple[str, ...]
    gold: str = ""
    split: str | None = None


def _parse_row(row: dict[str, Any], error: Callable[[str, str], Exception]) -> CFBenchItem:
    item_id = require(row, "idx", (int, str), error)
    prompt = require(row, "prompt", str, error)  # may be empty: item 810 of the release is
    raw = require(row, "criteria", list, error)
    if not raw:
        raise error("criteria", "is empty")
    texts, priorities = [], []
    for n, entry in enumerate(raw):
        if not isinstance(entry, list) or len(entry) < 2:
            raise error(f"criteria[{n}]", "expected [text, priority, ...]")
        text, priority = entry[0], entry[1]
        if not isinstance(text, str) or not text.strip():
            raise error(f"criteria[{n}][0]", "criterion text must be a non-empty string")
        if priority not in (PRIMARY, SECONDARY):
            raise error(f"criteria[{n}][1]", f"unknown priority {priority!r} (expected 主需 or 次需)")
        texts.append(text)
        priorities.append(priority)
    gold = row.get("gold", "")
    if not isinstance(gold, str):
        raise error("gold", f"expected str, got {type(gold).__name__}")
    split = row.get("split")
    if split is not None and not isinstance(split, str):
        raise error("split", f"expected str, got {type(split).__name__}")
    return CFBenchItem(item_id, prompt, tuple(texts), tuple(priorities), gold, split)


def load_cfbench(path: str | os.PathLike[str], *, on_bad_row: OnBadRow = "raise") -> LoadedItems[CFBenchItem]:
    """Items of a CFBench file in the released layout (module docstring)."""
    return load_rows(path, _parse_row, on_bad_row=on_bad_row)


# ------------------------------------------------------------------------------ judge prompt
# The authors' prompt (code/evalaute.py, gpt_judge_for_cfbench), kept in its language and
# layout: it is the benchmark's scoring instrument.
_TEMPLATE = """
我想让你扮演一个质量评估器的角色。你需要结合 [用户指令],[参考答案],[模型答案],[考察点]对于模型答案进行评估,按照0或1打分.
具体而言:[参考答案]和[模型答案]都是对[用户指令]的回复,[考察点]中定义了模型答案应该满足、需要被考察的点。你需要严格按照[考察点]中的每条考察点，对[于模型答案]进行打分。如果完全满足则为1，如果不满足则为0.
需要注意: [参考答案]如果为空,则[考察点]的满足不考虑[参考答案].
输出格式: 1.严格按照[考察点]中的考察点的顺序,每行输出一条，行与行之间使用"\n\n"切割;  
        2.每行首先输出[考察点]中对应内容，然后用'\t'分割，在后面输出对应[评估打分],0或1。 
        3.请直接输出你的评估,不要输出其他任何内容。

可参考下面样例。

[样例1]:
    [用户指令]: 请对给定的句子\"我爱吃苹果\"做以下编辑步骤\n\n1.将句子中的“我”改成“小明”。\n\n只输出编辑后的句子。
    
    [参考答案]: "小明爱吃苹果"
    
    [模型答案]: "好的，修改后为：小明爱吃苹果"

    [评估标准]:
    和参考答案结果一致，替换准确\n\n不存在其他冗余信息，引号可忽略
    
    [你的评估]: 
    和参考答案结果一致，替换准确\t1\n\n不存在其他冗余信息，引号可忽略\t0

[样例2]:
    [用户指令]: 给我生成一些唐代诗人李白的诗句，主题是友情。输出结果应为JSON格式，包含两个key："诗句"和"诗名"。提供三组不同的诗句，每个诗句控制在5个字，一组10个字。

    [参考答案]: ""
    
    [模型答案]: '"诗句": ["诗句": "明月照友心", "诗名": "友情如月","诗句": "高山流水情", "诗名": "知音难觅","诗句": "酒逢知己饮", "诗名": "醉卧沙场笑"]'

    [评估标准]: 
    生成唐代诗人李白的诗句。\n\n诗句主题是友情。\n\n输出结果应为JSON格式，JSON格式包含两个key：""诗句""和""诗名""。\n\n提供三组不同的诗句。\n\n每个诗句控制在5个字，一组10个字。

    [你的评估]: 
    生成唐代诗人李白的诗句。\t0\n\n诗句主题是友情。\t1\n\n输出结果应为JSON格式，JSON格式包含两个key：""诗句""和""诗名""。\t0\n\n提供三组不同的诗句。\t1\n\n每个诗句控制在5个字，一组10个字。\t0

[用户指令]: {prompt}

[参考答案]: {gold}

[模型答案]: {response}

[评估标准]: {criteria}

[你的评估]: 
"""  # noqa: E501 (the authors' judge prompt, verbatim)


def judge_prompt(item: CFBenchItem, response: str) -> str:
    """The authors' judge prompt for one answer."""
    return _TEMPLATE.format(
        prompt=item.prompt, gold=item.gold, response=response, criteria="\n\n".join(item.criteria)
    )


def parse_strict(answer: str, criteria: Sequence[str]) -> list[int]:
    """One 0/1 per criterion, or ValueError -- the authors' ``_get_judge_scores`` checks."""
    blocks = answer.split("\n\n")
    if len(blocks) != len(criteria):
        raise ValueError(f"{len(blocks)} judged blocks for {len(criteria)} criteria")
    scores = []
    for n, (block, criterion) in enumerate(zip(blocks, criteria)):
        parts = block.split("\t")
        if len(parts) != 2:
            raise ValueError(f"block {n + 1} is not 'criterion<TAB>score'")
        if parts[0] != criterion:
            raise ValueError(f"block {n + 1} names another criterion")
        try:
            score = float(parts[1])
        except ValueError:
            raise ValueError(f"block {n + 1} score {parts[1]!r} is not a number") from None
        if score not in (0, 1):
            raise ValueError(f"block {n + 1} score {score} is not 0 or 1")
        scores.append(int(score))
    return scores


def parse_fallback(answer: str) -> list[int]:
    """The authors' ``_get_judge_scores_guaranteed``: lines ``text<TAB>score`` scoring 1 (0s are dropped).

    Their ``if float(score) and ...`` skips 0 scores (falsy), so only 1s survive; a score that is
    not a number raises there and is skipped here.
    """
    scores = []
    for line in answer.split("\n"):
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        try:
            value = float(parts[1])
        except ValueError:
            continue
        if value and value in (0, 1):
            scores.append(int(value))
    return scores


def judge_record(
    item: CFBenchItem, raw: str, strict: list[int] | None, problem: str | None
) -> dict[str, Any]:
    """Scores and the official ``judge_parsing`` flag ("1" strict, "0" fallback, "-1" nothing parsed)."""
    if strict is not None:
        return {"scores": strict, "parsing": "1", "raw": raw, "error": None}
    fallback = parse_fallback(raw)
    if fallback:
        return {"scores": fallback, "parsing": "0", "raw": raw, "error": problem}
    return {"scores": [0], "parsing": "-1", "raw": raw, "error": problem}


def item_scores(record: Mapping[str, Any], priorities: Sequence[str]) -> dict[str, float]:
    """CSR/ISR/PSR of one item with the authors' per-item rounding (module docstring)."""
    scores = [float(s) for s in record["scores"]]
    csr = float(np.round(np.mean(scores), 2))
    isr = 0 if csr < 1 else 1
    parsing = record["parsing"]
    if parsing == "-1":
        psr = 0
    elif parsing == "0":
        psr = 1 if csr > 0.8 else 0
    elif parsing == "1":
        if len(scores) != len(priorities):
            raise ValueError(f"{len(scores)} scores for {len(priorities)} criteria")
        primary = [s for s, p in zip(scores, priorities) if p == PRIMARY]
        secondary = [s for s, p in zip(scores, priorities) if p == SECONDARY]
        if 0 in primary:
            psr = 0
        elif not primary:
            psr = 1 if csr > 0.8 else 0
        elif not secondary:
            psr = 1
        else:
            psr = 1 if 0.5 + 0.5 * float(np.round(np.mean(secondary), 2)) > 0.8 else 0
    else:
        raise ValueError(f"unknown judge_parsing flag {parsing!r}")
    return {"CSR": csr, "ISR": float(isr), "PSR": float(psr)}


def _means(per_item: Sequence[Mapping[str, float]], suffix: str = "") -> dict[str, float]:
    result: dict[str, float] = {}
    for key in ("CSR", "ISR", "PSR"):
        exact = float(np.mean([m[key] for m in per_item]))
        result[f"{key}{suffix}"] = float(np.round(exact, 2))
        result[f"{key}{suffix}_exact"] = exact
    return result


def score_cfbench(
    items: Sequence[CFBenchItem],
    records: Sequence[Mapping[str, Any] | None],
    *,
    on_failed: OnFailed = "raise",
) -> dict[str, float | int]:
    """CSR/ISR/PSR overall and per split; a record of None (judge unreachable) is a failure."""
    if len(items) != len(records):
        raise ValueError(f"CFBench: {len(records)} judgements for {len(items)} items")
    pairs = list(zip(items, records))
    usable = split_failed(pairs, lambda p: p[1] is not None and "scores" in p[1], on_failed, "CFBench")
    if not usable:
        raise ValueError("CFBench: no usable judgements to score")
    per_item = [(item, item_scores(record, item.priorities)) for item, record in usable]  # type: ignore[arg-type]
    metrics: dict[str, float | int] = _means([m for _, m in per_item])
    for split in sorted({item.split for item, _ in per_item if item.split}):
        metrics.update(_means([m for item, m in per_item if item.split == split], f"_{split}"))
    parsing = [record["parsing"] for _, record in usable]  # type: ignore[index]
    metrics.update(
        {
            "n": len(usable),
            "n_fallback_parse": parsing.count("0"),
            "n_unparsed": parsing.count("-1"),
            "n_failed": len(pairs) - len(usable),
        }
    )
    return metrics
