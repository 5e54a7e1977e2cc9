"""The vLLM releases we target and the defaults of each that change our numbers.

The table (`data/vllm_versions.json`) is a changelog: each release lists only what changed from the one
before, every value with its source (vLLM file, PR or commit). `get_vllm_version("0.19.0")` folds the
changes up to that release into a VllmVersion. A patch release missing from the table ("0.19.1") maps
to the nearest lower release of the same minor, with a note.

Two functions model vLLM code that depends on the GPU:
- `batch_defaults`: engine/arg_utils.py `get_batch_defaults` (max_num_batched_tokens / max_num_seqs);
- `cudagraph_capture_sizes`: VllmConfig._set_cudagraph_sizes of each era.
Flags per release (renamed/removed) live in `facts/vllm_flags.py`.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from vllm_compile.facts.gpu_spec import GpuSpec
from vllm_compile.facts.vllm_version import BatchDefaults, VllmVersion

GIB = 1 << 30
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?(?:(?:\.post|\.dev|rc|\+)[0-9A-Za-z.+]*)?$")
_BATCH_FIELDS = (
    "batch_large",
    "batch_70g",
    "batch_small",
    "batch_large_offline",
    "batch_70g_offline",
    "batch_small_offline",
)

Usage = Literal["serve", "offline"]


class UnknownVersionError(ValueError):
    """The version is not a release we target; the message names the supported ones."""


@lru_cache(maxsize=1)
def _releases() -> list[dict[str, Any]]:
    text = (
        resources.files("vllm_compile.facts").joinpath("data/vllm_versions.json").read_text(encoding="utf-8")
    )
    return list(json.loads(text)["releases"])


@lru_cache(maxsize=256)  # pure; the memory passes compare the same few versions for every candidate
def version_key(version: str) -> tuple[int, ...]:
    match = _VERSION_RE.match(version.strip())
    if match is None:
        raise UnknownVersionError(
            f"{version!r} is not a vLLM version (expected e.g. 0.33.0); supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    return tuple(int(g) for g in match.groups() if g is not None)


@lru_cache(maxsize=1)
def _table() -> dict[str, VllmVersion]:
    state: dict[str, Any] = {}
    sources: dict[str, str] = {}
    table: dict[str, VllmVersion] = {}
    for release in _releases():
        for name, (value, source) in release["changes"].items():
            state[name] = value
            sources[name] = f"{source} [{release['version']}]"
        table[release["version"]] = _build(release["version"], state, sources)
    return table


def _build(version: str, state: dict[str, Any], sources: dict[str, str]) -> VllmVersion:
    fields = dict(state)
    # Before the >=160 GiB tier existed such devices fell into the >=70 GiB tier.
    if fields.get("batch_large") is None:
        fields["batch_large"] = fields["batch_70g"]
    if fields.get("batch_large_offline") is None:
        fields["batch_large_offline"] = fields["batch_70g_offline"]
    for name in _BATCH_FIELDS:
        tokens, seqs = fields[name]
        fields[name] = BatchDefaults(max_num_batched_tokens=tokens, max_num_seqs=seqs)
    fields["max_cudagraph_capture_size"] = fields.pop("max_cudagraph_capture_size", 512)
    return VllmVersion(
        version=version,
        sources=dict(sorted(sources.items())),
        source=f"vllm-compile table of vLLM {version} defaults (facts/data/vllm_versions.json)",
        **fields,
    )


SUPPORTED_VERSIONS: tuple[str, ...] = tuple(r["version"] for r in _releases())
LATEST_VERSION: str = max(SUPPORTED_VERSIONS, key=version_key)


def get_vllm_version(v: str) -> VllmVersion:
    """The VllmVersion of release `v`; an unknown patch maps to the nearest lower one of its minor."""
    if not isinstance(v, str) or not v.strip():
        raise UnknownVersionError(f"no vLLM version given; supported: {', '.join(SUPPORTED_VERSIONS)}")
    wanted = v.strip().lstrip("v")
    table = _table()
    if wanted in ("latest", "default"):
        return table[LATEST_VERSION]
    if wanted in table:
        return table[wanted]
    key = version_key(wanted)
    same_minor = [s for s in SUPPORTED_VERSIONS if version_key(s)[:2] == key[:2] and version_key(s) <= key]
    if same_minor:
        base = max(same_minor, key=version_key)
        return table[base].model_copy(
            update={
                "version": wanted,
                "note": f"vLLM {wanted} is not in the table; using the defaults of {base}",
            }
        )
    if key < version_key(SUPPORTED_VERSIONS[0]):
        hint = f" It is older than the oldest targeted release, {SUPPORTED_VERSIONS[0]}."
    elif key > version_key(LATEST_VERSION):
        hint = f" It is newer than the newest targeted release, {LATEST_VERSION}."
    else:
        close = difflib.get_close_matches(wanted, list(SUPPORTED_VERSIONS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownVersionError(
        f"vLLM {v} is not a release vllm-compile targets.{hint} Supported: {', '.join(SUPPORTED_VERSIONS)}"
    )


def _device_name(gpu: GpuSpec) -> str:
    # vLLM matches on current_platform.get_device_name(), e.g. "NVIDIA A100-SXM4-80GB".
    return gpu.name.lower()


def batch_tier(version: VllmVersion, gpu: GpuSpec) -> Literal["large", "70g", "small"]:
    """Which get_batch_defaults tier this GPU falls in (keyed on get_device_total_memory, bytes)."""
    memory = gpu.memory_bytes
    if version.batch_rule == "mem160" and memory >= 160 * GIB:
        return "large"
    excluded = any(name in _device_name(gpu) for name in version.batch_excluded_names)
    if memory >= 70 * GIB and not excluded:
        return "70g"
    return "small"


def batch_defaults(version: VllmVersion, gpu: GpuSpec, *, usage: Usage = "serve") -> BatchDefaults:
    """The table value of get_batch_defaults, before vLLM's clamps (min with max_num_seqs x max_model_len,
    max with max_model_len without chunked prefill, x2 in throughput mode) which the settings pass applies."""
    tier = batch_tier(version, gpu)
    serve = {"large": version.batch_large, "70g": version.batch_70g, "small": version.batch_small}[tier]
    if usage == "serve":
        return serve
    offline = {
        "large": version.batch_large_offline,
        "70g": version.batch_70g_offline,
        "small": version.batch_small_offline,
    }[tier]
    return offline or serve


def capture_ceiling(version: VllmVersion, gpu: GpuSpec) -> int:
    """The largest default CUDA graph size: 512, or 1024 on data-center Blackwell where the release says so."""
    if gpu.vendor == "nvidia" and gpu.sm[0] == 10:
        return version.cudagraph_capture_ceiling_sm100
    return version.max_cudagraph_capture_size


def cudagraph_capture_sizes(
    version: VllmVersion,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    gpu: GpuSpec,
    *,
    num_speculative_tokens: int = 0,
    performance_mode: str = "balanced",
    enforce_eager: bool = False,
) -> list[int]:
    """The default CUDA graph batch sizes vLLM captures (ascending), VllmConfig._set_cudagraph_sizes."""
    if enforce_eager:
        return []
    seqs, tokens = int(max_num_seqs), int(max_num_batched_tokens)
    if seqs < 1 or tokens < 1:
        raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")
    rule = version.cudagraph_rule
    if rule == "fixed512":
        # config.py (V1, 0.8/0.9): fixed candidates, those above the token budget dropped.
        sizes = [1, 2, 4, *range(8, 513, 8)]
        return [s for s in sizes if s <= tokens]
    if rule == "seqs2_step8":
        # SchedulerConfig.cuda_graph_sizes default: [min(max_num_seqs * 2, 512)], step 8.
        cap = min(seqs * 2, version.max_cudagraph_capture_size)
        sizes = [s for s in (1, 2, 4) if s <= cap] + list(range(8, cap + 1, 8))
        return [s for s in sizes if s <= tokens]
    # max_cudagraph_capture_size era: step 8 below 256, step 16 from 256.
    query_len = 1 + num_speculative_tokens if rule == "seqs2q_stride16" else 1
    ceiling = capture_ceiling(version, gpu)
    cap = min(tokens, min(seqs * query_len * 2, ceiling))
    if performance_mode == "interactivity" and version.performance_mode:
        # Every size up to 32 to avoid padding small decode batches.
        sizes = list(range(1, min(cap, 32) + 1))
    else:
        sizes = [s for s in (1, 2, 4) if s <= cap]
    if cap >= 8:
        sizes += list(range(8, min(cap + 1, 256), 8))
    if cap >= 256:
        sizes += list(range(256, cap + 1, 16))
    if version.cudagraph_append_batch_sizes:
        if tokens <= cap:
            sizes.append(tokens)
        decode = seqs * query_len
        if decode <= min(ceiling, tokens):
            sizes.append(decode)
    return sorted(set(sizes))


def default_block_size(version: VllmVersion, gpu: GpuSpec, *, mla: bool = False) -> int:
    """The KV block size vLLM picks when --block-size is unset (platforms update_block_size_for_backend)."""
    if mla and gpu.vendor == "nvidia":
        if gpu.sm[0] == 9:
            return version.mla_block_size_sm90
        if gpu.sm[0] == 10:
            return version.mla_block_size_sm100
    return version.block_size
