"""Repository calibration records: what this team's own deployments measured (`verify --record`).

A file (`calibration/*.yaml` beside `profiles/`) holds records; each is one start-up: the log's sha256,
the vLLM release, the model, the GPU, the settings it ran and the figures vLLM printed. Never a token, a
hostname or a path outside the repository: the model is the lock's id (a local path is reduced to its
name) and the log is named by its hash only.

Compiles use a record for a deployment that matches it exactly on what shapes the measured terms (see
`match_key`), and only for the terms vLLM's code does not determine: non-torch memory, the activation
peak and the CUDA graph pool. The lock names the record it used. Records are sorted by id on write and
the first match by id wins, so the same file gives the same lock.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CALIBRATION_VERSION = 1

# The settings that shape the calibrated terms: the profile run's batch (activation peak), the layout
# (non-torch: NCCL, custom all-reduce), graphs (the capture sizes follow max_num_seqs).
MATCH_SETTINGS = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "max_num_batched_tokens",
    "max_num_seqs",
    "enforce_eager",
    "dtype",
    "quantization",
)
CALIBRATED_TERMS = ("activation_peak_gib", "non_torch_gib", "cuda_graph_gib")


class CalibrationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # the log's sha256, first 16 hex digits
    log_sha256: str
    vllm_version: str
    model: str
    gpu: str  # the GPU catalog key (e.g. h100-sxm-80gb)
    settings: dict[str, Any]
    observed: dict[str, float | int]
    source: str | None = None  # the profile (relative to the repository root) the record was taken for
    pp_rank: int = 0  # the pipeline stage whose GPU the figures are (the log's binding rank)


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calibration_version: int = CALIBRATION_VERSION
    records: list[CalibrationRecord] = Field(default_factory=list)


class CalibrationError(ValueError):
    pass


def match_key(model: str, gpu: str, vllm_version: str, settings: dict[str, Any]) -> tuple:
    return (model, gpu, vllm_version, *(settings.get(k) for k in MATCH_SETTINGS))


def read_file(path: Path) -> CalibrationFile:
    from ..yaml_text import load_yaml

    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        return CalibrationFile.model_validate(data)
    except (OSError, ValidationError, ValueError) as exc:
        raise CalibrationError(f"{path}: not a calibration file: {exc}") from exc
    except Exception as exc:  # YAML errors
        raise CalibrationError(f"{path}: not valid YAML: {exc}") from exc


def dump_file(file: CalibrationFile) -> str:
    from ..lock import normalise
    from ..yaml_text import to_yaml

    header = (
        "# Repository calibration: vLLM start-up figures measured on this team's deployments.\n"
        "# Written by `vllm-compile verify --record`; compiles use matching records (the lock says which).\n"
    )
    records = sorted(file.records, key=lambda r: r.id)
    data = {"calibration_version": file.calibration_version, "records": [r.model_dump() for r in records]}
    return header + to_yaml(normalise(data), flow_scalar_lists=True)


def record_model_id(model_id: str) -> str:
    """A Hub id as it is; a local directory by its name only (never a path outside the repository)."""
    return (
        Path(model_id).name
        if model_id.startswith(("/", "~", ".")) or Path(model_id).is_absolute()
        else model_id
    )


def record_from(lock: dict[str, Any], log: Any, source: str | None) -> CalibrationRecord:
    """A record of one parsed start-up (observe.vllm_log.StartupLog) for the deployment `lock` plans."""
    model = record_model_id(str(lock["resolved"]["model"]["id"]))
    engine = lock["engine"]
    figures = {k: v for k, v in log.figures.model_dump().items() if v is not None}
    return CalibrationRecord(
        id=log.sha256[:16],
        log_sha256=log.sha256,
        vllm_version=log.vllm_version or lock["vllm_version"],
        model=model,
        gpu=lock["resolved"]["gpu"]["key"],
        settings={k: engine.get(k) for k in (*MATCH_SETTINGS, "max_model_len", "gpu_memory_utilization")},
        observed=figures,
        source=source,
        pp_rank=int(match.group(1)) if (match := re.search(r"PP(\d+)", log.binding_rank)) else 0,
    )


def append_records(path: Path, records: list[CalibrationRecord]) -> list[str]:
    """Add records to the file (created if absent); a record already there (same log) is kept once."""
    file = read_file(path) if path.is_file() else CalibrationFile()
    known = {r.id for r in file.records}
    added = [r for r in records if r.id not in known]
    file.records.extend(added)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dump_file(file), encoding="utf-8")
    tmp.replace(path)
    return [r.id for r in added]


def find_match(
    records: list[CalibrationRecord], model: str, gpu: str, version: str, settings: dict[str, Any]
):
    key = match_key(record_model_id(model), gpu, version, settings)
    for record in sorted(records, key=lambda r: r.id):
        same = match_key(record.model, record.gpu, record.vllm_version, record.settings) == key
        if same and any(record.observed.get(t) is not None for t in CALIBRATED_TERMS):
            return record
    return None
