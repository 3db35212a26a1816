"""Cache keys and crash-safe writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ifpo.io.atomic import atomic_write_json, atomic_write_text
from ifpo.judge import ResponseCache, request_key


def test_key_is_order_independent_and_sensitive_to_content() -> None:
    a = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.0}
    b = {"temperature": 0.0, "messages": [{"content": "x", "role": "user"}], "model": "m"}
    assert request_key(a) == request_key(b)
    assert request_key(a) != request_key({**a, "temperature": 0.5})
    assert request_key(a) != request_key({**a, "model": "n"})


def test_put_then_get(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    request = {"model": "m", "messages": []}
    assert cache.get(request) is None
    cache.put(request, "answer")
    assert cache.get(request) == "answer"
    assert ResponseCache(tmp_path).get(request) == "answer"  # survives a new process/instance


def test_crash_between_temp_write_and_replace_keeps_old_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ResponseCache(tmp_path)
    request = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    cache.put(request, "old")

    def killed(*args: object) -> None:
        raise KeyboardInterrupt("simulated kill before os.replace")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.put(request, "new")
    monkeypatch.undo()
    assert cache.get(request) == "old"
    # Every file left behind still parses.
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))


def test_stray_temp_file_and_torn_entry_are_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache(tmp_path)
    request = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    key = request_key(request)
    entry_dir = tmp_path / key[:2]
    entry_dir.mkdir(parents=True)
    (entry_dir / ".tmp-abc.json").write_text('{"key": "half', encoding="utf-8")
    assert cache.get(request) is None
    (entry_dir / f"{key}.json").write_text('{"key": "', encoding="utf-8")  # written by some non-atomic tool
    assert cache.get(request) is None
    assert "unreadable" in caplog.text
    cache.put(request, "fresh")
    assert cache.get(request) == "fresh"


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_text(target, "second\n")
    assert target.read_text(encoding="utf-8") == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]  # no temp files left on success
