"""`vllm-compile generate`: the wizard's flags in, a profile and its artifacts out, in one go.

    vllm-compile generate --output-dir out/llama -m meta-llama/Llama-3.1-8B-Instruct --gpu H100 \\
        --emit command,profile,compose,k8s

Writes DIR/profile.yaml (compile it again later with `vllm-compile DIR/profile.yaml`), the requested
artifacts and the lockfile. Exit 0 when vLLM would start, 1 when it would not (files are still written,
REPORT.md says why), 2 for invalid input.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ..diagnostics import DiagnosticError, ExitCode
from .flags import add_profile_flags, profile_from_args

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# deploy.* flags: dest -> profile key
_DEPLOY: dict[str, str] = {
    "image": "image",
    "tag": "tag",
    "port": "port",
    "replicas": "replicas",
    "namespace": "namespace",
    "storage_class": "storage_class",
    "storage_size": "storage_size",
    "hf_token_secret": "hf_token_secret",
    "gated": "gated",
    "shm_size": "shm_size",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate",
        help="write a profile and its artifacts from flags",
        description="Write a profile and its deployment artifacts (serve.sh, vllm-config.yaml, "
        "docker-compose.yaml, Helm values, Kubernetes manifests, REPORT.md) from the wizard's flags.",
    )
    parser.add_argument("--output-dir", "-o", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument(
        "--emit",
        metavar="LIST",
        help="artifacts, comma-separated: command, vllm-config, profile, compose, helm, k8s, lws, kserve, "
        "report (default: the profile's deploy.targets; the profile is always written)",
    )
    parser.add_argument("--name", help="profile name (default: the output folder's name)")
    add_profile_flags(parser)
    d = parser.add_argument_group("deployment")
    s = argparse.SUPPRESS
    d.add_argument("--served-model-name", default=s)
    d.add_argument("--port", type=int, default=s)
    d.add_argument("--image", default=s, help="container image (default vllm/vllm-openai)")
    d.add_argument("--tag", default=s, help="image tag (default v<vLLM version>)")
    d.add_argument("--replicas", type=int, default=s)
    d.add_argument("--namespace", default=s)
    d.add_argument("--storage-class", default=s)
    d.add_argument("--storage-size", default=s)
    d.add_argument("--shm-size", default=s)
    d.add_argument("--hf-token-secret", default=s, help="Kubernetes secret holding HF_TOKEN (key: token)")
    d.add_argument(
        "--gated", action=argparse.BooleanOptionalAction, default=s, help="the model needs HF_TOKEN"
    )
    d.add_argument(
        "--vllm-arg",
        action="append",
        default=s,
        metavar="ARG",
        help="one more `vllm serve` argument, checked against the version (repeat; --vllm-arg=--flag)",
    )
    parser.set_defaults(func=run)


def _targets(emit: str | None, profile_targets: list[str]) -> list[str]:
    from ..render import TARGETS

    chosen = [t.strip() for t in emit.split(",") if t.strip()] if emit else list(profile_targets)
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown --emit target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return list(dict.fromkeys([*chosen, "profile"]))


def profile_data(args: argparse.Namespace, base: dict[str, Any] | None, name: str) -> dict[str, Any]:
    data = profile_from_args(args, base)
    given = vars(args)
    data["name"] = name
    for dest, key in _DEPLOY.items():
        if dest in given:
            data.setdefault("deploy", {})[key] = given[dest]
    if "served_model_name" in given:
        data["model"]["served_model_name"] = given["served_model_name"]
    if "vllm_arg" in given:
        data.setdefault("vllm", {}).setdefault("extra_args", []).extend(given["vllm_arg"])
    return data


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..lock import LOCK_FILE, build_lock, dump_lock, inputs_sha256
    from ..render import render_artifacts
    from ..write import apply_changes, pending_changes

    out = Path(args.output_dir)
    name = args.name or out.resolve().name.lower()
    try:
        if not _NAME.match(name):
            raise ValueError(f"profile name {name!r} must be lowercase letters, digits and '-' (use --name)")
        base = None
        if args.profile:
            from ..profile.loader import load_profile

            base = load_profile(Path(args.profile)).data
        data = profile_data(args, base, name)
        profile = api.load_profile_dict(data)
        targets = _targets(args.emit, list(profile.deploy.targets))
        plan = api.plan_profile(profile, name=name)
        artifacts = render_artifacts(plan, targets)
    except DiagnosticError as exc:
        for diag in exc.diagnostics:
            print(diag.format(), file=sys.stderr)
        return ExitCode.INVALID
    except (ValueError, OSError) as exc:  # RenderError, ResolveError, ProfileFlagError: all ValueError
        print(f"vllm-compile generate: {exc}", file=sys.stderr)
        return ExitCode.INVALID
    lock = build_lock(
        plan,
        profile_path="profile.yaml",
        profile_data=data,
        inputs_hash=inputs_sha256(data, plan.resolved),
        artifacts=artifacts,
    )
    files = {**artifacts, LOCK_FILE: dump_lock(lock)}
    apply_changes(pending_changes(out, files, []))
    for rel in sorted(files):
        print(out / rel)
    verdict = plan.verdict
    if not verdict.starts:
        print(f"vllm-compile generate: vLLM would not start: {'; '.join(verdict.reasons)}", file=sys.stderr)
        return ExitCode.POLICY
    return ExitCode.OK
