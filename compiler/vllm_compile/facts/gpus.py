"""The GPU catalog: resolve a user's GPU name ("H100", "NVIDIA GeForce RTX 4090", "a100-sxm4-80gb") to a GpuSpec.

The facts live in `data/gpus.json` (copied from datasheets and real `nvidia-smi` / torch output, one
source note per GPU). `memory_bytes` is the total the CUDA runtime reports (`cudaMemGetInfo`, what vLLM
multiplies by `gpu_memory_utilization` and prints as total memory), not the marketing figure and not the
`nvidia-smi` total: the driver keeps a few hundred MiB on HBM parts (H100 SXM: nvidia-smi 81559 MiB, CUDA
81090 MiB = 79.19 GiB).

Ambiguous bare names pick the most common part: "H100" is the SXM 80GB, "A100" the SXM 80GB, "H200" the
SXM 141GB, "V100" the SXM2 32GB, "GH200" the 96GB HBM3 module. Name a variant ("H100 PCIe", "A100 40GB")
to get another.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from vllm_compile.facts.gpu_spec import GpuSpec

MIB = 1 << 20
GIB = 1 << 30
GB = 10**9

# Keys of a catalog entry that document provenance but are not GpuSpec fields.
_PROVENANCE_KEYS = (
    "cuda_total_mib",
    "nvidia_smi_total_mib",
    "nvidia_smi_name",
    "confidence",
    "memory_source",
)


class UnknownGpuError(ValueError):
    """The name matches no catalog GPU; the message lists the closest names."""


@lru_cache(maxsize=1)
def _raw_catalog() -> list[dict[str, Any]]:
    text = resources.files("vllm_compile.facts").joinpath("data/gpus.json").read_text(encoding="utf-8")
    return list(json.loads(text)["gpus"])


def _spec_from_entry(entry: dict[str, Any]) -> GpuSpec:
    fields = {k: v for k, v in entry.items() if k not in _PROVENANCE_KEYS}
    # The CUDA runtime total in MiB as torch prints it (get_device_properties().total_memory // 2**20).
    fields["memory_bytes"] = int(entry["cuda_total_mib"]) * MIB
    return GpuSpec(**fields)


@lru_cache(maxsize=1)
def _catalog() -> tuple[GpuSpec, ...]:
    return tuple(_spec_from_entry(e) for e in _raw_catalog())


def gpu_catalog() -> list[GpuSpec]:
    """Every GPU in the catalog, in catalog order (datacenter first)."""
    return list(_catalog())


def nvidia_smi_total_mib(key: str) -> int | None:
    """The `nvidia-smi` total of a catalog GPU (MiB), kept for matching detected devices."""
    for entry in _raw_catalog():
        if entry["key"] == key:
            value = entry.get("nvidia_smi_total_mib")
            return int(value) if value is not None else None
    return None


_PREFIXES = ("nvidia", "geforce", "tesla", "amd", "instinct", "quadro")


def normalize_gpu_name(name: str) -> str:
    """Lower-case, drop vendor/brand words and separators: "NVIDIA GeForce RTX-4090" -> "rtx4090"."""
    text = name.strip().lower()
    text = re.sub(r"[\s_\-/().,]+", " ", text)
    words = [w for w in text.split() if w not in _PREFIXES]
    joined = "".join(words)
    # "80G", "80gib" and "80gb" name the same card.
    joined = re.sub(r"(\d+)(?:gib|gb|g)(?=[a-z]|$)", r"\1gb", joined)
    return joined


@lru_cache(maxsize=1)
def _alias_index() -> dict[str, str]:
    """Normalised alias -> catalog key. Aliases are unique across the catalog (a test checks it)."""
    index: dict[str, str] = {}
    for spec in _catalog():
        for alias in (spec.key, spec.name, *spec.aliases):
            index.setdefault(normalize_gpu_name(alias), spec.key)
    return index


def _by_key(key: str) -> GpuSpec:
    for spec in _catalog():
        if spec.key == key:
            return spec
    raise UnknownGpuError(f"no GPU with catalog key {key!r}")


def lookup_gpu(name: str) -> GpuSpec | None:
    """The catalog GPU for a name or alias, or None."""
    key = _alias_index().get(normalize_gpu_name(name))
    return _by_key(key) if key is not None else None


def resolve_gpu(name: str, *, vram_gib: float | None = None, vram_gb: float | None = None) -> GpuSpec:
    """The catalog GpuSpec for `name`; `vram_gib` (binary) or `vram_gb` (decimal) overrides the memory."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownGpuError(
            "GPU name is empty; name one, e.g. 'H100' (`vllm-compile detect --catalog` lists them)"
        )
    spec = lookup_gpu(name)
    if spec is None:
        raise UnknownGpuError(_unknown_message(name))
    if vram_gib is not None and vram_gb is not None:
        raise ValueError("give either vram_gib or vram_gb, not both")
    override = None
    if vram_gib is not None:
        override = _positive(vram_gib, "vram_gib") * GIB
    elif vram_gb is not None:
        override = _positive(vram_gb, "vram_gb") * GB
    if override is not None:
        spec = spec.model_copy(
            update={
                "memory_bytes": int(round(override)),
                "source": f"{spec.source}; memory overridden by the user",
            }
        )
    return spec


def _positive(value: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a number, got {value!r}") from exc
    if not number > 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return number


def _unknown_message(name: str) -> str:
    index = _alias_index()
    wanted = normalize_gpu_name(name)
    close = difflib.get_close_matches(wanted, list(index), n=8, cutoff=0.5)
    # Substring hits catch "h100" style prefixes that difflib scores low against long aliases.
    if wanted:
        close += [a for a in index if wanted in a and a not in close]
    names: list[str] = []
    for alias in close:
        display = _by_key(index[alias]).name
        if display not in names:
            names.append(display)
    hint = f" Did you mean: {', '.join(names[:5])}?" if names else ""
    return (
        f"unknown GPU {name!r}.{hint} `vllm-compile detect --catalog` lists the known GPUs; "
        "for an unlisted card pass the closest one plus --vram-gib"
    )
