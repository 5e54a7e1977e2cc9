"""Does every profile setting do something? (the mission: the planner never ignores a setting silently)

    python tools/setting_effects.py              # a table of every probed leaf of the profile schema
    python tools/setting_effects.py --silent     # only the settings silent on every base
    python tools/setting_effects.py --bundled    # the bundled profiles/ as the bases (~3 min)
    python tools/setting_effects.py --strings    # free-text leaves too (value "probe1")
    python tools/setting_effects.py --consumers  # each compiling probe's artifacts through their consumers

Each leaf of `schemas/profile.v1.schema.json` gets a value other than what the base has (another enum
member, the other boolean, a number inside its bounds, [1, 2, 4, 8] for an integer list), set alone
on a base profile with the siblings its section needs (CONTEXT). The profile is planned and rendered
in-process and compared with the same base and context: the lock without its echo of the inputs
(warnings included) and every artifact but the charts. A value that changes none of them is SILENT:
the planner ignores it without saying so. A value the compiler refuses is INVALID, which is not
silent either. Maps and lists of strings (env, extra_args, tolerations) are not probed: they reach
the artifacts, which tests/test_render.py and the consumer checks read.

tests/test_setting_effects.py runs the probe over BASES and fails on a SILENT leaf that is not on its
list of settings that only matter in another context, and on a setting refused for a flag the user
did not write.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "profile.v1.schema.json"

# Base profiles the probe starts from: a dense model on one GPU and an MoE at TP2.
BASES: dict[str, dict[str, Any]] = {
    "dense": {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": 1},
        "workload": {"prompt_tokens": 1024, "gen_tokens": 256, "concurrency": 16},
        "policy": {"fail_on": "never"},
    },
    "moe": {
        "profile_version": 1,
        "model": {"id": "mistralai/Mixtral-8x7B-Instruct-v0.1", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": 2},
        "parallelism": {"tensor_parallel_size": 2},
        "workload": {"prompt_tokens": 1024, "gen_tokens": 256, "concurrency": 16},
        "policy": {"fail_on": "never"},
    },
}
# A setting inside a feature's section is probed with the siblings the section needs (alone it is
# refused): the longest matching prefix's section is merged under the probed value.
CONTEXT: dict[tuple[str, ...], dict[str, Any]] = {
    ("roles",): {
        "vllm": {"kv_transfer": {"connector": "NixlConnector"}},
        "roles": {"prefill": {"replicas": 1}, "decode": {"replicas": 1}},
    },
    ("vllm", "speculative"): {"vllm": {"speculative": {"method": "ngram", "num_speculative_tokens": 3}}},
    ("vllm", "kv_transfer"): {"vllm": {"kv_transfer": {"connector": "NixlConnector"}}},
    ("vllm", "kv_offload"): {"vllm": {"kv_offload": {"size_gib": 16}}},
    ("parallelism", "all2all_backend"): {"parallelism": {"enable_expert_parallel": True}},
    ("parallelism", "enable_eplb"): {"parallelism": {"enable_expert_parallel": True}},
    ("parallelism", "num_redundant_experts"): {
        "parallelism": {"enable_expert_parallel": True, "enable_eplb": True}
    },
}
STRINGS = False  # --strings: free-text leaves get "probe1" too
TARGETS = ["command", "vllm-config", "compose", "helm", "k8s", "lws", "kserve", "report"]
SKIP = {
    ("profile_version",),  # the format version: one value
    ("extends",),  # a file reference, probed by the loader tests
    ("deploy", "targets"),  # what is written, compared here through a fixed list
}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _branches(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return [b for branch in node["anyOf"] for b in _branches(schema, branch)]
    return [node]


def _scalar_values(branch: dict[str, Any], default: Any) -> list[Any]:
    """Values of one schema branch other than the default: every enum member, the other boolean, and
    a number inside the bounds that differs from the default."""
    if "const" in branch:
        return [branch["const"]]
    if "enum" in branch:
        return list(branch["enum"])
    kind = branch.get("type")
    if kind == "boolean":
        return [True, False]
    if kind == "array" and branch.get("items", {}).get("type") == "integer":
        return [[1, 2, 4, 8]]  # e.g. cudagraph_capture_sizes
    if kind == "string" and STRINGS:
        return ["probe1"]  # a name most patterns accept (Kubernetes names, served names, images)
    if kind in ("integer", "number"):
        lo = branch.get("minimum", branch.get("exclusiveMinimum", 0))
        hi = branch.get("maximum", branch.get("exclusiveMaximum"))
        base = default if isinstance(default, (int, float)) and not isinstance(default, bool) else None
        candidates = [base * 2 if base else None, base / 2 if base and kind == "number" else None, 2, 0.5]
        if kind == "integer":
            candidates = [int(c) for c in candidates if c is not None and float(c).is_integer()]
        out = []
        for c in candidates:
            if c is None or c == base or c < lo or (hi is not None and c > hi):
                continue
            if "exclusiveMinimum" in branch and c <= branch["exclusiveMinimum"]:
                continue
            out.append(c)
        return out[:1]
    return []


def leaves(schema: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], list[Any]]]:
    """(path, values to try) for every property of the schema that takes a scalar."""

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], list[Any]]]:
        for key, prop in sorted(_resolve(schema, node).get("properties", {}).items()):
            here = (*path, key)
            if here in SKIP:
                continue
            branches = _branches(schema, prop)
            objects = [b for b in branches if b.get("type") == "object" and "properties" in b]
            for obj in objects:
                yield from walk(obj, here)
            default = prop.get("default")
            values = [
                v
                for b in branches
                for v in _scalar_values(b, default)
                if v != default and not (isinstance(v, bool) != isinstance(default, bool) and v == default)
            ]
            unique: list[Any] = []
            for v in values:
                if not any(v == u and type(v) is type(u) for u in unique):
                    unique.append(v)
            if unique:
                yield here, unique

    yield from walk(schema, ())


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def with_context(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """`data` with the siblings a setting at `path` needs (CONTEXT; a role's path uses its section's)."""
    inner = path[2:] if path[:1] == ("roles",) and len(path) > 2 else path
    out = data
    if path[:1] == ("roles",):
        out = _merge(out, CONTEXT[("roles",)])
    for length in range(len(inner), 0, -1):
        section = CONTEXT.get(inner[:length])
        if section is not None and inner[:1] != ("roles",):
            out = _merge(out, {"roles": {path[1]: section}} if path[:1] == ("roles",) else section)
            break
    return out


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(with_context(data, path))
    node = out
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value
    return out


def signature(data: dict[str, Any]) -> tuple[str, Any]:
    """("ok", what the compile produced) or ("invalid", the message)."""
    from vllm_compile.api import load_profile_dict, plan_resolved
    from vllm_compile.diagnostics import DiagnosticError
    from vllm_compile.lock import build_lock
    from vllm_compile.passes.settings import SettingsError
    from vllm_compile.render import RenderError, render_artifacts
    from vllm_compile.resolve import ResolveError, resolve

    try:
        profile = load_profile_dict(data)
        plan = plan_resolved(resolve(profile, "probe"))
        artifacts = render_artifacts(plan, TARGETS)
    except (DiagnosticError, SettingsError, RenderError, ResolveError, ValueError) as exc:
        return "invalid", str(exc)[:200]
    lock = build_lock(plan, profile_path="p.yaml", profile_data={}, inputs_hash="", artifacts=artifacts)
    lock = {k: v for k, v in lock.items() if k not in ("inputs", "inputs_sha256")}
    return "ok", json.dumps({"lock": lock, "artifacts": artifacts}, sort_keys=True, default=str)


def probe(
    base: dict[str, Any], path: tuple[str, ...], value: Any, reference: tuple[str, str]
) -> tuple[str, str]:
    """(verdict, detail): effect | invalid | SILENT, against `reference`: the base with the same
    context (the siblings the setting needs), so the context itself is not counted as an effect."""
    kind, what = signature(_set(base, path, value))
    if kind == "invalid":
        return "invalid", what
    if reference[0] != "ok":
        return "effect", "the context alone is refused; with this value it compiles"
    if what != reference[1]:
        return "effect", ""
    return "SILENT", ""


def run(bases: dict[str, dict[str, Any]]) -> list[tuple[str, tuple[str, ...], Any, str, str]]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    rows = []
    for name, base in bases.items():
        if signature(base)[0] != "ok":  # e.g. a profile naming a file beside it (workload.trace)
            print(f"base {name} does not compile here: left out", file=sys.stderr)
            continue
        references: dict[str, tuple[str, str]] = {}
        for path, values in leaves(schema):
            context = with_context(base, path)
            key = json.dumps(context, sort_keys=True)
            if key not in references:
                references[key] = signature(context)
            present = _get(context, path)
            for value in values:
                if value == present and type(value) is type(present):
                    continue  # what the base already says: not a change
                verdict, detail = probe(base, path, value, references[key])
                rows.append((name, path, value, verdict, detail))
    return rows


def silent_settings(rows: list[tuple[str, tuple[str, ...], Any, str, str]]) -> dict[str, list[Any]]:
    """Dotted path -> the values that were silent on every base they were tried on."""
    by_path: dict[tuple[str, Any], set[str]] = {}
    for _base, path, value, verdict, _detail in rows:
        by_path.setdefault((".".join(path), json.dumps(value)), set()).add(verdict)
    out: dict[str, list[Any]] = {}
    for (path, value), verdicts in sorted(by_path.items()):
        if verdicts == {"SILENT"}:
            out.setdefault(path, []).append(json.loads(value))
    return out


def consumer_errors(data: dict[str, Any]) -> list[str]:
    """What the artifacts' real consumers reject for this profile: each release's flag set (serve.sh),
    compose-spec, the production-stack chart's schema and kubernetes-validate strict (the checks the
    test suite uses, tests/fixtures/artifact_checks.py)."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import artifact_checks as checks

    from vllm_compile.api import load_profile_dict, plan_resolved
    from vllm_compile.facts import vllm_flags
    from vllm_compile.render import render_artifacts
    from vllm_compile.resolve import resolve

    plan = plan_resolved(resolve(load_profile_dict(data), "probe"))
    version = plan.resolved.vllm.version
    errors: list[str] = []
    for rel, text in render_artifacts(plan, TARGETS).items():
        if rel.endswith("serve.sh"):
            errors += [f"{rel}: {e}" for e in vllm_flags.check_args(version, checks.serve_argv(text)[3:])]
        elif rel.endswith("docker-compose.yaml"):
            errors += [f"{rel}: {e}" for e in checks.compose_errors(text)]
        elif rel == "helm-values.yaml":
            errors += [f"{rel}: {e}" for e in checks.helm_errors(text)]
        elif rel.startswith("k8s/"):
            for obj in checks.load_docs(text):
                crd = obj["kind"] in ("LeaderWorkerSet", "InferenceService")
                errors += [f"{rel}: {e}" for e in (checks.crd_errors(obj) if crd else checks.k8s_errors(obj))]
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--silent", action="store_true", help="only the settings silent on every base")
    parser.add_argument("--bundled", action="store_true", help="the bundled profiles/ as the bases")
    parser.add_argument("--strings", action="store_true", help='free-text leaves too (value "probe1")')
    parser.add_argument(
        "--consumers",
        action="store_true",
        help="check every compiling probe's artifacts with their consumers",
    )
    args = parser.parse_args()
    global STRINGS
    STRINGS = args.strings
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a probed model id or revision never reaches the Hub
    bases = BASES
    if args.bundled:
        from vllm_compile.profile.loader import load_profile

        bases = {p.stem: load_profile(p).data for p in sorted((ROOT / "profiles").glob("*.yaml"))}
    if args.consumers:
        schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
        checked, rejected = 0, 0
        for name, base in bases.items():
            for path, values in leaves(schema):
                for value in values:
                    data = _set(base, path, value)
                    if signature(data)[0] != "ok":
                        continue
                    checked += 1
                    if errors := consumer_errors(data):
                        rejected += 1
                        print(f"{name} {'.'.join(path)}={json.dumps(value)}: {'; '.join(errors[:3])}")
        print(f"{checked} compiling probes, {rejected} with an artifact a consumer rejects")
        return
    rows = run(bases)
    if args.silent:
        for path, values in silent_settings(rows).items():
            print(f"{path:60} {values}")
        return
    for base, path, value, verdict, detail in rows:
        print(f"{base:6} {'.'.join(path):58} {json.dumps(value):>14} {verdict:8} {detail[:90]}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[3]] = counts.get(row[3], 0) + 1
    print("summary:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
