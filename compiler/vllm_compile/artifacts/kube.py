"""Kubernetes objects: Deployment/Service/PVC for one node, LeaderWorkerSet (vLLM over Ray) across nodes,
and a KServe InferenceService.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from .context import HF_CACHE, Context

PROBE_PERIOD_S = 10
READINESS_FAILURES = 3
LIVENESS_PERIOD_S = 30
LIVENESS_TIMEOUT_S = 10  # /health stays cheap, but a saturated engine answers slowly
LIVENESS_FAILURES = 3
RAY_PORT = 6379  # `ray start --head` default GCS port


def escape(value: str) -> str:
    """Kubelet expands `$(VAR)` in command, args and env values; `$$` is a literal dollar."""
    return value.replace("$", "$$")


def _gpu_resources(ctx: Context, gpus: int) -> dict[str, Any]:
    res = ctx.deploy.resources
    requests: dict[str, Any] = {"nvidia.com/gpu": str(gpus)}
    limits: dict[str, Any] = {"nvidia.com/gpu": str(gpus)}
    if res.cpu:
        requests["cpu"] = str(res.cpu)
    if res.memory:
        requests["memory"] = str(res.memory)
        limits["memory"] = str(res.memory)  # the page cache of loaded weights must not evict the pod
    elif ctx.memory_request:
        # The KV connector's pinned host memory: a request (the scheduler finds a node with it), no limit.
        requests["memory"] = ctx.memory_request
    return {"limits": limits, "requests": requests}


def shm_quantity(size: str) -> str:
    """docker's shm size (16g, binary units) as a Kubernetes quantity (16Gi)."""
    s = size.strip()
    for unit, k8s in (("k", "Ki"), ("m", "Mi"), ("g", "Gi"), ("t", "Ti")):
        if s.lower().endswith(unit + "b"):
            return s[:-2] + k8s
        if s.lower().endswith(unit) and not s.endswith("i"):
            return s[:-1] + k8s
    return s


def _env(ctx: Context) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "HF_TOKEN",
            "valueFrom": {
                "secretKeyRef": {
                    "name": ctx.deploy.hf_token_secret,
                    "key": "token",
                    "optional": not ctx.gated,  # a gated model must not start without its token
                }
            },
        }
    ]
    env += [{"name": k, "value": escape(v)} for k, v in sorted(ctx.env.items())]
    return env


def _probes(ctx: Context, port: Any) -> dict[str, Any]:
    get = {"path": "/health", "port": port}
    return {
        "startupProbe": {
            "httpGet": dict(get),
            "periodSeconds": PROBE_PERIOD_S,
            # The start-up budget covers a cold start: download, load, compile, CUDA graphs.
            "failureThreshold": math.ceil(ctx.startup.seconds / PROBE_PERIOD_S),
        },
        "readinessProbe": {
            "httpGet": dict(get),
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": READINESS_FAILURES,
        },
        "livenessProbe": {
            "httpGet": dict(get),
            "periodSeconds": LIVENESS_PERIOD_S,
            "timeoutSeconds": LIVENESS_TIMEOUT_S,
            "failureThreshold": LIVENESS_FAILURES,
        },
    }


def _volumes(ctx: Context, pvc: bool) -> list[dict[str, Any]]:
    vols: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_quantity(ctx.deploy.shm_size)}}
    ]
    if pvc:
        vols.append({"name": "hf-cache", "persistentVolumeClaim": {"claimName": pvc_name(ctx)}})
    return vols


_MOUNTS = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "hf-cache", "mountPath": HF_CACHE}]


