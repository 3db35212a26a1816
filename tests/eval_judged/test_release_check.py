"""release_check: our scorers over the authors' own released judgements, in their file layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.release_check import cfbench, sysbench


def test_cfbench_agreement_with_the_authors_per_item_metrics(tmp_path: Path) -> None:
    criteria = [["是一首诗", "主需", "t", "t"], ["不超过四行", "次需", "t", "t"]]
    tasks = [
        {  # strict parse, PSR 0.5 + 0.5 * 0 = 0.5 -> 0
            "idx": 0,
            "prompt": "p",
            "criteria": criteria,
            "judge_response": "是一首诗\t1\n\n不超过四行\t0",
            "judge_parsing": "1",
            "judge_metric": {"CSR": 0.5, "ISR": 0, "PSR": 0},
        },
        {  # fallback parse: single newlines, only the 1 survives
            "idx": 1,
            "prompt": "p",
            "criteria": criteria,
            "judge_response": "是一首诗\t1\n不超过四行\t0",
            "judge_parsing": "0",
            "judge_metric": {"CSR": 1.0, "ISR": 1, "PSR": 1},
        },
        {  # the authors' flag says strict, ours says nothing parsed: a disagreement is counted
            "idx": 2,
            "prompt": "p",
            "criteria": criteria,
            "judge_response": "无法评估",
            "judge_parsing": "1",
            "judge_metric": {"CSR": 0.0, "ISR": 0, "PSR": 0},
        },
    ]
    path = tmp_path / "gpt4o_eval.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=4), encoding="utf-8")
    assert cfbench(path) == {"items": 3, "agree": 2}


def test_sysbench_rescoring_of_an_analysis_sheet(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl", reason="reading the authors' .xlsx needs openpyxl")
    rows = []
    for system_id, usable in ((1, [1, 1, 0, 1, 1]), (2, [0, 1, 1, 1, 1])):
        for turn, ok in enumerate(usable, start=1):
            rows.append(
                {
                    "system_id": system_id,
                    "alignment": "align",
                    "round_index": turn,
                    "prompt": f"q{turn}",
                    "评判细则": "1. says hi | 风格约束\n2. is short | 格式约束",
                    "评判结果": "1. 风格约束 | 是\n2. 格式约束 | " + ("是" if ok else "否"),
                    "是否可用": ok,
                }
            )
    path = tmp_path / "m_analysis.xlsx"
    sheet = pd.DataFrame(
        [[20, 20], [18, 18], [90.0, 90.0]],
        index=["约束总量", "遵循数量", "遵循率"],
        columns=["格式约束", "total"],
    )
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame(rows).to_excel(writer, sheet_name="详情", index=False)
        sheet.to_excel(writer, sheet_name="不同约束类型遵循")
    result = sysbench(path)
    assert result["CSR"] == pytest.approx(90.0) and result["CSR_authors"] == 90.0
    assert result["ISR"] == pytest.approx(80.0) == result["ISR_authors"]
    assert result["SSR"] == pytest.approx(100 * (2 + 0) / 10) == result["SSR_authors"]
