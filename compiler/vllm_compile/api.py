"""The Python API: what the CLI calls, and what users call from their own code.

from vllm_compile import api
plan = api.plan_profile(api.load_profile_dict({...}))      # one deployment, in memory
result = api.compile_paths(["profiles/"])                  # the whole job: lock + artifacts in out/
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagnostics import INTERNAL_CODE, Diagnostic, DiagnosticError, ExitCode, diagnostics_for
from .facts.model_facts import ModelFacts
from .lock import LOCK_FILE, LockFile, build_lock, dump_lock, inputs_sha256, locked_model
from .plan import Plan, Resolved
from .profile.loader import LoadedProfile, is_base, load_profile, profile_from_dict
from .profile.v1 import Profile
from .resolve import ResolveError, resolve
from .write import (
    STAGING_DIR,
    Change,
    apply_changes,
    leftovers,
    out_lock,
    pending_changes,
    remove_leftovers,
    remove_tree,
)

PROFILE_SUFFIXES = (".yaml", ".yml")
POLICY_CODE = "oom-risk"
SUMMARY_KEYS = {"name", "gpu", "gpus", "starts", "oom_risk", "fails_policy", "kv_tokens", "max_concurrency",
                "reasons", "warnings", "capacity_ok", "capacity_notes"}  # fmt: skip


# --- one deployment ------------------------------------------------------------------------------


def load_profile_dict(data: dict[str, Any]) -> Profile:
    """Validate an in-memory profile exactly like a file (raises DiagnosticError)."""
    return profile_from_dict(data)


def plan_profile(profile: Profile, *, name: str = "profile", locked: ModelFacts | None = None) -> Plan:
    """Resolve the facts a profile names and run every planning pass."""
    return plan_resolved(resolve(profile, name, locked_model=locked))


def plan_resolved(resolved: Resolved) -> Plan:
    """The planning passes, pure: settings -> recommend -> memory -> verdict -> performance."""
    from .passes.memory import plan_memory
    from .passes.perf import estimate
    from .passes.policy import judge
    from .passes.recommend import recommend, validate
    from .passes.settings import decide_engine
    from .passes.workload import resolve_workload

    engine, decisions = decide_engine(resolved)
    engine, decisions = recommend(resolved, engine, decisions)
    memory = plan_memory(resolved, engine)
    verdict = judge(resolved, engine, memory)
    workload = resolve_workload(resolved.profile.workload)
    performance = (
        estimate(resolved, engine, memory, workload) if verdict.starts and workload is not None else None
    )
    # Tuning and capacity warnings mean nothing for a deployment that will not start.
    warnings = validate(resolved, engine, decisions, memory, performance) if verdict.starts else []
    if warnings:
        verdict = verdict.model_copy(update={"warnings": [*verdict.warnings, *warnings]})
    cluster = None
    if performance is not None and (
        workload.request_rate is not None or resolved.profile.deploy.replicas == "auto"
    ):
        from .passes.cluster import plan_cluster

        cluster = plan_cluster(resolved, engine, memory, workload).model_dump(mode="json")
    return Plan(
        resolved=resolved,
        engine=engine,
        decisions=decisions,
        memory=memory,
        verdict=verdict,
        performance=performance,
        cluster=cluster,
    )


# --- the whole job -------------------------------------------------------------------------------


@dataclass
class ProfileResult:
    path: Path
    display: str
    name: str | None = None
    plan: Plan | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    reused: bool = False  # inputs matched the lock: not re-planned
    summary: dict[str, Any] = field(default_factory=dict)  # what the one-line report shows

    @property
    def invalid(self) -> bool:
        """Invalid input (exit 2), as opposed to a valid profile that fails its policy (exit 1)."""
        return any(d.severity == "error" and not d.code.startswith(POLICY_CODE) for d in self.diagnostics)

    @property
    def fails_policy(self) -> bool:
        return bool(self.summary.get("fails_policy"))

    @property
    def internal(self) -> bool:
        """A bug in the compiler stopped this profile (exit 3), not its input."""
        return any(d.code == INTERNAL_CODE for d in self.diagnostics)


@dataclass
class CompileResult:
    root: Path
    out_dir: Path
    results: list[ProfileResult]
    stale: list[Path]  # output folders of profiles that no longer exist
    check: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)  # not tied to one profile
    leftovers: list[Path] = field(default_factory=list)  # temporary files of an interrupted compile (--check)

    @property
    def exit_code(self) -> ExitCode:
        if any(d.code == INTERNAL_CODE for d in self.diagnostics) or any(r.internal for r in self.results):
            return ExitCode.INTERNAL
        if any(d.severity == "error" for d in self.diagnostics) or any(r.invalid for r in self.results):
            return ExitCode.INVALID
        if any(r.fails_policy for r in self.results):
            return ExitCode.POLICY
        if self.check and (self.stale or self.leftovers or any(r.changes for r in self.results)):
            return ExitCode.POLICY
        return ExitCode.OK


PARALLEL_FROM = 32  # below this, starting workers costs more than it saves


def _map_profiles(compile_one, profiles: list[Path], jobs: int | None) -> Iterable[ProfileResult]:
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(profiles) < (PARALLEL_FROM if jobs is None else 2):
        return map(compile_one, profiles)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers inherit the imported modules (spawn would pay every import again).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        return list(
            pool.map(_without_plan(compile_one), profiles, chunksize=max(1, len(profiles) // (workers * 8)))
        )


class _without_plan:
    """A worker returns what the parent reports and writes; the Plan object stays behind (pickling it costs)."""

    def __init__(self, compile_one):
        self.compile_one = compile_one

    def __call__(self, path: Path) -> ProfileResult:
        item = self.compile_one(path)
        item.plan = None
        return item


def find_root(paths: Sequence[Path]) -> Path:
    """The git repository holding the first path, else the working directory: `out/` goes there."""
    start = (paths[0] if paths else Path.cwd()).resolve()
    for directory in [start, *start.parents]:
        if (directory / ".git").exists():
            return directory
    return Path.cwd().resolve()


def discover(paths: Iterable[Path]) -> list[Path]:
    """Profiles to compile: files as given, directories searched recursively; bases (`_*`) skipped."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            for candidate in path.rglob("*"):
                parts = candidate.relative_to(path).parts
                if (
                    candidate.suffix in PROFILE_SUFFIXES
                    and candidate.is_file()
                    and not any(p.startswith(("_", ".")) for p in parts)
                ):
                    found.add(candidate)
        elif not is_base(path):
            found.add(path)
    return sorted(found)


