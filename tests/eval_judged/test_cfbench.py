"""CFBench: the released layout (empty-prompt row included), the authors' judge prompt, strict and
fallback parsing, per-item rounding, CSR/ISR/PSR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.cfbench import (
    PRIMARY as P,
)
from ifpo.eval.cfbench import (
    SECONDARY as S,
)
from ifpo.eval.cfbench import (
    item_scores,
    judge_prompt,
    judge_record,
    load_cfbench,
    parse_fallback,
    parse_strict,
    score_cfbench,
)
from ifpo.eval.judged import BenchmarkFormatError
from tests.eval_judged.official_judges import cfbench_answer
from tests.eval_judged.release_files import CFBENCH_EMPTY_PROMPT_ROW, cfbench_row, write_json_array


def strict(*scores: int) -> dict:
    return {"scores": list(scores), "parsing": "1"}


@pytest.mark.parametrize(
    "priorities, scores, expected",
    [
        ([P, P], [1, 1], 1),  # all primary, all pass
        ([P, S], [0, 1], 0),  # a primary fails
        ([P, S, S], [1, 1, 0], 0),  # 0.5 + 0.5 * 0.5 = 0.75
        ([P, S, S, S, S, S], [1, 1, 1, 1, 0, 0], 0),  # 0.5 + 0.5 * 0.6 = 0.8, not > 0.8
        ([P, S, S, S, S], [1, 1, 1, 1, 0], 1),  # 0.5 + 0.5 * 0.75
        ([P, S, S, S], [1, 1, 1, 0], 1),  # 0.5 + 0.5 * round(2/3, 2) = 0.835
        ([S] * 5, [1, 1, 1, 1, 0], 0),  # all secondary: CSR 0.8 is not > 0.8
        ([S] * 6, [1, 1, 1, 1, 1, 0], 1),  # all secondary: CSR round(5/6, 2) = 0.83
    ],
)
def test_item_psr_rule(priorities: list[str], scores: list[int], expected: int) -> None:
    assert item_scores(strict(*scores), priorities)["PSR"] == expected


def test_per_item_rounding_and_fallback_flags() -> None:
    assert item_scores(strict(1, 1, 0), [P, S, S]) == {"CSR": 0.67, "ISR": 0.0, "PSR": 0.0}
    # Fallback parse ("0"): only the 1s survive, so CSR is 1 and PSR follows CSR > 0.8.
    assert item_scores({"scores": [1, 1], "parsing": "0"}, [P, S, S]) == {"CSR": 1.0, "ISR": 1.0, "PSR": 1.0}
    # Nothing parsed ("-1"): zero everywhere.
    assert item_scores({"scores": [0], "parsing": "-1"}, [P, S]) == {"CSR": 0.0, "ISR": 0.0, "PSR": 0.0}


def test_strict_and_fallback_parsing() -> None:
    criteria = ["是一首诗", "不超过四行"]
    assert parse_strict("是一首诗\t1\n\n不超过四行\t0", criteria) == [1, 0]
    for bad in (
        "是一首诗\t1\n不超过四行\t0",
        "是一首诗\t1\n\n四行\t0",
        "是一首诗\t1\n\n不超过四行\t0.5",
        "是一首诗 1\n\n不超过四行\t0",
    ):
        with pytest.raises(ValueError):
            parse_strict(bad, criteria)
    # The authors' fallback: single lines "text<TAB>score", keeping the 1s (their `if float(score)` drops 0s).
    assert parse_fallback("是一首诗\t1\n不超过四行\t0\n额外\t1\n坏\tx") == [1, 1]
    item = load_cfbench_item(criteria)
    assert judge_record(item, "是一首诗\t1\n不超过四行\t0", None, "p") == {
        "scores": [1],
        "parsing": "0",
        "raw": "是一首诗\t1\n不超过四行\t0",
        "error": "p",
    }
    assert judge_record(item, "无法评估", None, "p")["parsing"] == "-1"


def load_cfbench_item(criteria: list[str]):
    from ifpo.eval.cfbench import CFBenchItem

    return CFBenchItem(0, "p", tuple(criteria), (P,) * len(criteria))


def test_scores_are_rounded_item_means_overall_and_per_split(tmp_path: Path) -> None:
    rows = [
        cfbench_row(0, "a", [("c", P), ("c", S), ("c", S)], "easy"),
        cfbench_row(1, "b", [("c", P), ("c", P)], "easy"),
        cfbench_row(2, "c", [("c", S)] * 6, "hard"),
        cfbench_row(3, "d", [("c", P), ("c", S)], "hard"),
    ]
    items = load_cfbench(write_json_array(tmp_path / "cfbench_data.json", rows, indent=4))
    records = [strict(1, 1, 0), strict(1, 1), strict(1, 1, 1, 1, 1, 0), strict(0, 1)]
    metrics = score_cfbench(items, records)
    # per item CSR 0.67, 1, 0.83, 0.5; ISR 0, 1, 0, 0; PSR 0, 1, 1, 0
    assert metrics["CSR_exact"] == pytest.approx((0.67 + 1 + 0.83 + 0.5) / 4)
    assert (metrics["CSR"], metrics["ISR"], metrics["PSR"]) == (0.75, 0.25, 0.5)
    assert (metrics["CSR_easy"], metrics["PSR_easy"], metrics["CSR_hard"], metrics["ISR_hard"]) == (
        0.84,
        0.5,
        0.66,
        0.0,
    )  # numpy rounds mean 0.835 up, as the authors
    assert (metrics["n"], metrics["n_fallback_parse"], metrics["n_unparsed"], metrics["n_failed"]) == (
        4,
        0,
        0,
        0,
    )


def test_unreachable_judge_raises_or_is_counted(tmp_path: Path) -> None:
    items = load_cfbench(
        write_json_array(tmp_path / "c.json", [cfbench_row(0, "a", [("c", P)])] * 2, indent=4)
    )
    with pytest.raises(ValueError, match="1 of 2 judgement"):
        score_cfbench(items, [strict(1), None])
    metrics = score_cfbench(items, [strict(1), None], on_failed="skip")
    assert (metrics["PSR"], metrics["n"], metrics["n_failed"]) == (1.0, 1, 1)


def test_loads_the_release_with_its_empty_prompt_item(tmp_path: Path) -> None:
    rows = [
        cfbench_row(0, "写一首诗", [("是一首诗", P), ("不超过四行", S)]),
        CFBENCH_EMPTY_PROMPT_ROW,
        cfbench_row(1, "Say hi", [("greets", P)], "hard", gold="hi"),
    ]
    items = load_cfbench(write_json_array(tmp_path / "cfbench_data.json", rows, indent=4))
    assert [i.id for i in items] == [0, 810, 1]
    assert items[0].criteria == ("是一首诗", "不超过四行") and items[0].priorities == (P, S)
    assert items[1].prompt == "" and items[1].split == "hard"
    assert (items[2].gold, items[2].split) == ("hi", "hard")


def test_judge_prompt_is_the_authors_template(tmp_path: Path) -> None:
    rows = [cfbench_row(0, "写一首诗", [("是一首诗", P), ("不超过四行", S)], gold="床前明月光")]
    item = load_cfbench(write_json_array(tmp_path / "c.json", rows, indent=4))[0]
    prompt = judge_prompt(item, "一首诗")
    assert prompt.startswith("\n我想让你扮演一个质量评估器的角色。")
    assert (
        '行与行之间使用"\n\n"切割' in prompt and "用'\t'分割" in prompt
    )  # real newlines/tabs, as the f-string
    assert "[样例1]:" in prompt and "[样例2]:" in prompt
    assert prompt.endswith(
        "[用户指令]: 写一首诗\n\n[参考答案]: 床前明月光\n\n[模型答案]: 一首诗\n\n"
        "[评估标准]: 是一首诗\n\n不超过四行\n\n[你的评估]: \n"
    )
    answer = cfbench_answer({"messages": [{"role": "user", "content": prompt}]})
    assert parse_strict(answer, item.criteria) == [1, 1]


def test_bad_row_names_file_line_and_field(tmp_path: Path) -> None:
    good, bad = cfbench_row(0, "ok", [("c", P)]), cfbench_row(1, "ok", [("c", P)])
    bad["criteria"][0][1] = "primary"  # the release only has 主需 / 次需
    path = write_json_array(tmp_path / "cf.json", [good, bad], indent=2)
    bad_line = [n + 1 for n, line in enumerate(path.read_text().splitlines()) if line == "  {"][1]
    with pytest.raises(BenchmarkFormatError) as info:
        load_cfbench(path)
    assert str(info.value).startswith(f"{path}:{bad_line}: field 'criteria[0][1]'")
    loaded = load_cfbench(path, on_bad_row="skip")
    assert [i.id for i in loaded] == [0] and len(loaded.skipped) == 1


def test_missing_field_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "cf.jsonl"
    lines = [json.dumps(cfbench_row(0, "ok", [("c", P)])), "", json.dumps({"idx": 1, "criteria": [["c", P]]})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"cf.jsonl:3: field 'prompt': missing"):
        load_cfbench(path)
