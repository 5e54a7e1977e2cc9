"""Values for the vLLM production-stack Helm chart, version 0.1.12 (vllm-project/production-stack helm/).

What the chart's templates do with them (helm/templates/deployment-vllm-multi.yaml, ray-cluster.yaml):
`vllm serve <modelURL> --host 0.0.0.0 --port <containerPort>`, then flags from first-class `vllmConfig`
keys, then `vllmConfig.extraArgs` verbatim. `enablePrefixCaching` is always turned into
`--enable-prefix-caching` or `--no-enable-prefix-caching` once `vllmConfig` exists, so it is always set
here. /dev/shm is mounted only when `tensorParallelSize` is present, so it is always set too.
A `raySpec` key switches the model to a KubeRay RayCluster: one head plus `replicaCount` workers.
"""

from __future__ import annotations

import math
from typing import Any

from .context import Context
from .kube import PROBE_PERIOD_S, shm_quantity

CHART_VERSION = "0.1.12"
# The chart's own example figures per model (values.yaml modelSpec: requestCPU 6, requestMemory 16Gi),
# used only when the profile gives no CPU/memory.
DEFAULT_CPU = 6
DEFAULT_MEMORY = "16Gi"

# `vllm serve` flags the chart writes from first-class keys (or itself), never repeated in extraArgs.
_FIRST_CLASS = {
    "--max-model-len": "maxModelLen",
    "--dtype": "dtype",
    "--tensor-parallel-size": "tensorParallelSize",
    "--max-num-seqs": "maxNumSeqs",
    "--gpu-memory-utilization": "gpuMemoryUtilization",
}
_SWITCHES = {
    "--enable-prefix-caching": ("enablePrefixCaching", True),
    "--no-enable-prefix-caching": ("enablePrefixCaching", False),
    "--disable-prefix-caching": ("enablePrefixCaching", False),
    "--enable-chunked-prefill": ("enableChunkedPrefill", True),
    "--no-enable-chunked-prefill": ("enableChunkedPrefill", False),
    "--disable-chunked-prefill": ("enableChunkedPrefill", False),
}
_CHART_OWNED = {"--port", "--host", "--revision"}  # the chart sets --port/--host; revision is modelRevision


def _split_argv(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    first: dict[str, Any] = {}
    extra: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _SWITCHES:
            key, value = _SWITCHES[word]
            first[key] = value
            i += 1
        elif word in _FIRST_CLASS or word in _CHART_OWNED:
            if word in _FIRST_CLASS:
                first[_FIRST_CLASS[word]] = _number(argv[i + 1])
            i += 2
        else:
            extra.append(word)
            i += 1
    return first, extra


def _number(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            continue
    return text


def build(ctx: Context) -> dict[str, Any]:
    deploy = ctx.deploy
    plan = ctx.plan
    first, extra = _split_argv(ctx.argv)
    vllm_config: dict[str, Any] = {
        "enablePrefixCaching": plan.engine.enable_prefix_caching,
        "tensorParallelSize": plan.engine.tensor_parallel_size,
        **first,
    }
    if extra:
        vllm_config["extraArgs"] = extra
    cpu = deploy.resources.cpu or DEFAULT_CPU
    memory = deploy.resources.memory or DEFAULT_MEMORY
    if not deploy.resources.memory and ctx.memory_request:
        # The KV connector's pinned host memory on top of the chart's example figure for the process.
        memory = f"{int(DEFAULT_MEMORY[:-2]) + int(ctx.memory_request[:-2])}Gi"
    spec: dict[str, Any] = {
        "name": ctx.name,
        "repository": deploy.image,
        "tag": ctx.image.rsplit(":", 1)[1],
        "modelURL": ctx.model_id,
        "replicaCount": ctx.replicas,
        "requestCPU": _number(str(cpu)),
        "requestMemory": str(memory),
        "requestGPU": ctx.gpus_per_pod,
        "requestGPUType": "nvidia.com/gpu",
        "pvcStorage": deploy.storage_size,
        "pvcAccessMode": ["ReadWriteMany" if ctx.replicas > 1 or ctx.spans_nodes else "ReadWriteOnce"],
        "shmSize": shm_quantity(deploy.shm_size),
        "vllmConfig": vllm_config,
    }
    revision = plan.resolved.profile.model.revision or plan.resolved.model.revision
    if revision:
        spec["modelRevision"] = revision
    if deploy.storage_class:
        spec["storageClass"] = deploy.storage_class
    if ctx.gated:
        # The chart's secretKeyRef is not optional: reference the secret only when the model needs it.
        spec["hf_token"] = {"secretName": deploy.hf_token_secret, "secretKey": "token"}
    if ctx.env:
        spec["env"] = [{"name": k, "value": v} for k, v in sorted(ctx.env.items())]
    if deploy.node_selector:
        spec["nodeSelectorTerms"] = [
            {
                "matchExpressions": [
                    {"key": k, "operator": "In", "values": [v]}
                    for k, v in sorted(deploy.node_selector.items())
                ]
            }
        ]
    if deploy.tolerations:
        spec["tolerations"] = [t.model_dump(exclude_none=True) for t in deploy.tolerations]
    if ctx.spans_nodes:
        # helm/templates/ray-cluster.yaml sets VLLM_USE_V1 to vllmConfig.v1, or to "0" (the V0 engine,
        # where the release still has it) when the key is absent: say which engine the lock planned.
        vllm_config["v1"] = "1" if plan.resolved.vllm.engine == "V1" else "0"
        # RayCluster mode: the head holds one node's GPUs, `replicaCount` workers hold the rest.
        spec["replicaCount"] = ctx.nodes - 1
        spec["raySpec"] = {
            "enabled": True,
            "headNode": {
                "requestCPU": spec["requestCPU"],
                "requestMemory": spec["requestMemory"],
                "requestGPU": ctx.gpus_per_pod,
            },
        }
    probe = {"path": "/health", "port": ctx.port}
    serving: dict[str, Any] = {
        "containerPort": ctx.port,
        "modelSpec": [spec],
        "startupProbe": {
            "initialDelaySeconds": 15,
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": math.ceil(ctx.startup.seconds / PROBE_PERIOD_S),
            "httpGet": dict(probe),
        },
        "livenessProbe": {
            "initialDelaySeconds": 15,
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": 3,
            "httpGet": dict(probe),
        },
    }
    return {"servingEngineSpec": serving}
