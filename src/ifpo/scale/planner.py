"""Per-GPU memory planner for preference optimization (DPO / IOPO / RPO) under DDP or ZeRO-3.

Why hand-written: DeepSpeed's ``estimate_zero3_model_states_mem_needs`` covers only full
fine-tuning model states (fp16 params + fp32 grads + fp32 Adam, 18 bytes/param). Preference
training also needs a reference model, LoRA (frozen base), activations and the log-prob
workspace, so the planner models those itself and is cross-checked against DeepSpeed's
estimator in the tests (see :mod:`ifpo.scale.deepspeed_estimate`).

Byte accounting (P = all params, T = trainable params, N = GPUs sharing ZeRO-3 state, L = the
largest single module, ``param_bytes``=2 for bf16, ``optimizer_bytes``=12 for fp32 master+m+v)::

    parameters   param_bytes * P / N            (0 on GPU with offload_params=cpu)
    gradients    grad_bytes * T / N             (0 on GPU with offload_optimizer=cpu)
    optimizer    optimizer_bytes * T / N        (0 on GPU with offload_optimizer=cpu)
    gather       ZeRO-3 only: L gathered in bf16 plus its bf16 grads when trained (4*L, as DeepSpeed)
    live params  ZeRO-3 only: param_bytes * (min(stage3_max_live_parameters, params run) - L)
    reference    copy: param_bytes * P / N; adapter/precomputed/none: 0
    activations  see :func:`activation_bytes`
    logprobs     see :func:`logprob_workspace_bytes`
    LM-head grad full fine-tuning: 4 * vocab * hidden (the chunked backward's fp32 weight gradient)
    overhead     CUDA context + NCCL buffers + allocator slack, a constant
    host RAM     per node: offloaded states + param_bytes * P on rank 0 (from_pretrained, export)
                 + a per-rank process allowance; ``slurm_mem_gb`` is what SLURM should grant

With ZeRO stage 0 (plain DDP) N is 1 for every model-state term. Offloaded optimizer states
live on CPU with fp32 gradients (DeepSpeedCPUAdam steps in fp32), offloaded params in bf16.
Tensor/pipeline parallelism is not modelled.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from dataclasses import dataclass, field, replace
from typing import Literal

from ifpo.models.architectures import ALL_LINEAR, GIB, PRESETS, ArchSpec, get_arch

#: Gradients handed to DeepSpeedCPUAdam are fp32, whatever the GPU gradient dtype.
OFFLOADED_GRAD_BYTES = 4
#: Sequences per forward for one training example, by objective (pairs: chosen+rejected).
SEQUENCES_PER_EXAMPLE: dict[str, int] = {"sft": 1, "dpo": 2, "rpo": 2, "iopo": 4}

ReferenceMode = Literal["copy", "adapter", "precomputed", "none"]
OffloadDevice = Literal["none", "cpu"]


def sequences_per_forward(examples: int, loss: str) -> int:
    """Micro-batch in sequences: DPO/RPO pairs count twice, IOPO quadruples four times."""
    if loss not in SEQUENCES_PER_EXAMPLE:
        raise ValueError(f"unknown loss {loss!r}; choose from {sorted(SEQUENCES_PER_EXAMPLE)}")
    return examples * SEQUENCES_PER_EXAMPLE[loss]


@dataclass(frozen=True)
class PlanSettings:
    """Cluster, precision, parallelism and batch shape to plan for (one micro-batch per GPU)."""

    nodes: int = 1
    gpus_per_node: int = 8
    gpu_memory_gib: float = 80.0
    zero_stage: int = 3
    offload_optimizer: OffloadDevice = "none"
    offload_params: OffloadDevice = "none"
    reference: ReferenceMode = "copy"
    lora_rank: int = 0  # 0 = full fine-tuning
    lora_targets: tuple[str, ...] = ALL_LINEAR
    micro_batch: int = 2  # sequences per forward (see sequences_per_forward)
    seq_len: int = 4096
    gradient_checkpointing: bool = True
    flash_attention: bool = True
    logprob_chunk_tokens: int | None = 1024  # None = naive full-sequence logits
    param_bytes: int = 2  # bf16 weights
    activation_bytes: int = 2  # bf16 activations (4 when the model computes in fp32)
    grad_bytes: int = 2  # bf16 gradients (DeepSpeed's estimator assumes 4)
    optimizer_bytes: int = 12  # fp32 master weights + Adam m + Adam v
    overhead_gib: float = 3.0
    cpu_memory_gib: float | None = None  # per node; None = do not check CPU memory
    cpu_buffer_factor: float = 1.5  # DeepSpeed's additional_buffer_factor for pinned buffers
    host_overhead_gib_per_rank: float = 4.0
    # DeepSpeed's stage3_max_live_parameters (elements)  # per training process: Python, torch/CUDA host
    # state, loader workers
    max_live_parameters: int = 1_000_000_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))  # Hydra passes lists
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError("nodes and gpus_per_node must be >= 1")
        if self.zero_stage not in (0, 3):
            raise ValueError(f"zero_stage must be 0 (DDP) or 3, got {self.zero_stage}")
        for name in ("offload_optimizer", "offload_params"):
            if getattr(self, name) not in ("none", "cpu"):
                raise ValueError(f"{name} must be 'none' or 'cpu'")
        if self.zero_stage == 0 and (self.offload_optimizer == "cpu" or self.offload_params == "cpu"):
            raise ValueError("CPU offload needs ZeRO stage 3 in this planner")
        if self.offload_params == "cpu" and self.offload_optimizer != "cpu":
            raise ValueError(
                "offload_params=cpu requires offload_optimizer=cpu (DeepSpeed's supported combination)"
            )
        if self.reference not in ("copy", "adapter", "precomputed", "none"):
            raise ValueError(f"unknown reference mode {self.reference!r}")
        if self.reference == "adapter" and self.lora_rank <= 0:
            raise ValueError("reference='adapter' (disable the LoRA adapter) needs lora_rank > 0")
        if self.micro_batch < 1 or self.seq_len < 1:
            raise ValueError("micro_batch and seq_len must be >= 1")
        if self.logprob_chunk_tokens is not None and self.logprob_chunk_tokens < 1:
            raise ValueError("logprob_chunk_tokens must be >= 1 or None")

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def shards(self) -> int:
        """How many GPUs split the model states: all of them under ZeRO-3, none under DDP."""
        return self.total_gpus if self.zero_stage == 3 else 1

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU memory in GiB (CPU figures per node), plus whether and where it fits."""

    arch: ArchSpec
    settings: PlanSettings
    total_params: int
    trainable_params: int
    parameters: float
    gradients: float
    optimizer_states: float
    gather_buffer: float
    live_parameters: float
    reference_model: float
    activations: float
    activations_no_checkpointing: float
    activations_checkpointing: float
    logprob_workspace: float
    logprob_workspace_naive: float
    lm_head_gradient: float
    overhead: float
    total: float
    cpu_per_node: float
    host_full_state_dict: float
    host_per_node: float
    fits_gpu: bool
    fits_cpu: bool
    smallest_nodes: int | None = field(default=None)

    @property
    def fits(self) -> bool:
        return self.fits_gpu and self.fits_cpu

    @property
    def slurm_mem_gb(self) -> int:
        """`--mem` / `mem_gb` for SLURM (decimal GB, rounded up) covering :attr:`host_per_node`."""
        return math.ceil(self.host_per_node * GIB / 1e9)

    @property
    def model_states(self) -> float:
        """Parameters + gradients + optimizer + ZeRO-3 gather buffer (what DeepSpeed estimates)."""
        return self.parameters + self.gradients + self.optimizer_states + self.gather_buffer