def _error_boundary(compile_fn):
    """Whatever escapes a compile (outside one profile's own boundary) is a diagnostic, never a traceback:
    an OSError (out/ not writable, disk full) is the environment's, anything else a bug (exit 3)."""

    @functools.wraps(compile_fn)
    def wrapper(paths: Sequence[str | Path], **options: Any) -> CompileResult:
        try:
            # The lock on out/ is held from reading the previous locks to the last rename.
            with out_lock(output_dir(paths, options.get("out_dir")), shared=bool(options.get("check"))):
                return compile_fn(paths, **options)
        except Exception as exc:
            if isinstance(exc, OSError):
                where = exc.filename if isinstance(exc.filename, str) else "<out>"
                diagnostics = [Diagnostic(where, 0, 0, "io", exc.strerror or str(exc))]
            else:
                diagnostics = diagnostics_for(exc, "<compile>")
            out = options.get("out_dir")
            return CompileResult(
                root=Path.cwd(),
                out_dir=Path(out) if out else Path.cwd() / "out",
                results=[],
                stale=[],
                check=bool(options.get("check")),
                diagnostics=diagnostics,
            )

    return wrapper


@_error_boundary
def compile_paths(
    paths: Sequence[str | Path],
    *,
    out_dir: str | Path | None = None,
    check: bool = False,
    prune: bool = False,
    force: bool = False,
    emit: list[str] | None = None,
    jobs: int | None = None,
) -> CompileResult:
    """Compile profiles into `out_dir/<name>/`: lock + artifacts. Writes nothing when `check`.

    `jobs`: worker processes for planning and rendering (default: one per core when there are many
    profiles). Results come back in input order and files are written by this process, so the output
    does not depend on it."""
    given = [Path(p) for p in paths]
    root = find_root(given)
    out = output_dir(given, out_dir)
    result = CompileResult(root=root, out_dir=out, results=[], stale=[], check=check)
    _leftovers(result)
    for path in given:
        if not path.exists():
            result.diagnostics.append(Diagnostic(str(path), 0, 0, "usage", "no such file or directory"))
    profiles = discover(p for p in given if p.exists())
    seen: dict[str, str] = {}
    compile_one = functools.partial(_compile_one, root=root, out=out, check=check, force=force, emit=emit)
    for item in _map_profiles(compile_one, profiles, jobs):
        if item.name is not None:
            if item.name in seen:
                item.diagnostics.append(
                    Diagnostic(
                        item.display,
                        0,
                        0,
                        "duplicate-name",
                        f"profile name '{item.name}' is also used by {seen[item.name]}",
                    )
                )
                item.changes = []
            else:
                seen[item.name] = item.display
        result.results.append(item)
    result.stale = _stale_outputs(out, root, given, result.results)
    if not check:
        for item in result.results:
            if item.changes and not item.invalid:
                apply_changes(item.changes, staging=out / STAGING_DIR)
        if prune:
            for directory in result.stale:
                remove_tree(directory)
        remove_leftovers(out)
    return result


