"""The GPU catalog: names resolve, memory is what CUDA (and vLLM) report, overrides and errors behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_compile.facts.gpus import (
    UnknownGpuError,
    gpu_catalog,
    lookup_gpu,
    normalize_gpu_name,
    nvidia_smi_total_mib,
    resolve_gpu,
)

GIB = 1 << 30
MIB = 1 << 20
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("H100", "h100-sxm-80gb"),
        ("H100 80GB", "h100-sxm-80gb"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm-80gb"),
        ("h100-sxm", "h100-sxm-80gb"),
        ("H100-80G", "h100-sxm-80gb"),
        ("h100_sxm5", "h100-sxm-80gb"),
        ("H100 PCIe", "h100-pcie-80gb"),
        ("NVIDIA H100 NVL", "h100-nvl-94gb"),
        ("A100", "a100-sxm-80gb"),
        ("A100 80GB", "a100-sxm-80gb"),
        ("A100-SXM4-80GB", "a100-sxm-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm-40gb"),
        ("A100 40GB", "a100-sxm-40gb"),
        ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090-24gb"),
        ("RTX 4090", "rtx-4090-24gb"),
        ("4090", "rtx-4090-24gb"),
        ("rtx4090", "rtx-4090-24gb"),
        ("Tesla T4", "t4-16gb"),
        ("L40S", "l40s-48gb"),
        ("l4", "l4-24gb"),
        ("H200", "h200-sxm-141gb"),
        ("B200", "b200-180gb"),
        ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada-48gb"),
        ("RTX A6000", "rtx-a6000-48gb"),
        ("AMD Instinct MI300X", "mi300x-192gb"),
        ("MI325X", "mi325x-256gb"),
        ("GH200 480GB", "gh200-96gb"),
    ],
)
def test_aliases_resolve(name: str, key: str) -> None:
    assert resolve_gpu(name).key == key


def test_normalisation_drops_brand_words_and_separators() -> None:
    assert normalize_gpu_name("NVIDIA GeForce RTX-4090") == "rtx4090"
    assert normalize_gpu_name(" h100_80G ") == normalize_gpu_name("H100 80 GB") == "h10080gb"


def test_catalog_size_and_coverage() -> None:
    specs = gpu_catalog()
    assert len(specs) >= 25
    keys = {s.key for s in specs}
    assert len(keys) == len(specs)
    assert {"mi300x-192gb", "mi325x-256gb"} <= keys
    assert {s.vendor for s in specs} == {"nvidia", "amd"}
    assert sum(s.desktop for s in specs) >= 6
    assert all(s.source for s in specs)


def test_aliases_are_unambiguous() -> None:
    """No two GPUs may claim the same normalised alias (the first would silently win)."""
    seen: dict[str, str] = {}
    for spec in gpu_catalog():
        for alias in {normalize_gpu_name(a) for a in (spec.key, spec.name, *spec.aliases)}:
            assert seen.setdefault(alias, spec.key) == spec.key, f"{alias!r}: {seen[alias]} and {spec.key}"


def test_h100_total_is_what_vllm_prints() -> None:
    # vLLM prints "total_gpu_memory (79.19GiB)" on an H100 80GB: cudaMemGetInfo, not 80 GB or 81559 MiB.
    h100 = resolve_gpu("H100")
    assert round(h100.memory_bytes / GIB, 2) == 79.19
    assert h100.memory_bytes == 81090 * MIB
    assert nvidia_smi_total_mib("h100-sxm-80gb") == 81559


@pytest.mark.parametrize(
    ("name", "gib"),
    [
        ("H200", 139.80),
        ("B200", 178.35),
        ("A100-SXM4-40GB", 39.59),
        ("T4", 14.75),
        ("RTX 4090", 23.99),
        ("MI300X", 191.98),
    ],
)
def test_cuda_totals(name: str, gib: float) -> None:
    assert round(resolve_gpu(name).memory_gib, 2) == gib


def test_cuda_total_below_nvidia_smi_total() -> None:
    """The driver never hands CUDA more than the board total; datacenter HBM parts keep a reserve."""
    for spec in gpu_catalog():
        smi = nvidia_smi_total_mib(spec.key)
        if smi is None or spec.vendor != "nvidia":
            continue
        assert spec.memory_bytes <= smi * MIB, spec.key
        assert spec.memory_bytes >= 0.97 * smi * MIB, spec.key


def test_specs_are_physical() -> None:
    h100 = resolve_gpu("H100")
    assert (h100.bf16_tflops, h100.fp8_tflops, h100.memory_bandwidth_gbps) == (989, 1979, 3350)
    assert h100.nvlink_gbps == 900 and h100.pcie_gen == 5 and h100.compute_capability == "9.0"
    a100 = resolve_gpu("A100")
    assert a100.fp8_tflops is None and not a100.fp8_support and a100.bf16_support
    assert resolve_gpu("L40S").fp8_support and resolve_gpu("L40S").nvlink_gbps is None
    assert not resolve_gpu("T4").bf16_support and not resolve_gpu("V100").bf16_support
    assert resolve_gpu("RTX 4090").desktop and not resolve_gpu("H100").desktop
    assert resolve_gpu("GH200").uma
    assert resolve_gpu("H100 PCIe").nvlink_bridge_gbps == 600 and resolve_gpu("H100 PCIe").nvlink_gbps is None
    for spec in gpu_catalog():
        assert spec.memory_bandwidth_gbps > 0 and spec.bf16_tflops > 0 and spec.fp16_tflops > 0
        if spec.fp8_tflops is not None:
            assert spec.fp8_tflops >= spec.bf16_tflops  # FP8 tensor cores run at least the BF16 rate


def test_vram_overrides() -> None:
    assert resolve_gpu("H100", vram_gib=40).memory_bytes == 40 * GIB
    assert resolve_gpu("H100", vram_gb=80).memory_bytes == 80 * 10**9
    assert resolve_gpu("H100", vram_gib=40).bf16_tflops == 989  # only the memory changes
    assert resolve_gpu("H100").memory_bytes == 81090 * MIB  # the catalog is untouched
    with pytest.raises(ValueError, match="either"):
        resolve_gpu("H100", vram_gib=40, vram_gb=40)
    with pytest.raises(ValueError, match="positive"):
        resolve_gpu("H100", vram_gib=0)


def test_unknown_gpu_suggests_close_names() -> None:
    with pytest.raises(UnknownGpuError) as exc:
        resolve_gpu("RTX 4070")
    message = str(exc.value)
    assert "RTX 4090" in message and "RTX 4080" in message and "--vram-gib" in message
    with pytest.raises(UnknownGpuError, match="H100"):
        resolve_gpu("H1OO")
    with pytest.raises(UnknownGpuError, match="empty"):
        resolve_gpu("  ")
    assert isinstance(UnknownGpuError("x"), ValueError)
    assert lookup_gpu("TPU v5e") is None


def test_reference_sheet_agrees() -> None:
    """Cross-check against the team's reference/gpus.yaml (read only here; skipped when absent)."""
    path = SHARED / "reference" / "gpus.yaml"
    if not path.exists():
        pytest.skip(f"{path} not present")
    yaml = pytest.importorskip("yaml")
    reference = yaml.safe_load(path.read_text(encoding="utf-8"))["gpus"]
    mapping = {
        "h100_sxm_80gb": "H100",
        "a100_sxm_80gb": "A100",
        "l40s": "L40S",
        "l4": "L4",
        "rtx_4090": "RTX 4090",
    }
    for ref_key, name in mapping.items():
        entry, spec = reference[ref_key], resolve_gpu(name)
        assert nvidia_smi_total_mib(spec.key) == entry["nvidia_smi_total_mib"]
        assert spec.memory_bandwidth_gbps == entry["mem_bw_gbps"]
        assert spec.bf16_tflops == entry["bf16_dense_tflops"]
        assert spec.compute_capability == entry["compute_capability"]


def test_calibration_totals_match() -> None:
    """Every H100 total vLLM printed in the calibration set is within 0.05 GiB of the catalog (skipped when absent)."""
    path = SHARED / "calibration" / "memory_observations.yaml"
    if not path.exists():
        pytest.skip(f"{path} not present")
    yaml = pytest.importorskip("yaml")
    observations = yaml.safe_load(path.read_text(encoding="utf-8"))["observations"]
    totals = [
        o["gpu_total_gib"] for o in observations if "H100" in str(o.get("gpu")) and o.get("gpu_total_gib")
    ]
    assert totals
    h100 = resolve_gpu("H100").memory_gib
    assert all(abs(t - h100) <= 0.05 for t in totals), totals