def layer_activation_bytes_per_token(
    arch: ArchSpec, act_bytes: int, flash: bool, seq_len: int
) -> dict[str, float]:
    """Bytes per token of one Llama-style decoder layer during its backward, by part.

    Derived for transformers' Llama/Qwen2/Mistral layer (h = hidden, kv = KV width, m = MLP width,
    a = activation bytes, 2 in bf16). What autograd keeps from the forward ("saved"):
        2 RMSNorms   transformers upcasts to fp32: fp32 input 4h + normalised output a*h, each   12h
        attention    q, k, v after RoPE a(h + 2kv) (SDPA/flash keep them), the attention
                     output a*h and its reshaped copy that o_proj keeps, a*h               a(3h + 2kv)
        SwiGLU MLP   gate out, up out, silu(gate), silu(gate)*up: 4 x a*m                     4am
        no flash     + scores, softmax and its dropout mask: 5 * heads * seq_len bytes (Korthikanti)
    and what backward allocates on top while it runs through the layer ("transient"):
        MLP grads    grads of the product, gate and up outputs alive at once: 3 x a*m         3am
        norm grad    fp32 gradient inside the RMSNorm backward                                4h
        residual     grads of the layer output, the mid-layer residual and the layer input   3ah
    With Llama-3.1 shapes (kv = h/4, m = 3.5h, a = 2) that is 12h + 7h + 28h saved plus
    21h + 4h + 6h transient = 78h per token, about 80h. The 34h of Korthikanti et al. 2022
    (eq. 2) is for a GPT layer (4h GELU MLP, MHA, 16-bit LayerNorm) and underestimates a SwiGLU
    layer with fp32 norms by more than 2x.
    """
    h, kv, m, a = arch.hidden, arch.kv_dim, arch.mlp, act_bytes
    saved = arch.norms_per_layer * (4 * h + a * h) + a * (3 * h + 2 * kv) + 4 * a * m
    if not flash:
        saved += 5 * arch.heads * seq_len
    transient = 3 * a * m + 4 * h + 3 * a * h
    return {"saved": float(saved), "transient": float(transient)}