def output_dir(paths: Sequence[str | Path], out_dir: str | Path | None) -> Path:
    """`out_dir`, else out/ at the root of the git repository holding the first path."""
    return Path(out_dir).resolve() if out_dir else find_root([Path(p) for p in paths]) / "out"


def _leftovers(result: CompileResult) -> None:
    """An interrupted compile's temporary files: removed by a compile (it holds the exclusive lock, so
    they are nobody's), reported by --check."""
    if not result.check:
        remove_leftovers(result.out_dir)
        return
    result.leftovers = leftovers(result.out_dir)
    for path in result.leftovers:
        result.diagnostics.append(
            Diagnostic(
                _relative_to_root(path, result.root),
                0,
                0,
                "leftover",
                "temporary file of an interrupted compile; the next compile removes it",
                "warning",
            )
        )


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _relative_to_root(path: Path, root: Path) -> str:
    """Paths in locks are relative to the root (never absolute: locks are identical on every machine)."""
    return Path(os.path.relpath(path.resolve(), root)).as_posix()


def _compile_one(
    path: Path, *, root: Path, out: Path, check: bool, force: bool, emit: list[str] | None
) -> ProfileResult:
    """One profile, inside the error boundary: any exception becomes this profile's diagnostics
    (at the field it names, where it names one) and nothing of it is written."""
    item = ProfileResult(path=path, display=_display(path))
    seen: list[LoadedProfile] = []
    try:
        return _compile_loaded(item, seen, root=root, out=out, check=check, force=force, emit=emit)
    except Exception as exc:
        position = seen[0].position if seen else None
        item.diagnostics = diagnostics_for(exc, item.display, position)
        item.changes, item.plan, item.summary, item.reused = [], None, {}, False
        return item


def _compile_loaded(
    item: ProfileResult,
    seen: list[LoadedProfile],
    *,
    root: Path,
    out: Path,
    check: bool,
    force: bool,
    emit: list[str] | None,
) -> ProfileResult:
    path = item.path
    try:
        loaded = load_profile(path, item.display)
    except DiagnosticError as exc:
        item.diagnostics = list(exc.diagnostics)
        return item
    seen.append(loaded)
    item.name = loaded.name
    directory = out / loaded.name
    previous = LockFile.read(directory / LOCK_FILE)
    try:
        locked = locked_model(previous) if _facts_need_lock(loaded.profile, path.parent) else None
        resolved = resolve(loaded.profile, loaded.name, locked_model=locked, base_dir=path.parent)
    except ResolveError as exc:
        item.diagnostics = [Diagnostic(*loaded.position(exc.path), "resolve", str(exc))]
        return item
    targets = emit or list(dict.fromkeys(loaded.profile.deploy.targets))
    # What is emitted is an input: a lock written under --emit is not current for a plain run, and
    # the reverse (the lock's artifact list would not match what is asked for).
    overridden = emit is not None and targets != list(dict.fromkeys(loaded.profile.deploy.targets))
    inputs_hash = inputs_sha256({**loaded.data, "x-emit": targets} if overridden else loaded.data, resolved)
    summary = previous.section("summary") if previous and not force and not check else None
    if (
        isinstance(summary, dict)
        and summary.keys() >= SUMMARY_KEYS
        and _lock_is_current(previous, inputs_hash, directory)
    ):
        item.reused = True
        item.summary = summary
        item.diagnostics.extend(_policy_diagnostics(summary, loaded))
        return item
    from .passes.settings import SettingsError
    from .render import RenderError, render_artifacts  # only when something is re-planned: start-up time

    try:
        plan = plan_resolved(resolved)
    except SettingsError as exc:
        item.diagnostics = [Diagnostic(*loaded.position(exc.path), "setting", str(exc))]
        return item
    item.plan = plan
    try:
        artifacts = render_artifacts(plan, targets)
    except RenderError as exc:  # e.g. an unknown flag in vllm.extra_args, a newline in a served name
        item.diagnostics = [Diagnostic(*loaded.position(exc.path), "render", str(exc))]
        return item
    lock = build_lock(
        plan,
        profile_path=_relative_to_root(path, root),
        profile_data=loaded.data,
        inputs_hash=inputs_hash,
        artifacts=artifacts,
    )
    lock["summary"] = _summary_from_lock(lock)
    files = {**artifacts, LOCK_FILE: dump_lock(lock)}
    written_before = [LOCK_FILE, *(previous.artifacts() if previous else {})]
    item.changes = pending_changes(directory, files, written_before)
    item.summary = lock["summary"]
    item.diagnostics.extend(_policy_diagnostics(item.summary, loaded))
    return item


