"""What every artifact needs from a Plan, computed and checked once: names, image, command, budgets."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..facts import vllm_flags
from ..plan import Plan
from ..units import GB
from .dp_launch import DpLaunchError, DpLayout, dp_layout


class RenderError(ValueError):
    """The plan cannot be written as the requested artifacts; the message says what to change.

    `path` names the profile field at fault (e.g. ("vllm", "extra_args")) for a positioned diagnostic.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


# Start-up budget: how long a cold start may take before probes give up. Deliberately conservative,
# because a probe that fires too early kills a pod that was about to become ready (a restart loop).
DOWNLOAD_BYTES_PER_S = 100e6  # first start pulls weights from the Hub: ~1 Gbit/s link at 80 % efficiency
DISK_BYTES_PER_S = 250e6  # reading safetensors from a network-attached volume (cloud block storage class)
ENGINE_FIXED_S = 300  # torch.compile (cold cache), CUDA graph capture, NCCL set-up, memory profiling run
MIN_STARTUP_S = 600

HF_CACHE = "/root/.cache/huggingface"  # HF_HOME default of the vllm/vllm-openai image (runs as root)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_BAD = re.compile(r"[^a-z0-9-]+")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class StartupBudget:
    seconds: int
    weights_bytes: int
    explanation: str


@dataclass
class Context:
    plan: Plan
    name: str  # DNS-1123 label for Kubernetes objects and the compose service
    profile_name: str
    model_id: str
    served_name: str
    vllm_version: str
    image: str
    port: int
    gated: bool
    env: dict[str, str]
    argv: list[str]  # `vllm serve <model>` arguments after the model
    spans_nodes: bool
    nodes: int
    gpus_per_replica: int  # GPUs of one server: TP x PP (x DP when vLLM runs DP inside the server)
    gpus_per_pod: int
    replicas: int
    startup: StartupBudget
    targets: list[str]
    notes: list[str] = field(default_factory=list)
    dp_layout: DpLayout | None = None  # multi-node data parallel without Ray (artifacts/dp_launch.py)
    # Pinned host memory the KV connector needs (passes/kv_transfer.py), requested where the profile sets none.
    memory_request: str | None = None

    @property
    def deploy(self) -> Any:
        return self.plan.resolved.profile.deploy

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "vllm",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": "engine",
            "app.kubernetes.io/managed-by": "vllm-compile",
        }

    def common(self) -> dict[str, Any]:
        """Variables every template may use."""
        return {
            "name": self.profile_name,
            "k8s_name": self.name,
            "model_id": self.model_id,
            "served_name": self.served_name,
            "vllm_version": self.vllm_version,
            "image": self.image,
            "port": self.port,
            "gated": self.gated,
            "spans_nodes": self.spans_nodes,
            "nodes": self.nodes,
            "gpus_per_replica": self.gpus_per_replica,
            "gpu_name": self.plan.resolved.gpu.name,
            "startup_s": self.startup.seconds,
            "startup_explanation": self.startup.explanation,
            "hf_secret": self.deploy.hf_token_secret,
            "namespace": self.deploy.namespace,
            # The profile's own words, on one line (REPORT.md quotes them under its title).
            "description": " ".join((self.plan.resolved.profile.description or "").split()),
        }


def _safe_text(what: str, value: str, path: tuple[str | int, ...] = ()) -> str:
    if _CONTROL.search(value):
        raise RenderError(
            f"{what} {value!r} holds a control character (newline, tab, ...); no Hugging Face id or "
            "served name does, and it cannot be written safely into serve.sh and the manifests",
            path,
        )
    if not value.strip():
        raise RenderError(f"{what} is empty", path)
    return value


def k8s_name(name: str) -> str:
    """A DNS-1123 label from a profile name (lowercase, dashes, at most 63 characters)."""
    label = _DNS_BAD.sub("-", name.lower()).strip("-")[:63].strip("-")
    if not label:
        raise RenderError(f"profile name {name!r} has no letters or digits to name Kubernetes objects with")
    return label


