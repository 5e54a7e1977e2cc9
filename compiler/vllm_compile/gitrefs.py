"""Reading committed files at a git ref (the base of `vllm-compile diff`): I/O at the edge, git's CLI."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path


class GitError(RuntimeError):
    pass


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, encoding="utf-8", check=False
        )
    except OSError as exc:  # git not installed
        raise GitError(f"git: {exc.strerror}") from exc
    if done.returncode != 0:
        raise GitError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def default_base(root: Path) -> str:
    """The merge base of HEAD with the default branch (origin's HEAD, else main, else master), else HEAD."""
    candidates = []
    with contextlib.suppress(GitError):
        candidates.append(_git(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD").strip())
    candidates += ["origin/main", "main", "origin/master", "master"]
    for ref in candidates:
        try:
            return _git(root, "merge-base", "HEAD", ref).strip()
        except GitError:
            continue
    return _git(root, "rev-parse", "HEAD").strip()


def files_at(root: Path, ref: str, folder: str, name: str) -> dict[str, str]:
    """{path relative to `folder`: text} of every file called `name` under `folder` at `ref`."""
    listing = _git(root, "ls-tree", "-r", "--name-only", ref, "--", folder.rstrip("/") + "/")
    out = {}
    for path in listing.splitlines():
        if path.endswith("/" + name):
            out[path[len(folder.rstrip("/")) + 1 :]] = _git(root, "show", f"{ref}:{path}")
    return out
