"""The lockfile: resolved inputs and results, serialised deterministically.

Sorted keys, floats rounded to a fixed precision, no timestamps, no absolute paths: the same inputs
give byte-identical files on every machine, which is what makes committed locks reviewable.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from . import __version__
from .facts.model_facts import ModelFacts
from .facts.prices import price_table_version
from .plan import Plan, Resolved
from .units import gib
from .yaml_text import load_yaml, to_yaml

LOCK_VERSION = 1
LOCK_FILE = "vllm.lock.yaml"
FLOAT_DIGITS = 6  # significant digits kept for every float we write


_AS_IS = frozenset({str, int, bool, type(None)})  # most values of a lock: tested for first
_FLOAT_FORMAT = f".{FLOAT_DIGITS}g"


def normalise(value: Any) -> Any:
    """Plain, sorted, float-stable data: the one representation every writer serialises."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, dict):
        return {str(k): normalise(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, float):
        return float(format(value, _FLOAT_FORMAT))
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inputs_sha256(
    profile_data: dict[str, Any], resolved: Resolved, extra: dict[str, Any] | None = None
) -> str:
    """Everything a plan depends on: the profile after overlays, the facts it resolved to, the compiler,
    and `extra` inputs when there are any (repository calibration records that may apply)."""
    return sha256_text(
        canonical_json(
            {
                "compiler_version": __version__,
                "profile": profile_data,
                "model": resolved.model.model_dump(mode="json"),
                "gpu": resolved.gpu.model_dump(mode="json"),
                "vllm": resolved.vllm.model_dump(mode="json"),
                **({"extra": extra} if extra else {}),
                **({"draft": resolved.draft.model_dump(mode="json")} if resolved.draft is not None else {}),
                "gpu_prices": price_table_version(),
                "trace": resolved.trace.sha256 if resolved.trace is not None else None,
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
        **_engine_sections(plan),
        "artifacts": {path: sha256_text(text) for path, text in artifacts.items()},
    }
    # Serving features, only where the profile has them (other locks stay as they were).
    if resolved.draft is not None:
        lock["resolved"]["draft_model"] = resolved.draft.model_dump(mode="json")
    if resolved.profile.vllm.extra_args or resolved.extra_args.modelled:
        lock["extra_args"] = resolved.extra_args.model_dump(mode="json")
    if memory.features:
        lock["memory"]["features"] = [f.model_dump(mode="json") for f in memory.features]
    if plan.cluster is not None:
        lock["cluster"] = plan.cluster
    if plan.cost is not None:
        lock["cost"] = {"estimate": True, **plan.cost}
    if plan.cuda_graphs is not None:
        lock["cuda_graphs"] = plan.cuda_graphs
    if plan.performance is not None:
        lock["performance"] = {"estimate": True, **plan.performance.model_dump(mode="json")}
    if plan.calibration:
        lock["calibration"] = plan.calibration
    if plan.kv_connector is not None:
        lock["kv_connector"] = plan.kv_connector
    if (
        plan.roles
    ):  # disaggregated prefill/decode: both engines (the top-level sections are the decode pool's)
        lock["roles"] = {role: _role_lock(p) for role, p in plan.roles.items()}
        lock["disaggregation"] = {"estimate": True, **(plan.disaggregation or {})}
    return normalise(lock)


def _role_lock(plan: Plan) -> dict[str, Any]:
    """One pool of a `roles:` profile, in the lock's own section shapes."""
    out: dict[str, Any] = {
        "name": plan.resolved.name,
        "gpu": plan.resolved.gpu.model_dump(mode="json"),
        "replicas": plan.resolved.profile.deploy.replicas,
        **_engine_sections(plan),
    }
    if plan.kv_connector is not None:
        out["kv_connector"] = plan.kv_connector
    if plan.cuda_graphs is not None:
        out["cuda_graphs"] = plan.cuda_graphs
    return out


def _engine_sections(plan: Plan) -> dict[str, Any]:
    """What one engine decided: settings with their reasons, the engine, memory per GPU, the verdict."""
    memory = plan.memory
    return {
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
    }


def _binding_gib(plan: Plan) -> dict[str, float]:
    """The binding GPU in GiB, as vLLM prints it at start-up: what a reviewer compares with real logs."""
    rank = plan.memory.binding
    return {
        "gpu_total_gib": gib(rank.gpu_total_bytes),
        "requested_gib": gib(rank.requested_bytes),
        "baseline_gib": gib(rank.baseline_bytes),
        "weights_gib": gib(rank.weights_bytes),
        "activation_peak_gib": gib(rank.activation_peak_bytes),
        "non_torch_gib": gib(rank.non_torch_bytes),
        "cuda_graph_gib": gib(rank.cuda_graph_bytes),
        "kv_cache_gib": gib(rank.kv_cache_bytes),
    }


def dump_lock(lock: dict[str, Any]) -> str:
    header = (
        f"# Generated by vllm-compile {__version__} from {lock['profile']}. Do not edit:\n"
        "# change the profile and run `vllm-compile`. Performance figures are estimates.\n"
    )
    return header + to_yaml(lock, flow_scalar_lists=True)


class LockFile:
    """A previous lock, read lazily: the header fields the incremental build needs (inputs hash,
    artifact hashes, profile path) come from the text we wrote ourselves; the whole document is parsed
    only when its facts are needed (a Hub model that must resolve offline)."""

    _FIELD = r"^{}: '?([^'\n]*)'?$"
    _ARTIFACT = re.compile(r"^  (.+?): '?([0-9a-f]{64})'?$", re.M)

    def __init__(self, text: str):
        self.text = text
        self._data: dict[str, Any] | None = None

    @classmethod
    def read(cls, path: Path) -> LockFile | None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        lock = cls(text)
        return lock if lock.field("lock_version") == str(LOCK_VERSION) else None

    def field(self, name: str) -> str | None:
        match = re.search(self._FIELD.format(re.escape(name)), self.text, re.M)
        return match.group(1) if match else None

    def artifacts(self) -> dict[str, str]:
        block = re.search(r"^artifacts:\n((?:  .*\n)*)", self.text, re.M)
        return dict(self._ARTIFACT.findall(block.group(1))) if block else {}

    def section(self, name: str) -> Any:
        """One top-level section, parsed alone (a few lines instead of the whole lock)."""
        block = re.search(rf"^{re.escape(name)}:\n((?:[ -].*\n)*)", self.text, re.M)
        if not block:
            return None
        try:
            return (load_yaml(f"{name}:\n{block.group(1)}") or {}).get(name)
        except Exception:
            return None

    def data(self) -> dict[str, Any] | None:
        if self._data is None:
            try:
                parsed = load_yaml(self.text)
            except Exception:  # a corrupt lock is replaced, never trusted
                return None
            self._data = parsed if isinstance(parsed, dict) else None
        return self._data


def locked_model(lock: LockFile | None) -> ModelFacts | None:
    """The model facts a previous compile resolved (from the Hub, say), so that no network is needed again."""
    data = lock.data() if lock else None
    if not data:
        return None
    try:
        return ModelFacts.model_validate(data["resolved"]["model"])
    except (KeyError, TypeError, ValueError):
        return None
