"""GPU detection with a fake NVML module and a fake nvidia-smi on PATH (no driver needed)."""

from __future__ import annotations

import json
import os
import stat
import sys
import types
from pathlib import Path

import pytest

from vllm_compile.cli import main
from vllm_compile.facts import detect as detect_mod
from vllm_compile.facts.detect import DetectedGpu, DetectionError, detect_gpus, resolve_detected
from vllm_compile.facts.gpus import UnknownGpuError

MIB = 1 << 20
GIB = 1 << 30


class _Memory:
    def __init__(self, total: int, reserved: int | None) -> None:
        self.total, self.free, self.used = total, total, 0
        if reserved is not None:
            self.reserved = reserved


def fake_nvml(
    devices: list[tuple[str, int, int | None, tuple[int, int]]], *, v2: bool = True, fail_init: bool = False
):
    """A stand-in for nvidia-ml-py: (name, total MiB, reserved MiB, capability) per device."""
    module = types.ModuleType("pynvml")
    calls: list[str] = []

    class NVMLError(Exception):
        pass

    def init() -> None:
        calls.append("init")
        if fail_init:
            raise NVMLError("NVML Shared Library Not Found")

    def memory_info(handle: int, version: object = None):
        name, total, reserved, _ = devices[handle]
        if version is not None and not v2:
            raise NVMLError("Function Not Found")
        return _Memory(
            total * MIB, reserved * MIB if (version is not None and reserved is not None) else None
        )

    module.NVMLError = NVMLError
    module.nvmlInit = init
    module.nvmlShutdown = lambda: calls.append("shutdown")
    module.nvmlSystemGetDriverVersion = lambda: b"550.54.15"
    module.nvmlDeviceGetCount = lambda: len(devices)
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetName = lambda h: devices[h][0].encode()
    module.nvmlDeviceGetMemoryInfo = memory_info
    module.nvmlDeviceGetCudaComputeCapability = lambda h: devices[h][3]
    if v2:
        module.nvmlMemory_v2 = 0x02000028
    module.calls = calls
    return module


@pytest.fixture
def no_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def install_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + "/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML import fails -> nvidia-smi route


def test_nvml_h100_reports_cuda_total(monkeypatch: pytest.MonkeyPatch, no_smi: None) -> None:
    module = fake_nvml([("NVIDIA H100 80GB HBM3", 81559, 469, (9, 0))] * 2)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    gpus = detect_gpus()
    assert len(gpus) == 2 and [g.index for g in gpus] == [0, 1]
    gpu = gpus[0]
    assert (gpu.name, gpu.compute_capability, gpu.driver_version, gpu.source) == (
        "NVIDIA H100 80GB HBM3",
        "9.0",
        "550.54.15",
        "nvml",
    )
    assert gpu.memory_total_bytes == 81559 * MIB and gpu.cuda_total_bytes == 81090 * MIB
    spec = resolve_detected(gpus)
    assert spec.key == "h100-sxm-80gb"
    assert round(spec.memory_bytes / GIB, 2) == 79.19
    assert "nvml" in spec.source
    assert module.calls[-1] == "shutdown"


def test_nvml_v1_memory_uses_catalog_reserve(monkeypatch: pytest.MonkeyPatch, no_smi: None) -> None:
    """Without the reserved figure the same card's catalog CUDA total is used."""
    monkeypatch.setitem(
        sys.modules, "pynvml", fake_nvml([("NVIDIA A100-SXM4-80GB", 81920, None, (8, 0))], v2=False)
    )
    (gpu,) = detect_gpus()
    assert gpu.memory_reserved_bytes is None and gpu.cuda_total_bytes is None
    spec = resolve_detected(gpu)
    assert spec.key == "a100-sxm-80gb" and round(spec.memory_gib, 2) == 79.15


def test_mig_slice_maps_to_parent_with_its_own_memory(monkeypatch: pytest.MonkeyPatch, no_smi: None) -> None:
    monkeypatch.setitem(
        sys.modules, "pynvml", fake_nvml([("NVIDIA H100 80GB HBM3 MIG 3g.40gb", 40192, None, (9, 0))])
    )
    spec = resolve_detected(detect_gpus())
    assert spec.key == "h100-sxm-80gb"
    # Not the whole card: the slice's total less the reserve in the catalog's proportion.
    assert spec.memory_bytes == int(40192 * MIB * 81090 / 81559)


