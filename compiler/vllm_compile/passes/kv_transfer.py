"""KV connectors and CPU KV offload: the release's flags, and the memory the connectors take.

`vllm.kv_transfer` is written as the release's `--kv-transfer-config` JSON (vllm/config/kv_transfer.py
KVTransferConfig: kv_connector, kv_role, kv_buffer_device, kv_buffer_size, kv_connector_extra_config,
kv_connector_module_path); `vllm.kv_offload` as `--kv-offloading-size` / `--kv-offloading-backend` where
the release has them (vLLM >= 0.11.1), else as the connector vLLM would configure for them.

Memory, as the connectors' code allocates it:
- NixlConnector registers the KV cache tensors vLLM already allocated with NIXL
  (v1/nixl_connector.py NixlConnectorWorker.register_kv_caches -> nixl_wrapper.register_memory on the
  kv_caches' data pointers): no GPU memory of its own. With kv_buffer_device=cpu it stages through a
  host copy of the same shape (initialize_host_xfer_buffer: torch.empty(..., device="cpu", pin_memory)):
  pinned host memory as large as the rank's KV cache.
- OffloadingConnector (vLLM's native CPU offload, v1/kv_offload/cpu.py CPUOffloadingSpec): num_cpu_blocks
  offloaded blocks of `block_size` tokens, pinned, per rank; from --kv-offloading-size vLLM divides the
  size over the TP x PP ranks (config/vllm.py _post_init_kv_transfer_config: kv_bytes_per_rank =
  kv_offloading_size * 2**30 / num_kv_ranks).
- LMCacheConnectorV1: LMCache's local CPU backend pins `max_local_cpu_size` GiB per worker
  (lmcache/v1/config.py: local_cpu default True, max_local_cpu_size default 5.0); vLLM's lmcache
  offloading backend sets it to kv_offloading_size / num_kv_ranks.
- MultiConnector: the sum of its connectors (v1/multi_connector.py builds each of
  kv_connector_extra_config.connectors).
- P2pNcclConnector keeps received KV in a GPU buffer up to kv_buffer_size and a pinned host pool
  (p2p/p2p_nccl_engine.py, tensor_memory_pool.py), allocated after vLLM's memory profiling: not modelled.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..facts.vllm_flags import flag_set, resolve_flag
from ..plan import EngineConfig, MemoryPlan, Resolved, Verdict
from ..profile.v1 import KvOffloadSpec, KvTransferSpec, Profile
from ..units import GIB, gib

# First release whose KVConnectorFactory registers each V1 connector
# (vllm/distributed/kv_transfer/kv_connector/factory.py; the V1 connector API arrived in 0.8.5).
CONNECTOR_SINCE: dict[str, tuple[int, ...]] = {
    "SharedStorageConnector": (0, 8, 5),
    "LMCacheConnectorV1": (0, 8, 5),
    "NixlConnector": (0, 9, 0),
    "MultiConnector": (0, 9, 1),
    "P2pNcclConnector": (0, 9, 2),
    "OffloadingConnector": (0, 11, 0),
}
LMCACHE_DEFAULT_CPU_GIB = 5.0  # lmcache/v1/config.py max_local_cpu_size default (GB as 2**30 bytes)
P2P_NCCL_DEFAULT_BUFFER = 1e9  # vllm/config/kv_transfer.py KVTransferConfig.kv_buffer_size default
NIXL_SIDE_CHANNEL_PORT = 5600  # vllm/envs.py VLLM_NIXL_SIDE_CHANNEL_PORT default
# Extra-config keys a pass reads; any other key is reported as not modelled.
MODELLED_EXTRA = {
    "OffloadingConnector": {
        "num_cpu_blocks",
        "block_size",
        "cpu_bytes_to_use",
        "kv_bytes_per_rank",
        "spec_name",
    },
    "LMCacheConnectorV1": {"lmcache.local_cpu", "lmcache.max_local_cpu_size", "lmcache.chunk_size"},
    "MultiConnector": {"connectors"},
    "NixlConnector": {"backends"},
    "SharedStorageConnector": {"shared_storage_path"},
    "P2pNcclConnector": set(),
}


class KvTransferError(ValueError):
    """A connector setting the release refuses; `path` is the profile field to point at."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path


