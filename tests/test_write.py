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


def _profile(name: str, max_model_len: int) -> str:
    return (
        f"profile_version: 1\nname: {name}\nmodel: {{id: Qwen/Qwen2.5-7B-Instruct, max_model_len: {max_model_len}}}\n"
        "hardware: {gpu_name: H100, gpus: 1}\ndeploy: {targets: [command, vllm-config]}\n"
    )


def test_workers_stage_and_the_parent_renames_duplicates_never_land(tmp_path: Path) -> None:
    """With worker processes each profile's files are staged by its worker and renamed by the parent;
    a profile refused for a duplicate name leaves none of its staged files behind."""
    from vllm_compile.api import compile_paths
    from vllm_compile.write import STAGING_DIR, leftovers

    src = tmp_path / "profiles"
    src.mkdir()
    (src / "a.yaml").write_text(_profile("alpha", 4096))
    (src / "b.yaml").write_text(_profile("alpha", 8192))  # same name: refused
    (src / "c.yaml").write_text(_profile("gamma", 4096))
    out = tmp_path / "out"
    result = compile_paths([src], out_dir=out, jobs=2)
    codes = [d.code for r in result.results for d in r.diagnostics]
    assert codes.count("duplicate-name") == 1
    assert sorted(p.name for p in out.iterdir()) == ["alpha", "gamma"]
    # The first profile of the name won (b.yaml's would say 8192).
    assert "max-model-len: 4096" in (out / "alpha" / "vllm-config.yaml").read_text()
    assert leftovers(out) == [] and not (out / STAGING_DIR).exists()
    # The same tree as one process writes.
    serial = tmp_path / "serial"
    compile_paths([src], out_dir=serial, jobs=1)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        assert path.read_bytes() == (serial / path.relative_to(out)).read_bytes()