def test_smallest_device_binds(monkeypatch: pytest.MonkeyPatch, no_smi: None) -> None:
    devices = [("NVIDIA L40S", 46068, 479, (8, 9)), ("NVIDIA L4", 23034, 455, (8, 9))]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(devices))
    spec = resolve_detected(detect_gpus())
    assert spec.key == "l4-24gb" and spec.memory_bytes == (23034 - 455) * MIB


def test_nvml_failure_falls_back_to_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_smi(
        monkeypatch,
        tmp_path,
        'echo "0, NVIDIA H100 80GB HBM3, 81559, 469, 9.0, 550.54.15"\n'
        'echo "1, NVIDIA H100 80GB HBM3, 81559, 469, 9.0, 550.54.15"\n',
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], fail_init=True))
    gpus = detect_gpus()
    assert [g.source for g in gpus] == ["nvidia-smi", "nvidia-smi"]
    assert gpus[1].index == 1 and gpus[0].cuda_total_bytes == 81090 * MIB
    assert resolve_detected(gpus).memory_gib == pytest.approx(79.19, abs=0.005)


def test_old_nvidia_smi_minimal_query(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A driver that rejects memory.reserved: retried with name,memory.total,compute_cap."""
    install_smi(
        monkeypatch,
        tmp_path,
        'case "$1" in *reserved*) echo \'Field "memory.reserved" is not a valid field to query.\' >&2; exit 2;; esac\n'
        'echo "NVIDIA GeForce RTX 4090, 24564, 8.9"\n',
    )
    (gpu,) = detect_gpus()
    assert (gpu.name, gpu.memory_total_bytes, gpu.compute_capability) == (
        "NVIDIA GeForce RTX 4090",
        24564 * MIB,
        "8.9",
    )
    spec = resolve_detected(gpu)
    assert spec.key == "rtx-4090-24gb" and spec.memory_bytes == 24563 * MIB


def test_nothing_works_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, no_smi: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(DetectionError) as exc:
        detect_gpus()
    message = str(exc.value)
    assert "nvidia-ml-py is not installed" in message and "nvidia-smi: not found on PATH" in message
    assert "--gpu" in message
    assert isinstance(exc.value, ValueError)


def test_garbled_smi_output_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_smi(monkeypatch, tmp_path, 'echo "garbage"\n')
    with pytest.raises(DetectionError, match="unexpected output"):
        detect_gpus()


def test_unknown_device_names_the_workaround() -> None:
    gpu = DetectedGpu(0, "NVIDIA Future X1", 50000 * MIB, 500 * MIB, "13.0", "600.1", "nvml")
    with pytest.raises(UnknownGpuError, match=r"--vram-gib 48\.34"):
        resolve_detected(gpu)
    with pytest.raises(DetectionError):
        resolve_detected([])


def test_cli_detect_json(
    monkeypatch: pytest.MonkeyPatch, no_smi: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NVIDIA L4", 23034, 455, (8, 9))]))
    assert main(["detect", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["count"] == 1
    assert data["gpus"][0]["catalog_key"] == "l4-24gb" and data["gpus"][0]["vllm_total_gib"] == 22.05


def test_cli_detect_human_and_failure(
    monkeypatch: pytest.MonkeyPatch, no_smi: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NVIDIA H100 80GB HBM3", 81559, 469, (9, 0))]))
    assert main(["detect"]) == 0
    out = capsys.readouterr().out
    assert "79.19 GiB" in out and "h100-sxm-80gb" in out
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert main(["detect"]) == 2
    assert "no NVIDIA GPU detected" in capsys.readouterr().err


def test_cli_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--catalog", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["count"] >= 25
    h100 = next(g for g in data["gpus"] if g["key"] == "h100-sxm-80gb")
    assert h100["memory_gib"] == 79.19


def test_detect_module_imports_no_nvml_eagerly() -> None:
    assert "pynvml" not in vars(detect_mod)