def activation_bytes(arch: ArchSpec, settings: PlanSettings, checkpointing: bool) -> float:
    """Activation memory for one micro-batch (see :func:`layer_activation_bytes_per_token`).

    Without checkpointing every layer keeps its saved activations and one layer at a time adds
    the backward transients: tokens * (layers * saved + transient).
    With full-layer checkpointing each layer keeps only its input (a*h per token) and one layer
    is recomputed, saved and transient, during backward:
        layers * tokens * a*h + tokens * (saved + transient).
    """
    a = settings.activation_bytes
    per = layer_activation_bytes_per_token(arch, a, settings.flash_attention, settings.seq_len)
    tokens = settings.tokens
    if checkpointing:
        return arch.layers * tokens * a * arch.hidden + tokens * (per["saved"] + per["transient"])
    return tokens * (arch.layers * per["saved"] + per["transient"])


def logprob_workspace_bytes(arch: ArchSpec, settings: PlanSettings, chunk_tokens: int | None) -> float:
    """fp32 logits plus their fp32 log-softmax for the tokens scored at once: tokens * vocab * 4 * 2.

    Naive (chunk_tokens=None) scores the whole micro-batch at once; the chunked log-prob path
    projects ``chunk_tokens`` hidden states through lm_head at a time.
    """
    scored = settings.tokens if chunk_tokens is None else min(chunk_tokens, settings.tokens)
    return scored * arch.vocab * 4 * 2


