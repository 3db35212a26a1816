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
    reference    copy: param_bytes * P / N; adapter/precomputed/none: 0
    activations  see :func:`activation_bytes`
    logprobs     see :func:`logprob_workspace_bytes`
    overhead     CUDA context + NCCL buffers + allocator slack, a constant

With ZeRO stage 0 (plain DDP) N is 1 for every model-state term. Offloaded optimizer states
live on CPU with fp32 gradients (DeepSpeedCPUAdam steps in fp32), offloaded params in bf16.
Tensor/pipeline parallelism is not modelled.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass, field, replace
from typing import Literal

from ifpo.scale.architectures import ALL_LINEAR, PRESETS, ArchSpec, get_arch

GIB = 2**30
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
    grad_bytes: int = 2  # bf16 gradients (DeepSpeed's estimator assumes 4)
    optimizer_bytes: int = 12  # fp32 master weights + Adam m + Adam v
    overhead_gib: float = 3.0
    cpu_memory_gib: float | None = None  # per node; None = do not check CPU memory
    cpu_buffer_factor: float = 1.5  # DeepSpeed's additional_buffer_factor for pinned buffers

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
    reference_model: float
    activations: float
    activations_no_checkpointing: float
    activations_checkpointing: float
    logprob_workspace: float
    logprob_workspace_naive: float
    overhead: float
    total: float
    cpu_per_node: float
    fits_gpu: bool
    fits_cpu: bool
    smallest_nodes: int | None = field(default=None)

    @property
    def fits(self) -> bool:
        return self.fits_gpu and self.fits_cpu

    @property
    def model_states(self) -> float:
        """Parameters + gradients + optimizer + ZeRO-3 gather buffer (what DeepSpeed estimates)."""
        return self.parameters + self.gradients + self.optimizer_states + self.gather_buffer


def activation_bytes(arch: ArchSpec, settings: PlanSettings, checkpointing: bool) -> float:
    """Activation memory for one micro-batch, after Korthikanti et al. 2022 ("Reducing Activation
    Recomputation in Large Transformer Models", eq. 2, no tensor parallelism, 16-bit activations).

    Per layer per token (h = hidden, a = heads, s = seq_len):
        without flash attention: 34*h + 5*a*s bytes   (5*a*s: attention scores, softmax, dropout mask)
        with flash attention:    34*h bytes           (the s x s matrices are never stored)
    Without checkpointing: layers * tokens * per_layer_token.
    With full-layer checkpointing only each layer's bf16 input is kept (2*h per token per layer),
    plus one layer's full activations while it is recomputed during backward:
        layers * tokens * 2*h + tokens * per_layer_token.
    The 34*h constant was derived for a GPT MLP of 4h and MHA; it is a standard estimate, not exact
    for SwiGLU/GQA.
    """
    h, a, s = arch.hidden, arch.heads, settings.seq_len
    per_layer_token = 34 * h + (0 if settings.flash_attention else 5 * a * s)
    tokens = settings.tokens
    if checkpointing:
        return arch.layers * tokens * 2 * h + tokens * per_layer_token
    return arch.layers * tokens * per_layer_token


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

    acts_ckpt = activation_bytes(arch, s, checkpointing=True)
    acts_full = activation_bytes(arch, s, checkpointing=False)
    return {
        "total_params": total,
        "trainable_params": trainable,
        "parameters": params_opt,
        "gradients": grads,
        "optimizer_states": optim,
        "gather_buffer": gather,
        "reference_model": ref,
        "activations": acts_ckpt if s.gradient_checkpointing else acts_full,
        "activations_no_checkpointing": acts_full,
        "activations_checkpointing": acts_ckpt,
        "logprob_workspace": logprob_workspace_bytes(arch, s, s.logprob_chunk_tokens),
        "logprob_workspace_naive": logprob_workspace_bytes(arch, s, None),
        "overhead": s.overhead_gib * GIB,
        "cpu_per_node": cpu_per_gpu * s.gpus_per_node * s.cpu_buffer_factor,
    }


_TOTAL_TERMS = (
    "parameters", "gradients", "optimizer_states", "gather_buffer",
    "reference_model", "activations", "logprob_workspace", "overhead",
)  # fmt: skip