def startup_budget(plan: Plan, nodes: int = 1) -> StartupBudget:
    """Seconds a cold start may take: download the checkpoint + read one node's share + engine set-up.

    Every node downloads the whole checkpoint into its own cache (in parallel); each node then reads
    the weights of the ranks it holds.
    """
    tp = plan.engine.tensor_parallel_size
    weights = sum(r.weights_bytes for r in plan.memory.ranks) * tp  # one rank per PP stage; TP ranks alike
    download = weights / DOWNLOAD_BYTES_PER_S
    read = weights / nodes / DISK_BYTES_PER_S
    total = max(MIN_STARTUP_S, 60 * math.ceil((download + read + ENGINE_FIXED_S) / 60))
    explanation = (
        f"{weights / GB:.1f} GB of weights: download at {DOWNLOAD_BYTES_PER_S / 1e6:.0f} MB/s "
        f"({download:.0f} s) + read at {DISK_BYTES_PER_S / 1e6:.0f} MB/s ({read:.0f} s) + "
        f"{ENGINE_FIXED_S} s engine set-up (compile, CUDA graphs), rounded up to {total} s"
    )
    return StartupBudget(total, weights, explanation)


def _check_extra_args(plan: Plan, managed: set[str]) -> None:
    version = plan.resolved.vllm.version
    extra = list(plan.resolved.profile.vllm.extra_args)
    errors = vllm_flags.check_args(version, extra)
    if errors:
        raise RenderError("vllm.extra_args: " + "; ".join(errors), ("vllm", "extra_args"))
    fs = vllm_flags.flag_set(version)
    for token in extra:
        if not token.startswith("-"):
            continue
        flag = fs.lookup(token.split("=", 1)[0].replace("_", "-") if token.startswith("--") else token)
        if flag is not None and flag.name in managed:
            raise RenderError(
                f"vllm.extra_args sets {flag.name}, which the profile already decides; "
                f"set it in the profile (vllm/model/parallelism/deploy sections) instead",
                ("vllm", "extra_args"),
            )
    for token in extra:
        _safe_text("vllm.extra_args entry", token)


def extra_args_config(ctx: Context) -> dict[str, Any]:
    """The profile's extra_args as `--config` keys, in the form the release's loader honours."""
    return vllm_flags.args_config(ctx.vllm_version, list(ctx.plan.resolved.profile.vllm.extra_args))


