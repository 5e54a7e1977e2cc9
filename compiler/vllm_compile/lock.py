"""The lockfile: resolved inputs and results, serialised deterministically.

Sorted keys, floats rounded to a fixed precision, no timestamps, no absolute paths: the same inputs
give byte-identical files on every machine, which is what makes committed locks reviewable.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from . import __version__
from .facts.model_facts import ModelFacts
from .plan import Plan, Resolved
from .units import gib

LOCK_VERSION = 1
LOCK_FILE = "vllm.lock.yaml"
FLOAT_DIGITS = 6  # significant digits kept for every float we write


def normalise(value: Any) -> Any:
    """Plain, sorted, float-stable data: the one representation every writer serialises."""
    if isinstance(value, dict):
        return {str(k): normalise(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inputs_sha256(profile_data: dict[str, Any], resolved: Resolved) -> str:
    """Everything a plan depends on: the profile after overlays, the facts it resolved to, the compiler."""
    return sha256_text(
        canonical_json(
            {
                "compiler_version": __version__,
                "profile": profile_data,
                "model": resolved.model.model_dump(mode="json"),
                "gpu": resolved.gpu.model_dump(mode="json"),
                "vllm": resolved.vllm.model_dump(mode="json"),
            }
        )
    )


def build_lock(
    plan: Plan,
    *,
    profile_path: str,
    profile_data: dict[str, Any],
    inputs_hash: str,
    artifacts: dict[str, str],
) -> dict[str, Any]:
    resolved = plan.resolved
    memory = plan.memory
    lock: dict[str, Any] = {
        "lock_version": LOCK_VERSION,
        "compiler_version": __version__,
        "vllm_version": resolved.vllm.version,
        "name": resolved.name,
        "profile": profile_path,
        "inputs_sha256": inputs_hash,
        "inputs": {"profile": profile_data},
        "resolved": {
            "model": resolved.model.model_dump(mode="json"),
            "gpu": resolved.gpu.model_dump(mode="json"),
            "vllm": resolved.vllm.model_dump(mode="json"),
        },
        "settings": {name: d.model_dump(mode="json") for name, d in plan.decisions.items()},
        "engine": plan.engine.model_dump(mode="json"),
        "memory": {
            "binding_gpu_gib": _binding_gib(plan),
            "binding_pp_rank": memory.binding_pp_rank,
            "per_gpu": [r.model_dump(mode="json") for r in memory.ranks],
            "kv_cache": memory.kv.model_dump(mode="json"),
            "largest_max_model_len": memory.largest_max_model_len,
            "assumptions": memory.assumptions,
        },
        "verdict": plan.verdict.model_dump(mode="json"),
        "artifacts": {path: sha256_text(text) for path, text in artifacts.items()},
    }
    if plan.performance is not None:
        lock["performance"] = {"estimate": True, **plan.performance.model_dump(mode="json")}
    return normalise(lock)


def _flow_scalar_lists(value: Any) -> Any:
    """Lists of numbers and short strings on one line (capture sizes, layer kinds): a diff stays one line."""
    from ruamel.yaml.comments import CommentedSeq

    if isinstance(value, dict):
        return {k: _flow_scalar_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_flow_scalar_lists(v) for v in value]
        if items and all(isinstance(v, (int, float)) or (isinstance(v, str) and len(v) <= 16) for v in items):
            seq = CommentedSeq(items)
            seq.fa.set_flow_style()
            return seq
        return items
    return value


def _binding_gib(plan: Plan) -> dict[str, float]:
    """The binding GPU in GiB, as vLLM prints it at start-up: what a reviewer compares with real logs."""
    rank = plan.memory.binding
    return {
        "gpu_total_gib": gib(rank.gpu_total_bytes),
        "requested_gib": gib(rank.requested_bytes),
        "weights_gib": gib(rank.weights_bytes),
        "activation_peak_gib": gib(rank.activation_peak_bytes),
        "non_torch_gib": gib(rank.non_torch_bytes),
        "cuda_graph_gib": gib(rank.cuda_graph_bytes),
        "kv_cache_gib": gib(rank.kv_cache_bytes),
    }


def dump_lock(lock: dict[str, Any]) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 4096  # never fold long strings: folding points would differ with content
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    buffer = io.StringIO()
    yaml.dump(_flow_scalar_lists(lock), buffer)
    header = (
        f"# Generated by vllm-compile {__version__} from {lock['profile']}. Do not edit:\n"
        "# change the profile and run `vllm-compile`. Performance figures are estimates.\n"
    )
    return header + buffer.getvalue()


def read_lock(path: Path) -> dict[str, Any] | None:
    """A previous lock, or None when there is none or it cannot be read (it is then rewritten)."""
    if not path.is_file():
        return None
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except Exception:  # a corrupt lock is replaced, never trusted
        return None
    return data if isinstance(data, dict) and data.get("lock_version") == LOCK_VERSION else None


def locked_model(lock: dict[str, Any] | None) -> ModelFacts | None:
    """The model facts a previous compile resolved (from the Hub, say), so that no network is needed again."""
    if not lock:
        return None
    try:
        return ModelFacts.model_validate(lock["resolved"]["model"])
    except (KeyError, TypeError, ValueError):
        return None
