"""Preference-data builders: RPO reversed pairs, IOPO quadruples and the DPO baseline.

Public API::

    from ifpo.builders import run_build, rpo_pairs, dpo_choice, build_x2
    stats = run_build(builder_cfg, sampler, judge_client=None, seed=0)   # what `python build.py` runs

Pure cores (no I/O) for testing and reuse: :func:`rpo_pairs`, :func:`dpo_choice`, :func:`build_x2`,
:func:`reversal_quad`.
"""

from ifpo.builders.dpo import dpo_choice
from ifpo.builders.iopo import ReversedQuad, build_x2, reversal_quad
from ifpo.builders.items import SourceItem, load_instructions, render_prompt, synthetic_items
from ifpo.builders.judging import ConstraintReverser, JudgeJob, ResponseJudge
from ifpo.builders.resumable import ResumableJsonl
from ifpo.builders.rpo import RPOPair, rpo_pairs
from ifpo.builders.runner import run_build
from ifpo.builders.stats import BuildStats

__all__ = [
    "BuildStats",
    "ConstraintReverser",
    "JudgeJob",
    "RPOPair",
    "ResponseJudge",
    "ResumableJsonl",
    "ReversedQuad",
    "SourceItem",
    "build_x2",
    "dpo_choice",
    "load_instructions",
    "render_prompt",
    "reversal_quad",
    "rpo_pairs",
    "run_build",
    "synthetic_items",
]
