"""Resolver: the facts a profile names (model, GPU, vLLM release). The only planning stage with I/O
(the Hub and NVML, both imported lazily by the fact modules)."""

from __future__ import annotations

from pathlib import Path

from .facts.model_facts import ModelFacts
from .plan import Resolved
from .profile.v1 import Profile


class ResolveError(ValueError):
    """A fact could not be resolved; `path` is the profile field to point the diagnostic at."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path


def resolve(
    profile: Profile, name: str, *, locked_model: ModelFacts | None = None, base_dir: Path | None = None
) -> Resolved:
    """`base_dir`: the profile file's folder, which a relative local model.id is relative to."""
    from .facts.gpus import resolve_gpu
    from .facts.models import resolve_model
    from .facts.vllm_versions import get_vllm_version

    try:
        version = get_vllm_version(profile.vllm.version)
    except ValueError as exc:
        raise ResolveError(("vllm", "version"), str(exc)) from exc
    try:
        gpu = _resolve_gpu(profile, resolve_gpu)
    except ValueError as exc:
        raise ResolveError(("hardware", "gpu_name"), str(exc)) from exc
    from .passes.extra_args import ExtraArgsError, normalise
    from .passes.kv_transfer import KvTransferError

    given = profile
    try:
        # Modelled extra_args flags become their fields before anything is resolved (a draft model in
        # --speculative-config resolves like speculative.model).
        profile, report = normalise(profile, version.version)
    except (ExtraArgsError, KvTransferError) as exc:
        raise ResolveError(exc.path, str(exc)) from exc
    try:
        model = resolve_model(profile.model, locked=locked_model, base_dir=base_dir)
    except ValueError as exc:
        raise ResolveError(("model", "id"), str(exc)) from exc
    draft = None
    spec = profile.vllm.speculative
    if spec is not None:
        from .facts.drafts import resolve_draft

        try:
            draft = resolve_draft(spec.method, spec.model, model)
        except ValueError as exc:
            where = ("vllm", "speculative") if given.vllm.speculative is not None else ("vllm", "extra_args")
            raise ResolveError(where, str(exc)) from exc
    trace = None
    if profile.workload.trace:
        from .facts.trace import read_trace

        try:
            trace = read_trace(profile.workload.trace, base_dir)
        except ValueError as exc:
            raise ResolveError(("workload", "trace"), str(exc)) from exc
    roles = None
    if given.roles is not None:  # each pool resolved as an ordinary profile (passes/disaggregation.py)
        from .passes.disaggregation import in_role, role_profiles

        roles = {}
        for role, derived in role_profiles(given).items():  # ResolveError where a pool is invalid
            try:
                roles[role] = resolve(derived, f"{name}-{role}", locked_model=locked_model, base_dir=base_dir)
            except ResolveError as exc:
                raise in_role(exc, given, role) from None
    return Resolved(
        name=name,
        profile=profile,
        model=model,
        gpu=gpu,
        vllm=version,
        draft=draft,
        extra_args=report,
        trace=trace,
        roles=roles,
    )


def _resolve_gpu(profile: Profile, resolve_gpu):
    hardware = profile.hardware
    if hardware.gpu_name.strip().lower() == "detect":
        from .facts.detect import detect_gpus, resolve_detected

        return resolve_detected(detect_gpus())
    return resolve_gpu(hardware.gpu_name, vram_gib=hardware.vram_gib, vram_gb=hardware.vram_gb)
