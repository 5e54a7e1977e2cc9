"""Wide expert parallel and context parallel facts of each vLLM release, read from its own parser dump.

Every fact here comes from the release's `vllm serve` parser and `vllm/envs.py` defaults as recorded in
facts/data/vllm_flags/<version>.json (tools/extract_vllm_flags.py):

- the all-to-all backend: `--all2all-backend` (choices and default) from 0.11.1; before it the
  `VLLM_ALL2ALL_BACKEND` environment variable (envs.py; `naive` up to 0.10.2, `allgather_reducescatter`
  in 0.11.0), which 0.11.1-0.15.x still read as a deprecated fallback;
- DeepEP's buffer size (`VLLM_DEEPEP_BUFFER_SIZE_MB`, envs.py) and the MoE DP chunk
  (`VLLM_MOE_DP_CHUNK_SIZE`: the most tokens a DP rank dispatches at once, fused_moe/config.py);
- whether the DP ranks synchronise their batch sizes with an NCCL all-reduce
  (`VLLM_DISABLE_NCCL_FOR_DP_SYNCHRONIZATION` env in 0.11.0, ParallelConfig field from 0.11.1:
  v1/worker/dp_utils.py `_get_device_and_group`);
- the DP launch flags (`--data-parallel-address/-rpc-port/-start-rank/-size-local`, `--headless`),
  `--enable-eplb` / `--num-redundant-experts` / `--eplb-config`, `-dcp` and `-pcp`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from . import vllm_flags

# vLLM's default when neither the flag nor the env var exists (0.9.0-0.10.2: envs.py "naive").
_OLD_DEFAULT = "naive"
# Before `--all2all-backend` vLLM 0.11.0 accepted these VLLM_ALL2ALL_BACKEND values (envs.py
# env_with_choices); 0.9.x-0.10.x: naive, pplx, deepep_high_throughput, deepep_low_latency.
_ENV_CHOICES_011 = (
    "naive", "pplx", "deepep_high_throughput", "deepep_low_latency", "allgather_reducescatter",
    "flashinfer_all2allv",
)  # fmt: skip
_ENV_CHOICES_09 = ("naive", "pplx", "deepep_high_throughput", "deepep_low_latency")


@dataclass(frozen=True)
class WideEpFacts:
    version: str
    backends: tuple[str, ...]  # what the release accepts
    default_backend: str  # what it runs when nothing is set
    backend_form: str  # "flag" (--all2all-backend) | "env" (VLLM_ALL2ALL_BACKEND) | "none"
    deepep_buffer_mb: int  # VLLM_DEEPEP_BUFFER_SIZE_MB (1024 where the release hard-codes 1 GiB)
    moe_dp_chunk: int | None  # VLLM_MOE_DP_CHUNK_SIZE: tokens per DP rank per dispatch
    nccl_dp_sync: bool  # DP ranks all-reduce their token counts over NCCL in every step
    has_dp_launch: bool  # --data-parallel-address / --data-parallel-rpc-port / --data-parallel-start-rank
    has_eplb: bool
    redundant_experts_form: str  # "flag" (--num-redundant-experts) | "config" (--eplb-config) | "none"
    has_dcp: bool
    has_pcp: bool


def _flag(version: str, name: str) -> vllm_flags.Flag | None:
    return vllm_flags.resolve_flag(vllm_flags.flag_set(version), name)


def env_defaults(version: str) -> dict[str, Any]:
    """`vllm/envs.py` defaults of the release (nearest lower release carried)."""
    return dict(vllm_flags.release_data(version).get("env_defaults", {}))


def _none(version: str) -> WideEpFacts:
    """A release older than every parser dump (V0 era): no DP launch, EP or context-parallel flags known."""
    return WideEpFacts(
        version, ("naive",), _OLD_DEFAULT, "none", 1024, None, False, False, False, "none", False, False
    )


@cache
def facts(version: str) -> WideEpFacts:
    try:
        vllm_flags.flag_set(version)
    except vllm_flags.FlagError:
        return _none(version)
    env = env_defaults(version)
    engine = vllm_flags.engine_defaults(version)
    flag = _flag(version, "--all2all-backend")
    if flag is not None and flag.choices:
        backends = tuple(sorted(c for c in flag.choices if c not in (None, "None")))
        # 0.11.1-0.13.x: the flag's default is None and VLLM_ALL2ALL_BACKEND (allgather_reducescatter)
        # decides (config/parallel.py __post_init__); from 0.14.0 the flag's default is the value.
        default = flag.default or env.get("VLLM_ALL2ALL_BACKEND") or "allgather_reducescatter"
        form = "flag"
    elif "VLLM_ALL2ALL_BACKEND" in env:
        default = env["VLLM_ALL2ALL_BACKEND"] or _OLD_DEFAULT
        backends = _ENV_CHOICES_011 if default == "allgather_reducescatter" else _ENV_CHOICES_09
        form = "env"
    else:
        backends, default, form = ("naive",), _OLD_DEFAULT, "none"
    nccl_off = env.get(
        "VLLM_DISABLE_NCCL_FOR_DP_SYNCHRONIZATION", engine.get("disable_nccl_for_dp_synchronization")
    )
    has_sync = (
        "VLLM_DISABLE_NCCL_FOR_DP_SYNCHRONIZATION" in env or "disable_nccl_for_dp_synchronization" in engine
    )
    if _flag(version, "--num-redundant-experts") is not None:
        redundant = "flag"
    elif _flag(version, "--eplb-config") is not None:
        redundant = "config"
    else:
        redundant = "none"
    return WideEpFacts(
        version=version,
        backends=backends,
        default_backend=default,
        backend_form=form,
        deepep_buffer_mb=int(env.get("VLLM_DEEPEP_BUFFER_SIZE_MB") or 1024),
        moe_dp_chunk=env.get("VLLM_MOE_DP_CHUNK_SIZE"),
        # Where the release has the switch and its default is False, the DP ranks all-reduce over NCCL
        # (0.11.0-0.13.x); from 0.14.0 the default is None, decided at start-up: not assumed.
        nccl_dp_sync=has_sync and nccl_off is False,
        has_dp_launch=_flag(version, "--data-parallel-address") is not None,
        has_eplb=_flag(version, "--enable-eplb") is not None,
        redundant_experts_form=redundant,
        has_dcp=_flag(version, "--decode-context-parallel-size") is not None,
        has_pcp=_flag(version, "--prefill-context-parallel-size") is not None,
    )


def wide_ep_settings(plan: Any) -> list[vllm_flags.Setting]:
    """The wide-EP / context-parallel settings the profile set, as the release's flags (in a stable order).

    The all-to-all backend is a flag from 0.11.1; before it, it is the VLLM_ALL2ALL_BACKEND variable
    (`wide_ep_env`). Redundant experts: `--num-redundant-experts` up to 0.11.x, `--eplb-config` JSON after.
    """
    engine, decisions = plan.engine, plan.decisions
    version = plan.resolved.vllm.version
    f = facts(version)
    out: list[vllm_flags.Setting] = []

    def add(name: str, value: Any) -> None:
        s = vllm_flags.setting(version, name, value)
        if s is None:
            raise vllm_flags.FlagError(
                f"vLLM {version} has no {name}: the profile's {value!r} cannot be passed"
            )
        out.append(s)

    def by_user(name: str) -> bool:
        d = decisions.get(name)
        return d is not None and d.by == "user"

    if by_user("all2all_backend") and f.backend_form == "flag" and engine.all2all_backend:
        add("--all2all-backend", engine.all2all_backend)
    if engine.enable_eplb:
        add("--enable-eplb", True)
        if engine.num_redundant_experts:
            if f.redundant_experts_form == "flag":
                add("--num-redundant-experts", engine.num_redundant_experts)
            else:
                add("--eplb-config", {"num_redundant_experts": engine.num_redundant_experts})
    if engine.decode_context_parallel_size > 1:
        add("--decode-context-parallel-size", engine.decode_context_parallel_size)
    if engine.prefill_context_parallel_size > 1:
        add("--prefill-context-parallel-size", engine.prefill_context_parallel_size)
    if engine.data_parallel_size_local is not None:
        add("--data-parallel-size-local", engine.data_parallel_size_local)
    return out


def wide_ep_env(plan: Any) -> dict[str, str]:
    """Environment the deployment needs: VLLM_ALL2ALL_BACKEND where the release reads it instead of a flag."""
    engine, decisions = plan.engine, plan.decisions
    f = facts(plan.resolved.vllm.version)
    d = decisions.get("all2all_backend")
    if f.backend_form == "env" and d is not None and d.by == "user" and engine.all2all_backend:
        return {"VLLM_ALL2ALL_BACKEND": engine.all2all_backend}
    return {}