def _scheduling(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ctx.deploy.node_selector:
        out["nodeSelector"] = dict(sorted(ctx.deploy.node_selector.items()))
    if ctx.deploy.tolerations:
        out["tolerations"] = [t.model_dump(exclude_none=True) for t in ctx.deploy.tolerations]
    return out


def _meta(ctx: Context, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": ctx.deploy.namespace, "labels": labels or ctx.labels}


def pvc_name(ctx: Context) -> str:
    return f"{ctx.name}-hf-cache"[:63]


def _container(ctx: Context) -> dict[str, Any]:
    return {
        "name": "vllm",
        "image": ctx.image,
        "command": ["vllm", "serve"],
        "args": [escape(w) for w in [ctx.model_id, *ctx.argv]],
        "ports": [{"name": "http", "containerPort": ctx.port, "protocol": "TCP"}],
        "env": _env(ctx),
        "resources": _gpu_resources(ctx, ctx.gpus_per_replica),
        "volumeMounts": [dict(m) for m in _MOUNTS],
        **_probes(ctx, "http"),
    }


def deployment(ctx: Context) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ctx, ctx.name),
        "spec": {
            "replicas": ctx.replicas,
            "selector": {"matchLabels": dict(ctx.labels)},
            # No surge: a rolling update must not need GPUs beyond the ones this deployment holds.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(ctx.labels)},
                "spec": {
                    "containers": [_container(ctx)],
                    "volumes": _volumes(ctx, pvc=True),
                    **_scheduling(ctx),
                },
            },
        },
    }


def service(ctx: Context, *, leader: bool) -> dict[str, Any]:
    """ClusterIP Service; for a LeaderWorkerSet it selects the leader pods, which serve HTTP."""
    selector = dict(ctx.labels)
    name = ctx.name
    if leader:
        selector = _lws_labels(ctx) | {"role": "leader"}
        if _beside_deployment(ctx):
            name = f"{ctx.name}-lws"[:63]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ctx, name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": ctx.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _pvc_spec(ctx: Context, access: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": [access],
        "resources": {"requests": {"storage": ctx.deploy.storage_size}},
    }
    if ctx.deploy.storage_class:
        spec["storageClassName"] = ctx.deploy.storage_class
    return spec


def pvc(ctx: Context) -> dict[str, Any]:
    # Several replicas on different nodes share the cache only through a ReadWriteMany volume.
    access = "ReadWriteMany" if ctx.replicas > 1 else "ReadWriteOnce"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(ctx, pvc_name(ctx)),
        "spec": _pvc_spec(ctx, access),
    }


def _beside_deployment(ctx: Context) -> bool:
    return not ctx.spans_nodes and "k8s" in ctx.targets


def _lws_labels(ctx: Context) -> dict[str, str]:
    labels = dict(ctx.labels)
    if _beside_deployment(ctx):
        # A one-node LeaderWorkerSet beside the Deployment of the same profile: keep their pods apart.
        labels["app.kubernetes.io/component"] = "leaderworkerset"
    return labels


def _leader_script(ctx: Context) -> str:
    """Start the Ray head, wait until every worker's GPUs joined, then serve (vLLM places ranks over Ray)."""
    need = ctx.gpus_per_replica
    wait = (
        'import ray, sys; ray.init(address="auto", logging_level="ERROR"); '
        f'sys.exit(0 if ray.cluster_resources().get("GPU", 0) >= {need} else 1)'
    )
    serve = shlex.join(["vllm", "serve", ctx.model_id, *ctx.argv])
    return "\n".join(
        [
            "set -euo pipefail",
            f"ray start --head --port={RAY_PORT}",
            f"until python3 -c {shlex.quote(wait)}; do echo 'waiting for {need} GPUs in the Ray cluster'; sleep 5; done",
            f"exec {serve}",
        ]
    )


def _worker_script() -> str:
    # LWS sets LWS_LEADER_ADDRESS in every pod of the group.
    return f'set -euo pipefail\nexec ray start --address="${{LWS_LEADER_ADDRESS}}:{RAY_PORT}" --block'