def _gpu_and_cpu_bytes(arch: ArchSpec, s: PlanSettings) -> dict[str, float]:
    """All memory terms in bytes (per GPU; ``cpu`` per node)."""
    total = arch.total_params()
    lora = arch.lora_params(s.lora_rank, s.lora_targets) if s.lora_rank > 0 else 0
    trainable = lora if lora else total
    stored = total + lora  # base weights + adapters, all kept in param dtype
    n = s.shards
    params_opt = s.param_bytes * stored / n
    grads = s.grad_bytes * trainable / n
    optim = s.optimizer_bytes * trainable / n
    ref = s.param_bytes * total / n if s.reference == "copy" else 0.0

    cpu_per_gpu = 0.0
    if s.offload_optimizer == "cpu":
        cpu_per_gpu += (s.optimizer_bytes + OFFLOADED_GRAD_BYTES) * trainable / n
        grads = optim = 0.0
    if s.offload_params == "cpu":
        cpu_per_gpu += params_opt + ref
        params_opt = ref = 0.0

    gather = 0.0
    if s.zero_stage == 3:
        largest = arch.largest_module_params()
        # DeepSpeed's estimator: 4 bytes * largest layer = bf16 gathered weights + bf16 grads.
        # A frozen base (LoRA) produces no weight grads for it.
        gather = s.param_bytes * largest * (1 if lora else 2)
        # DeepSpeed releases a gathered parameter only once stage3_max_live_parameters elements are
        # live (and not if reused soon), so up to that many stay gathered through the forward and
        # backward of the policy (and the reference copy, same engine): beyond the largest module
        # already counted, that is min(max_live, params run) - largest more weights in param dtype.
        run = total * (2 if s.reference == "copy" else 1)
        live = s.param_bytes * max(0, min(s.max_live_parameters, run) - largest)
    else:
        live = 0.0

    acts_ckpt = activation_bytes(arch, s, checkpointing=True)
    acts_full = activation_bytes(arch, s, checkpointing=False)
    # The chunked log-prob backward (ifpo.models.logprobs) accumulates the LM head's weight gradient
    # over all chunks in one fp32 vocab x hidden buffer, on every GPU, whenever the head is trained
    # (full fine-tuning; LoRA's all-linear leaves lm_head frozen).
    lm_head_grad = 4.0 * arch.vocab * arch.hidden if not lora else 0.0
    # Host RAM per node: the offloaded states, one full copy of the weights in param dtype on rank 0
    # (from_pretrained under ZeRO-3 reads the whole state dict there before scattering it, and the
    # HF export gathers it there again at the end, while the training states are still resident),
    # and each rank's own process memory.
    offload = cpu_per_gpu * s.gpus_per_node * s.cpu_buffer_factor
    full_copy = float(s.param_bytes * total)
    host = offload + full_copy + s.gpus_per_node * s.host_overhead_gib_per_rank * GIB
    return {
        "total_params": total,
        "trainable_params": trainable,
        "parameters": params_opt,
        "gradients": grads,
        "optimizer_states": optim,
        "gather_buffer": gather,
        "live_parameters": live,
        "reference_model": ref,
        "activations": acts_ckpt if s.gradient_checkpointing else acts_full,
        "activations_no_checkpointing": acts_full,
        "activations_checkpointing": acts_ckpt,
        "logprob_workspace": logprob_workspace_bytes(arch, s, s.logprob_chunk_tokens),
        "logprob_workspace_naive": logprob_workspace_bytes(arch, s, None),
        "lm_head_gradient": lm_head_grad,
        "overhead": s.overhead_gib * GIB,
        "cpu_per_node": offload,
        "host_full_state_dict": full_copy,
        "host_per_node": host,
    }


_TOTAL_TERMS = (
    "parameters", "gradients", "optimizer_states", "gather_buffer", "live_parameters",
    "reference_model", "activations", "logprob_workspace", "lm_head_gradient", "overhead",
)  # fmt: skip


def _plan_one(arch: ArchSpec, settings: PlanSettings) -> MemoryPlan:
    b = _gpu_and_cpu_bytes(arch, settings)
    gib = {k: v / GIB for k, v in b.items() if k not in ("total_params", "trainable_params")}
    total = sum(gib[k] for k in _TOTAL_TERMS)
    cpu_ok = settings.cpu_memory_gib is None or gib["host_per_node"] <= settings.cpu_memory_gib
    return MemoryPlan(
        arch=arch,
        settings=settings,
        total_params=int(b["total_params"]),
        trainable_params=int(b["trainable_params"]),
        total=total,
        fits_gpu=total <= settings.gpu_memory_gib,
        fits_cpu=cpu_ok,
        **gib,
    )


def smallest_cluster(arch: ArchSpec, settings: PlanSettings, max_nodes: int = 64) -> int | None:
    """Fewest nodes (each ``gpus_per_node`` GPUs) on which the plan fits, or None up to max_nodes.

    Only ZeRO-3 state shrinks with more GPUs (activations are per micro-batch), so a linear scan
    is cheap and exact; it does not assume monotonicity.
    """
    for nodes in range(1, max_nodes + 1):
        if _plan_one(arch, replace(settings, nodes=nodes)).fits:
            return nodes
    return None


def plan(arch: ArchSpec, settings: PlanSettings, max_nodes: int = 64) -> MemoryPlan:
    """Memory per GPU for ``settings`` plus the smallest cluster (in nodes) that would fit."""
    return replace(_plan_one(arch, settings), smallest_nodes=smallest_cluster(arch, settings, max_nodes))


