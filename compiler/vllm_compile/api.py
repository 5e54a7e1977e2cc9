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
    Staged,
    apply_changes,
    commit_staged,
    discard_staged,
    leftovers,
    out_lock,
    pending_changes,
    remove_leftovers,
    remove_tree,
    stage_changes,
)

PROFILE_SUFFIXES = (".yaml", ".yml")
POLICY_CODE = "oom-risk"
UNMODELLED_CODE = "not-modelled"  # a flag in vllm.extra_args no pass models (passes/extra_args.py)
SUMMARY_KEYS = {"name", "gpu", "gpus", "starts", "oom_risk", "fails_policy", "kv_tokens", "max_concurrency",
                "reasons", "warnings", "capacity_ok", "capacity_notes"}  # fmt: skip


# --- one deployment ------------------------------------------------------------------------------


def load_profile_dict(data: dict[str, Any]) -> Profile:
    """Validate an in-memory profile exactly like a file (raises DiagnosticError)."""
    return profile_from_dict(data)


def plan_profile(
    profile: Profile, *, name: str = "profile", locked: ModelFacts | None = None, base_dir: Path | None = None
) -> Plan:
    """Resolve the facts a profile names and run every planning pass. `base_dir`: the profile's folder,
    where relative files it names (`workload.trace`) are read from (default: the working directory)."""
    return plan_resolved(resolve(profile, name, locked_model=locked, base_dir=base_dir))


def _price_per_gpu_hour(resolved: Resolved):
    """The layouts view's cost axis: USD per GPU-hour of a GPU (profile override, then the price table)."""
    from .facts.prices import gpu_price

    def price(gpu: Any) -> float | None:
        found = gpu_price(gpu, resolved.profile.cost)
        return found.usd_per_gpu_hour if found is not None else None

    return price


def plan_resolved(resolved: Resolved, calibration: Sequence[Any] = ()) -> Plan:
    """The planning passes, pure: settings -> recommend -> memory -> verdict -> performance.

    `calibration`: (file, observe.calibration.CalibrationRecord) pairs; the first that matches the
    decided engine replaces the modelled terms vLLM's code does not determine (passes.calibration)."""
    from .passes.extra_args import annotate_decisions, with_unmodelled
    from .passes.layouts import plan_layouts
    from .passes.memory import plan_memory
    from .passes.perf import estimate
    from .passes.policy import judge
    from .passes.recommend import recommend_with_candidates, validate
    from .passes.settings import decide_engine
    from .passes.workload import workload_of

    if resolved.roles:  # disaggregated prefill/decode: two ordinary plans, then passes/disaggregation.py
        from .passes.disaggregation import plan_disaggregated

        return plan_disaggregated(resolved, lambda role: plan_resolved(role, calibration))
    engine, decisions = decide_engine(resolved)
    decisions = annotate_decisions(resolved, decisions)
    workload = workload_of(resolved)
    engine, decisions, searched = recommend_with_candidates(resolved, engine, decisions, workload)
    from .passes.capture_sizes import plan_capture

    engine, decisions, graphs = plan_capture(resolved, engine, decisions, workload)
    memory = plan_memory(resolved, engine)
    used = None
    if calibration:
        from .observe.calibration import find_match
        from .passes.calibration import apply_calibration

        files = {id(record): source for source, record in calibration}
        record = find_match(
            [r for _, r in calibration],
            str(resolved.model.id),
            resolved.gpu.key,
            resolved.vllm.version,
            engine.model_dump(),
        )
        if record is not None:
            memory, applied = apply_calibration(resolved, engine, memory, record, files[id(record)])
            used = [applied]
    verdict = with_unmodelled(resolved, judge(resolved, engine, memory))
    from .passes import kv_transfer

    connector = kv_transfer.plan_connector(resolved, engine, memory)
    if connector is not None:
        verdict = kv_transfer.apply(resolved, connector, verdict)
    if graphs is not None and graphs.warnings and verdict.starts:
        verdict = verdict.model_copy(update={"warnings": [*verdict.warnings, *graphs.warnings]})
    layouts = plan_layouts(resolved, engine, decisions, workload, searched, _price_per_gpu_hour(resolved))
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
    from .passes.cost import plan_cost

    cost = plan_cost(resolved, engine, performance, cluster)
    plan = Plan(
        resolved=resolved,
        engine=engine,
        decisions=decisions,
        memory=memory,
        verdict=verdict,
        performance=performance,
        cluster=cluster,
        calibration=used,
        cost=cost.model_dump(mode="json") if cost is not None else None,
        cuda_graphs=graphs.model_dump(mode="json") if graphs is not None else None,
        layouts=layouts,
        kv_connector=connector.model_dump(mode="json") if connector is not None else None,
    )
    from .passes.speculative_advice import advise

    # Proposes speculative decoding where it pays (turns it on if allowed); re-plans with the same records.
    return advise(plan, lambda other: plan_resolved(other, calibration))


