"""The typed record of one GPU model. The catalog and NVML detection live in `facts/gpus.py`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GIB = 1 << 30


class GpuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str  # catalog key, e.g. h100-sxm-80gb
    name: str  # display name
    vendor: Literal["nvidia", "amd"] = "nvidia"
    aliases: list[str] = Field(default_factory=list)
    memory_bytes: int  # total as the CUDA runtime reports it (cudaMemGetInfo), not the marketing figure
    memory_bandwidth_gbps: float  # peak DRAM bandwidth, GB/s (decimal)
    bf16_tflops: float  # dense tensor-core peak, no sparsity
    fp16_tflops: float
    fp8_tflops: float | None = None  # None where the GPU has no FP8 tensor cores
    int8_tops: float | None = None
    compute_capability: str  # "9.0"
    nvlink_gbps: float | None = None  # per GPU, bidirectional; None = PCIe only
    # Added by helper "gpu": a 2-GPU NVLink bridge (A100/H100 PCIe, H100 NVL, A40, RTX A6000...): it only
    # links pairs, so TP > 2 still crosses PCIe. GB/s bidirectional; None = no bridge.
    nvlink_bridge_gbps: float | None = None
    pcie_gen: int = 4
    gpus_per_node: int = 8  # the most GPUs one machine of this part holds: `gpus` up to it is one node
    desktop: bool = False  # consumer/workstation part that also drives a display
    uma: bool = False  # unified memory (GH200, GB10): vLLM reads free memory from the host
    source: str = ""

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @property
    def sm(self) -> tuple[int, int]:
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def fp8_support(self) -> bool:
        return self.fp8_tflops is not None

    @property
    def bf16_support(self) -> bool:
        """Added by helper "gpu": native BF16 needs sm_80+ (vLLM casts bf16 to fp16 on Volta/Turing)."""
        return self.vendor == "amd" or self.sm >= (8, 0)