def _plan_one(arch: ArchSpec, settings: PlanSettings) -> MemoryPlan:
    b = _gpu_and_cpu_bytes(arch, settings)
    gib = {k: v / GIB for k, v in b.items() if k not in ("total_params", "trainable_params")}
    total = sum(gib[k] for k in _TOTAL_TERMS)
    cpu_ok = settings.cpu_memory_gib is None or gib["cpu_per_node"] <= settings.cpu_memory_gib
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
        f"micro_batch={s.micro_batch} seqs x {s.seq_len} tok, ckpt={'on' if s.gradient_checkpointing else 'off'}, "
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
        ("parameters", p.parameters, "offloaded to CPU" if s.offload_params == "cpu" else f"bf16 {states_note}"),
        ("gradients", p.gradients, "on CPU (fp32)" if s.offload_optimizer == "cpu" else states_note),
        ("optimizer states", p.optimizer_states,
         "on CPU" if s.offload_optimizer == "cpu" else f"fp32 master+Adam {states_note}"),
        ("ZeRO-3 gather buffer", p.gather_buffer, "largest module, gathered"),
        ("reference model", p.reference_model, s.reference),
        ("activations", p.activations,
         (f"ckpt {'on' if s.gradient_checkpointing else 'off'}; "
         f"on {p.activations_checkpointing:.2f} / off {p.activations_no_checkpointing:.2f}")),
        ("log-prob workspace", p.logprob_workspace, f"naive full logits {p.logprob_workspace_naive:.2f}"),
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
    if p.cpu_per_node:
        limit = (
            ""
            if s.cpu_memory_gib is None
            else f" of {s.cpu_memory_gib:g} GiB ({'ok' if p.fits_cpu else 'too much'})"
        )
        lines.append(f"CPU memory per node for offload: {p.cpu_per_node:.2f} GiB{limit}")
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
        prog="python -m ifpo.scale.planner", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="From a training config instead: python train.py +experiment=NAME plan=true",
    )
    ap.add_argument("--arch", default="llama-3.1-8b", choices=sorted(PRESETS), help="model shape preset")
    ap.add_argument("--nodes", type=int, default=d.nodes, help="nodes in the cluster")
    ap.add_argument("--gpus-per-node", type=int, default=d.gpus_per_node, help="GPUs (ranks) per node")
    ap.add_argument("--gpu-memory-gib", type=float, default=d.gpu_memory_gib, help="memory of one GPU")
    ap.add_argument("--zero-stage", type=int, choices=(0, 3), default=d.zero_stage, help="0 = DDP, 3 = ZeRO-3")
    ap.add_argument("--offload-optimizer", choices=("none", "cpu"), default=d.offload_optimizer,
                    help="ZeRO-3: optimizer states in CPU RAM")
    ap.add_argument("--offload-params", choices=("none", "cpu"), default=d.offload_params,
                    help="ZeRO-3: parameters in CPU RAM")
    ap.add_argument("--ref", choices=("copy", "adapter", "precomputed", "none"), default=d.reference,
                    help="how the reference model is held (ref.mode)")
    ap.add_argument("--lora-rank", type=int, default=d.lora_rank, help="0 = full fine-tuning")
    ap.add_argument(
        "--lora-targets", default="all-linear", help="'all-linear' or comma list, e.g. q_proj,v_proj"
    )
    ap.add_argument(
        "--micro-batch", type=int, default=d.micro_batch, help="sequences per forward (2 per DPO pair)"
    )
    ap.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per sequence")
    ap.add_argument("--no-gradient-checkpointing", action="store_true", help="plan without activation checkpointing")
    ap.add_argument("--no-flash-attention", action="store_true", help="plan with materialised attention scores")
    ap.add_argument(
        "--logprob-chunk", type=int, default=d.logprob_chunk_tokens, help="tokens per chunk; 0 = naive"
    )
    ap.add_argument("--overhead-gib", type=float, default=d.overhead_gib,
                    help="per-GPU allowance for the CUDA context, allocator and buffers")
    ap.add_argument(
        "--cpu-memory-gib", type=float, default=None,
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
    arch = get_arch(args.arch)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
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
