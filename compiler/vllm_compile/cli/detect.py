"""`vllm-compile detect [--json] [--catalog]`: the local GPUs (NVML, else nvidia-smi), or the GPU catalog."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "detect",
        help="detect local GPUs (NVML, else nvidia-smi)",
        description="Detect the local GPUs through NVML (nvidia-ml-py), falling back to nvidia-smi, and "
        "match them to the GPU catalog. Memory is shown as the CUDA runtime (and vLLM) reports it.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--catalog", action="store_true", help="list the built-in GPU catalog instead of detecting"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..diagnostics import ExitCode

    if args.catalog:
        return _print_catalog(args.json)
    from ..facts.detect import DetectionError, main_detect

    try:
        return main_detect(args.json)
    except DetectionError as exc:
        if args.json:
            print(json.dumps({"count": 0, "error": str(exc), "gpus": []}, indent=2, sort_keys=True))
        else:
            print(f"vllm-compile detect: {exc}", file=sys.stderr)
        return ExitCode.INVALID


def _print_catalog(as_json: bool) -> int:
    from ..facts.gpus import gpu_catalog

    specs = gpu_catalog()
    if as_json:
        rows = [spec.model_dump(mode="json") | {"memory_gib": round(spec.memory_gib, 2)} for spec in specs]
        print(json.dumps({"count": len(rows), "gpus": rows}, indent=2, sort_keys=True))
        return 0
    for spec in specs:
        fp8 = f"{spec.fp8_tflops:g}" if spec.fp8_tflops is not None else "-"
        print(
            f"{spec.key:30} {spec.name:45} {spec.memory_gib:7.2f} GiB  {spec.memory_bandwidth_gbps:6g} GB/s  "
            f"bf16 {spec.bf16_tflops:g} / fp8 {fp8} TFLOPS  sm {spec.compute_capability}"
        )
    return 0
