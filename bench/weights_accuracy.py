"""Predicted weights per GPU vs vLLM's "Model loading took X GiB" for the calibration entries.

Reads ../shared/calibration/memory_observations.yaml (beside the repository) and resolves each
entry's model through the catalog (offline). Prints a table and a summary; exit code 0 always
(a benchmark, not a test).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vllm_compile.facts.models import ModelResolutionError, resolve_model  # noqa: E402
from vllm_compile.facts.weights import resolve_dtype, weight_bytes_per_gpu  # noqa: E402
from vllm_compile.profile.v1 import ModelSpec  # noqa: E402

OBS = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "memory_observations.yaml"
GIB = 1 << 30
# The GPU each entry ran on -> compute capability (only what dtype resolution and MXFP4 padding need).
_CC = {
    "A100": "8.0",
    "H100": "9.0",
    "L40S": "8.9",
    "RTX 4090": "8.9",
    "RTX 4060": "8.9",
    "T4": "7.5",
    "A6000": "8.6",
}


def _cc(gpu: str) -> str:
    for name, cc in _CC.items():
        if name.lower() in gpu.lower():
            return cc
    return "9.0"


def main() -> int:
    import yaml

    if not OBS.exists():
        print(f"no calibration file at {OBS}")
        return 0
    entries = yaml.safe_load(OBS.read_text())["observations"]
    rows: list[tuple[str, str, float, float, float, str]] = []
    skipped: list[tuple[str, str]] = []
    for e in entries:
        obs = (e.get("observed") or {}).get("weights_gib")
        if obs is None:
            continue
        try:
            model = resolve_model(ModelSpec(id=e["model"]))
        except (ModelResolutionError, ValueError) as exc:
            skipped.append((e["id"], f"no config: {str(exc)[:60]}"))
            continue
        cc = _cc(str(e.get("gpu", "")))
        dtype = resolve_dtype(model, str(e.get("dtype") or "auto"), cc)
        tp, pp = int(e.get("tensor_parallel_size") or 1), int(e.get("pipeline_parallel_size") or 1)
        version = re.search(r"\d+\.\d+\.\d+", str(e.get("vllm_version", "")))
        pred = weight_bytes_per_gpu(
            model,
            dtype=dtype,
            quantization=None,
            tp=tp,
            pp=pp,
            pp_rank=0,
            compute_capability=cc,
            vllm_version=version.group(0) if version else None,
        )
        pred_gib = pred / GIB
        err = (pred_gib - obs) / obs * 100
        note = f"tp{tp} pp{pp} {dtype}" + (f" {model.quantization.method}" if model.quantization else "")
        rows.append((e["id"], e["model"], obs, pred_gib, err, note))

    w = max(len(r[0]) for r in rows)
    print(f"{'entry':<{w}}  {'observed':>9}  {'predicted':>9}  {'error':>7}  setup")
    for rid, _model, obs, pred, err, note in rows:
        flag = "" if abs(err) <= 1.0 else "  <-- over 1%"
        print(f"{rid:<{w}}  {obs:>9.2f}  {pred:>9.2f}  {err:>+6.2f}%  {note}{flag}")
    for rid, why in skipped:
        print(f"{rid:<{w}}  {'-':>9}  {'-':>9}  {'-':>7}  skipped: {why}")
    errs = [abs(r[4]) for r in rows]
    within = sum(1 for x in errs if x <= 1.0)
    print(
        f"\n{len(rows)} entries with a config: {within} within 1%, mean |error| {sum(errs) / len(errs):.2f}%, "
        f"max |error| {max(errs):.2f}%; {len(skipped)} skipped (no config)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