def build(plan: Plan, targets: list[str]) -> Context:
    from ..facts.wide_ep import wide_ep_env

    resolved = plan.resolved
    profile = resolved.profile
    deploy = profile.deploy
    _safe_text("profile name", resolved.name)
    if not _DNS_SUBDOMAIN.match(deploy.hf_token_secret):
        raise RenderError(
            f"deploy.hf_token_secret {deploy.hf_token_secret!r} is not a Kubernetes secret name "
            "(lowercase letters, digits, '-' and '.')"
        )
    model_id = _safe_text("model id", profile.model.id, ("model", "id"))
    served = _safe_text(
        "served model name",
        profile.model.served_model_name or profile.model.id,
        ("model", "served_model_name"),
    )
    for key, value in deploy.env.items():
        if not _ENV_NAME.match(key):
            raise RenderError(
                f"deploy.env key {key!r} is not an environment variable name", ("deploy", "env", key)
            )
        if key == "HF_TOKEN":
            raise RenderError(
                "deploy.env must not hold HF_TOKEN: the token comes from the environment "
                f"(export HF_TOKEN) or the Kubernetes secret deploy.hf_token_secret ({deploy.hf_token_secret!r})"
            )
        if value:
            _safe_text(f"deploy.env {key}", value, ("deploy", "env", key))
    try:
        settings = vllm_flags.plan_settings(plan)
    except vllm_flags.FlagError as exc:
        raise RenderError(str(exc), ("vllm",)) from exc
    _check_extra_args(plan, {s.flag.name for s in settings})
    gpn = vllm_flags.gpus_per_node(plan)
    per_replica = vllm_flags.gpus_per_server(plan)
    spans = vllm_flags.spans_nodes(plan)
    try:
        layout = dp_layout(plan, gpn)
    except DpLaunchError as exc:
        raise RenderError(str(exc), ("parallelism", "data_parallel_size")) from exc
    if layout is None and plan.engine.data_parallel_size > 1 and per_replica > gpn:
        raise RenderError(
            f"data_parallel_size {plan.engine.data_parallel_size} x {plan.engine.gpus_per_replica} GPUs does not "
            f"fit one node of {gpn} GPUs, and one DP rank spans nodes; multi-node data parallelism over Ray is "
            "not generated: scale out with deploy.replicas instead"
        )
    if layout is not None:
        spans = True
    nodes = layout.nodes if layout else (math.ceil(per_replica / gpn) if spans else 1)
    if spans and per_replica % nodes:
        raise RenderError(
            f"{per_replica} GPUs per replica do not split evenly over {nodes} nodes of {gpn} GPUs; "
            "choose tensor x pipeline parallel sizes that fill whole nodes"
        )
    replicas = deploy.replicas if isinstance(deploy.replicas, int) else None
    if replicas is None:
        perf_replicas = plan.performance.replicas if plan.performance else None
        replicas = perf_replicas or 1
    gated_default = bool(getattr(resolved.model, "gated", False))
    ctx = Context(
        plan=plan,
        name=k8s_name(resolved.name),
        profile_name=resolved.name,
        model_id=model_id,
        served_name=served,
        vllm_version=resolved.vllm.version,
        image=f"{deploy.image}:{deploy.tag or 'v' + resolved.vllm.version}",
        port=deploy.port,
        gated=deploy.gated if deploy.gated is not None else gated_default,
        env={**wide_ep_env(plan), **deploy.env},
        argv=[w for s in settings for w in s.argv()] + list(profile.vllm.extra_args),
        spans_nodes=spans,
        nodes=nodes,
        gpus_per_replica=per_replica,
        gpus_per_pod=layout.gpus_per_node if layout else per_replica // nodes,
        replicas=replicas,
        startup=startup_budget(plan, nodes),
        targets=list(targets),
        dp_layout=layout,
    )
    if layout is not None:
        # The per-node launch words carry --data-parallel-size-local (artifacts/dp_launch.py): once only.
        words = ctx.argv
        if "--data-parallel-size-local" in words:
            i = words.index("--data-parallel-size-local")
            ctx.argv = words[:i] + words[i + 2 :]
        ctx.notes.append(
            f"multi-node data parallel without Ray: {layout.nodes} pods of {layout.local} DP ranks "
            f"({layout.gpus_per_node} GPUs) each, one per node (DeepEP's NVLink buffers need a node's ranks in "
            "one pod); the leader serves the API, the workers run --headless from --data-parallel-start-rank"
        )
        if (plan.engine.all2all_backend or "").startswith("deepep"):
            ctx.notes.append(
                "DeepEP across nodes runs over RDMA (NVSHMEM IBGDA): the pods must reach every node's NICs "
                "(an RDMA device plugin resource, IPC_LOCK, unlimited memlock), which is cluster-specific and "
                "not generated"
            )
        ctx.notes.append(
            "helm-values.yaml and the KServe InferenceService are not written for multi-node data parallel: "
            "the production-stack chart and KServe span nodes only over Ray; use k8s/leaderworkerset.yaml"
        )
    if plan.kv_connector is not None and not deploy.resources.memory:
        from ..passes.kv_transfer import KvConnectorPlan, memory_request

        ctx.memory_request = memory_request(KvConnectorPlan.model_validate(plan.kv_connector))
    fs = vllm_flags.flag_set(ctx.vllm_version)
    if not fs.exact:
        ctx.notes.append(
            f"vLLM {fs.version} is not a release vllm-compile read flags from: the flags of vLLM {fs.base}, "
            "the nearest lower release, are used"
        )
    if "kserve" in targets:
        ctx.notes.append(
            "KServe downloads the model with its storage initializer (storageUri hf://...); a gated model "
            "also needs HF_TOKEN available to the storage initializer (KServe's storage secret)"
        )
    if spans and "compose" in targets:
        ctx.notes.append(
            f"docker-compose.yaml not written: one replica spans {nodes} nodes, which one compose host cannot run"
        )
    return ctx
