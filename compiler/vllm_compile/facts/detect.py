"""Detect the local GPUs: NVML (nvidia-ml-py) first, `nvidia-smi` as the fallback.

NVML and nvidia-smi report the board total (H100 SXM: 81559 MiB); the CUDA runtime, and so vLLM, sees
that minus the memory the driver reserves (81090 MiB = 79.19 GiB). NVML's v2 memory info and
`nvidia-smi --query-gpu=memory.reserved` give the reserved part; where they do not, the catalog entry
for the same card supplies its CUDA total.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from vllm_compile.facts.gpu_spec import GpuSpec
from vllm_compile.facts.gpus import (
    UnknownGpuError,
    lookup_gpu,
    nvidia_smi_total_mib,
    resolve_gpu,
)

MIB = 1 << 20
_SMI_TIMEOUT_S = 20
_SMI_FULL = "index,name,memory.total,memory.reserved,compute_cap,driver_version"
_SMI_MINIMAL = "name,memory.total,compute_cap"  # older drivers know no memory.reserved / compute_cap
# A catalog total this close (fraction) to the device's counts as the same memory variant.
_SAME_VARIANT = 0.02


class DetectionError(ValueError):
    """No GPU could be detected; the message says what was tried and what to do."""


@dataclass(frozen=True)
class DetectedGpu:
    index: int
    name: str  # as the driver names it, e.g. "NVIDIA H100 80GB HBM3"
    memory_total_bytes: int  # board total as NVML / nvidia-smi report it
    memory_reserved_bytes: int | None  # driver/firmware reserve, where the driver says
    compute_capability: str | None  # "9.0"
    driver_version: str | None
    source: str  # "nvml" | "nvidia-smi"

    @property
    def cuda_total_bytes(self) -> int | None:
        """What cudaMemGetInfo reports as total (vLLM's T), when the reserve is known."""
        if self.memory_reserved_bytes is None:
            return None
        return self.memory_total_bytes - self.memory_reserved_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_reserved_bytes": self.memory_reserved_bytes,
            "cuda_total_bytes": self.cuda_total_bytes,
            "compute_capability": self.compute_capability,
            "driver_version": self.driver_version,
            "source": self.source,
        }


def detect_gpus() -> list[DetectedGpu]:
    """Every visible GPU, via NVML, else `nvidia-smi`; DetectionError when neither works."""
    errors: list[str] = []
    try:
        gpus = _detect_nvml()
        if gpus:
            return gpus
        errors.append("NVML: no devices")
    except _Unavailable as exc:
        errors.append(f"NVML: {exc}")
    try:
        gpus = _detect_smi()
        if gpus:
            return gpus
        errors.append("nvidia-smi: no devices")
    except _Unavailable as exc:
        errors.append(f"nvidia-smi: {exc}")
    raise DetectionError(
        "no NVIDIA GPU detected (" + "; ".join(errors) + "). Install the driver and nvidia-ml-py "
        "(pip install nvidia-ml-py), or name the GPU instead: --gpu H100 (add --vram-gib for an unlisted card)"
    )