DEFAULT_RECOMMEND_GPUS = ("H100", "H200", "A100 80GB", "L40S", "MI300X", "L4", "B200")


def recommend_gpus(
    profile_data: dict[str, Any],
    *,
    gpus_available: Sequence[str] | None = None,
    counts: Sequence[int] | None = None,
    quantizations: Sequence[str | None] = (None, "fp8"),
    kv_dtypes: Sequence[str] = ("auto", "fp8"),
    base_dir: Path | None = None,
) -> list[Any]:
    """Rank GPU type x count x TP/PP x quantization x KV dtype x replicas for the profile's model and
    workload by $ per million output tokens (passes.gpu_recommend). `profile_data` needs `model.id`;
    its hardware section is replaced per layout. Returns passes.gpu_recommend.Row, ranked."""
    from .facts.gpus import resolve_gpu
    from .passes.gpu_recommend import GPU_COUNTS, search_gpus

    names = list(gpus_available or DEFAULT_RECOMMEND_GPUS)
    specs = []
    for name in names:
        spec = resolve_gpu(name)  # UnknownGpuError (a ValueError) names the closest GPUs
        if spec.key not in {s.key for s in specs}:
            specs.append(spec)
    data = {**profile_data, "hardware": {"gpu_name": specs[0].key}}
    profile = load_profile_dict(data)
    base = resolve(profile, "recommend", base_dir=base_dir)
    return search_gpus(
        base,
        specs,
        counts=tuple(counts or GPU_COUNTS),
        quantizations=tuple(quantizations),
        kv_dtypes=tuple(kv_dtypes),
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
    staged: Staged = field(default_factory=list)  # its new files, written by a worker, not yet renamed
    summary: dict[str, Any] = field(default_factory=dict)  # what the one-line report shows

    @property
    def invalid(self) -> bool:
        """Invalid input (exit 2), as opposed to a valid profile that fails its policy (exit 1)."""
        return any(
            d.severity == "error" and not d.code.startswith((POLICY_CODE, UNMODELLED_CODE))
            for d in self.diagnostics
        )

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
            pool.map(_in_worker(compile_one), profiles, chunksize=max(1, len(profiles) // (workers * 8)))
        )


class _in_worker:
    """A worker returns what the parent reports, with its new files already staged (writing them is
    ~15% of a compile; the parent only renames them): the Plan object stays behind (pickling it costs)."""

    def __init__(self, compile_one):
        self.compile_one = compile_one

    def __call__(self, path: Path) -> ProfileResult:
        item = self.compile_one(path)
        item.plan = None
        options = self.compile_one.keywords["options"]
        if item.changes and not item.invalid and not options.check:
            item.staged = stage_changes(item.changes, staging=options.out / STAGING_DIR)
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
    from .repo_config import LoadedConfig, RepoConfig, load_repo_config

    try:
        config = load_repo_config(root)
        calibration = load_calibration(root, config.config.calibration)
    except DiagnosticError as exc:
        out = Path(out_dir).resolve() if out_dir else root / "out"
        return CompileResult(
            root=root, out_dir=out, results=[], stale=[], check=check, diagnostics=exc.diagnostics
        )
    if config.file is None and not calibration:
        config = LoadedConfig(config=RepoConfig())
    out = Path(out_dir).resolve() if out_dir else root / (config.config.out or "out")
    result = CompileResult(root=root, out_dir=out, results=[], stale=[], check=check)
    _leftovers(result)
    for path in given:
        if not path.exists():
            result.diagnostics.append(Diagnostic(str(path), 0, 0, "usage", "no such file or directory"))
    profiles = discover(p for p in given if p.exists())
    seen: dict[str, str] = {}
    compile_one = functools.partial(
        _compile_one,
        options=_CompileOptions(root, out, check, force, emit, config, tuple(calibration)),
    )
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
            if item.staged and not item.changes:  # staged by a worker, then refused (a duplicate name)
                discard_staged(item.staged)
            elif item.staged:
                commit_staged(item.changes, item.staged)
            elif item.changes and not item.invalid:
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


@dataclass(frozen=True)
class _CompileOptions:
    """What every profile of one compile shares."""

    root: Path
    out: Path
    check: bool
    force: bool
    emit: list[str] | None
    config: Any = None
    calibration: tuple[Any, ...] = ()


def _compile_one(path: Path, *, options: _CompileOptions) -> ProfileResult:
    """One profile, inside the error boundary: any exception becomes this profile's diagnostics
    (at the field it names, where it names one) and nothing of it is written."""
    item = ProfileResult(path=path, display=_display(path))
    seen: list[LoadedProfile] = []
    try:
        return _compile_loaded(item, seen, options)
    except Exception as exc:
        position = seen[0].position if seen else None
        item.diagnostics = diagnostics_for(exc, item.display, position)
        item.changes, item.plan, item.summary, item.reused = [], None, {}, False
        return item


def _compile_loaded(
    item: ProfileResult, seen: list[LoadedProfile], options: _CompileOptions
) -> ProfileResult:
    root, out, check, force, emit = options.root, options.out, options.check, options.force, options.emit
    config, calibration = options.config, options.calibration
    path = item.path
    try:
        loaded = load_profile(path, item.display, defaults=config.config.defaults if config else None)
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
    relevant = _relevant_calibration(calibration, resolved)
    config_record = config.lock_record() if config else None
    extra = {
        **({"calibration": [r.model_dump(mode="json") for _, r in relevant]} if relevant else {}),
        **({"config": config_record} if config_record else {}),
    }
    targets = emit or list(dict.fromkeys(loaded.profile.deploy.targets))
    # What is emitted is an input: a lock written under --emit is not current for a plain run, and
    # the reverse (the lock's artifact list would not match what is asked for).
    overridden = emit is not None and targets != list(dict.fromkeys(loaded.profile.deploy.targets))
    inputs_hash = inputs_sha256(
        {**loaded.data, "x-emit": targets} if overridden else loaded.data, resolved, extra
    )
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
        plan = plan_resolved(resolved, relevant)
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
    if config_record:
        from .lock import normalise

        lock["config"] = normalise(config_record)
    files = {**artifacts, LOCK_FILE: dump_lock(lock)}
    written_before = [LOCK_FILE, *(previous.artifacts() if previous else {})]
    item.changes = pending_changes(directory, files, written_before)
    item.summary = lock["summary"]
    item.diagnostics.extend(_policy_diagnostics(item.summary, loaded))
    return item


def load_calibration(root: Path, patterns: Sequence[str]) -> list[tuple[str, Any]]:
    """(file relative to the root, record) for every record of the repository's calibration files."""
    paths = [path for pattern in patterns for path in sorted(root.glob(pattern))]
    if not paths:
        return []  # the common case: observe.calibration is not imported (start-up time)
    from .observe.calibration import CalibrationError, read_file

    records: list[tuple[str, Any]] = []
    for path in paths:
        rel = _relative_to_root(path, root)
        try:
            records.extend((rel, record) for record in read_file(path).records)
        except CalibrationError as exc:
            raise DiagnosticError([Diagnostic(rel, 0, 0, "calibration", str(exc))]) from exc
    return records


def _relevant_calibration(calibration: Sequence[Any], resolved: Resolved) -> list[tuple[str, Any]]:
    """The records that can match this deployment (same model, GPU, release): inputs of its plan."""
    if not calibration:
        return []
    from .observe.calibration import record_model_id

    model = record_model_id(str(resolved.model.id))
    return [
        (source, r)
        for source, r in calibration
        if r.model == model and r.gpu == resolved.gpu.key and r.vllm_version == resolved.vllm.version
    ]


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
    gpus = engine["tensor_parallel_size"] * engine["pipeline_parallel_size"] * engine["data_parallel_size"]
    pools = (lock.get("disaggregation") or {}).get("pools")
    if pools:  # a `roles:` profile: every GPU of both pools
        gpus = sum(
            p["gpus_per_replica"] * (p["replicas"] if isinstance(p["replicas"], int) else 1)
            for p in pools.values()
        )
    return {
        "name": lock["name"],
        "gpu": gpu["name"],
        "gpus": gpus,
        "starts": verdict["starts"],
        "oom_risk": verdict["oom_risk"],
        "fails_policy": verdict["fails_policy"],
        "kv_tokens": kv["tokens"],
        "max_concurrency": kv["max_concurrency"],
        "reasons": verdict["reasons"],
        "warnings": verdict["warnings"],
        "capacity_ok": verdict["capacity_ok"],
        "capacity_notes": verdict["capacity_notes"],
        **_unmodelled_summary(lock),
    }


def _unmodelled_summary(lock: dict[str, Any]) -> dict[str, Any]:
    """Whether the policy fails only because of not-modelled flags (the diagnostic then says so)."""
    policy = lock["inputs"]["profile"].get("policy") or {}
    if not policy.get("fail_on_unmodelled") or not lock.get("extra_args", {}).get("not_modelled"):
        return {}
    order = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
    fail_on = str(policy.get("fail_on", "high")).upper()
    risk = lock["verdict"]["oom_risk"]
    return {"fail_on_unmodelled": True, "fails_on_risk": fail_on != "NEVER" and order[risk] >= order[fail_on]}


def _policy_diagnostics(summary: dict[str, Any], loaded: LoadedProfile) -> list[Diagnostic]:
    """The verdict as diagnostics, at the profile's model line, where a reviewer looks first.
    Made from the lock's summary, so a profile that is not re-planned still says why it fails."""
    messages: list[tuple[str, str, str]] = []
    prefix = UNMODELLED_CODE + ": "
    unmodelled = [w[len(prefix) :] for w in summary["warnings"] if w.startswith(prefix)]
    others = [w for w in summary["warnings"] if not w.startswith(prefix)]
    unmodelled_fails = bool(unmodelled) and summary.get("fail_on_unmodelled", False)
    if summary["fails_policy"] and not (unmodelled_fails and not summary.get("fails_on_risk", True)):
        why = "; ".join(summary["reasons"]) or "policy failed"
        messages.append((f"{POLICY_CODE}-{summary['oom_risk'].lower()}", why, "error"))
    # Never silent, whether or not it starts; an error when the policy says so (exit 1, like a risk).
    messages.extend((UNMODELLED_CODE, m, "error" if unmodelled_fails else "warning") for m in unmodelled)
    if summary["starts"]:  # capacity and tuning warnings mean nothing for a deployment that will not start
        notes = [] if summary["capacity_ok"] else summary["capacity_notes"]
        messages.extend(("warning", warning, "warning") for warning in [*notes, *others])
    if not messages:
        return []
    where = loaded.position(("model", "id"))
    extra = loaded.position(("vllm", "extra_args"))
    return [
        Diagnostic(*(extra if code == UNMODELLED_CODE else where), code, message, severity)
        for code, message, severity in messages
    ]


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


# --- comparing with the real world and with other locks (diff, verify) ---------------------------


def read_lock(path: str | Path) -> dict[str, Any] | None:
    """A lockfile's data, or None when the file is not a lock of this lock version."""
    lock = LockFile.read(Path(path))
    return lock.data() if lock else None


def lock_errors(lock: dict[str, Any]) -> list[str]:
    """Why a lock's data does not match the lock model (lock_model.LockV1); empty when it does."""
    from pydantic import ValidationError

    from .lock_model import LockV1

    try:
        LockV1.model_validate(lock)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return []


def lock_for(path: str | Path) -> dict[str, Any]:
    """The lock of a deployment: read when `path` is a lock, else the profile compiled (in a temporary
    folder, nothing under out/ changes). Raises DiagnosticError for invalid input."""
    path = Path(path)
    if not path.is_file():
        raise DiagnosticError([Diagnostic(str(path), 0, 0, "usage", "no such file")])
    lock = read_lock(path)
    if lock is not None:
        errors = lock_errors(lock)
        if errors:
            raise DiagnosticError(
                [Diagnostic(str(path), 0, 0, "lock", f"not a valid lock: {e}") for e in errors[:5]]
            )
        return lock
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vllm-compile-") as tmp:
        result = compile_paths([path], out_dir=tmp, emit=["command"])
        item = result.results[0] if result.results else None
        if item is None or item.invalid or item.name is None:
            diagnostics = [*result.diagnostics, *(item.diagnostics if item else [])]
            raise DiagnosticError(
                diagnostics or [Diagnostic(str(path), 0, 0, "usage", "not a profile or lock")]
            )
        data = read_lock(Path(tmp) / item.name / LOCK_FILE)
    if data is None:
        raise DiagnosticError([Diagnostic(str(path), 0, 0, "usage", "the profile did not compile to a lock")])
    return data


def verify(
    target: str | Path,
    logs: Sequence[str | Path],
    *,
    tolerance: float | None = None,
    floor_gib: float | None = None,
) -> list[Any]:
    """Compare a lock (or a profile, compiled) with vLLM start-up logs: compare.verify.VerifyReport each."""
    from .compare.verify import DEFAULT_FLOOR_GIB, DEFAULT_TOLERANCE, verify_startup
    from .observe.vllm_log import parse_log

    lock = lock_for(target)
    if tolerance is None or floor_gib is None:  # the repository configuration's `verify:` defaults
        from .repo_config import load_repo_config

        configured = load_repo_config(find_root([Path(target)])).config.verify
        tolerance = configured.tolerance if tolerance is None else tolerance
        floor_gib = configured.floor_gib if floor_gib is None else floor_gib
    reports = []
    for log_path in logs:
        path = Path(log_path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DiagnosticError(
                [Diagnostic(str(path), 0, 0, "usage", f"cannot read: {exc.strerror}")]
            ) from exc
        from .observe.bench_result import BenchError, parse_bench

        try:
            bench = parse_bench(text)
        except BenchError as exc:
            raise DiagnosticError([Diagnostic(str(path), 0, 0, "bench", str(exc))]) from exc
        if bench is not None:
            reports.append(_verify_bench(lock, bench, _display(path)))
            continue
        log = parse_log(text)
        if not (log.settings or log.ranks or log.failure or log.vllm_version):
            raise DiagnosticError(
                [
                    Diagnostic(
                        str(path), 0, 0, "log", "no vLLM start-up lines (settings, memory figures, errors)"
                    )
                ]
            )
        reports.append(
            verify_startup(
                lock,
                log,
                log_name=_display(path),
                tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
                floor_gib=DEFAULT_FLOOR_GIB if floor_gib is None else floor_gib,
            )
        )
    return reports


@dataclass
class DiffResult:
    base: str  # the ref or folder compared against
    diffs: list[Any]  # compare.lock_diff.DeploymentDiff, changed deployments only
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def regressions(self) -> bool:
        return any(d.regressions for d in self.diffs)


def _out_folder(root: Path) -> str:
    """The output folder relative to the root: the repository config's `out`, else out/."""
    from .repo_config import load_repo_config

    try:
        return load_repo_config(root).config.out or "out"
    except DiagnosticError:
        return "out"


def _locks_in(folder: Path) -> dict[str, dict[str, Any]]:
    locks = {}
    for path in sorted(folder.glob(f"*/{LOCK_FILE}")):
        data = read_lock(path)
        if data is not None and not lock_errors(data):
            locks[path.parent.name] = data
    return locks


def diff(
    paths: Sequence[str | Path] = (),
    *,
    base: str | None = None,
    base_dir: str | Path | None = None,
    policy: Any = None,
    head_out: str | Path | None = None,
) -> DiffResult:
    """What the working tree's profiles do to every deployment, against the locks committed at `base`
    (default: the merge base with the default branch) or in `base_dir`. `head_out`: read the working
    tree's locks from that folder (its committed out/) instead of compiling the profiles."""
    import tempfile

    from .compare.lock_diff import diff_all
    from .gitrefs import GitError, default_base, files_at
    from .yaml_text import load_yaml

    given = [Path(p) for p in paths] or [Path("profiles") if Path("profiles").is_dir() else Path(".")]
    root = find_root(given)
    diagnostics: list[Diagnostic] = []
    if head_out is not None:
        after = _locks_in(Path(head_out))
        scope = set(after)
    else:
        with tempfile.TemporaryDirectory(prefix="vllm-compile-diff-") as tmp:
            head = compile_paths(given, out_dir=tmp)
            after = _locks_in(Path(tmp))
        diagnostics = [*head.diagnostics, *(d for r in head.results if r.invalid for d in r.diagnostics)]
        scope = {r.name for r in head.results if r.name}
    if base_dir is not None:
        label = str(base_dir)
        before = _locks_in(Path(base_dir))
    else:
        try:
            ref = base or default_base(root)
            folder = _out_folder(root)
            texts = files_at(root, ref, folder, LOCK_FILE)
        except GitError as exc:
            return DiffResult(
                base=base or "", diffs=[], diagnostics=[Diagnostic(str(root), 0, 0, "git", str(exc))]
            )
        label = ref
        before = {}
        for rel, text in texts.items():
            try:
                data = load_yaml(text)
            except Exception:  # a corrupt committed lock: handled as invalid below
                data = None
            if isinstance(data, dict) and not lock_errors(data):
                before[rel.split("/")[0]] = data
            else:  # a corrupt or foreign committed lock: compared as absent, and said so
                diagnostics.append(
                    Diagnostic(f"{folder}/{rel}", 0, 0, "lock", f"at {ref[:12]}: not a valid lock", "warning")
                )
    # Deployments outside the compiled paths are not this change's business; a removed profile's lock is.
    sources = {str(Path(os.path.relpath(p.resolve(), root)).as_posix()) for p in given}
    before = {
        name: lock
        for name, lock in before.items()
        if name in scope or any(str(lock.get("profile", "")).startswith(s.rstrip("/")) for s in sources)
    }
    return DiffResult(base=label, diffs=diff_all(before, after, policy), diagnostics=diagnostics)


def record_calibration(file: str | Path, target: str | Path, logs: Sequence[str | Path]) -> list[str]:
    """`verify --record`: append each log's figures to a repository calibration file; the new record ids.

    The file must be inside the repository holding the profile or lock (records travel with the repo)."""
    from .observe.calibration import append_records, record_from
    from .observe.vllm_log import parse_log

    lock = lock_for(target)
    root = find_root([Path(target)])
    path = Path(file).resolve()
    if not path.is_relative_to(root):
        raise DiagnosticError(
            [Diagnostic(str(file), 0, 0, "usage", f"the calibration file must be inside {root}")]
        )
    source = lock.get("profile")
    records = []
    for log_path in logs:
        log = parse_log(Path(log_path).read_text(encoding="utf-8", errors="replace"))
        if log.failure is None and log.figures.kv_cache_gib is not None:  # a start-up that sized its KV cache
            records.append(record_from(lock, log, source))
    return append_records(path, records)


def repo_diff_policy(paths: Sequence[str | Path] = ()) -> dict[str, float]:
    """The repository configuration's diff thresholds (vllm-compile.yaml `diff:`)."""
    from .repo_config import load_repo_config

    given = [Path(p) for p in paths] or [Path.cwd()]
    try:
        return load_repo_config(find_root(given)).config.diff.model_dump()
    except DiagnosticError:
        return {}


def _verify_bench(lock: dict[str, Any], bench: Any, name: str) -> Any:
    """The lock's estimate re-planned at the benchmark's concurrency and lengths, engine pinned."""
    import copy

    from .compare.bench import verify_bench

    concurrency, how = bench.concurrency()
    engine = lock["engine"]
    data = copy.deepcopy(lock["inputs"]["profile"])
    data["workload"] = {
        "concurrency": concurrency,
        "prompt_tokens": bench.prompt_tokens,
        "gen_tokens": bench.gen_tokens,
    }
    data.setdefault("model", {})["max_model_len"] = engine["max_model_len"]
    data["parallelism"] = {
        key: engine[key]
        for key in (
            "tensor_parallel_size",
            "pipeline_parallel_size",
            "data_parallel_size",
            "enable_expert_parallel",
        )
    }
    vllm = data.setdefault("vllm", {})
    for key in (
        "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "block_size", "kv_cache_dtype",
        "enforce_eager", "enable_prefix_caching", "enable_chunked_prefill",
    ):  # fmt: skip
        vllm[key] = engine[key]
    data.get("deploy", {}).pop("replicas", None)
    try:
        plan = plan_profile(
            load_profile_dict(data),
            name=lock["name"],
            locked=ModelFacts.model_validate(lock["resolved"]["model"]),
        )
    except (DiagnosticError, ResolveError, ValueError) as exc:
        raise DiagnosticError(
            [Diagnostic(name, 0, 0, "bench", f"cannot re-plan for the benchmark: {exc}")]
        ) from exc
    if plan.performance is None:
        raise DiagnosticError([Diagnostic(name, 0, 0, "bench", "the deployment does not start: no estimate")])
    return verify_bench(lock["name"], name, bench, plan.performance, how)


# --- questions the web page asks (ui/ has no logic of its own) -----------------------------------

# What-if form field -> where it lives in a profile.
WHAT_IF_FIELDS: dict[str, tuple[str, ...]] = {
    "gpu_name": ("hardware", "gpu_name"),
    "gpus": ("hardware", "gpus"),
    "tensor_parallel_size": ("parallelism", "tensor_parallel_size"),
    "pipeline_parallel_size": ("parallelism", "pipeline_parallel_size"),
    "max_model_len": ("model", "max_model_len"),
    "gpu_memory_utilization": ("vllm", "gpu_memory_utilization"),
    "quantization": ("model", "quantization"),
    "kv_cache_dtype": ("vllm", "kv_cache_dtype"),
    "concurrency": ("workload", "concurrency"),
    "request_rate": ("workload", "request_rate"),
}


def plan_fleet(paths: Sequence[str | Path], *, out_dir: str | Path | None = None) -> CompileResult:
    """Every profile under `paths` planned, nothing written (each result keeps its Plan)."""
    return compile_paths(paths, out_dir=out_dir, check=True, emit=["report"], jobs=1)


def render_plan(plan: Plan, targets: Sequence[str]) -> dict[str, str]:
    """A plan's artifacts (relative path -> text) without writing them; raises RenderError."""
    from .render import render_artifacts

    return render_artifacts(plan, list(targets))


@dataclass
class WhatIf:
    plan: Plan | None
    diff: str  # the profile file's unified diff that makes this change
    changes: dict[tuple[str, ...], Any]
    diagnostics: list[Diagnostic] = field(default_factory=list)


def what_if(path: str | Path, form: dict[str, Any], *, out_dir: str | Path | None = None) -> WhatIf:
    """Re-plan a profile with the WHAT_IF_FIELDS in `form` changed (None or "" = as the profile says;
    "auto" = let the compiler decide), and the diff of the profile file that would apply it."""
    from .profile.edit import set_values, unified_diff

    path = Path(path)
    changes: dict[tuple[str, ...], Any] = {}
    for key, where in WHAT_IF_FIELDS.items():
        value = form.get(key)
        if value is not None and value != "":
            changes[where] = _coerce(value)
    # A workload is driven by one of concurrency (closed loop) or request rate (open loop).
    if ("workload", "concurrency") in changes:
        changes.setdefault(("workload", "request_rate"), None)
    elif ("workload", "request_rate") in changes:
        changes[("workload", "concurrency")] = None
    try:
        loaded = load_profile(path, _display(path))
    except DiagnosticError as exc:
        return WhatIf(None, "", changes, list(exc.diagnostics))
    data = _deep_copy(loaded.data)
    for where, value in changes.items():
        node = data
        for key in where[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if value is None:
            node.pop(where[-1], None)
        else:
            node[where[-1]] = value
    text = path.read_text(encoding="utf-8")
    diff = unified_diff(text, set_values(text, changes), _display(path))
    root = find_root([path])
    lock = LockFile.read((Path(out_dir) if out_dir else root / "out") / loaded.name / LOCK_FILE)
    try:
        profile = profile_from_dict(data, _display(path))
        plan = plan_profile(profile, name=loaded.name, locked=locked_model(lock))
    except DiagnosticError as exc:
        return WhatIf(None, diff, changes, list(exc.diagnostics))
    except ResolveError as exc:
        return WhatIf(None, diff, changes, [Diagnostic(_display(path), 0, 0, "resolve", str(exc))])
    except ValueError as exc:  # passes.settings.SettingsError: e.g. a TP the heads cannot shard over
        return WhatIf(None, diff, changes, [Diagnostic(_display(path), 0, 0, "setting", str(exc))])
    return WhatIf(plan, diff, changes)


def _coerce(value: Any) -> Any:
    """A form's text as the profile's YAML would read it: 8 -> int, 0.9 -> float, else the text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def gpu_names() -> list[str]:
    """The GPU catalog's names, for a form's choices."""
    from .facts.gpus import gpu_catalog

    return sorted({g.name for g in gpu_catalog()})


def lock_text(plan: Plan) -> str:
    """The lock a plan would write (without artifact hashes and source path): what a comparison reads."""
    return dump_lock(build_lock(plan, profile_path="", profile_data={}, inputs_hash="", artifacts={}))


def lock_diff_between_plans(a: Plan, b: Plan) -> str:
    from .profile.edit import unified_diff

    return unified_diff(lock_text(a), lock_text(b), "vllm.lock.yaml")


def lock_diff_between_refs(
    profile: str | Path, name: str, ref_a: str, ref_b: str = "", out_dir: str | Path | None = None
) -> tuple[str, str]:
    """The diff of one profile's committed lock between two git refs (`ref_b` "" = the working tree):
    (diff, error message)."""
    import subprocess

    from .profile.edit import unified_diff

    root = find_root([Path(profile)])
    lock = (Path(out_dir).resolve() if out_dir else root / "out") / name / LOCK_FILE
    rel = _relative_to_root(lock, root)

    def at(ref: str) -> str | None:
        if not ref:
            return lock.read_text(encoding="utf-8") if lock.is_file() else None
        if ref.startswith("-"):
            return None  # never an option to git
        done = subprocess.run(
            ["git", "show", f"{ref}:{rel}"], cwd=root, capture_output=True, text=True, check=False
        )
        return done.stdout if done.returncode == 0 else None

    old, new = at(ref_a), at(ref_b)
    for ref, text in ((ref_a, old), (ref_b or "the working tree", new)):
        if text is None:
            return "", f"no {rel} at {ref}"
    return unified_diff(old or "", new or "", rel), ""
