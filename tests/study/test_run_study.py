"""The shared entry of the study drivers (experiments/common/stages.run_study)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from omegaconf import OmegaConf

from experiments.common.stages import StageError, run_study


class Recorder:
    names: ClassVar[list[str]] = []

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def run(self) -> None:
        Recorder.names.append(self.cfg.study.name)


class Failing(Recorder):
    def run(self) -> None:
        raise StageError("stage '4_train' failed (exit 3); log: logs/4_train.log")


def test_smoke_runs_get_their_own_name_and_full_runs_keep_theirs():
    Recorder.names = []
    run_study(OmegaConf.create({"study": {"smoke": True, "name": "smol_ifeval"}}), "smol_ifeval", Recorder)
    run_study(OmegaConf.create({"study": {"smoke": False, "name": "smol_ifeval"}}), "smol_ifeval", Recorder)
    run_study(OmegaConf.create({"study": {"smoke": True, "name": "mine"}}), "smol_ifeval", Recorder)
    assert Recorder.names == ["smol_ifeval_smoke", "smol_ifeval", "mine"]


def test_a_failed_stage_exits_1_with_its_message_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_study(OmegaConf.create({"study": {"smoke": False, "name": "mini_if"}}), "mini_if", Failing)
    assert exit_info.value.code == 1
    assert "[mini_if] stage '4_train' failed (exit 3); log: logs/4_train.log" in capsys.readouterr().err