def _facts_need_lock(profile: Profile, base_dir: Path | None = None) -> bool:
    """Catalog models and local directories resolve without the network; only Hub facts come from the lock."""
    from .facts.model_catalog import catalog_row
    from .facts.models import local_model_path

    spec = profile.model
    local = local_model_path(spec.id, base_dir).is_dir()
    return spec.revision is not None or (catalog_row(spec.id) is None and not local)


def _lock_is_current(lock: LockFile, inputs_hash: str, directory: Path) -> bool:
    from .lock import sha256_text

    if lock.field("inputs_sha256") != inputs_hash:
        return False
    for rel, digest in lock.artifacts().items():
        try:
            if sha256_text((directory / rel).read_text(encoding="utf-8")) != digest:
                return False
        except (OSError, UnicodeDecodeError):
            return False
    return True


def _summary_from_lock(lock: dict[str, Any]) -> dict[str, Any]:
    """What the one-line report and the policy need, kept in the lock so an unchanged profile is not re-read."""
    engine, verdict, kv = lock["engine"], lock["verdict"], lock["memory"]["kv_cache"]
    gpu = lock["resolved"]["gpu"]
    return {
        "name": lock["name"],
        "gpu": gpu["name"],
        "gpus": engine["tensor_parallel_size"]
        * engine["pipeline_parallel_size"]
        * engine["data_parallel_size"],
        "starts": verdict["starts"],
        "oom_risk": verdict["oom_risk"],
        "fails_policy": verdict["fails_policy"],
        "kv_tokens": kv["tokens"],
        "max_concurrency": kv["max_concurrency"],
        "reasons": verdict["reasons"],
        "warnings": verdict["warnings"],
        "capacity_ok": verdict["capacity_ok"],
        "capacity_notes": verdict["capacity_notes"],
    }


def _policy_diagnostics(summary: dict[str, Any], loaded: LoadedProfile) -> list[Diagnostic]:
    """The verdict as diagnostics, at the profile's model line, where a reviewer looks first.
    Made from the lock's summary, so a profile that is not re-planned still says why it fails."""
    messages: list[tuple[str, str, str]] = []
    if summary["fails_policy"]:
        why = "; ".join(summary["reasons"]) or "policy failed"
        messages.append((f"{POLICY_CODE}-{summary['oom_risk'].lower()}", why, "error"))
    if summary["starts"]:  # capacity and tuning warnings mean nothing for a deployment that will not start
        notes = [] if summary["capacity_ok"] else summary["capacity_notes"]
        messages.extend(("warning", warning, "warning") for warning in [*notes, *summary["warnings"]])
    if not messages:
        return []
    where = loaded.position(("model", "id"))
    return [Diagnostic(*where, code, message, severity) for code, message, severity in messages]


def _stale_outputs(out: Path, root: Path, given: list[Path], results: list[ProfileResult]) -> list[Path]:
    """Output folders whose lock names a profile, under the given directories, that is gone or now
    compiles to another name. A profile that fails to load keeps its output (it is not stale, it is broken)."""
    if not out.is_dir():
        return []
    scopes = [_relative_to_root(p, root).rstrip("/") + "/" for p in given if p.is_dir()]
    names_by_source = {_relative_to_root(r.path, root): r.name for r in results}
    stale = []
    compiled = {r.name for r in results if r.name}
    for lock_path in sorted(out.glob(f"*/{LOCK_FILE}")):
        if lock_path.parent.name in compiled:
            continue
        lock = LockFile.read(lock_path)
        if lock is None:
            continue
        source = lock.field("profile") or ""
        if not any(scope == "./" or source.startswith(scope) for scope in scopes):
            continue
        gone = not (root / source).is_file()
        renamed = names_by_source.get(source) not in (None, lock_path.parent.name)
        if gone or renamed:
            stale.append(lock_path.parent)
    return stale