class _Unavailable(Exception):
    """One detection route does not work here."""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _detect_nvml() -> list[DetectedGpu]:
    try:
        import pynvml  # nvidia-ml-py; heavy and often absent, so imported here
    except ImportError as exc:
        raise _Unavailable("nvidia-ml-py is not installed") from exc
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded ...
        raise _Unavailable(f"cannot initialise ({_text(exc) or type(exc).__name__})") from exc
    try:
        driver = _nvml_call(pynvml.nvmlSystemGetDriverVersion)
        count = int(pynvml.nvmlDeviceGetCount())
        found: list[DetectedGpu] = []
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            total, reserved = _nvml_memory(pynvml, handle)
            capability = _nvml_call(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            found.append(
                DetectedGpu(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)).strip(),
                    memory_total_bytes=total,
                    memory_reserved_bytes=reserved,
                    compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
                    driver_version=_text(driver) if driver is not None else None,
                    source="nvml",
                )
            )
        return found
    except _Unavailable:
        raise
    except Exception as exc:
        raise _Unavailable(f"query failed ({_text(exc) or type(exc).__name__})") from exc
    finally:
        # Shutting down a half-initialised NVML must not hide the result.
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _nvml_call(func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except Exception:
        return None


def _nvml_memory(pynvml: Any, handle: Any) -> tuple[int, int | None]:
    # v2 memory info carries `reserved` (driver 510+); v1 only total/free/used.
    version = getattr(pynvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            reserved = getattr(info, "reserved", None)
            return int(info.total), int(reserved) if reserved is not None else None
        except Exception:  # older driver: fall back to v1
            pass
    info = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return int(info.total), None


def _run_smi(fields: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise _Unavailable("not found on PATH")
    try:
        return subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Unavailable(f"could not run ({exc})") from exc


def _detect_smi() -> list[DetectedGpu]:
    result = _run_smi(_SMI_FULL)
    full = result.returncode == 0
    if not full:
        result = _run_smi(_SMI_MINIMAL)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise _Unavailable(message[0] if message else f"exit status {result.returncode}")
    found: list[DetectedGpu] = []
    for line_no, line in enumerate(result.stdout.splitlines()):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        try:
            found.append(_parse_smi_row(cells, full, len(found)))
        except (ValueError, IndexError) as exc:
            raise _Unavailable(f"unexpected output line {line_no + 1}: {line!r}") from exc
    return found


def _optional_float(cell: str) -> float | None:
    # nvidia-smi prints "[N/A]" / "[Not Supported]" for fields a device lacks.
    return None if cell.startswith("[") or not cell else float(cell)


def _parse_smi_row(cells: list[str], full: bool, position: int) -> DetectedGpu:
    if full:
        index, name, total, reserved, capability, driver = cells[:6]
        reserved_mib = _optional_float(reserved)
        return DetectedGpu(
            index=int(index),
            name=name,
            memory_total_bytes=int(float(total) * MIB),
            memory_reserved_bytes=int(reserved_mib * MIB) if reserved_mib is not None else None,
            compute_capability=None if capability.startswith("[") else capability,
            driver_version=None if driver.startswith("[") else driver,
            source="nvidia-smi",
        )
    name, total, capability = cells[:3]
    return DetectedGpu(
        index=position,
        name=name,
        memory_total_bytes=int(float(total) * MIB),
        memory_reserved_bytes=None,
        compute_capability=None if capability.startswith("[") else capability,
        driver_version=None,
        source="nvidia-smi",
    )


_MIG_SUFFIX = re.compile(r"\s+MIG\s+\S+.*$", re.IGNORECASE)


def catalog_name(detected: DetectedGpu) -> str:
    """The name to look up in the catalog: a MIG slice ("... MIG 3g.40gb") is its parent card."""
    return _MIG_SUFFIX.sub("", detected.name).strip()


def resolve_detected(detected: DetectedGpu | list[DetectedGpu]) -> GpuSpec:
    """The catalog GpuSpec of a detected device, its memory taken from the device (CUDA's view)."""
    if isinstance(detected, list):
        if not detected:
            raise DetectionError("no GPU detected to resolve")
        detected = min(detected, key=lambda d: d.memory_total_bytes)  # vLLM is bound by the smallest
    spec = lookup_gpu(catalog_name(detected))
    if spec is None:
        raise UnknownGpuError(
            f"detected {detected.name!r} is not in the GPU catalog; pass the closest catalog GPU with "
            f"--gpu and --vram-gib {_cuda_total_estimate(detected, None) / (1 << 30):.2f}"
        )
    memory = _cuda_total_estimate(detected, spec)
    source = f"{spec.source}; memory from the device ({detected.source}, {detected.name})"
    return resolve_gpu(spec.key).model_copy(update={"memory_bytes": memory, "source": source})


def _cuda_total_estimate(detected: DetectedGpu, spec: GpuSpec | None) -> int:
    if detected.cuda_total_bytes is not None:
        return detected.cuda_total_bytes
    if spec is None:
        return detected.memory_total_bytes
    smi_mib = nvidia_smi_total_mib(spec.key)
    if smi_mib is None:
        return detected.memory_total_bytes
    smi_bytes = smi_mib * MIB
    if abs(detected.memory_total_bytes - smi_bytes) <= _SAME_VARIANT * smi_bytes:
        return spec.memory_bytes  # the same card: the catalog knows its CUDA total
    # Another variant (MIG slice, unusual SKU): take off the reserve in the catalog's proportion.
    return int(detected.memory_total_bytes * spec.memory_bytes / smi_bytes)


def main_detect(as_json: bool, out: Any = None) -> int:
    """`vllm-compile detect`: print the detected GPUs and their catalog match. Returns the exit code."""
    import json

    out = out or sys.stdout
    gpus = detect_gpus()
    rows = []
    for gpu in gpus:
        row = gpu.as_dict()
        try:
            spec = resolve_detected(gpu)
            row["catalog_key"] = spec.key
            row["vllm_total_gib"] = round(spec.memory_bytes / (1 << 30), 2)
        except UnknownGpuError:
            row["catalog_key"] = None
            row["vllm_total_gib"] = round(_cuda_total_estimate(gpu, None) / (1 << 30), 2)
        rows.append(row)
    if as_json:
        out.write(json.dumps({"count": len(rows), "gpus": rows}, indent=2, sort_keys=True) + "\n")
        return 0
    out.write(f"{len(rows)} GPU(s) ({gpus[0].source}):\n")
    for row in rows:
        match = row["catalog_key"] or "not in the catalog"
        out.write(
            f"  [{row['index']}] {row['name']}: {row['vllm_total_gib']:.2f} GiB as CUDA reports it, "
            f"compute capability {row['compute_capability'] or '?'}, catalog: {match}\n"
        )
    return 0
