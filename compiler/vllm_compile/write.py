"""The writer: only what changed, atomically; stale detection for --check and --prune."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Temporary files of a compile live in one folder of out/, so an interrupted run's leftovers are in one
# known place: the next compile removes them (under the lock) and --check reports them. The folder's own
# .gitignore keeps a `git add out/` made before that from committing them.
STAGING_DIR = ".vllm-compile-tmp"
_LEGACY_TMP = (".*.tmp", "*/.*.tmp")  # beside their targets, as versions before the staging folder wrote


@dataclass(frozen=True)
class Change:
    path: Path
    old: str | None  # None: the file does not exist yet
    new: str | None  # None: the file is to be removed

    @property
    def kind(self) -> str:
        return "create" if self.old is None else "remove" if self.new is None else "update"

    def diff(self, root: Path, max_lines: int = 20) -> str:
        """A short unified diff for --check output."""
        import difflib  # only for --check output: start-up time

        name = _relative(self.path, root)
        lines = list(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                (self.new or "").splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
                n=1,
            )
        )
        if len(lines) > max_lines:
            lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more diff lines)\n"]
        return "".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def pending_changes(directory: Path, files: dict[str, str], previously_written: list[str]) -> list[Change]:
    """What writing `files` into `directory` would change; files we wrote before and no longer make are removed."""
    changes = []
    for rel in sorted(files):
        path = directory / rel
        old = _read(path)
        if old != files[rel]:
            changes.append(Change(path, old, files[rel]))
    for rel in sorted(set(previously_written) - set(files)):
        path = directory / rel
        if path.is_file():
            changes.append(Change(path, _read(path), None))
    return changes


_counter = itertools.count()


def _lock_last(change: Change) -> tuple[bool, str]:
    # The lock is renamed into place after its artifacts: a run killed in between leaves a lock whose
    # artifact hashes do not match, which the next run sees as stale and rewrites.
    return (change.path.name.endswith(".lock.yaml"), str(change.path))


Staged = list[tuple[Path, Path]]  # (temporary file, target), in the order they are renamed


def apply_changes(changes: list[Change], staging: Path | None = None) -> None:
    """Every new file goes to a temporary file first (in `staging`, else beside its target); only when
    all are written are they renamed into place (an atomic rename each, the lock last), so a failure
    while writing leaves the tree as it was. No fsync: the rename already makes each file
    all-or-nothing, and the tree is regenerable output."""
    commit_staged(changes, stage_changes(changes, staging))


def stage_changes(changes: list[Change], staging: Path | None = None) -> Staged:
    """The first half of `apply_changes`: the new files written as temporary files, nothing in place yet
    (a compile's worker processes stage their profiles' files; the parent renames them)."""
    staged: Staged = []
    changes = sorted(changes, key=_lock_last)
    if staging is not None:
        _make_staging(staging)
    made: set[Path] = set()  # a profile's files share a few folders: one mkdir each
    try:
        for change in changes:
            if change.new is None:
                continue
            if change.path.parent not in made:
                change.path.parent.mkdir(parents=True, exist_ok=True)
                made.add(change.path.parent)
            # Unique per process (same filesystem as the target, so the rename is atomic). Not
            # tempfile.mkstemp: its O_EXCL create costs ~8x more per file on some filesystems.
            if staging is not None:
                tmp = staging / f"{os.getpid()}-{next(_counter)}.tmp"
            else:
                tmp = change.path.with_name(f".{change.path.name}.{os.getpid()}.tmp")
            staged.append((tmp, change.path))
            with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(change.new)
            os.chmod(tmp, 0o755 if change.path.name.endswith(".sh") else 0o644)
    except BaseException:
        discard_staged(staged)
        raise
    return staged


def commit_staged(changes: list[Change], staged: Staged) -> None:
    """The second half: staged files renamed into place (the lock last), removed files removed."""
    try:
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        discard_staged(staged)
        raise
    for change in changes:
        if change.new is None:
            change.path.unlink(missing_ok=True)
            if not any(change.path.parent.iterdir()):  # e.g. k8s/ once its last manifest is gone
                change.path.parent.rmdir()


def discard_staged(staged: Staged) -> None:
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)


def remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=False)


def _make_staging(staging: Path) -> None:
    if not staging.is_dir():
        staging.mkdir(parents=True, exist_ok=True)
        (staging / ".gitignore").write_text("*\n", encoding="utf-8")


def leftovers(out: Path) -> list[Path]:
    """Temporary files an interrupted compile left in `out` (none after a run that finished)."""
    if not out.is_dir():
        return []
    found = [p for p in (out / STAGING_DIR).glob("*") if p.name != ".gitignore"]
    for pattern in _LEGACY_TMP:
        found.extend(p for p in out.glob(f"*/{pattern}") if p.is_file())
    if (out / STAGING_DIR).is_dir() and not found:
        found.append(out / STAGING_DIR)
    return sorted(found)


def remove_leftovers(out: Path) -> None:
    """Only under the exclusive lock: no other compile is writing, so every temporary file is a leftover."""
    for path in leftovers(out):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    shutil.rmtree(out / STAGING_DIR, ignore_errors=True)


@contextlib.contextmanager
def out_lock(out: Path, *, shared: bool) -> Iterator[None]:
    """Two compiles into one out/ never interleave: an exclusive lock for a compile that writes, a shared
    one for --check. It is an flock(2) on the folder that holds out/ (a directory can be locked without a
    file in it: nothing to commit or clean up), released when the process ends however it ends."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; compiles there are not serialised
        yield
        return
    parent = out.parent
    if not parent.is_dir():
        if shared:
            yield
            return
        parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"vllm-compile: waiting for another compile of {out} to finish", file=sys.stderr)
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)
