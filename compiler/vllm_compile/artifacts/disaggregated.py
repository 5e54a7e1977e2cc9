"""Artifacts of a `roles:` profile: a prefill and a decode engine plus what routes between them.

- serve.sh / vllm-config.yaml per pool (prefill/, decode/): each pool's ordinary artifacts.
- docker-compose.yaml: one node, prefill and decode each on their own GPUs, and a proxy (pd-proxy.py,
  vLLM's P/D request protocol as its NIXL integration proxy speaks it: tests/v1/kv_connector/
  nixl_integration/toy_proxy_server.py: the prompt goes to prefill with max_tokens 1 and
  kv_transfer_params {do_remote_decode: true}; the decode request carries the kv_transfer_params the
  prefill answered with).
- k8s/: Deployment + Service per pool, the proxy as a Deployment + Service over a ConfigMap.
- llm-d-values.yaml: the llm-d modelservice chart (prefill / decode sections, its routing sidecar on the
  decode pods: routing.proxy, connector nixlv2); helm-values.yaml: the production-stack chart's
  disaggregated-prefill form (two modelSpecs labelled prefill / decode, routerSpec.routingLogic
  disaggregated_prefill with --prefill-model-labels / --decode-model-labels).
"""

from __future__ import annotations

import math
from typing import Any

from ..facts import vllm_flags
from ..passes.kv_transfer import NIXL_SIDE_CHANNEL_PORT
from ..plan import Plan
from . import compose, context, helm, kube
from .context import Context, RenderError

PROXY_PORT_IN_POD = 8200  # llm-d modelservice routing.proxy.targetPort default: vLLM behind the sidecar
LLMD_CHART_VERSION = "v0.4.12"  # llm-d-incubation/llm-d-modelservice charts/llm-d-modelservice/Chart.yaml
LLMD_IMAGE = "ghcr.io/llm-d/llm-d-cuda"  # the chart's P/D example image (examples/values-pd.yaml)
ROUTING_SIDECAR = "ghcr.io/llm-d/llm-d-routing-sidecar"  # values.yaml routing.proxy.image


def role_contexts(plan: Plan, targets: list[str]) -> dict[str, Context]:
    assert plan.roles is not None
    out: dict[str, Context] = {}
    for role, p in plan.roles.items():
        ctx = context.build(p, targets)
        planned = ((plan.disaggregation or {}).get("replicas") or {}).get(role)
        if isinstance(planned, int):  # `replicas: auto`: what the prefill:decode ratio needs
            ctx.replicas = planned
        if ctx.spans_nodes:
            raise RenderError(
                f"roles.{role}: one {role} engine spans {ctx.nodes} nodes; disaggregated artifacts are "
                "generated for pools whose engines fit one node",
                ("roles", role, "parallelism"),
            )
        out[role] = ctx
    return out


def _uses_nixl(plan: Plan) -> bool:
    kv = plan.kv_connector or {}
    config = kv.get("kv_transfer_config", {})
    subs = (config.get("kv_connector_extra_config") or {}).get("connectors") or []
    return config.get("kv_connector") == "NixlConnector" or any(
        isinstance(s, dict) and s.get("kv_connector") == "NixlConnector" for s in subs
    )


# --- docker compose ------------------------------------------------------------------------------


def compose_misfit(plan: Plan, ctxs: dict[str, Context]) -> str | None:
    """Why the pools do not fit the one host a compose file runs on, or None when they do."""
    pre, dec = ctxs["prefill"], ctxs["decode"]
    gpus_needed = pre.gpus_per_replica * pre.replicas + dec.gpus_per_replica * dec.replicas
    per_node = vllm_flags.gpus_per_node(plan.roles["decode"])  # type: ignore[index]
    if gpus_needed > per_node:
        return f"the pools need {gpus_needed} GPUs and one compose host has {per_node}"
    return None


