"""The precomputed reference (ref.mode=precomputed): a log-prob cache on disk.

A pre-pass runs the reference once over the tokenised train/val sets and writes log-probs per
(example, role) to `ref.cache_dir/<key>.pt`. The key hashes the tokenised data (ids, which
already reflect tokenizer, chat template and length limits), the tokenisation settings and the
reference weights' identity, so every later run and every sweep trial with the same data and
reference reuses it, and the training step runs no reference forward.

The result is a data transform (ifpo.data.reference_columns.ReferenceColumns): the pipeline
hands it to PreferenceDataModule.with_transform, which returns a new datamodule whose sets carry
the cached columns and whose collator attaches them to each batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ifpo.data.datamodule import Collator, Splits
from ifpo.data.reference_columns import ReferenceColumns
from ifpo.io.atomic import atomic_path
from ifpo.models.forward import role_logps
from ifpo.models.loading import freeze
from ifpo.models.reference import build_reference_copy

log = logging.getLogger(__name__)

CACHE_VERSION = 1


# -- precomputed: cache key ---------------------------------------------------------------
def weights_identity(model_cfg: Mapping[str, Any], ref_cfg: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What determines the reference weights, cheaply: the weight files' names, sizes and
    modification times for a local folder (hashing 140 GB of 70B weights would take longer than
    the pre-pass), the hub id otherwise, or the architecture config + seed for random init."""
    source = ref_cfg.get("name_or_path") or model_cfg.get("name_or_path")
    dtype = str(model_cfg.get("dtype"))  # a string: train.py unwraps enums once (entry_config)
    if source and Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        return {"source": str(Path(source).resolve()), "dtype": dtype,
                "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}  # fmt: skip
    if source:
        return {"hub_id": source, "dtype": dtype}
    config = Path(str(model_cfg.get("config")))
    config_file = config / "config.json" if config.is_dir() else config
    return {"random_init": config_file.read_text(), "seed": int(seed), "dtype": dtype}


def dataset_fingerprint(dataset: Any, columns: Sequence[str]) -> str:
    """sha256 over the tokenised id columns, row by row (independent of datasets' own cache)."""
    digest = hashlib.sha256()
    for column in columns:
        digest.update(column.encode())
        for row in dataset[column]:
            digest.update(len(row).to_bytes(4, "little"))
            digest.update(torch.tensor(row, dtype=torch.int32).numpy().tobytes())
    return digest.hexdigest()


def cache_key(
    fingerprints: Mapping[str, str],
    tokenize_settings: Mapping[str, Any],
    identity: Mapping[str, Any],
    roles: Sequence[str],
) -> str:
    payload = {"version": CACHE_VERSION, "data": dict(fingerprints), "tokenize": dict(tokenize_settings),
               "weights": dict(identity), "roles": list(roles)}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


# -- precomputed: the pre-pass ------------------------------------------------------------
@torch.no_grad()
def reference_logps_for(
    model: torch.nn.Module, dataset: Any, collator: Collator, batch_size: int, chunk: int
) -> dict[str, torch.Tensor]:
    """{role: float32 [len(dataset)]} summed response log-probs, in dataset order."""
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(dataset), batch_size):
        examples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        logps, _ = role_logps(model, collator(examples).to(device), chunk)
        for role, values in logps.items():
            out.setdefault(role, []).append(values.float().cpu())
    return {role: torch.cat(parts) for role, parts in out.items()}


class PrecomputeNeedsOneDevice(ValueError):
    """A multi-device run asked for a reference cache that does not exist yet."""


def precomputed_reference(cfg: Any, splits: Splits, module: Any, world_size: int = 1) -> ReferenceColumns:
    """Compute (or reuse) the reference cache for the prepared sets; the transform that attaches it.

    The pre-pass builds the whole, unsharded reference on this process's device, so it runs only
    in a one-device run; a run on more devices reuses a cache with the same key (data,
    tokenisation, reference weights) and refuses to compute one rather than loading a full model
    copy on every rank. At the scale where one device cannot hold the reference (70B), use
    ref.mode=copy (sharded by ZeRO-3) or, with LoRA, ref.mode=adapter.
    """
    roles = tuple(module.head.roles)
    columns = sorted({c for c in splits.train.column_names if c.endswith("_ids")})
    sets = {"train": splits.train, "val": splits.val}
    fingerprints = {name: dataset_fingerprint(ds, columns) for name, ds in sets.items() if ds is not None}
    settings = {"max_length": int(cfg.data.max_length), "max_prompt_length": int(cfg.data.max_prompt_length)}
    key = cache_key(
        fingerprints, settings, weights_identity(module.model_cfg, module.ref_cfg, int(cfg.seed)), roles
    )
    path = Path(str(cfg.ref.cache_dir)) / f"{key}.pt"
    if not path.exists() and world_size > 1:
        raise PrecomputeNeedsOneDevice(
            f"ref.mode=precomputed: no reference cache {path} yet, and this run has {world_size} devices. "
            "The pre-pass loads the whole unsharded reference on each device, so it runs on one device "
            "only: run the same command once with trainer.num_nodes=1 trainer.devices=1 strategy=single "
            "trainer.max_steps=0 to write the cache, then start this run again (it reuses the cache). "
            "If one device cannot hold the reference, use ref.mode=copy (sharded by ZeRO-3) or, with "
            "LoRA, ref.mode=adapter."
        )
    if path.exists():
        log.info("reference log-probs: reusing cache %s", path)
        cache = torch.load(path, map_location="cpu", weights_only=True)
    else:
        log.info(
            "reference log-probs: pre-pass over %s -> %s",
            {k: len(v) for k, v in sets.items() if v is not None},
            path,
        )
        cache = precompute(cfg, splits.collator, module, sets)
        with atomic_path(path) as tmp:
            torch.save(cache, tmp)
    return ReferenceColumns(cache, roles, path)


def precompute(
    cfg: Any, collator: Collator, module: Any, sets: Mapping[str, Any]
) -> dict[str, dict[str, torch.Tensor]]:
    """The pre-pass itself: score every example with the reference ref.mode=copy would use.

    Random init: the module's own policy is built now (configure_model is idempotent, so training
    starts from these very weights) and scored as is; pretrained: the reference loads on its own.
    """
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    chunk = int(module.model_cfg.get("logprob_chunk_size", 1024))
    batch_size = int(cfg.ref.get("precompute_batch_size", 8))
    if module.ref_cfg.get("name_or_path") or module.model_cfg.get("name_or_path"):
        reference, owned = (
            freeze(build_reference_copy(None, module.model_cfg, module.ref_cfg)).to(device),
            True,
        )
    else:
        module.configure_model()
        reference, owned = module.policy, False
    was_training = reference.training
    reference.eval()
    adapters_off = (
        reference.disable_adapter() if hasattr(reference, "disable_adapter") else contextlib.nullcontext()
    )
    with adapters_off:
        cache = {name: reference_logps_for(reference, ds, collator, batch_size, chunk)
                 for name, ds in sets.items() if ds is not None}  # fmt: skip
    reference.train(was_training)
    if owned:
        del reference
    return cache
