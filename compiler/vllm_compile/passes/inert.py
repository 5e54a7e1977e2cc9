"""Settings a profile gives that change nothing in its context, said out loud: the planner never
ignores a setting silently (tools/setting_effects.py finds them; tests/test_setting_effects.py keeps
the list closed). Each message names the setting and what would make it count."""

from __future__ import annotations

from ..plan import EngineConfig, Resolved
from .workload import workload_of


def inert_settings(resolved: Resolved, engine: EngineConfig) -> list[str]:
    profile = resolved.profile
    out: list[str] = []
    if profile.model.params_b is not None and resolved.model.source != "params_b":
        out.append(
            f"model.params_b {profile.model.params_b:g} is not used: {resolved.model.id}'s config is known "
            f"({resolved.model.source}) and gives the shapes the plan uses; params_b only stands in for a "
            "model with no config.json"
        )
    if profile.workload.burstiness is not None:
        workload = workload_of(resolved)
        if workload.trace is not None:
            out.append("workload.burstiness is not used: the trace's own arrival times are replayed")
        elif workload.request_rate is None:
            out.append(
                "workload.burstiness is not used: a closed-loop workload (concurrency) has no arrival "
                "process; it shapes the gaps of workload.request_rate"
            )
    if profile.policy.overhead_gb is not None:
        out.append(
            f"policy.overhead_gb {profile.policy.overhead_gb:g} (the Config Wizard's flat overhead) is not "
            "used: the plan accounts activation, non-torch and CUDA-graph memory as vLLM does"
        )
    hardware, vllm, policy = profile.hardware, profile.vllm, profile.policy
    if "gpus" in hardware.model_fields_set and engine.total_gpus < hardware.gpus:
        out.append(
            f"hardware.gpus {hardware.gpus}: the layout uses {engine.total_gpus} of them (tensor "
            f"{engine.tensor_parallel_size} x pipeline {engine.pipeline_parallel_size} x data "
            f"{engine.data_parallel_size}); the rest stay idle (deploy.replicas scales out)"
        )
    if engine.enable_expert_parallel and not resolved.model.is_moe:
        out.append(
            f"parallelism.enable_expert_parallel (and all2all_backend) is not used: {resolved.model.id} has no "
            "experts to spread; vLLM runs it as tensor/data parallel"
        )
    explicit_utilization = vllm.gpu_memory_utilization != "auto"
    if explicit_utilization and policy.gpu_memory_utilization is not None:
        out.append(
            f"policy.gpu_memory_utilization {policy.gpu_memory_utilization:g} is not used: "
            f"vllm.gpu_memory_utilization {vllm.gpu_memory_utilization:g} is given"
        )
    given = (
        ("vllm.gpu_memory_utilization", vllm.gpu_memory_utilization)
        if explicit_utilization
        else ("policy.gpu_memory_utilization", policy.gpu_memory_utilization)
    )
    if given[1] is not None and given[1] > policy.max_gpu_memory_utilization:
        out.append(
            f"{given[0]} {given[1]:g} is above policy.max_gpu_memory_utilization "
            f"{policy.max_gpu_memory_utilization:g}: the explicit value is used"
        )
    graphs_asked = vllm.max_cudagraph_capture_size is not None or vllm.cudagraph_capture_sizes is not None
    if engine.enforce_eager and graphs_asked:
        out.append(
            "vllm.max_cudagraph_capture_size / cudagraph_capture_sizes are not used: enforce_eager captures "
            "no CUDA graphs"
        )
    alone = engine.total_gpus == 1 and profile.roles is None and profile.vllm.kv_transfer is None
    if profile.hardware.interconnect != "unknown" and alone:
        out.append(
            f"hardware.interconnect {profile.hardware.interconnect} is not used: one GPU per engine has no "
            "collectives and no KV transfer"
        )
    return out
