"""docker-compose.yaml data for one node: GPUs reserved, the HF cache kept, healthy only once loaded."""

from __future__ import annotations

from typing import Any

from .context import HF_CACHE, Context

HEALTH_INTERVAL_S = 30
HEALTH_TIMEOUT_S = 10
HEALTH_RETRIES = 3


def escape(value: str) -> str:
    """Compose interpolates `$VAR` and `${VAR}` in every string; `$$` is a literal dollar."""
    return value.replace("$", "$$")


def health_test(port: int) -> list[str]:
    # python3 is in every vllm/vllm-openai image; curl is not guaranteed to stay.
    probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{port}/health', timeout=5)"
    return ["CMD", "python3", "-c", probe]


def build(ctx: Context) -> dict[str, Any]:
    deploy = ctx.deploy
    environment: dict[str, str] = {key: escape(value) for key, value in sorted(ctx.env.items())}
    # The token is read from the shell that runs `docker compose up`, never written here.
    environment["HF_TOKEN"] = (
        "${HF_TOKEN:?HF_TOKEN must be set: the model is gated}" if ctx.gated else "${HF_TOKEN:-}"
    )
    service: dict[str, Any] = {
        "image": escape(ctx.image),
        "entrypoint": ["vllm", "serve"],  # the image's entrypoint changed across releases; be explicit
        "command": [escape(w) for w in [ctx.model_id, *ctx.argv]],
        "ipc": "host",  # PyTorch tensor sharing between vLLM processes uses /dev/shm
        "ports": [f"{ctx.port}:{ctx.port}"],
        "environment": environment,
        "volumes": [f"hf-cache:{HF_CACHE}"],
        "deploy": {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": ctx.gpus_per_replica, "capabilities": ["gpu"]}]
                }
            }
        },
        "healthcheck": {
            "test": health_test(ctx.port),
            "interval": f"{HEALTH_INTERVAL_S}s",
            "timeout": f"{HEALTH_TIMEOUT_S}s",
            "retries": HEALTH_RETRIES,
            "start_period": f"{ctx.startup.seconds}s",
        },
        "restart": "unless-stopped",
    }
    limits: dict[str, Any] = {}
    if deploy.resources.cpu:
        limits["cpus"] = str(deploy.resources.cpu)
    if deploy.resources.memory:
        limits["memory"] = _compose_bytes(deploy.resources.memory)
    if limits:
        service["deploy"]["resources"]["limits"] = limits
    elif ctx.memory_request:  # the KV connector's pinned host memory (passes/kv_transfer.py)
        service["deploy"]["resources"]["reservations"]["memory"] = _compose_bytes(ctx.memory_request)
    return {"name": ctx.name, "services": {"vllm": service}, "volumes": {"hf-cache": {}}}


def _compose_bytes(quantity: str) -> str:
    """Kubernetes quantity (16Gi) to compose's byte unit (16g); compose units are binary."""
    for k8s, compose_unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g"), ("Ti", "t")):
        if quantity.endswith(k8s):
            return quantity[: -len(k8s)] + compose_unit
    return quantity