# --kv-transfer-config keys (vllm/config/kv_transfer.py KVTransferConfig) -> vllm.kv_transfer fields.
_JSON_FIELDS = {
    "kv_connector": "connector",
    "kv_role": "kv_role",
    "kv_buffer_device": "kv_buffer_device",
    "kv_buffer_size": "kv_buffer_size",
    "kv_connector_extra_config": "kv_connector_extra_config",
    "kv_connector_module_path": "kv_connector_module_path",
}
# Keys that identify or place an engine, not size it: read as neutral.
_JSON_NEUTRAL = {"engine_id", "kv_rank", "kv_parallel_size", "kv_ip", "kv_port"}


def spec_from_json(raw: str) -> tuple[dict[str, Any] | None, list[str]]:
    """A --kv-transfer-config value as vllm.kv_transfer fields, and the keys no pass models; None where
    the connector is not one vLLM registers (it is passed through and reported as not modelled)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None, []
    if not isinstance(data, dict) or data.get("kv_connector") not in CONNECTOR_SINCE:
        return None, []
    spec = {_JSON_FIELDS[k]: v for k, v in data.items() if k in _JSON_FIELDS}
    other = sorted(k for k in data if k not in _JSON_FIELDS and k not in _JSON_NEUTRAL)
    return spec, other


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:3])


def has_offloading_flags(version: str) -> bool:
    """--kv-offloading-size / --kv-offloading-backend exist (vLLM >= 0.11.1, the flag data)."""
    return resolve_flag(flag_set(version), "--kv-offloading-size") is not None


def connectors_of(version: str) -> list[str]:
    return sorted(c for c, since in CONNECTOR_SINCE.items() if _vkey(version) >= since)


def _check_connector(name: str, version: str, path: tuple[str, ...]) -> None:
    since = CONNECTOR_SINCE[name]
    if _vkey(version) < since:
        raise KvTransferError(
            path,
            f"vLLM {version} has no {name} (its KVConnectorFactory registers it from "
            f"{'.'.join(map(str, since))}); connectors of {version}: {', '.join(connectors_of(version))}",
        )


def transfer_config(spec: KvTransferSpec, version: str) -> dict[str, Any]:
    """The --kv-transfer-config JSON object for `spec` on `version`."""
    _check_connector(spec.connector, version, ("vllm", "kv_transfer", "connector"))
    for i, sub in enumerate(spec.kv_connector_extra_config.get("connectors") or []):
        name = sub.get("kv_connector") if isinstance(sub, dict) else None
        if name in CONNECTOR_SINCE:
            _check_connector(name, version, ("vllm", "kv_transfer", "kv_connector_extra_config"))
        elif spec.connector == "MultiConnector" and not (
            isinstance(sub, dict) and sub.get("kv_connector_module_path")
        ):
            raise KvTransferError(
                ("vllm", "kv_transfer", "kv_connector_extra_config"),
                f"MultiConnector connectors[{i}]: kv_connector {name!r} is not one vLLM {version} registers "
                f"({', '.join(connectors_of(version))}) and names no kv_connector_module_path",
            )
    config: dict[str, Any] = {"kv_connector": spec.connector, "kv_role": spec.kv_role or "kv_both"}
    if spec.kv_buffer_device is not None:
        config["kv_buffer_device"] = spec.kv_buffer_device
    if spec.kv_buffer_size is not None:
        config["kv_buffer_size"] = spec.kv_buffer_size
    if spec.kv_connector_extra_config:
        config["kv_connector_extra_config"] = dict(spec.kv_connector_extra_config)
    if spec.kv_connector_module_path:
        config["kv_connector_module_path"] = spec.kv_connector_module_path
    return config


def offload_transfer_spec(spec: KvOffloadSpec, tp_pp: int) -> KvTransferSpec:
    """The connector vLLM configures for --kv-offloading-* (config/vllm.py _post_init_kv_transfer_config)."""
    if spec.backend == "lmcache":
        extra = {"lmcache.local_cpu": True, "lmcache.max_local_cpu_size": spec.size_gib / tp_pp}
        return KvTransferSpec(
            connector="LMCacheConnectorV1", kv_role="kv_both", kv_connector_extra_config=extra
        )
    extra = {"kv_bytes_per_rank": spec.size_gib * GIB / tp_pp}
    return KvTransferSpec(connector="OffloadingConnector", kv_role="kv_both", kv_connector_extra_config=extra)


def _tp_pp(profile: Profile) -> int:
    par = profile.parallelism
    tp = par.tensor_parallel_size if isinstance(par.tensor_parallel_size, int) else 1
    pp = par.pipeline_parallel_size if isinstance(par.pipeline_parallel_size, int) else 1
    return tp * pp


def flag_groups(profile: Profile, version: str) -> list[list[str]]:
    """vllm.kv_transfer / vllm.kv_offload as `vllm serve` flags of `version` (one group each)."""
    v = profile.vllm
    groups: list[list[str]] = []
    if v.kv_transfer is not None and v.kv_offload is not None:
        raise KvTransferError(
            ("vllm", "kv_offload"),
            "vllm.kv_offload and vllm.kv_transfer together: vLLM replaces the kv_transfer connector with the "
            "offloading one (config/vllm.py _post_init_kv_transfer_config); use kv_transfer: {connector: "
            "MultiConnector, kv_connector_extra_config: {connectors: [...]}} with both",
        )
    if v.kv_transfer is not None:
        config = transfer_config(v.kv_transfer, version)
        groups.append(["--kv-transfer-config", json.dumps(config, sort_keys=True, separators=(",", ":"))])
    if v.kv_offload is not None:
        off = v.kv_offload
        if has_offloading_flags(version):
            groups.append(
                ["--kv-offloading-size", f"{off.size_gib:g}", "--kv-offloading-backend", off.backend]
            )
        elif off.backend == "native" and _vkey(version) < CONNECTOR_SINCE["OffloadingConnector"]:
            raise KvTransferError(
                ("vllm", "kv_offload", "backend"),
                f"vLLM {version} has no native CPU KV offload (OffloadingConnector arrives in 0.11.0, "
                "--kv-offloading-size in 0.11.1); use backend: lmcache",
            )
        elif off.backend == "native":
            raise KvTransferError(
                ("vllm", "kv_offload"),
                f"vLLM {version} has no --kv-offloading-size (from 0.11.1); its OffloadingConnector takes a "
                "block count: vllm.kv_transfer: {connector: OffloadingConnector, kv_connector_extra_config: "
                "{num_cpu_blocks: N}}",
            )
        else:
            config = transfer_config(offload_transfer_spec(off, _tp_pp(profile)), version)
            groups.append(["--kv-transfer-config", json.dumps(config, sort_keys=True, separators=(",", ":"))])
    return groups


# --- memory -------------------------------------------------------------------------------------------


class ConnectorMemory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector: str
    gpu_bytes_per_gpu: int = 0  # outside vLLM's KV budget (0: the connector uses the KV cache itself)
    host_pinned_bytes_per_gpu: int = 0
    detail: str


class KvConnectorPlan(BaseModel):
    """The KV connector of one engine: its JSON, its memory, what is not modelled (recorded in the lock)."""

    model_config = ConfigDict(extra="forbid")

    kv_transfer_config: dict[str, Any]
    via: str  # the flags that carry it
    connectors: list[ConnectorMemory]
    host_pinned_bytes_per_gpu: int
    gpus_per_pod: int
    host_pinned_bytes_per_pod: int
    host_pinned_gib_per_pod: float
    not_modelled: list[str] = Field(default_factory=list)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _memory_of(
    name: str,
    extra: dict[str, Any],
    top: dict[str, Any],
    memory: MemoryPlan,
    engine: EngineConfig,
    out: list[str],
) -> list[ConnectorMemory]:
    """Memory of one connector (recursing into a MultiConnector); unmodelled keys land in `out`."""
    per_token = memory.kv.bytes_per_token  # per GPU, every layer of the binding stage
    unknown = sorted(k for k in extra if k not in MODELLED_EXTRA.get(name, set()))
    out.extend(f"{name} kv_connector_extra_config.{k}" for k in unknown)
    if name == "NixlConnector":
        if top.get("kv_buffer_device") == "cpu":
            host = max(memory.binding.kv_cache_bytes, 0)
            return [
                ConnectorMemory(
                    connector=name,
                    host_pinned_bytes_per_gpu=host,
                    detail="kv_buffer_device cpu: a pinned host copy of the KV cache to stage transfers "
                    "(nixl_connector.py initialize_host_xfer_buffer)",
                )
            ]
        return [
            ConnectorMemory(
                connector=name,
                detail="registers the KV cache vLLM allocated with NIXL (nixl_connector.py register_kv_caches): "
                "no memory of its own",
            )
        ]
    if name == "OffloadingConnector":
        if _num(extra.get("cpu_bytes_to_use")) is not None:
            host = int(float(extra["cpu_bytes_to_use"]) / engine.gpus_per_replica)
            how = f"cpu_bytes_to_use {extra['cpu_bytes_to_use']:g} over {engine.gpus_per_replica} rank(s)"
        elif _num(extra.get("kv_bytes_per_rank")) is not None:
            host = int(float(extra["kv_bytes_per_rank"]))
            how = "kv_offloading_size over the TP x PP ranks (config/vllm.py)"
        elif _num(extra.get("num_cpu_blocks")) is not None:
            block = int(_num(extra.get("block_size")) or engine.block_size)
            host = int(extra["num_cpu_blocks"]) * block * per_token
            how = f"num_cpu_blocks {int(extra['num_cpu_blocks'])} x {block} tokens x {per_token} B/token"
        else:
            out.append("OffloadingConnector without num_cpu_blocks / cpu_bytes_to_use (its CPU pool size)")
            return [ConnectorMemory(connector=name, detail="CPU pool size not given: not modelled")]
        return [
            ConnectorMemory(
                connector=name,
                host_pinned_bytes_per_gpu=host,
                detail=f"pinned CPU blocks (v1/kv_offload/cpu.py): {how}",
            )
        ]
    if name == "LMCacheConnectorV1":
        local = extra.get("lmcache.local_cpu", True)
        size = _num(extra.get("lmcache.max_local_cpu_size"))
        if not local:
            return [ConnectorMemory(connector=name, detail="lmcache.local_cpu false: no pinned CPU pool")]
        gib_per = size if size is not None else LMCACHE_DEFAULT_CPU_GIB
        src = "lmcache.max_local_cpu_size" if size is not None else "LMCache's default max_local_cpu_size"
        if size is None:
            out.append(
                "LMCacheConnectorV1 pool size from LMCache's own config (LMCACHE_CONFIG_FILE / LMCACHE_* env): "
                f"planned at its default {LMCACHE_DEFAULT_CPU_GIB:g} GiB per worker"
            )
        return [
            ConnectorMemory(
                connector=name,
                host_pinned_bytes_per_gpu=int(gib_per * GIB),
                detail=f"LMCache local CPU backend: {gib_per:g} GiB pinned per worker ({src})",
            )
        ]
    if name == "MultiConnector":
        found: list[ConnectorMemory] = []
        for sub in extra.get("connectors") or []:
            if not isinstance(sub, dict):
                continue
            sub_name = str(sub.get("kv_connector"))
            if sub_name not in MODELLED_EXTRA:
                out.append(f"MultiConnector connector {sub_name} (out of tree)")
                continue
            found += _memory_of(
                sub_name, dict(sub.get("kv_connector_extra_config") or {}), sub, memory, engine, out
            )
        return found
    if name == "P2pNcclConnector":
        size = _num(top.get("kv_buffer_size")) or P2P_NCCL_DEFAULT_BUFFER
        out.append(
            f"P2pNcclConnector buffers: up to kv_buffer_size {size:g} B of GPU memory and a pinned host pool, "
            "allocated after vLLM's memory profiling (p2p_nccl_engine.py): not deducted from the KV cache"
        )
        return [ConnectorMemory(connector=name, detail="GPU and host buffers not modelled")]
    if name == "SharedStorageConnector":
        return [ConnectorMemory(connector=name, detail="writes KV to shared_storage_path on disk: no memory")]
    out.append(f"{name}: an out-of-tree connector (kv_connector_module_path)")
    return [ConnectorMemory(connector=name, detail="out-of-tree connector: not modelled")]


def effective_spec(profile: Profile) -> tuple[KvTransferSpec, str] | None:
    v = profile.vllm
    if v.kv_transfer is not None:
        return v.kv_transfer, "--kv-transfer-config"
    if v.kv_offload is not None:
        return offload_transfer_spec(
            v.kv_offload, _tp_pp(profile)
        ), "--kv-offloading-size/--kv-offloading-backend"
    return None


def plan_connector(resolved: Resolved, engine: EngineConfig, memory: MemoryPlan) -> KvConnectorPlan | None:
    found = effective_spec(resolved.profile)
    if found is None:
        return None
    spec, via = found
    v = resolved.profile.vllm
    if v.kv_offload is not None:
        # The decided TP x PP (the flag is per engine: vLLM divides it over the ranks it really runs).
        spec = offload_transfer_spec(v.kv_offload, engine.gpus_per_replica)
    top = {"kv_buffer_device": spec.kv_buffer_device, "kv_buffer_size": spec.kv_buffer_size}
    unmodelled: list[str] = []
    if spec.kv_connector_module_path:
        parts = [ConnectorMemory(connector=spec.connector, detail="out-of-tree connector: not modelled")]
        unmodelled.append(f"{spec.connector} from {spec.kv_connector_module_path} (out of tree)")
    else:
        parts = _memory_of(
            spec.connector, dict(spec.kv_connector_extra_config), top, memory, engine, unmodelled
        )
    if any(p.connector in ("OffloadingConnector", "LMCacheConnectorV1") for p in parts):
        unmodelled.append(
            "CPU-tier hits in the performance estimate (prompts served from offloaded blocks skip their "
            "prefill; workload.prefix_reuse is the share of prompt tokens the estimate takes from a cache)"
        )
    per_gpu = sum(p.host_pinned_bytes_per_gpu for p in parts)
    per_node = resolved.profile.hardware.gpus_per_node or resolved.gpu.gpus_per_node
    per_pod = min(engine.total_gpus, per_node)
    return KvConnectorPlan(
        kv_transfer_config=transfer_config(spec, resolved.vllm.version),
        via=via,
        connectors=parts,
        host_pinned_bytes_per_gpu=per_gpu,
        gpus_per_pod=per_pod,
        host_pinned_bytes_per_pod=per_gpu * per_pod,
        host_pinned_gib_per_pod=gib(per_gpu * per_pod),
        not_modelled=unmodelled,
    )


def _quantity_bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    units |= {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}
    for unit in sorted(units, key=len, reverse=True):
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * units[unit]
    return float(quantity)


def memory_request(kv: KvConnectorPlan | None) -> str | None:
    """The pod's memory request for the pinned host memory (whole GiB, rounded up); None without any."""
    if kv is None or kv.host_pinned_bytes_per_pod <= 0:
        return None
    return f"{math.ceil(kv.host_pinned_bytes_per_pod / GIB)}Gi"


