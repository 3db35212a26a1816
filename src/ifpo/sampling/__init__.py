"""Sample N responses per (multi-turn) prompt: HF ``generate``, optional vLLM, a responses file,
or the synthetic writer.

Public API::

    from ifpo.sampling import SampleRequest, build_sampler
    sampler = build_sampler(cfg.sampler, model_cfg=cfg.model)
    responses = sampler.sample([SampleRequest("id-1", messages)], n=4, seed=123)  # [[r1, r2, r3, r4]]
"""

from ifpo.sampling.base import Sampler, SampleRequest, derive_seed
from ifpo.sampling.factory import build_sampler
from ifpo.sampling.file import ResponsesFileSampler, load_responses_file
from ifpo.sampling.hf import HFSampler, SamplingSettings, load_sampling_model
from ifpo.sampling.synthetic_writer import SyntheticWriterSampler

__all__ = [
    "HFSampler",
    "ResponsesFileSampler",
    "SampleRequest",
    "Sampler",
    "SamplingSettings",
    "SyntheticWriterSampler",
    "build_sampler",
    "derive_seed",
    "load_responses_file",
    "load_sampling_model",
]