def _describe_settings(s: PlanSettings) -> str:
    tuning = f"LoRA r={s.lora_rank} ({','.join(s.lora_targets)})" if s.lora_rank else "full fine-tuning"
    zero = "DDP (ZeRO-0)" if s.zero_stage == 0 else "ZeRO-3"
    chunk = "naive" if s.logprob_chunk_tokens is None else f"chunk {s.logprob_chunk_tokens}"
    return (
        f"{s.nodes}x{s.gpus_per_node} GPUs ({s.gpu_memory_gib:g} GiB), {zero}, "
        f"offload opt={s.offload_optimizer} params={s.offload_params}, {tuning}, ref={s.reference}, "
        f"micro_batch={s.micro_batch} seqs x {s.seq_len} tok, "
        f"ckpt={'on' if s.gradient_checkpointing else 'off'}, "
        f"flash={'on' if s.flash_attention else 'off'}, logprobs {chunk}"
    )


def format_plan(p: MemoryPlan) -> str:
    """Render the plan as a rich table (plain text, no colour codes) with a verdict underneath."""
    from rich.console import Console
    from rich.table import Table

    s = p.settings
    table = Table(title=f"{p.arch.name}: {p.total_params:,} params, {p.trainable_params:,} trainable")
    table.add_column("per GPU", style="bold")
    table.add_column("GiB", justify="right")
    table.add_column("note")
    states_note = f"/ {s.shards} GPUs" if s.shards > 1 else "replicated"
    rows = [
        ("parameters", p.parameters, "offloaded to CPU" if s.offload_params == "cpu" else f"bf16 "
                                                                                          f"{states_note}"),
        ("gradients", p.gradients, "on CPU (fp32)" if s.offload_optimizer == "cpu" else states_note),
        ("optimizer states", p.optimizer_states,
         "on CPU" if s.offload_optimizer == "cpu" else f"fp32 master+Adam {states_note}"),
        ("ZeRO-3 gather buffer", p.gather_buffer, "largest module, gathered"),
        ("ZeRO-3 live params", p.live_parameters,
        f"kept gathered up to max_live {s.max_live_parameters:.0e}"),
        ("reference model", p.reference_model, s.reference),
        ("activations", p.activations,
         (f"ckpt {'on' if s.gradient_checkpointing else 'off'}; "
         f"on {p.activations_checkpointing:.2f} / off {p.activations_no_checkpointing:.2f}")),
        ("log-prob workspace", p.logprob_workspace, f"naive full logits {p.logprob_workspace_naive:.2f}"),
        ("LM-head gradient", p.lm_head_gradient, "fp32 vocab x hidden, chunked backward" if p.lm_head_gradient
         else "head frozen"),
        ("CUDA/NCCL overhead", p.overhead, "constant"),
    ]  # fmt: skip
    for name, gib, note in rows:
        table.add_row(name, f"{gib:.2f}", note)
    table.add_section()
    table.add_row("total", f"{p.total:.2f}", f"of {s.gpu_memory_gib:g} GiB")

    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None, force_terminal=False).print(table)
    lines = [_describe_settings(s), buffer.getvalue().rstrip()]
    verdict = "FITS" if p.fits else "DOES NOT FIT"
    lines.append(
        f"{verdict}: {p.total:.2f} / {s.gpu_memory_gib:g} GiB per GPU on {s.nodes}x{s.gpus_per_node} GPUs"
    )
    limit = (
        ""
        if s.cpu_memory_gib is None
        else f" of {s.cpu_memory_gib:g} GiB ({'ok' if p.fits_cpu else 'too much'})"
    )
    lines.append(
        f"host RAM per node: {p.host_per_node:.2f} GiB{limit} = offloaded states {p.cpu_per_node:.2f} + "
        f"rank-0 full weights for from_pretrained/export {p.host_full_state_dict:.2f} + "
        f"{s.gpus_per_node} ranks x {s.host_overhead_gib_per_rank:g}; SLURM mem_gb={p.slurm_mem_gb}"
    )
    if p.smallest_nodes is None:
        lines.append("smallest cluster: none up to 64 nodes (only ZeRO-3 state shrinks with more GPUs)")
    else:
        n = p.smallest_nodes
        lines.append(f"smallest cluster: {n} node(s) x {s.gpus_per_node} GPUs = {n * s.gpus_per_node} GPUs")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Every option with a help line; --help shows each default (ArgumentDefaultsHelpFormatter)."""
    d = PlanSettings()
    ap = argparse.ArgumentParser(
        prog="python -m ifpo.scale.planner",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="From a training config instead: python train.py +experiment=NAME plan=true",
    )
    ap.add_argument(
        "--arch", default="llama-3.1-8b",
        help=f"a preset ({', '.join(sorted(PRESETS))}) or a model folder / config.json "
        "(Llama, Qwen2, Mistral, Gemma-2)",
    )  # fmt: skip
    ap.add_argument("--nodes", type=int, default=d.nodes, help="nodes in the cluster")
    ap.add_argument("--gpus-per-node", type=int, default=d.gpus_per_node, help="GPUs (ranks) per node")
    ap.add_argument("--gpu-memory-gib", type=float, default=d.gpu_memory_gib, help="memory of one GPU")
    ap.add_argument(
        "--zero-stage", type=int, choices=(0, 3), default=d.zero_stage, help="0 = DDP, 3 = ZeRO-3"
    )
    ap.add_argument(
        "--offload-optimizer",
        choices=("none", "cpu"),
        default=d.offload_optimizer,
        help="ZeRO-3: optimizer states in CPU RAM",
    )
    ap.add_argument(
        "--offload-params",
        choices=("none", "cpu"),
        default=d.offload_params,
        help="ZeRO-3: parameters in CPU RAM",
    )
    ap.add_argument(
        "--ref",
        choices=("copy", "adapter", "precomputed", "none"),
        default=d.reference,
        help="how the reference model is held (ref.mode)",
    )
    ap.add_argument("--lora-rank", type=int, default=d.lora_rank, help="0 = full fine-tuning")
    ap.add_argument(
        "--lora-targets", default="all-linear", help="'all-linear' or comma list, e.g. q_proj,v_proj"
    )
    ap.add_argument(
        "--micro-batch", type=int, default=d.micro_batch, help="sequences per forward (2 per DPO pair)"
    )
    ap.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per sequence")
    ap.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="plan without activation checkpointing"
    )
    ap.add_argument(
        "--no-flash-attention", action="store_true", help="plan with materialised attention scores"
    )
    ap.add_argument(
        "--logprob-chunk", type=int, default=d.logprob_chunk_tokens, help="tokens per chunk; 0 = naive"
    )
    ap.add_argument(
        "--overhead-gib",
        type=float,
        default=d.overhead_gib,
        help="per-GPU allowance for the CUDA context, allocator and buffers",
    )
    ap.add_argument(
        "--cpu-memory-gib",
        type=float,
        default=None,
        help="CPU RAM per node to check offload against; None = not checked",
    )
    ap.add_argument("--deepspeed-check", action="store_true", help="also print DeepSpeed's ZeRO-3 estimator")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the plan does not fit")
    return ap


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> PlanSettings:
    targets = ALL_LINEAR if args.lora_targets == "all-linear" else tuple(args.lora_targets.split(","))
    return PlanSettings(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        gpu_memory_gib=args.gpu_memory_gib,
        zero_stage=args.zero_stage,
        offload_optimizer=args.offload_optimizer,
        offload_params=args.offload_params,
        reference=args.ref,
        lora_rank=args.lora_rank,
        lora_targets=targets,
        micro_batch=args.micro_batch,
        seq_len=args.seq_len,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        flash_attention=not args.no_flash_attention,
        logprob_chunk_tokens=args.logprob_chunk or None,
        overhead_gib=args.overhead_gib,
        cpu_memory_gib=args.cpu_memory_gib,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        arch = get_arch(args.arch)
        settings = settings_from_args(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    result = plan(arch, settings)
    print(format_plan(result))
    if args.deepspeed_check and settings.zero_stage == 3:
        from ifpo.scale.deepspeed_estimate import deepspeed_zero3_model_states

        est = deepspeed_zero3_model_states(arch, settings)
        print(
            f"DeepSpeed estimator (full-FT model states, fp16 params + fp32 grads + Adam, zero_init): "
            f"{est.gpu_gib:.2f} GiB/GPU, {est.cpu_gib_per_node:.2f} GiB CPU/node"
        )
    return 1 if args.strict and not result.fits else 0


if __name__ == "__main__":
    sys.exit(main())