def compose_file(plan: Plan, ctxs: dict[str, Context]) -> dict[str, Any]:
    misfit = compose_misfit(plan, ctxs)
    if misfit is not None:
        raise RenderError(f"docker-compose.yaml holds one node: {misfit}", ("deploy", "targets"))
    dec = ctxs["decode"]
    services: dict[str, Any] = {}
    next_gpu = 0
    backends: dict[str, list[str]] = {"prefill": [], "decode": []}
    for role in ("prefill", "decode"):
        ctx = ctxs[role]
        for i in range(ctx.replicas):
            name = role if ctx.replicas == 1 else f"{role}-{i}"
            port = ctx.port + (0 if role == "prefill" else 100) + i
            svc = compose.build(ctx)["services"]["vllm"]
            svc["command"] = _with_port(svc["command"], port)
            svc["ports"] = [f"{port}:{port}"]
            svc["healthcheck"]["test"] = compose.health_test(port)
            devices = [str(next_gpu + g) for g in range(ctx.gpus_per_replica)]
            next_gpu += ctx.gpus_per_replica
            svc["deploy"]["resources"]["reservations"]["devices"] = [
                {"driver": "nvidia", "device_ids": devices, "capabilities": ["gpu"]}
            ]
            if _uses_nixl(plan.roles[role]):  # type: ignore[index]
                svc["environment"]["VLLM_NIXL_SIDE_CHANNEL_HOST"] = name
                svc["environment"]["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(NIXL_SIDE_CHANNEL_PORT)
            services[name] = svc
            backends[role].append(f"http://{name}:{port}")
    services["proxy"] = {
        "image": compose.escape(dec.image),
        "entrypoint": ["python3", "/proxy/pd-proxy.py"],
        "command": [
            "--port",
            str(dec.port + 900),
            "--prefill",
            *backends["prefill"],
            "--decode",
            *backends["decode"],
        ],
        "ports": [f"{dec.port + 900}:{dec.port + 900}"],
        "volumes": ["./pd-proxy.py:/proxy/pd-proxy.py:ro"],
        "depends_on": {name: {"condition": "service_healthy"} for name in services},
        "restart": "unless-stopped",
    }
    return {"name": context.k8s_name(plan.resolved.name), "services": services, "volumes": {"hf-cache": {}}}


# --- Kubernetes ----------------------------------------------------------------------------------


def _nixl_env() -> list[dict[str, Any]]:
    return [
        {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_SIDE_CHANNEL_PORT)},
    ]


def _pool_objects(plan: Plan, role: str, ctx: Context) -> dict[str, dict[str, Any]]:
    labels = {**ctx.labels, "app.kubernetes.io/component": role, "llm-d.ai/role": role}
    dep = kube.deployment(ctx)
    dep["metadata"]["labels"] = labels
    dep["spec"]["selector"]["matchLabels"] = dict(labels)
    dep["spec"]["template"]["metadata"]["labels"] = dict(labels)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    if _uses_nixl(plan.roles[role]):  # type: ignore[index]
        container["env"] += _nixl_env()
        container["ports"].append(
            {"name": "nixl", "containerPort": NIXL_SIDE_CHANNEL_PORT, "protocol": "TCP"}
        )
    svc = kube.service(ctx, leader=False)
    svc["metadata"]["labels"] = labels
    svc["spec"]["selector"] = dict(labels)
    return {
        f"k8s/{role}-deployment.yaml": dep,
        f"k8s/{role}-service.yaml": svc,
        f"k8s/{role}-pvc.yaml": kube.pvc(ctx),
    }