def apply(resolved: Resolved, kv: KvConnectorPlan, verdict: Verdict) -> Verdict:
    """The verdict with the connector's host memory and what is not modelled (never silent)."""
    warnings = list(verdict.warnings)
    reasons = list(verdict.reasons)
    starts = verdict.starts
    for item in kv.not_modelled:
        warnings.append(f"not-modelled: KV connector: {item}; the plan gives the memory without it")
    if kv.host_pinned_bytes_per_pod > 0:
        limit = resolved.profile.deploy.resources.memory
        if limit is not None and _quantity_bytes(limit) < kv.host_pinned_bytes_per_pod:
            starts = False
            reasons.append(
                f"host memory: the KV connector pins {kv.host_pinned_gib_per_pod:.2f} GiB per pod "
                f"({gib(kv.host_pinned_bytes_per_gpu):.2f} GiB x {kv.gpus_per_pod} GPU(s)) but deploy.resources.memory "
                f"is {limit}: the pod is OOM-killed at start-up"
            )
        else:
            warnings.append(
                f"host memory: the KV connector pins {kv.host_pinned_gib_per_pod:.2f} GiB per pod "
                f"({gib(kv.host_pinned_bytes_per_gpu):.2f} GiB per GPU x {kv.gpus_per_pod}); the k8s and compose "
                "artifacts request it"
            )
    update: dict[str, Any] = {"warnings": warnings, "reasons": reasons, "starts": starts}
    if not starts:
        update["oom_risk"] = "HIGH"
        fail_on = resolved.profile.policy.fail_on
        update["fails_policy"] = verdict.fails_policy or fail_on in ("high", "medium")
    return verdict.model_copy(update=update)
