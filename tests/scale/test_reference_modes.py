"""ref.mode copy / adapter / precomputed give the same loss where they should (single process)."""

from __future__ import annotations

import pytest
import torch

from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config
from tests.scale.zero3_common import shared_overrides, write_tiny2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny2(tmp_path_factory.mktemp("tiny2"))


def _loss_on_first_batch(tmp_path, data, tiny, overrides):
    cfg = compose_config("train", shared_overrides(tiny, 1) + overrides, output_dir=tmp_path, data_dir=data)
    module, datamodule, _ = build(cfg)
    datamodule.setup("fit")
    module.configure_model()
    batch = next(iter(datamodule.train_dataloader()))
    with torch.no_grad():
        return module.head(module.compute_logps(batch), batch).loss.item(), module, batch


def _perturb(module):
    """Move the policy away from its start so the reference actually matters."""
    with torch.no_grad():
        for p in module.policy.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.02, alpha=1.0)


def test_copy_and_precomputed_give_the_same_loss_and_the_cache_is_reused(
    tmp_path, shared_data_dir, tiny, caplog
):
    cache = tmp_path / "cache"
    torch.manual_seed(0)
    copy_loss, copy_module, _ = _loss_on_first_batch(
        tmp_path / "copy", shared_data_dir, tiny, ["loss.gamma=0.3"]
    )
    cfg_pre = ["loss.gamma=0.3", "ref.mode=precomputed", f"ref.cache_dir={cache}"]
    pre_loss, pre_module, batch = _loss_on_first_batch(tmp_path / "pre", shared_data_dir, tiny, cfg_pre)
    # no reference forward in the step
    assert pre_module.reference is None and batch.reference_logps is not None
    assert pre_loss == pytest.approx(copy_loss, abs=1e-5)
    # Same trained policy against both references: still the same loss.
    torch.manual_seed(1)
    _perturb(copy_module)
    torch.manual_seed(1)
    _perturb(pre_module)
    cfg_copy = compose_config(
        "train",
        shared_overrides(tiny, 1) + ["loss.gamma=0.3"],
        output_dir=tmp_path / "x",
        data_dir=shared_data_dir,
    )
    _, dm, _ = build(cfg_copy)
    dm.setup("fit")
    plain = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        a = copy_module.head(copy_module.compute_logps(plain), plain).loss.item()
        b = pre_module.head(pre_module.compute_logps(batch), batch).loss.item()
    assert a == pytest.approx(b, abs=1e-5) and a != pytest.approx(copy_loss, abs=1e-4)
    files = sorted(cache.glob("*.pt"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    with caplog.at_level("INFO", logger="ifpo.training.reference_cache"):
        _loss_on_first_batch(tmp_path / "pre2", shared_data_dir, tiny, cfg_pre)
    assert "reusing cache" in caplog.text and files[0].stat().st_mtime_ns == stamp
    # Another tokenisation setting is another key.
    # (190, not a tiny budget: prompts are never cut now, so a budget below them drops every example.)
    _loss_on_first_batch(tmp_path / "pre3", shared_data_dir, tiny, cfg_pre + ["data.max_prompt_length=190"])
    assert len(list(cache.glob("*.pt"))) == 2


def test_adapter_reference_equals_copy_with_zero_initialised_lora(tmp_path, shared_data_dir, tiny):
    lora = ["peft=lora", "peft.r=4", "peft.alpha=8", "peft.dropout=0.0", "loss.gamma=0.3"]
    torch.manual_seed(0)
    copy_loss, copy_module, _ = _loss_on_first_batch(
        tmp_path / "copy", shared_data_dir, tiny, lora + ["ref.mode=copy"]
    )
    torch.manual_seed(0)
    adapter_loss, adapter_module, _ = _loss_on_first_batch(
        tmp_path / "adapter", shared_data_dir, tiny, lora + ["ref.mode=adapter"]
    )
    assert adapter_module.reference is None and copy_module.reference is not None
    assert adapter_loss == copy_loss  # B = 0: identical, not just close
    trainable = {n for n, p in adapter_module.policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_adapter_mode_without_lora_is_refused(tmp_path, tiny):
    cfg = compose_config("train", shared_overrides(tiny, 1) + ["ref.mode=adapter"], output_dir=tmp_path)
    with pytest.raises(ValueError, match="needs peft=lora"):
        build(cfg)


def test_precomputed_pre_pass_refuses_several_devices_and_multi_device_runs_reuse_the_cache(
    tmp_path, shared_data_dir, tiny
):
    from ifpo.data.reference_columns import REFERENCE_COLUMN
    from ifpo.training.reference_cache import PrecomputeNeedsOneDevice

    pre = ["ref.mode=precomputed", f"ref.cache_dir={tmp_path / 'cache'}"]
    two = ["strategy=ddp", "trainer.devices=2"]  # the trainer is only built, never launched
    cfg = compose_config(
        "train", shared_overrides(tiny, 1) + pre + two, output_dir=tmp_path / "a", data_dir=shared_data_dir
    )
    with pytest.raises(PrecomputeNeedsOneDevice, match="this run has 2 devices.*trainer.devices=1"):
        build(cfg)
    assert not list((tmp_path / "cache").glob("*.pt"))  # nothing half-computed left behind
    one = compose_config(
        "train", shared_overrides(tiny, 1) + pre, output_dir=tmp_path / "b", data_dir=shared_data_dir
    )
    build(one)  # the one-device pre-pass writes the cache
    module, datamodule, trainer = build(cfg)  # the 2-device run now finds and attaches it
    assert trainer.world_size == 2 and module.reference is None
    assert REFERENCE_COLUMN.format(role="chosen") in datamodule.train_set.column_names
