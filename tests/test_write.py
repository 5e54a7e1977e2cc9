"""The writer: only what changed, atomically; a crash between the temporary write and the rename
leaves the output tree exactly as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vllm_compile.write import apply_changes, pending_changes


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_only_changed_files_are_pending(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("same\n")
    (tmp_path / "b.txt").write_text("old\n")
    changes = pending_changes(tmp_path, {"a.txt": "same\n", "b.txt": "new\n", "k8s/c.yaml": "c\n"}, [])
    assert [(c.path.name, c.kind) for c in changes] == [("b.txt", "update"), ("c.yaml", "create")]
    apply_changes(changes)
    assert (tmp_path / "b.txt").read_text() == "new\n" and (tmp_path / "k8s" / "c.yaml").read_text() == "c\n"
    assert pending_changes(tmp_path, {"a.txt": "same\n", "b.txt": "new\n", "k8s/c.yaml": "c\n"}, []) == []


def test_files_no_longer_produced_are_removed(tmp_path: Path) -> None:
    apply_changes(pending_changes(tmp_path, {"lock": "1\n", "k8s/d.yaml": "d\n"}, []))
    changes = pending_changes(tmp_path, {"lock": "2\n"}, ["lock", "k8s/d.yaml"])
    assert sorted(c.kind for c in changes) == ["remove", "update"]
    apply_changes(changes)
    assert snapshot(tmp_path) == {"lock": b"2\n"}


def test_crash_between_temporary_write_and_rename_leaves_the_tree_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_changes(pending_changes(tmp_path, {"serve.sh": "v1\n", "vllm.lock.yaml": "lock v1\n"}, []))
    before = snapshot(tmp_path)
    real_replace = os.replace
    calls = []

    def crash(src, dst):
        calls.append(dst)
        raise OSError("injected crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="injected crash"):
        apply_changes(pending_changes(tmp_path, {"serve.sh": "v2\n", "vllm.lock.yaml": "lock v2\n"}, []))
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls, "the crash was injected at the rename"
    assert snapshot(tmp_path) == before  # no half-written file, no temporary left behind


def test_crash_while_writing_a_later_file_renames_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_changes(pending_changes(tmp_path, {"a": "1\n", "b": "1\n"}, []))
    before = snapshot(tmp_path)
    import builtins

    real_open = builtins.open
    count = {"n": 0}

    def open_then_crash(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).endswith(".tmp"):
            count["n"] += 1
            if count["n"] == 2:
                raise OSError("disk full")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_then_crash)
    with pytest.raises(OSError, match="disk full"):
        apply_changes(pending_changes(tmp_path, {"a": "2\n", "b": "2\n"}, []))
    assert snapshot(tmp_path) == before


def test_shell_scripts_are_executable(tmp_path: Path) -> None:
    apply_changes(pending_changes(tmp_path, {"serve.sh": "#!/bin/sh\n", "x.yaml": "a: 1\n"}, []))
    assert os.access(tmp_path / "serve.sh", os.X_OK) and not os.access(tmp_path / "x.yaml", os.X_OK)