def _dp_script(ctx: Context, worker: bool) -> str:
    """One node of a Ray-less multi-node DP deployment (artifacts/dp_launch.py)."""
    layout = ctx.dp_layout
    assert layout is not None
    address = '"${LWS_LEADER_ADDRESS}"'
    args = (
        layout.worker_args(address, f'"$((LWS_WORKER_INDEX * {layout.local}))"')
        if worker
        else layout.leader_args(address)
    )
    serve = shlex.join(["vllm", "serve", ctx.model_id, *ctx.argv])
    return "set -euo pipefail\nexec " + serve + " " + " ".join(args)


def leader_worker_set(ctx: Context) -> dict[str, Any]:
    base = _container(ctx)
    base["resources"] = _gpu_resources(ctx, ctx.gpus_per_pod)
    leader = dict(base)
    if ctx.dp_layout is not None:
        leader |= {"command": ["/bin/bash", "-c"], "args": [escape(_dp_script(ctx, worker=False))]}
    elif ctx.spans_nodes:
        leader |= {"command": ["/bin/bash", "-c"], "args": [escape(_leader_script(ctx))]}
    worker = {k: v for k, v in base.items() if not k.endswith("Probe") and k != "ports"}
    script = _dp_script(ctx, worker=True) if ctx.dp_layout is not None else _worker_script()
    worker |= {"name": "vllm-worker", "command": ["/bin/bash", "-c"], "args": [escape(script)]}
    pod_labels = _lws_labels(ctx)
    claim = {
        "metadata": {"name": "hf-cache"},
        "spec": _pvc_spec(ctx, "ReadWriteOnce"),  # one cache per pod: each node reads its own shards
    }
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": _meta(ctx, ctx.name),
        "spec": {
            "replicas": ctx.replicas,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": ctx.nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",  # a lost rank breaks the whole NCCL group
                "volumeClaimTemplates": [claim],
                "leaderTemplate": {
                    "metadata": {"labels": pod_labels | {"role": "leader"}},
                    "spec": {"containers": [leader], "volumes": _volumes(ctx, pvc=False), **_scheduling(ctx)},
                },
                "workerTemplate": {
                    "metadata": {"labels": pod_labels | {"role": "worker"}},
                    "spec": {"containers": [worker], "volumes": _volumes(ctx, pvc=False), **_scheduling(ctx)},
                },
            },
        },
    }


def inference_service(ctx: Context) -> dict[str, Any]:
    """KServe v1beta1 InferenceService.

    One node: the kserve-vllmserver runtime (KServe 0.20), which sets --model, --port and the served
    name itself. Across nodes: KServe's multi-node Hugging Face runtime, where `workerSpec` carries the
    tensor and pipeline sizes and KServe starts the Ray cluster.
    """
    skip = {"--port", "--served-model-name"}
    if ctx.spans_nodes:
        skip |= {"--tensor-parallel-size", "--pipeline-parallel-size", "--distributed-executor-backend"}
    args: list[str] = []
    words = list(ctx.argv)
    i = 0
    while i < len(words):
        if words[i] in skip:
            i += 2
            continue
        args.append(words[i])
        i += 1
    model: dict[str, Any] = {
        "modelFormat": {"name": "huggingface" if ctx.spans_nodes else "vLLM"},
        "runtime": "kserve-huggingfaceserver-multinode" if ctx.spans_nodes else "kserve-vllmserver",
        "storageUri": escape(f"hf://{ctx.model_id}"),
        "args": [escape(a) for a in args],
        "env": _env(ctx),
        "resources": _gpu_resources(ctx, ctx.gpus_per_pod),
    }
    if not ctx.spans_nodes:
        model["runtimeVersion"] = ctx.image.rsplit(":", 1)[
            1
        ]  # the runtime's vllm/vllm-openai tag: our version
    predictor: dict[str, Any] = {"minReplicas": ctx.replicas, "model": model, **_scheduling(ctx)}
    if ctx.spans_nodes:
        predictor["workerSpec"] = {
            "tensorParallelSize": ctx.plan.engine.tensor_parallel_size,
            "pipelineParallelSize": ctx.plan.engine.pipeline_parallel_size,
        }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta(ctx, ctx.name),
        "spec": {"predictor": predictor},
    }