def proxy_objects(plan: Plan, ctxs: dict[str, Context], proxy_source: str) -> dict[str, dict[str, Any]]:
    dec = ctxs["decode"]
    name = context.k8s_name(f"{plan.resolved.name}-proxy")
    ns = dec.deploy.namespace
    labels = {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": context.k8s_name(plan.resolved.name),
        "app.kubernetes.io/component": "pd-proxy",
        "app.kubernetes.io/managed-by": "vllm-compile",
    }
    urls = {r: f"http://{c.name}.{ns}.svc:{c.port}" for r, c in ctxs.items()}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"pd-proxy.py": proxy_source},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": "proxy",
                            "image": dec.image,
                            "command": ["python3", "/proxy/pd-proxy.py"],
                            "args": [
                                "--port",
                                str(dec.port),
                                "--prefill",
                                urls["prefill"],
                                "--decode",
                                urls["decode"],
                            ],
                            "ports": [{"name": "http", "containerPort": dec.port, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "proxy", "mountPath": "/proxy", "readOnly": True}],
                            "readinessProbe": {
                                "tcpSocket": {"port": "http"},
                                "periodSeconds": kube.PROBE_PERIOD_S,
                            },
                        }
                    ],
                    "volumes": [{"name": "proxy", "configMap": {"name": name}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "selector": dict(labels),
            "ports": [{"name": "http", "port": dec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return {
        "k8s/proxy-configmap.yaml": config_map,
        "k8s/proxy-deployment.yaml": deployment,
        "k8s/proxy-service.yaml": service,
    }


def k8s_objects(plan: Plan, ctxs: dict[str, Context], proxy_source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for role, ctx in ctxs.items():
        out.update(_pool_objects(plan, role, ctx))
    out.update(proxy_objects(plan, ctxs, proxy_source))
    return out


# --- Helm values ---------------------------------------------------------------------------------

# Flags the llm-d modelservice chart writes itself (templates/_helpers.tpl vllmServeModelCommand).
_LLMD_OWNED = {"--port", "--tensor-parallel-size", "--data-parallel-size", "--served-model-name"}


def _without(argv: list[str], owned: set[str]) -> list[str]:
    """`argv` less the flags in `owned` and their values."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in owned:
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def _with_port(argv: list[str], port: int) -> list[str]:
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word == "--port":
            out[i + 1] = str(port)
    return out


def _llmd_pool(plan: Plan, role: str, ctx: Context) -> dict[str, Any]:
    p = plan.roles[role]  # type: ignore[index]
    port = PROXY_PORT_IN_POD if role == "decode" else ctx.port
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(ctx.env.items())]
    ports = [{"containerPort": port, "protocol": "TCP"}]
    if _uses_nixl(p):
        env += _nixl_env()
        ports.append({"containerPort": NIXL_SIDE_CHANNEL_PORT, "protocol": "TCP"})
    resources: dict[str, Any] = {
        "limits": {"nvidia.com/gpu": str(ctx.gpus_per_pod)},
        "requests": {"nvidia.com/gpu": str(ctx.gpus_per_pod)},
    }
    res = ctx.deploy.resources
    memory = res.memory or ctx.memory_request
    if memory:
        resources["requests"]["memory"] = memory
    if res.cpu:
        resources["requests"]["cpu"] = res.cpu
    container: dict[str, Any] = {
        "name": "vllm",
        "image": ctx.image,
        "modelCommand": "vllmServe",
        "args": _without(list(ctx.argv), _LLMD_OWNED),
        "env": env,
        "ports": ports,
        "resources": resources,
        "mountModelVolume": True,
        "startupProbe": {
            "httpGet": {"path": "/health", "port": port},
            "periodSeconds": kube.PROBE_PERIOD_S,
            "failureThreshold": math.ceil(ctx.startup.seconds / kube.PROBE_PERIOD_S),
        },
    }
    return {
        "create": True,
        "replicas": ctx.replicas,
        "parallelism": {"tensor": p.engine.tensor_parallel_size, "data": p.engine.data_parallel_size},
        "containers": [container],
    }


def llmd_values(plan: Plan, ctxs: dict[str, Context]) -> dict[str, Any]:
    dec = ctxs["decode"]
    model = plan.resolved.profile.model
    values: dict[str, Any] = {
        "multinode": False,
        "modelArtifacts": {
            "name": dec.served_name,
            "uri": f"hf://{model.id}",
            "size": dec.deploy.storage_size,
            "labels": {
                "llm-d.ai/inference-serving": "true",
                "llm-d.ai/model": context.k8s_name(plan.resolved.name),
            },
        },
        "routing": {
            "servicePort": dec.port,
            "proxy": {
                "enabled": True,
                "image": f"{ROUTING_SIDECAR}:latest",
                "targetPort": PROXY_PORT_IN_POD,
                "connector": "nixlv2" if _uses_nixl(plan.roles["decode"]) else "lmcache",  # type: ignore[index]
                "secure": False,
            },
        },
        "decode": _llmd_pool(plan, "decode", ctxs["decode"]),
        "prefill": _llmd_pool(plan, "prefill", ctxs["prefill"]),
    }
    if dec.gated:
        values["modelArtifacts"]["authSecretName"] = dec.deploy.hf_token_secret
    return values


def production_stack_values(plan: Plan, ctxs: dict[str, Context]) -> dict[str, Any]:
    specs: list[dict[str, Any]] = []
    serving: dict[str, Any] = {}
    for role in ("prefill", "decode"):
        values = helm.build(ctxs[role])["servingEngineSpec"]
        spec = values["modelSpec"][0]
        spec["labels"] = {"model": ctxs[role].name}
        specs.append(spec)
        serving = serving or values
    serving["modelSpec"] = specs
    router = {
        "routingLogic": "disaggregated_prefill",
        "extraArgs": [
            "--prefill-model-labels",
            ctxs["prefill"].name,
            "--decode-model-labels",
            ctxs["decode"].name,
        ],
    }
    return {"servingEngineSpec": serving, "routerSpec": router}
