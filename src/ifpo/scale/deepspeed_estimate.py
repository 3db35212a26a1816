"""DeepSpeed's own ZeRO-3 model-state estimate for an :class:`ArchSpec`, as a second opinion.

DeepSpeed's ``estimate_zero3_model_states_mem_needs`` models full fine-tuning only, with
fp16/bf16 params (2 B) + fp32 gradients (4 B) + fp32 master/m/v (12 B) = 18 B/param, plus
4 B per largest-layer param for the gathered weights and grads. The planner's default keeps
ZeRO-3's partitioned gradients in bf16 (16 B/param), so it is 2 B/param below DeepSpeed on
GPU without offload; with ``grad_bytes=4`` the two agree exactly (tested). It ignores the
reference model, activations and LoRA, which is why the planner does not just call it.
Imported lazily: importing deepspeed is slow and logs accelerator warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ifpo.models.architectures import GIB, ArchSpec

if TYPE_CHECKING:  # annotation only: planner imports this module (lazily) for --deepspeed-check
    from ifpo.scale.planner import PlanSettings


@dataclass(frozen=True)
class DeepSpeedEstimate:
    gpu_gib: float
    cpu_gib_per_node: float
    largest_layer_gib: float


def deepspeed_zero3_model_states(
    arch: ArchSpec,
    settings: PlanSettings,
    zero_init: bool = True,
    additional_buffer_factor: float | None = None,
) -> DeepSpeedEstimate:
    """Call DeepSpeed's estimator with the architecture's exact counts and the settings' cluster."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    factor = settings.cpu_buffer_factor if additional_buffer_factor is None else additional_buffer_factor
    cpu, gpu, largest = estimate_zero3_model_states_mem_needs(
        total_params=arch.total_params(),
        largest_layer_params=arch.largest_module_params(),
        num_gpus_per_node=settings.gpus_per_node,
        num_nodes=settings.nodes,
        cpu_offload=settings.offload_optimizer == "cpu",
        cpu_offload_params=settings.offload_params == "cpu",
        zero_init=zero_init,
        additional_buffer_factor=factor,
    )
    return DeepSpeedEstimate(gpu_gib=gpu / GIB, cpu_gib_per_node=cpu / GIB, largest_layer_gib=largest / GIB)
